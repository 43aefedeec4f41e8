// What the gateway's routes share: dependencies, readiness, and the bridge from an HTTP
// thread into the actor system (one scoped_actor per thread). Internal to gateway/.
#pragma once

#include "gateway/api.hpp"
#include "gateway/gateway.hpp"
#include "gateway/security.hpp"

#include <caf/actor.hpp>

#include <atomic>
#include <chrono>
#include <variant>

namespace hub::gateway {

struct Context {
  explicit Context(GatewayDeps d) : deps(std::move(d)), security(*deps.config) {}
  GatewayDeps deps;
  Security security;
  caf::actor store_actor;  // for audit entries (group commit)
  std::atomic<bool> ready{false};
  std::atomic<bool> attached{false};
  std::atomic<bool> draining{false};
  caf::actor scheduler;             // written once, before attached is set
  caf::actor supervisor_root;       // idem
  caf::actor cluster;               // the node manager; null when clustering is off
  runtime::Store* store = nullptr;  // idem
};

// Asks the scheduler from an HTTP thread; refusals and timeouts become ApiErrors.
template <class T>
using Answer = std::variant<T, ApiError>;
ApiError error_from_actor(const caf::error& err);

void add_system_routes(Router& router, Context& ctx);
void add_monitoring_routes(Router& router, Context& ctx);
void add_auth_routes(Router& router, Context& ctx);

// What a route needs from the caller; nullopt: open to everyone.
std::optional<Permission> permission_for(const std::string& method, const std::string& route, const config::Config& cfg);
void add_api_routes(Router& router, Context& ctx);
void add_resilience_routes(Router& router, Context& ctx);
void add_cluster_routes(Router& router, Context& ctx);
void add_introspection_routes(Router& router, Context& ctx);
void add_web_routes(Router& router);
// The membership in brief, for /health and /metrics: {"enabled", "nodes", "by_status", "leader"}.
json cluster_summary(Context& ctx);

}  // namespace hub::gateway
