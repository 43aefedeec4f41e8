// The node's one metrics registry: counters, gauges and fixed-bucket histograms, updated
// lock-free (atomics) from any thread; families are created once (under a mutex) and
// children are looked up by label values. Renders Prometheus text exposition 0.0.4.
// Must never hold per-task or per-agent ids as label values (bounded cardinality only).
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace hub::runtime::metrics {

class Counter {
 public:
  void inc(double n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

class Gauge {
 public:
  void set(double v) { value_.store(v, std::memory_order_relaxed); }
  void add(double v) { value_.fetch_add(v, std::memory_order_relaxed); }
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void observe(double v);
  struct Snapshot {
    std::vector<double> bounds;
    std::vector<uint64_t> cumulative;  // per bound, then +Inf last
    uint64_t count = 0;
    double sum = 0;
    // Estimated quantile (linear within a bucket); 0 when empty.
    double quantile(double q) const;
    Snapshot minus(const Snapshot& earlier) const;
  };
  Snapshot snapshot() const;

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;  // non-cumulative, bounds_.size() + 1
  std::atomic<uint64_t> count_{0};
  std::atomic<double> sum_{0};
};

using Labels = std::vector<std::pair<std::string, std::string>>;

// Bucket sets in base units (seconds).
std::vector<double> latency_buckets();   // 0.5 ms .. 10 s
std::vector<double> duration_buckets();  // 1 ms .. 10 min
std::vector<double> count_buckets();     // 1 .. 100

class Registry {
 public:
  static Registry& global();

  Counter& counter(const std::string& name, const std::string& help, const Labels& labels = {});
  Gauge& gauge(const std::string& name, const std::string& help, const Labels& labels = {});
  Histogram& histogram(const std::string& name, const std::string& help, const std::vector<double>& bounds,
                       const Labels& labels = {});

  // Every family in the text exposition format, version 0.0.4.
  std::string expose() const;

  // Sum of a counter family's children whose labels include `match` (all when empty).
  double counter_sum(const std::string& name, const Labels& match = {}) const;
  double gauge_sum(const std::string& name) const;
  Histogram::Snapshot histogram_merged(const std::string& name) const;

 private:
  enum class Type { counter, gauge, histogram };
  struct Family {
    std::string help;
    Type type;
    std::vector<double> bounds;
    std::map<Labels, std::unique_ptr<Counter>> counters;
    std::map<Labels, std::unique_ptr<Gauge>> gauges;
    std::map<Labels, std::unique_ptr<Histogram>> histograms;
  };
  Family& family(const std::string& name, const std::string& help, Type type, const std::vector<double>& bounds = {});
  mutable std::mutex mutex_;
  std::map<std::string, Family> families_;
};

}  // namespace hub::runtime::metrics

namespace hub::runtime::metrics::names {
// Every family the node exports, named once.
inline constexpr const char* http_requests = "ai_orchestrator_http_requests_total";
inline constexpr const char* http_duration = "ai_orchestrator_http_request_duration_seconds";
inline constexpr const char* tasks_submitted = "ai_orchestrator_tasks_submitted_total";
inline constexpr const char* tasks_finished = "ai_orchestrator_tasks_finished_total";
inline constexpr const char* task_duration = "ai_orchestrator_task_duration_seconds";
inline constexpr const char* task_attempts = "ai_orchestrator_task_attempts";
inline constexpr const char* task_queue_depth = "ai_orchestrator_task_queue_depth";
inline constexpr const char* tasks_running = "ai_orchestrator_tasks_running";
inline constexpr const char* tasks_unfinished = "ai_orchestrator_tasks_unfinished";
inline constexpr const char* agents = "ai_orchestrator_agents";
inline constexpr const char* executor_calls = "ai_orchestrator_executor_calls_total";
inline constexpr const char* executor_duration = "ai_orchestrator_executor_duration_seconds";
inline constexpr const char* store_commit_duration = "ai_orchestrator_store_commit_duration_seconds";
inline constexpr const char* store_rows = "ai_orchestrator_store_rows_written_total";
inline constexpr const char* store_errors = "ai_orchestrator_store_errors_total";
inline constexpr const char* store_read_duration = "ai_orchestrator_store_read_duration_seconds";
inline constexpr const char* actors = "ai_orchestrator_actors";
inline constexpr const char* alerts_active = "ai_orchestrator_alerts_active";
inline constexpr const char* breaker_transitions = "ai_orchestrator_circuit_breaker_transitions_total";
inline constexpr const char* breaker_rejected = "ai_orchestrator_circuit_breaker_rejected_calls_total";
inline constexpr const char* breakers_open = "ai_orchestrator_circuit_breakers";
inline constexpr const char* supervisor_restarts = "ai_orchestrator_supervisor_restarts_total";
inline constexpr const char* cluster_members = "ai_orchestrator_cluster_members";
inline constexpr const char* cluster_heartbeat_age = "ai_orchestrator_cluster_heartbeat_age_seconds";
inline constexpr const char* cluster_downed = "ai_orchestrator_cluster_members_downed_total";
inline constexpr const char* cluster_refused = "ai_orchestrator_cluster_refused_messages_total";
inline constexpr const char* scheduler_last_tick = "ai_orchestrator_scheduler_last_tick_seconds";
}  // namespace hub::runtime::metrics::names
