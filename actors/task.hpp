// The task actor: one per live (non-terminal) task. Owns the state machine
// pending -> assigned -> running -> completed | failed | cancelled, the attempt timeout,
// retries with exponential backoff (1 s x2, capped at 60 s, +-10 % jitter) and
// cancellation. Every transition is durable (store actor) before anyone hears of it.
#pragma once

#include "runtime/domain.hpp"

#include <caf/fwd.hpp>

#include <cstdint>

namespace hub::actors {

// `record` is already persisted in its current status (pending).
caf::actor spawn_task(caf::actor_system& system, runtime::TaskRecord record, caf::actor scheduler, caf::actor store);

// Backoff before attempt `attempt + 1`, given `attempt` >= 1 failures; `unit` in [0, 1) picks the jitter.
int64_t retry_backoff_ms(int attempt, double unit);

}  // namespace hub::actors
