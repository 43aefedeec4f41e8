#define BOOST_TEST_MODULE metrics
#include <boost/test/unit_test.hpp>

#include "runtime/metrics.hpp"

#include <thread>

using namespace hub::runtime::metrics;

BOOST_AUTO_TEST_CASE(counters_are_exact_under_concurrency) {
  Registry r;
  auto& c = r.counter("t_hits_total", "hits", {{"k", "v"}});
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 100000; ++i) c.inc();
    });
  for (auto& t : threads) t.join();
  BOOST_TEST(c.value() == 400000.0);
  BOOST_TEST(&r.counter("t_hits_total", "hits", {{"k", "v"}}) == &c);  // same child
  BOOST_TEST(r.counter_sum("t_hits_total") == 400000.0);
  BOOST_TEST(r.counter_sum("t_hits_total", {{"k", "other"}}) == 0.0);
}

BOOST_AUTO_TEST_CASE(histograms_bucket_and_estimate_quantiles) {
  Histogram h({1, 2, 5});
  for (double v : {0.5, 1.5, 1.5, 3.0, 10.0}) h.observe(v);
  auto s = h.snapshot();
  BOOST_TEST(s.count == 5u);
  BOOST_TEST(s.sum == 16.5);
  BOOST_TEST((s.cumulative == std::vector<uint64_t>{1, 3, 4, 5}));
  BOOST_TEST(s.quantile(0.5) > 1.0);
  BOOST_TEST(s.quantile(0.5) <= 2.0);
  BOOST_TEST(s.quantile(1.0) == 5.0);  // the +Inf bucket reports the largest bound
  BOOST_TEST(Histogram({1}).snapshot().quantile(0.9) == 0.0);
}

BOOST_AUTO_TEST_CASE(exposition_follows_the_text_format) {
  Registry r;
  r.counter("t_requests_total", "Requests", {{"code", "200"}, {"route", "/a\"b"}}).inc(3);
  r.gauge("t_depth", "Depth").set(7);
  r.histogram("t_latency_seconds", "Latency", {0.1, 1}, {{"route", "/x"}}).observe(0.5);
  auto text = r.expose();
  BOOST_TEST(text.find("# TYPE t_requests_total counter\n") != std::string::npos);
  BOOST_TEST(text.find("t_requests_total{code=\"200\",route=\"/a\\\"b\"} 3\n") != std::string::npos);
  BOOST_TEST(text.find("t_depth 7\n") != std::string::npos);
  BOOST_TEST(text.find("t_latency_seconds_bucket{route=\"/x\",le=\"0.1\"} 0\n") != std::string::npos);
  BOOST_TEST(text.find("t_latency_seconds_bucket{route=\"/x\",le=\"+Inf\"} 1\n") != std::string::npos);
  BOOST_TEST(text.find("t_latency_seconds_count{route=\"/x\"} 1\n") != std::string::npos);
}

#include "runtime/system_monitor.hpp"

BOOST_AUTO_TEST_CASE(the_monitor_measures_the_host_and_fires_alerts_over_threshold) {
  hub::config::MonitoringConfig settings;
  settings.metrics_collection_interval_ms = 100;
  settings.alert_check_interval_ms = 100;
  settings.memory_alert_percent = 0;  // any used memory is "too much": the alert must fire
  hub::runtime::SystemMonitor monitor("/tmp", settings);
  monitor.start();
  for (int i = 0; i < 50 && monitor.active_alerts().empty(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  auto sample = monitor.latest();
  BOOST_TEST(sample.memory_percent > 0);
  BOOST_TEST(sample.memory_percent <= 100);
  BOOST_TEST(sample.memory_total_bytes > 0);
  BOOST_TEST(sample.process_rss_bytes > 0);
  BOOST_TEST(sample.cpu_cores >= 1);
  auto alerts = monitor.active_alerts();
  BOOST_REQUIRE(!alerts.empty());
  BOOST_TEST(alerts[0].name == "high_memory_usage");
  BOOST_TEST(alerts[0].since_ms > 0);
  BOOST_TEST(alerts[0].until_ms == 0);
  BOOST_TEST(monitor.history().size() >= 2u);
  monitor.stop();
}
