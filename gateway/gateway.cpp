#include "gateway/gateway.hpp"

#include "gateway/context.hpp"
#include "gateway/http_server.hpp"
#include "runtime/clock.hpp"
#include "runtime/metrics.hpp"
#include "runtime/domain.hpp"
#include "runtime/store/store.hpp"
#include "runtime/store/store_actor.hpp"

#include <caf/actor_system.hpp>
#include <caf/send.hpp>

#include <httplib.h>
#include <spdlog/spdlog.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <condition_variable>
#include <unordered_map>
#include <thread>

namespace hub::gateway {

namespace {

HttpLimits limits_of(const config::Config& cfg) {
  HttpLimits l;
  l.max_body_bytes = size_t(cfg.server.max_body_bytes);
  l.max_header_count = cfg.server.max_header_count;
  l.max_header_bytes = cfg.server.max_header_bytes;
  l.request_timeout_ms = cfg.server.request_timeout_ms;
  l.max_connections = cfg.server.max_connections;
  l.max_connections_per_client = cfg.server.max_connections_per_client;
  l.api_threads = connection_threads(cfg.server.workers);
  l.stream_threads = cfg.server.max_streams;
  l.login_threads = cfg.security.max_concurrent_logins;
  return l;
}

// Which threads a route runs on: probes and logins never wait behind the API, and requests
// that live long (streams, long-polls) never hold the API's threads.
Lane lane_of_route(const std::string& route) {
  if (route == "/health" || route == "/livez" || route == "/readyz" || route == "/metrics") return Lane::probe;
  if (route == "/api/events" || route == "/api/actors/{node}/{id}/trace" || route == "/api/tasks/{id}/wait") return Lane::stream;
  if (route == "/api/auth/login") return Lane::login;
  return Lane::api;
}

}  // namespace

struct Gateway::Impl {
  explicit Impl(GatewayDeps deps)
      : ctx(std::move(deps)),
        server(
            limits_of(*ctx.deps.config),
            [this](const std::string& method, const std::string& path) { return lane_of_route(router.route_of(method, path)); },
            [](const Refusal& r, const std::string& request_id) { return error_body(r.code, r.message, request_id); }) {}
  Context ctx;
  Router router;
  HttpServer server;
  bool serving = false;
};

namespace {

std::string request_id_of(const httplib::Request& req) {
  auto given = req.get_header_value("X-Request-Id");
  bool sane = !given.empty() && given.size() <= 128 && std::all_of(given.begin(), given.end(), [](unsigned char c) {
    return std::isalnum(c) || c == '-' || c == '_' || c == '.';
  });
  return sane ? given : runtime::new_uuid();
}

void record_request(const std::string& route, const std::string& method, int status,
                    std::chrono::steady_clock::time_point started) {
  namespace m = runtime::metrics::names;
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  // The registry's children live as long as the process: each thread looks a label set up once.
  struct Children {
    runtime::metrics::Counter* requests;
    runtime::metrics::Histogram* duration;
  };
  thread_local std::unordered_map<std::string, Children> known;
  auto key = route + '\n' + method + '\n' + std::to_string(status);
  auto it = known.find(key);
  if (it == known.end()) {
    auto& registry = runtime::metrics::Registry::global();
    Children found{&registry.counter(m::http_requests, "HTTP requests answered, by route, method and status code",
                                     {{"code", std::to_string(status)}, {"method", method}, {"route", route}}),
                   &registry.histogram(m::http_duration, "HTTP request handling time in seconds, by route",
                                       runtime::metrics::latency_buckets(), {{"route", route}})};
    it = known.emplace(std::move(key), found).first;
  }
  it->second.requests->inc();
  it->second.duration->observe(seconds);
}

void add_cors(const Context& ctx, const httplib::Request& req, httplib::Response& res) {
  auto origin = req.get_header_value("Origin");
  if (origin.empty()) return;
  const auto& allowed = ctx.deps.config->server.cors_origins;
  bool any = std::find(allowed.begin(), allowed.end(), "*") != allowed.end();
  if (!any && std::find(allowed.begin(), allowed.end(), origin) == allowed.end()) return;
  res.set_header("Access-Control-Allow-Origin", any ? "*" : origin);
  res.set_header("Vary", "Origin");
  res.set_header("Access-Control-Allow-Headers", "Content-Type, Authorization, X-API-Key, X-Request-Id, Idempotency-Key");
  res.set_header("Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS");
  res.set_header("Access-Control-Max-Age", "600");
}

void audit(Context& ctx, const Call& call, const std::string& route, const Principal& who) {
  if (!ctx.deps.config->security.audit_logging_enabled) return;
  record_audit(ctx, call, call.req.method + " " + route, who.name, who.role, call.res.status);
}

// Authenticates, rate-limits and authorizes a request; answers it (and returns false)
// when it may not go on. Preflights are answered here too.
bool admit(Context& ctx, Call& call, const std::string& route) {
  const auto& req = call.req;
  add_cors(ctx, req, call.res);
  if (req.method == "OPTIONS") {
    call.res.status = 204;
    return false;
  }
  auto needed = permission_for(req.method, route, *ctx.deps.config);
  if (!needed) return true;
  auto who = ctx.security.authenticate(req.get_header_value("X-API-Key"), req.get_header_value("Authorization"), req.remote_addr);
  if (auto* e = std::get_if<ApiError>(&who)) {
    call.res.set_header("WWW-Authenticate", "Bearer realm=\"ai-orchestrator-hub\"");
    send_error(call, *e);
    record_audit(ctx, call, "auth.denied", "anonymous", "", e->status);
    return false;
  }
  auto& principal = std::get<Principal>(who);
  auto quota = ctx.security.take(principal.via == "open" ? "ip:" + req.remote_addr : principal.name);
  call.res.set_header("X-RateLimit-Limit", std::to_string(quota.limit));
  call.res.set_header("X-RateLimit-Remaining", std::to_string(quota.remaining));
  call.res.set_header("X-RateLimit-Reset", std::to_string(quota.reset_s));
  if (!quota.allowed) {
    send_error(call, ApiError{429, "rate_limited",
                              "more than " + std::to_string(quota.limit) + " requests per minute; retry after " +
                                  std::to_string(quota.retry_after_s) + " s",
                              {}, quota.retry_after_s});
    return false;
  }
  if (!role_allows(principal.role, *needed)) {
    send_error(call, ApiError{403, "forbidden", "the role \"" + principal.role + "\" may not " + req.method + " " + route, {}, 0});
    record_audit(ctx, call, req.method + " " + route, principal.name, principal.role, 403);
    return false;
  }
  call.principal = principal;
  return true;
}

void add_security_headers(httplib::Response& res) {
  res.set_header("X-Content-Type-Options", "nosniff");
  res.set_header("X-Frame-Options", "DENY");
  res.set_header("Referrer-Policy", "strict-origin-when-cross-origin");
  res.set_header("Cache-Control", "no-store");
}

}  // namespace

void record_audit(Context& ctx, const Call& call, const std::string& action, const std::string& actor, const std::string& role,
                  int status) {
  if (!ctx.store_actor) return;
  // A client that sends thousands of bad credentials would fill the log: at most 60 entries a
  // minute per address for refused credentials (every one is still counted in /metrics).
  if (action == "auth.denied") {
    static std::mutex mutex;
    static std::unordered_map<std::string, std::pair<int64_t, int>> recent;
    std::lock_guard<std::mutex> lock(mutex);
    auto minute = runtime::now_ms() / 60000;
    if (recent.size() > 10000) recent.clear();
    auto& [at, count] = recent[call.req.remote_addr];
    if (at != minute) at = minute, count = 0;
    if (++count > 60) return;
  }
  runtime::WriteBatch batch;
  batch.audit.push_back({runtime::now_ms(), actor, role, action, call.req.path, status, call.request_id, call.req.remote_addr});
  caf::anon_send(ctx.store_actor, runtime::persist_atom::value, std::move(batch));
}

StreamSlots::Slot StreamSlots::take(const std::string& client, int limit) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto& n = open_[client];
  if (n >= limit) return nullptr;
  ++n;
  return Slot(static_cast<void*>(this), [this, client](void*) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (--open_[client] <= 0) open_.erase(client);
  });
}

StreamSlots::Slot take_stream_slot(Context& ctx, Call& call) {
  const auto& who = *call.principal;
  auto client = who.via == "open" ? "address " + call.req.remote_addr : who.name;
  auto limit = ctx.deps.config->server.max_streams_per_client;
  auto slot = ctx.streams.take(client, limit);
  if (!slot)
    send_error(call, ApiError{429, "too_many_streams",
                              "you already hold " + std::to_string(limit) +
                                  " event streams and long-polls on this node ([server] max_streams_per_client); close one first",
                              {}, 5});
  return slot;
}

Gateway::Gateway(GatewayDeps deps) : impl_(std::make_unique<Impl>(std::move(deps))) {
  add_system_routes(impl_->router, impl_->ctx);
  add_auth_routes(impl_->router, impl_->ctx);
  add_api_routes(impl_->router, impl_->ctx);
  add_monitoring_routes(impl_->router, impl_->ctx);
  add_resilience_routes(impl_->router, impl_->ctx);
  add_cluster_routes(impl_->router, impl_->ctx);
  add_introspection_routes(impl_->router, impl_->ctx);
  add_web_routes(impl_->router);

  auto& server = impl_->server;
  server.on_refused = [](int status) { record_request("refused", "", status, std::chrono::steady_clock::now()); };
  auto handle = [this](const httplib::Request& req, httplib::Response& res) {
    auto started = std::chrono::steady_clock::now();
    Call call{req, res, request_id_of(req), {}, std::nullopt, impl_->ctx.deps.config->server.max_json_depth};
    res.set_header("X-Request-Id", call.request_id);
    add_security_headers(res);
    std::string route = impl_->router.route_of(req.method, req.path);
    if (route.empty()) route = "unmatched";
    try {
      if (admit(impl_->ctx, call, route)) route = impl_->router.dispatch(call);
    } catch (const runtime::StoreUnavailable& e) {
      spdlog::warn("http: {} {}: store unavailable: {}", req.method, req.path, e.what());
      send_error(call, ApiError::unavailable(std::string("the database is unavailable: ") + e.what(), 2));
    } catch (const std::exception& e) {
      spdlog::error("http: {} {} failed: {} (request {})", req.method, req.path, e.what(), call.request_id);
      send_error(call, ApiError{500, "internal_error", "the request failed inside the node; request id " + call.request_id, {}, 0});
    }
    if (call.principal && req.method != "GET" && req.method != "OPTIONS") audit(impl_->ctx, call, route, *call.principal);
    record_request(route, req.method, res.status, started);
  };
  // httplib answers 400 by itself to a POST without Content-Length (curl -X POST with no
  // data), before any route runs; such requests carry no body, so route them right here.
  server.set_pre_routing_handler([handle](const httplib::Request& req, httplib::Response& res) {
    bool bodiless = !req.has_header("Content-Length") && !req.has_header("Transfer-Encoding");
    if (!bodiless || req.method == "GET" || req.method == "HEAD" || req.method == "OPTIONS")
      return httplib::Server::HandlerResponse::Unhandled;
    handle(req, res);
    return httplib::Server::HandlerResponse::Handled;
  });
  const std::string any_path = R"(/.*)";
  server.Get(any_path, handle);
  server.Post(any_path, handle);
  server.Put(any_path, handle);
  server.Delete(any_path, handle);
  server.Patch(any_path, handle);
  server.Options(any_path, handle);
  // Responses httplib makes by itself (413, 400 on a bad request line, ...) get the envelope too.
  server.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    auto id = request_id_of(req);
    res.set_header("X-Request-Id", id);
    add_security_headers(res);
    send_status_error(res, res.status, id);
  });
}

Gateway::~Gateway() {
  if (impl_->serving && !stop(60000)) std::quick_exit(0);
}

std::string Gateway::bind() {
  const auto& cfg = *impl_->ctx.deps.config;
  return impl_->server.bind(cfg.server.host, cfg.server.port);
}

void Gateway::serve() {
  impl_->server.serve();
  impl_->serving = true;
}

void Gateway::attach(caf::actor_system& system, caf::actor scheduler, caf::actor store_actor, runtime::Store* store,
                     caf::actor supervisor_root, caf::actor cluster) {
  impl_->ctx.supervisor_root = std::move(supervisor_root);
  impl_->ctx.cluster = std::move(cluster);
  impl_->ctx.deps.system = &system;
  impl_->ctx.store_actor = std::move(store_actor);
  impl_->ctx.security.attach(store);
  impl_->ctx.scheduler = std::move(scheduler);
  impl_->ctx.store = store;
  impl_->ctx.attached = true;
}

void Gateway::set_ready(bool ready) { impl_->ctx.ready = ready; }

bool Gateway::stop(int deadline_ms) {
  if (!impl_->serving) return true;
  impl_->ctx.ready = false;
  impl_->ctx.draining = true;
  if (impl_->server.shutdown(deadline_ms)) {
    impl_->serving = false;
    // No request runs any more: let go of the actors, so the actor system can end
    // (a detached actor's thread waits until no handle to it is left).
    impl_->ctx.attached = false;
    impl_->ctx.scheduler = nullptr;
    impl_->ctx.supervisor_root = nullptr;
    impl_->ctx.store_actor = nullptr;
    impl_->ctx.cluster = nullptr;
    return true;
  }
  spdlog::warn("http: requests still in flight after {} ms", deadline_ms);
  return false;
}

}  // namespace hub::gateway
