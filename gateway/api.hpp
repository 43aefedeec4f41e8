// The HTTP contract of the gateway in one place: the JSON envelope every response uses
// ({"success","data","error","timestamp","request_id"}), the typed error that becomes a
// 4xx/5xx (produced here and nowhere else), and the router that maps method + path to a
// handler (with JSON 404/405 for the rest).
#pragma once

#include <nlohmann/json.hpp>

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace httplib {
struct Request;
struct Response;
}  // namespace httplib

namespace hub::gateway {

using json = nlohmann::json;

struct ApiError {
  int status = 500;
  std::string code;     // machine-readable, e.g. "validation_failed"
  std::string message;  // for people: what was wrong and what is allowed
  std::string field;    // the offending field, when there is one
  int retry_after_s = 0;

  static ApiError bad_request(std::string field, std::string message, std::string code = "validation_failed") {
    return {400, std::move(code), std::move(message), std::move(field), 0};
  }
  static ApiError not_found(std::string message) { return {404, "not_found", std::move(message), {}, 0}; }
  static ApiError conflict(std::string message) { return {409, "conflict", std::move(message), {}, 0}; }
  static ApiError unavailable(std::string message, int retry_after_s = 1) {
    return {503, "unavailable", std::move(message), {}, retry_after_s};
  }
};

// What a handler sees of a request, beyond httplib's.
// Who made a request, once authenticated.
struct Principal {
  std::string name;
  std::string role;  // admin|operator|viewer|agent
  std::string via;   // api_key|token|open
  std::string token_id;
  int64_t token_expires_ms = 0;
  std::string session;        // the login this token belongs to (revoked together)
  int64_t token_issued_ms = 0;
};

struct Call {
  const httplib::Request& req;
  httplib::Response& res;
  std::string request_id;
  std::map<std::string, std::string> path_params;  // {id} and friends
  std::optional<Principal> principal;                // set once authenticated
  int max_json_depth = 64;                           // [server] max_json_depth
};

void send_data(Call& call, int status, json data);
void send_error(Call& call, const ApiError& error);
// For responses produced outside a route (httplib's own 413, 400 ...).
void send_status_error(httplib::Response& res, int status, const std::string& request_id);
// The envelope of an error, as text, for answers the HTTP server makes itself.
std::string error_body(const std::string& code, const std::string& message, const std::string& request_id);

// Parses the request body as a JSON object (415/400/413 as ApiError otherwise). Nesting
// deeper than call.max_json_depth is refused before any tree is built (json_too_deep).
std::optional<ApiError> parse_json_body(const Call& call, json& out);
// The same rules for JSON text that did not come as a request body.
std::optional<ApiError> parse_json_text(const std::string& text, int max_depth, json& out);

class Router {
 public:
  using Handler = std::function<void(Call&)>;
  // pattern: "/api/tasks/{id}/cancel"; segments in braces capture.
  void add(const std::string& method, const std::string& pattern, Handler handler);
  // Runs the matching handler, or answers a JSON 404/405 (with Allow). Returns the route
  // pattern that matched ("unmatched" otherwise), a bounded label for metrics.
  std::string dispatch(Call& call) const;
  // The pattern a request matched, for metrics labels ("" when none).
  std::string route_of(const std::string& method, const std::string& path) const;

 private:
  struct Route {
    std::string method;
    std::vector<std::string> segments;
    std::string pattern;
    Handler handler;
  };
  const Route* match(const std::string& path, const std::string& method, std::vector<std::string>* allowed,
                     std::map<std::string, std::string>* params) const;
  std::vector<Route> routes_;
};

}  // namespace hub::gateway
