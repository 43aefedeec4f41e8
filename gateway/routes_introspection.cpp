// Looking inside the node, down to one actor: GET /api/actors (cluster-wide: asks every
// reachable peer over HTTP), GET /api/actors/{node}/{id} (registry entry plus the actor's own
// summary), POST /api/actors/{node}/{id}/kill (admin; its supervisor reacts), the message
// trace of one actor as Server-Sent Events, and GET /api/events (the live event feed, SSE,
// resumable with Last-Event-ID). A request for another node's actor is passed to that node.
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
#include <future>
#include <thread>

namespace hub::gateway {

namespace {

using runtime::introspection::ActorInfo;
using runtime::introspection::Registry;

constexpr size_t kMaxLimit = 10000;
constexpr int kMaxTraceSeconds = 300;

caf::scoped_actor& thread_actor(Context& ctx) {
  thread_local std::unique_ptr<caf::scoped_actor> self;
  if (!self) self = std::make_unique<caf::scoped_actor>(*ctx.deps.system);
  return *self;
}

Registry& registry(Context& ctx) { return Registry::of(*ctx.deps.system); }

json actor_json(const ActorInfo& a, const std::string& node) {
  return {{"id", a.id},
          {"node", node},
          {"kind", a.kind},
          {"name", a.name},
          {"state", a.state},
          {"parent", a.parent ? json(a.parent) : json()},
          {"mailbox_size", a.mailbox},
          {"messages", a.messages},
          {"errors", a.errors},
          {"busy_ms", std::round(a.busy_ms * 1000) / 1000},
          {"last_message_at", a.last_message_ms ? json(runtime::rfc3339(a.last_message_ms)) : json()},
          {"started_at", runtime::rfc3339(a.started_ms)},
          {"traced", a.tracers > 0}};
}

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

httplib::Headers forwarded_auth(const Call& call) {
  httplib::Headers h;
  for (const char* name : {"X-API-Key", "Authorization"})
    if (call.req.has_header(name)) h.emplace(name, call.req.get_header_value(name));
  return h;
}

struct PeerReply {
  int status = 0;
  json body;
  std::string error;
};

PeerReply ask_peer(const std::string& http_address, const std::string& method, const std::string& path,
                   const httplib::Headers& headers) {
  httplib::Client client("http://" + http_address);
  client.set_connection_timeout(2, 0);
  client.set_read_timeout(5, 0);
  auto res = method == "GET" ? client.Get(path.c_str(), headers) : client.Post(path.c_str(), headers, "", "application/json");
  PeerReply r;
  if (!res) {
    r.error = "cannot reach " + http_address + ": " + httplib::to_string(res.error());
    return r;
  }
  r.status = res->status;
  r.body = json::parse(res->body, nullptr, false);
  return r;
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

// Passes a request for a peer's actor on to that peer and relays its answer.
void relay(Context& ctx, Call& call, const std::string& node, const std::string& method, const std::string& path) {
  std::string status;
  auto address = peer_address(ctx, node, &status);
  if (address.empty())
    return send_error(call, ApiError::not_found("no cluster member named " + node + " (this node is " + ctx.deps.node + ")"));
  if (status == "down" || status == "removed")
    return send_error(call, ApiError::unavailable("node " + node + " is " + status, 5));
  auto r = ask_peer(address, method, path, forwarded_auth(call));
  if (!r.error.empty()) return send_error(call, ApiError{502, "peer_unreachable", r.error, {}, 0});
  call.res.status = r.status;
  call.res.set_content(r.body.dump(), "application/json");
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
  if (node.empty() || node == ctx.deps.node) {
    size_t n = 0;
    for (const auto& a : registry(ctx).list(q, &n)) actors.push_back(actor_json(a, ctx.deps.node));
    total += n;
    answered.push_back(ctx.deps.node);
    json kinds = json::object();
    for (const auto& [kind, count] : registry(ctx).count_by_kind()) kinds[kind] = count;
    by_kind[ctx.deps.node] = kinds;
  }
  if (!local_only && ctx.cluster && node != ctx.deps.node) {
    std::string path = "/api/actors?scope=local&limit=" + std::to_string(q.limit);
    if (!q.kind.empty()) path += "&kind=" + httplib::detail::encode_query_param(q.kind);
    if (!q.sort.empty()) path += "&sort=" + q.sort;
    auto headers = forwarded_auth(call);
    std::vector<std::pair<std::string, std::future<PeerReply>>> asks;
    for (const auto& m : members(ctx)) {
      auto name = m.value("name", "");
      auto status = m.value("status", "");
      if (m.value("self", false) || (!node.empty() && name != node)) continue;
      if (status == "down" || status == "removed" || status == "unreachable") {
        unreachable.push_back({{"node", name}, {"reason", "node is " + status}});
        continue;
      }
      asks.emplace_back(name, std::async(std::launch::async, ask_peer, m.value("http_address", ""), "GET", path, headers));
    }
    for (auto& [name, f] : asks) {
      auto r = f.get();
      if (r.status != 200 || !r.body.is_object()) {
        unreachable.push_back({{"node", name}, {"reason", r.error.empty() ? "HTTP " + std::to_string(r.status) : r.error}});
        continue;
      }
      for (auto& a : r.body["data"]["actors"]) actors.push_back(std::move(a));
      total += r.body["data"].value("total", size_t(0));
      for (auto& [peer, kinds] : r.body["data"]["by_kind"].items()) by_kind[peer] = kinds;
      answered.push_back(name);
    }
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

// The live local actor a /api/actors/{node}/{id} request names; null once the request is
// answered (relayed to its node, refused, or not found).
std::shared_ptr<runtime::introspection::Probe> named_actor(Context& ctx, Call& call) {
  if (!ctx.attached) return send_error(call, ApiError::unavailable("the node is starting", 1)), nullptr;
  const auto& node = call.path_params.at("node");
  if (node != ctx.deps.node) return relay(ctx, call, node, call.req.method, call.req.path), nullptr;
  auto id = actor_id(call);
  if (!id) return send_error(call, ApiError::bad_request("id", "the actor id must be a positive integer")), nullptr;
  auto probe = registry(ctx).find(*id);
  if (!probe) send_error(call, ApiError::not_found("no live actor " + std::to_string(*id) + " on node " + node));
  return probe;
}

void get_actor(Context& ctx, Call& call) {
  auto probe = named_actor(ctx, call);
  if (!probe) return;
  auto info = probe->info();
  auto out = actor_json(info, ctx.deps.node);
  out["busy_percent_since_start"] =
      std::round(info.busy_ms / double(std::max<int64_t>(1, runtime::now_ms() - info.started_ms)) * 10000) / 100;
  if (info.parent) {
    auto parent = registry(ctx).find(info.parent);
    out["parent_actor"] = parent ? json{{"id", info.parent}, {"kind", parent->info().kind}, {"name", parent->info().name}} : json();
  }
  json summary;
  if (info.inspectable) {
    auto handle = caf::actor_cast<caf::actor>(probe->address());
    if (handle)
      thread_actor(ctx)
          ->request(handle, std::chrono::seconds(2), runtime::introspection::introspect_atom::value)
          .receive([&](std::string& text) { summary = json::parse(text, nullptr, false); },
                   [&](caf::error& err) { summary = {{"unavailable", ctx.deps.system->render(err)}}; });
  }
  out["summary"] = summary.is_discarded() ? json() : summary;
  send_data(call, 200, out);
}

void kill_actor(Context& ctx, Call& call) {
  auto probe = named_actor(ctx, call);
  if (!probe) return;
  auto info = probe->info();
  auto id = info.id;
  const auto& node = ctx.deps.node;
  if (info.parent == 0)
    return send_error(call, ApiError::conflict("actor " + std::to_string(id) + " (" + info.kind +
                                               ") has no supervisor or owner to restart it; killing it would stop that part of the node for good"));
  auto parent = registry(ctx).find(info.parent);
  caf::anon_send_exit(probe->address(), caf::exit_reason::kill);
  spdlog::warn("introspection: actor {} ({} {}) killed on request {}", id, info.kind, info.name, call.request_id);
  send_data(call, 202,
            {{"id", id},
             {"node", node},
             {"kind", info.kind},
             {"name", info.name},
             {"killed", true},
             {"parent", parent ? json{{"id", info.parent}, {"kind", parent->info().kind}, {"name", parent->info().name}} : json()},
             {"message", "sent the kill signal; its " + (parent ? parent->info().kind : std::string("owner")) +
                             " restarts it (see GET /api/supervisors and the new actor in GET /api/actors)"}});
}

// At most this many SSE streams at once: each holds a connection thread for its life.
size_t max_streams(const Context& ctx) { return size_t(std::max(1, connection_threads(ctx.deps.config->server.workers) / 4)); }
std::atomic<size_t> open_streams{0};

bool admit_stream(Context& ctx, Call& call) {
  if (open_streams.fetch_add(1) >= max_streams(ctx)) {
    open_streams.fetch_sub(1);
    send_error(call, ApiError{503, "too_many_streams",
                              "this node already serves " + std::to_string(max_streams(ctx)) +
                                  " event streams (one per [server] worker); close one or raise workers",
                              {}, 5});
    return false;
  }
  return true;
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
  if (!admit_stream(ctx, call)) return;
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
      [&ctx, probe, stream, deadline, info, seconds, sample, max_rate](size_t, httplib::DataSink& sink) {
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
        if (gone || ctx.draining || std::chrono::steady_clock::now() >= deadline) {
          chunk += sse("end", {{"events", stream->sent}, {"not_recorded", lost},
                               {"reason", gone ? "the actor stopped" : ctx.draining ? "the node is stopping" : "time is up"}});
          if (!sink.write(chunk.data(), chunk.size())) return false;
          sink.done();
          return true;
        }
        if (chunk.empty()) chunk = ": waiting\n\n";
        return sink.write(chunk.data(), chunk.size());
      },
      [probe](bool) {
        probe->stop_trace();
        open_streams.fetch_sub(1);
      });
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
  if (!admit_stream(ctx, call)) return;
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
      [&ctx, &feed, stream, deadline, types](size_t, httplib::DataSink& sink) {
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
        if (ctx.draining || now >= deadline) {
          chunk += sse("end", {{"reason", ctx.draining ? "the node is stopping" : "time is up"}, {"last_event_id", stream->after}});
          if (!sink.write(chunk.data(), chunk.size())) return false;
          sink.done();
          return true;
        }
        if (chunk.empty() && now - stream->last_write > std::chrono::seconds(15)) chunk = ": keep-alive\n\n";
        if (chunk.empty()) return true;
        stream->last_write = now;
        return sink.write(chunk.data(), chunk.size());
      },
      [](bool) { open_streams.fetch_sub(1); });
}

}  // namespace

void add_introspection_routes(Router& router, Context& ctx) {
  router.add("GET", "/api/actors", [&ctx](Call& c) { list_actors(ctx, c); });
  router.add("GET", "/api/actors/{node}/{id}", [&ctx](Call& c) { get_actor(ctx, c); });
  router.add("POST", "/api/actors/{node}/{id}/kill", [&ctx](Call& c) { kill_actor(ctx, c); });
  router.add("GET", "/api/actors/{node}/{id}/trace", [&ctx](Call& c) { trace_actor(ctx, c); });
  router.add("GET", "/api/events", [&ctx](Call& c) { events(ctx, c); });
}

}  // namespace hub::gateway
