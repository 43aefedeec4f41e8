#include "actors/scheduler.hpp"

#include "actors/agent.hpp"
#include "actors/neural/worker.hpp"
#include "actors/remote_agent.hpp"
#include "actors/task.hpp"
#include "actors/supervisor.hpp"
#include "actors/task_protocol.hpp"
#include "runtime/breaker.hpp"
#include "runtime/cluster.hpp"
#include "runtime/clock.hpp"
#include "runtime/instrumented.hpp"
#include "runtime/introspection.hpp"
#include "runtime/metrics.hpp"
#include "runtime/store/store_actor.hpp"

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/response_promise.hpp>
#include <caf/sec.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <array>
#include <cmath>
#include <set>
#include <list>
#include <mutex>
#include <unordered_map>

namespace hub::actors {

using json = nlohmann::json;
using runtime::AgentRecord;
using runtime::RequiredCapability;
using runtime::TaskRecord;

double fitness(const AgentRecord& agent, const std::vector<RequiredCapability>& required) {
  if (required.empty()) return 0.5;
  double sum = 0;
  for (const auto& need : required) {
    auto it = std::find_if(agent.capabilities.begin(), agent.capabilities.end(),
                           [&](const runtime::Capability& c) { return c.name == need.name; });
    if (it == agent.capabilities.end() || it->proficiency < need.minimum_proficiency) return -1;
    sum += it->proficiency;
  }
  return sum / double(required.size());
}

namespace {

constexpr size_t kScanLimit = 2048;  // queued tasks examined per priority per dispatch

caf::error refusal(const std::string& code, const std::string& message) {
  return caf::make_error(caf::sec::runtime_error, code + kErrorSeparator + message);
}

struct AgentEntry {
  caf::actor handle;
  AgentRecord record;
  int reserved = 0;  // slots taken by assigned attempts
  std::shared_ptr<runtime::CircuitBreaker> breaker;           // the agent's
  std::shared_ptr<runtime::CircuitBreaker> endpoint_breaker;  // its executor endpoint's, if any
};

// An agent of another node (the cluster-wide directory, from the node manager's heartbeats).
struct RemoteAgent {
  AgentRecord record;
  std::string node;
  std::string breaker = "closed";
  int reserved = 0;  // our attempts on it now (a refusal for lack of a slot makes the task avoid it)
};

struct RemoteNode {
  caf::actor scheduler;
  caf::actor proxy;  // the stand-in our task actors talk to (actors/remote_agent.hpp)
  bool usable = false;  // up and reachable
};

// An attempt this node runs for a task owned by another node.
struct RemoteRun {
  std::string agent_id;
  caf::response_promise rp;
};

// What learned routing knows of one agent, or of one (agent, task type) pair: running means.
struct RouteStats {
  double success = 0.5;
  double log_ms = 0.3;  // log1p(ms) / 10
  int64_t n = 0;
  void add(bool ok, int64_t ms) {
    double a = n < 20 ? 1.0 / double(n + 1) : 0.05;
    success += a * ((ok ? 1.0 : 0.0) - success);
    log_ms += a * (std::log1p(double(std::max<int64_t>(0, ms))) / 10.0 - log_ms);
    ++n;
  }
};

constexpr int kRouteFeatures = 16;

// Queued tasks without an actor yet: the scheduler starts a task's actor when it places the
// task (or when someone asks the task itself: wait, cancel). Until then the task is this
// record and its entry in a priority queue. Shared with the introspection registry, which
// lists them (as pending tasks) from other threads.
struct QueuedRecords {
  struct Entry {
    uint64_t listing_id = 0;  // its id in /api/actors (introspection::Registry::kRecordIds and up)
    int64_t since_ms = 0;
    TaskRecord record;
  };
  mutable std::mutex mutex;
  std::unordered_map<std::string, Entry> by_id;
  uint64_t next_listing_id = runtime::introspection::Registry::kRecordIds;
};

struct SchedulerState {
  SchedulerOptions options;
  std::shared_ptr<QueuedRecords> records = std::make_shared<QueuedRecords>();
  // Learned routing ([neural] mode = "advanced").
  std::unordered_map<std::string, RouteStats> agent_stats;  // by agent id
  std::unordered_map<std::string, RouteStats> pair_stats;   // by agent id + '\n' + task type
  std::unordered_map<std::string, std::pair<float, float>> predictions;  // same key: (success, log1p(ms)/10)
  std::vector<float> route_x, route_y;  // attempts not yet learned from
  std::set<std::string> task_types;
  bool routing_in_flight = false;
  int64_t routing_updates = 0;
  int64_t caps_samples = 0;  // tasks the capability model has been sent
  std::set<std::string> routed_agents;  // the agents learned routing follows (at most routing_max_agents)
  std::unordered_map<std::string, RemoteAgent> remote_agents;
  std::unordered_map<std::string, RemoteNode> remote_nodes;
  std::unordered_map<std::string, RemoteRun> remote_runs;  // task id -> run (for other nodes)
  caf::actor store;
  std::unordered_map<std::string, AgentEntry> agents;
  std::vector<caf::actor> retiring;  // deleted agents finishing their last tasks
  std::unordered_map<std::string, caf::actor> live;         // task id -> task actor (null: a queued record)
  std::unordered_map<std::string, std::string> live_keys;   // idempotency key -> task id
  std::unordered_map<std::string, std::string> key_of;      // task id -> idempotency key
  std::array<std::list<QueuedTask>, 4> queues;               // by priority rank
  std::list<QueuedTask> parked;                              // no agent could ever run these
  std::unordered_map<std::string, std::string> assigned_to;  // task id -> agent id
  // Assigned tasks with long timeouts (kWatchedTimeoutMs): id -> (deadline, task). The tick
  // tells each overdue one; the task checks its own clock.
  std::unordered_map<std::string, std::pair<int64_t, caf::actor>> watched;
  int running = 0;
  bool draining = false;
  std::vector<caf::response_promise> drain_waiters;
  std::array<int64_t, 60> done_per_second{};  // ring of finished tasks, by second
  std::array<int64_t, 60> done_second{};
  std::map<std::string, int64_t> finished_by_status;
  int64_t task_restarts = 0;
  int64_t next_lease_work_ms = 0;
  bool claiming = false;
  bool booted = false;  // leases are claimed only once boot recovery has spawned its tasks
  int64_t placement_now_ms = 0;  // one clock read per dispatch
  static inline const char* name = "scheduler";
};

using SchedulerActor = runtime::Instrumented<SchedulerState>;

std::string pair_key(const std::string& agent_id, const std::string& type) { return agent_id + '\n' + type; }

// The features of placing a task of `type` on `agent`, from what is known now.
void route_features(const SchedulerState& st, const AgentEntry& a, const std::string& type, int priority_rank, float* f) {
  double proficiency = 0;
  for (const auto& c : a.record.capabilities) proficiency += c.proficiency;
  proficiency = a.record.capabilities.empty() ? 0.5 : proficiency / double(a.record.capabilities.size());
  static const RouteStats none;
  auto as = st.agent_stats.find(a.record.id);
  auto ps = st.pair_stats.find(pair_key(a.record.id, type));
  const auto& agent = as == st.agent_stats.end() ? none : as->second;
  const auto& pair = ps == st.pair_stats.end() ? agent : ps->second;
  f[0] = float(proficiency);
  f[1] = float(agent.success);
  f[2] = float(agent.log_ms);
  f[3] = float(pair.success);
  f[4] = float(pair.log_ms);
  f[5] = float(std::log1p(double(ps == st.pair_stats.end() ? 0 : ps->second.n)) / 5.0);
  f[6] = float(priority_rank) / 3.0f;
  f[7] = float(a.reserved) / float(std::max(1, a.record.max_concurrent_tasks));
  for (int i = 8; i < kRouteFeatures; ++i) f[i] = 0;
  f[8 + std::hash<std::string>{}(type) % 8] = 1;
}

bool placeable(const AgentEntry& a, int64_t now_ms) {
  const auto& s = a.record.state;
  return !a.record.deleted && s != "inactive" && s != "failed" && a.reserved < a.record.max_concurrent_tasks &&
         a.breaker->admits(now_ms) && (!a.endpoint_breaker || a.endpoint_breaker->admits(now_ms));
}

bool remote_usable(const SchedulerState& st, const RemoteAgent& a) {
  auto n = st.remote_nodes.find(a.node);
  return n != st.remote_nodes.end() && n->second.usable && n->second.proxy;
}

bool could_ever_run(SchedulerState& st, const QueuedTask& t) {
  for (const auto& [id, a] : st.agents)
    if (!a.record.deleted && fitness(a.record, t.required) >= 0) return true;
  for (const auto& [id, a] : st.remote_agents)
    if (remote_usable(st, a) && fitness(a.record, t.required) >= 0) return true;
  return false;
}

// A remote agent with a free slot, as far as its last heartbeat and our own attempts tell.
bool remote_placeable(const SchedulerState& st, const RemoteAgent& a) {
  const auto& s = a.record.state;
  int load = std::max(a.record.running_tasks, a.reserved);
  return remote_usable(st, a) && s != "inactive" && s != "failed" && a.breaker != "open" &&
         load < a.record.max_concurrent_tasks;
}

// Local agents first; a remote one when no local agent fits or all that fit are busy.
RemoteAgent* best_remote_agent(SchedulerState& st, const QueuedTask& t) {
  RemoteAgent* best = nullptr;
  double best_score = -1;
  for (auto& [id, a] : st.remote_agents) {
    if (id == t.avoid_agent || !remote_placeable(st, a)) continue;
    double fit = fitness(a.record, t.required);
    if (fit < 0) continue;
    int load = std::max(a.record.running_tasks, a.reserved);
    double score = 0.7 * fit + 0.3 * (1.0 - double(load) / double(std::max(1, a.record.max_concurrent_tasks)));
    if (score > best_score) best_score = score, best = &a;
  }
  return best;
}

AgentEntry* best_agent(SchedulerState& st, const QueuedTask& t, bool& only_avoided) {
  AgentEntry* best = nullptr;
  AgentEntry* avoided = nullptr;  // the agent of the last failed attempt: only if nothing else fits
  double best_score = -1;
  for (auto& [id, a] : st.agents) {
    if (!placeable(a, st.placement_now_ms)) continue;
    if (!t.avoid_agent.empty() && id == t.avoid_agent) {
      if (fitness(a.record, t.required) >= 0) avoided = &a;
      continue;
    }
    double fit = fitness(a.record, t.required);
    if (fit < 0) continue;
    double free_share = 1.0 - double(a.reserved) / double(std::max(1, a.record.max_concurrent_tasks));
    double score = 0.7 * fit + 0.3 * free_share;
    if (st.options.learned_routing) {
      // Learned: the shortest expected time to a success (duration / chance of success), a
      // little longer the busier the agent; 1 + the heuristic score only breaks ties.
      if (auto p = st.predictions.find(pair_key(id, t.type)); p != st.predictions.end()) {
        double success = std::clamp(double(p->second.first), 0.02, 1.0);
        double ms = std::max(1.0, std::expm1(double(p->second.second) * 10.0));
        double expected = ms / success * (1.0 + 0.5 * (1.0 - free_share));
        score = 2.0 + 1000.0 / (1.0 + expected) + 0.001 * score;
      }
    }
    if (score > best_score) best_score = score, best = &a;
  }
  only_avoided = !best && avoided;
  return best ? best : avoided;
}

void watch(SchedulerState& st, const QueuedTask& t) {
  if (t.timeout_ms >= kWatchedTimeoutMs) st.watched[t.id] = {st.placement_now_ms + t.timeout_ms, t.task};
}

// Tells every watched task whose deadline passed (again each tick until it is released).
void check_overdue(SchedulerActor* self) {
  auto& st = self->state;
  auto now = runtime::now_ms();
  for (auto it = st.watched.begin(); it != st.watched.end();) {
    if (!st.live.count(it->first)) {
      it = st.watched.erase(it);
      continue;
    }
    if (it->second.first <= now) self->send(it->second.second, overdue_atom::value);
    ++it;
  }
}

caf::actor start_task(SchedulerActor* self, const std::string& id, caf::actor agent, std::string agent_id);
void tell_no_match(SchedulerActor* self, const QueuedTask& t, bool unmatched);

void dispatch(SchedulerActor* self) {
  auto& st = self->state;
  if (st.draining) return;
  st.placement_now_ms = runtime::now_ms();
  // Free slots first: when every agent is full, no queued task can be placed, and scanning
  // thousands of them on every finished task made the scheduler the node's busiest actor.
  int local_free = 0;
  for (const auto& [id, a] : st.agents)
    if (placeable(a, st.placement_now_ms)) local_free += a.record.max_concurrent_tasks - a.reserved;
  bool remote_free = false;
  for (const auto& [id, a] : st.remote_agents)
    if (remote_placeable(st, a)) {
      remote_free = true;
      break;
    }
  for (auto& queue : st.queues) {
    size_t scanned = 0;
    for (auto it = queue.begin(); it != queue.end() && st.running < st.options.max_concurrent_tasks &&
                                  (local_free > 0 || remote_free);) {
      if (auto live = st.live.find(it->id); live == st.live.end() || live->second != it->task) {
        it = queue.erase(it);
        continue;
      }
      // A record is started on its agent below; without a record (started meanwhile) it is stale.
      auto place = [&](const caf::actor& agent, const std::string& agent_id) {
        if (it->task) {
          self->send(it->task, assign_atom::value, agent, agent_id);
          return true;
        }
        it->task = start_task(self, it->id, agent, agent_id);
        return bool(it->task);
      };
      bool only_avoided = false;
      auto* agent = best_agent(st, *it, only_avoided);
      if ((!agent || only_avoided) && !st.remote_agents.empty()) {
        if (auto* remote = best_remote_agent(st, *it)) {
          if (place(st.remote_nodes[remote->node].proxy, remote->record.id)) {
            remote->reserved += 1;
            st.running += 1;
            st.assigned_to[it->id] = remote->record.id;
            watch(st, *it);
          }
          it = queue.erase(it);
          continue;
        }
      }
      if (agent) {
        if (place(agent->handle, agent->record.id)) {
          agent->reserved += 1;
          local_free -= 1;
          st.running += 1;
          st.assigned_to[it->id] = agent->record.id;
          watch(st, *it);
        }
        it = queue.erase(it);
        continue;
      }
      if (!could_ever_run(st, *it)) {
        tell_no_match(self, *it, true);
        st.parked.splice(st.parked.end(), queue, it++);
        continue;
      }
      ++it;
      if (++scanned >= kScanLimit) break;
    }
  }
}

// Parked tasks go back to their queues when some agent could now run them.
void unpark(SchedulerActor* self) {
  auto& st = self->state;
  for (auto it = st.parked.begin(); it != st.parked.end();) {
    if (auto live = st.live.find(it->id); live == st.live.end() || live->second != it->task) {
      it = st.parked.erase(it);
      continue;
    }
    if (could_ever_run(st, *it)) {
      tell_no_match(self, *it, false);
      auto& queue = st.queues[size_t(std::clamp(it->priority_rank, 0, 3))];
      queue.splice(queue.end(), st.parked, it++);
      continue;
    }
    ++it;
  }
}

void release(SchedulerActor* self, const std::string& task_id) {
  auto& st = self->state;
  auto it = st.assigned_to.find(task_id);
  if (it == st.assigned_to.end()) return;
  if (auto a = st.agents.find(it->second); a != st.agents.end()) a->second.reserved -= 1;
  else if (auto r = st.remote_agents.find(it->second); r != st.remote_agents.end()) r->second.reserved -= 1;
  st.assigned_to.erase(it);
  st.watched.erase(task_id);
  st.running -= 1;
  if (st.draining && st.running == 0 && st.remote_runs.empty()) {
    for (auto& rp : st.drain_waiters) rp.deliver(true);
    st.drain_waiters.clear();
  }
}

// Starts an agent actor and hands it to the agent supervisor, with how to start it again.
caf::actor start_agent(SchedulerActor* self, const AgentRecord& record, bool restarted) {
  auto& st = self->state;
  auto* system = &self->system();
  auto me = caf::actor_cast<caf::actor>(self);
  auto handle = spawn_agent(*system, record, me, st.store, st.options.agent_options, restarted);
  if (st.options.agent_supervisor) {
    ChildSpec spec{record.id, "agent",
                   [system, record, me, store = st.store, options = st.options.agent_options] {
                     return spawn_agent(*system, record, me, store, options, true);
                   },
                   false};
    self->send(st.options.agent_supervisor, adopt_atom::value, std::move(spec), handle);
  }
  return handle;
}

void add_agent(SchedulerActor* self, AgentRecord record) {
  auto& st = self->state;
  auto handle = start_agent(self, record, false);
  auto id = record.id;
  auto& breakers = runtime::BreakerRegistry::global();
  AgentEntry entry{handle, std::move(record), 0, nullptr, nullptr};
  entry.breaker = breakers.get(agent_breaker_id(id), "agent", entry.record.name, st.options.agent_options.breaker);
  if (auto endpoint = executor_endpoint(entry.record.executor_json); !endpoint.empty())
    entry.endpoint_breaker = breakers.get(endpoint, "endpoint", endpoint, st.options.agent_options.breaker);
  st.agents[id] = std::move(entry);
}

AgentRecord live_view(const AgentEntry& a) {
  auto r = a.record;
  r.running_tasks = a.reserved;
  if (r.state != "inactive" && r.state != "failed") r.state = a.reserved > 0 ? "working" : "idle";
  return r;
}

AgentRecord pool_agent(const SchedulerOptions& options, const std::string& type, const std::string& capability, int n) {
  AgentRecord a;
  a.id = runtime::new_uuid();
  a.name = type + "-" + std::to_string(n);
  a.type = type;
  if (type == "specialist") a.specialization = capability;
  a.state = "idle";
  a.capabilities.push_back({capability, 0.8, 0.1});
  a.max_concurrent_tasks = options.default_agent_concurrency;
  a.node = options.node;
  a.created_at = a.updated_at = runtime::now_ms();
  return a;
}

// Starts the actor of a task held as a queued record, placed on `agent` when one is given (else
// it queues itself). Null when no record is held for `id` (its queue entry is stale).
caf::actor start_task(SchedulerActor* self, const std::string& id, caf::actor agent, std::string agent_id) {
  auto& st = self->state;
  TaskRecord record;
  {
    std::lock_guard<std::mutex> lock(st.records->mutex);
    auto it = st.records->by_id.find(id);
    if (it == st.records->by_id.end()) return {};
    record = std::move(it->second.record);
    st.records->by_id.erase(it);
  }
  auto actor = spawn_task(self->system(), std::move(record), caf::actor_cast<caf::actor>(self), st.store, std::move(agent),
                          std::move(agent_id));
  st.live[id] = actor;
  return actor;
}

// The actor of a live task, started now when the task is still a queued record.
caf::actor task_actor_of(SchedulerActor* self, const std::string& id) {
  auto it = self->state.live.find(id);
  if (it == self->state.live.end()) return {};
  if (it->second) return it->second;
  return start_task(self, id, {}, {});
}

// New pending tasks (already durable) join their queues as records.
void spawn_tasks(SchedulerActor* self, std::vector<TaskRecord>& records) {
  auto& st = self->state;
  auto now = runtime::now_ms();
  for (auto& r : records) {
    auto id = r.id;
    if (!r.idempotency_key.empty()) {
      st.live_keys[r.idempotency_key] = id;
      st.key_of[id] = r.idempotency_key;
    }
    auto rank = std::clamp(runtime::priority_rank(r.priority), 0, 3);
    QueuedTask queued{caf::actor{}, id, rank, r.required_capabilities, "", r.type, std::max<int64_t>(1, r.timeout_ms)};
    st.live[id] = caf::actor{};
    {
      std::lock_guard<std::mutex> lock(st.records->mutex);
      auto& entry = st.records->by_id[id];
      entry.listing_id = st.records->next_listing_id++;
      entry.since_ms = now;
      entry.record = std::move(r);
    }
    st.queues[size_t(rank)].push_back(std::move(queued));
  }
  dispatch(self);
}

// Tells a queued task whether any agent could ever run it: its actor, or its record (noted
// and saved, as the task actor does).
void tell_no_match(SchedulerActor* self, const QueuedTask& t, bool unmatched) {
  auto& st = self->state;
  if (t.task) {
    self->send(t.task, no_match_atom::value, unmatched);
    return;
  }
  TaskRecord state;
  {
    std::lock_guard<std::mutex> lock(st.records->mutex);
    auto it = st.records->by_id.find(t.id);
    if (it == st.records->by_id.end()) return;
    auto& r = it->second.record;
    bool noted = r.error_type == "no_matching_agent";
    if (unmatched == noted) return;
    r.error_type = unmatched ? "no_matching_agent" : "";
    r.error_message = unmatched ? kNoMatchingAgentMessage : "";
    r.updated_at = runtime::now_ms();
    state = runtime::task_state(r);
  }
  runtime::WriteBatch batch;
  batch.task_updates.push_back(std::move(state));
  self->request(st.store, caf::infinite, runtime::persist_atom::value, std::move(batch))
      .then([](bool) {}, [id = t.id](caf::error& err) {
        spdlog::warn("scheduler: noting that task {} waits for an agent failed: {}", id, caf::to_string(err));
      });
}

// An attempt interrupted by a crash (of the node or of the task actor) counts as an attempt:
// the task is pending again, or failed when it has no attempts left. Returns the event.
runtime::TaskEvent recover_interrupted(TaskRecord& t, int64_t now, const std::string& why, const std::string& event_reason) {
  auto from = t.status;
  t.assigned_agent.clear();
  t.updated_at = now;
  if (t.attempts >= t.max_attempts) {
    t.status = "failed";
    t.error_type = "crashed";
    t.error_message = why + " during the last attempt";
    t.completed_at = now;
  } else {
    t.status = "pending";
  }
  return {t.id, from, t.status, now, t.attempts, event_reason};
}

// The scheduler is the tasks' supervisor: a task actor that crashed starts again from
// its stored record (one_for_one, no intensity limit: each task restarts on its own).
void restart_task(SchedulerActor* self, const std::string& id) {
  self->request(self->state.store, std::chrono::seconds(10), runtime::load_task_atom::value, id)
      .then(
          [=](TaskRecord& r) {
            auto& st = self->state;
            if (runtime::is_terminal(r.status)) {
              self->send(self, finished_atom::value, r.id, r.status);
              return;
            }
            runtime::WriteBatch batch;
            if (r.status != "pending") {
              batch.events.push_back(recover_interrupted(r, runtime::now_ms(), "the task actor crashed", "task actor restarted during attempt"));
              batch.task_updates.push_back(r);
            }
            auto record = std::make_shared<TaskRecord>(std::move(r));
            self->request(st.store, caf::infinite, runtime::persist_atom::value, std::move(batch))
                .then(
                    [=](bool) {
                      std::vector<TaskRecord> one{*record};
                      if (runtime::is_terminal(record->status)) {
                        self->send(self, finished_atom::value, record->id, record->status);
                        return;
                      }
                      spawn_tasks(self, one);
                    },
                    [=](caf::error&) { self->delayed_send(self, std::chrono::seconds(1), task_crashed_atom::value, id, caf::actor_addr{}, std::string("retry")); });
          },
          [=](caf::error& err) {
            spdlog::error("scheduler: cannot reload crashed task {} (again in 1 s): {}", id, self->system().render(err));
            self->delayed_send(self, std::chrono::seconds(1), task_crashed_atom::value, id, caf::actor_addr{}, std::string("retry"));
          });
}

void count_finished(SchedulerState& st, const std::string& status) {
  st.finished_by_status[status] += 1;
  auto second = runtime::now_ms() / 1000;
  auto slot = size_t(second % 60);
  if (st.done_second[slot] != second) st.done_second[slot] = second, st.done_per_second[slot] = 0;
  st.done_per_second[slot] += 1;
}

int64_t finished_last_minute(const SchedulerState& st) {
  auto now = runtime::now_ms() / 1000;
  int64_t n = 0;
  for (size_t i = 0; i < 60; ++i)
    if (now - st.done_second[i] < 60) n += st.done_per_second[i];
  return n;
}

std::string status_json(SchedulerActor* self) {
  auto& st = self->state;
  json agents_by_state = json::object(), agents_by_type = json::object();
  for (const auto& [id, a] : st.agents) {
    auto v = live_view(a);
    agents_by_state[v.state] = agents_by_state.value(v.state, 0) + 1;
    agents_by_type[v.type] = agents_by_type.value(v.type, 0) + 1;
  }
  static const char* names[] = {"critical", "high", "medium", "low"};
  json queues = json::object();
  size_t queued = 0;
  for (size_t i = 0; i < 4; ++i) {
    queues[names[i]] = st.queues[i].size();
    queued += st.queues[i].size();
  }
  auto per_minute = finished_last_minute(st);
  return json{{"agents", {{"total", st.agents.size()}, {"by_state", agents_by_state}, {"by_type", agents_by_type}}},
              {"queue_depth", queues},
              {"queued", queued},
              {"unmatched", st.parked.size()},
              {"running", st.running},
              {"live_tasks", st.live.size()},
              {"draining", st.draining},
              {"routing",
               {{"mode", st.options.learned_routing ? "advanced" : "basic"},
                {"model_updates", st.routing_updates},
                {"predicted_pairs", st.predictions.size()},
                {"agents_followed", st.routed_agents.size()},
                {"mean_abs_error_success", [&] {
                   // How far the model's chance of success is from each pair's observed rate.
                   double sum = 0;
                   int n = 0;
                   for (const auto& [key, p] : st.predictions)
                     if (auto s = st.pair_stats.find(key); s != st.pair_stats.end() && s->second.n >= 10)
                       sum += std::abs(double(p.first) - s->second.success), ++n;
                   return n ? sum / n : 0.0;
                 }()}}},
              {"finished_since_start", st.finished_by_status},
              {"throughput", {{"tasks_last_minute", per_minute}, {"tasks_per_second", double(per_minute) / 60.0}}}}
      .dump();
}

// Gauges the scheduler owns, refreshed once a second (never per message) and after boot.
void update_gauges(SchedulerActor* self) {
  namespace m = runtime::metrics::names;
  auto& registry = runtime::metrics::Registry::global();
  auto& st = self->state;
  static const char* priorities[] = {"critical", "high", "medium", "low"};
  for (size_t i = 0; i < 4; ++i)
    registry.gauge(m::task_queue_depth, "Tasks waiting for an agent, by priority", {{"priority", priorities[i]}})
        .set(double(st.queues[i].size()));
  registry.gauge(m::task_queue_depth, "Tasks waiting for an agent, by priority", {{"priority", "unmatched"}})
      .set(double(st.parked.size()));
  registry.gauge(m::tasks_running, "Attempts running now").set(st.running);
  registry.gauge(m::tasks_unfinished, "Tasks not yet in a terminal status (live task actors)").set(double(st.live.size()));
  static const char* states[] = {"idle", "working", "learning", "failed", "inactive"};
  static const char* types[] = {"worker", "coordinator", "specialist", "learner"};
  std::map<std::pair<std::string, std::string>, int> counts;
  for (const auto& [id, a] : st.agents) counts[{live_view(a).state, a.record.type}] += 1;
  for (auto* state : states)
    for (auto* type : types)
      registry.gauge(m::agents, "Agents, by state and type", {{"state", state}, {"type", type}})
          .set(counts[{state, type}]);
  registry.gauge(m::actors, "Live actors, by kind", {{"kind", "agent"}}).set(double(st.agents.size() + st.retiring.size()));
  registry.gauge(m::actors, "Live actors, by kind", {{"kind", "task"}}).set(double(st.live.size()));
  registry.gauge(m::actors, "Live actors, by kind", {{"kind", "scheduler"}}).set(1);
  registry.gauge(m::actors, "Live actors, by kind", {{"kind", "store"}}).set(1);
  std::map<std::pair<std::string, std::string>, int> breakers;
  for (const auto& b : runtime::BreakerRegistry::global().list(runtime::now_ms())) breakers[{b.kind, b.state}] += 1;
  for (const char* kind : {"agent", "endpoint", "store"})
    for (const char* state : {"closed", "open", "half_open"})
      registry.gauge(m::breakers_open, "Circuit breakers, by kind and state", {{"kind", kind}, {"state", state}})
          .set(breakers[{kind, state}]);
  registry.gauge(m::scheduler_last_tick, "Unix time of the scheduler's last housekeeping tick (it runs every second)")
      .set(double(runtime::now_ms()) / 1000.0);
}

// Keeps this node's task leases alive and takes over tasks whose owner stopped renewing
// (a node that died): every lease_ms / 3.
void maintain_leases(SchedulerActor* self) {
  auto& st = self->state;
  auto now = runtime::now_ms();
  if (!st.booted || now < st.next_lease_work_ms || st.claiming || st.draining) return;
  st.next_lease_work_ms = now + std::max<int64_t>(1000, st.options.lease_ms / 3);
  self->request(st.store, std::chrono::seconds(30), runtime::renew_atom::value, st.options.node, now + st.options.lease_ms)
      .then([](bool) {}, [](caf::error& err) { spdlog::warn("scheduler: renewing task leases failed: {}", caf::to_string(err)); });
  st.claiming = true;
  self->request(st.store, std::chrono::seconds(30), runtime::claim_atom::value, st.options.node, now,
                now + st.options.lease_ms, int32_t(1000))
      .then(
          [=](std::vector<TaskRecord>& claimed) {
            auto& st = self->state;
            st.claiming = false;
            if (claimed.empty()) return;
            runtime::WriteBatch batch;
            std::vector<TaskRecord> resumable;
            auto at = runtime::now_ms();
            for (auto& t : claimed) {
              if (st.live.count(t.id)) continue;  // ours already (its lease lapsed while the store was away)
              if (t.status != "pending") {
                batch.events.push_back(recover_interrupted(t, at, "its node stopped renewing its lease", "claimed by " + st.options.node + " after its lease expired"));
                batch.task_updates.push_back(t);
              }
              if (t.status == "pending") resumable.push_back(t);
            }
            spdlog::info("scheduler: claimed {} tasks whose lease expired ({} resumed here)", claimed.size(), resumable.size());
            if (claimed.size() >= 1000) st.next_lease_work_ms = 0;  // more are waiting: again at the next tick
            self->request(st.store, caf::infinite, runtime::persist_atom::value, std::move(batch))
                .then([=](bool) mutable { spawn_tasks(self, resumable); },
                      [](caf::error& err) { spdlog::warn("scheduler: claimed tasks not saved: {}", caf::to_string(err)); });
          },
          [=](caf::error& err) {
            self->state.claiming = false;
            spdlog::warn("scheduler: claiming expired tasks failed: {}", caf::to_string(err));
          });
}

void check_drained(SchedulerActor* self) {
  auto& st = self->state;
  if (st.draining && st.running == 0 && st.remote_runs.empty()) {
    for (auto& rp : st.drain_waiters) rp.deliver(true);
    st.drain_waiters.clear();
  }
}

// Attempts on agents of `node` end now as crashed (the node was lost or left): placed again.
void interrupt_node(SchedulerActor* self, const std::string& node) {
  auto& st = self->state;
  for (const auto& [task_id, agent_id] : st.assigned_to) {
    auto r = st.remote_agents.find(agent_id);
    if (r == st.remote_agents.end() || r->second.node != node) continue;
    if (auto t = st.live.find(task_id); t != st.live.end() && t->second) self->send(t->second, agent_down_atom::value, agent_id);
  }
}

// The others' agents and health, as the node manager last heard them.
void apply_cluster_view(SchedulerActor* self, std::vector<runtime::PeerView>& views) {
  auto& st = self->state;
  std::unordered_map<std::string, bool> seen;
  for (auto& v : views) {
    seen[v.name] = true;
    bool usable = v.status == "up" && v.reachable && v.scheduler;
    auto& n = st.remote_nodes[v.name];
    bool moved = n.scheduler != v.scheduler;
    if (n.usable && (!usable || moved)) {
      spdlog::info("scheduler: node {} is {}; its agents take no more work from here", v.name,
                   v.reachable ? v.status : "unreachable");
      interrupt_node(self, v.name);
    }
    if (usable && (moved || !n.proxy)) {
      if (n.proxy) self->send_exit(n.proxy, caf::exit_reason::user_shutdown);
      n.proxy = spawn_remote_agent(self->system(), v.name, v.scheduler);
    }
    if (v.scheduler) n.scheduler = v.scheduler;
    n.usable = usable;
    std::unordered_map<std::string, bool> listed;
    for (size_t i = 0; i < v.agents.size(); ++i) {
      auto& a = v.agents[i];
      listed[a.id] = true;
      if (st.agents.count(a.id)) continue;  // ours (a stale view of a node we replaced)
      auto& r = st.remote_agents[a.id];
      r.node = v.name;
      r.breaker = i < v.breakers.size() ? v.breakers[i] : "closed";
      r.record = std::move(a);
    }
    for (auto it = st.remote_agents.begin(); it != st.remote_agents.end();) {
      if (it->second.node == v.name && !listed.count(it->first) && it->second.reserved == 0) it = st.remote_agents.erase(it);
      else ++it;
    }
  }
  for (auto it = st.remote_nodes.begin(); it != st.remote_nodes.end();) {
    if (seen.count(it->first)) {
      ++it;
      continue;
    }
    interrupt_node(self, it->first);
    if (it->second.proxy) self->send_exit(it->second.proxy, caf::exit_reason::user_shutdown);
    for (auto a = st.remote_agents.begin(); a != st.remote_agents.end();)
      a = a->second.node == it->first && a->second.reserved == 0 ? st.remote_agents.erase(a) : std::next(a);
    it = st.remote_nodes.erase(it);
  }
}

Outcome refused_here(const std::string& why) {
  Outcome o;
  o.not_attempted = true;
  o.retryable = true;
  o.error_type = "unavailable";
  o.error_message = why;
  return o;
}

// An attempt another node placed on one of our agents.
caf::result<std::string> run_for_peer(SchedulerActor* self, const std::string& agent_id, const std::string& bytes) {
  auto& st = self->state;
  TaskRecord task;
  if (!runtime::decode_task(bytes, task)) {
    Outcome o;
    o.error_type = "failed";
    o.error_message = "the task sent by another node could not be read (version mismatch?)";
    o.retryable = false;
    return encode_outcome(o);
  }
  auto it = st.agents.find(agent_id);
  if (it == st.agents.end()) return encode_outcome(refused_here("agent " + agent_id + " is not on node " + st.options.node));
  if (st.draining) return encode_outcome(refused_here("node " + st.options.node + " is shutting down"));
  if (!placeable(it->second, runtime::now_ms()))
    return encode_outcome(refused_here("agent " + agent_id + " has no free slot (or its breaker is open)"));
  if (st.remote_runs.count(task.id)) return encode_outcome(refused_here("task " + task.id + " already runs here"));
  it->second.reserved += 1;
  auto rp = self->make_response_promise<std::string>();
  st.remote_runs[task.id] = {agent_id, rp};
  auto task_id = task.id;
  auto done = [=](const Outcome& o) {
    auto& st = self->state;
    auto run = st.remote_runs.find(task_id);
    if (run == st.remote_runs.end()) return;
    if (auto a = st.agents.find(run->second.agent_id); a != st.agents.end()) a->second.reserved -= 1;
    run->second.rp.deliver(encode_outcome(o));
    st.remote_runs.erase(run);
    check_drained(self);
    dispatch(self);
  };
  self->request(it->second.handle, caf::infinite, execute_atom::value, std::move(task))
      .then([=](Outcome& o) { done(o); },
            [=](caf::error& err) {
              Outcome o;
              o.error_type = "crashed";
              o.error_message = "the agent stopped during the attempt: " + self->system().render(err);
              done(o);
            });
  return rp;
}

runtime::LocalReport local_report(SchedulerActor* self) {
  auto& st = self->state;
  runtime::LocalReport r;
  auto now = runtime::now_ms();
  for (const auto& [id, a] : st.agents) {
    r.agents.push_back(live_view(a));
    auto breaker = a.breaker ? a.breaker->state(now) : std::string("closed");
    if (breaker == "closed" && a.endpoint_breaker) breaker = a.endpoint_breaker->state(now);
    r.breakers.push_back(breaker);
  }
  r.running = st.running + int32_t(st.remote_runs.size());
  for (const auto& q : st.queues) r.queued += int32_t(q.size());
  return r;
}

AgentRecord remote_view(const RemoteAgent& a) {
  auto r = a.record;
  r.node = a.node;
  return r;
}

// Agents are changed on the node that runs them.
caf::error not_here(SchedulerActor* self, const std::string& id) {
  auto r = self->state.remote_agents.find(id);
  if (r == self->state.remote_agents.end()) return refusal("not_found", "no agent " + id);
  return refusal("conflict", "agent " + id + " runs on node " + r->second.node + ": send this request to that node's API");
}

// Learns from finished attempts: sends what is new to the neural pool and takes back fresh
// predictions for every (agent, task type) pair, at most one exchange at a time.
void refresh_routes(SchedulerActor* self) {
  auto& st = self->state;
  auto neural = st.options.agent_options.neural;
  if (!st.options.learned_routing || !neural || st.routing_in_flight || st.route_y.empty()) return;
  std::vector<std::string> keys;
  std::vector<float> queries;
  for (const auto& [id, a] : st.agents)
    if (st.routed_agents.size() < size_t(std::max(1, st.options.routing_max_agents))) st.routed_agents.insert(id);
  for (const auto& [id, a] : st.agents)
    for (const auto& type : st.task_types) {
      if (!st.routed_agents.count(id)) continue;
      keys.push_back(pair_key(id, type));
      queries.resize(queries.size() + kRouteFeatures);
      route_features(st, a, type, 2, &queries[queries.size() - kRouteFeatures]);
    }
  st.routing_in_flight = true;
  auto x = std::move(st.route_x), y = std::move(st.route_y);
  st.route_x.clear();
  st.route_y.clear();
  self->request(neural, std::chrono::seconds(30), routing_atom::value, int32_t(kRouteFeatures), std::move(x), std::move(y),
                std::move(queries))
      .then(
          [=](std::vector<float>& out) {
            auto& st = self->state;
            st.routing_in_flight = false;
            for (size_t i = 0; i < keys.size() && 2 * i + 1 < out.size(); ++i) st.predictions[keys[i]] = {out[2 * i], out[2 * i + 1]};
            ++st.routing_updates;
          },
          [=](caf::error& err) {
            self->state.routing_in_flight = false;
            spdlog::warn("scheduler: learned routing update failed: {}", self->system().render(err));
          });
}

using SubmitPromise = caf::typed_response_promise<SubmitReply>;

// Stores and starts submitted tasks (after capability inference, when that runs).
void accept_submission(SchedulerActor* self, std::vector<TaskRecord> records, SubmitPromise rp) {
  auto& st = self->state;
  SubmitReply reply;
  runtime::WriteBatch batch;
  std::vector<TaskRecord> fresh;
  std::unordered_map<std::string, std::string> batch_keys;
  for (auto& r : records) {
    if (!r.idempotency_key.empty()) {
      auto known = st.live_keys.find(r.idempotency_key);
      auto in_batch = batch_keys.find(r.idempotency_key);
      if (known != st.live_keys.end() || in_batch != batch_keys.end()) {
        TaskRecord existing;
        existing.id = known != st.live_keys.end() ? known->second : in_batch->second;
        reply.tasks.push_back(std::move(existing));
        reply.created.push_back("0");
        continue;
      }
      batch_keys[r.idempotency_key] = r.id;
    }
    r.node = st.options.node;
    // Known at once, so no second write: no agent could run this task now.
    if (!could_ever_run(st, QueuedTask{{}, r.id, 0, r.required_capabilities, {}, r.type, 0})) {
      r.error_type = "no_matching_agent";
      r.error_message = kNoMatchingAgentMessage;
    }
    batch.tasks.push_back(r);
    batch.events.push_back({r.id, "", "pending", r.created_at, 0, "submitted"});
    reply.tasks.push_back(r);
    reply.created.push_back("1");
    fresh.push_back(std::move(r));
  }
  for (auto& [key, id] : batch_keys) st.live_keys[key] = id;
  for (const auto& r : fresh)
    runtime::metrics::Registry::global()
        .counter(runtime::metrics::names::tasks_submitted, "Tasks accepted, by priority", {{"priority", r.priority}})
        .inc();
  self->request(st.store, caf::infinite, runtime::persist_atom::value, std::move(batch))
      .then(
          [=](bool) mutable {
            spawn_tasks(self, fresh);
            rp.deliver(std::move(reply));
          },
          [=](caf::error& err) mutable {
            for (auto& [key, id] : batch_keys) self->state.live_keys.erase(key);
            rp.deliver(refusal("unavailable", "the store did not accept the tasks: " + self->system().render(err)));
          });
}

// [neural] mode = "advanced": tasks that name no capability get them predicted from their
// text by the neural pool's text model, which learns from the tasks that do name them. The
// prediction and its confidence are stored on the task; it is applied when confident and some
// agent has that capability.
bool infer_capabilities(SchedulerActor* self, std::vector<TaskRecord>& records, SubmitPromise rp) {
  auto& st = self->state;
  auto neural = st.options.agent_options.neural;
  if (!st.options.learned_routing || !neural) return false;
  std::vector<std::string> learn_texts, learn_labels, ask;
  std::vector<size_t> asking;
  auto text_of = [](const TaskRecord& r) { return r.title + " " + r.description + " " + r.type; };
  for (size_t i = 0; i < records.size(); ++i) {
    if (!records[i].required_capabilities.empty()) {
      learn_texts.push_back(text_of(records[i]));
      learn_labels.push_back(records[i].required_capabilities.front().name);
    } else if (st.caps_samples >= 20) {
      asking.push_back(i);
      ask.push_back(text_of(records[i]));
    }
  }
  if (!learn_texts.empty()) {
    st.caps_samples += int64_t(learn_texts.size());
    self->send(neural, caps_learn_atom::value, std::move(learn_texts), std::move(learn_labels));
  }
  if (ask.empty()) return false;
  auto held = std::make_shared<std::vector<TaskRecord>>(std::move(records));
  self->request(neural, std::chrono::seconds(2), caps_infer_atom::value, std::move(ask))
      .then(
          [=](std::vector<std::string>& predictions) mutable {
            auto& st = self->state;
            for (size_t k = 0; k < asking.size() && k < predictions.size(); ++k) {
              auto p = json::parse(predictions[k], nullptr, false);
              if (!p.is_object()) continue;
              auto& r = (*held)[asking[k]];
              auto capability = p.value("capability", std::string());
              double confidence = p.value("confidence", 0.0);
              bool someone_has = could_ever_run(st, QueuedTask{{}, r.id, 0, {{capability, 0.0}}, {}, r.type, 0});
              bool applied = confidence >= 0.6 && someone_has;
              if (applied) r.required_capabilities = {{capability, 0.0}};
              r.inferred_json = json{{"capabilities", json::array({capability})},
                                     {"confidence", confidence},
                                     {"applied", applied},
                                     {"trained_on", p.value("samples", 0)}}
                                    .dump();
            }
            accept_submission(self, std::move(*held), rp);
          },
          [=](caf::error&) mutable { accept_submission(self, std::move(*held), rp); });
  return true;
}

caf::behavior scheduler_actor(SchedulerActor* self, SchedulerOptions options, caf::actor store) {
  self->state.options = std::move(options);
  self->describe("scheduler", self->state.options.node, nullptr, true);
  // Queued records list as pending tasks, children of the scheduler.
  runtime::introspection::Registry::of(self->system())
      .set_records({[records = self->state.records] {
                      std::lock_guard<std::mutex> lock(records->mutex);
                      return records->by_id.size();
                    },
                    [records = self->state.records, parent = self->id()](std::vector<runtime::introspection::ActorInfo>& out) {
                      std::lock_guard<std::mutex> lock(records->mutex);
                      out.reserve(out.size() + records->by_id.size());
                      for (const auto& [id, e] : records->by_id) {
                        runtime::introspection::ActorInfo a;
                        a.id = e.listing_id;
                        a.kind = "task";
                        a.name = id;
                        a.state = "pending";
                        a.parent = parent;
                        a.started_ms = e.since_ms;
                        out.push_back(std::move(a));
                      }
                    }});
  if (self->state.options.learned_routing) self->send(self, routing_tick_atom::value);
  self->state.store = std::move(store);
  self->send(self, tick_atom::value);
  // Agents and tasks live as long as their scheduler: its exit takes them along.
  self->set_exit_handler([=](caf::exit_msg& msg) {
    auto& st = self->state;
    for (auto& [id, a] : st.agents) self->send_exit(a.handle, msg.reason);
    for (auto& a : st.retiring) self->send_exit(a, msg.reason);
    for (auto& [id, t] : st.live)
      if (t) self->send_exit(t, msg.reason);
    runtime::introspection::Registry::of(self->system()).set_records({});
    for (auto& [name, n] : st.remote_nodes)
      if (n.proxy) self->send_exit(n.proxy, msg.reason);  // they would wait for their peer to stop
    for (auto& [task_id, run] : st.remote_runs) {
      Outcome o;
      o.error_type = "crashed";
      o.error_message = "node " + st.options.node + " stopped during the attempt";
      run.rp.deliver(encode_outcome(o));
    }
    self->quit(msg.reason);
  });
  return {
      [=](boot_atom, std::vector<AgentRecord>& agents, std::vector<TaskRecord>& tasks, bool first_boot) -> caf::result<bool> {
        auto& st = self->state;
        auto rp = self->make_response_promise<bool>();
        runtime::WriteBatch batch;
        if (agents.empty() && first_boot) {
          for (const auto& entry : st.options.default_pool) {
            auto a = entry.find(':'), b = entry.rfind(':');
            auto type = entry.substr(0, a), cap = entry.substr(a + 1, b - a - 1);
            int count = std::stoi(entry.substr(b + 1));
            for (int i = 1; i <= count; ++i) agents.push_back(pool_agent(st.options, type, cap, int(agents.size()) + 1));
          }
          batch.agents = agents;
        }
        auto now = runtime::now_ms();
        for (auto& t : tasks) {
          if (t.status == "pending") continue;
          batch.events.push_back(recover_interrupted(t, now, "the node stopped", "node restarted during attempt"));
          batch.tasks.push_back(t);
        }
        self->request(self->state.store, caf::infinite, runtime::persist_atom::value, std::move(batch))
            .then(
                [=](bool) mutable {
                  for (auto& a : agents) add_agent(self, std::move(a));
                  std::vector<TaskRecord> resumable;
                  for (auto& t : tasks)
                    if (t.status == "pending") resumable.push_back(std::move(t));
                  spawn_tasks(self, resumable);
                  self->state.booted = true;
                  spdlog::info("scheduler: {} agents, {} tasks resumed", self->state.agents.size(), resumable.size());
                  update_gauges(self);
                  rp.deliver(true);
                },
                [=](caf::error& err) mutable { rp.deliver(err); });
        return rp;
      },
      [=](submit_atom, std::vector<TaskRecord>& records) -> caf::result<SubmitReply> {
        auto& st = self->state;
        if (st.draining) return refusal("unavailable", "the node is shutting down");
        if (st.live.size() + records.size() > size_t(st.options.max_live_tasks))
          return refusal("queue_full", "the node holds " + std::to_string(st.live.size()) +
                                           " unfinished tasks (max_queue_size " +
                                           std::to_string(st.options.max_live_tasks) + ")");
        auto rp = self->make_response_promise<SubmitReply>();
        if (!infer_capabilities(self, records, rp)) accept_submission(self, std::move(records), rp);
        return rp;
      },
      [=](retry_atom, TaskRecord& r) -> caf::result<TaskRecord> {
        auto& st = self->state;
        if (st.live.count(r.id)) return refusal("conflict", "task " + r.id + " is not finished");
        auto from = r.status;
        auto now = runtime::now_ms();
        r.status = "pending";
        r.attempts = 0;
        r.result_json.clear();
        r.error_type.clear();
        r.error_message.clear();
        r.assigned_agent.clear();
        r.started_at = r.completed_at = 0;
        r.updated_at = now;
        r.node = st.options.node;
        runtime::WriteBatch batch;
        batch.tasks.push_back(r);
        batch.events.push_back({r.id, from, "pending", now, 0, "retried by request"});
        auto rp = self->make_response_promise<TaskRecord>();
        self->request(st.store, caf::infinite, runtime::persist_atom::value, std::move(batch))
            .then(
                [=](bool) mutable {
                  std::vector<TaskRecord> one{r};
                  spawn_tasks(self, one);
                  rp.deliver(r);
                },
                [=](caf::error& err) mutable { rp.deliver(refusal("unavailable", self->system().render(err))); });
        return rp;
      },
      [=](cancel_atom, const std::string& id) -> caf::result<caf::message> {
        auto task = task_actor_of(self, id);
        if (!task) return refusal("conflict", "task " + id + " is already finished");
        return self->delegate(task, cancel_atom::value);
      },
      [=](wait_atom, const std::string& id) -> caf::result<caf::message> {
        auto task = task_actor_of(self, id);
        if (!task) return caf::make_message(true);
        return self->delegate(task, wait_atom::value);
      },
      [=](ready_atom, QueuedTask& t) {
        auto& st = self->state;
        if (!st.live.count(t.id)) return;
        st.queues[size_t(std::clamp(t.priority_rank, 0, 3))].push_back(std::move(t));
        dispatch(self);
      },
      [=](released_atom, const std::string& task_id) {
        release(self, task_id);
        dispatch(self);
      },
      [=](finished_atom, const std::string& id, const std::string& status) {
        auto& st = self->state;
        st.live.erase(id);
        if (auto k = st.key_of.find(id); k != st.key_of.end()) {
          st.live_keys.erase(k->second);
          st.key_of.erase(k);
        }
        release(self, id);
        count_finished(st, status);
        dispatch(self);
      },
      [=](agent_update_atom, AgentRecord& r) {
        auto& st = self->state;
        auto it = st.agents.find(r.id);
        if (it == st.agents.end()) return;
        bool paused = it->second.record.state == "inactive";
        it->second.record = std::move(r);
        if (paused && it->second.record.state != "inactive") it->second.record.state = "inactive";
      },
      [=](create_atom, AgentRecord& r) -> caf::result<AgentRecord> {
        auto& st = self->state;
        if (st.agents.size() >= size_t(st.options.max_agents))
          return refusal("limit", "this node already hosts " + std::to_string(st.agents.size()) +
                                      " agents ([agents] max_agents)");
        r.id = runtime::new_uuid();
        r.node = st.options.node;
        r.state = "idle";
        r.created_at = r.updated_at = runtime::now_ms();
        runtime::WriteBatch batch;
        batch.agents.push_back(r);
        auto rp = self->make_response_promise<AgentRecord>();
        self->request(st.store, caf::infinite, runtime::persist_atom::value, std::move(batch))
            .then(
                [=](bool) mutable {
                  add_agent(self, r);
                  unpark(self);
                  dispatch(self);
                  rp.deliver(r);
                },
                [=](caf::error& err) mutable { rp.deliver(refusal("unavailable", self->system().render(err))); });
        return rp;
      },
      [=](list_atom) {
        std::vector<AgentRecord> out;
        for (const auto& [id, a] : self->state.agents) out.push_back(live_view(a));
        for (const auto& [id, a] : self->state.remote_agents) out.push_back(remote_view(a));
        std::sort(out.begin(), out.end(), [](const AgentRecord& x, const AgentRecord& y) {
          return std::tie(x.created_at, x.id) < std::tie(y.created_at, y.id);
        });
        return out;
      },
      [=](get_atom, const std::string& id) -> caf::result<AgentRecord> {
        auto it = self->state.agents.find(id);
        if (it == self->state.agents.end()) {
          if (auto r = self->state.remote_agents.find(id); r != self->state.remote_agents.end()) return remote_view(r->second);
          return refusal("not_found", "no agent " + id);
        }
        return live_view(it->second);
      },
      [=](delete_atom, const std::string& id) -> caf::result<AgentRecord> {
        auto& st = self->state;
        auto it = st.agents.find(id);
        if (it == st.agents.end()) return not_here(self, id);
        auto view = live_view(it->second);
        view.deleted = true;
        runtime::BreakerRegistry::global().remove(agent_breaker_id(id));
        self->send(it->second.handle, delete_atom::value);
        st.retiring.push_back(it->second.handle);
        st.agents.erase(it);
        return view;
      },
      [=](pause_atom, const std::string& id) -> caf::result<AgentRecord> {
        auto it = self->state.agents.find(id);
        if (it == self->state.agents.end()) return not_here(self, id);
        it->second.record.state = "inactive";
        self->send(it->second.handle, pause_atom::value);
        return live_view(it->second);
      },
      [=](resume_atom, const std::string& id) -> caf::result<AgentRecord> {
        auto it = self->state.agents.find(id);
        if (it == self->state.agents.end()) return not_here(self, id);
        it->second.record.state = "idle";
        self->send(it->second.handle, resume_atom::value);
        unpark(self);
        dispatch(self);
        return live_view(it->second);
      },
      [=](status_atom) { return status_json(self); },
      [=](attempt_done_atom, const std::string& agent_id, const std::string& type, const std::string& priority, bool ok,
          int64_t duration_ms) {
        auto& st = self->state;
        if (!st.options.learned_routing) return;
        auto a = st.agents.find(agent_id);
        if (a == st.agents.end()) return;
        if (!st.routed_agents.count(agent_id)) {
          if (st.routed_agents.size() >= size_t(std::max(1, st.options.routing_max_agents))) return;
          st.routed_agents.insert(agent_id);
        }
        st.task_types.insert(type);
        if (st.route_y.size() < 2 * 20000) {
          st.route_x.resize(st.route_x.size() + kRouteFeatures);
          route_features(st, a->second, type, std::max(0, runtime::priority_rank(priority)), &st.route_x[st.route_x.size() - kRouteFeatures]);
          st.route_y.push_back(ok ? 1.0f : 0.0f);
          st.route_y.push_back(float(std::log1p(double(std::max<int64_t>(0, duration_ms))) / 10.0));
        }
        st.agent_stats[agent_id].add(ok, duration_ms);
        st.pair_stats[pair_key(agent_id, type)].add(ok, duration_ms);
      },
      [=](routing_tick_atom) {
        refresh_routes(self);
        self->delayed_send(self, std::chrono::milliseconds(200), routing_tick_atom::value);
      },
      [=](runtime::local_report_atom) { return local_report(self); },
      [=](runtime::cluster_view_atom, std::vector<runtime::PeerView>& views) {
        apply_cluster_view(self, views);
        unpark(self);
        dispatch(self);
      },
      [=](runtime::node_down_atom, const std::string& node) {
        // This node's manager leads the cluster and downed `node`: its tasks are free to claim now.
        auto& st = self->state;
        interrupt_node(self, node);
        self->request(st.store, std::chrono::seconds(30), runtime::expire_atom::value, node, runtime::now_ms())
            .then(
                [=](bool) {
                  spdlog::info("scheduler: node {} was downed; its task leases expired, claiming them", node);
                  self->state.next_lease_work_ms = 0;
                  maintain_leases(self);
                },
                [=](caf::error& err) { spdlog::warn("scheduler: expiring the leases of {} failed: {}", node, caf::to_string(err)); });
      },
      [=](runtime::remote_execute_atom, const std::string& agent_id, const std::string& bytes) -> caf::result<std::string> {
        return run_for_peer(self, agent_id, bytes);
      },
      [=](runtime::remote_cancel_atom, const std::string& task_id) {
        auto& st = self->state;
        auto run = st.remote_runs.find(task_id);
        if (run == st.remote_runs.end()) return;
        if (auto a = st.agents.find(run->second.agent_id); a != st.agents.end())
          self->send(a->second.handle, cancel_atom::value, task_id);
      },
      [=](kill_agent_atom, const std::string& id) -> caf::result<bool> {
        auto it = self->state.agents.find(id);
        if (it == self->state.agents.end()) return refusal("not_found", "no agent " + id);
        self->send_exit(it->second.handle, caf::exit_reason::kill);
        return true;
      },
      [=](task_crashed_atom, const std::string& id, const caf::actor_addr& addr, const std::string& reason) {
        auto& st = self->state;
        auto it = st.live.find(id);
        if (it == st.live.end()) return;
        if (addr && it->second.address() != addr) return;  // an older incarnation
        if (addr) {
          spdlog::warn("scheduler: task actor {} crashed ({}); restarting it from the store", id, reason);
          st.task_restarts += 1;
          runtime::metrics::Registry::global()
              .counter(runtime::metrics::names::supervisor_restarts, "Children restarted by a supervisor, by supervisor and kind",
                       {{"supervisor", "tasks"}, {"kind", "task"}})
              .inc();
          release(self, id);
        }
        restart_task(self, id);
      },
      [=](restarted_atom, const std::string& kind, const std::string& id, caf::actor& handle) {
        auto& st = self->state;
        // Attempts on a crashed agent end now (not at their timeout) and are placed again.
        auto interrupt = [&](const std::string& agent_id) {
          for (const auto& [task_id, on] : st.assigned_to)
            if (on == agent_id)
              if (auto t = st.live.find(task_id); t != st.live.end() && t->second) self->send(t->second, agent_down_atom::value, agent_id);
          for (auto run = st.remote_runs.begin(); run != st.remote_runs.end();) {
            if (run->second.agent_id != agent_id) {
              ++run;
              continue;
            }
            Outcome o;
            o.error_type = "crashed";
            o.error_message = "agent " + agent_id + " crashed during the attempt (its supervisor restarted it)";
            if (auto a = st.agents.find(agent_id); a != st.agents.end()) a->second.reserved -= 1;
            run->second.rp.deliver(encode_outcome(o));
            run = st.remote_runs.erase(run);
          }
        };
        if (kind == "agent") {
          if (auto it = st.agents.find(id); it != st.agents.end()) it->second.handle = std::move(handle);
          interrupt(id);
          return;
        }
        if (kind == "supervisor" && id == "agents") {
          // The agent supervisor gave up and was started again: every agent starts again under it.
          st.options.agent_supervisor = std::move(handle);
          self->send(st.options.agent_supervisor, listen_atom::value, caf::actor_cast<caf::actor>(self));
          for (auto& [agent_id, entry] : st.agents) {
            entry.handle = start_agent(self, entry.record, true);
            interrupt(agent_id);
          }
          dispatch(self);
        }
      },
      [=](tree_atom) {
        auto& st = self->state;
        return json{{"name", "tasks"},
                    {"strategy", "one_for_one"},
                    {"restarts", st.task_restarts},
                    {"note", "each crashed task actor restarts from its stored record; children are not listed"},
                    {"children_count", st.live.size()}}
            .dump();
      },
      [=](runtime::introspection::introspect_atom) { return status_json(self); },
      [=](tick_atom) {
        auto& st = self->state;
        size_t queued = 0;
        for (const auto& q : st.queues) queued += q.size();
        self->set_state(std::string(st.draining ? "draining, " : "") + std::to_string(st.agents.size()) + " agents, " +
                        std::to_string(st.live.size()) + " live tasks, " + std::to_string(queued) + " queued, " +
                        std::to_string(st.running) + " running");
        update_gauges(self);
        maintain_leases(self);
        check_overdue(self);
        // High priority: the tick jumps a deep mailbox, so a busy scheduler still reports in.
        self->delayed_send<caf::message_priority::high>(self, std::chrono::seconds(1), tick_atom::value);
      },
      [=](drain_atom) -> caf::result<bool> {
        auto& st = self->state;
        st.draining = true;
        if (st.running == 0 && st.remote_runs.empty()) return true;
        auto rp = self->make_response_promise();
        st.drain_waiters.push_back(rp);
        return caf::delegated<bool>{};
      },
  };
}

}  // namespace

caf::actor spawn_scheduler(caf::actor_system& system, SchedulerOptions options, caf::actor store) {
  return system.spawn(scheduler_actor, std::move(options), std::move(store));
}

NodeActors spawn_node_actors(caf::actor_system& system, SchedulerOptions options, const SupervisionOptions& supervision,
                             caf::actor store) {
  NodeActors node;
  node.root = spawn_supervisor(system, {"root", "one_for_one", supervision.max_restarts, supervision.period_ms});
  SupervisorOptions agents{"agents", supervision.agent_strategy, supervision.max_restarts, supervision.period_ms};
  node.agents = spawn_supervisor(system, agents);
  options.agent_supervisor = node.agents;
  node.scheduler = spawn_scheduler(system, std::move(options), std::move(store));
  auto* sys = &system;
  caf::anon_send(node.root, adopt_atom::value,
                 ChildSpec{"agents", "supervisor", [sys, agents] { return spawn_supervisor(*sys, agents); }, true}, node.agents);
  // The scheduler holds every live task: it cannot start again without the node; its crash escalates.
  caf::anon_send(node.root, adopt_atom::value, ChildSpec{"tasks", "scheduler", {}, true}, node.scheduler);
  caf::anon_send(node.root, listen_atom::value, node.scheduler);
  caf::anon_send(node.agents, listen_atom::value, node.scheduler);
  return node;
}

}  // namespace hub::actors
