#define BOOST_TEST_MODULE node_e2e
#include <boost/test/unit_test.hpp>

#include <fstream>

#include "tests/e2e/node_process.hpp"

using namespace hub::test;

BOOST_AUTO_TEST_CASE(health_readiness_errors_and_a_clean_sigterm) {
  Node node;
  node.start();
  BOOST_REQUIRE(node.wait_ready());
  auto c = node.client();
  auto health = c.Get("/health");
  BOOST_REQUIRE(health);
  BOOST_TEST(health->status == 200);
  auto h = body_of(health);
  BOOST_TEST(h["success"] == true);
  // "degraded" (still 200) when the test box itself is above the CPU alert threshold.
  BOOST_TEST((h["data"]["status"] == "healthy" || h["data"]["status"] == "degraded"));
  BOOST_TEST(h["data"]["version"].is_string());
  BOOST_TEST(h["data"]["uptime_seconds"].is_number());
  BOOST_TEST(h["request_id"].is_string());
  auto missing = c.Get("/no/such/route");
  BOOST_TEST(missing->status == 404);
  BOOST_TEST(body_of(missing)["error"]["code"] == "not_found");
  auto wrong_method = c.Delete("/health");
  BOOST_TEST(wrong_method->status == 405);
  BOOST_TEST(wrong_method->get_header_value("Allow") == "GET");
  auto echoed = c.Get("/livez", {{"X-Request-Id", "trace-me-1"}});
  BOOST_TEST(body_of(echoed)["request_id"] == "trace-me-1");
  BOOST_TEST(node.stop(SIGTERM) == 0);
  std::ifstream log(node.dir / "node.log");
  std::string text((std::istreambuf_iterator<char>(log)), {});
  BOOST_TEST(text.find("shutting down") != std::string::npos);
  BOOST_TEST(text.find("store: flushed") != std::string::npos);
  fs::remove_all(node.dir);
}

BOOST_AUTO_TEST_CASE(an_accepted_task_survives_kill_9_and_runs_after_restart) {
  Node node;
  node.start();
  BOOST_REQUIRE(node.wait_ready());
  auto c = node.client();
  auto r = c.Post("/api/tasks", R"({"description":"slow","type":"sleep","payload":{"ms":1500}})", "application/json");
  BOOST_REQUIRE(r);
  BOOST_TEST(r->status == 201);
  auto id = body_of(r)["data"]["id"].get<std::string>();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  BOOST_TEST(node.stop(SIGKILL) == 128 + SIGKILL);
  node.start();
  BOOST_REQUIRE(node.wait_ready());
  auto waited = node.client().Get(("/api/tasks/" + id + "/wait?timeout_ms=10000").c_str());
  BOOST_REQUIRE(waited);
  auto t = body_of(waited)["data"];
  BOOST_TEST(t["status"] == "completed");
  BOOST_TEST(t["attempts"] == 2);  // the interrupted attempt counted
  BOOST_TEST(node.stop(SIGTERM) == 0);
  fs::remove_all(node.dir);
}

BOOST_AUTO_TEST_CASE(a_port_in_use_is_one_clear_line_and_a_nonzero_exit) {
  Node first;
  first.start();
  BOOST_REQUIRE(first.wait_ready());
  Node second;
  second.port = first.port;
  second.start();
  int status = 0;
  for (int i = 0; i < 200 && waitpid(second.pid, &status, WNOHANG) == 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  BOOST_TEST(WIFEXITED(status));
  BOOST_TEST(WEXITSTATUS(status) != 0);
  second.pid = -1;
  std::ifstream log(second.dir / "node.log");
  std::string text((std::istreambuf_iterator<char>(log)), {});
  BOOST_TEST(text.find("cannot listen on 127.0.0.1:" + std::to_string(first.port)) != std::string::npos);
  BOOST_TEST(first.stop(SIGTERM) == 0);
  fs::remove_all(first.dir);
  fs::remove_all(second.dir);
}

BOOST_AUTO_TEST_CASE(sighup_reopens_a_rotated_log_file_and_json_lines_stay_parseable) {
  Node node;
  auto log = node.dir / "app.log";
  node.env = {{"HIVE_LOGGING__FILE", log.string()}, {"HIVE_LOGGING__FORMAT", "json"}};
  node.start();
  BOOST_REQUIRE(node.wait_ready());
  fs::rename(log, node.dir / "app.log.1");  // what logrotate does
  kill(node.pid, SIGHUP);
  for (int i = 0; i < 100 && !fs::exists(log); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  BOOST_REQUIRE(fs::exists(log));
  BOOST_TEST(node.stop(SIGTERM) == 0);
  std::ifstream in(log);
  std::string line;
  int lines = 0;
  bool saw_stop = false;
  while (std::getline(in, line)) {
    auto j = json::parse(line);  // every line is one JSON object
    BOOST_TEST(j["level"].is_string());
    saw_stop |= j["msg"] == "stopped";
    ++lines;
  }
  BOOST_TEST(lines >= 3);
  BOOST_TEST(saw_stop);
  fs::remove_all(node.dir);
}
