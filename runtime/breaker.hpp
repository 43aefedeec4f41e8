// Circuit breakers: closed -> open -> half_open -> closed, tripped by consecutive failures,
// by the failure rate over a sliding window of the last calls, or by slow calls; open for a
// recovery time that doubles on each re-trip (up to a cap); half-open lets a few trial calls
// through. One breaker guards one thing (an agent, an executor endpoint, the store), is
// driven by the actor that owns that thing, and is listed in the BreakerRegistry.
// Thread-safe (a mutex per breaker; uncontended in practice). Never blocks, never sleeps.
#pragma once

#include "config/config.hpp"

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace hub::runtime {

struct BreakerPolicy {
  bool enabled = true;
  int failure_threshold = 5;              // consecutive failures that trip it
  double failure_rate_threshold = 0.5;    // share of failures in the window that trips it
  int minimum_calls = 20;                 // the rate counts only with this many calls
  int window_size = 50;                   // calls in the sliding window
  int64_t slow_call_ms = 0;               // a call slower than this counts as a failure; 0 = off
  int64_t recovery_timeout_ms = 30000;    // first open period
  int64_t max_recovery_timeout_ms = 300000;
  int half_open_max_calls = 3;            // trial calls while half-open
};

BreakerPolicy breaker_policy(const config::PerformanceConfig& performance);

struct BreakerSnapshot {
  std::string id, kind, target;
  std::string state;  // closed|open|half_open
  int64_t successes = 0, failures = 0, slow_calls = 0, rejected = 0;
  int consecutive_failures = 0;
  double failure_rate = 0;  // over the window
  int window_calls = 0;
  int trips = 0;
  int64_t open_until_ms = 0;
  int64_t last_transition_ms = 0;
  std::string last_reason;
};

class CircuitBreaker {
 public:
  CircuitBreaker(std::string id, std::string kind, std::string target, BreakerPolicy policy);

  // May a call go through now? Open: no (counted as rejected) until the recovery time has
  // passed, then half-open admits up to half_open_max_calls trial calls.
  bool allow(int64_t now_ms);
  // Would allow() admit a call now (without claiming a trial slot)? For placement.
  bool admits(int64_t now_ms) const;
  // The outcome of an admitted call. A success while half-open closes the breaker once all
  // trial calls succeeded; a failure re-opens it with a doubled recovery time.
  void record(bool success, int64_t duration_ms, int64_t now_ms);
  // A call allow() admitted that did not happen after all (another guard refused it).
  void abandon();
  // Closes it by hand (an operator's reset).
  void reset(int64_t now_ms, const std::string& reason);

  BreakerSnapshot snapshot(int64_t now_ms) const;
  const std::string& id() const { return id_; }
  std::string state(int64_t now_ms) const;

 private:
  void transition(const char* to, const std::string& reason, int64_t now_ms);
  void trip(const std::string& reason, int64_t now_ms);

  mutable std::mutex mutex_;
  const std::string id_, kind_, target_;
  const BreakerPolicy policy_;
  std::string state_ = "closed";
  std::deque<bool> window_;  // true = failed
  int window_failures_ = 0;
  int consecutive_failures_ = 0;
  int half_open_in_flight_ = 0;
  int half_open_successes_ = 0;
  int trips_ = 0;  // since the last close
  int total_trips_ = 0;
  int64_t current_recovery_ms_ = 0;
  int64_t open_until_ms_ = 0;
  int64_t successes_ = 0, failures_ = 0, slow_calls_ = 0, rejected_ = 0;
  int64_t last_transition_ms_ = 0;
  std::string last_reason_;
};

// Every breaker of the node, by id ("agent:<id>", "http:<host:port>", "exec:<command>",
// "store"). Breakers are created on first use and live as long as the node.
class BreakerRegistry {
 public:
  static BreakerRegistry& global();
  std::shared_ptr<CircuitBreaker> get(const std::string& id, const std::string& kind, const std::string& target,
                                      const BreakerPolicy& policy);
  std::shared_ptr<CircuitBreaker> find(const std::string& id) const;
  std::vector<BreakerSnapshot> list(int64_t now_ms) const;
  void remove(const std::string& id);

 private:
  mutable std::mutex mutex_;
  std::map<std::string, std::shared_ptr<CircuitBreaker>> breakers_;
};

}  // namespace hub::runtime
