// Cluster membership: the node manager, one per node, published on the cluster port
// ([cluster] port) through CAF's middleman. Nodes join through any seed and then talk
// directly (full mesh). Every `heartbeat_interval_ms` each node sends every other its
// state (Protobuf NodeState, runtime/proto/cluster.proto): itself, its load, its agents and
// its view of the members, so membership and the agent directory spread to everyone.
//
// Failure detection, two ways: a CAF monitor on each peer's manager (a dead process closes
// its socket: a down message within milliseconds) and heartbeat age (a frozen process keeps
// its socket open: no heartbeat for `failure_timeout_ms` makes it unreachable).
// Membership status: joining -> up -> leaving -> down -> removed; "unreachable" is shown for
// an up member that stopped answering. The leader (the oldest up and reachable member, ties
// broken by name; every member computes the same) downs a member unreachable for
// `down_after_ms` and tells its own scheduler to re-queue that member's work. A node that
// learns it was downed (it was frozen, then thawed) comes back as a new incarnation.
//
// Proof of membership: a node that connects to a member's manager first proves it holds the
// cluster secret, and the member proves it back (HMAC-SHA256 over both nonces and names; the
// secret never crosses the wire); only then do they exchange anything else. Each side then
// trusts the other's CAF node id (runtime/trust.hpp): every runtime actor drops messages from
// nodes it does not trust. With [cluster] tls_* the connection itself is mutual TLS.
//
// Protocol (CAF envelope, Protobuf bodies):
//   joiner -> manager   (hello_atom, name, nonce) -> (name, nonce, proof)      the member's proof
//   joiner -> manager   (prove_atom, proof) -> bool                             the joiner's proof
//   manager -> manager  (gossip_atom, bytes NodeState, manager, scheduler)   one-way
//   any -> manager      (nodes_atom) -> string (JSON of the membership, for the API)
//                       (leave_atom, name) -> string   ask node `name` to leave (drain, stop)
//                       (leaving_atom) -> bool         this node is shutting down: tell the others
//   gateway -> manager  (cluster_actors_atom, query JSON, node) -> JSON   the actors of every other member
//                       (that node only when given), fetched from each over the cluster connection
//                       (peer_actor_atom, node, id) -> JSON     one actor of another member, with its summary
//                       (peer_kill_atom, node, id) -> JSON      kill an actor of another member
//   A member answers these for a trusted peer only: peers act as nodes, never with a user's credentials.
//   manager -> scheduler (local_report_atom) -> LocalReport   this node's agents and load
//                        (cluster_view_atom, vector<PeerView>)  the others, after each change
//                        (node_down_atom, name)          leader only: re-queue that node's work
// Must never know agent or task actors beyond these messages (DESIGN.md: runtime knows no
// actor kinds).
#pragma once

#include "runtime/domain.hpp"

#include <caf/actor.hpp>
#include <caf/atom.hpp>
#include <caf/fwd.hpp>
#include <caf/meta/type_name.hpp>

#include <functional>
#include <string>
#include <vector>

namespace hub::runtime {

using gossip_atom = caf::atom_constant<caf::atom("gossip")>;
using nodes_atom = caf::atom_constant<caf::atom("nodes")>;
using leave_atom = caf::atom_constant<caf::atom("leave")>;
using leaving_atom = caf::atom_constant<caf::atom("leaving")>;
using local_report_atom = caf::atom_constant<caf::atom("loc_report")>;
using cluster_view_atom = caf::atom_constant<caf::atom("cl_view")>;
using node_down_atom = caf::atom_constant<caf::atom("node_down")>;
// scheduler <-> scheduler (actors/remote_agent.hpp): one attempt on another node's agent.
using remote_execute_atom = caf::atom_constant<caf::atom("rexec")>;
using remote_cancel_atom = caf::atom_constant<caf::atom("rcancel")>;
using hello_atom = caf::atom_constant<caf::atom("cl_hello")>;
using prove_atom = caf::atom_constant<caf::atom("cl_prove")>;
using cluster_actors_atom = caf::atom_constant<caf::atom("cl_actors")>;
using peer_actors_atom = caf::atom_constant<caf::atom("p_actors")>;
using peer_actor_atom = caf::atom_constant<caf::atom("p_actor")>;
using peer_kill_atom = caf::atom_constant<caf::atom("p_kill")>;

// What a scheduler tells its node manager about this node.
struct LocalReport {
  std::vector<AgentRecord> agents;    // live views (running_tasks filled)
  std::vector<std::string> breakers;  // per agent: closed | open | half_open
  int32_t running = 0;
  int32_t queued = 0;
};

// Another node, as the scheduler needs it for placement.
struct PeerView {
  std::string name;
  std::string status;  // joining | up | leaving | down | removed
  bool reachable = false;
  caf::actor scheduler;
  std::vector<AgentRecord> agents;
  std::vector<std::string> breakers;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, LocalReport& x) {
  return f(caf::meta::type_name("hub_local_report"), x.agents, x.breakers, x.running, x.queued);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, PeerView& x) {
  return f(caf::meta::type_name("hub_peer_view"), x.name, x.status, x.reachable, x.scheduler, x.agents, x.breakers);
}

struct NodeLoad {
  double cpu_percent = 0;
  int64_t memory_bytes = 0;
};

struct ClusterOptions {
  std::string name;            // unique in the cluster
  std::string host = "0.0.0.0";
  int port = 4001;
  std::string advertise_host;  // how peers reach us (empty: host, or the host name for 0.0.0.0)
  std::string http_address;    // host:port of this node's API, shown to operators
  std::vector<std::string> seeds;
  std::string secret;  // what members prove they hold (may be empty on a loopback-only cluster)
  bool tls = false;    // connect and publish through CAF's OpenSSL module (HubActorConfig loads it)
  int64_t heartbeat_ms = 500;
  int64_t failure_ms = 2000;
  int64_t down_after_ms = 5000;
  std::string version;
  std::function<NodeLoad()> load;      // sampled for each heartbeat
  std::function<void()> on_leave;      // an operator asked this node to leave: drain and stop
};

struct ClusterStart {
  caf::actor manager;
  std::string error;  // empty on success
};

// Spawns the node manager (its own thread, so a busy node still heartbeats) and publishes
// it on options.host:options.port. The middleman module must be loaded (HubActorConfig).
ClusterStart start_cluster(caf::actor_system& system, ClusterOptions options, caf::actor scheduler);

// The membership of a node that runs alone (cluster disabled), in the API's shape.
std::string single_node_json(const std::string& name, const std::string& http_address, const LocalReport& local,
                             const NodeLoad& load, int64_t started_ms, const std::string& version);

// Protobuf bodies of records (runtime/proto/cluster.proto).
std::string encode_task(const TaskRecord& task);
bool decode_task(const std::string& bytes, TaskRecord& task);

}  // namespace hub::runtime
