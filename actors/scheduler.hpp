// The scheduler: the node's agent directory and task queues. Places each ready task on the
// best agent (DESIGN.md §3: every required capability at its minimum proficiency, not
// failed or paused, a free slot; scored by fitness and load), per-priority FIFO queues
// (critical > high > medium > low), a node-wide limit of running tasks, and a bound on
// live tasks (backpressure). A queued task is a compact record in its queue; its actor starts
// when the task is placed (or asked to wait or cancel). Spawns and tracks task and agent actors (the agent supervisor
// watches the agents; the scheduler itself restarts crashed task actors). Routes around
// agents whose circuit breaker (or whose endpoint's) is open.
// Protocol: actors/task_protocol.hpp.
#pragma once

#include "actors/agent.hpp"
#include "runtime/domain.hpp"

#include <caf/actor.hpp>
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
  AgentOptions agent_options;              // executors, breakers, fault injection
  int64_t lease_ms = 30000;                // task leases: renewed every lease_ms / 3; expired ones claimed
  caf::actor agent_supervisor;             // supervises the agent actors the scheduler starts
  // [neural] mode = "advanced": the neural pool (agent_options.neural) learns from every
  // finished attempt to predict, per (agent, task type), the chance of success and the
  // duration; placement scores by the expected time to a success instead of the heuristic.
  bool learned_routing = false;
  int routing_max_agents = 1000;  // [neural] max_agents: agents the model learns (the rest: the heuristic)
};

struct SupervisionOptions {
  std::string agent_strategy = "one_for_one";
  int max_restarts = 10;
  int64_t period_ms = 60000;
};

// The node's supervision tree: root (one_for_one) -> "agents" (the agent supervisor, by
// `supervision`), "tasks" (the scheduler: it restarts a crashed task actor from its stored
// record; its own crash escalates). Stopping `root` stops all of it.
struct NodeActors {
  caf::actor root;
  caf::actor agents;
  caf::actor scheduler;
};
NodeActors spawn_node_actors(caf::actor_system& system, SchedulerOptions options, const SupervisionOptions& supervision,
                             caf::actor store);

caf::actor spawn_scheduler(caf::actor_system& system, SchedulerOptions options, caf::actor store);

// The score of an agent for a task, or a negative number when it does not fit at all
// (missing capability or proficiency below the minimum). Load is not considered here.
double fitness(const runtime::AgentRecord& agent, const std::vector<runtime::RequiredCapability>& required);

}  // namespace hub::actors
