// The node's introspection registry: one entry (a Probe) per actor the runtime spawns, with
// what the console and /api/actors show (kind, name, parent, state, mailbox size, messages
// handled, errors, last message, handling time) and, while someone traces the actor, a
// bounded ring of the messages it handles. Read-mostly and shared between threads: the
// owning actor writes its probe (atomics and one small lock), readers take snapshots.
// Knows no actor kinds (they are strings) and no HTTP; never blocks an actor.
#pragma once

#include <caf/actor_addr.hpp>
#include <caf/atom.hpp>
#include <caf/fwd.hpp>

#include <atomic>
#include <functional>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace hub::runtime::introspection {

// (introspect_atom) -> std::string: the JSON summary of an actor's own state; answered by
// actors that describe() themselves as inspectable.
using introspect_atom = caf::atom_constant<caf::atom("introspect")>;

// One message an actor handled, recorded while the actor is traced.
struct TraceEvent {
  uint64_t seq = 0;
  int64_t at_ms = 0;
  std::string type;    // the leading atom (e.g. "execute"), or the message type's name
  std::string sender;  // "kind name (#id)" for a local actor, "#id@node" otherwise, "" when anonymous
  size_t size = 0;     // bytes of the message's text rendering
  int64_t handling_us = 0;
};

// A copy of one probe at one moment.
struct ActorInfo {
  uint64_t id = 0;
  std::string kind;
  std::string name;
  std::string state;
  uint64_t parent = 0;  // the supervisor or owner actor's id; 0 when none
  int64_t started_ms = 0;
  int64_t last_message_ms = 0;  // 0 until the first message
  uint64_t messages = 0;
  uint64_t errors = 0;
  uint64_t mailbox = 0;  // messages waiting, as of the last one it handled
  double busy_ms = 0;    // total time spent handling messages
  bool inspectable = false;  // answers (inspect_atom) with a JSON summary of its own state
  int tracers = 0;
};

class Probe {
 public:
  Probe(uint64_t id, caf::actor_addr address, int64_t started_ms);

  // Called by the owning actor only (single writer: its counters are not read-modify-written).
  void describe(std::string kind, std::string name, uint64_t parent, bool inspectable);
  void set_state(const std::string& state);
  void set_parent(uint64_t parent) { parent_ = parent; }
  void note_error() { errors_.store(errors_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed); }
  bool tracing() const { return tracers_.load(std::memory_order_relaxed) > 0; }
  // While tracing: whether this message is recorded (sampling and the rate bound decide),
  // so that only recorded messages pay for being described.
  bool admit_trace();
  // What a trace records of a message, taken before the handler runs (handlers may move
  // its content and sender away).
  TraceEvent describe_message(const caf::mailbox_element& message) const;
  // `traced`: describe_message() of this message when tracing, else null.
  void handled(int64_t handling_ns, size_t mailbox, bool dropped, TraceEvent* traced);

  // Tracing. REQUIRES: every start_trace is matched by one stop_trace.
  // `sample`: record every n-th message; `max_per_second`: a bound on recorded events.
  void start_trace(int sample, int max_per_second);
  void stop_trace();
  // Events with seq > after (oldest first, at most `max`); *lost counts events that
  // were overwritten or over the rate bound since `after`.
  std::vector<TraceEvent> trace_after(uint64_t after, size_t max, uint64_t* lost) const;

  ActorInfo info() const;
  uint64_t id() const { return id_; }
  const caf::actor_addr& address() const { return address_; }
  std::string label() const;

  // Set by the registry: how a sender id becomes a readable label.
  class Registry* registry = nullptr;

 private:
  const uint64_t id_;
  const caf::actor_addr address_;
  const int64_t started_ms_;
  mutable std::mutex mutex_;  // guards the strings and the trace ring
  std::string kind_ = "actor";
  std::string name_;
  std::string state_;
  bool inspectable_ = false;
  std::atomic<uint64_t> parent_{0};
  std::atomic<uint64_t> messages_{0};
  std::atomic<uint64_t> errors_{0};
  std::atomic<uint64_t> mailbox_{0};
  std::atomic<int64_t> last_message_ms_{0};
  std::atomic<int64_t> busy_ns_{0};
  std::atomic<int> tracers_{0};
  std::atomic<int> sample_{1};
  std::atomic<int> max_per_second_{1000};
  // Trace ring (under mutex_).
  std::vector<TraceEvent> ring_;
  uint64_t next_seq_ = 1;
  uint64_t over_rate_ = 0;
  int64_t window_start_ms_ = 0;
  int window_count_ = 0;
  uint64_t sample_counter_ = 0;
};

struct ActorQuery {
  std::string kind;  // "" for all
  std::string sort;  // "" (id), "mailbox", "messages", "errors"
  size_t limit = 100;
};

class Registry {
 public:
  // The registry of one actor system (created on first use; one per node).
  static Registry& of(caf::actor_system& system);

  void set_node(std::string node);
  std::string node() const;

  std::shared_ptr<Probe> add(uint64_t id, caf::actor_addr address);
  void remove(uint64_t id);
  std::shared_ptr<Probe> find(uint64_t id) const;
  // Matching actors, sorted (largest first for a counter) and cut to the limit;
  // *total: how many matched before the cut.
  std::vector<ActorInfo> list(const ActorQuery& query, size_t* total) const;
  size_t size() const;
  // Live actors per kind.
  std::vector<std::pair<std::string, size_t>> count_by_kind() const;
  // A readable label for any actor id ("agent worker-1 (#12)"), for trace senders.
  std::string label_of(uint64_t id) const;
  caf::actor_system* system() const { return system_; }

  // Entries that are not actors yet: the scheduler keeps a queued task as a record until it is
  // placed (then its actor starts). They list as kind "task", state "pending", with ids from
  // kRecordIds up (never an actor's), and have no detail, trace or kill of their own.
  static constexpr uint64_t kRecordIds = uint64_t(1) << 62;
  struct Records {
    std::function<size_t()> count;
    std::function<void(std::vector<ActorInfo>&)> list;
  };
  void set_records(Records records);

 private:
  std::vector<ActorInfo> records() const;
  mutable std::mutex records_mutex_;
  Records records_;
  caf::actor_system* system_ = nullptr;
  static constexpr size_t kShards = 16;
  struct Shard {
    mutable std::mutex mutex;
    std::unordered_map<uint64_t, std::shared_ptr<Probe>> probes;
  };
  Shard shards_[kShards];
  mutable std::mutex node_mutex_;
  std::string node_;
};

// What /api/actors shows, as JSON text: the same views for this node's own actors (the
// gateway) and for a peer that asks through the cluster connection (the node manager).
// {"actors": [...], "total": N, "by_kind": {"<node>": {"<kind>": n}}}
std::string actors_page(const Registry& registry, const ActorQuery& query);
// One actor with its parent (no summary: the caller asks the actor for it); "" when gone.
std::string actor_detail(const Registry& registry, uint64_t id);
// Kills an actor that has a supervisor or owner to restart it. Returns the JSON of what was
// killed, or an empty string with *why set: "not_found|..." or "conflict|...".
std::string kill_actor(const Registry& registry, uint64_t id, std::string* why);

}  // namespace hub::runtime::introspection
