#include "runtime/breaker.hpp"
#include "runtime/events.hpp"

#include "runtime/metrics.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace hub::runtime {

namespace {

void count_transition(const std::string& kind, const char* to) {
  metrics::Registry::global()
      .counter(metrics::names::breaker_transitions, "Circuit breaker transitions, by kind of breaker and new state",
               {{"kind", kind}, {"to", to}})
      .inc();
}

}  // namespace

BreakerPolicy breaker_policy(const config::PerformanceConfig& p) {
  BreakerPolicy b;
  b.enabled = p.circuit_breakers_enabled;
  b.failure_threshold = p.circuit_breaker_failure_threshold;
  b.failure_rate_threshold = p.circuit_breaker_failure_rate_threshold;
  b.minimum_calls = p.circuit_breaker_minimum_calls;
  b.window_size = p.circuit_breaker_window_size;
  b.slow_call_ms = p.circuit_breaker_slow_call_ms;
  b.recovery_timeout_ms = p.circuit_breaker_recovery_timeout_ms;
  b.max_recovery_timeout_ms = std::max<int64_t>(p.circuit_breaker_max_recovery_timeout_ms, b.recovery_timeout_ms);
  b.half_open_max_calls = p.circuit_breaker_half_open_max_calls;
  return b;
}

CircuitBreaker::CircuitBreaker(std::string id, std::string kind, std::string target, BreakerPolicy policy)
    : id_(std::move(id)), kind_(std::move(kind)), target_(std::move(target)), policy_(policy) {
  current_recovery_ms_ = policy_.recovery_timeout_ms;
}

bool CircuitBreaker::admits(int64_t now_ms) const {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!policy_.enabled || state_ == "closed") return true;
  if (state_ == "open") return now_ms >= open_until_ms_;
  return half_open_in_flight_ + half_open_successes_ < policy_.half_open_max_calls;
}

bool CircuitBreaker::allow(int64_t now_ms) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!policy_.enabled || state_ == "closed") return true;
  if (state_ == "open") {
    if (now_ms < open_until_ms_) {
      ++rejected_;
      metrics::Registry::global()
          .counter(metrics::names::breaker_rejected, "Calls an open circuit breaker refused, by kind of breaker",
                   {{"kind", kind_}})
          .inc();
      return false;
    }
    half_open_in_flight_ = 0;
    half_open_successes_ = 0;
    transition("half_open", "recovery time of " + std::to_string(current_recovery_ms_) + " ms passed", now_ms);
  }
  if (half_open_in_flight_ + half_open_successes_ >= policy_.half_open_max_calls) {
    ++rejected_;
    return false;
  }
  ++half_open_in_flight_;
  return true;
}

void CircuitBreaker::record(bool success, int64_t duration_ms, int64_t now_ms) {
  std::lock_guard<std::mutex> lock(mutex_);
  bool slow = policy_.slow_call_ms > 0 && duration_ms > policy_.slow_call_ms;
  if (slow) ++slow_calls_;
  bool failed = !success || slow;
  (failed ? failures_ : successes_) += 1;
  if (!policy_.enabled) return;
  window_.push_back(failed);
  window_failures_ += failed ? 1 : 0;
  while (int(window_.size()) > std::max(1, policy_.window_size)) {
    window_failures_ -= window_.front() ? 1 : 0;
    window_.pop_front();
  }
  consecutive_failures_ = failed ? consecutive_failures_ + 1 : 0;
  if (state_ == "half_open") {
    half_open_in_flight_ = std::max(0, half_open_in_flight_ - 1);
    if (failed) {
      trip(slow ? "a trial call was slow (" + std::to_string(duration_ms) + " ms)" : "a trial call failed", now_ms);
      return;
    }
    if (++half_open_successes_ >= policy_.half_open_max_calls) {
      trips_ = 0;
      current_recovery_ms_ = policy_.recovery_timeout_ms;
      window_.clear();
      window_failures_ = 0;
      transition("closed", std::to_string(half_open_successes_) + " trial calls succeeded", now_ms);
    }
    return;
  }
  if (state_ != "closed" || !failed) return;
  if (consecutive_failures_ >= policy_.failure_threshold) {
    trip(std::to_string(consecutive_failures_) + " consecutive failures" + (slow ? " (the last one slow)" : ""), now_ms);
    return;
  }
  int calls = int(window_.size());
  if (calls >= policy_.minimum_calls && calls > 0) {
    double rate = double(window_failures_) / double(calls);
    if (rate >= policy_.failure_rate_threshold) {
      char text[64];
      std::snprintf(text, sizeof text, "failure rate %.0f%% over the last %d calls", rate * 100.0, calls);
      trip(text, now_ms);
    }
  }
}

void CircuitBreaker::abandon() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (state_ == "half_open") half_open_in_flight_ = std::max(0, half_open_in_flight_ - 1);
}

void CircuitBreaker::reset(int64_t now_ms, const std::string& reason) {
  std::lock_guard<std::mutex> lock(mutex_);
  trips_ = 0;
  consecutive_failures_ = 0;
  current_recovery_ms_ = policy_.recovery_timeout_ms;
  window_.clear();
  window_failures_ = 0;
  half_open_in_flight_ = half_open_successes_ = 0;
  if (state_ != "closed") transition("closed", reason, now_ms);
}

void CircuitBreaker::trip(const std::string& reason, int64_t now_ms) {
  if (trips_ > 0) current_recovery_ms_ = std::min(current_recovery_ms_ * 2, policy_.max_recovery_timeout_ms);
  ++trips_;
  ++total_trips_;
  open_until_ms_ = now_ms + current_recovery_ms_;
  half_open_in_flight_ = half_open_successes_ = 0;
  transition("open", reason + "; open for " + std::to_string(current_recovery_ms_) + " ms", now_ms);
}

void CircuitBreaker::transition(const char* to, const std::string& reason, int64_t now_ms) {
  auto from = state_;
  state_ = to;
  last_transition_ms_ = now_ms;
  last_reason_ = reason;
  count_transition(kind_, to);
  auto level = state_ == "open" ? spdlog::level::warn : spdlog::level::info;
  spdlog::log(level, "breaker {} ({}): {} -> {}: {}", id_, target_, from, to, reason);
  EventFeed::global().publish("breaker", {{"id", id_}, {"kind", kind_}, {"target", target_}, {"from", from}, {"to", to},
                                          {"reason", reason}});
}

std::string CircuitBreaker::state(int64_t now_ms) const {
  std::lock_guard<std::mutex> lock(mutex_);
  // An open breaker whose time is up is half-open for whoever asks next.
  if (state_ == "open" && now_ms >= open_until_ms_) return "half_open";
  return state_;
}

BreakerSnapshot CircuitBreaker::snapshot(int64_t now_ms) const {
  std::lock_guard<std::mutex> lock(mutex_);
  BreakerSnapshot s;
  s.id = id_;
  s.kind = kind_;
  s.target = target_;
  s.state = state_ == "open" && now_ms >= open_until_ms_ ? "half_open" : state_;
  s.successes = successes_;
  s.failures = failures_;
  s.slow_calls = slow_calls_;
  s.rejected = rejected_;
  s.consecutive_failures = consecutive_failures_;
  s.window_calls = int(window_.size());
  s.failure_rate = window_.empty() ? 0 : double(window_failures_) / double(window_.size());
  s.trips = total_trips_;
  s.open_until_ms = state_ == "open" ? open_until_ms_ : 0;
  s.last_transition_ms = last_transition_ms_;
  s.last_reason = last_reason_;
  return s;
}

BreakerRegistry& BreakerRegistry::global() {
  static BreakerRegistry registry;
  return registry;
}

std::shared_ptr<CircuitBreaker> BreakerRegistry::get(const std::string& id, const std::string& kind,
                                                     const std::string& target, const BreakerPolicy& policy) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto& slot = breakers_[id];
  if (!slot) slot = std::make_shared<CircuitBreaker>(id, kind, target, policy);
  return slot;
}

std::shared_ptr<CircuitBreaker> BreakerRegistry::find(const std::string& id) const {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = breakers_.find(id);
  return it == breakers_.end() ? nullptr : it->second;
}

std::vector<BreakerSnapshot> BreakerRegistry::list(int64_t now_ms) const {
  std::vector<std::shared_ptr<CircuitBreaker>> all;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (const auto& [id, b] : breakers_) all.push_back(b);
  }
  std::vector<BreakerSnapshot> out;
  out.reserve(all.size());
  for (const auto& b : all) out.push_back(b->snapshot(now_ms));
  return out;
}

void BreakerRegistry::remove(const std::string& id) {
  std::lock_guard<std::mutex> lock(mutex_);
  breakers_.erase(id);
}

}  // namespace hub::runtime
