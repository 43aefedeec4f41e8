// Looking inside the node, down to one actor: GET /api/actors (cluster-wide: the node manager
// asks every reachable member over the cluster connection), GET /api/actors/{node}/{id} (registry entry plus the actor's own
// summary), POST /api/actors/{node}/{id}/kill (admin; its supervisor reacts), the message
// trace of one actor as Server-Sent Events, and GET /api/events (the live event feed, SSE,
// resumable with Last-Event-ID). A request for another node's actor is passed to that node
// through the node managers, as node to node: no user's credentials are ever forwarded.
#include "gateway/context.hpp"
#include "runtime/clock.hpp"
#include "runtime/cluster.hpp"
#include "runtime/events.hpp"
#include "runtime/json_text.hpp"
#include "runtime/introspection.hpp"

#include <caf/actor_system.hpp>
#include <caf/exit_reason.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>
#include <httplib.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <thread>

namespace hub::gateway {

namespace {

using runtime::introspection::Registry;

constexpr size_t kMaxLimit = 10000;
constexpr int kMaxTraceSeconds = 300;

caf::scoped_actor& thread_actor(Context& ctx) {
  thread_local std::unique_ptr<caf::scoped_actor> self;
  if (!self) self = std::make_unique<caf::scoped_actor>(*ctx.deps.system);
  return *self;
}

Registry& registry(Context& ctx) { return Registry::of(*ctx.deps.system); }

// An integer query parameter within [lo, hi]; `fallback` when absent.
std::optional<ApiError> int_param(const Call& call, const char* name, int64_t lo, int64_t hi, int64_t fallback, int64_t& out) {
  out = fallback;
  if (!call.req.has_param(name)) return std::nullopt;
  auto text = call.req.get_param_value(name);
  char* end = nullptr;
  errno = 0;
  long long v = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno != 0 || v < lo || v > hi)
    return ApiError::bad_request(name, std::string("\"") + name + "\" must be an integer from " + std::to_string(lo) + " to " +
                                           std::to_string(hi));
  out = v;
  return std::nullopt;
}

// The cluster's members as the node manager sees them (empty when clustering is off).
json members(Context& ctx) {
  if (!ctx.cluster) return json::array();
  json out = json::array();
  thread_actor(ctx)
      ->request(ctx.cluster, std::chrono::seconds(2), runtime::nodes_atom::value)
      .receive(
          [&](std::string& text) {
            auto v = json::parse(text, nullptr, false);
            if (!v.is_discarded()) out = v["nodes"];
          },
          [&](caf::error&) {});
  return out;
}

// Where another member's API answers; "" when it is not a known, live member.
std::string peer_address(Context& ctx, const std::string& node, std::string* status) {
  for (const auto& n : members(ctx)) {
    if (n.value("name", "") != node || n.value("self", false)) continue;
    if (status) *status = n.value("status", "");
    return n.value("http_address", "");
  }
  return {};
}

// Asks the node manager, which asks the member over the cluster connection (the members
// trust each other as nodes: the caller's credentials never leave this node).
template <class... Ts>
Answer<std::string> ask_cluster(Context& ctx, Ts&&... xs) {
  Answer<std::string> out = ApiError::unavailable("no answer");
  thread_actor(ctx)
      ->request(ctx.cluster, std::chrono::seconds(8), std::forward<Ts>(xs)...)
      .receive([&](std::string& text) { out = std::move(text); }, [&](caf::error& err) { out = error_from_actor(err); });
  return out;
}

void list_actors(Context& ctx, Call& call) {
  if (!ctx.attached) return send_error(call, ApiError::unavailable("the node is starting", 1));
  runtime::introspection::ActorQuery q;
  q.kind = call.req.get_param_value("kind");
  q.sort = call.req.get_param_value("sort");
  if (!q.sort.empty() && q.sort != "mailbox" && q.sort != "messages" && q.sort != "errors")
    return send_error(call, ApiError::bad_request("sort", "\"sort\" must be one of mailbox, messages, errors"));
  int64_t limit = 0;
  if (auto e = int_param(call, "limit", 1, int64_t(kMaxLimit), 100, limit)) return send_error(call, *e);
  q.limit = size_t(limit);
  auto node = call.req.get_param_value("node");
  bool local_only = call.req.get_param_value("scope") == "local";

  json actors = json::array();
  size_t total = 0;
  json answered = json::array(), unreachable = json::array(), by_kind = json::object();
  auto add_page = [&](const std::string& name, const json& page) {
    for (const auto& a : page["actors"]) actors.push_back(a);
    total += page.value("total", size_t(0));
    for (const auto& [n, kinds] : page["by_kind"].items()) by_kind[n] = kinds;
    answered.push_back(name);
  };
  if (node.empty() || node == ctx.deps.node) add_page(ctx.deps.node, json::parse(runtime::introspection::actors_page(registry(ctx), q)));
  if (!local_only && ctx.cluster && node != ctx.deps.node) {
    json query{{"kind", q.kind}, {"sort", q.sort}, {"limit", q.limit}};
    auto answer = ask_cluster(ctx, runtime::cluster_actors_atom::value, query.dump(), node);
    if (auto* e = std::get_if<ApiError>(&answer)) return send_error(call, *e);
    auto peers = json::parse(std::get<std::string>(answer), nullptr, false);
    for (const auto& p : peers["pages"]) add_page(p.value("node", ""), p["page"]);
    for (const auto& u : peers["unreachable"]) unreachable.push_back(u);
    if (!node.empty() && answered.empty() && unreachable.empty())
      return send_error(call, ApiError::not_found("no cluster member named " + node));
  } else if (!node.empty() && node != ctx.deps.node) {
    return send_error(call, ApiError::not_found("no node named " + node + " (this node runs alone: " + ctx.deps.node + ")"));
  }
  if (answered.size() > 1) {
    std::vector<json> all(actors.begin(), actors.end());
    std::string key = q.sort == "mailbox" ? "mailbox_size" : q.sort;
    std::stable_sort(all.begin(), all.end(), [&](const json& a, const json& b) {
      if (key.empty()) return a["node"] != b["node"] ? a["node"].get<std::string>() < b["node"].get<std::string>() : a["id"] < b["id"];
      return a[key].get<uint64_t>() > b[key].get<uint64_t>();
    });
    if (all.size() > q.limit) all.resize(q.limit);
    actors = all;
  }
  send_data(call, 200,
            {{"actors", actors}, {"total", total}, {"nodes", answered}, {"unreachable", unreachable}, {"by_kind", by_kind}});
}

std::optional<uint64_t> actor_id(const Call& call) {
  const auto& text = call.path_params.at("id");
  char* end = nullptr;
  auto v = std::strtoull(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || v == 0) return std::nullopt;
  return v;
}

// GET /api/actors/{node}/{id} and POST .../kill: this node's actor, or another member's
// through the node manager.
void actor_request(Context& ctx, Call& call, bool kill) {
  if (!ctx.attached) return send_error(call, ApiError::unavailable("the node is starting", 1));
  const auto& node = call.path_params.at("node");
  auto id = actor_id(call);
  if (!id) return send_error(call, ApiError::bad_request("id", "the actor id must be a positive integer"));
  if (node != ctx.deps.node) {
    if (!ctx.cluster)
      return send_error(call, ApiError::not_found("no cluster member named " + node + " (this node is " + ctx.deps.node + ")"));
    auto answer = kill ? ask_cluster(ctx, runtime::peer_kill_atom::value, node, *id)
                       : ask_cluster(ctx, runtime::peer_actor_atom::value, node, *id);
    if (auto* e = std::get_if<ApiError>(&answer)) return send_error(call, *e);
    return send_data(call, kill ? 202 : 200, json::parse(std::get<std::string>(answer)));
  }
  if (kill) {
    std::string why;
    auto killed = runtime::introspection::kill_actor(registry(ctx), *id, &why);
    if (killed.empty()) {
      auto bar = why.find('|');
      auto message = why.substr(bar + 1);
      return send_error(call, why.rfind("not_found", 0) == 0 ? ApiError::not_found(message) : ApiError::conflict(message));
    }
    spdlog::warn("introspection: actor {} killed on request {}", *id, call.request_id);
    return send_data(call, 202, json::parse(killed));
  }
  auto detail = runtime::introspection::actor_detail(registry(ctx), *id);
  if (detail.empty()) return send_error(call, ApiError::not_found("no live actor " + std::to_string(*id) + " on node " + node));
  auto out = json::parse(detail);
  json summary;
  auto probe = registry(ctx).find(*id);
  if (probe && out.value("inspectable", false)) {
    auto handle = caf::actor_cast<caf::actor>(probe->address());
    if (handle)
      thread_actor(ctx)
          ->request(handle, std::chrono::seconds(2), runtime::introspection::introspect_atom::value)
          .receive([&](std::string& text) { summary = json::parse(text, nullptr, false); },
                   [&](caf::error& err) { summary = {{"unavailable", ctx.deps.system->render(err)}}; });
  }
  out.erase("inspectable");
  out["summary"] = summary.is_discarded() ? json() : summary;
  send_data(call, 200, out);
}

std::string sse(const std::string& event, const json& data, uint64_t id = 0) {
  std::string out;
  if (id) out += "id: " + std::to_string(id) + "\n";
  out += "event: " + event + "\ndata: " + data.dump() + "\n\n";
  return out;
}

void trace_actor(Context& ctx, Call& call) {
  if (!ctx.attached) return send_error(call, ApiError::unavailable("the node is starting", 1));
  const auto& node = call.path_params.at("node");
  if (node != ctx.deps.node) {
    std::string status;
    auto address = peer_address(ctx, node, &status);
    if (address.empty()) return send_error(call, ApiError::not_found("no cluster member named " + node));
    call.res.status = 307;
    call.res.set_header("Location", "http://" + address + call.req.target);
    return;
  }
  auto id = actor_id(call);
  if (!id) return send_error(call, ApiError::bad_request("id", "the actor id must be a positive integer"));
  int64_t seconds = 0, sample = 0, max_rate = 0;
  if (auto e = int_param(call, "seconds", 1, kMaxTraceSeconds, 10, seconds)) return send_error(call, *e);
  if (auto e = int_param(call, "sample", 1, 1000000, 1, sample)) return send_error(call, *e);
  if (auto e = int_param(call, "max_rate", 1, 5000, 200, max_rate)) return send_error(call, *e);
  auto probe = registry(ctx).find(*id);
  if (!probe) return send_error(call, ApiError::not_found("no live actor " + std::to_string(*id) + " on node " + node));
  auto slot = take_stream_slot(ctx, call);
  if (!slot) return;
  probe->start_trace(int(sample), int(max_rate));
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  auto info = probe->info();
  struct Stream {
    uint64_t after = 0;
    uint64_t sent = 0;
    bool started = false;
    bool ended = false;
  };
  auto stream = std::make_shared<Stream>();
  call.res.status = 200;
  call.res.set_header("X-Accel-Buffering", "no");
  call.res.set_chunked_content_provider(
      "text/event-stream",
      [&ctx, probe, stream, deadline, info, seconds, sample, max_rate, slot, who = *call.principal](size_t, httplib::DataSink& sink) {
        if (!stream->started) {
          stream->started = true;
          auto hello = sse("start", {{"actor", info.id}, {"kind", info.kind}, {"name", info.name}, {"seconds", seconds},
                                     {"sample", sample}, {"max_rate", max_rate}});
          return sink.write(hello.data(), hello.size());
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        uint64_t lost = 0;
        std::string chunk;
        for (const auto& e : probe->trace_after(stream->after, 500, &lost)) {
          stream->after = e.seq;
          ++stream->sent;
          chunk += sse("message",
                       {{"seq", e.seq}, {"at", runtime::rfc3339(e.at_ms)}, {"type", e.type}, {"sender", e.sender},
                        {"size", e.size}, {"handling_us", e.handling_us}},
                       e.seq);
        }
        bool gone = !Registry::of(*ctx.deps.system).find(info.id) || !caf::actor_cast<caf::actor>(probe->address());
        bool ended = !ctx.security.still_valid(who);
        if (gone || ended || ctx.draining || std::chrono::steady_clock::now() >= deadline) {
          chunk += sse("end", {{"events", stream->sent}, {"not_recorded", lost},
                               {"reason", gone     ? "the actor stopped"
                                          : ended  ? "the session ended (logged out, revoked or expired)"
                                          : ctx.draining ? "the node is stopping"
                                                         : "time is up"}});
          if (!sink.write(chunk.data(), chunk.size())) return false;
          sink.done();
          return true;
        }
        if (chunk.empty()) chunk = ": waiting\n\n";
        return sink.write(chunk.data(), chunk.size());
      },
      [probe](bool) { probe->stop_trace(); });
}

void events(Context& ctx, Call& call) {
  auto& feed = runtime::EventFeed::global();
  uint64_t after = feed.last_id();
  auto resume = call.req.get_header_value("Last-Event-ID");
  if (resume.empty()) resume = call.req.get_param_value("last_event_id");
  if (!resume.empty()) {
    char* end = nullptr;
    auto v = std::strtoull(resume.c_str(), &end, 10);
    if (*end != '\0') return send_error(call, ApiError::bad_request("Last-Event-ID", "Last-Event-ID must be an event id (an integer)"));
    after = v > feed.last_id() ? 0 : v;  // an id from before a restart: start from the oldest kept
  }
  int64_t seconds = 0;
  if (auto e = int_param(call, "seconds", 1, 86400, 86400, seconds)) return send_error(call, *e);
  std::vector<std::string> types;
  if (auto t = call.req.get_param_value("types"); !t.empty()) {
    size_t start = 0;
    while (start <= t.size()) {
      auto comma = t.find(',', start);
      types.push_back(t.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
    for (const auto& ty : types)
      if (ty != "task" && ty != "agent" && ty != "breaker" && ty != "alert" && ty != "membership")
        return send_error(call, ApiError::bad_request("types", "\"types\" is a comma list of task, agent, breaker, alert, membership"));
  }
  auto slot = take_stream_slot(ctx, call);
  if (!slot) return;
  struct Stream {
    uint64_t after;
    bool started = false;
    std::chrono::steady_clock::time_point last_write;
  };
  auto stream = std::make_shared<Stream>(Stream{after, false, std::chrono::steady_clock::now()});
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  call.res.status = 200;
  call.res.set_header("X-Accel-Buffering", "no");
  call.res.set_chunked_content_provider(
      "text/event-stream",
      [&ctx, &feed, stream, deadline, types, slot, who = *call.principal](size_t, httplib::DataSink& sink) {
        std::string chunk;
        if (!stream->started) {
          stream->started = true;
          chunk = "retry: 2000\n" + sse("hello", {{"node", ctx.deps.node}, {"last_event_id", feed.last_id()}});
        }
        feed.wait_after(stream->after, std::chrono::milliseconds(500));
        uint64_t missed = 0;
        auto batch = feed.after(stream->after, 1000, &missed);
        if (missed) chunk += sse("missed", {{"events", missed}, {"message", "the feed keeps the last 4096 events"}});
        for (const auto& e : batch) {
          stream->after = e.id;
          if (!types.empty() && std::find(types.begin(), types.end(), e.type) == types.end()) continue;
          auto text = runtime::JsonText().num("id", int64_t(e.id)).str("at", runtime::rfc3339(e.at_ms)).str("type", e.type).raw("data", e.data);
          chunk += "id: " + std::to_string(e.id) + "\nevent: " + e.type + "\ndata: " + text.done() + "\n\n";
        }
        auto now = std::chrono::steady_clock::now();
        bool ended = !ctx.security.still_valid(who);
        if (ended || ctx.draining || now >= deadline) {
          chunk += sse("end", {{"reason", ended          ? "the session ended (logged out, revoked or expired)"
                                          : ctx.draining ? "the node is stopping"
                                                         : "time is up"},
                               {"last_event_id", stream->after}});
          if (!sink.write(chunk.data(), chunk.size())) return false;
          sink.done();
          return true;
        }
        if (chunk.empty() && now - stream->last_write > std::chrono::seconds(15)) chunk = ": keep-alive\n\n";
        if (chunk.empty()) return true;
        stream->last_write = now;
        return sink.write(chunk.data(), chunk.size());
      },
      [](bool) {});
}

}  // namespace

void add_introspection_routes(Router& router, Context& ctx) {
  router.add("GET", "/api/actors", [&ctx](Call& c) { list_actors(ctx, c); });
  router.add("GET", "/api/actors/{node}/{id}", [&ctx](Call& c) { actor_request(ctx, c, false); });
  router.add("POST", "/api/actors/{node}/{id}/kill", [&ctx](Call& c) { actor_request(ctx, c, true); });
  router.add("GET", "/api/actors/{node}/{id}/trace", [&ctx](Call& c) { trace_actor(ctx, c); });
  router.add("GET", "/api/events", [&ctx](Call& c) { events(ctx, c); });
}

}  // namespace hub::gateway
