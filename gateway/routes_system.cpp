// /health, /livez, /readyz: open, cheap, and honest about what is and is not working.
#include "actors/neural/mlp.hpp"
#include "gateway/context.hpp"
#include "runtime/breaker.hpp"
#include "runtime/clock.hpp"
#include "runtime/metrics.hpp"
#include "runtime/process_stats.hpp"
#include "runtime/store/store.hpp"
#include "runtime/system_monitor.hpp"

#include <httplib.h>

namespace hub::gateway {
namespace {

namespace m = runtime::metrics::names;

json component(const std::string& status, json figures, const std::string& reason = "") {
  figures["status"] = status;
  if (!reason.empty()) figures["reason"] = reason;
  return figures;
}

json components(Context& ctx) {
  const auto& cfg = *ctx.deps.config;
  auto& registry = runtime::metrics::Registry::global();
  json out = json::object();

  auto stats = ctx.store->stats();
  out["store"] = component(stats.last_write_failed ? "unhealthy" : "healthy",
                           {{"backend", stats.backend}, {"commits", stats.writes}, {"write_errors", stats.write_errors},
                            {"last_commit_ms", stats.last_commit_ms}},
                           stats.last_write_failed ? "the last write failed: " + stats.last_error : "");

  double last_tick = registry.gauge(m::scheduler_last_tick, "").value();
  double tick_age = double(runtime::now_ms()) / 1000.0 - last_tick;
  double queued = 0;
  for (auto p : {"critical", "high", "medium", "low"})
    queued += registry.gauge(m::task_queue_depth, "", {{"priority", p}}).value();
  // The tick runs every second at high priority: late means overloaded, very late means stuck.
  std::string scheduler_status = tick_age < 10 ? "healthy" : tick_age < 60 ? "degraded" : "unhealthy";
  out["scheduler"] = component(scheduler_status,
                               {{"queued_tasks", queued}, {"running_tasks", registry.gauge(m::tasks_running, "").value()},
                                {"seconds_since_tick", tick_age}},
                               tick_age < 10 ? "" : "the scheduler has not run its housekeeping for " + std::to_string(int(tick_age)) + " s");

  double placeable = 0, total = 0;
  for (auto state : {"idle", "working", "learning", "failed", "inactive"})
    for (auto type : {"worker", "coordinator", "specialist", "learner"}) {
      double n = registry.gauge(m::agents, "", {{"state", state}, {"type", type}}).value();
      total += n;
      if (std::string(state) == "idle" || std::string(state) == "working") placeable += n;
    }
  auto sample = ctx.deps.monitor->latest();
  std::string agent_reason = placeable == 0 ? "no agent can take tasks (none idle or working)"
                             : sample.agent_failure_rate > cfg.monitoring.agent_failure_rate_alert
                                 ? "attempt failure rate above [monitoring] agent_failure_rate_alert"
                                 : "";
  out["agents"] = component(agent_reason.empty() ? "healthy" : "degraded",
                            {{"total", total}, {"available", placeable}, {"failure_rate", sample.agent_failure_rate}},
                            agent_reason);

  auto rss = runtime::read_process_stats().rss_bytes;
  auto limit_mb = cfg.performance.memory_limit_mb;
  std::string resource_reason;
  if (limit_mb > 0 && rss > limit_mb * 1024 * 1024)
    resource_reason = "resident memory is above [performance] memory_limit_mb: new tasks are refused";
  else if (sample.memory_percent > cfg.monitoring.memory_alert_percent)
    resource_reason = "host memory usage is above [monitoring] memory_alert_percent";
  else if (sample.disk_used_percent > cfg.monitoring.disk_alert_percent)
    resource_reason = "the data directory's disk is above [monitoring] disk_alert_percent";
  else if (sample.cpu_percent > cfg.monitoring.cpu_alert_percent)
    resource_reason = "host CPU usage is above [monitoring] cpu_alert_percent";
  out["resources"] = component(resource_reason.empty() ? "healthy" : "degraded",
                               {{"cpu_usage_percent", sample.cpu_percent}, {"memory_usage_percent", sample.memory_percent},
                                {"disk_usage_percent", sample.disk_used_percent}, {"process_rss_bytes", rss},
                                {"memory_limit_mb", limit_mb}},
                               resource_reason);
  bool open = ctx.security.open();
  out["security"] = component(open ? "open" : "healthy",
                              {{"credentials_configured", !open},
                               {"api_keys", cfg.security.api_keys.size()},
                               {"bearer_tokens", !cfg.security.jwt_secret.empty()},
                               {"rate_limit_requests_per_minute", cfg.security.rate_limit_requests_per_minute},
                               {"audit_logging", cfg.security.audit_logging_enabled}},
                              open ? "no credentials configured: the API is open to anyone (development only)" : "");
  auto cluster = cluster_summary(ctx);
  if (!cluster["enabled"].get<bool>()) {
    out["cluster"] = component("disabled", {{"nodes", 1}}, "single node ([cluster] enabled = false)");
  } else {
    int up = cluster.contains("by_status") ? cluster["by_status"].value("up", 0) : 0;
    int nodes = cluster.value("nodes", 0);
    std::string reason = cluster.contains("error") ? cluster["error"].get<std::string>()
                         : up < nodes ? std::to_string(nodes - up) + " of " + std::to_string(nodes) + " members are not up"
                                      : "";
    out["cluster"] = component(reason.empty() ? "healthy" : "degraded", cluster, reason);
  }
  {
    const auto& n = cfg.neural;
    neural::GpuInfo gpu;
    std::string why;
    bool has_gpu = n.gpu_enabled && neural::gpu_available(&gpu, &why);
    json figures = {{"workers", n.workers}, {"backend", has_gpu ? "cuda: " + gpu.name : std::string("cpu")}, {"mode", n.mode}};
    if (n.workers == 0)
      out["neural"] = component("disabled", figures, "[neural] workers = 0: neural.train and neural.infer tasks fail");
    else
      out["neural"] = component("healthy", figures, n.gpu_enabled && !has_gpu ? "gpu_enabled, but on the CPU: " + why : "");
  }
  int open_breakers = 0, half_open = 0, breakers = 0;
  std::string open_ids;
  for (const auto& b : runtime::BreakerRegistry::global().list(runtime::now_ms())) {
    ++breakers;
    half_open += b.state == "half_open";
    if (b.state != "open") continue;
    if (++open_breakers <= 5) open_ids += (open_ids.empty() ? "" : ", ") + b.id;
  }
  if (!cfg.performance.circuit_breakers_enabled)
    out["breakers"] = component("disabled", {{"total", breakers}}, "[performance] circuit_breakers_enabled = false");
  else
    out["breakers"] = component(open_breakers ? "degraded" : "healthy",
                                {{"total", breakers}, {"open", open_breakers}, {"half_open", half_open}},
                                open_breakers ? std::to_string(open_breakers) + " open: " + open_ids +
                                                    (open_breakers > 5 ? ", ..." : "") + " (GET /api/breakers)"
                                              : "");
  return out;
}

}  // namespace

void add_system_routes(Router& router, Context& ctx) {
  router.add("GET", "/livez", [&ctx](Call& call) {
    send_data(call, 200, {{"status", "alive"}, {"node", ctx.deps.node}});
  });
  router.add("GET", "/readyz", [&ctx](Call& call) {
    if (ctx.ready) {
      send_data(call, 200, {{"status", "ready"}, {"node", ctx.deps.node}});
      return;
    }
    send_error(call, ApiError::unavailable(ctx.draining ? "the node is draining" : "the node is starting", 1));
  });
  router.add("GET", "/health", [&ctx](Call& call) {
    auto uptime = (runtime::now_ms() - ctx.deps.started_ms) / 1000;
    json data{{"version", ctx.deps.version}, {"node", ctx.deps.node}, {"uptime_seconds", uptime},
              {"environment", ctx.deps.config->environment}};
    std::string status = "healthy";
    if (!ctx.attached) {
      status = ctx.draining ? "draining" : "starting";
    } else {
      auto parts = components(ctx);
      for (const auto& [name, c] : parts.items()) {
        if (c["status"] == "unhealthy") status = "unhealthy";
        else if (c["status"] == "degraded" && status == "healthy") status = "degraded";
      }
      if (call.req.get_param_value("detailed") == "true") data["components"] = parts;
    }
    if (ctx.draining) status = "draining";
    data["status"] = status;
    bool ok = status == "healthy" || status == "degraded";
    send_data(call, ok ? 200 : 503, std::move(data));
    if (!ok) call.res.set_header("Retry-After", "1");
  });
}

}  // namespace hub::gateway
