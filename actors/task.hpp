// The task actor: one per task that has been placed, is retrying or is being waited on or
// cancelled (a task that only waits in a queue is a record in the scheduler). Owns the state machine
// pending -> assigned -> running -> completed | failed | cancelled, the attempt timeout,
// retries with exponential backoff (1 s x2, capped at 60 s, +-10 % jitter) and
// cancellation. Every transition is durable (store actor) before anyone hears of it.
#pragma once

#include "runtime/domain.hpp"

#include <caf/actor.hpp>
#include <caf/fwd.hpp>

#include <cstdint>
#include <string>

namespace hub::actors {

// `record` is already persisted in its current status (pending). With an `agent`, the task
// starts placed on it (the scheduler held it as a queued record until now); without one it
// asks the scheduler for a place (ready_atom).
caf::actor spawn_task(caf::actor_system& system, runtime::TaskRecord record, caf::actor scheduler, caf::actor store,
                      caf::actor agent = {}, std::string agent_id = {});

// Backoff before attempt `attempt + 1`, given `attempt` >= 1 failures; `unit` in [0, 1) picks the jitter.
int64_t retry_backoff_ms(int attempt, double unit);

}  // namespace hub::actors
