#include "gateway/model.hpp"

#include "runtime/clock.hpp"

#include <algorithm>
#include <set>

namespace hub::gateway {
namespace {

using runtime::AgentRecord;
using runtime::TaskRecord;

json parsed_or_null(const std::string& text) {
  if (text.empty()) return nullptr;
  auto v = json::parse(text, nullptr, false);
  return v.is_discarded() ? json(text) : v;
}
json time_or_null(int64_t ms) { return ms > 0 ? json(runtime::rfc3339(ms)) : json(nullptr); }
json string_or_null(const std::string& s) { return s.empty() ? json(nullptr) : json(s); }

std::optional<ApiError> unknown_fields(const json& body, const std::set<std::string>& allowed, const std::string& prefix = "") {
  for (const auto& [key, _] : body.items())
    if (!allowed.count(key)) {
      std::string list;
      for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
      return ApiError::bad_request(prefix + key, "unknown field \"" + prefix + key + "\"; allowed: " + list, "unknown_field");
    }
  return std::nullopt;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

bool blank(const std::string& s) { return s.find_first_not_of(" \t\r\n") == std::string::npos; }

std::optional<ApiError> string_field(const json& body, const std::string& field, std::string& out, size_t max_len,
                                     bool required) {
  if (!body.contains(field) || body[field].is_null()) {
    if (required) return ApiError::bad_request(field, "\"" + field + "\" is required (a non-empty string)");
    return std::nullopt;
  }
  if (!body[field].is_string()) return ApiError::bad_request(field, "\"" + field + "\" must be a string");
  out = body[field].get<std::string>();
  if (required && blank(out)) return ApiError::bad_request(field, "\"" + field + "\" must not be empty");
  if (out.size() > max_len)
    return ApiError::bad_request(field, "\"" + field + "\" is longer than " + std::to_string(max_len) + " bytes");
  return std::nullopt;
}

std::optional<ApiError> integer_field(const json& body, const std::string& field, int64_t lo, int64_t hi, int64_t& out) {
  if (!body.contains(field) || body[field].is_null()) return std::nullopt;
  const auto& v = body[field];
  if (!v.is_number_integer() || v.get<int64_t>() < lo || v.get<int64_t>() > hi)
    return ApiError::bad_request(field, "\"" + field + "\" must be an integer from " + std::to_string(lo) + " to " +
                                            std::to_string(hi));
  out = v.get<int64_t>();
  return std::nullopt;
}

std::optional<ApiError> unit_number(const json& v, const std::string& field, double& out) {
  if (!v.is_number() || v.get<double>() < 0.0 || v.get<double>() > 1.0)
    return ApiError::bad_request(field, "\"" + field + "\" must be a number from 0 to 1");
  out = v.get<double>();
  return std::nullopt;
}

bool valid_name_chars(const std::string& s) {
  return std::all_of(s.begin(), s.end(), [](unsigned char c) {
    return std::isalnum(c) || c == ' ' || c == '-' || c == '_' || c == '.' || c == ':';
  });
}

}  // namespace

json task_view(const TaskRecord& t) {
  json caps = json::array();
  for (const auto& c : t.required_capabilities) caps.push_back({{"name", c.name}, {"minimum_proficiency", c.minimum_proficiency}});
  json error = nullptr;
  if (!t.error_type.empty()) error = {{"type", t.error_type}, {"message", t.error_message}};
  json view = json{{"id", t.id},
              {"title", t.title},
              {"description", t.description},
              {"type", t.type},
              {"priority", t.priority},
              {"required_capabilities", caps},
              {"payload", parsed_or_null(t.payload_json)},
              {"status", t.status},
              {"attempts", t.attempts},
              {"max_attempts", t.max_attempts},
              {"timeout_ms", t.timeout_ms},
              {"idempotency_key", string_or_null(t.idempotency_key)},
              {"assigned_agent", string_or_null(t.assigned_agent)},
              {"node", t.node},
              {"result", parsed_or_null(t.result_json)},
              {"error", error},
              {"created_at", time_or_null(t.created_at)},
              {"updated_at", time_or_null(t.updated_at)},
              {"started_at", time_or_null(t.started_at)},
              {"completed_at", time_or_null(t.completed_at)}};
  if (!t.inferred_json.empty()) view["inferred_capabilities"] = json::parse(t.inferred_json, nullptr, false);
  return view;
}

json event_view(const runtime::TaskEvent& e) {
  return json{{"from", string_or_null(e.from)},
              {"to", e.to},
              {"at", runtime::rfc3339(e.at)},
              {"attempt", e.attempt},
              {"reason", string_or_null(e.reason)}};
}

json agent_view(const AgentRecord& a) {
  json caps = json::array();
  for (const auto& c : a.capabilities)
    caps.push_back({{"name", c.name}, {"proficiency", c.proficiency}, {"learning_rate", c.learning_rate}});
  return json{{"id", a.id},
              {"name", a.name},
              {"type", a.type},
              {"specialization", string_or_null(a.specialization)},
              {"state", a.state},
              {"capabilities", caps},
              {"max_concurrent_tasks", a.max_concurrent_tasks},
              {"running_tasks", a.running_tasks},
              {"executor", parsed_or_null(actors::redact_executor(a.executor_json))},
              {"energy", a.energy},
              {"node", a.node},
              {"tasks_completed", a.tasks_completed},
              {"tasks_failed", a.tasks_failed},
              {"avg_duration_ms", a.avg_duration_ms},
              {"created_at", time_or_null(a.created_at)},
              {"updated_at", time_or_null(a.updated_at)}};
}

std::variant<TaskRecord, ApiError> task_from_json(const json& body, const TaskDefaults& defaults,
                                                  const std::string& idempotency_header) {
  static const std::set<std::string> allowed{"description", "title", "type", "task_type", "priority",
                                             "required_capabilities", "payload", "context", "max_attempts",
                                             "timeout_ms", "idempotency_key"};
  if (!body.is_object()) return ApiError::bad_request("", "a task must be a JSON object");
  if (auto e = unknown_fields(body, allowed)) return *e;
  TaskRecord t;
  if (auto e = string_field(body, "description", t.description, 10000, true)) return *e;
  if (auto e = string_field(body, "title", t.title, 500, false)) return *e;
  if (auto e = string_field(body, "type", t.type, 100, false)) return *e;
  if (t.type.empty())
    if (auto e = string_field(body, "task_type", t.type, 100, false)) return *e;
  if (body.contains("priority") && !body["priority"].is_null()) {
    static const std::set<std::string> priorities{"low", "medium", "high", "critical"};
    if (!body["priority"].is_string() || !priorities.count(lower(body["priority"].get<std::string>())))
      return ApiError::bad_request("priority", "\"priority\" must be one of low, medium, high, critical");
    t.priority = lower(body["priority"].get<std::string>());
  }
  if (body.contains("required_capabilities") && !body["required_capabilities"].is_null()) {
    const auto& caps = body["required_capabilities"];
    if (!caps.is_array() || caps.size() > 64)
      return ApiError::bad_request("required_capabilities",
                                   "\"required_capabilities\" must be an array (at most 64) of {name, minimum_proficiency}");
    for (size_t i = 0; i < caps.size(); ++i) {
      const auto& c = caps[i];
      auto at = "required_capabilities[" + std::to_string(i) + "]";
      if (!c.is_object()) return ApiError::bad_request(at, at + " must be an object {name, minimum_proficiency}");
      if (auto e = unknown_fields(c, {"name", "minimum_proficiency", "min_proficiency"}, at + ".")) return *e;
      runtime::RequiredCapability rc;
      if (!c.contains("name") || !c["name"].is_string() || blank(c["name"].get<std::string>()))
        return ApiError::bad_request(at + ".name", at + ".name must be a non-empty string");
      rc.name = c["name"].get<std::string>();
      for (const char* key : {"minimum_proficiency", "min_proficiency"})
        if (c.contains(key) && !c[key].is_null())
          if (auto e = unit_number(c[key], at + "." + key, rc.minimum_proficiency)) return *e;
      t.required_capabilities.push_back(std::move(rc));
    }
  }
  if (body.contains("payload")) {
    t.payload_json = body["payload"].dump();
  } else if (body.contains("context")) {
    if (!body["context"].is_object()) return ApiError::bad_request("context", "\"context\" must be an object");
    t.payload_json = json{{"context", body["context"]}}.dump();
  }
  int64_t max_attempts = defaults.max_attempts, timeout_ms = defaults.timeout_ms;
  if (auto e = integer_field(body, "max_attempts", 1, 100, max_attempts)) return *e;
  if (auto e = integer_field(body, "timeout_ms", 1, 7LL * 24 * 3600 * 1000, timeout_ms)) return *e;
  t.max_attempts = int32_t(max_attempts);
  t.timeout_ms = timeout_ms;
  if (auto e = string_field(body, "idempotency_key", t.idempotency_key, 200, false)) return *e;
  if (t.idempotency_key.empty()) t.idempotency_key = idempotency_header;
  if (t.idempotency_key.size() > 200)
    return ApiError::bad_request("idempotency_key", "the idempotency key is longer than 200 bytes");
  t.id = runtime::new_time_uuid();
  t.status = "pending";
  t.created_at = t.updated_at = runtime::now_ms();
  return t;
}

std::variant<AgentRecord, ApiError> agent_from_json(const json& body, int default_concurrency,
                                                    const actors::ExecutorPolicy& executors) {
  static const std::set<std::string> allowed{"name", "type", "agent_type", "specialization", "capabilities",
                                             "max_concurrent_tasks", "executor"};
  static const std::set<std::string> types{"worker", "coordinator", "specialist", "learner"};
  if (auto e = unknown_fields(body, allowed)) return *e;
  AgentRecord a;
  if (auto e = string_field(body, "name", a.name, 100, true)) return *e;
  if (!valid_name_chars(a.name))
    return ApiError::bad_request("name", "\"name\" may hold letters, digits, spaces and - _ . : only");
  std::string type, agent_type;
  if (auto e = string_field(body, "type", type, 100, false)) return *e;
  if (auto e = string_field(body, "agent_type", agent_type, 200, false)) return *e;
  if (auto e = string_field(body, "specialization", a.specialization, 100, false)) return *e;
  auto colon = agent_type.find(':');
  if (!agent_type.empty()) {
    auto base = lower(agent_type.substr(0, colon));
    if (!types.count(base))
      return ApiError::bad_request("agent_type",
                                   "\"agent_type\" must be worker, coordinator, learner, specialist or specialist:<area>");
    if (colon != std::string::npos) {
      if (base != "specialist" || colon + 1 >= agent_type.size())
        return ApiError::bad_request("agent_type", "only \"specialist:<area>\" takes an area, and it must not be empty");
      if (a.specialization.empty()) a.specialization = agent_type.substr(colon + 1);
    }
    if (!type.empty() && lower(type) != base)
      return ApiError::bad_request("type", "\"type\" and \"agent_type\" disagree");
    type = base;
  }
  type = lower(type);
  if (type.empty()) return ApiError::bad_request("type", "\"type\" is required: worker, coordinator, specialist or learner");
  if (!types.count(type))
    return ApiError::bad_request("type", "\"type\" must be one of worker, coordinator, specialist, learner");
  a.type = type;
  if (a.type != "specialist" && !a.specialization.empty())
    return ApiError::bad_request("specialization", "only a specialist has a specialization");
  if (body.contains("capabilities") && !body["capabilities"].is_null()) {
    const auto& caps = body["capabilities"];
    if (!caps.is_array() || caps.size() > 64)
      return ApiError::bad_request("capabilities", "\"capabilities\" must be an array (at most 64) of {name, proficiency, learning_rate}");
    for (size_t i = 0; i < caps.size(); ++i) {
      const auto& c = caps[i];
      auto at = "capabilities[" + std::to_string(i) + "]";
      if (!c.is_object()) return ApiError::bad_request(at, at + " must be an object {name, proficiency, learning_rate}");
      if (auto e = unknown_fields(c, {"name", "proficiency", "learning_rate"}, at + ".")) return *e;
      runtime::Capability cap;
      if (!c.contains("name") || !c["name"].is_string() || blank(c["name"].get<std::string>()))
        return ApiError::bad_request(at + ".name", at + ".name must be a non-empty string");
      cap.name = c["name"].get<std::string>();
      if (c.contains("proficiency"))
        if (auto e = unit_number(c["proficiency"], at + ".proficiency", cap.proficiency)) return *e;
      if (c.contains("learning_rate"))
        if (auto e = unit_number(c["learning_rate"], at + ".learning_rate", cap.learning_rate)) return *e;
      a.capabilities.push_back(std::move(cap));
    }
  }
  if (a.capabilities.empty() && !a.specialization.empty()) a.capabilities.push_back({a.specialization, 0.5, 0.1});
  int64_t concurrency = default_concurrency;
  if (auto e = integer_field(body, "max_concurrent_tasks", 1, 10000, concurrency)) return *e;
  a.max_concurrent_tasks = int32_t(concurrency);
  if (body.contains("executor") && !body["executor"].is_null()) {
    auto text = body["executor"].dump(-1, ' ', false, json::error_handler_t::replace);
    if (auto p = actors::check_executor(text, executors)) return ApiError::bad_request(p->field, p->message);
    a.executor_json = text;
  }
  return a;
}

std::optional<ApiError> read_paging(const std::multimap<std::string, std::string>& params, int& limit, int& offset) {
  auto read = [&](const char* name, int lo, int hi, int& out) -> std::optional<ApiError> {
    auto it = params.find(name);
    if (it == params.end()) return std::nullopt;
    try {
      size_t used = 0;
      long v = std::stol(it->second, &used);
      if (used != it->second.size() || v < lo || v > hi) throw std::out_of_range(name);
      out = int(v);
    } catch (const std::exception&) {
      return ApiError::bad_request(name, std::string("\"") + name + "\" must be an integer from " + std::to_string(lo) +
                                             " to " + std::to_string(hi));
    }
    return std::nullopt;
  };
  if (auto e = read("limit", 1, 1000, limit)) return e;
  return read("offset", 0, 1'000'000'000, offset);
}

}  // namespace hub::gateway
