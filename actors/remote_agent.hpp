// Agents on other nodes. A task actor placed on a remote agent talks to a local stand-in
// (one per peer node) exactly as to a local agent: (execute_atom, TaskRecord) -> Outcome and
// (cancel_atom, task_id). The stand-in carries the attempt to the peer's scheduler as
// Protobuf (runtime/proto/cluster.proto), which runs it on the agent and answers the same way.
// The stand-in monitors the peer's scheduler: when that node dies every attempt it carries
// ends at once as `crashed` (placed again, elsewhere).
#pragma once

#include "actors/task_protocol.hpp"

#include <caf/actor.hpp>
#include <caf/fwd.hpp>

#include <string>

namespace hub::actors {

caf::actor spawn_remote_agent(caf::actor_system& system, std::string node, caf::actor remote_scheduler);

std::string encode_outcome(const Outcome& outcome);
bool decode_outcome(const std::string& bytes, Outcome& outcome);

}  // namespace hub::actors
