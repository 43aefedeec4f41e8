#define BOOST_TEST_MODULE breaker
#include <boost/test/unit_test.hpp>

#include "runtime/breaker.hpp"

using hub::runtime::BreakerPolicy;
using hub::runtime::CircuitBreaker;

namespace {

BreakerPolicy policy() {
  BreakerPolicy p;
  p.failure_threshold = 3;
  p.failure_rate_threshold = 0.5;
  p.minimum_calls = 10;
  p.window_size = 10;
  p.recovery_timeout_ms = 1000;
  p.max_recovery_timeout_ms = 3000;
  p.half_open_max_calls = 2;
  return p;
}

void call(CircuitBreaker& b, bool ok, int64_t now, int64_t took = 1) {
  BOOST_REQUIRE(b.allow(now));
  b.record(ok, took, now);
}

}  // namespace

BOOST_AUTO_TEST_CASE(consecutive_failures_trip_it_and_it_refuses_until_the_recovery_time) {
  CircuitBreaker b("agent:x", "agent", "x", policy());
  call(b, false, 0), call(b, false, 0);
  BOOST_TEST(b.state(0) == "closed");
  call(b, false, 0);
  BOOST_TEST(b.state(0) == "open");
  BOOST_TEST(!b.allow(500));
  BOOST_TEST(!b.admits(999));
  BOOST_TEST(b.admits(1000));
  BOOST_TEST(b.snapshot(500).rejected == 1);
  BOOST_TEST(b.snapshot(500).last_reason.find("3 consecutive failures") == 0);
}

BOOST_AUTO_TEST_CASE(half_open_lets_a_few_trials_through_and_closes_when_they_all_succeed) {
  CircuitBreaker b("agent:x", "agent", "x", policy());
  for (int i = 0; i < 3; ++i) call(b, false, 0);
  BOOST_TEST(b.allow(1000));  // first trial
  BOOST_TEST(b.state(1000) == "half_open");
  BOOST_TEST(b.allow(1000));  // second trial
  BOOST_TEST(!b.allow(1000));  // no more than half_open_max_calls at once
  b.record(true, 1, 1001);
  BOOST_TEST(b.state(1001) == "half_open");
  b.record(true, 1, 1002);
  BOOST_TEST(b.state(1002) == "closed");
}

BOOST_AUTO_TEST_CASE(a_failed_trial_reopens_it_for_twice_as_long_up_to_the_cap) {
  CircuitBreaker b("agent:x", "agent", "x", policy());
  for (int i = 0; i < 3; ++i) call(b, false, 0);
  call(b, false, 1000);  // trial fails: open for 2000 ms
  BOOST_TEST(b.state(2999) == "open");
  BOOST_TEST(b.state(3000) == "half_open");
  call(b, false, 3000);  // again: 4000 capped to 3000
  BOOST_TEST(b.state(5999) == "open");
  BOOST_TEST(b.state(6000) == "half_open");
  BOOST_TEST(b.snapshot(6000).trips == 3);
}

BOOST_AUTO_TEST_CASE(the_failure_rate_over_the_window_trips_it_once_enough_calls_were_made) {
  CircuitBreaker b("http:h:1", "endpoint", "h:1", policy());
  // Alternating: never 3 in a row, but half of the calls fail.
  for (int i = 0; i < 9; ++i) call(b, i % 2 == 1, 0);
  BOOST_TEST(b.state(0) == "closed");  // 9 calls: below minimum_calls
  call(b, false, 0);
  BOOST_TEST(b.state(0) == "open");
  BOOST_TEST(b.snapshot(0).last_reason.find("failure rate") == 0);
}

BOOST_AUTO_TEST_CASE(slow_calls_count_as_failures) {
  auto p = policy();
  p.slow_call_ms = 100;
  CircuitBreaker b("agent:x", "agent", "x", p);
  for (int i = 0; i < 3; ++i) call(b, true, 0, 250);
  BOOST_TEST(b.state(0) == "open");
  BOOST_TEST(b.snapshot(0).slow_calls == 3);
}

BOOST_AUTO_TEST_CASE(a_reset_closes_it_and_disabled_breakers_never_open) {
  CircuitBreaker b("agent:x", "agent", "x", policy());
  for (int i = 0; i < 3; ++i) call(b, false, 0);
  b.reset(10, "reset by admin");
  BOOST_TEST(b.state(10) == "closed");
  BOOST_TEST(b.snapshot(10).last_reason == "reset by admin");
  auto p = policy();
  p.enabled = false;
  CircuitBreaker off("agent:y", "agent", "y", p);
  for (int i = 0; i < 20; ++i) call(off, false, 0);
  BOOST_TEST(off.state(0) == "closed");
  BOOST_TEST(off.snapshot(0).failures == 20);
}

BOOST_AUTO_TEST_CASE(an_abandoned_trial_frees_its_slot) {
  CircuitBreaker b("agent:x", "agent", "x", policy());
  for (int i = 0; i < 3; ++i) call(b, false, 0);
  BOOST_TEST(b.allow(1000));
  BOOST_TEST(b.allow(1000));
  BOOST_TEST(!b.admits(1000));
  b.abandon();
  BOOST_TEST(b.admits(1000));
}
