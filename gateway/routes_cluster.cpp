// The cluster for operators: GET /api/cluster/nodes (every member: address, status, role,
// agents, running tasks, cpu/memory, heartbeat age) and POST /api/cluster/nodes/{name}/leave
// (admin: that node stops taking work, drains and stops). Any node answers for all of them.
#include "gateway/context.hpp"
#include "runtime/cluster.hpp"
#include "runtime/system_monitor.hpp"

#include <caf/actor_system.hpp>
#include <caf/scoped_actor.hpp>
#include <httplib.h>

namespace hub::gateway {

namespace {

caf::scoped_actor& thread_actor(Context& ctx) {
  thread_local std::unique_ptr<caf::scoped_actor> self;
  if (!self) self = std::make_unique<caf::scoped_actor>(*ctx.deps.system);
  return *self;
}

void list_nodes(Context& ctx, Call& call) {
  if (!ctx.attached) return send_error(call, ApiError::unavailable("the node is starting", 1));
  auto& self = thread_actor(ctx);
  std::optional<ApiError> error;
  json out;
  if (ctx.cluster) {
    self->request(ctx.cluster, std::chrono::seconds(3), runtime::nodes_atom::value)
        .receive([&](std::string& text) { out = json::parse(text, nullptr, false); },
                 [&](caf::error& err) { error = error_from_actor(err); });
  } else {
    runtime::LocalReport local;
    self->request(ctx.scheduler, std::chrono::seconds(5), runtime::local_report_atom::value)
        .receive([&](runtime::LocalReport& r) { local = std::move(r); }, [&](caf::error& err) { error = error_from_actor(err); });
    runtime::NodeLoad load;
    if (ctx.deps.monitor) {
      auto s = ctx.deps.monitor->latest();
      load = {s.cpu_percent, s.process_rss_bytes};
    }
    const auto& server = ctx.deps.config->server;
    if (!error)
      out = json::parse(runtime::single_node_json(ctx.deps.node, server.host + ":" + std::to_string(server.port), local, load,
                                                  ctx.deps.started_ms, ctx.deps.version),
                        nullptr, false);
  }
  if (error) return send_error(call, *error);
  send_data(call, 200, out);
}

void leave(Context& ctx, Call& call) {
  if (!ctx.attached) return send_error(call, ApiError::unavailable("the node is starting", 1));
  const auto& name = call.path_params.at("name");
  if (!ctx.cluster) {
    if (name != ctx.deps.node)
      return send_error(call, ApiError::not_found("no member named " + name + " (this node runs alone: " + ctx.deps.node + ")"));
    return send_error(call, ApiError::conflict("clustering is off ([cluster] enabled = false): stop this node with SIGTERM instead"));
  }
  auto& self = thread_actor(ctx);
  std::optional<ApiError> error;
  std::string state;
  self->request(ctx.cluster, std::chrono::seconds(5), runtime::leave_atom::value, name)
      .receive([&](std::string& s) { state = s; }, [&](caf::error& err) { error = error_from_actor(err); });
  if (error) return send_error(call, *error);
  send_data(call, 202, {{"name", name}, {"status", state}, {"message", "node " + name + " stops taking work, drains and stops"}});
}

}  // namespace

json cluster_summary(Context& ctx) {
  if (!ctx.cluster || !ctx.attached) return {{"enabled", false}, {"nodes", 1}};
  auto& self = thread_actor(ctx);
  json out = {{"enabled", true}};
  self->request(ctx.cluster, std::chrono::seconds(2), runtime::nodes_atom::value)
      .receive(
          [&](std::string& text) {
            auto v = json::parse(text, nullptr, false);
            if (v.is_discarded()) return;
            json by_status = json::object();
            for (const auto& n : v["nodes"]) by_status[n["status"].get<std::string>()] = by_status.value(n["status"].get<std::string>(), 0) + 1;
            out["nodes"] = v["nodes"].size();
            out["self"] = v["self"];
            out["leader"] = v["leader"];
            out["by_status"] = by_status;
          },
          [&](caf::error&) { out["error"] = "the node manager did not answer within 2 s"; });
  return out;
}

void add_cluster_routes(Router& router, Context& ctx) {
  router.add("GET", "/api/cluster/nodes", [&ctx](Call& c) { list_nodes(ctx, c); });
  router.add("POST", "/api/cluster/nodes/{name}/leave", [&ctx](Call& c) { leave(ctx, c); });
}

}  // namespace hub::gateway
