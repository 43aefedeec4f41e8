// The agent actor: one per agent. Runs up to max_concurrent_tasks attempts at once through
// its executor, learns from each outcome (DESIGN.md §3) and reports its state to the
// scheduler; persists its definition and learned proficiencies through the store actor.
// Must never block a scheduler thread (timers, not sleeps).
#pragma once

#include "runtime/domain.hpp"

#include <caf/fwd.hpp>

#include <string>

namespace hub::actors {

caf::actor spawn_agent(caf::actor_system& system, runtime::AgentRecord record, caf::actor scheduler,
                       caf::actor store);

// The builtin handlers an agent runs by task type: echo, sleep, fail, hash.
bool is_builtin_handler(const std::string& type);

// SHA-256 of `data`, hashed `rounds` times (hex of the last digest).
std::string sha256_rounds(const std::string& data, int64_t rounds);

// Capability learning (DESIGN.md §3): success +learning_rate*0.1, failure -learning_rate*0.05.
double learned_proficiency(double proficiency, double learning_rate, bool success);

}  // namespace hub::actors
