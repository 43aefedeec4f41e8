// Supervision, circuit breakers and executors as an operator meets them: over HTTP, against
// the real node binary, with real child processes and a real (dead) HTTP endpoint.
#define BOOST_TEST_MODULE resilience_e2e
#include <boost/test/unit_test.hpp>

#include "tests/e2e/node_process.hpp"

using namespace hub::test;

namespace {

const char* kKey = "resilience-test-key-0123456789";

httplib::Headers admin() { return {{"X-API-Key", kKey}}; }

json post(httplib::Client& c, const std::string& path, const json& body, int expect) {
  auto r = c.Post(path.c_str(), admin(), body.dump(), "application/json");
  BOOST_REQUIRE(r);
  BOOST_TEST(r->status == expect, path << " answered " << r->status << ": " << r->body);
  return json::parse(r->body);
}

json get(httplib::Client& c, const std::string& path) {
  auto r = c.Get(path.c_str(), admin());
  BOOST_REQUIRE(r);
  BOOST_REQUIRE_MESSAGE(r->status == 200, path << " answered " << r->status << ": " << r->body);
  return json::parse(r->body)["data"];
}

json wait_terminal(httplib::Client& c, const std::string& id) {
  for (int i = 0; i < 200; ++i) {
    auto t = get(c, "/api/tasks/" + id);
    if (t["status"] == "completed" || t["status"] == "failed" || t["status"] == "cancelled") return t;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  BOOST_FAIL("task " << id << " did not finish");
  return {};
}

}  // namespace

BOOST_AUTO_TEST_CASE(executors_breakers_and_the_supervision_tree_over_http) {
  int dead_port = free_port();  // nothing listens there: every call is refused
  Node node;
  node.env = {{"API_KEY", kKey},
              {"HIVE_AGENTS__EXEC__ALLOWED_COMMANDS", R"(["/bin/cat"])"},
              {"HIVE_AGENTS__HTTP__ALLOWED_HOSTS", R"(["127.0.0.1"])"},
              {"HIVE_PERFORMANCE__CIRCUIT_BREAKER_FAILURE_THRESHOLD", "3"},
              {"HIVE_PERFORMANCE__CIRCUIT_BREAKER_RECOVERY_TIMEOUT_MS", "60000"}};
  node.start();
  BOOST_REQUIRE(node.wait_ready());
  auto c = node.client();

  // Only allowed commands: the refusal names the field and the rule.
  auto refused = post(c, "/api/agents",
                      {{"name", "shell"}, {"type", "worker"}, {"executor", {{"kind", "exec"}, {"command", {"/bin/sh", "-c", "id"}}}}}, 400);
  BOOST_TEST(refused["error"]["field"] == "executor.command");
  BOOST_TEST(refused["error"]["message"].get<std::string>().find("allowed_commands") != std::string::npos);

  auto cat = post(c, "/api/agents",
                  {{"name", "cat"}, {"type", "worker"}, {"capabilities", {{{"name", "stdin"}, {"proficiency", 0.9}}}},
                   {"executor", {{"kind", "exec"}, {"command", {"/bin/cat"}}, {"timeout_ms", 5000}}}},
                  201)["data"];
  BOOST_TEST(cat["executor"]["kind"] == "exec");
  auto t = post(c, "/api/tasks",
                {{"description", "echo through cat"}, {"type", "score"}, {"payload", {{"text", "hello"}}},
                 {"required_capabilities", {{{"name", "stdin"}}}}},
                201)["data"];
  auto done = wait_terminal(c, t["id"]);
  BOOST_TEST(done["status"] == "completed");
  BOOST_TEST(done["result"]["payload"]["text"] == "hello");  // the task JSON went in on stdin

  // An agent in front of a dead model server: its breaker opens after 3 failures.
  auto dead = post(c, "/api/agents",
                   {{"name", "dead-model"}, {"type", "worker"}, {"capabilities", {{{"name", "llm"}}}},
                    {"executor", {{"kind", "http"}, {"url", "http://127.0.0.1:" + std::to_string(dead_port) + "/v1/chat/completions"}}}},
                   201)["data"];
  std::vector<std::string> ids;
  for (int i = 0; i < 4; ++i)
    ids.push_back(post(c, "/api/tasks",
                       {{"description", "ask"}, {"type", "chat"}, {"max_attempts", 1}, {"required_capabilities", {{{"name", "llm"}}}}},
                       201)["data"]["id"]);
  for (int i = 0; i < 3; ++i) {
    auto failed = wait_terminal(c, ids[size_t(i)]);
    BOOST_TEST(failed["status"] == "failed");
    BOOST_TEST(failed["error"]["type"] == "connection");
  }
  auto open = get(c, "/api/breakers?state=open");
  std::string agent_breaker = "agent:" + dead["id"].get<std::string>();
  bool listed = false;
  for (const auto& b : open["breakers"]) {
    if (b["id"] != agent_breaker) continue;
    listed = true;
    BOOST_TEST(b["failures"] == 3);
    BOOST_TEST(b["last_reason"].get<std::string>().find("3 consecutive failures") == 0);
    BOOST_TEST(b["open_until"].is_string());
  }
  BOOST_TEST(listed);
  // The fourth task waits: the scheduler routes around an open breaker (it is not failed).
  BOOST_TEST(get(c, "/api/tasks/" + ids[3])["status"] == "pending");

  auto health = json::parse(c.Get("/health?detailed=true")->body)["data"]["components"]["breakers"];
  BOOST_TEST(health["status"] == "degraded");
  BOOST_TEST(health["open"].get<int>() >= 1);

  // Resetting is for admins only: without credentials 401; with the admin key it closes.
  auto anonymous = c.Post(("/api/breakers/" + agent_breaker + "/reset").c_str(), "", "application/json");
  BOOST_TEST(anonymous->status == 401);
  auto reset = post(c, "/api/breakers/" + agent_breaker + "/reset", json::object(), 200)["data"];
  BOOST_TEST(reset["state"] == "closed");
  BOOST_TEST(reset["last_reason"].get<std::string>().find("reset by") == 0);
  post(c, "/api/breakers/no-such-breaker/reset", json::object(), 404);
  auto bad_filter = c.Get("/api/breakers?state=ajar", admin());
  BOOST_TEST(bad_filter->status == 400);

  // The supervision tree: root -> agents (one child per agent), tasks and neural (the workers).
  auto tree = get(c, "/api/supervisors")["root"];
  BOOST_TEST(tree["name"] == "root");
  BOOST_TEST(tree["children"].size() == 3u);
  BOOST_TEST(tree["children"][2]["id"] == "neural");
  const auto& agents = tree["children"][0];
  BOOST_TEST(agents["id"] == "agents");
  BOOST_TEST(agents["supervises"]["strategy"] == "one_for_one");
  bool cat_supervised = false;
  for (const auto& child : agents["supervises"]["children"]) cat_supervised |= child["id"] == cat["id"];
  BOOST_TEST(cat_supervised);
  BOOST_TEST(tree["children"][1]["id"] == "tasks");

  // The console shows the same: the tree and the breakers.
  auto hivectl = [&](const std::string& args) {
    std::string cmd = std::string(HUB_HIVECTL_BINARY) + " --url http://127.0.0.1:" + std::to_string(node.port) +
                      " --api-key " + kKey + " " + args + " 2>&1";
    std::string out;
    FILE* p = popen(cmd.c_str(), "r");
    char buf[4096];
    while (p && fgets(buf, sizeof buf, p)) out += buf;
    if (p) pclose(p);
    return out;
  };
  auto tree_text = hivectl("supervisors");
  BOOST_TEST(tree_text.find("root  (one_for_one") == 0u);
  BOOST_TEST(tree_text.find("agent " + cat["id"].get<std::string>()) != std::string::npos);
  BOOST_TEST(tree_text.find("tasks  (one_for_one") != std::string::npos);
  BOOST_TEST(tree_text.find("neural_worker neural-worker-0") != std::string::npos);
  auto breakers_json = json::parse(hivectl("--json breakers"), nullptr, false);
  BOOST_TEST(breakers_json["total"].get<int>() >= 3);  // two agents, an endpoint, the store
  BOOST_TEST(hivectl("breakers").find(agent_breaker) != std::string::npos);

  auto metrics = c.Get("/metrics", {{"Accept", "text/plain"}});
  BOOST_TEST(metrics->body.find("ai_orchestrator_circuit_breaker_transitions_total{kind=\"agent\",to=\"open\"}") != std::string::npos);
  BOOST_TEST(node.stop(SIGTERM) == 0);
  fs::remove_all(node.dir);
}
