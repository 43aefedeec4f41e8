// Supervision and circuit breakers for operators: GET /api/supervisors (the supervision
// tree with each child's restarts), GET /api/breakers (every breaker with its state, counts,
// last transition and reason), POST /api/breakers/{id}/reset (admin: close it by hand).
#include "actors/supervisor.hpp"
#include "gateway/context.hpp"
#include "runtime/breaker.hpp"
#include "runtime/clock.hpp"

#include <caf/actor_system.hpp>
#include <caf/scoped_actor.hpp>
#include <httplib.h>
#include <spdlog/spdlog.h>

#include <set>

namespace hub::gateway {

namespace {

json breaker_view(const runtime::BreakerSnapshot& b) {
  return {{"id", b.id},
          {"kind", b.kind},
          {"target", b.target},
          {"state", b.state},
          {"successes", b.successes},
          {"failures", b.failures},
          {"slow_calls", b.slow_calls},
          {"rejected_calls", b.rejected},
          {"consecutive_failures", b.consecutive_failures},
          {"window", {{"calls", b.window_calls}, {"failure_rate", b.failure_rate}}},
          {"trips", b.trips},
          {"open_until", b.open_until_ms ? json(runtime::rfc3339(b.open_until_ms)) : json()},
          {"last_transition_at", b.last_transition_ms ? json(runtime::rfc3339(b.last_transition_ms)) : json()},
          {"last_reason", b.last_reason.empty() ? json() : json(b.last_reason)}};
}

void list_breakers(Call& call) {
  static const std::set<std::string> allowed{"state", "kind"};
  for (const auto& [key, _] : call.req.params)
    if (!allowed.count(key))
      return send_error(call, ApiError::bad_request(key, "unknown query parameter \"" + key + "\"; allowed: state, kind"));
  auto state = call.req.get_param_value("state"), kind = call.req.get_param_value("kind");
  static const std::set<std::string> states{"", "closed", "open", "half_open"}, kinds{"", "agent", "endpoint", "store"};
  if (!states.count(state)) return send_error(call, ApiError::bad_request("state", "\"state\" must be closed, open or half_open"));
  if (!kinds.count(kind)) return send_error(call, ApiError::bad_request("kind", "\"kind\" must be agent, endpoint or store"));
  json breakers = json::array();
  json counts = {{"closed", 0}, {"open", 0}, {"half_open", 0}};
  for (const auto& b : runtime::BreakerRegistry::global().list(runtime::now_ms())) {
    counts[b.state] = counts[b.state].get<int>() + 1;
    if ((!state.empty() && b.state != state) || (!kind.empty() && b.kind != kind)) continue;
    breakers.push_back(breaker_view(b));
  }
  send_data(call, 200, {{"breakers", breakers}, {"total", breakers.size()}, {"by_state", counts}});
}

void reset_breaker(Call& call) {
  const auto& id = call.path_params.at("id");
  auto breaker = runtime::BreakerRegistry::global().find(id);
  if (!breaker) return send_error(call, ApiError::not_found("no circuit breaker " + id + " (GET /api/breakers lists them)"));
  auto who = call.principal ? call.principal->name : std::string("anonymous");
  breaker->reset(runtime::now_ms(), "reset by " + who);
  send_data(call, 200, breaker_view(breaker->snapshot(runtime::now_ms())));
}

void supervision_tree(Context& ctx, Call& call) {
  if (!ctx.attached || !ctx.supervisor_root) return send_error(call, ApiError::unavailable("the node is starting", 1));
  thread_local std::unique_ptr<caf::scoped_actor> self;
  if (!self) self = std::make_unique<caf::scoped_actor>(*ctx.deps.system);
  std::optional<ApiError> error;
  json tree;
  (*self)->request(ctx.supervisor_root, std::chrono::seconds(5), actors::tree_atom::value)
      .receive([&](std::string& text) { tree = json::parse(text, nullptr, false); },
               [&](caf::error& err) { error = error_from_actor(err); });
  if (error) return send_error(call, *error);
  send_data(call, 200, {{"root", tree}});
}

}  // namespace

void add_resilience_routes(Router& router, Context& ctx) {
  router.add("GET", "/api/supervisors", [&ctx](Call& c) { supervision_tree(ctx, c); });
  router.add("GET", "/api/breakers", [](Call& c) { list_breakers(c); });
  router.add("POST", "/api/breakers/{id}/reset", [](Call& c) { reset_breaker(c); });
}

}  // namespace hub::gateway
