#define BOOST_TEST_MODULE node_e2e
#include <boost/test/unit_test.hpp>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <random>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

int free_port() {
  std::mt19937 rng{std::random_device{}()};
  for (;;) {
    int port = 20000 + int(rng() % 20000);
    httplib::Client probe("127.0.0.1", port);
    probe.set_connection_timeout(0, 100000);
    if (!probe.Get("/")) return port;
  }
}

// The real node binary, started in a scratch directory on a free loopback port.
struct Node {
  fs::path dir;
  int port = 0;
  pid_t pid = -1;

  explicit Node(fs::path where = {}) : dir(where.empty() ? fs::temp_directory_path() / ("hub-e2e-" + std::to_string(getpid()) + "-" + std::to_string(free_port())) : where) {
    fs::create_directories(dir);
    port = free_port();
  }
  void start() {
    pid = fork();
    if (pid == 0) {
      if (chdir(dir.c_str()) != 0) _exit(127);
      auto log = (dir / "node.log").string();
      FILE* f = freopen(log.c_str(), "a", stdout);
      (void)f;
      dup2(fileno(stdout), 2);
      setenv("HIVE_SERVER__HOST", "127.0.0.1", 1);
      setenv("HIVE_SERVER__PORT", std::to_string(port).c_str(), 1);
      execl(HUB_NODE_BINARY, HUB_NODE_BINARY, nullptr);
      _exit(127);
    }
    BOOST_REQUIRE(pid > 0);
  }
  httplib::Client client() const {
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(15, 0);
    return c;
  }
  bool wait_ready(int seconds = 30) {
    for (int i = 0; i < seconds * 20; ++i) {
      auto r = client().Get("/readyz");
      if (r && r->status == 200) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }
  int stop(int sig) {
    kill(pid, sig);
    int status = 0;
    for (int i = 0; i < 400; ++i) {
      if (waitpid(pid, &status, WNOHANG) == pid) {
        pid = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return -1;
  }
  ~Node() {
    if (pid > 0) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
  }
};

json body_of(const httplib::Result& r) { return json::parse(r->body); }

}  // namespace

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
