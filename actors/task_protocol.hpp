// The conversation between the gateway, the scheduler, task actors, agent actors and the
// store, in one place. Atoms and message types of this protocol are declared here only.
//
// gateway -> scheduler
//   (submit_atom, vector<TaskRecord>)        -> SubmitReply      all persisted, or error
//   (retry_atom, TaskRecord)                 -> TaskRecord       a failed/cancelled task again
//   (cancel_atom, id)                        -> TaskRecord
//   (wait_atom, id)                          -> bool             true once terminal (or not live)
//   (create_atom, AgentRecord)               -> AgentRecord
//   (list_atom)                              -> vector<AgentRecord>  live view, with load
//   (get_atom, id)                           -> AgentRecord
//   (delete_atom, id) / (pause_atom, id) / (resume_atom, id) -> AgentRecord
//   (status_atom)                            -> string (JSON of the scheduler's view)
//   (drain_atom)                             -> bool             stop placing; true when idle
//   (kill_agent_atom, id)                    -> bool             kill the agent's actor (chaos drills: its supervisor restarts it)
// scheduler -> task:   (assign_atom, agent, agent_id), (cancel_atom) -> TaskRecord, (wait_atom) -> bool,
//                      (no_match_atom, bool)  no agent could ever run it (true) / now one could (false)
//                      (agent_down_atom, agent_id)  the agent of its attempt crashed (its supervisor restarted it)
// task -> scheduler:   (ready_atom, QueuedTask), (released_atom, task_id), (finished_atom, id, status),
//                      (task_crashed_atom, id, actor_addr, reason)  the task actor died abnormally
// task -> agent:       (execute_atom, TaskRecord) -> Outcome;   (cancel_atom, task_id)
// agent -> executor worker: (run_atom, ExecutorCall) -> Outcome  (actors/executor.hpp)
// agent -> scheduler:  (agent_update_atom, AgentRecord)
//                      (attempt_done_atom, agent_id, task_type, priority, ok, duration_ms)  what learned routing learns from
#pragma once

#include "runtime/domain.hpp"

#include <caf/actor.hpp>
#include <caf/atom.hpp>
#include <caf/meta/type_name.hpp>

#include <string>
#include <vector>

namespace hub::actors {

using submit_atom = caf::atom_constant<caf::atom("submit")>;
using retry_atom = caf::atom_constant<caf::atom("retry")>;
using cancel_atom = caf::atom_constant<caf::atom("cancel")>;
using wait_atom = caf::atom_constant<caf::atom("wait")>;
using create_atom = caf::atom_constant<caf::atom("create")>;
using list_atom = caf::atom_constant<caf::atom("list")>;
using get_atom = caf::atom_constant<caf::atom("get")>;
using delete_atom = caf::atom_constant<caf::atom("delete")>;
using pause_atom = caf::atom_constant<caf::atom("pause")>;
using resume_atom = caf::atom_constant<caf::atom("resume")>;
using status_atom = caf::atom_constant<caf::atom("status")>;
using drain_atom = caf::atom_constant<caf::atom("drain")>;
using assign_atom = caf::atom_constant<caf::atom("assign")>;
using ready_atom = caf::atom_constant<caf::atom("ready")>;
using released_atom = caf::atom_constant<caf::atom("released")>;
using finished_atom = caf::atom_constant<caf::atom("finished")>;
using execute_atom = caf::atom_constant<caf::atom("execute")>;
using agent_update_atom = caf::atom_constant<caf::atom("agent_upd")>;
using tick_atom = caf::atom_constant<caf::atom("tick")>;
using retry_timer_atom = caf::atom_constant<caf::atom("retry_tmr")>;
using sleep_done_atom = caf::atom_constant<caf::atom("sleep_done")>;
using no_match_atom = caf::atom_constant<caf::atom("no_match")>;
using boot_atom = caf::atom_constant<caf::atom("boot")>;
using persist_tick_atom = caf::atom_constant<caf::atom("pers_tick")>;
using run_atom = caf::atom_constant<caf::atom("run")>;
using task_crashed_atom = caf::atom_constant<caf::atom("task_crash")>;
using kill_agent_atom = caf::atom_constant<caf::atom("kill_agent")>;
using agent_down_atom = caf::atom_constant<caf::atom("agent_down")>;
using attempt_done_atom = caf::atom_constant<caf::atom("att_done")>;
using sim_done_atom = caf::atom_constant<caf::atom("sim_done")>;
using routing_tick_atom = caf::atom_constant<caf::atom("route_tick")>;
using overdue_atom = caf::atom_constant<caf::atom("overdue")>;

// A task as the scheduler's queues see it: enough to place it, nothing more.
struct QueuedTask {
  caf::actor task;
  std::string id;
  int32_t priority_rank = 2;
  std::vector<runtime::RequiredCapability> required;
  std::string avoid_agent;  // the agent whose attempt just failed: another one, if any fits
  std::string type;         // learned routing predicts per (agent, task type)
  int64_t timeout_ms = 0;   // of an attempt: long ones are watched by the scheduler's tick
};

// Attempts at least this long are not timed by a CAF request timeout (a timer event, a
// cancellation and a wake-up of CAF's clock thread for every attempt) but by the scheduler's
// one-second tick, which tells an overdue task so: within a second of its deadline.
constexpr int64_t kWatchedTimeoutMs = 5000;

struct SubmitReply {
  std::vector<runtime::TaskRecord> tasks;
  std::vector<std::string> created;  // "1" created now, "0" existed (idempotency key)
};

// What an executor made of one attempt.
struct Outcome {
  bool ok = false;
  std::string result_json;  // when ok
  std::string error_type;   // timeout|exit_code|http_status|connection|crashed|breaker_open|cancelled|failed
  std::string error_message;
  bool retryable = true;
  int64_t retry_after_ms = 0;  // the far side asked to wait this long (Retry-After)
  bool not_attempted = false;  // refused before it ran (breaker_open): the attempt does not count
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, QueuedTask& x) {
  return f(caf::meta::type_name("queued_task"), x.task, x.id, x.priority_rank, x.required, x.avoid_agent, x.type, x.timeout_ms);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, SubmitReply& x) {
  return f(caf::meta::type_name("submit_reply"), x.tasks, x.created);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, Outcome& x) {
  return f(caf::meta::type_name("outcome"), x.ok, x.result_json, x.error_type, x.error_message, x.retryable,
           x.retry_after_ms, x.not_attempted);
}

// Refusals travel as caf::error(sec::runtime_error, "<code>|<message>"), with codes
// not_found, conflict, queue_full, unavailable, limit; the gateway maps them to HTTP.
inline constexpr char kErrorSeparator = '|';

inline constexpr const char* kNoMatchingAgentMessage =
    "no agent holds every required capability at its minimum proficiency; the task waits for one";

}  // namespace hub::actors
