#include "gateway/api.hpp"

#include "runtime/clock.hpp"
#include "runtime/json_text.hpp"

#include <httplib.h>

namespace hub::gateway {
namespace {

// Text that came from a client may hold invalid UTF-8; it is replaced, never a failure.
std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

json envelope(bool success, json data, const json& error, const std::string& request_id) {
  return json{{"success", success},
              {"data", std::move(data)},
              {"error", error},
              {"timestamp", runtime::now_rfc3339()},
              {"request_id", request_id}};
}

std::vector<std::string> split_path(const std::string& path) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= path.size()) {
    auto slash = path.find('/', start);
    if (slash == std::string::npos) slash = path.size();
    if (slash > start) out.push_back(path.substr(start, slash - start));
    start = slash + 1;
  }
  return out;
}

const char* code_for_status(int status) {
  switch (status) {
    case 400: return "bad_request";
    case 401: return "unauthorized";
    case 403: return "forbidden";
    case 404: return "not_found";
    case 405: return "method_not_allowed";
    case 408: return "request_timeout";
    case 413: return "payload_too_large";
    case 414: return "uri_too_long";
    case 415: return "unsupported_media_type";
    case 429: return "rate_limited";
    case 503: return "unavailable";
    default: return status >= 500 ? "internal_error" : "error";
  }
}

}  // namespace

void send_data(Call& call, int status, json data) {
  call.res.status = status;
  call.res.set_content(dump(envelope(true, std::move(data), nullptr, call.request_id)), "application/json");
}

void send_error(Call& call, const ApiError& e) {
  json error{{"code", e.code}, {"message", e.message}};
  if (!e.field.empty()) error["field"] = e.field;
  call.res.status = e.status;
  if (e.retry_after_s > 0) call.res.set_header("Retry-After", std::to_string(e.retry_after_s));
  call.res.set_content(dump(envelope(false, nullptr, error, call.request_id)), "application/json");
}

std::string error_body(const std::string& code, const std::string& message, const std::string& request_id) {
  return dump(envelope(false, nullptr, json{{"code", code}, {"message", message}}, request_id));
}

void send_status_error(httplib::Response& res, int status, const std::string& request_id) {
  std::string message = "the request could not be handled (HTTP " + std::to_string(status) + ")";
  if (status == 400) message = "the request is malformed";
  if (status == 413) message = "the request body is larger than [server] max_body_bytes allows";
  if (status == 414) message = "the request URI is too long";
  json error{{"code", code_for_status(status)}, {"message", message}};
  res.set_content(dump(envelope(false, nullptr, error, request_id)), "application/json");
}

namespace {

// The top-level key a parse was in when it stopped (for error.field), found by parsing again
// with a callback that gives up at the same place: only on the error path.
struct Stop {};
std::string field_at_failure(const std::string& text, int max_depth) {
  std::string top;
  try {
    auto partial = json::parse(text, [&](int depth, json::parse_event_t event, json& parsed) {
      if (event == json::parse_event_t::key && depth == 1) top = parsed.get<std::string>();
      bool opens = event == json::parse_event_t::object_start || event == json::parse_event_t::array_start;
      if (opens && depth + 1 > max_depth) throw Stop{};
      return true;
    });
    (void)partial;
  } catch (...) {
  }
  return top;
}

}  // namespace

std::optional<ApiError> parse_json_text(const std::string& text, int max_depth, json& out) {
  if (runtime::json_nesting_depth(text, max_depth + 1) > max_depth)
    return ApiError{400, "json_too_deep",
                    "the JSON nests arrays and objects deeper than [server] max_json_depth (" + std::to_string(max_depth) +
                        ") levels",
                    field_at_failure(text, max_depth), 0};
  try {
    out = json::parse(text);
  } catch (const json::parse_error& e) {
    // The parser's message quotes the offending bytes; say where instead.
    std::string what = e.what();
    bool encoding = what.find("UTF-8") != std::string::npos || what.find("invalid string") != std::string::npos;
    return ApiError{400, encoding ? "invalid_encoding" : "malformed_json",
                    std::string(encoding ? "the body is not valid UTF-8 JSON" : "the body is not valid JSON") +
                        " (at byte " + std::to_string(e.byte) + ")",
                    {}, 0};
  } catch (const json::exception&) {
    // A number beyond what a double holds (1e999, a 5,000-digit integer).
    return ApiError{400, "number_out_of_range", "a number in the body is too large to represent",
                    field_at_failure(text, max_depth), 0};
  }
  if (!out.is_object()) return ApiError{400, "validation_failed", "the body must be a JSON object", {}, 0};
  return std::nullopt;
}

std::optional<ApiError> parse_json_body(const Call& call, json& out) {
  auto type = call.req.get_header_value("Content-Type");
  if (type.rfind("application/json", 0) != 0)
    return ApiError{415, "unsupported_media_type", "send the body as Content-Type: application/json", {}, 0};
  return parse_json_text(call.req.body, call.max_json_depth, out);
}

void Router::add(const std::string& method, const std::string& pattern, Handler handler) {
  routes_.push_back(Route{method, split_path(pattern), pattern, std::move(handler)});
}

const Router::Route* Router::match(const std::string& path, const std::string& method,
                                   std::vector<std::string>* allowed,
                                   std::map<std::string, std::string>* params) const {
  auto segments = split_path(path);
  const Route* found = nullptr;
  for (const auto& route : routes_) {
    if (route.segments.size() != segments.size()) continue;
    std::map<std::string, std::string> captured;
    bool ok = true;
    for (size_t i = 0; i < segments.size() && ok; ++i) {
      const auto& want = route.segments[i];
      if (want.size() > 2 && want.front() == '{' && want.back() == '}') captured[want.substr(1, want.size() - 2)] = segments[i];
      else ok = want == segments[i];
    }
    if (!ok) continue;
    if (route.method == method || (method == "HEAD" && route.method == "GET")) {
      if (!found) {
        found = &route;
        if (params) *params = std::move(captured);
      }
    } else if (allowed) {
      allowed->push_back(route.method);
    }
  }
  return found;
}

std::string Router::dispatch(Call& call) const {
  std::vector<std::string> allowed;
  if (const auto* route = match(call.req.path, call.req.method, &allowed, &call.path_params)) {
    route->handler(call);
    return route->pattern;
  }
  if (!allowed.empty()) {
    std::string allow;
    for (const auto& m : allowed) allow += (allow.empty() ? "" : ", ") + m;
    call.res.set_header("Allow", allow);
    send_error(call, ApiError{405, "method_not_allowed", call.req.method + " is not allowed on " + call.req.path +
                                                             " (allowed: " + allow + ")", {}, 0});
    return "unmatched";
  }
  send_error(call, ApiError::not_found("no route for " + call.req.method + " " + call.req.path));
  return "unmatched";
}

std::string Router::route_of(const std::string& method, const std::string& path) const {
  const auto* route = match(path, method, nullptr, nullptr);
  return route ? route->pattern : std::string();
}

}  // namespace hub::gateway
