// The scheduler: the node's agent directory and task queues. Places each ready task on the
// best agent (DESIGN.md §3: every required capability at its minimum proficiency, not
// failed or paused, a free slot; scored by fitness and load), per-priority FIFO queues
// (critical > high > medium > low), a node-wide limit of running tasks, and a bound on
// live tasks (backpressure). Spawns and tracks task and agent actors.
// Protocol: actors/task_protocol.hpp.
#pragma once

#include "runtime/domain.hpp"

#include <caf/fwd.hpp>

#include <string>
#include <vector>

namespace hub::actors {

struct SchedulerOptions {
  std::string node;
  int max_concurrent_tasks = 256;  // running at once on this node
  int max_live_tasks = 100000;     // non-terminal tasks held; beyond: queue_full
  int max_agents = 1000;
  int default_agent_concurrency = 4;
  std::vector<std::string> default_pool;  // "type:capability:count", created on first boot
};

caf::actor spawn_scheduler(caf::actor_system& system, SchedulerOptions options, caf::actor store);

// The score of an agent for a task, or a negative number when it does not fit at all
// (missing capability or proficiency below the minimum). Load is not considered here.
double fitness(const runtime::AgentRecord& agent, const std::vector<runtime::RequiredCapability>& required);

}  // namespace hub::actors
