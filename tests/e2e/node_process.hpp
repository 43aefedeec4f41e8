// The real node binary as a child process on a free loopback port, for end-to-end suites.
#pragma once

#include <boost/test/unit_test.hpp>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <csignal>
#include <filesystem>
#include <random>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

using json = nlohmann::json;
namespace fs = std::filesystem;

namespace hub::test {

inline int free_port() {
  std::mt19937 rng{std::random_device{}()};
  for (;;) {
    // Below the kernel's ephemeral range (32768+): a port some outgoing connection holds as its
    // local end is free to a connect() probe but not to bind().
    int port = 20000 + int(rng() % 12000);
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

  std::vector<std::pair<std::string, std::string>> env;

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
      for (const auto& [k, v] : env) setenv(k.c_str(), v.c_str(), 1);
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

inline json body_of(const httplib::Result& r) { return json::parse(r->body); }

}  // namespace hub::test
