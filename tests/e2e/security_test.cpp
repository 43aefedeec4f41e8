#define BOOST_TEST_MODULE security_e2e
#include <boost/test/unit_test.hpp>

#include "tests/e2e/node_process.hpp"

#include <arpa/inet.h>
#include <jwt.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdio>
#include <map>

using namespace hub::test;

namespace {

const std::string kSecret = "security-suite-secret-0123456789abcdef";
const std::string kKey = "suite-api-key-123";

// One secured node for the whole suite, with a user per role.
struct Secured {
  Node node;
  std::map<std::string, std::string> tokens;  // role -> access token

  Secured() {
    node.env = {{"API_KEY", kKey}, {"JWT_SECRET", kSecret}, {"HIVE_SECURITY__AUDIT_LOGGING_ENABLED", "true"},
                {"HIVE_SECURITY__RATE_LIMIT_REQUESTS_PER_MINUTE", "100000"}, {"HIVE_SECURITY__LOGIN_MAX_FAILURES", "5"},
                {"HIVE_SERVER__WORKERS", "32"}};
    for (auto role : {"admin", "operator", "viewer", "agent"}) add_user(std::string("u-") + role, role);
    node.start();
    BOOST_REQUIRE(node.wait_ready());
    for (auto role : {"admin", "operator", "viewer", "agent"}) tokens[role] = login(std::string("u-") + role, "password-" + std::string(role));
  }
  ~Secured() {
    node.stop(SIGTERM);
    fs::remove_all(node.dir);
  }
  void add_user(const std::string& name, const std::string& role) {
    std::string cmd = "cd '" + node.dir.string() + "' && JWT_SECRET='" + kSecret + "' '" HUB_NODE_BINARY "' user add " + name +
                      " --role " + role + " >/dev/null";
    FILE* p = popen(cmd.c_str(), "w");
    BOOST_REQUIRE(p);
    std::string pw = "password-" + role + "\n";
    fwrite(pw.data(), 1, pw.size(), p);
    BOOST_REQUIRE(pclose(p) == 0);
  }
  std::string login(const std::string& user, const std::string& password, int* status = nullptr, json* data = nullptr) {
    auto r = node.client().Post("/api/auth/login", json{{"username", user}, {"password", password}}.dump(), "application/json");
    if (status) *status = r ? r->status : 0;
    if (!r || r->status != 200) return "";
    auto d = body_of(r)["data"];
    if (data) *data = d;
    return d["token"].get<std::string>();
  }
  int call(const std::string& method, const std::string& path, const std::string& role, const std::string& body = "") {
    httplib::Headers h;
    if (role == "key") h.emplace("X-API-Key", kKey);
    else if (!role.empty()) h.emplace("Authorization", "Bearer " + (tokens.count(role) ? tokens[role] : role));
    auto c = node.client();
    httplib::Result r = method == "GET"      ? c.Get(path.c_str(), h)
                        : method == "DELETE" ? c.Delete(path.c_str(), h)
                                             : c.Post(path.c_str(), h, body.empty() ? "{}" : body, "application/json");
    return r ? r->status : 0;
  }
};

Secured& secured() {
  static Secured s;
  return s;
}

std::string token_with(const std::string& secret, const std::string& aud, long exp_offset_s, const char* role = "admin") {
  jwt_t* jwt = nullptr;
  jwt_new(&jwt);
  long now = long(time(nullptr));
  jwt_add_grant(jwt, "iss", "ai-orchestrator-hub");
  jwt_add_grant(jwt, "aud", aud.c_str());
  jwt_add_grant(jwt, "sub", "mallory");
  jwt_add_grant(jwt, "role", role);
  jwt_add_grant(jwt, "jti", "x");
  jwt_add_grant(jwt, "typ", "access");
  jwt_add_grant_int(jwt, "exp", now + exp_offset_s);
  jwt_set_alg(jwt, JWT_ALG_HS256, reinterpret_cast<const unsigned char*>(secret.data()), int(secret.size()));
  char* s = jwt_encode_str(jwt);
  std::string out = s;
  free(s);
  jwt_free(jwt);
  return out;
}

}  // namespace

BOOST_AUTO_TEST_CASE(every_route_and_role_gets_the_expected_answer) {
  auto& s = secured();
  // A task to cancel, made by the admin.
  auto c = s.node.client();
  auto made = c.Post("/api/tasks", {{"X-API-Key", kKey}}, R"({"description":"long","type":"sleep","payload":{"ms":60000}})",
                     "application/json");
  auto task = body_of(made)["data"]["id"].get<std::string>();
  struct Case {
    std::string method, path, body;
    std::map<std::string, int> want;  // role ("" = none) -> status
  };
  const std::string new_task = R"({"description":"x","type":"echo"})";
  const std::string new_agent = R"({"name":"a1","type":"worker"})";
  std::vector<Case> cases = {
      {"GET", "/health", "", {{"", 200}, {"viewer", 200}}},
      {"GET", "/livez", "", {{"", 200}}},
      {"GET", "/metrics", "", {{"", 200}}},
      {"GET", "/api/tasks", "", {{"", 401}, {"viewer", 200}, {"agent", 200}, {"operator", 200}, {"admin", 200}, {"key", 200}}},
      {"GET", "/api/agents", "", {{"", 401}, {"viewer", 200}, {"agent", 200}, {"operator", 200}, {"admin", 200}}},
      {"GET", "/api/hive/status", "", {{"", 401}, {"viewer", 200}, {"admin", 200}}},
      {"GET", "/api/resources", "", {{"", 401}, {"viewer", 200}}},
      {"GET", "/api/monitoring/alerts", "", {{"", 401}, {"viewer", 200}}},
      {"GET", "/api/tasks/" + task, "", {{"", 401}, {"viewer", 200}, {"agent", 200}}},
      {"POST", "/api/tasks", new_task, {{"", 401}, {"viewer", 403}, {"agent", 201}, {"operator", 201}, {"admin", 201}, {"key", 201}}},
      {"POST", "/api/tasks/batch", R"({"tasks":[{"description":"b"}]})", {{"viewer", 403}, {"agent", 201}, {"operator", 201}}},
      {"POST", "/api/agents", new_agent, {{"", 401}, {"viewer", 403}, {"agent", 403}, {"operator", 201}, {"admin", 201}}},
      {"POST", "/api/tasks/" + task + "/retry", "", {{"viewer", 403}, {"agent", 403}, {"operator", 409}}},
      {"POST", "/api/tasks/" + task + "/cancel", "", {{"", 401}, {"viewer", 403}, {"agent", 403}, {"operator", 200}}},
      {"GET", "/api/audit", "", {{"", 401}, {"viewer", 403}, {"agent", 403}, {"operator", 403}, {"admin", 200}, {"key", 200}}},
      {"GET", "/api/auth/me", "", {{"", 401}, {"viewer", 200}, {"agent", 200}, {"operator", 200}, {"admin", 200}}},
  };
  for (const auto& k : cases)
    for (const auto& [role, want] : k.want)
      BOOST_TEST(s.call(k.method, k.path, role, k.body) == want, k.method << " " << k.path << " as '" << role << "'");
}

BOOST_AUTO_TEST_CASE(forged_expired_and_foreign_tokens_are_refused) {
  auto& s = secured();
  BOOST_TEST(s.call("GET", "/api/tasks", token_with("not-the-secret-at-all-but-long-enough", "ai-orchestrator-hub-api", 600)) == 401);
  BOOST_TEST(s.call("GET", "/api/tasks", token_with(kSecret, "ai-orchestrator-hub-api", -10)) == 401);
  BOOST_TEST(s.call("GET", "/api/tasks", token_with(kSecret, "some-other-api", 600)) == 401);
  BOOST_TEST(s.call("GET", "/api/tasks", token_with(kSecret, "ai-orchestrator-hub-api", 600, "root")) == 401);
  // alg "none": header {"alg":"none"}, no signature.
  BOOST_TEST(s.call("GET", "/api/tasks", "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJ4Iiwicm9sZSI6ImFkbWluIn0.") == 401);
  BOOST_TEST(s.call("GET", "/api/tasks", token_with(kSecret, "ai-orchestrator-hub-api", 600)) == 200);  // control
  auto r = s.node.client().Get("/api/tasks", {{"X-API-Key", "suite-api-key-124"}});
  BOOST_TEST(r->status == 401);
}

BOOST_AUTO_TEST_CASE(refresh_tokens_are_single_use_and_logout_revokes) {
  auto& s = secured();
  json session;
  int status = 0;
  s.login("u-viewer", "password-viewer", &status, &session);
  BOOST_REQUIRE(status == 200);
  auto r1 = session["refresh_token"].get<std::string>();
  auto c = s.node.client();
  auto first = c.Post("/api/auth/refresh", json{{"refresh_token", r1}}.dump(), "application/json");
  BOOST_TEST(first->status == 200);
  auto r2 = body_of(first)["data"]["refresh_token"].get<std::string>();
  auto replay = c.Post("/api/auth/refresh", json{{"refresh_token", r1}}.dump(), "application/json");
  BOOST_TEST(replay->status == 401);
  // The replay revoked the user's other refresh tokens too.
  BOOST_TEST(c.Post("/api/auth/refresh", json{{"refresh_token", r2}}.dump(), "application/json")->status == 401);
  auto token = s.login("u-viewer", "password-viewer");
  BOOST_TEST(s.call("GET", "/api/auth/me", token) == 200);
  BOOST_TEST(s.call("POST", "/api/auth/logout", token) == 200);
  BOOST_TEST(s.call("GET", "/api/auth/me", token) == 401);
}

BOOST_AUTO_TEST_CASE(brute_force_is_locked_out) {
  auto& s = secured();
  s.add_user("victim", "viewer");
  int status = 0;
  for (int i = 0; i < 5; ++i) {
    s.login("victim", "wrong-password", &status);
    BOOST_TEST(status == 401);
  }
  s.login("victim", "password-viewer", &status);
  BOOST_TEST(status == 429);  // locked, even with the right password
}

BOOST_AUTO_TEST_CASE(changes_are_audited) {
  auto& s = secured();
  BOOST_TEST(s.call("POST", "/api/tasks", "operator", R"({"description":"audited","type":"echo"})") == 201);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  auto r = s.node.client().Get("/api/audit?limit=100", {{"X-API-Key", kKey}});
  bool found = false;
  auto audit = body_of(r);
  for (const auto& e : audit["data"]["entries"])
    found |= e["actor"] == "u-operator" && e["action"] == "POST /api/tasks" && e["status"] == 201;
  BOOST_TEST(found, "audit entries: " << audit["data"].dump());
}

BOOST_AUTO_TEST_CASE(ten_thousand_hostile_requests_leave_the_node_healthy) {
  auto& s = secured();
  const std::string big(2 * 1024 * 1024, 'a');
  std::vector<std::thread> slowloris;
  std::vector<int> sockets;
  // Slow clients: connections that send half a request line and stall.
  for (int i = 0; i < 20; ++i) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(uint16_t(s.node.port));
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
      const char partial[] = "POST /api/tasks HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n";
      (void)!write(fd, partial, sizeof partial - 1);
    }
    sockets.push_back(fd);
  }
  std::atomic<int> server_errors{0}, answered{0};
  auto hammer = [&](int from, int to) {
    for (int i = from; i < to; ++i) {
      auto c = s.node.client();
      httplib::Headers h{{"X-API-Key", kKey}};
      auto send = [&]() -> httplib::Result {
        switch (i % 5) {
          case 0: return c.Post("/api/tasks", h, "{\"description\": ", "application/json");
          case 1: return c.Post("/api/tasks", h, "\xff\xfe{}", "application/json");
          case 2: return c.Post("/api/tasks", h, i % 50 == 2 ? big : "[1,2,3]", "application/json");
          case 3: return c.Get("/api/tasks?limit=abc&status=%00", {{"X-API-Key", kKey}, {"X-Odd", std::string(4000, 'x')}});
          default: return c.Post("/api/agents", {{"X-API-Key", kKey}, {"Content-Type", "application/json; charset=utf-16"}}, "{}", "text/xml");
        }
      };
      auto r = send();
      if (r) {
        ++answered;
        if (r->status >= 500) ++server_errors;
      }
    }
  };
  std::thread t1(hammer, 0, 5000), t2(hammer, 5000, 10000);
  t1.join();
  t2.join();
  for (int fd : sockets) close(fd);
  BOOST_TEST(server_errors.load() == 0);
  BOOST_TEST(answered.load() >= 9900);
  auto health = s.node.client().Get("/health");
  BOOST_TEST(health->status == 200);
  BOOST_TEST(s.call("POST", "/api/tasks", "key", R"({"description":"still fine","type":"echo"})") == 201);
}
