// /health, /livez, /readyz: open, cheap, and honest about what is and is not working.
#include "gateway/context.hpp"
#include "runtime/clock.hpp"
#include "runtime/process_stats.hpp"
#include "runtime/store/store.hpp"

#include <httplib.h>

namespace hub::gateway {
namespace {

json component(const std::string& status, json figures, const std::string& reason = "") {
  figures["status"] = status;
  if (!reason.empty()) figures["reason"] = reason;
  return figures;
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
    json components = json::object();
    if (!ctx.attached) {
      status = ctx.draining ? "draining" : "starting";
    } else {
      auto stats = ctx.store->stats();
      components["store"] = component(stats.write_errors > 0 && stats.writes == 0 ? "unhealthy" : "healthy",
                                      {{"backend", stats.backend},
                                       {"commits", stats.writes},
                                       {"rows_written", stats.rows_written},
                                       {"write_errors", stats.write_errors},
                                       {"last_commit_ms", stats.last_commit_ms}});
      auto process = runtime::read_process_stats();
      auto limit_mb = ctx.deps.config->performance.memory_limit_mb;
      bool over = limit_mb > 0 && process.rss_bytes > limit_mb * 1024 * 1024;
      components["resources"] =
          component(over ? "degraded" : "healthy",
                    {{"process_rss_bytes", process.rss_bytes}, {"memory_limit_mb", limit_mb}},
                    over ? "resident memory is above [performance] memory_limit_mb: new tasks are refused" : "");
      if (over) status = "degraded";
    }
    if (ctx.draining) status = "draining";
    data["status"] = status;
    if (call.req.get_param_value("detailed") == "true") data["components"] = components;
    bool ok = status == "healthy" || status == "degraded";
    if (ok) {
      send_data(call, 200, std::move(data));
    } else {
      call.res.status = 503;
      send_data(call, 503, std::move(data));
      call.res.set_header("Retry-After", "1");
    }
  });
}

}  // namespace hub::gateway
