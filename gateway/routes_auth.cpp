// Sessions and the audit trail: POST /api/auth/login|refresh|logout, GET /api/auth/me,
// GET /api/audit; and the one table of which permission each route needs.
#include "gateway/context.hpp"
#include "gateway/model.hpp"
#include "runtime/clock.hpp"
#include "runtime/store/store.hpp"

#include <httplib.h>

namespace hub::gateway {

std::optional<Permission> permission_for(const std::string& method, const std::string& route, const config::Config& cfg) {
  if (route == "/health" || route == "/livez" || route == "/readyz" || route == "unmatched") return std::nullopt;
  if (route == "/" || route == "/ui/{file}") return std::nullopt;  // the dashboard asks for credentials itself
  if (route == "/api/auth/login" || route == "/api/auth/refresh") return std::nullopt;
  if (route == "/metrics") return cfg.security.metrics_require_auth ? std::optional(Permission::read) : std::nullopt;
  if (route == "/api/auth/me" || route == "/api/auth/logout") return Permission::authenticated;
  if (route == "/api/audit") return Permission::admin;
  if (method == "GET" || method == "HEAD") return Permission::read;
  if (route == "/api/tasks" || route == "/api/tasks/batch") return Permission::submit;
  if (route.rfind("/api/tasks/", 0) == 0) return Permission::manage_tasks;
  if (route.rfind("/api/agents", 0) == 0) return Permission::manage_agents;
  return Permission::admin;
}

namespace {

json session_json(const Session& s) {
  return {{"token", s.access_token},
          {"token_type", "Bearer"},
          {"expires_in", s.expires_in_s},
          {"refresh_token", s.refresh_token},
          {"user", {{"username", s.username}, {"role", s.role}}}};
}

std::optional<ApiError> string_field(const json& body, const char* name, std::string& out, bool required = true) {
  if (!body.contains(name) || body[name].is_null()) {
    if (required) return ApiError::bad_request(name, std::string("\"") + name + "\" is required");
    return std::nullopt;
  }
  if (!body[name].is_string() || body[name].get<std::string>().empty() || body[name].get<std::string>().size() > 1024)
    return ApiError::bad_request(name, std::string("\"") + name + "\" must be a non-empty string");
  out = body[name].get<std::string>();
  return std::nullopt;
}

bool ready_for_sessions(Context& ctx, Call& call) {
  if (ctx.attached) return true;
  send_error(call, ApiError::unavailable("the node is starting", 1));
  return false;
}

}  // namespace

void add_auth_routes(Router& router, Context& ctx) {
  router.add("POST", "/api/auth/login", [&ctx](Call& call) {
    if (!ready_for_sessions(ctx, call)) return;
    json body;
    if (auto e = parse_json_body(call, body)) return send_error(call, *e);
    std::string username, password, client_type;
    if (auto e = string_field(body, "username", username)) return send_error(call, *e);
    if (auto e = string_field(body, "password", password)) return send_error(call, *e);
    if (auto e = string_field(body, "client_type", client_type, false)) return send_error(call, *e);
    const auto& client = call.req.remote_addr;
    // Failed logins also count against the client's address, not only the user name.
    auto quota = ctx.security.take("login:" + client);
    if (!quota.allowed) {
      send_error(call, ApiError{429, "rate_limited", "too many login attempts from this address", {}, quota.retry_after_s});
      return record_audit(ctx, call, "auth.login", username, "", 429);
    }
    auto result = ctx.security.login(username, password, client);
    if (auto* e = std::get_if<ApiError>(&result.outcome)) {
      send_error(call, *e);
      record_audit(ctx, call, "auth.login", username, "", e->status);
      if (result.locked_now) record_audit(ctx, call, "auth.lockout", username, "", 429);
      return;
    }
    const auto& session = std::get<Session>(result.outcome);
    send_data(call, 200, session_json(session));
    record_audit(ctx, call, "auth.login", session.username, session.role, 200);
  });
  router.add("POST", "/api/auth/refresh", [&ctx](Call& call) {
    if (!ready_for_sessions(ctx, call)) return;
    json body;
    if (auto e = parse_json_body(call, body)) return send_error(call, *e);
    std::string token;
    if (auto e = string_field(body, "refresh_token", token)) return send_error(call, *e);
    auto result = ctx.security.refresh(token);
    if (auto* e = std::get_if<ApiError>(&result.outcome)) {
      send_error(call, *e);
      return record_audit(ctx, call, result.replayed ? "auth.refresh_replay" : "auth.refresh",
                          result.username.empty() ? "anonymous" : result.username, "", e->status);
    }
    const auto& session = std::get<Session>(result.outcome);
    send_data(call, 200, session_json(session));
    record_audit(ctx, call, "auth.refresh", session.username, session.role, 200);
  });
  router.add("POST", "/api/auth/logout", [&ctx](Call& call) {
    std::string refresh_token;
    if (!call.req.body.empty()) {
      json body;
      if (auto e = parse_json_body(call, body)) return send_error(call, *e);
      if (auto e = string_field(body, "refresh_token", refresh_token, false)) return send_error(call, *e);
    }
    ctx.security.logout(*call.principal, refresh_token);
    send_data(call, 200, {{"logged_out", true}});
    record_audit(ctx, call, "auth.logout", call.principal->name, call.principal->role, 200);
  });
  router.add("GET", "/api/auth/me", [](Call& call) {
    const auto& p = *call.principal;
    send_data(call, 200, {{"username", p.name}, {"role", p.role}, {"authenticated_by", p.via}});
  });
  router.add("GET", "/api/audit", [&ctx](Call& call) {
    if (!ready_for_sessions(ctx, call)) return;
    int limit = 50, offset = 0;
    if (auto e = read_paging(call.req.params, limit, offset)) return send_error(call, *e);
    int64_t total = 0;
    json entries = json::array();
    for (const auto& a : ctx.store->audit_log(limit, offset, total))
      entries.push_back({{"at", runtime::rfc3339(a.at)}, {"actor", a.actor}, {"role", a.role}, {"action", a.action},
                         {"resource", a.resource}, {"status", a.status}, {"request_id", a.request_id}, {"client", a.client}});
    send_data(call, 200, {{"entries", entries}, {"total", total}, {"limit", limit}, {"offset", offset},
                          {"enabled", ctx.deps.config->security.audit_logging_enabled}});
  });
}

}  // namespace hub::gateway
