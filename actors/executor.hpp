// Executors: how an agent runs a task in the outside world. `exec` runs a command (no
// shell; the task JSON on stdin; stdout is the result; the whole process group is killed on
// timeout or cancel); `http` POSTs the task JSON to an endpoint and takes the response JSON.
// Both block, so they run in executor worker actors (detached: one thread each), never on
// the cooperative scheduler. Only commands and hosts the policy allows may be configured.
#pragma once

#include "actors/task_protocol.hpp"
#include "config/config.hpp"

#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/fwd.hpp>

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace hub::actors {

struct ExecutorPolicy {
  // Whole command lines: "program arg ..." (globs per argument, a last "..." for any further
  // arguments); empty: exec disabled. See command_allowed().
  std::vector<std::string> allowed_commands;
  std::vector<std::string> allowed_cwd;       // directories executor.cwd may be in
  int64_t max_output_bytes = 1 << 20;
  std::vector<std::string> allowed_hosts;     // "host" or "host:port"; empty: http disabled
  int64_t max_response_bytes = 8 << 20;
};

ExecutorPolicy executor_policy(const config::AgentsConfig& agents);

struct ExecutorProblem {
  std::string field;  // e.g. "executor.command"
  std::string message;
};

// Checks an executor definition (JSON text) against the policy. Builtin is always fine.
std::optional<ExecutorProblem> check_executor(const std::string& executor_json, const ExecutorPolicy& policy);

// Whether `argv` is one of the command lines `allowed` names (see ExecutorPolicy).
bool command_allowed(const std::vector<std::string>& argv, const std::vector<std::string>& allowed);

// An executor definition as anyone may see it: header and environment values, and a password
// in the URL, replaced by "[redacted]" (their names stay).
std::string redact_executor(const std::string& executor_json);

// "builtin", "exec" or "http" of a definition that passed check_executor.
std::string executor_kind(const std::string& executor_json);

// The id of the breaker of the executor's endpoint: "exec:_usr_bin_python3" (the command,
// slashes as underscores), "http:host:port"; "" for builtin.
std::string executor_endpoint(const std::string& executor_json);

// One attempt, for a worker.
struct ExecutorCall {
  std::string executor_json;
  std::string task_json;  // the task as the executor sees it (stdin / request body)
  std::shared_ptr<std::atomic<bool>> cancel = std::make_shared<std::atomic<bool>>(false);
  std::shared_ptr<std::atomic<bool>> owner_gone;  // set when the agent stops: abandon at once
};

// Runs one attempt to its end (blocking). Never throws.
Outcome run_executor(const ExecutorCall& call, const ExecutorPolicy& policy);

// A detached worker: (run_atom, ExecutorCall) -> Outcome. It quits when `owner` goes down.
caf::actor spawn_executor_worker(caf::actor_system& system, ExecutorPolicy policy, caf::actor owner);

}  // namespace hub::actors

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(hub::actors::ExecutorCall)
