#include "runtime/cluster.hpp"

#include "cluster.pb.h"
#include "runtime/instrumented.hpp"
#include "runtime/clock.hpp"
#include "runtime/events.hpp"
#include "runtime/metrics.hpp"
#include "runtime/trust.hpp"

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>
#include <caf/io/middleman.hpp>
#include <caf/openssl/manager.hpp>
#include <caf/openssl/publish.hpp>
#include <caf/stateful_actor.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <set>

namespace hub::runtime {

using json = nlohmann::json;

namespace {

using cluster_tick_atom = caf::atom_constant<caf::atom("cl_tick")>;

constexpr int64_t kTickMs = 100;
constexpr int64_t kConnectEveryMs = 1000;
constexpr int64_t kForgetAfterMs = 60000;  // down/removed members leave the list after this

int status_rank(const std::string& s) {
  if (s == "joining") return 0;
  if (s == "up") return 1;
  if (s == "leaving") return 2;
  if (s == "down") return 3;
  if (s == "removed") return 4;
  return 0;
}
const std::string& later_status(const std::string& a, const std::string& b) {
  return status_rank(b) > status_rank(a) ? b : a;
}
bool alive_status(const std::string& s) { return s == "joining" || s == "up" || s == "leaving"; }

void to_proto(const AgentRecord& a, const std::string& breaker, proto::Agent* out) {
  out->set_id(a.id);
  out->set_name(a.name);
  out->set_type(a.type);
  out->set_specialization(a.specialization);
  out->set_state(a.state);
  for (const auto& c : a.capabilities) {
    auto* pc = out->add_capabilities();
    pc->set_name(c.name);
    pc->set_proficiency(c.proficiency);
    pc->set_learning_rate(c.learning_rate);
  }
  out->set_max_concurrent_tasks(a.max_concurrent_tasks);
  out->set_executor_json(a.executor_json);
  out->set_node(a.node);
  out->set_tasks_completed(a.tasks_completed);
  out->set_tasks_failed(a.tasks_failed);
  out->set_avg_duration_ms(a.avg_duration_ms);
  out->set_running_tasks(a.running_tasks);
  out->set_breaker(breaker);
  out->set_created_at(a.created_at);
  out->set_updated_at(a.updated_at);
  out->set_energy(a.energy);
}

AgentRecord from_proto(const proto::Agent& p) {
  AgentRecord a;
  a.id = p.id();
  a.name = p.name();
  a.type = p.type();
  a.specialization = p.specialization();
  a.state = p.state();
  for (const auto& c : p.capabilities()) a.capabilities.push_back({c.name(), c.proficiency(), c.learning_rate()});
  a.max_concurrent_tasks = p.max_concurrent_tasks();
  a.executor_json = p.executor_json();
  a.node = p.node();
  a.tasks_completed = p.tasks_completed();
  a.tasks_failed = p.tasks_failed();
  a.avg_duration_ms = p.avg_duration_ms();
  a.running_tasks = p.running_tasks();
  a.created_at = p.created_at();
  a.updated_at = p.updated_at();
  a.energy = p.energy();
  return a;
}

struct Peer {
  std::string name, address, http, version;
  int64_t incarnation = 0;
  std::string status = "joining";
  bool reachable = false;
  int64_t last_seen = 0;          // local clock, last heartbeat
  int64_t unreachable_since = 0;  // local clock
  int64_t status_since = 0;
  caf::actor manager, scheduler;
  double cpu = 0;
  int64_t memory = 0;
  int32_t running = 0, queued = 0;
  std::vector<AgentRecord> agents;
  std::vector<std::string> breakers;
};

// A node that said hello and has yet to prove itself.
struct Challenge {
  std::string name, their_nonce, our_nonce;
  int64_t expires_ms = 0;
};

struct ManagerState {
  ClusterOptions o;
  TrustedNodes* trusted = nullptr;
  std::map<caf::node_id, Challenge> challenges;
  std::set<std::string> refused_logged;  // addresses/nodes already reported, to keep the log short
  std::map<std::string, std::string> published;  // member -> the status last put on the event feed
  caf::actor scheduler;
  int64_t incarnation = 0;
  std::string status = "up";
  std::string address;  // advertised host:port
  std::map<std::string, Peer> peers;
  std::set<std::string> connecting;
  LocalReport local;
  bool report_pending = false;
  int64_t next_heartbeat = 0;
  int64_t next_connect = 0;
  std::string leader_seen;
  static inline const char* name = "node_manager";
};

using Manager = Instrumented<ManagerState>;

std::string random_nonce() {
  unsigned char bytes[32];
  if (RAND_bytes(bytes, sizeof bytes) != 1) throw std::runtime_error("no randomness for a cluster nonce");
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned char b : bytes) out += {hex[b >> 4], hex[b & 15]};
  return out;
}

// The proof that whoever sends it holds the secret, bound to this exchange: both nonces, both
// names and the direction, so a proof is good for one handshake and one side only.
std::string proof(const std::string& secret, const char* role, const std::string& joiner, const std::string& joiner_nonce,
                  const std::string& member, const std::string& member_nonce) {
  auto text = std::string("hub-cluster-v1|") + role + "|" + joiner + "|" + joiner_nonce + "|" + member + "|" + member_nonce;
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), int(secret.size()), reinterpret_cast<const unsigned char*>(text.data()), text.size(), mac, &len);
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < len; ++i) out += {hex[mac[i] >> 4], hex[mac[i] & 15]};
  return out;
}

bool same_proof(const std::string& a, const std::string& b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

// A message to the manager from another node that has not proven its membership.
bool from_stranger(Manager* self) {
  const auto& sender = self->current_sender();
  if (!sender) return false;  // local and anonymous
  const auto& node = sender->node();
  return node != self->node() && !self->state.trusted->trusts(node);
}

void refuse_stranger(Manager* self, const std::string& what) {
  auto& st = self->state;
  auto who = self->current_sender() ? caf::to_string(self->current_sender()->node()) : std::string("?");
  metrics::Registry::global().counter(metrics::names::cluster_refused, "Messages refused from nodes that did not prove membership").inc();
  if (st.refused_logged.size() < 1000 && st.refused_logged.insert(who + what).second)
    spdlog::warn("cluster: refused {} from node {}: it has not proven it holds the cluster secret", what, who);
}

// A request about another member's actor goes on to that member's manager; its answer goes
// straight back to the caller.
template <class... Ts>
caf::result<std::string> pass_on(Manager* self, const std::string& node, Ts... xs) {
  auto it = self->state.peers.find(node);
  if (it == self->state.peers.end() || !it->second.manager)
    return caf::make_error(caf::sec::runtime_error, "not_found|no reachable cluster member named " + node);
  self->delegate(it->second.manager, xs...);
  return caf::delegated<std::string>{};
}

std::string leader_of(const ManagerState& st) {
  std::pair<int64_t, std::string> best{INT64_MAX, ""};
  if (st.status == "up") best = {st.incarnation, st.o.name};
  for (const auto& [name, p] : st.peers)
    if (p.status == "up" && p.reachable) best = std::min(best, std::make_pair(p.incarnation, name));
  return best.second;
}

std::string state_bytes(Manager* self) {
  auto& st = self->state;
  proto::NodeState ns;
  ns.set_name(st.o.name);
  ns.set_incarnation(st.incarnation);
  ns.set_address(st.address);
  ns.set_http_address(st.o.http_address);
  ns.set_status(st.status);
  auto load = st.o.load ? st.o.load() : NodeLoad{};
  ns.set_cpu_percent(load.cpu_percent);
  ns.set_memory_bytes(load.memory_bytes);
  ns.set_running_tasks(st.local.running);
  ns.set_queued_tasks(st.local.queued);
  for (size_t i = 0; i < st.local.agents.size(); ++i)
    to_proto(st.local.agents[i], i < st.local.breakers.size() ? st.local.breakers[i] : "closed", ns.add_agents());
  for (const auto& [name, p] : st.peers) {
    auto* m = ns.add_members();
    m->set_name(name);
    m->set_address(p.address);
    m->set_http_address(p.http);
    m->set_incarnation(p.incarnation);
    m->set_status(p.status);
  }
  ns.set_version(st.o.version);
  ns.set_sent_at_ms(now_ms());
  return ns.SerializeAsString();
}

void push_view(Manager* self) {
  auto& st = self->state;
  std::vector<PeerView> views;
  for (const auto& [name, p] : st.peers) views.push_back({name, p.status, p.reachable, p.scheduler, p.agents, p.breakers});
  self->send(st.scheduler, cluster_view_atom::value, std::move(views));
}

void gossip_all(Manager* self) {
  auto bytes = state_bytes(self);
  auto me = caf::actor_cast<caf::actor>(self);
  for (const auto& [name, p] : self->state.peers)
    if (p.manager) self->send(p.manager, gossip_atom::value, bytes, me, self->state.scheduler);
}

bool is_own_address(const ManagerState& st, const std::string& host, int port) {
  if (port != st.o.port) return false;
  char hostname[256] = {0};
  gethostname(hostname, sizeof hostname - 1);
  return host == st.o.host || host == st.o.advertise_host || host == "127.0.0.1" || host == "localhost" ||
         host == "::1" || host == hostname;
}

void connect(Manager* self, const std::string& address) {
  auto& st = self->state;
  auto colon = address.rfind(':');
  if (colon == std::string::npos) return;
  auto host = address.substr(0, colon);
  int port = std::atoi(address.c_str() + colon + 1);
  if (port <= 0 || port > 65535 || is_own_address(st, host, port) || st.connecting.count(address)) return;
  st.connecting.insert(address);
  auto mm = st.o.tls ? self->system().openssl_manager().actor_handle() : self->system().middleman().actor_handle();
  self->request(mm, std::chrono::seconds(5), caf::connect_atom::value, host, uint16_t(port))
      .then(
          [=](const caf::node_id&, caf::strong_actor_ptr& ptr, const std::set<std::string>&) {
            auto peer = caf::actor_cast<caf::actor>(ptr);
            if (!peer || peer.node() == self->node()) {
              self->state.connecting.erase(address);
              return;
            }
            // Prove ourselves, and make the member prove itself, before anything else.
            auto nonce = random_nonce();
            self->request(peer, std::chrono::seconds(5), hello_atom::value, self->state.o.name, nonce)
                .then(
                    [=](const std::string& member, const std::string& member_nonce, const std::string& member_proof) {
                      auto& st = self->state;
                      if (!same_proof(member_proof, proof(st.o.secret, "member", st.o.name, nonce, member, member_nonce))) {
                        st.connecting.erase(address);
                        if (st.refused_logged.insert("proof:" + address).second)
                          spdlog::error("cluster: {} ({}) could not prove it holds the cluster secret: not joining through it",
                                        address, member);
                        return;
                      }
                      st.trusted->add(peer.node());
                      self->request(peer, std::chrono::seconds(5), prove_atom::value,
                                    proof(st.o.secret, "joiner", st.o.name, nonce, member, member_nonce))
                          .then(
                              [=](bool) {
                                self->state.connecting.erase(address);
                                self->send(peer, gossip_atom::value, state_bytes(self), caf::actor_cast<caf::actor>(self),
                                           self->state.scheduler);
                              },
                              [=](caf::error& err) {
                                self->state.connecting.erase(address);
                                if (self->state.refused_logged.insert("refused:" + address).second)
                                  spdlog::error("cluster: {} refused this node's proof of membership ({}): is [cluster] secret the same on every node?",
                                                address, self->system().render(err));
                              });
                    },
                    [=](caf::error& err) {
                      self->state.connecting.erase(address);
                      spdlog::debug("cluster: no handshake with {}: {}", address, self->system().render(err));
                    });
          },
          [=](caf::error& err) {
            self->state.connecting.erase(address);
            spdlog::debug("cluster: cannot reach {} yet: {}", address, self->system().render(err));
          });
}

void merge_member(Manager* self, const proto::Member& m, int64_t now) {
  auto& st = self->state;
  if (m.name() == st.o.name) {
    if (m.incarnation() == st.incarnation && (m.status() == "down" || m.status() == "removed") && st.status == "up") {
      st.incarnation = std::max(now, st.incarnation + 1);
      spdlog::warn("cluster: the others marked this node {} (it stopped answering); rejoining as a new incarnation",
                   m.status());
      gossip_all(self);
    }
    return;
  }
  auto it = st.peers.find(m.name());
  if (it == st.peers.end() || m.incarnation() > it->second.incarnation) {
    if (!alive_status(m.status())) return;  // news of a member we never knew, already gone
    Peer p;
    p.name = m.name();
    p.address = m.address();
    p.http = m.http_address();
    p.incarnation = m.incarnation();
    p.status = m.status() == "up" ? "joining" : m.status();  // up once it speaks to us
    p.unreachable_since = p.status_since = p.last_seen = now;
    if (it != st.peers.end()) {
      p.manager = it->second.manager;  // an older incarnation's handle: replaced when the new one speaks
    }
    st.peers[m.name()] = std::move(p);
    return;
  }
  if (m.incarnation() == it->second.incarnation && status_rank(m.status()) >= status_rank("leaving")) {
    auto before = it->second.status;
    it->second.status = later_status(it->second.status, m.status());
    if (before != it->second.status) {
      it->second.status_since = now;
      spdlog::info("cluster: member {} is {} (heard from another member)", m.name(), it->second.status);
    }
  }
}

void on_gossip(Manager* self, const std::string& bytes, caf::actor from_manager, caf::actor from_scheduler) {
  auto& st = self->state;
  proto::NodeState ns;
  if (!ns.ParseFromString(bytes)) {
    spdlog::warn("cluster: dropped a heartbeat that is not a NodeState ({} bytes)", bytes.size());
    return;
  }
  if (ns.name() == st.o.name) {
    if (ns.incarnation() != st.incarnation && from_manager.node() != self->node())
      spdlog::error("cluster: another node at {} also calls itself {}: node names must be unique", ns.address(), ns.name());
    return;
  }
  auto now = now_ms();
  auto found = st.peers.find(ns.name());
  if (found != st.peers.end() && ns.incarnation() < found->second.incarnation) return;  // an earlier life
  auto& p = st.peers[ns.name()];
  if (found == st.peers.end() || ns.incarnation() > p.incarnation || p.incarnation == 0) {
    bool rejoined = found != st.peers.end();
    p = Peer{};
    p.name = ns.name();
    p.incarnation = ns.incarnation();
    p.status = ns.status();
    p.status_since = now;
    spdlog::info("cluster: member {} at {} {} ({})", ns.name(), ns.address(), rejoined ? "rejoined" : "joined", p.status);
  } else {
    auto before = p.status;
    p.status = later_status(p.status, ns.status());
    if (before != p.status) {
      p.status_since = now;
      spdlog::info("cluster: member {} is {}", p.name, p.status);
    }
  }
  p.address = ns.address();
  p.http = ns.http_address();
  p.version = ns.version();
  p.cpu = ns.cpu_percent();
  p.memory = ns.memory_bytes();
  p.running = ns.running_tasks();
  p.queued = ns.queued_tasks();
  bool new_handle = p.manager != from_manager;
  if (new_handle) {
    p.manager = from_manager;
    self->monitor(from_manager);
  }
  p.scheduler = from_scheduler;
  if (!p.reachable) {
    if (p.unreachable_since && p.last_seen) spdlog::info("cluster: member {} is reachable again", p.name);
    p.reachable = true;
  }
  p.last_seen = now;
  std::vector<AgentRecord> agents;
  std::vector<std::string> breakers;
  for (const auto& a : ns.agents()) {
    agents.push_back(from_proto(a));
    breakers.push_back(a.breaker());
  }
  p.agents = std::move(agents);
  p.breakers = std::move(breakers);
  for (const auto& m : ns.members()) merge_member(self, m, now);
  if (new_handle)
    self->send(from_manager, gossip_atom::value, state_bytes(self), caf::actor_cast<caf::actor>(self), st.scheduler);
  push_view(self);  // the scheduler's view changes with every heartbeat (agents' load)
}

std::string shown_status(const Peer& p) {
  return (p.status == "up" || p.status == "joining") && !p.reachable && p.last_seen ? "unreachable" : p.status;
}

void update_gauges(Manager* self, int64_t now) {
  namespace m = metrics::names;
  auto& registry = metrics::Registry::global();
  std::map<std::string, int> counts{{"up", 0}, {"joining", 0}, {"unreachable", 0}, {"leaving", 0}, {"down", 0}, {"removed", 0}};
  counts[self->state.status] += 1;
  for (const auto& [name, p] : self->state.peers) {
    counts[shown_status(p)] += 1;
    if (p.last_seen)
      registry.gauge(m::cluster_heartbeat_age, "Seconds since the last heartbeat from each member", {{"member", name}})
          .set(double(now - p.last_seen) / 1000.0);
  }
  for (const auto& [status, n] : counts)
    registry.gauge(m::cluster_members, "Cluster members as this node sees them, by status", {{"status", status}}).set(n);
}

void on_tick(Manager* self) {
  auto& st = self->state;
  auto now = now_ms();
  bool changed = false;
  if (now >= st.next_heartbeat) {
    st.next_heartbeat = now + st.o.heartbeat_ms;
    update_gauges(self, now);
    gossip_all(self);
    if (!st.report_pending) {
      st.report_pending = true;
      self->request(st.scheduler, std::chrono::seconds(10), local_report_atom::value)
          .then(
              [=](LocalReport& r) {
                self->state.report_pending = false;
                self->state.local = std::move(r);
              },
              [=](caf::error&) { self->state.report_pending = false; });
    }
  }
  for (auto& [name, p] : st.peers) {
    if (p.reachable && now - p.last_seen > st.o.failure_ms) {
      p.reachable = false;
      p.unreachable_since = now;
      changed = true;
      spdlog::warn("cluster: member {} is unreachable (no heartbeat for {} ms)", name, now - p.last_seen);
    }
  }
  auto leader = leader_of(st);
  if (leader != st.leader_seen) {
    spdlog::info("cluster: leader is {}", leader.empty() ? "(none)" : leader);
    st.leader_seen = leader;
  }
  if (leader == st.o.name) {
    for (auto& [name, p] : st.peers) {
      if (!alive_status(p.status) || p.reachable || now - p.unreachable_since < st.o.down_after_ms) continue;
      p.status = "down";
      p.status_since = now;
      changed = true;
      spdlog::warn("cluster: downing member {} (unreachable for {} ms); its tasks go to the others", name,
                   now - p.unreachable_since);
      self->send(st.scheduler, node_down_atom::value, name);
      metrics::Registry::global().counter(metrics::names::cluster_downed, "Members this node downed as the cluster's leader").inc();
    }
  }
  for (auto it = st.peers.begin(); it != st.peers.end();) {
    auto& p = it->second;
    if (!alive_status(p.status) && !p.reachable && now - p.status_since > kForgetAfterMs) {
      spdlog::info("cluster: forgetting member {} ({})", it->first, p.status);
      it = st.peers.erase(it);
      changed = true;
    } else {
      ++it;
    }
  }
  if (now >= st.next_connect) {
    st.next_connect = now + kConnectEveryMs;
    for (const auto& seed : st.o.seeds) {
      bool known = false;
      for (const auto& [name, p] : st.peers) known |= p.address == seed && p.manager && p.reachable;
      if (!known) connect(self, seed);
    }
    for (const auto& [name, p] : st.peers)
      if (alive_status(p.status) && !p.manager && !p.address.empty()) connect(self, p.address);
  }
  if (changed) {
    push_view(self);
    gossip_all(self);
  }
}

json node_json(const std::string& name, const std::string& address, const std::string& http, const std::string& status,
               const std::string& role, size_t agents, int running, int queued, double cpu, int64_t memory,
               int64_t age_ms, int64_t incarnation, const std::string& version, bool self) {
  return json{{"name", name},
              {"address", address},
              {"http_address", http},
              {"status", status},
              {"role", role},
              {"agents", agents},
              {"running_tasks", running},
              {"queued_tasks", queued},
              {"cpu_percent", cpu},
              {"memory_bytes", memory},
              {"last_heartbeat_age_ms", age_ms},
              {"incarnation", incarnation},
              {"started_at", rfc3339(incarnation)},
              {"version", version},
              {"self", self}};
}

std::string nodes_json(Manager* self) {
  auto& st = self->state;
  auto now = now_ms();
  auto leader = leader_of(st);
  auto load = st.o.load ? st.o.load() : NodeLoad{};
  json nodes = json::array();
  nodes.push_back(node_json(st.o.name, st.address, st.o.http_address, st.status, leader == st.o.name ? "leader" : "member",
                            st.local.agents.size(), st.local.running, st.local.queued, load.cpu_percent,
                            load.memory_bytes, 0, st.incarnation, st.o.version, true));
  for (const auto& [name, p] : st.peers) {
    nodes.push_back(node_json(name, p.address, p.http, shown_status(p), leader == name ? "leader" : "member", p.agents.size(),
                              p.running, p.queued, p.cpu, p.memory, p.last_seen ? now - p.last_seen : -1, p.incarnation,
                              p.version, false));
  }
  size_t up = 0;
  for (const auto& n : nodes) up += n["status"] == "up";
  return json{{"enabled", true}, {"self", st.o.name}, {"leader", leader}, {"members", nodes.size()}, {"up", up}, {"nodes", nodes}}
      .dump();
}

// Puts every change of a member's status (as shown to operators) on the event feed.
void publish_membership(Manager* self) {
  auto& st = self->state;
  auto note = [&](const std::string& name, const std::string& status) {
    auto& last = st.published[name];
    if (last == status) return;
    EventFeed::global().publish("membership", {{"node", name}, {"from", last.empty() ? json() : json(last)}, {"to", status},
                                               {"observer", st.o.name}});
    last = status;
  };
  note(st.o.name, st.status);
  for (const auto& [name, p] : st.peers) note(name, shown_status(p));
}

caf::behavior node_manager(Manager* self, ClusterOptions options, caf::actor scheduler) {
  auto& st = self->state;
  st.o = std::move(options);
  st.scheduler = std::move(scheduler);
  st.incarnation = now_ms();
  st.trusted = &TrustedNodes::of(self->system());
  self->welcome_strangers();  // they prove themselves here; every handler checks
  self->describe("cluster", st.o.name, nullptr, true);
  auto advertise = st.o.advertise_host;
  if (advertise.empty()) {
    advertise = st.o.host;
    if (advertise == "0.0.0.0" || advertise == "::") {
      char hostname[256] = {0};
      gethostname(hostname, sizeof hostname - 1);
      advertise = hostname;
    }
  }
  st.address = advertise + ":" + std::to_string(st.o.port);
  self->set_down_handler([=](caf::down_msg& dm) {
    auto& st = self->state;
    for (auto& [name, p] : st.peers) {
      if (!p.manager || p.manager.address() != dm.source) continue;
      p.manager = nullptr;
      p.scheduler = nullptr;
      auto now = now_ms();
      if (p.status == "leaving") {
        p.status = "removed";
        p.status_since = now;
        spdlog::info("cluster: member {} left", name);
      } else if (p.reachable) {
        spdlog::warn("cluster: member {} is unreachable (connection lost: {})", name, self->system().render(dm.reason));
      }
      if (p.reachable) p.unreachable_since = now;
      p.reachable = false;
      push_view(self);
      gossip_all(self);
    }
  });
  self->send(self, cluster_tick_atom::value);
  return {
      [=](hello_atom, const std::string& joiner, const std::string& nonce)
          -> caf::result<std::string, std::string, std::string> {
        auto& st = self->state;
        const auto& sender = self->current_sender();
        if (!sender || nonce.size() != 64 || joiner.empty() || joiner.size() > 64)
          return caf::make_error(caf::sec::runtime_error, "refused|malformed hello");
        auto now = now_ms();
        std::erase_if(st.challenges, [&](const auto& kv) { return kv.second.expires_ms < now; });
        if (st.challenges.size() >= 256) return caf::make_error(caf::sec::runtime_error, "refused|too many joins at once");
        auto ours = random_nonce();
        st.challenges[sender->node()] = Challenge{joiner, nonce, ours, now + 10000};
        return caf::result<std::string, std::string, std::string>(st.o.name, ours,
                                                                  proof(st.o.secret, "member", joiner, nonce, st.o.name, ours));
      },
      [=](prove_atom, const std::string& joiner_proof) -> caf::result<bool> {
        auto& st = self->state;
        const auto& sender = self->current_sender();
        if (!sender) return caf::make_error(caf::sec::runtime_error, "refused|anonymous proof");
        auto it = st.challenges.find(sender->node());
        if (it == st.challenges.end() || it->second.expires_ms < now_ms())
          return caf::make_error(caf::sec::runtime_error, "refused|no hello, or it expired");
        auto c = it->second;
        st.challenges.erase(it);
        if (!same_proof(joiner_proof, proof(st.o.secret, "joiner", c.name, c.their_nonce, st.o.name, c.our_nonce))) {
          refuse_stranger(self, "a wrong proof of membership (as \"" + c.name + "\")");
          return caf::make_error(caf::sec::runtime_error, "refused|wrong proof: the cluster secrets differ");
        }
        st.trusted->add(sender->node());
        spdlog::info("cluster: {} proved its membership", c.name);
        return true;
      },
      [=](gossip_atom, const std::string& bytes, caf::actor from_manager, caf::actor from_scheduler) {
        if (from_stranger(self) || !self->current_sender() || from_manager.node() != self->current_sender()->node())
          return refuse_stranger(self, "a heartbeat");
        on_gossip(self, bytes, std::move(from_manager), std::move(from_scheduler));
      },
      [=](cluster_tick_atom) {
        on_tick(self);
        publish_membership(self);
        self->delayed_send(self, std::chrono::milliseconds(kTickMs), cluster_tick_atom::value);
      },
      [=](nodes_atom) -> caf::result<std::string> {
        if (from_stranger(self)) return refuse_stranger(self, "a membership query"), caf::make_error(caf::sec::runtime_error, "refused|not a member");
        return nodes_json(self);
      },
      [=](introspection::introspect_atom) -> caf::result<std::string> {
        if (from_stranger(self)) return caf::make_error(caf::sec::runtime_error, "refused|not a member");
        return nodes_json(self);
      },
      [=](leaving_atom) -> caf::result<bool> {
        if (from_stranger(self)) return caf::make_error(caf::sec::runtime_error, "refused|not a member");
        auto& st = self->state;
        if (st.status != "leaving") spdlog::info("cluster: leaving (telling {} members)", st.peers.size());
        st.status = "leaving";
        gossip_all(self);
        return true;
      },
      [=](leave_atom, const std::string& name) -> caf::result<std::string> {
        if (from_stranger(self)) return refuse_stranger(self, "a leave request"), caf::make_error(caf::sec::runtime_error, "refused|not a member");
        auto& st = self->state;
        if (name == st.o.name) {
          spdlog::info("cluster: asked to leave: draining, then stopping");
          if (st.o.on_leave) st.o.on_leave();
          return std::string("leaving");
        }
        auto it = st.peers.find(name);
        if (it == st.peers.end())
          return caf::make_error(caf::sec::runtime_error, "not_found|no member named " + name);
        if (!it->second.manager || !it->second.reachable)
          return caf::make_error(caf::sec::runtime_error, "unavailable|member " + name + " is not reachable");
        self->delegate(it->second.manager, leave_atom::value, name);
        return caf::delegated<std::string>{};
      },
      // Introspection across members: over the cluster connection, as nodes.
      [=](cluster_actors_atom, const std::string& query, const std::string& only) -> caf::result<std::string> {
        if (self->current_sender() && self->current_sender()->node() != self->node())
          return caf::make_error(caf::sec::runtime_error, "refused|for this node's own gateway");
        auto& st = self->state;
        auto rp = self->make_response_promise<std::string>();
        struct Gathered {
          json pages = json::array();
          json unreachable = json::array();
          size_t waiting = 0;
        };
        auto g = std::make_shared<Gathered>();
        std::vector<std::pair<std::string, caf::actor>> ask;
        for (const auto& [name, p] : st.peers) {
          if (!only.empty() && name != only) continue;
          auto status = shown_status(p);
          if (!p.manager || status == "down" || status == "removed" || status == "unreachable") {
            g->unreachable.push_back({{"node", name}, {"reason", "node is " + status}});
            continue;
          }
          ask.emplace_back(name, p.manager);
        }
        g->waiting = ask.size();
        auto finish = [=]() mutable {
          rp.deliver(json{{"pages", g->pages}, {"unreachable", g->unreachable}}.dump());
        };
        if (ask.empty()) finish();
        for (const auto& [name, manager] : ask) {
          self->request(manager, std::chrono::seconds(5), peer_actors_atom::value, query)
              .then(
                  [=](const std::string& page) mutable {
                    auto v = json::parse(page, nullptr, false);
                    if (v.is_object()) g->pages.push_back({{"node", name}, {"page", v}});
                    if (--g->waiting == 0) finish();
                  },
                  [=](caf::error& err) mutable {
                    g->unreachable.push_back({{"node", name}, {"reason", self->system().render(err)}});
                    if (--g->waiting == 0) finish();
                  });
        }
        return rp;
      },
      [=](peer_actors_atom, const std::string& query) -> caf::result<std::string> {
        if (from_stranger(self)) return refuse_stranger(self, "an actor listing"), caf::make_error(caf::sec::runtime_error, "refused|not a member");
        auto q = json::parse(query, nullptr, false);
        introspection::ActorQuery aq;
        if (q.is_object()) {
          aq.kind = q.value("kind", "");
          aq.sort = q.value("sort", "");
          aq.limit = std::clamp<size_t>(q.value("limit", size_t(100)), 1, 10000);
        }
        return introspection::actors_page(introspection::Registry::of(self->system()), aq);
      },
      [=](peer_actor_atom, const std::string& node, uint64_t id) -> caf::result<std::string> {
        if (from_stranger(self)) return refuse_stranger(self, "an actor query"), caf::make_error(caf::sec::runtime_error, "refused|not a member");
        if (node != self->state.o.name) return pass_on(self, node, peer_actor_atom::value, node, id);
        auto& registry = introspection::Registry::of(self->system());
        auto detail = introspection::actor_detail(registry, id);
        if (detail.empty()) return caf::make_error(caf::sec::runtime_error, "not_found|no live actor " + std::to_string(id) + " on node " + node);
        auto out = json::parse(detail);
        auto probe = registry.find(id);
        auto handle = probe && out.value("inspectable", false) ? caf::actor_cast<caf::actor>(probe->address()) : caf::actor{};
        out.erase("inspectable");
        if (!handle) {
          out["summary"] = nullptr;
          return out.dump();
        }
        auto rp = self->make_response_promise<std::string>();
        self->request(handle, std::chrono::seconds(2), introspection::introspect_atom::value)
            .then(
                [=](const std::string& summary) mutable {
                  auto v = out;
                  auto parsed = json::parse(summary, nullptr, false);
                  v["summary"] = parsed.is_discarded() ? json() : parsed;
                  rp.deliver(v.dump());
                },
                [=](caf::error& err) mutable {
                  auto v = out;
                  v["summary"] = {{"unavailable", self->system().render(err)}};
                  rp.deliver(v.dump());
                });
        return rp;
      },
      [=](peer_kill_atom, const std::string& node, uint64_t id) -> caf::result<std::string> {
        if (from_stranger(self)) return refuse_stranger(self, "a kill request"), caf::make_error(caf::sec::runtime_error, "refused|not a member");
        if (node != self->state.o.name) return pass_on(self, node, peer_kill_atom::value, node, id);
        std::string why;
        auto killed = introspection::kill_actor(introspection::Registry::of(self->system()), id, &why);
        if (killed.empty()) return caf::make_error(caf::sec::runtime_error, why);
        return killed;
      },
  };
}

}  // namespace

ClusterStart start_cluster(caf::actor_system& system, ClusterOptions options, caf::actor scheduler) {
  ClusterStart out;
  auto host = options.host;
  auto port = options.port;
  auto options_tls = options.tls;
  out.manager = system.spawn<caf::detached>(node_manager, std::move(options), std::move(scheduler));
  auto published = options_tls ? caf::openssl::publish(out.manager, uint16_t(port), host.c_str(), true)
                               : system.middleman().publish(out.manager, uint16_t(port), host.c_str(), true);
  if (!published) {
    out.error = "cluster: cannot listen on " + host + ":" + std::to_string(port) + ": " + system.render(published.error());
    caf::anon_send_exit(out.manager, caf::exit_reason::user_shutdown);
    out.manager = nullptr;
  }
  return out;
}

std::string single_node_json(const std::string& name, const std::string& http_address, const LocalReport& local,
                             const NodeLoad& load, int64_t started_ms, const std::string& version) {
  json nodes = json::array();
  nodes.push_back(node_json(name, "", http_address, "up", "leader", local.agents.size(), local.running, local.queued,
                            load.cpu_percent, load.memory_bytes, 0, started_ms, version, true));
  return json{{"enabled", false}, {"self", name}, {"leader", name}, {"members", 1}, {"up", 1}, {"nodes", nodes}}.dump();
}

std::string encode_task(const TaskRecord& t) {
  proto::Task p;
  p.set_id(t.id);
  p.set_title(t.title);
  p.set_description(t.description);
  p.set_type(t.type);
  p.set_priority(t.priority);
  for (const auto& r : t.required_capabilities) {
    auto* pr = p.add_required_capabilities();
    pr->set_name(r.name);
    pr->set_minimum_proficiency(r.minimum_proficiency);
  }
  p.set_payload_json(t.payload_json);
  p.set_status(t.status);
  p.set_attempts(t.attempts);
  p.set_max_attempts(t.max_attempts);
  p.set_timeout_ms(t.timeout_ms);
  p.set_idempotency_key(t.idempotency_key);
  p.set_assigned_agent(t.assigned_agent);
  p.set_node(t.node);
  p.set_created_at(t.created_at);
  p.set_updated_at(t.updated_at);
  p.set_started_at(t.started_at);
  return p.SerializeAsString();
}

bool decode_task(const std::string& bytes, TaskRecord& t) {
  proto::Task p;
  if (!p.ParseFromString(bytes)) return false;
  t.id = p.id();
  t.title = p.title();
  t.description = p.description();
  t.type = p.type();
  t.priority = p.priority();
  t.required_capabilities.clear();
  for (const auto& r : p.required_capabilities()) t.required_capabilities.push_back({r.name(), r.minimum_proficiency()});
  t.payload_json = p.payload_json();
  t.status = p.status();
  t.attempts = p.attempts();
  t.max_attempts = p.max_attempts();
  t.timeout_ms = p.timeout_ms();
  t.idempotency_key = p.idempotency_key();
  t.assigned_agent = p.assigned_agent();
  t.node = p.node();
  t.created_at = p.created_at();
  t.updated_at = p.updated_at();
  t.started_at = p.started_at();
  return true;
}

}  // namespace hub::runtime
