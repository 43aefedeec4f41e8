// The agent actor: one per agent. Runs up to max_concurrent_tasks attempts at once through
// its executor, learns from each outcome (DESIGN.md §3) and reports its state to the
// scheduler; persists its definition and learned proficiencies through the store actor.
// Executors exec and http run in executor workers (actors/executor.hpp); each call passes
// the agent's circuit breaker and its endpoint's. Must never block a scheduler thread.
#pragma once

#include "actors/executor.hpp"
#include "runtime/breaker.hpp"
#include "runtime/domain.hpp"

#include <caf/fwd.hpp>

#include <string>

namespace hub::actors {

struct AgentOptions {
  ExecutorPolicy executors;
  runtime::BreakerPolicy breaker;
  bool fault_injection = false;  // the builtin "crash" task type throws
  caf::actor neural;             // the neural pool (neural.train / neural.infer tasks); null: off
};

// The breaker ids of an agent: its own, and its executor endpoint's ("" for builtin).
std::string agent_breaker_id(const std::string& agent_id);

// `restarted`: started again by its supervisor after a crash; it reloads its learned
// proficiencies and counters from the store.
caf::actor spawn_agent(caf::actor_system& system, runtime::AgentRecord record, caf::actor scheduler,
                       caf::actor store, const AgentOptions& options, bool restarted = false);

// The builtin handlers an agent runs by task type: echo, sleep, fail, hash (and crash,
// with fault injection on).
bool is_builtin_handler(const std::string& type);

// SHA-256 of `data`, hashed `rounds` times (hex of the last digest).
std::string sha256_rounds(const std::string& data, int64_t rounds);

// Capability learning (DESIGN.md §3): success +learning_rate*0.1, failure -learning_rate*0.05.
double learned_proficiency(double proficiency, double learning_rate, bool success);

}  // namespace hub::actors
