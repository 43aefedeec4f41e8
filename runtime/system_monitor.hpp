// The system monitor: samples host and process figures from /proc (CPU, memory, load,
// disk of the data dir) every collection interval, keeps a bounded history for trends,
// and evaluates the alert rules of the operations guide every check interval (logging each
// change). Runs on a thread of its own; readers get copies under a mutex.
#pragma once

#include "config/config.hpp"
#include "runtime/metrics.hpp"

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace hub::runtime {

struct SystemSample {
  int64_t at_ms = 0;
  int cpu_cores = 0;
  double cpu_percent = 0;  // whole host, over the last interval
  double memory_percent = 0;
  int64_t memory_total_bytes = 0;
  int64_t memory_available_bytes = 0;
  int64_t memory_used_bytes = 0;
  double load1 = 0, load5 = 0, load15 = 0;
  double disk_used_percent = 0;
  int64_t disk_free_bytes = 0;
  int64_t process_rss_bytes = 0;
  double tasks_per_second = 0;       // finished, over the last interval
  double http_p95_ms = 0;            // over the last interval
  double task_p95_ms = 0;            // task duration (submitted to finished), over the last interval
  double queue_depth = 0;            // queued tasks, all priorities, at the sample
  double task_failure_rate = 0;      // failed / finished, over the last interval
  double agent_failure_rate = 0;     // failed attempts / attempts, over the last interval
};

struct Alert {
  std::string name;
  std::string severity;
  std::string message;
  double value = 0;
  double threshold = 0;
  int64_t since_ms = 0;
  int64_t until_ms = 0;  // 0 while active
};

class SystemMonitor {
 public:
  // Intervals and alert thresholds come from [monitoring].
  SystemMonitor(std::string data_dir, const config::MonitoringConfig& settings);
  ~SystemMonitor();
  void start();
  void stop();

  SystemSample latest() const;
  std::vector<SystemSample> history() const;  // oldest first, last 15 minutes at most
  std::vector<Alert> active_alerts() const;
  std::vector<Alert> resolved_alerts() const;  // most recent first, bounded

  // One measurement now, without waiting for the thread (also used by the thread).
  SystemSample sample_now();

 private:
  void run();
  void evaluate_alerts(const SystemSample& s);
  static void publish(const SystemSample& s);

  std::string data_dir_;
  int collect_ms_, alert_ms_;
  config::MonitoringConfig thresholds_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread thread_;
  std::deque<SystemSample> history_;
  std::vector<Alert> active_;
  std::deque<Alert> resolved_;
  // For rates between samples.
  uint64_t last_cpu_busy_ = 0, last_cpu_total_ = 0;
  double last_finished_ = 0, last_failed_ = 0, last_attempts_ = 0, last_failed_attempts_ = 0;
  int64_t last_sample_ms_ = 0;
  metrics::Histogram::Snapshot last_http_, last_tasks_;  // as of the last sample
  int64_t last_alert_ms_ = 0;
};

}  // namespace hub::runtime
