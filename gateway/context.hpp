// What the gateway's routes share: dependencies, readiness, and the bridge from an HTTP
// thread into the actor system (one scoped_actor per thread). Internal to gateway/.
#pragma once

#include "gateway/api.hpp"
#include "gateway/gateway.hpp"
#include "gateway/security.hpp"

#include <caf/actor.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <variant>

namespace hub::gateway {

// Event streams and long-polls open per client (credential, or address when the API is open):
// one client may not take every slot of the stream lane ([server] max_streams_per_client).
class StreamSlots {
 public:
  using Slot = std::shared_ptr<void>;  // the slot is given back when the last copy goes
  // A slot, or nullptr when the client holds `limit` already.
  Slot take(const std::string& client, int limit);

 private:
  std::mutex mutex_;
  std::unordered_map<std::string, int> open_;
};

struct Context {
  explicit Context(GatewayDeps d) : deps(std::move(d)), security(*deps.config) {}
  StreamSlots streams;
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

// Writes an entry to the audit log (through the store actor's group commit). Security events
// (auth.login, auth.lockout, auth.refresh, auth.refresh_replay, auth.logout, auth.denied) are
// always recorded; ordinary requests only with [security] audit_logging_enabled.
void record_audit(Context& ctx, const Call& call, const std::string& action, const std::string& actor, const std::string& role,
                  int status);

// A stream slot for the caller, or nullptr after answering 429 too_many_streams.
StreamSlots::Slot take_stream_slot(Context& ctx, Call& call);

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
