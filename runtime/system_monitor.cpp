#include "runtime/system_monitor.hpp"
#include "runtime/events.hpp"

#include "runtime/clock.hpp"
#include "runtime/metrics.hpp"
#include "runtime/process_stats.hpp"

#include <spdlog/spdlog.h>
#include <sys/statvfs.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

namespace hub::runtime {
namespace {

constexpr int64_t kHistoryMs = 15 * 60 * 1000;
constexpr size_t kResolvedKept = 200;

bool read_cpu(uint64_t& busy, uint64_t& total) {
  std::ifstream in("/proc/stat");
  std::string cpu;
  uint64_t v[8] = {0};
  if (!(in >> cpu >> v[0] >> v[1] >> v[2] >> v[3] >> v[4] >> v[5] >> v[6] >> v[7]) || cpu != "cpu") return false;
  total = 0;
  for (auto x : v) total += x;
  busy = total - v[3] - v[4];  // minus idle and iowait
  return true;
}

void read_memory(SystemSample& s) {
  std::ifstream in("/proc/meminfo");
  std::string key, unit;
  int64_t value = 0;
  while (in >> key >> value >> unit) {
    if (key == "MemTotal:") s.memory_total_bytes = value * 1024;
    else if (key == "MemAvailable:") s.memory_available_bytes = value * 1024;
  }
  s.memory_used_bytes = s.memory_total_bytes - s.memory_available_bytes;
  if (s.memory_total_bytes > 0) s.memory_percent = 100.0 * double(s.memory_used_bytes) / double(s.memory_total_bytes);
}

}  // namespace

SystemMonitor::SystemMonitor(std::string data_dir, const config::MonitoringConfig& settings)
    : data_dir_(std::move(data_dir)),
      collect_ms_(std::max(100, settings.metrics_collection_interval_ms)),
      alert_ms_(std::max(100, settings.alert_check_interval_ms)),
      thresholds_(settings) {
  read_cpu(last_cpu_busy_, last_cpu_total_);
  last_sample_ms_ = now_ms();
}

SystemMonitor::~SystemMonitor() { stop(); }

void SystemMonitor::start() {
  auto first = sample_now();
  publish(first);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    history_.push_back(first);
  }
  thread_ = std::thread([this] { run(); });
}

void SystemMonitor::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

SystemSample SystemMonitor::sample_now() {
  namespace m = metrics::names;
  auto& registry = metrics::Registry::global();
  SystemSample s;
  s.at_ms = now_ms();
  s.cpu_cores = int(std::max(1u, std::thread::hardware_concurrency()));
  uint64_t busy = 0, total = 0;
  std::lock_guard<std::mutex> lock(mutex_);
  if (read_cpu(busy, total) && total > last_cpu_total_) {
    s.cpu_percent = 100.0 * double(busy - last_cpu_busy_) / double(total - last_cpu_total_);
    last_cpu_busy_ = busy;
    last_cpu_total_ = total;
  } else if (!history_.empty()) {
    s.cpu_percent = history_.back().cpu_percent;
  }
  read_memory(s);
  if (FILE* f = std::fopen("/proc/loadavg", "r")) {
    if (std::fscanf(f, "%lf %lf %lf", &s.load1, &s.load5, &s.load15) != 3) s.load1 = s.load5 = s.load15 = 0;
    std::fclose(f);
  }
  struct statvfs fs{};
  if (statvfs(data_dir_.c_str(), &fs) == 0 && fs.f_blocks > 0) {
    s.disk_free_bytes = int64_t(fs.f_bavail) * int64_t(fs.f_frsize);
    s.disk_used_percent = 100.0 * double(fs.f_blocks - fs.f_bfree) / double(fs.f_blocks);
  }
  s.process_rss_bytes = read_process_stats().rss_bytes;
  double seconds = std::max(0.001, double(s.at_ms - last_sample_ms_) / 1000.0);
  double finished = registry.counter_sum(m::tasks_finished);
  double failed = registry.counter_sum(m::tasks_finished, {{"status", "failed"}});
  double attempts = registry.counter_sum(m::executor_calls);
  double failed_attempts = registry.counter_sum(m::executor_calls, {{"outcome", "error"}});
  s.tasks_per_second = (finished - last_finished_) / seconds;
  s.task_failure_rate = finished > last_finished_ ? (failed - last_failed_) / (finished - last_finished_) : 0;
  s.agent_failure_rate =
      attempts > last_attempts_ ? (failed_attempts - last_failed_attempts_) / (attempts - last_attempts_) : 0;
  // p95 over the interval: the histogram now minus the one of the last sample.
  auto interval_p95_ms = [&](const char* name, metrics::Histogram::Snapshot& last) {
    auto now = registry.histogram_merged(name);
    double p95 = now.count > last.count && now.cumulative.size() == last.cumulative.size() ? now.minus(last).quantile(0.95) * 1000 : 0;
    last = std::move(now);
    return p95;
  };
  s.http_p95_ms = interval_p95_ms(m::http_duration, last_http_);
  s.task_p95_ms = interval_p95_ms(m::task_duration, last_tasks_);
  s.queue_depth = registry.gauge_sum(m::task_queue_depth);
  last_finished_ = finished;
  last_failed_ = failed;
  last_attempts_ = attempts;
  last_failed_attempts_ = failed_attempts;
  last_sample_ms_ = s.at_ms;
  return s;
}

void SystemMonitor::run() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stopping_) {
    wake_.wait_for(lock, std::chrono::milliseconds(collect_ms_), [&] { return stopping_; });
    if (stopping_) break;
    lock.unlock();
    auto s = sample_now();
    lock.lock();
    history_.push_back(s);
    publish(s);
    while (!history_.empty() && s.at_ms - history_.front().at_ms > kHistoryMs) history_.pop_front();
    if (s.at_ms - last_alert_ms_ >= alert_ms_) {
      last_alert_ms_ = s.at_ms;
      evaluate_alerts(s);
    }
  }
}

void SystemMonitor::publish(const SystemSample& s) {
  auto& r = metrics::Registry::global();
  r.gauge("ai_orchestrator_host_cpu_usage_percent", "Host CPU usage over the last sampling interval, percent").set(s.cpu_percent);
  r.gauge("ai_orchestrator_host_memory_usage_percent", "Host memory in use (total - available), percent").set(s.memory_percent);
  r.gauge("ai_orchestrator_data_disk_usage_percent", "Disk usage of the data directory's file system, percent")
      .set(s.disk_used_percent);
}

void SystemMonitor::evaluate_alerts(const SystemSample& s) {
  struct Rule {
    const char* name;
    const char* severity;
    double value;
    double threshold;
    const char* what;
  };
  const Rule rules[] = {
      {"high_cpu_usage", "warning", s.cpu_percent, thresholds_.cpu_alert_percent, "CPU usage %"},
      {"high_memory_usage", "warning", s.memory_percent, thresholds_.memory_alert_percent, "memory usage %"},
      {"high_disk_usage", "critical", s.disk_used_percent, thresholds_.disk_alert_percent, "disk usage % of the data directory"},
      {"high_agent_failure_rate", "warning", s.agent_failure_rate, thresholds_.agent_failure_rate_alert,
       "failed attempts / attempts"},
      {"high_task_failure_rate", "warning", s.task_failure_rate, thresholds_.task_failure_rate_alert,
       "failed tasks / finished tasks"},
      {"slow_responses", "warning", s.http_p95_ms, double(thresholds_.response_time_alert_ms), "HTTP p95 response time ms"},
  };
  for (const auto& r : rules) {
    auto it = std::find_if(active_.begin(), active_.end(), [&](const Alert& a) { return a.name == r.name; });
    bool firing = r.value > r.threshold;
    char message[200];
    std::snprintf(message, sizeof message, "%s is %.2f, above %.2f", r.what, r.value, r.threshold);
    if (firing && it == active_.end()) {
      active_.push_back(Alert{r.name, r.severity, message, r.value, r.threshold, s.at_ms, 0});
      spdlog::warn("alert firing: {} ({})", r.name, message);
      EventFeed::global().publish("alert", {{"name", r.name}, {"severity", r.severity}, {"status", "firing"},
                                            {"message", message}, {"value", r.value}, {"threshold", r.threshold}});
    } else if (firing) {
      it->value = r.value;
      it->message = message;
    } else if (it != active_.end()) {
      it->until_ms = s.at_ms;
      it->value = r.value;
      spdlog::info("alert resolved: {} ({} is now {:.2f})", r.name, r.what, r.value);
      EventFeed::global().publish("alert", {{"name", r.name}, {"severity", r.severity}, {"status", "resolved"},
                                            {"message", message}, {"value", r.value}, {"threshold", r.threshold}});
      resolved_.push_front(*it);
      if (resolved_.size() > kResolvedKept) resolved_.pop_back();
      active_.erase(it);
    }
  }
  metrics::Registry::global().gauge(metrics::names::alerts_active, "Alerts firing now").set(double(active_.size()));
}

SystemSample SystemMonitor::latest() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return history_.empty() ? SystemSample{} : history_.back();
}

std::vector<SystemSample> SystemMonitor::history() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return {history_.begin(), history_.end()};
}

std::vector<Alert> SystemMonitor::active_alerts() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return active_;
}

std::vector<Alert> SystemMonitor::resolved_alerts() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return {resolved_.begin(), resolved_.end()};
}

}  // namespace hub::runtime
