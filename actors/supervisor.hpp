// Supervisors (Erlang/OTP as the model): a supervisor watches its children and restarts
// one that crashed (any exit other than a normal one), by its strategy: one_for_one (that
// child) or rest_for_one (that child and every child started after it). Restart intensity:
// more than max_restarts within period_ms and the supervisor stops its children and exits
// with an error, so that its own parent decides (escalation). A child without a start
// function cannot be restarted: its crash escalates at once.
//
//   (adopt_atom, ChildSpec, actor)  supervise a child its owner already started
//   (tree_atom) -> string           JSON of this subtree: strategy, intensity, children, restarts
//   (listen_atom, actor)            who hears (restarted_atom, kind, id, new handle) after a restart
#pragma once

#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/atom.hpp>
#include <caf/fwd.hpp>

#include <functional>
#include <string>

namespace hub::actors {

using adopt_atom = caf::atom_constant<caf::atom("adopt")>;
using tree_atom = caf::atom_constant<caf::atom("tree")>;
using listen_atom = caf::atom_constant<caf::atom("listen")>;
using restarted_atom = caf::atom_constant<caf::atom("restarted")>;

struct SupervisorOptions {
  std::string name;
  std::string strategy = "one_for_one";  // one_for_one | rest_for_one
  int max_restarts = 10;
  int64_t period_ms = 60000;
};

struct ChildSpec {
  std::string id;
  std::string kind;                    // "agent", "supervisor", "scheduler", ...
  std::function<caf::actor()> start;   // starts it again after a crash; empty: escalate
  bool answers_tree = false;           // the child answers (tree_atom) itself (a supervisor)
};

caf::actor spawn_supervisor(caf::actor_system& system, SupervisorOptions options);

}  // namespace hub::actors

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(hub::actors::ChildSpec)
