#include "actors/task.hpp"

#include "actors/task_protocol.hpp"
#include "runtime/clock.hpp"
#include "runtime/events.hpp"
#include "runtime/json_text.hpp"
#include "runtime/instrumented.hpp"
#include "runtime/metrics.hpp"
#include "runtime/store/store_actor.hpp"

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/exit_reason.hpp>
#include <caf/send.hpp>
#include <caf/response_promise.hpp>
#include <caf/sec.hpp>
#include <caf/stateful_actor.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <chrono>
#include <functional>
#include <map>
#include <random>
#include <unordered_map>

namespace hub::actors {

using json = nlohmann::json;
using runtime::TaskEvent;
using runtime::TaskRecord;

int64_t retry_backoff_ms(int attempt, double unit) {
  double base = 1000.0 * std::pow(2.0, std::max(0, attempt - 1));
  base = std::min(base, 60000.0);
  return int64_t(base * (0.9 + 0.2 * unit));
}

namespace {

struct TaskState {
  TaskRecord record;
  caf::actor scheduler;
  caf::actor store;
  caf::actor agent;            // during an attempt
  uint64_t attempt_epoch = 0;  // outcomes of an earlier attempt are ignored
  bool attempt_running = false;  // an execute request is out (start_attempt .. end_attempt)
  bool cancelling = false;
  uint64_t next_write = 0;
  std::string avoid_agent;  // the agent of the last failed attempt
  // Writes the store refused, with what waits on them, to be sent again.
  std::map<uint64_t, std::pair<runtime::WriteBatch, std::function<void()>>> refused;
  std::vector<caf::response_promise> waiters;         // wait: true once terminal
  std::vector<caf::response_promise> cancel_waiters;  // cancel: the terminal record
  static inline const char* name = "task";
};

using TaskActor = runtime::Instrumented<TaskState>;

void finish_actor(TaskActor* self);

// Sends a write to the store at once; `then` runs once it is durable. The writes of one
// task reach the store actor in the order they were sent (one sender, one receiver), so
// none waits for an earlier one: only what is acknowledged to others (the end of the task)
// waits for durability.
void persist(TaskActor* self, runtime::WriteBatch batch, std::function<void()> then) {
  self->request(self->state.store, caf::infinite, runtime::persist_atom::value, batch)
      .then(
          [=](bool) {
            if (then) then();
          },
          [=](caf::error&) {
            auto& st = self->state;
            auto id = st.next_write++;
            st.refused.emplace(id, std::make_pair(batch, then));
            self->delayed_send(self, std::chrono::milliseconds(200), persist_tick_atom::value, id);
          });
}

// Applies a transition to the record and adds its event to `batch` (not written yet).
void record_transition(TaskActor* self, const std::string& to, const std::string& reason, runtime::WriteBatch& batch) {
  auto& st = self->state;
  auto now = runtime::now_ms();
  TaskEvent event{st.record.id, st.record.status, to, now, st.record.attempts, reason};
  st.record.status = to;
  st.record.updated_at = now;
  self->set_state(to);
  runtime::EventFeed::global().publish_text("task", runtime::JsonText()
                                                        .str("task_id", st.record.id)
                                                        .str("from", event.from)
                                                        .str("to", to)
                                                        .str("type", st.record.type)
                                                        .str("priority", st.record.priority)
                                                        .num("attempts", st.record.attempts)
                                                        .str_or_null("agent", st.record.assigned_agent)
                                                        .str("reason", reason)
                                                        .done());
  if (runtime::is_terminal(to)) st.record.completed_at = now;
  batch.events.push_back(std::move(event));
}

// Persists the record's state with the events recorded in `batch`.
void persist_state(TaskActor* self, runtime::WriteBatch batch, std::function<void()> then = {}) {
  batch.task_updates.push_back(runtime::task_state(self->state.record));
  persist(self, std::move(batch), std::move(then));
}

// Applies a transition to the record and persists it with its event.
void transition(TaskActor* self, const std::string& to, const std::string& reason, std::function<void()> then = {}) {
  runtime::WriteBatch batch;
  record_transition(self, to, reason, batch);
  persist_state(self, std::move(batch), std::move(then));
}

// Persists the record as it is, without a transition (e.g. a note on why it waits).
void save(TaskActor* self) {
  auto& st = self->state;
  st.record.updated_at = runtime::now_ms();
  runtime::WriteBatch batch;
  batch.task_updates.push_back(runtime::task_state(st.record));
  persist(self, std::move(batch), {});
}

QueuedTask as_queued(TaskActor* self) {
  const auto& r = self->state.record;
  return QueuedTask{caf::actor_cast<caf::actor>(self), r.id, runtime::priority_rank(r.priority), r.required_capabilities,
                    self->state.avoid_agent, r.type, std::max<int64_t>(1, r.timeout_ms)};
}

void release_agent(TaskActor* self) {
  auto& st = self->state;
  if (!st.agent) return;
  self->send(st.scheduler, released_atom::value, st.record.id);
  st.agent = nullptr;
}

// Task types are chosen by clients; beyond the builtin handlers they share one label.
std::string type_label(const std::string& type) {
  return type == "echo" || type == "sleep" || type == "fail" || type == "hash" || type == "crash" ? type : "other";
}

// The registry's children live as long as the process: each thread looks a label set up once.
struct FinishMetrics {
  runtime::metrics::Counter* finished;
  runtime::metrics::Histogram* duration;
};

void record_finish(const TaskRecord& r) {
  namespace m = runtime::metrics::names;
  auto& registry = runtime::metrics::Registry::global();
  thread_local std::unordered_map<std::string, FinishMetrics> known;
  thread_local auto* attempts = &registry.histogram(m::task_attempts, "Attempts a task took until its terminal status",
                                                    runtime::metrics::count_buckets());
  auto type = type_label(r.type);
  auto key = r.priority + '\n' + r.status + '\n' + type;
  auto it = known.find(key);
  if (it == known.end()) {
    FinishMetrics found{
        &registry.counter(m::tasks_finished, "Tasks that reached a terminal status, by status, priority and type",
                          {{"priority", r.priority}, {"status", r.status}, {"type", type}}),
        &registry.histogram(m::task_duration, "Time from submission to the terminal status in seconds, by status",
                            runtime::metrics::duration_buckets(), {{"status", r.status}})};
    it = known.emplace(std::move(key), found).first;
  }
  it->second.finished->inc();
  it->second.duration->observe(double(std::max<int64_t>(0, r.completed_at - r.created_at)) / 1000.0);
  attempts->observe(double(r.attempts));
}

void finish_actor(TaskActor* self) {
  auto& st = self->state;
  record_finish(st.record);
  for (auto& w : st.waiters) w.deliver(true);
  for (auto& w : st.cancel_waiters) w.deliver(st.record);
  st.waiters.clear();
  st.cancel_waiters.clear();
  self->send(st.scheduler, finished_atom::value, st.record.id, st.record.status);
  self->quit();
}

void end_attempt(TaskActor* self, Outcome outcome) {
  auto& st = self->state;
  auto agent_id = st.record.assigned_agent;
  release_agent(self);
  ++st.attempt_epoch;
  st.attempt_running = false;
  if (outcome.not_attempted && !st.cancelling) {
    // Refused before it ran (an open breaker): not an attempt; placed again, elsewhere.
    st.record.attempts = std::max(0, st.record.attempts - 1);
    st.avoid_agent = agent_id;
    transition(self, "pending", outcome.error_type + ": " + outcome.error_message + "; placed again", [=] {
      self->delayed_send(self, std::chrono::milliseconds(50), retry_timer_atom::value, self->state.attempt_epoch);
    });
    return;
  }
  if (outcome.ok) {
    st.record.result_json = outcome.result_json;
    st.record.error_type.clear();
    st.record.error_message.clear();
    transition(self, "completed", "", [=] { finish_actor(self); });
    return;
  }
  st.record.error_type = outcome.error_type;
  st.record.error_message = outcome.error_message;
  if (st.cancelling || outcome.error_type == "cancelled") {
    st.record.error_type = "cancelled";
    transition(self, "cancelled", "cancelled by request", [=] { finish_actor(self); });
    return;
  }
  bool retry = outcome.retryable && st.record.attempts < st.record.max_attempts;
  if (!retry) {
    transition(self, "failed", outcome.error_type + ": " + outcome.error_message, [=] { finish_actor(self); });
    return;
  }
  thread_local std::mt19937 rng{std::random_device{}()};
  auto delay = retry_backoff_ms(st.record.attempts, std::uniform_real_distribution<double>(0, 1)(rng));
  // The far side said when to come back (429/503 Retry-After): that wins over the backoff.
  if (outcome.retry_after_ms > 0) delay = std::min<int64_t>(outcome.retry_after_ms, 3600 * 1000);
  st.avoid_agent = agent_id;
  auto reason = outcome.error_type + ": " + outcome.error_message + "; retry in " + std::to_string(delay) + " ms";
  transition(self, "pending", reason, [=] {
    self->delayed_send(self, std::chrono::milliseconds(delay), retry_timer_atom::value, self->state.attempt_epoch);
  });
}

// The attempt ran out of time: the agent is told to stop it; its late answer is ignored.
void time_out_attempt(TaskActor* self) {
  Outcome o;
  o.error_type = "timeout";
  o.error_message = "no result within " + std::to_string(self->state.record.timeout_ms) + " ms";
  if (self->state.agent) self->send(self->state.agent, cancel_atom::value, self->state.record.id);
  end_attempt(self, std::move(o));
}

// `batch` holds the assignment's event: assigned and running are one write.
void start_attempt(TaskActor* self, runtime::WriteBatch batch) {
  auto& st = self->state;
  st.record.started_at = runtime::now_ms();
  record_transition(self, "running", "", batch);
  persist_state(self, std::move(batch));
  auto epoch = st.attempt_epoch;
  auto ms = std::max<int64_t>(1, st.record.timeout_ms);
  // Long attempts are watched by the scheduler (overdue_atom below); short ones by CAF.
  auto timeout = ms >= kWatchedTimeoutMs ? caf::duration{caf::infinite} : caf::duration{std::chrono::milliseconds(ms)};
  st.attempt_running = true;
  self->request(st.agent, timeout, execute_atom::value, st.record)
      .then(
          [=](Outcome& outcome) {
            if (epoch == self->state.attempt_epoch) end_attempt(self, std::move(outcome));
          },
          [=](caf::error& err) {
            if (epoch != self->state.attempt_epoch) return;
            if (err == caf::sec::request_timeout) return time_out_attempt(self);
            Outcome o;
            o.error_type = "crashed";
            o.error_message = "the agent stopped during the attempt: " + self->system().render(err);
            end_attempt(self, std::move(o));
          });
}

// The scheduler placed the task on `agent`: the attempt starts.
void assign(TaskActor* self, caf::actor agent, const std::string& agent_id) {
  auto& st = self->state;
  if (st.cancelling || st.record.status != "pending") {
    self->send(st.scheduler, released_atom::value, st.record.id);
    return;
  }
  st.agent = std::move(agent);
  st.record.assigned_agent = agent_id;
  if (st.record.error_type == "no_matching_agent") st.record.error_type.clear(), st.record.error_message.clear();
  st.record.attempts += 1;
  runtime::WriteBatch batch;
  record_transition(self, "assigned", "agent " + agent_id, batch);
  start_attempt(self, std::move(batch));
}

caf::behavior task_actor(TaskActor* self, TaskRecord record, caf::actor scheduler, caf::actor store, caf::actor agent,
                         std::string agent_id) {
  auto& st = self->state;
  st.record = std::move(record);
  st.scheduler = std::move(scheduler);
  st.store = std::move(store);
  // A crash (an exception) is reported to the scheduler, which restarts the task from the store.
  self->attach_functor([scheduler = st.scheduler, id = st.record.id, addr = self->address()](const caf::error& reason) {
    if (reason && reason != caf::exit_reason::normal)
      caf::anon_send(scheduler, task_crashed_atom::value, id, addr, caf::to_string(reason));
  });
  self->describe("task", st.record.id, st.scheduler, true);
  self->set_state(st.record.status);
  // Started by its placement (the scheduler queued it as a record), or queued by itself.
  if (agent) assign(self, std::move(agent), agent_id);
  else self->send(st.scheduler, ready_atom::value, as_queued(self));
  return {
      [=](runtime::introspection::introspect_atom) {
        auto& st = self->state;
        const auto& r = st.record;
        return json{{"task_id", r.id},
                    {"status", r.status},
                    {"type", r.type},
                    {"priority", r.priority},
                    {"attempts", r.attempts},
                    {"max_attempts", r.max_attempts},
                    {"attempt_epoch", st.attempt_epoch},
                    {"assigned_agent", r.assigned_agent.empty() ? json() : json(r.assigned_agent)},
                    {"in_attempt", bool(st.agent)},
                    {"cancelling", st.cancelling},
                    {"avoid_agent", st.avoid_agent.empty() ? json() : json(st.avoid_agent)},
                    {"writes_waiting_for_retry", st.refused.size()},
                    {"waiters", st.waiters.size()},
                    {"last_error", r.error_type.empty() ? json() : json{{"type", r.error_type}, {"message", r.error_message}}}}
            .dump();
      },
      [=](assign_atom, caf::actor agent, const std::string& agent_id) { assign(self, std::move(agent), agent_id); },
      [=](no_match_atom, bool unmatched) {
        auto& r = self->state.record;
        if (unmatched) {
          if (r.error_type == "no_matching_agent") return;  // recorded at submission
          r.error_type = "no_matching_agent";
          r.error_message = kNoMatchingAgentMessage;
        } else if (r.error_type == "no_matching_agent") {
          r.error_type.clear();
          r.error_message.clear();
        } else {
          return;
        }
        save(self);
      },
      [=](agent_down_atom, const std::string& agent_id) {
        auto& st = self->state;
        if (!st.agent || st.record.assigned_agent != agent_id) return;
        Outcome o;
        o.error_type = "crashed";
        o.error_message = "agent " + agent_id + " crashed during the attempt (its supervisor restarted it)";
        end_attempt(self, std::move(o));
      },
      [=](overdue_atom) {
        // The scheduler's watchdog: this task's attempt may have run past its timeout.
        auto& st = self->state;
        if (!st.attempt_running || st.record.status != "running") return;
        if (runtime::now_ms() - st.record.started_at < std::max<int64_t>(1, st.record.timeout_ms)) return;
        time_out_attempt(self);
      },
      [=](retry_timer_atom, uint64_t epoch) {
        auto& st = self->state;
        if (epoch != st.attempt_epoch || st.cancelling || st.record.status != "pending") return;
        self->send(st.scheduler, ready_atom::value, as_queued(self));
      },
      [=](persist_tick_atom, uint64_t id) {
        auto& st = self->state;
        auto it = st.refused.find(id);
        if (it == st.refused.end()) return;
        auto [batch, then] = std::move(it->second);
        st.refused.erase(it);
        persist(self, std::move(batch), std::move(then));
      },
      [=](cancel_atom) -> caf::result<TaskRecord> {
        auto& st = self->state;
        auto rp = self->make_response_promise();
        st.cancel_waiters.push_back(rp);
        if (st.cancelling) return caf::delegated<TaskRecord>{};
        st.cancelling = true;
        if (st.agent && st.record.status == "running") {
          // The agent answers the running attempt with "cancelled"; end_attempt persists it.
          self->send(st.agent, cancel_atom::value, st.record.id);
        } else {
          release_agent(self);
          ++st.attempt_epoch;
          st.record.error_type = "cancelled";
          st.record.error_message = "cancelled by request";
          transition(self, "cancelled", "cancelled by request", [=] { finish_actor(self); });
        }
        return caf::delegated<TaskRecord>{};
      },
      [=](wait_atom) -> caf::result<bool> {
        self->state.waiters.push_back(self->make_response_promise());
        return caf::delegated<bool>{};
      },
  };
}

}  // namespace

caf::actor spawn_task(caf::actor_system& system, TaskRecord record, caf::actor scheduler, caf::actor store,
                      caf::actor agent, std::string agent_id) {
  return system.spawn(task_actor, std::move(record), std::move(scheduler), std::move(store), std::move(agent),
                      std::move(agent_id));
}

}  // namespace hub::actors
