// The operator API: agents, tasks and the hive's status. Reads come from the store (the
// durable truth), changes go to the scheduler actor; every refusal is an ApiError.
#include "actors/task_protocol.hpp"
#include "actors/neural/worker.hpp"
#include "gateway/context.hpp"
#include "gateway/http_server.hpp"
#include "runtime/metrics.hpp"
#include "gateway/model.hpp"
#include "runtime/clock.hpp"
#include "runtime/process_stats.hpp"
#include "runtime/store/store.hpp"

#include <cmath>
#include <mutex>
#include <deque>
#include <caf/actor_system.hpp>
#include <caf/scoped_actor.hpp>
#include <httplib.h>

#include <set>

namespace hub::gateway {

using namespace hub::actors;
using runtime::AgentRecord;
using runtime::TaskRecord;

ApiError error_from_actor(const caf::error& err) {
  if (err == caf::sec::request_timeout) return ApiError::unavailable("the node did not answer in time; try again", 1);
  const auto& context = err.context();
  if (context.size() == 1 && context.match_element<std::string>(0)) {
    const auto& text = context.get_as<std::string>(0);
    auto bar = text.find(kErrorSeparator);
    auto code = text.substr(0, bar);
    auto message = bar == std::string::npos ? text : text.substr(bar + 1);
    if (code == "not_found") return ApiError::not_found(message);
    if (code == "conflict") return ApiError::conflict(message);
    if (code == "limit") return ApiError{409, "limit_reached", message, {}, 0};
    if (code == "queue_full") return ApiError{503, "queue_full", message, {}, 2};
    return ApiError::unavailable(message, 2);
  }
  return ApiError::unavailable("the node could not handle the request: " + caf::to_string(err), 2);
}

namespace {

constexpr auto kAskTimeout = std::chrono::seconds(15);

template <class T, class... Ts>
Answer<T> ask(Context& ctx, Ts&&... xs) {
  thread_local std::unique_ptr<caf::scoped_actor> self;
  if (!self) self = std::make_unique<caf::scoped_actor>(*ctx.deps.system);
  Answer<T> out = ApiError::unavailable("no answer");
  (*self)->request(ctx.scheduler, kAskTimeout, std::forward<Ts>(xs)...)
      .receive([&](T& value) { out = std::move(value); }, [&](caf::error& err) { out = error_from_actor(err); });
  return out;
}

// Answers the request and returns false when the node cannot take API calls now.
bool serving(Context& ctx, Call& call) {
  if (ctx.draining) {
    send_error(call, ApiError::unavailable("the node is shutting down", 5));
    return false;
  }
  if (!ctx.attached) {
    send_error(call, ApiError::unavailable("the node is starting", 1));
    return false;
  }
  return true;
}

std::optional<ApiError> over_memory_limit(const Context& ctx) {
  auto limit_mb = ctx.deps.config->performance.memory_limit_mb;
  if (limit_mb <= 0) return std::nullopt;
  auto rss = runtime::read_process_stats().rss_bytes;
  if (rss <= limit_mb * 1024 * 1024) return std::nullopt;
  return ApiError{503, "memory_limit", "the node uses " + std::to_string(rss / (1024 * 1024)) +
                                           " MiB, above [performance] memory_limit_mb = " + std::to_string(limit_mb) +
                                           "; new tasks are refused until it drops",
                  {}, 5};
}

json model_view(const runtime::ModelRecord& m) {
  auto parse = [](const std::string& text) { return json::parse(text, nullptr, false); };
  return {{"name", m.name},
          {"kind", m.kind},
          {"spec", parse(m.spec_json)},
          {"metadata", parse(m.metadata_json)},
          {"metrics", parse(m.metrics_json)},
          {"size_bytes", m.size_bytes},
          {"created_at", runtime::rfc3339(m.created_at)},
          {"updated_at", runtime::rfc3339(m.updated_at)}};
}

json task_with_events(Context& ctx, const TaskRecord& t) {
  auto view = task_view(t);
  json events = json::array();
  for (const auto& e : ctx.store->task_events(t.id)) events.push_back(event_view(e));
  view["events"] = std::move(events);
  if (view.value("status", "") == "running")
    if (auto progress = actors::job_progress(view.value("id", ""))) view["progress"] = json::parse(*progress, nullptr, false);
  return view;
}

TaskDefaults task_defaults(const Context& ctx) {
  return {ctx.deps.config->tasks.retry_attempts, int64_t(ctx.deps.config->tasks.task_timeout_secs) * 1000};
}

const std::string& path_id(const Call& call) { return call.path_params.at("id"); }

template <class T>
bool failed(Call& call, Answer<T>& answer) {
  if (auto* e = std::get_if<ApiError>(&answer)) {
    send_error(call, *e);
    return true;
  }
  return false;
}

// Submits validated tasks; existing idempotency keys resolve to their tasks.
void submit(Context& ctx, Call& call, std::vector<TaskRecord> records, bool batch) {
  std::vector<std::optional<TaskRecord>> existing(records.size());
  std::vector<TaskRecord> fresh;
  std::vector<size_t> fresh_index;
  for (size_t i = 0; i < records.size(); ++i) {
    const auto& key = records[i].idempotency_key;
    if (!key.empty())
      if (auto id = ctx.store->task_id_by_idempotency_key(key))
        if (auto t = ctx.store->task(*id)) {
          existing[i] = std::move(*t);
          continue;
        }
    fresh.push_back(records[i]);
    fresh_index.push_back(i);
  }
  std::vector<json> views(records.size());
  bool any_created = false;
  if (!fresh.empty()) {
    auto answer = ask<SubmitReply>(ctx, submit_atom::value, std::move(fresh));
    if (failed(call, answer)) return;
    auto& reply = std::get<SubmitReply>(answer);
    for (size_t j = 0; j < reply.tasks.size(); ++j) {
      auto i = fresh_index[j];
      if (reply.created[j] == "1") {
        views[i] = task_view(reply.tasks[j]);
        any_created = true;
      } else if (auto t = ctx.store->task(reply.tasks[j].id)) {
        views[i] = task_view(*t);
      } else {
        views[i] = json{{"id", reply.tasks[j].id}};
      }
    }
  }
  for (size_t i = 0; i < records.size(); ++i)
    if (existing[i]) views[i] = task_view(*existing[i]);
  int status = any_created ? 201 : 200;
  if (batch) send_data(call, status, {{"tasks", views}, {"count", views.size()}});
  else send_data(call, status, views.front());
}

void post_task(Context& ctx, Call& call) {
  if (!serving(ctx, call)) return;
  json body;
  if (auto e = parse_json_body(call, body)) return send_error(call, *e);
  if (auto e = over_memory_limit(ctx)) return send_error(call, *e);
  auto parsed = task_from_json(body, task_defaults(ctx), call.req.get_header_value("Idempotency-Key"));
  if (auto* e = std::get_if<ApiError>(&parsed)) return send_error(call, *e);
  submit(ctx, call, {std::get<TaskRecord>(parsed)}, false);
}

void post_batch(Context& ctx, Call& call) {
  if (!serving(ctx, call)) return;
  json body;
  if (auto e = parse_json_body(call, body)) return send_error(call, *e);
  if (auto e = over_memory_limit(ctx)) return send_error(call, *e);
  for (const auto& [key, _] : body.items())
    if (key != "tasks") return send_error(call, ApiError::bad_request(key, "unknown field \"" + key + "\"; allowed: tasks", "unknown_field"));
  if (!body.contains("tasks") || !body["tasks"].is_array() || body["tasks"].empty() || body["tasks"].size() > 1000)
    return send_error(call, ApiError::bad_request("tasks", "\"tasks\" must be an array of 1 to 1000 tasks"));
  std::vector<TaskRecord> records;
  auto defaults = task_defaults(ctx);
  for (size_t i = 0; i < body["tasks"].size(); ++i) {
    auto parsed = task_from_json(body["tasks"][i], defaults);
    if (auto* e = std::get_if<ApiError>(&parsed)) {
      auto error = *e;
      error.field = "tasks[" + std::to_string(i) + "]" + (error.field.empty() ? "" : "." + error.field);
      error.message = "tasks[" + std::to_string(i) + "]: " + error.message + " (nothing in the batch was accepted)";
      return send_error(call, error);
    }
    records.push_back(std::move(std::get<TaskRecord>(parsed)));
  }
  submit(ctx, call, std::move(records), true);
}

void list_tasks(Context& ctx, Call& call) {
  if (!serving(ctx, call)) return;
  runtime::TaskFilter filter;
  if (auto e = read_paging(call.req.params, filter.limit, filter.offset)) return send_error(call, *e);
  static const std::set<std::string> allowed{"status", "type", "agent", "priority", "limit", "offset"};
  for (const auto& [key, _] : call.req.params)
    if (!allowed.count(key))
      return send_error(call, ApiError::bad_request(key, "unknown query parameter \"" + key +
                                                             "\"; allowed: status, type, agent, priority, limit, offset"));
  filter.status = call.req.get_param_value("status");
  filter.type = call.req.get_param_value("type");
  filter.agent = call.req.get_param_value("agent");
  filter.priority = call.req.get_param_value("priority");
  static const std::set<std::string> statuses{"pending", "assigned", "running", "completed", "failed", "cancelled"};
  if (!filter.status.empty() && !statuses.count(filter.status))
    return send_error(call, ApiError::bad_request("status", "\"status\" must be one of pending, assigned, running, completed, failed, cancelled"));
  if (!filter.priority.empty() && runtime::priority_rank(filter.priority) < 0)
    return send_error(call, ApiError::bad_request("priority", "\"priority\" must be one of low, medium, high, critical"));
  auto page = ctx.store->tasks(filter);
  json tasks = json::array();
  for (const auto& t : page.tasks) tasks.push_back(task_view(t));
  send_data(call, 200, {{"tasks", tasks}, {"total", page.total}, {"limit", filter.limit}, {"offset", filter.offset}});
}

void get_task(Context& ctx, Call& call) {
  if (!serving(ctx, call)) return;
  auto t = ctx.store->task(path_id(call));
  if (!t) return send_error(call, ApiError::not_found("no task " + path_id(call)));
  send_data(call, 200, task_with_events(ctx, *t));
}

void wait_task(Context& ctx, Call& call) {
  if (!serving(ctx, call)) return;
  int64_t timeout_ms = 30000;
  if (call.req.has_param("timeout_ms")) {
    try {
      size_t used = 0;
      timeout_ms = std::stoll(call.req.get_param_value("timeout_ms"), &used);
      if (used != call.req.get_param_value("timeout_ms").size() || timeout_ms < 0 || timeout_ms > 300000) throw std::out_of_range("");
    } catch (const std::exception&) {
      return send_error(call, ApiError::bad_request("timeout_ms", "\"timeout_ms\" must be an integer from 0 to 300000"));
    }
  }
  const auto& id = path_id(call);
  auto slot = take_stream_slot(ctx, call);
  if (!slot) return;
  auto deadline = runtime::now_ms() + timeout_ms;
  // A scoped actor of its own: a late answer dies with it instead of piling up.
  caf::scoped_actor self{*ctx.deps.system};
  while (true) {
    auto t = ctx.store->task(id);
    if (!t) return send_error(call, ApiError::not_found("no task " + id));
    if (runtime::is_terminal(t->status)) return send_data(call, 200, task_with_events(ctx, *t));
    auto left = deadline - runtime::now_ms();
    // A client that left, or whose session ended, stops holding its slot at once.
    bool abandoned = HttpServer::client_gone() || !ctx.security.still_valid(*call.principal);
    if (left <= 0 || ctx.draining || abandoned) return send_data(call, 202, task_with_events(ctx, *t));
    bool done = false;
    self->request(ctx.scheduler, std::chrono::milliseconds(std::min<int64_t>(left, 1000)), wait_atom::value, id)
        .receive([&](bool) { done = true; }, [&](caf::error&) {});
    (void)done;
  }
}

void cancel_task(Context& ctx, Call& call) {
  if (!serving(ctx, call)) return;
  const auto& id = path_id(call);
  auto t = ctx.store->task(id);
  if (!t) return send_error(call, ApiError::not_found("no task " + id));
  if (runtime::is_terminal(t->status)) return send_error(call, ApiError::conflict("task " + id + " is already " + t->status));
  auto answer = ask<TaskRecord>(ctx, cancel_atom::value, id);
  if (failed(call, answer)) return;
  send_data(call, 200, task_view(std::get<TaskRecord>(answer)));
}

void retry_task(Context& ctx, Call& call) {
  if (!serving(ctx, call)) return;
  const auto& id = path_id(call);
  auto t = ctx.store->task(id);
  if (!t) return send_error(call, ApiError::not_found("no task " + id));
  if (t->status != "failed" && t->status != "cancelled")
    return send_error(call, ApiError::conflict("only failed or cancelled tasks can be retried; task " + id + " is " + t->status));
  auto answer = ask<TaskRecord>(ctx, retry_atom::value, *t);
  if (failed(call, answer)) return;
  send_data(call, 200, task_view(std::get<TaskRecord>(answer)));
}

void post_agent(Context& ctx, Call& call) {
  if (!serving(ctx, call)) return;
  json body;
  if (auto e = parse_json_body(call, body)) return send_error(call, *e);
  auto parsed = agent_from_json(body, ctx.deps.config->agents.default_max_concurrent_tasks,
                                actors::executor_policy(ctx.deps.config->agents));
  if (auto* e = std::get_if<ApiError>(&parsed)) return send_error(call, *e);
  auto answer = ask<AgentRecord>(ctx, create_atom::value, std::get<AgentRecord>(parsed));
  if (failed(call, answer)) return;
  send_data(call, 201, agent_view(std::get<AgentRecord>(answer)));
}

void list_agents(Context& ctx, Call& call) {
  if (!serving(ctx, call)) return;
  int limit = 50, offset = 0;
  if (auto e = read_paging(call.req.params, limit, offset)) return send_error(call, *e);
  static const std::set<std::string> allowed{"state", "type", "capability", "limit", "offset"};
  for (const auto& [key, _] : call.req.params)
    if (!allowed.count(key))
      return send_error(call, ApiError::bad_request(key, "unknown query parameter \"" + key +
                                                             "\"; allowed: state, type, capability, limit, offset"));
  auto answer = ask<std::vector<AgentRecord>>(ctx, list_atom::value);
  if (failed(call, answer)) return;
  auto state = call.req.get_param_value("state"), type = call.req.get_param_value("type"),
       capability = call.req.get_param_value("capability");
  std::vector<AgentRecord> matching;
  for (auto& a : std::get<std::vector<AgentRecord>>(answer)) {
    if (!state.empty() && a.state != state) continue;
    if (!type.empty() && a.type != type) continue;
    if (!capability.empty() && std::none_of(a.capabilities.begin(), a.capabilities.end(),
                                            [&](const runtime::Capability& c) { return c.name == capability; }))
      continue;
    matching.push_back(std::move(a));
  }
  json agents = json::array();
  for (size_t i = size_t(offset); i < matching.size() && agents.size() < size_t(limit); ++i) agents.push_back(agent_view(matching[i]));
  send_data(call, 200, {{"agents", agents}, {"total", matching.size()}, {"limit", limit}, {"offset", offset}});
}

template <class Atom>
void agent_action(Context& ctx, Call& call, Atom atom) {
  if (!serving(ctx, call)) return;
  auto answer = ask<AgentRecord>(ctx, atom, path_id(call));
  if (failed(call, answer)) return;
  send_data(call, 200, agent_view(std::get<AgentRecord>(answer)));
}

// Task latency over the last ~10 s: the task-duration histogram now, minus a snapshot
// taken about 10 s earlier (kept here, at most one per second).
json recent_latency() {
  using Snapshot = runtime::metrics::Histogram::Snapshot;
  static std::mutex mutex;
  static std::deque<std::pair<int64_t, Snapshot>> history;
  auto now = runtime::now_ms();
  auto current = runtime::metrics::Registry::global().histogram_merged(runtime::metrics::names::task_duration);
  std::lock_guard<std::mutex> lock(mutex);
  if (history.empty() || now - history.back().first >= 1000) history.emplace_back(now, current);
  while (history.size() > 1 && now - history[1].first >= 10000) history.pop_front();
  auto window = current.count >= history.front().second.count && history.front().first < now ? current.minus(history.front().second)
                                                                                               : current;
  auto ms = [&](double q) { return std::round(window.quantile(q) * 1e6) / 1e3; };
  return {{"window_seconds", double(now - history.front().first) / 1000},
          {"tasks", window.count},
          {"p50_ms", ms(0.5)},
          {"p95_ms", ms(0.95)},
          {"p99_ms", ms(0.99)},
          {"finished_total", current.count}};
}

void hive_status(Context& ctx, Call& call) {
  if (!serving(ctx, call)) return;
  auto answer = ask<std::string>(ctx, status_atom::value);
  if (failed(call, answer)) return;
  auto scheduler = json::parse(std::get<std::string>(answer));
  json counts = json::object();
  for (const auto& [status, n] : ctx.store->task_counts_by_status()) counts[status] = n;
  send_data(call, 200,
            {{"node", ctx.deps.node},
             {"version", ctx.deps.version},
             {"uptime_seconds", (runtime::now_ms() - ctx.deps.started_ms) / 1000},
             {"agents", scheduler["agents"]},
             {"tasks", {{"by_status", counts}, {"running", scheduler["running"]}, {"live", scheduler["live_tasks"]},
                        {"unmatched", scheduler["unmatched"]}}},
             {"queue_depth", scheduler["queue_depth"]},
             {"throughput", scheduler["throughput"]},
             {"routing", scheduler["routing"]},
             {"latency", recent_latency()}});
}

}  // namespace

void add_api_routes(Router& router, Context& ctx) {
  router.add("POST", "/api/tasks", [&ctx](Call& c) { post_task(ctx, c); });
  router.add("POST", "/api/tasks/batch", [&ctx](Call& c) { post_batch(ctx, c); });
  router.add("GET", "/api/tasks", [&ctx](Call& c) { list_tasks(ctx, c); });
  router.add("GET", "/api/tasks/{id}", [&ctx](Call& c) { get_task(ctx, c); });
  router.add("GET", "/api/tasks/{id}/wait", [&ctx](Call& c) { wait_task(ctx, c); });
  router.add("POST", "/api/tasks/{id}/cancel", [&ctx](Call& c) { cancel_task(ctx, c); });
  router.add("POST", "/api/tasks/{id}/retry", [&ctx](Call& c) { retry_task(ctx, c); });
  router.add("POST", "/api/agents", [&ctx](Call& c) { post_agent(ctx, c); });
  router.add("GET", "/api/agents", [&ctx](Call& c) { list_agents(ctx, c); });
  router.add("GET", "/api/agents/{id}", [&ctx](Call& c) { agent_action(ctx, c, get_atom::value); });
  router.add("DELETE", "/api/agents/{id}", [&ctx](Call& c) { agent_action(ctx, c, delete_atom::value); });
  router.add("POST", "/api/agents/{id}/pause", [&ctx](Call& c) { agent_action(ctx, c, pause_atom::value); });
  router.add("POST", "/api/agents/{id}/resume", [&ctx](Call& c) { agent_action(ctx, c, resume_atom::value); });
  router.add("GET", "/api/hive/status", [&ctx](Call& c) { hive_status(ctx, c); });
  router.add("GET", "/api/neural/models", [&ctx](Call& c) {
    if (!ctx.attached) return send_error(c, ApiError::unavailable("the node is starting", 1));
    json models = json::array();
    for (const auto& m : ctx.store->models()) models.push_back(model_view(m));
    send_data(c, 200, {{"models", models}, {"total", models.size()}});
  });
  router.add("GET", "/api/neural/models/{name}", [&ctx](Call& c) {
    if (!ctx.attached) return send_error(c, ApiError::unavailable("the node is starting", 1));
    auto m = ctx.store->model(c.path_params.at("name"));
    if (!m) return send_error(c, ApiError::not_found("no model " + c.path_params.at("name") + " (GET /api/neural/models lists them)"));
    send_data(c, 200, model_view(*m));
  });
}

}  // namespace hub::gateway
