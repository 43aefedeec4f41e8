// /metrics (Prometheus text for scrapers, the JSON envelope for people), /api/resources
// and /api/monitoring/alerts: every figure measured, none made up.
#include "actors/neural/mlp.hpp"
#include "gateway/context.hpp"
#include "runtime/clock.hpp"
#include "runtime/metrics.hpp"
#include "runtime/process_stats.hpp"
#include "runtime/store/store.hpp"
#include "runtime/system_monitor.hpp"
#include "runtime/version.hpp"

#include <httplib.h>

namespace hub::gateway {
namespace {

// The GPU the neural workers can use, or null (DESIGN: a metric shows a measured value or is absent).
// The GPU the neural engine would use, or why there is none (no device, no driver, or CUDA's
// libraries missing on this host: the CUDA backend is loaded at run time).
json gpu_json() {
  neural::GpuInfo gpu;
  std::string why;
  if (!neural::gpu_available(&gpu, &why)) return {{"available", false}, {"reason", why}};
  return {{"available", true},
          {"name", gpu.name},
          {"memory_bytes", gpu.memory_bytes},
          {"compute_capability", std::to_string(gpu.compute_major) + "." + std::to_string(gpu.compute_minor)}};
}


namespace m = runtime::metrics::names;
using runtime::metrics::Registry;

bool wants_text(const httplib::Request& req) {
  auto format = req.get_param_value("format");
  if (format == "prometheus" || format == "text") return true;
  if (format == "json") return false;
  auto accept = req.get_header_value("Accept");
  return accept.find("text/plain") != std::string::npos || accept.find("application/openmetrics-text") != std::string::npos;
}

void refresh_store_gauges(Context& ctx) {
  if (!ctx.store) return;
  auto stats = ctx.store->stats();
  auto& r = Registry::global();
  r.gauge("ai_orchestrator_store_connections", "Store connections, by state", {{"state", "active"}})
      .set(double(stats.pool_active));
  r.gauge("ai_orchestrator_store_connections", "Store connections, by state", {{"state", "idle"}}).set(double(stats.pool_idle));
}

std::string prometheus_text(Context& ctx) {
  refresh_store_gauges(ctx);
  std::string out = Registry::global().expose();
  out += runtime::process_exposition();
  out += "# HELP ai_orchestrator_build_info Build of this node (always 1).\n# TYPE ai_orchestrator_build_info gauge\n";
  out += std::string("ai_orchestrator_build_info{revision=\"") + kGitRevision + "\",version=\"" + kVersion + "\"} 1\n";
  return out;
}

json trend(const std::vector<runtime::SystemSample>& h, double runtime::SystemSample::*field) {
  json points = json::array();
  for (const auto& s : h) points.push_back(json::array({runtime::rfc3339(s.at_ms), s.*field}));
  std::string direction = "unknown";
  if (h.size() >= 2) {
    double first = h.front().*field, last = h.back().*field;
    double change = first != 0 ? (last - first) / std::abs(first) : (last != 0 ? 1 : 0);
    direction = change > 0.05 ? "increasing" : change < -0.05 ? "decreasing" : "stable";
  }
  return {{"direction", direction}, {"points", points}};
}

json system_json(const runtime::SystemSample& s) {
  return {{"cpu_usage_percent", s.cpu_percent},
          {"cpu_cores", s.cpu_cores},
          {"memory_usage_percent", s.memory_percent},
          {"memory_usage_bytes", s.memory_used_bytes},
          {"memory_total_bytes", s.memory_total_bytes},
          {"load_average", json::array({s.load1, s.load5, s.load15})},
          {"disk_usage_percent", s.disk_used_percent},
          {"process_rss_bytes", s.process_rss_bytes},
          {"sampled_at", runtime::rfc3339(s.at_ms)}};
}

json metrics_json(Context& ctx) {
  auto& r = Registry::global();
  auto sample = ctx.deps.monitor->latest();
  json database = nullptr;
  if (ctx.store) {
    auto stats = ctx.store->stats();
    auto commits = r.histogram_merged(m::store_commit_duration);
    database = {{"backend", stats.backend},
                {"pool", {{"size", stats.pool_active + stats.pool_idle}, {"active", stats.pool_active}, {"idle", stats.pool_idle}}},
                {"queries", stats.writes + stats.reads},
                {"commits", stats.writes},
                {"reads", stats.reads},
                {"rows_written", stats.rows_written},
                {"errors", stats.write_errors},
                {"commit_latency_ms", {{"p50", commits.quantile(0.5) * 1000}, {"p99", commits.quantile(0.99) * 1000}}}};
  }
  auto http = r.histogram_merged(m::http_duration);
  json tasks{{"submitted", r.counter_sum(m::tasks_submitted)},
             {"completed", r.counter_sum(m::tasks_finished, {{"status", "completed"}})},
             {"failed", r.counter_sum(m::tasks_finished, {{"status", "failed"}})},
             {"cancelled", r.counter_sum(m::tasks_finished, {{"status", "cancelled"}})},
             {"running", r.gauge(m::tasks_running, "Attempts running now").value()},
             {"unfinished", r.gauge(m::tasks_unfinished, "Tasks not yet in a terminal status (live task actors)").value()},
             {"per_second", sample.tasks_per_second},
             {"failure_rate", sample.task_failure_rate}};
  json agents{{"attempts", r.counter_sum(m::executor_calls)},
              {"failed_attempts", r.counter_sum(m::executor_calls, {{"outcome", "error"}})},
              {"failure_rate", sample.agent_failure_rate}};
  json http_json{{"requests", r.counter_sum(m::http_requests)},
                 {"latency_ms", {{"p50", http.quantile(0.5) * 1000}, {"p95", http.quantile(0.95) * 1000}, {"p99", http.quantile(0.99) * 1000}}},
                 {"recent_p95_ms", sample.http_p95_ms}};
  json actors = json::object();
  for (auto kind : {"agent", "task", "scheduler", "store"})
    actors[kind] = r.gauge(m::actors, "Live actors, by kind", {{"kind", kind}}).value();
  auto history = ctx.deps.monitor->history();
  return {{"current_metrics",
           {{"system", system_json(sample)},
            {"database", database},
            {"tasks", tasks},
            {"agents", agents},
            {"http", http_json},
            {"actors", actors},
            {"cluster", cluster_summary(ctx)}}},
          {"trends",
           {{"window_seconds", history.empty() ? 0 : (history.back().at_ms - history.front().at_ms) / 1000},
            {"cpu_usage_percent", trend(history, &runtime::SystemSample::cpu_percent)},
            {"memory_usage_percent", trend(history, &runtime::SystemSample::memory_percent)},
            {"tasks_per_second", trend(history, &runtime::SystemSample::tasks_per_second)},
            {"task_failure_rate", trend(history, &runtime::SystemSample::task_failure_rate)},
            {"http_p95_ms", trend(history, &runtime::SystemSample::http_p95_ms)}}},
          {"collection_timestamp", runtime::now_rfc3339()}};
}

std::string hardware_class(int cores, int64_t memory_bytes) {
  double gib = double(memory_bytes) / (1024.0 * 1024 * 1024);
  if (cores <= 2 && gib <= 4) return "edge";
  if (cores <= 8 && gib <= 32) return "desktop";
  if (cores <= 32 && gib <= 128) return "server";
  return "cloud";
}

json alert_json(const runtime::Alert& a) {
  return {{"name", a.name},
          {"severity", a.severity},
          {"message", a.message},
          {"value", a.value},
          {"threshold", a.threshold},
          {"since", runtime::rfc3339(a.since_ms)},
          {"until", a.until_ms ? json(runtime::rfc3339(a.until_ms)) : json(nullptr)}};
}

}  // namespace

void add_monitoring_routes(Router& router, Context& ctx) {
  router.add("GET", "/metrics", [&ctx](Call& call) {
    if (!ctx.deps.config->monitoring.metrics_enabled) {
      send_error(call, ApiError::not_found("metrics are disabled ([monitoring] metrics_enabled = false)"));
      return;
    }
    if (wants_text(call.req)) {
      call.res.status = 200;
      call.res.set_content(prometheus_text(ctx), "text/plain; version=0.0.4; charset=utf-8");
      return;
    }
    send_data(call, 200, metrics_json(ctx));
  });
  router.add("GET", "/api/resources", [&ctx](Call& call) {
    auto s = ctx.deps.monitor->latest();
    send_data(call, 200,
              {{"system_resources",
                {{"cpu_cores", s.cpu_cores},
                 {"cpu_usage", s.cpu_percent},
                 {"memory_usage", s.memory_percent},
                 {"memory_total_bytes", s.memory_total_bytes},
                 {"memory_available_bytes", s.memory_available_bytes},
                 {"process_rss_bytes", s.process_rss_bytes},
                 {"load_average", json::array({s.load1, s.load5, s.load15})},
                 {"disk_free_bytes", s.disk_free_bytes},
                 {"disk_usage_percent", s.disk_used_percent},
                 {"data_dir", ctx.deps.config->server.data_dir},
                 {"last_updated", runtime::rfc3339(s.at_ms)}}},
               {"hardware_class", hardware_class(s.cpu_cores, s.memory_total_bytes)},
               {"gpu", gpu_json()}});
  });
  // The last 15 minutes, one point per collection interval (the dashboard's charts).
  router.add("GET", "/api/monitoring/history", [&ctx](Call& call) {
    if (!ctx.deps.monitor) return send_error(call, ApiError::unavailable("monitoring is not running", 1));
    json points = json::array();
    for (const auto& s : ctx.deps.monitor->history())
      points.push_back({{"at", runtime::rfc3339(s.at_ms)},
                        {"at_ms", s.at_ms},
                        {"tasks_per_second", s.tasks_per_second},
                        {"task_p95_ms", s.task_p95_ms},
                        {"queue_depth", s.queue_depth},
                        {"http_p95_ms", s.http_p95_ms},
                        {"cpu_percent", s.cpu_percent},
                        {"task_failure_rate", s.task_failure_rate}});
    send_data(call, 200, {{"interval_ms", ctx.deps.config->monitoring.metrics_collection_interval_ms}, {"points", points}});
  });
  router.add("GET", "/api/monitoring/alerts", [&ctx](Call& call) {
    json active = json::array(), resolved = json::array();
    for (const auto& a : ctx.deps.monitor->active_alerts()) active.push_back(alert_json(a));
    for (const auto& a : ctx.deps.monitor->resolved_alerts()) resolved.push_back(alert_json(a));
    send_data(call, 200, {{"active", active}, {"resolved", resolved}, {"total_active", active.size()}});
  });
}

}  // namespace hub::gateway
