// The node's configuration: the schema of every section and key, the layering of defaults,
// settings files, --config and the environment, and validation of the result.
// Owns: turning text into a validated `Config`. Must never log, exit, or depend on any other
// module of ours; callers decide what to do with problems and warnings.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace hub::config {

struct ServerConfig {
  std::string host = "0.0.0.0";
  int port = 3001;
  int workers = 4;
  int shutdown_timeout_ms = 10000;
  int64_t max_body_bytes = 1 << 20;
  std::string data_dir = "./data";
  std::string pid_file;  // empty: <data_dir>/ai-orchestrator-hub.pid
  std::vector<std::string> cors_origins;
  // Limits on what a client may send: JSON nesting, request head size, how long a request may
  // take to arrive, open connections, and streams/long-polls (which run on their own threads).
  int max_json_depth = 64;
  int max_header_count = 100;
  int max_header_bytes = 64 * 1024;
  int request_timeout_ms = 10000;
  int max_connections = 4096;
  int max_connections_per_client = 512;
  int max_streams = 64;
  int max_streams_per_client = 8;
};

struct DatabaseConfig {
  std::string url = "sqlite://./data/hive.db";
  int max_connections = 10;
  int connection_timeout_seconds = 30;
  std::string sqlite_synchronous = "full";  // full: survives power loss; normal: survives a crash
};

struct LoggingConfig {
  std::string level = "info";
  std::string format = "text";
  std::string file;  // empty: stdout
};

struct PerformanceConfig {
  int cpu_cores = 0;  // 0: "auto", all cores
  std::string scheduler_policy = "sharing";
  int64_t memory_limit_mb = 0;  // 0: no limit
  int circuit_breaker_failure_threshold = 5;
  int circuit_breaker_recovery_timeout_ms = 30000;
  bool circuit_breakers_enabled = true;
  double circuit_breaker_failure_rate_threshold = 0.5;
  int circuit_breaker_minimum_calls = 20;
  int circuit_breaker_window_size = 50;
  int circuit_breaker_slow_call_ms = 0;  // 0: slow calls are not failures
  int circuit_breaker_half_open_max_calls = 3;
  int circuit_breaker_max_recovery_timeout_ms = 300000;
  bool performance_optimization_enabled = true;
};

struct SecurityConfig {
  std::string jwt_secret;
  std::vector<std::string> api_keys;
  int rate_limit_requests_per_minute = 6000;
  bool audit_logging_enabled = false;
  int access_token_ttl_seconds = 900;
  int refresh_token_ttl_seconds = 7 * 24 * 3600;
  int login_max_failures = 5;
  int login_lockout_seconds = 900;
  bool metrics_require_auth = false;
  int max_concurrent_logins = 2;      // password hashes computed at once (argon2id: 64 MiB each)
  int auth_failures_per_minute = 20;  // per client address; beyond it credentials get 429
};

struct MonitoringConfig {
  bool metrics_enabled = true;
  int metrics_collection_interval_ms = 5000;
  int alert_check_interval_ms = 30000;
  double cpu_alert_percent = 80;
  double memory_alert_percent = 85;
  double disk_alert_percent = 90;
  double agent_failure_rate_alert = 0.05;
  double task_failure_rate_alert = 0.10;
  int response_time_alert_ms = 500;
  std::string sentry_dsn;
};

struct NeuralConfig {
  int workers = 1;  // neural worker actors (detached threads); 0: neural jobs are refused
  std::string mode = "basic";
  bool gpu_enabled = false;
  double learning_rate = 0.01;
  int max_agents = 1000;
};

struct AgentsConfig {
  int max_agents = 1000;
  // Each entry "type:capability:count", e.g. "worker:general:4".
  std::vector<std::string> default_pool = {"worker:general:4"};
  int default_max_concurrent_tasks = 4;
  // [agents.exec]: command lines an exec agent may run ("program arg ...", globs per argument,
  // a last "..." for any further arguments); empty: exec is disabled.
  std::vector<std::string> exec_allowed_commands;
  std::vector<std::string> exec_allowed_cwd;  // directories executor.cwd may be in; empty: no cwd
  int64_t exec_max_output_bytes = 1 << 20;
  // [agents.http]: hosts ("host" or "host:port") an http agent may call; empty: http is disabled.
  std::vector<std::string> http_allowed_hosts;
  int64_t http_max_response_bytes = 8 << 20;
  // Builtin "crash" task type: the agent throws (chaos testing only).
  bool fault_injection = false;
};

struct SupervisionConfig {
  std::string strategy = "one_for_one";  // for agents: one_for_one | rest_for_one
  int max_restarts = 10;                  // restart intensity: at most this many...
  int restart_period_seconds = 60;        // ...within this period, else escalate
};

struct TasksConfig {
  int max_concurrent_tasks = 256;
  int task_timeout_secs = 300;
  int retry_attempts = 3;
  int max_queue_size = 100000;
  int lease_seconds = 30;  // task leases: a node that stops renewing loses its tasks to others after this
};

struct ClusterConfig {
  bool enabled = false;
  std::string node_name;          // empty: host name + ":" + HTTP port
  std::string host = "0.0.0.0";   // the cluster (CAF middleman) listener
  int port = 4001;
  std::string advertise_host;     // how peers reach this node; empty: host (or the host name when host is 0.0.0.0)
  std::vector<std::string> seeds;  // "host:port" of nodes to join through
  int heartbeat_interval_ms = 500;
  int failure_timeout_ms = 2000;   // no heartbeat for this long: unreachable
  int down_after_ms = 5000;        // unreachable this long: the leader downs it and re-queues its work
  // Proof of membership: nodes prove they hold the secret when they join (HMAC challenge);
  // with tls_* set, node-to-node traffic is TLS with certificates checked against tls_ca both ways.
  std::string secret;
  std::string tls_cert, tls_key, tls_ca;
};

struct Config {
  std::string environment = "development";
  ServerConfig server;
  DatabaseConfig database;
  LoggingConfig logging;
  PerformanceConfig performance;
  SecurityConfig security;
  MonitoringConfig monitoring;
  NeuralConfig neural;
  AgentsConfig agents;
  TasksConfig tasks;
  ClusterConfig cluster;
  SupervisionConfig supervision;

  // Resolved at load time: the number of actor scheduler threads (`cpu_cores`, "auto" = all).
  int scheduler_threads() const;
};

struct LoadOptions {
  std::string config_file;                    // --config FILE, may be empty
  std::map<std::string, std::string> env;     // usually current_environment()
  std::filesystem::path working_dir;          // where settings/ is looked for first
  std::filesystem::path binary_dir;           // then beside the binary
};

struct LoadResult {
  Config config;
  std::vector<std::string> sources;   // what was layered, in order
  std::vector<std::string> problems;  // one line each; non-empty means the config is unusable
  std::vector<std::string> warnings;  // accepted, but the operator should know
  bool ok() const { return problems.empty(); }
};

LoadResult load(const LoadOptions& options);

// Parses one TOML text as a single layer over the built-in defaults (for tests and tools).
LoadResult load_text(const std::string& toml_text, const std::map<std::string, std::string>& env = {});

std::map<std::string, std::string> current_environment();

// The effective configuration as TOML (secrets masked), for `--check` and `/api/config`-style views.
std::string render(const Config& config);

// Keys the schema knows, as "section.key" (for docs and tests).
std::vector<std::string> known_keys();

}  // namespace hub::config
