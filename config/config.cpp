#include "config/config.hpp"

#include <algorithm>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>
#include <thread>
#include <toml.hpp>

extern char** environ;

namespace hub::config {
namespace {

using Value = toml::value;

enum class Kind { integer, floating, boolean, string, string_list };

// pending_issue value of keys the guide names that this implementation only accepts.
constexpr int kCompatibilityOnly = -1;

// One key of the schema. `apply` validates a value and stores it in the Config; it returns
// an empty string on success or "what is allowed" on failure. `pending_issue` > 0 marks a
// key the operations guide names whose feature arrives with that issue: accepted, warned.
struct KeySpec {
  Kind kind;
  std::function<std::string(Config&, const Value&)> apply;
  int pending_issue = 0;
};

using Section = std::map<std::string, KeySpec>;

std::string describe(const Value& v) {
  std::ostringstream out;
  if (v.is_string()) {
    out << '"' << v.as_string().str << '"';
  } else {
    out << toml::format(v, 0);
  }
  auto s = out.str();
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

KeySpec integer(int64_t lo, int64_t hi, std::function<void(Config&, int64_t)> set, int pending = 0) {
  return {Kind::integer,
          [=](Config& c, const Value& v) -> std::string {
            if (!v.is_integer() || v.as_integer() < lo || v.as_integer() > hi)
              return "expected an integer from " + std::to_string(lo) + " to " + std::to_string(hi);
            set(c, v.as_integer());
            return {};
          },
          pending};
}

KeySpec floating(double lo, double hi, std::function<void(Config&, double)> set, int pending = 0) {
  return {Kind::floating,
          [=](Config& c, const Value& v) -> std::string {
            double d = 0;
            if (v.is_floating()) d = v.as_floating();
            else if (v.is_integer()) d = static_cast<double>(v.as_integer());
            else return "expected a number from " + toml::format(Value(lo)) + " to " + toml::format(Value(hi));
            if (d < lo || d > hi)
              return "expected a number from " + toml::format(Value(lo)) + " to " + toml::format(Value(hi));
            set(c, d);
            return {};
          },
          pending};
}

KeySpec boolean(std::function<void(Config&, bool)> set, int pending = 0) {
  return {Kind::boolean,
          [=](Config& c, const Value& v) -> std::string {
            if (!v.is_boolean()) return "expected true or false";
            set(c, v.as_boolean());
            return {};
          },
          pending};
}

// A string, optionally restricted to `allowed` values; `check` may add a rule of its own.
KeySpec string(std::function<void(Config&, const std::string&)> set, std::vector<std::string> allowed = {},
               std::function<std::string(const std::string&)> check = {}, int pending = 0) {
  return {Kind::string,
          [=](Config& c, const Value& v) -> std::string {
            auto join = [&] {
              std::string s;
              for (auto& a : allowed) s += (s.empty() ? "" : ", ") + ('"' + a + '"');
              return s;
            };
            if (!v.is_string()) return allowed.empty() ? "expected a string" : "expected one of " + join();
            const auto& s = v.as_string().str;
            if (!allowed.empty() && std::find(allowed.begin(), allowed.end(), s) == allowed.end())
              return "expected one of " + join();
            if (check) {
              if (auto why = check(s); !why.empty()) return why;
            }
            set(c, s);
            return {};
          },
          pending};
}

KeySpec string_list(std::function<void(Config&, std::vector<std::string>)> set,
                    std::function<std::string(const std::string&)> check_item = {}, int pending = 0) {
  return {Kind::string_list,
          [=](Config& c, const Value& v) -> std::string {
            if (!v.is_array()) return "expected a list of strings, e.g. [\"a\", \"b\"]";
            std::vector<std::string> out;
            for (const auto& item : v.as_array()) {
              if (!item.is_string()) return "expected a list of strings, e.g. [\"a\", \"b\"]";
              if (check_item) {
                if (auto why = check_item(item.as_string().str); !why.empty()) return why;
              }
              out.push_back(item.as_string().str);
            }
            set(c, std::move(out));
            return {};
          },
          pending};
}

std::string check_host(const std::string& s) {
  if (s.empty() || s.find_first_of(" /\t") != std::string::npos) return "expected a host name or IP address";
  return {};
}

std::string check_node_name(const std::string& s) {
  if (s.empty()) return {};  // the default: host name + ":" + HTTP port
  if (s.size() > 64) return "expected at most 64 characters";
  for (char ch : s)
    if (!(std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '_' || ch == '.' || ch == ':'))
      return "expected letters, digits, '-', '_', '.' or ':'";
  return {};
}

// "host:port" of a cluster seed.
std::string check_seed(const std::string& s) {
  auto colon = s.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 >= s.size())
    return "expected \"host:port\" entries, e.g. \"10.0.0.5:4001\"";
  for (size_t i = colon + 1; i < s.size(); ++i)
    if (!std::isdigit(static_cast<unsigned char>(s[i]))) return "expected \"host:port\" entries, e.g. \"10.0.0.5:4001\"";
  auto port = std::stol(s.substr(colon + 1));
  if (port < 1 || port > 65535) return "expected a port from 1 to 65535 in \"" + s + "\"";
  return {};
}

std::string check_database_url(const std::string& s) {
  if (s.rfind("sqlite://", 0) == 0 && s.size() > 9) return {};
  if (s.rfind("postgresql://", 0) == 0 || s.rfind("postgres://", 0) == 0) return {};
  return "expected sqlite://PATH or postgresql://USER@HOST:PORT/DB";
}

std::string check_pool_entry(const std::string& s) {
  // type:capability:count
  auto a = s.find(':');
  auto b = s.rfind(':');
  static const std::set<std::string> types{"worker", "coordinator", "specialist", "learner"};
  if (a == std::string::npos || a == b) return "expected entries \"type:capability:count\", e.g. \"worker:general:4\"";
  auto type = s.substr(0, a);
  auto cap = s.substr(a + 1, b - a - 1);
  auto count = s.substr(b + 1);
  if (!types.count(type)) return "expected an agent type worker|coordinator|specialist|learner in \"" + s + "\"";
  if (cap.empty()) return "expected a capability name in \"" + s + "\"";
  if (count.empty() || count.size() > 4 || !std::all_of(count.begin(), count.end(), ::isdigit) || std::stoi(count) < 1)
    return "expected a count from 1 to 9999 in \"" + s + "\"";
  return {};
}

const std::map<std::string, Section>& schema() {
  static const std::map<std::string, Section> s = {
      {"server",
       {
           {"host", string([](Config& c, auto& v) { c.server.host = v; }, {}, check_host)},
           {"port", integer(1, 65535, [](Config& c, int64_t v) { c.server.port = int(v); })},
           {"workers", integer(1, 1024, [](Config& c, int64_t v) { c.server.workers = int(v); })},
           {"shutdown_timeout_ms", integer(0, 600000, [](Config& c, int64_t v) { c.server.shutdown_timeout_ms = int(v); })},
           {"max_body_bytes", integer(1024, int64_t(1) << 30, [](Config& c, int64_t v) { c.server.max_body_bytes = v; })},
           {"data_dir", string([](Config& c, auto& v) { c.server.data_dir = v; }, {},
                               [](const std::string& v) { return v.empty() ? "expected a directory path" : ""; })},
           {"pid_file", string([](Config& c, auto& v) { c.server.pid_file = v; })},
           {"max_json_depth", integer(2, 1000, [](Config& c, int64_t v) { c.server.max_json_depth = int(v); })},
           {"max_header_count", integer(8, 10000, [](Config& c, int64_t v) { c.server.max_header_count = int(v); })},
           {"max_header_bytes", integer(1024, 1 << 20, [](Config& c, int64_t v) { c.server.max_header_bytes = int(v); })},
           {"request_timeout_ms", integer(100, 600000, [](Config& c, int64_t v) { c.server.request_timeout_ms = int(v); })},
           {"max_connections", integer(16, 1000000, [](Config& c, int64_t v) { c.server.max_connections = int(v); })},
           {"max_connections_per_client",
            integer(1, 1000000, [](Config& c, int64_t v) { c.server.max_connections_per_client = int(v); })},
           {"max_streams", integer(1, 100000, [](Config& c, int64_t v) { c.server.max_streams = int(v); })},
           {"max_streams_per_client", integer(1, 100000, [](Config& c, int64_t v) { c.server.max_streams_per_client = int(v); })},
           {"cors_origins", string_list([](Config& c, auto v) { c.server.cors_origins = std::move(v); },
                                        [](const std::string& o) {
                                          return o == "*" || o.rfind("http://", 0) == 0 || o.rfind("https://", 0) == 0
                                                     ? ""
                                                     : "CORS origins look like \"https://example.com\" (or \"*\")";
                                        })},
       }},
      {"database",
       {
           {"url", string([](Config& c, auto& v) { c.database.url = v; }, {}, check_database_url)},
           {"max_connections", integer(1, 1000, [](Config& c, int64_t v) { c.database.max_connections = int(v); })},
           {"connection_timeout_seconds",
            integer(1, 3600, [](Config& c, int64_t v) { c.database.connection_timeout_seconds = int(v); })},
           {"sqlite_synchronous", string([](Config& c, auto& v) { c.database.sqlite_synchronous = v; }, {"full", "normal"})},
       }},
      {"logging",
       {
           {"level", string([](Config& c, auto& v) { c.logging.level = v == "warning" ? "warn" : v; },
                            {"trace", "debug", "info", "warn", "warning", "error", "critical", "off"})},
           {"format", string([](Config& c, auto& v) { c.logging.format = v; }, {"text", "json"})},
           {"file", string([](Config& c, auto& v) { c.logging.file = v; })},
       }},
      {"performance",
       {
           {"cpu_cores", {Kind::integer,
                          [](Config& c, const Value& v) -> std::string {
                            if (v.is_string() && v.as_string().str == "auto") {
                              c.performance.cpu_cores = 0;
                              return {};
                            }
                            if (v.is_integer() && v.as_integer() >= 1 && v.as_integer() <= 1024) {
                              c.performance.cpu_cores = int(v.as_integer());
                              return {};
                            }
                            return "expected \"auto\" or an integer from 1 to 1024";
                          }}},
           {"scheduler_policy", string([](Config& c, auto& v) { c.performance.scheduler_policy = v; }, {"stealing", "sharing"})},
           {"memory_limit_mb", integer(0, int64_t(1) << 24, [](Config& c, int64_t v) { c.performance.memory_limit_mb = v; })},
           {"circuit_breaker_failure_threshold",
            integer(1, 10000, [](Config& c, int64_t v) { c.performance.circuit_breaker_failure_threshold = int(v); })},
           {"circuit_breaker_recovery_timeout_ms",
            integer(1, 3600000, [](Config& c, int64_t v) { c.performance.circuit_breaker_recovery_timeout_ms = int(v); })},
           {"circuit_breakers_enabled", boolean([](Config& c, bool v) { c.performance.circuit_breakers_enabled = v; })},
           {"circuit_breaker_failure_rate_threshold",
            floating(0.01, 1, [](Config& c, double v) { c.performance.circuit_breaker_failure_rate_threshold = v; })},
           {"circuit_breaker_minimum_calls",
            integer(1, 100000, [](Config& c, int64_t v) { c.performance.circuit_breaker_minimum_calls = int(v); })},
           {"circuit_breaker_window_size",
            integer(1, 100000, [](Config& c, int64_t v) { c.performance.circuit_breaker_window_size = int(v); })},
           {"circuit_breaker_slow_call_ms",
            integer(0, 3600000, [](Config& c, int64_t v) { c.performance.circuit_breaker_slow_call_ms = int(v); })},
           {"circuit_breaker_half_open_max_calls",
            integer(1, 1000, [](Config& c, int64_t v) { c.performance.circuit_breaker_half_open_max_calls = int(v); })},
           {"circuit_breaker_max_recovery_timeout_ms",
            integer(1, 86400000, [](Config& c, int64_t v) { c.performance.circuit_breaker_max_recovery_timeout_ms = int(v); })},
           {"performance_optimization_enabled",
            boolean([](Config& c, bool v) { c.performance.performance_optimization_enabled = v; }, kCompatibilityOnly)},
       }},
      {"security",
       {
           {"jwt_secret", string([](Config& c, auto& v) { c.security.jwt_secret = v; })},
           {"api_keys", string_list([](Config& c, auto v) { c.security.api_keys = std::move(v); },
                                    [](const std::string& k) { return k.size() < 8 ? "API keys must be 8 or more characters" : ""; })},
           {"rate_limit_requests_per_minute",
            integer(1, 100000000, [](Config& c, int64_t v) { c.security.rate_limit_requests_per_minute = int(v); })},
           {"audit_logging_enabled", boolean([](Config& c, bool v) { c.security.audit_logging_enabled = v; })},
           {"access_token_ttl_seconds", integer(10, 86400, [](Config& c, int64_t v) { c.security.access_token_ttl_seconds = int(v); })},
           {"refresh_token_ttl_seconds",
            integer(60, 365LL * 86400, [](Config& c, int64_t v) { c.security.refresh_token_ttl_seconds = int(v); })},
           {"login_max_failures", integer(1, 1000, [](Config& c, int64_t v) { c.security.login_max_failures = int(v); })},
           {"login_lockout_seconds", integer(1, 86400, [](Config& c, int64_t v) { c.security.login_lockout_seconds = int(v); })},
           {"metrics_require_auth", boolean([](Config& c, bool v) { c.security.metrics_require_auth = v; })},
           {"max_concurrent_logins", integer(1, 64, [](Config& c, int64_t v) { c.security.max_concurrent_logins = int(v); })},
           {"auth_failures_per_minute",
            integer(1, 1000000, [](Config& c, int64_t v) { c.security.auth_failures_per_minute = int(v); })},
       }},
      {"monitoring",
       {
           {"metrics_enabled", boolean([](Config& c, bool v) { c.monitoring.metrics_enabled = v; })},
           {"metrics_collection_interval_ms",
            integer(100, 3600000, [](Config& c, int64_t v) { c.monitoring.metrics_collection_interval_ms = int(v); })},
           {"alert_check_interval_ms",
            integer(100, 3600000, [](Config& c, int64_t v) { c.monitoring.alert_check_interval_ms = int(v); })},
           {"cpu_alert_percent", floating(0, 100, [](Config& c, double v) { c.monitoring.cpu_alert_percent = v; })},
           {"memory_alert_percent", floating(0, 100, [](Config& c, double v) { c.monitoring.memory_alert_percent = v; })},
           {"disk_alert_percent", floating(0, 100, [](Config& c, double v) { c.monitoring.disk_alert_percent = v; })},
           {"agent_failure_rate_alert", floating(0, 1, [](Config& c, double v) { c.monitoring.agent_failure_rate_alert = v; })},
           {"task_failure_rate_alert", floating(0, 1, [](Config& c, double v) { c.monitoring.task_failure_rate_alert = v; })},
           {"response_time_alert_ms", integer(1, 600000, [](Config& c, int64_t v) { c.monitoring.response_time_alert_ms = int(v); })},
           // The guide puts log_level under [monitoring]; it is the same setting as [logging] level.
           {"log_level", string([](Config& c, auto& v) { c.logging.level = v == "warning" ? "warn" : v; },
                                {"trace", "debug", "info", "warn", "warning", "error", "critical", "off"})},
           {"sentry_dsn", string([](Config& c, auto& v) { c.monitoring.sentry_dsn = v; }, {}, {}, kCompatibilityOnly)},
       }},
      {"neural",
       {
           {"mode", string([](Config& c, auto& v) { c.neural.mode = v; }, {"basic", "advanced"})},
           {"workers", integer(0, 64, [](Config& c, int64_t v) { c.neural.workers = int(v); })},
           {"gpu_enabled", boolean([](Config& c, bool v) { c.neural.gpu_enabled = v; })},
           {"learning_rate", floating(1e-9, 10.0, [](Config& c, double v) { c.neural.learning_rate = v; })},
           {"max_agents", integer(1, 1000000, [](Config& c, int64_t v) { c.neural.max_agents = int(v); })},
       }},
      {"agents",
       {
           {"max_agents", integer(1, 1000000, [](Config& c, int64_t v) { c.agents.max_agents = int(v); })},
           {"default_pool", string_list([](Config& c, auto v) { c.agents.default_pool = std::move(v); }, check_pool_entry)},
           {"default_max_concurrent_tasks",
            integer(1, 100000, [](Config& c, int64_t v) { c.agents.default_max_concurrent_tasks = int(v); })},
           {"fault_injection", boolean([](Config& c, bool v) { c.agents.fault_injection = v; })},
       }},
      {"agents.exec",
       {
           {"allowed_commands",
            string_list([](Config& c, auto v) { c.agents.exec_allowed_commands = std::move(v); },
                        [](const std::string& cmd) {
                          return cmd.empty() || cmd[0] != '/'
                                     ? "each entry is a command line starting with an absolute program path, e.g. "
                                       "\"/usr/bin/python3 /srv/models/score.py\""
                                     : "";
                        })},
           {"allowed_cwd", string_list([](Config& c, auto v) { c.agents.exec_allowed_cwd = std::move(v); },
                                       [](const std::string& dir) {
                                         return dir.empty() || dir[0] != '/' ? "directories must be absolute paths" : "";
                                       })},
           {"max_output_bytes", integer(1024, int64_t(1) << 30, [](Config& c, int64_t v) { c.agents.exec_max_output_bytes = v; })},
       }},
      {"agents.http",
       {
           {"allowed_hosts", string_list([](Config& c, auto v) { c.agents.http_allowed_hosts = std::move(v); },
                                         [](const std::string& h) { return h.empty() ? "hosts must not be empty" : ""; })},
           {"max_response_bytes",
            integer(1024, int64_t(1) << 30, [](Config& c, int64_t v) { c.agents.http_max_response_bytes = v; })},
       }},
      {"supervision",
       {
           {"strategy", string([](Config& c, auto& v) { c.supervision.strategy = v; }, {"one_for_one", "rest_for_one"})},
           {"max_restarts", integer(0, 100000, [](Config& c, int64_t v) { c.supervision.max_restarts = int(v); })},
           {"restart_period_seconds",
            integer(1, 86400, [](Config& c, int64_t v) { c.supervision.restart_period_seconds = int(v); })},
       }},
      {"tasks",
       {
           {"max_concurrent_tasks", integer(1, 1000000, [](Config& c, int64_t v) { c.tasks.max_concurrent_tasks = int(v); })},
           {"task_timeout_secs", integer(1, 86400 * 7, [](Config& c, int64_t v) { c.tasks.task_timeout_secs = int(v); })},
           {"retry_attempts", integer(1, 100, [](Config& c, int64_t v) { c.tasks.retry_attempts = int(v); })},
           {"max_queue_size", integer(1, 100000000, [](Config& c, int64_t v) { c.tasks.max_queue_size = int(v); })},
           {"lease_seconds", integer(3, 3600, [](Config& c, int64_t v) { c.tasks.lease_seconds = int(v); })},
       }},
      {"cluster",
       {
           {"enabled", boolean([](Config& c, bool v) { c.cluster.enabled = v; })},
           {"node_name", string([](Config& c, auto& v) { c.cluster.node_name = v; }, {}, check_node_name)},
           {"host", string([](Config& c, auto& v) { c.cluster.host = v; }, {}, check_host)},
           {"port", integer(1, 65535, [](Config& c, int64_t v) { c.cluster.port = int(v); })},
           {"advertise_host", string([](Config& c, auto& v) { c.cluster.advertise_host = v; }, {},
                                     [](const std::string& v) { return v.empty() ? std::string() : check_host(v); })},
           {"seeds", string_list([](Config& c, auto v) { c.cluster.seeds = std::move(v); }, check_seed)},
           {"heartbeat_interval_ms",
            integer(50, 60000, [](Config& c, int64_t v) { c.cluster.heartbeat_interval_ms = int(v); })},
           {"failure_timeout_ms", integer(100, 600000, [](Config& c, int64_t v) { c.cluster.failure_timeout_ms = int(v); })},
           {"down_after_ms", integer(100, 3600000, [](Config& c, int64_t v) { c.cluster.down_after_ms = int(v); })},
           {"secret", string([](Config& c, auto& v) { c.cluster.secret = v; })},
           {"tls_cert", string([](Config& c, auto& v) { c.cluster.tls_cert = v; })},
           {"tls_key", string([](Config& c, auto& v) { c.cluster.tls_key = v; })},
           {"tls_ca", string([](Config& c, auto& v) { c.cluster.tls_ca = v; })},
       }},
  };
  return s;
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

template <class Names>
std::string did_you_mean(const std::string& word, const Names& names) {
  std::string best;
  size_t best_d = std::max<size_t>(2, word.size() / 3) + 1;
  for (const auto& [name, _] : names) {
    auto d = edit_distance(word, name);
    if (d < best_d) best_d = d, best = name;
  }
  return best.empty() ? "" : " (did you mean \"" + best + "\"?)";
}

// A value in the merged configuration, remembering the layer it came from.
struct Entry {
  Value value;
  std::string origin;
};
using Layered = std::map<std::string, std::map<std::string, Entry>>;  // section -> key -> entry

std::string one_line(std::string s) {
  std::string out;
  std::istringstream in(s);
  for (std::string line; std::getline(in, line);) {
    auto b = line.find_first_not_of(" \t|");
    if (b == std::string::npos) continue;
    if (!out.empty()) out += "; ";
    out += line.substr(b);
  }
  return out;
}

// Flattens a parsed TOML document into sections; nested tables become dotted sections.
void add_layer(Layered& into, const Value& doc, const std::string& origin, std::vector<std::string>& problems) {
  const auto& sections = schema();
  for (const auto& [section, table] : doc.as_table()) {
    if (!table.is_table()) {
      problems.push_back(origin + ": top-level key \"" + section + "\" must be a [section]" + did_you_mean(section, sections));
      continue;
    }
    for (const auto& [key, value] : table.as_table()) {
      if (value.is_table() && sections.count(section + "." + key)) {
        toml::table nested{{section + "." + key, value}};
        add_layer(into, Value(nested), origin, problems);
        continue;
      }
      into[section][key] = Entry{value, origin};
    }
  }
}

std::map<std::string, std::string> env_aliases() {
  return {{"DATABASE_URL", "database.url"},
          {"DATABASE_MAX_CONNECTIONS", "database.max_connections"},
          {"JWT_SECRET", "security.jwt_secret"},
          {"CLUSTER_SECRET", "cluster.secret"},
          {"METRICS_ENABLED", "monitoring.metrics_enabled"},
          {"LOG_LEVEL", "logging.level"},
          {"SENTRY_DSN", "monitoring.sentry_dsn"}};
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

// An environment value is read as a TOML value where the key wants one (numbers, booleans,
// inline arrays) and as a plain string where the key wants a string.
Value env_value(const std::string& raw, Kind kind) {
  if (kind == Kind::string) return Value(raw);
  if (kind == Kind::string_list && raw.find('[') == std::string::npos) {
    // Also "a:1,b:2" (the shell-friendly form of a list of strings).
    toml::array items;
    std::stringstream in(raw);
    for (std::string item; std::getline(in, item, ',');) {
      auto b = item.find_first_not_of(" \t"), e = item.find_last_not_of(" \t");
      if (b != std::string::npos) items.push_back(Value(item.substr(b, e - b + 1)));
    }
    return Value(items);
  }
  try {
    std::istringstream in("v = " + raw);
    auto doc = toml::parse(in, "env");
    return doc.as_table().at("v");
  } catch (const std::exception&) {
    return Value(raw);
  }
}

void add_env_layer(Layered& into, const std::map<std::string, std::string>& env, std::vector<std::string>& problems) {
  const auto& sections = schema();
  auto put = [&](const std::string& section, const std::string& key, const std::string& raw, const std::string& var) {
    auto s = sections.find(section);
    if (s == sections.end()) {
      problems.push_back("environment " + var + ": unknown section [" + section + "]" + did_you_mean(section, sections));
      return;
    }
    auto k = s->second.find(key);
    if (k == s->second.end()) {
      problems.push_back("environment " + var + ": unknown key \"" + key + "\" in [" + section + "]" +
                         did_you_mean(key, s->second));
      return;
    }
    into[section][key] = Entry{env_value(raw, k->second.kind), "environment " + var};
  };
  for (const auto& [var, raw] : env) {
    if (var.rfind("HIVE_", 0) != 0) continue;
    auto rest = var.substr(5);
    auto last = rest.rfind("__");
    if (last == std::string::npos) continue;  // HIVE_ENV, HIVE_URL (hivectl) and friends
    std::string section = lower(rest.substr(0, last));
    for (size_t p; (p = section.find("__")) != std::string::npos;) section.replace(p, 2, ".");
    put(section, lower(rest.substr(last + 2)), raw, var);
  }
  for (const auto& [var, dotted] : env_aliases()) {
    auto it = env.find(var);
    if (it == env.end() || it->second.empty()) continue;
    auto dot = dotted.find('.');
    put(dotted.substr(0, dot), dotted.substr(dot + 1), it->second, var);
  }
  // The systemd unit of the operations guide sets RUST_LOG; honour it as a log level when
  // LOG_LEVEL is not given and it names a plain level.
  if (auto it = env.find("RUST_LOG"); it != env.end() && !env.count("LOG_LEVEL")) {
    static const std::set<std::string> levels{"trace", "debug", "info", "warn", "error"};
    if (levels.count(lower(it->second))) into["logging"]["level"] = Entry{Value(lower(it->second)), "environment RUST_LOG"};
  }
  if (auto it = env.find("API_KEY"); it != env.end() && !it->second.empty()) {
    auto& entry = into["security"]["api_keys"];
    toml::array keys;
    if (entry.value.is_array()) keys = entry.value.as_array();
    keys.push_back(Value(it->second));
    entry = Entry{Value(keys), "environment API_KEY"};
  }
}

bool parse_file(const std::filesystem::path& path, Layered& into, LoadResult& result, bool required) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    if (required) result.problems.push_back("config file " + path.string() + ": not found");
    return false;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    result.problems.push_back("config file " + path.string() + ": cannot be read (check its permissions)");
    return false;
  }
  try {
    auto doc = toml::parse(in, path.string());
    add_layer(into, doc, path.string(), result.problems);
    result.sources.push_back(path.string());
    return true;
  } catch (const std::exception& e) {
    result.problems.push_back("config file " + path.string() + ": " + one_line(e.what()));
    return false;
  }
}

bool is_placeholder_secret(const std::string& s) {
  static const std::set<std::string> placeholders{"your-256-bit-secret-here", "your-secret-key-here-change-in-production",
                                                  "change-me", "changeme", "secret", "your-api-key-here",
                                                  "replace-with-32-or-more-random-bytes-before-use"};
  return placeholders.count(lower(s)) > 0;
}

bool is_secret_key(const std::string& section, const std::string& key) {
  return (section == "security" && (key == "jwt_secret" || key == "api_keys")) || (section == "cluster" && key == "secret");
}

bool is_loopback(const std::string& host) {
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

void validate(const Layered& layered, LoadResult& result) {
  const auto& sections = schema();
  for (const auto& [section, keys] : layered) {
    auto s = sections.find(section);
    if (s == sections.end()) {
      for (const auto& [key, entry] : keys)
        result.problems.push_back(entry.origin + ": unknown section [" + section + "]" + did_you_mean(section, sections));
      continue;
    }
    for (const auto& [key, entry] : keys) {
      auto k = s->second.find(key);
      if (k == s->second.end()) {
        result.problems.push_back(entry.origin + ": unknown key \"" + key + "\" in [" + section + "]" +
                                  did_you_mean(key, s->second));
        continue;
      }
      if (auto why = k->second.apply(result.config, entry.value); !why.empty()) {
        // A secret's value never reaches a log line or the --check output.
        auto shown = is_secret_key(section, key) ? std::string("(hidden)") : describe(entry.value);
        result.problems.push_back("[" + section + "] " + key + " = " + shown + " (" + entry.origin + "): " + why);
        continue;
      }
      if (k->second.pending_issue == kCompatibilityOnly)
        result.warnings.push_back("[" + section + "] " + key + " (" + entry.origin +
                                  ") is accepted for compatibility with the operations guide and has no effect "
                                  "(no Sentry client is packaged for Debian; optimizations are always on)");
      else if (k->second.pending_issue > 0)
        result.warnings.push_back("[" + section + "] " + key + " (" + entry.origin +
                                  ") is accepted but has no effect yet: its feature arrives with issue #" +
                                  std::to_string(k->second.pending_issue));
    }
  }
  const auto& c = result.config;
  const auto& secret = c.security.jwt_secret;
  if (secret.empty() && c.environment == "production")
    result.problems.push_back("[security] jwt_secret: required in production: the API may not run without credentials (set JWT_SECRET to 32 or more random bytes)");
  else if (!secret.empty() && is_placeholder_secret(secret))
    result.problems.push_back("[security] jwt_secret: the placeholder from the documentation is refused; set JWT_SECRET to 32 or more random bytes");
  else if (!secret.empty() && secret.size() < 32)
    result.problems.push_back("[security] jwt_secret: too short (" + std::to_string(secret.size()) +
                              " bytes; at least 32 are required, in every environment: a short secret lets anyone forge tokens)");
  for (const auto& key : c.security.api_keys)
    if (is_placeholder_secret(key))
      result.problems.push_back("[security] api_keys (API_KEY): the placeholder from the documentation is refused; "
                                "set a key of 32 or more random characters");
  if (c.cluster.enabled) {
    if (c.cluster.secret.empty() && (c.environment == "production" || !is_loopback(c.cluster.host)))
      result.problems.push_back("[cluster] secret: required for a cluster " +
                                std::string(c.environment == "production" ? "in production"
                                                                          : "listening beyond loopback (host = \"" + c.cluster.host + "\")") +
                                ": nodes prove they hold it when they join (set HIVE_CLUSTER__SECRET or CLUSTER_SECRET to 32 or more random bytes)");
    else if (!c.cluster.secret.empty() && is_placeholder_secret(c.cluster.secret))
      result.problems.push_back("[cluster] secret: the placeholder from the documentation is refused; set CLUSTER_SECRET to 32 or more random bytes");
    else if (!c.cluster.secret.empty() && c.cluster.secret.size() < 16)
      result.problems.push_back("[cluster] secret: too short (" + std::to_string(c.cluster.secret.size()) + " bytes; at least 16)");
    int tls_set = !c.cluster.tls_cert.empty() + !c.cluster.tls_key.empty() + !c.cluster.tls_ca.empty();
    if (tls_set != 0 && tls_set != 3)
      result.problems.push_back("[cluster] tls_cert, tls_key and tls_ca: set all three (mutual TLS between nodes) or none");
    for (const auto* file : {&c.cluster.tls_cert, &c.cluster.tls_key, &c.cluster.tls_ca}) {
      std::error_code ec;
      if (!file->empty() && !std::filesystem::is_regular_file(*file, ec))
        result.problems.push_back("[cluster] TLS file " + *file + ": not found (or not a file)");
    }
    if (tls_set == 0 && !is_loopback(c.cluster.host))
      result.warnings.push_back("[cluster] node-to-node traffic is not encrypted and any host that reaches port " +
                                std::to_string(c.cluster.port) +
                                " can open a connection (it cannot join without the secret): set tls_cert, tls_key and tls_ca "
                                "(scripts/cluster-certs.sh makes them) or keep the cluster port on a private network");
  }
  if (c.database.url.rfind("sqlite://", 0) == 0 && c.database.url == "sqlite://")
    result.problems.push_back("[database] url: expected a file path after sqlite://");
  if (c.cluster.failure_timeout_ms < 2 * c.cluster.heartbeat_interval_ms)
    result.problems.push_back("[cluster] failure_timeout_ms = " + std::to_string(c.cluster.failure_timeout_ms) +
                              ": must be at least twice heartbeat_interval_ms (" +
                              std::to_string(c.cluster.heartbeat_interval_ms) + "), or one late heartbeat marks a node unreachable");
  if (c.cluster.down_after_ms < c.cluster.failure_timeout_ms)
    result.problems.push_back("[cluster] down_after_ms = " + std::to_string(c.cluster.down_after_ms) +
                              ": must be at least failure_timeout_ms (" + std::to_string(c.cluster.failure_timeout_ms) + ")");
}

LoadResult load_layers(const std::function<void(Layered&, LoadResult&)>& files, const std::map<std::string, std::string>& env) {
  LoadResult result;
  result.sources.push_back("built-in defaults");
  if (auto it = env.find("HIVE_ENV"); it != env.end() && !it->second.empty()) result.config.environment = it->second;
  Layered layered;
  files(layered, result);
  bool env_used = false;
  for (const auto& [var, _] : env)
    env_used |= var.rfind("HIVE_", 0) == 0 && var.find("__") != std::string::npos;
  for (const auto& [var, _] : env_aliases()) env_used |= env.count(var) > 0;
  add_env_layer(layered, env, result.problems);
  if (env_used) result.sources.push_back("environment");
  validate(layered, result);
  return result;
}

}  // namespace

int Config::scheduler_threads() const {
  if (performance.cpu_cores > 0) return performance.cpu_cores;
  return std::max(1u, std::thread::hardware_concurrency());
}

LoadResult load(const LoadOptions& options) {
  return load_layers(
      [&](Layered& layered, LoadResult& result) {
        std::filesystem::path settings;
        for (const auto& base : {options.working_dir, options.binary_dir}) {
          std::error_code ec;
          if (!base.empty() && std::filesystem::is_directory(base / "settings", ec)) {
            settings = base / "settings";
            break;
          }
        }
        if (!settings.empty()) {
          parse_file(settings / "default.toml", layered, result, false);
          parse_file(settings / (result.config.environment + ".toml"), layered, result, false);
        }
        if (!options.config_file.empty()) {
          std::filesystem::path file = options.config_file;
          if (file.is_relative()) file = options.working_dir / file;
          parse_file(file, layered, result, true);
        }
      },
      options.env);
}

LoadResult load_text(const std::string& toml_text, const std::map<std::string, std::string>& env) {
  return load_layers(
      [&](Layered& layered, LoadResult& result) {
        try {
          std::istringstream in(toml_text);
          add_layer(layered, toml::parse(in, "text"), "text", result.problems);
        } catch (const std::exception& e) {
          result.problems.push_back("config text: " + one_line(e.what()));
        }
      },
      env);
}

std::map<std::string, std::string> current_environment() {
  std::map<std::string, std::string> env;
  for (char** e = environ; e && *e; ++e) {
    std::string kv = *e;
    auto eq = kv.find('=');
    if (eq != std::string::npos) env.emplace(kv.substr(0, eq), kv.substr(eq + 1));
  }
  return env;
}

std::vector<std::string> known_keys() {
  std::vector<std::string> out;
  for (const auto& [section, keys] : schema())
    for (const auto& [key, _] : keys) out.push_back(section + "." + key);
  return out;
}

std::string render(const Config& c) {
  auto list = [](const std::vector<std::string>& v) {
    std::string s = "[";
    for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + ('"' + v[i] + '"');
    return s + "]";
  };
  auto q = [](const std::string& s) { return '"' + s + '"'; };
  std::ostringstream o;
  o << "# environment: " << c.environment << "\n"
    << "[server]\nhost = " << q(c.server.host) << "\nport = " << c.server.port << "\nworkers = " << c.server.workers
    << "\nshutdown_timeout_ms = " << c.server.shutdown_timeout_ms << "\nmax_body_bytes = " << c.server.max_body_bytes
    << "\ndata_dir = " << q(c.server.data_dir) << "\ncors_origins = " << list(c.server.cors_origins) << "\n"
    << "[database]\nurl = " << q(c.database.url) << "\nmax_connections = " << c.database.max_connections
    << "\nconnection_timeout_seconds = " << c.database.connection_timeout_seconds
    << "\nsqlite_synchronous = " << q(c.database.sqlite_synchronous) << "\n"
    << "[logging]\nlevel = " << q(c.logging.level) << "\nformat = " << q(c.logging.format) << "\nfile = " << q(c.logging.file)
    << "\n"
    << "[performance]\ncpu_cores = " << (c.performance.cpu_cores ? std::to_string(c.performance.cpu_cores) : q("auto"))
    << "\nscheduler_policy = " << q(c.performance.scheduler_policy) << "\nmemory_limit_mb = " << c.performance.memory_limit_mb
    << "\n"
    << "[security]\njwt_secret = " << q(c.security.jwt_secret.empty() ? "" : "********")
    << "\n# api_keys: " << c.security.api_keys.size() << " configured"
    << "\nrate_limit_requests_per_minute = " << c.security.rate_limit_requests_per_minute
    << "\naudit_logging_enabled = " << (c.security.audit_logging_enabled ? "true" : "false")
    << "\naccess_token_ttl_seconds = " << c.security.access_token_ttl_seconds
    << "\nrefresh_token_ttl_seconds = " << c.security.refresh_token_ttl_seconds
    << "\nlogin_max_failures = " << c.security.login_max_failures << "\nlogin_lockout_seconds = " << c.security.login_lockout_seconds
    << "\nmetrics_require_auth = " << (c.security.metrics_require_auth ? "true" : "false") << "\n"
    << "[monitoring]\nmetrics_enabled = " << (c.monitoring.metrics_enabled ? "true" : "false")
    << "\nmetrics_collection_interval_ms = " << c.monitoring.metrics_collection_interval_ms
    << "\nalert_check_interval_ms = " << c.monitoring.alert_check_interval_ms << "\ncpu_alert_percent = "
    << c.monitoring.cpu_alert_percent << "\nmemory_alert_percent = " << c.monitoring.memory_alert_percent
    << "\ndisk_alert_percent = " << c.monitoring.disk_alert_percent << "\nagent_failure_rate_alert = "
    << c.monitoring.agent_failure_rate_alert << "\ntask_failure_rate_alert = " << c.monitoring.task_failure_rate_alert
    << "\nresponse_time_alert_ms = " << c.monitoring.response_time_alert_ms << "\n"
    << "[agents]\nmax_agents = " << c.agents.max_agents << "\ndefault_pool = " << list(c.agents.default_pool)
    << "\ndefault_max_concurrent_tasks = " << c.agents.default_max_concurrent_tasks << "\n"
    << "[tasks]\nmax_concurrent_tasks = " << c.tasks.max_concurrent_tasks << "\ntask_timeout_secs = " << c.tasks.task_timeout_secs
    << "\nretry_attempts = " << c.tasks.retry_attempts << "\nmax_queue_size = " << c.tasks.max_queue_size << "\n";
  return o.str();
}

}  // namespace hub::config
