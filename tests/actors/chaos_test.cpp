// The chaos suite: every way the outside world fails, against real actors, a real SQLite
// store, real child processes and real HTTP over loopback. Each case ends with zero lost
// tasks: every task submitted reaches a terminal status in the store.
#define BOOST_TEST_MODULE chaos
#include <boost/test/unit_test.hpp>

#include "actors/supervisor.hpp"
#include "runtime/breaker.hpp"

#include <caf/event_based_actor.hpp>
#include "node_fixture.hpp"
#include "runtime/breaker.hpp"

#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <nlohmann/json.hpp>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <map>
#include <mutex>

using json = nlohmann::json;

namespace {

AgentRecord agent(const std::string& name, const std::string& capability, const json& executor, int concurrency = 2) {
  AgentRecord a;
  a.id = runtime::new_uuid();
  a.name = name;
  a.type = "worker";
  a.state = "idle";
  a.capabilities = {{capability, 0.8, 0.1}};
  a.max_concurrent_tasks = concurrency;
  a.executor_json = executor.dump();
  a.created_at = a.updated_at = runtime::now_ms();
  return a;
}

TaskRecord needing(const std::string& capability, int max_attempts = 1, int64_t timeout_ms = 10000, const std::string& type = "job") {
  auto t = task(type, R"({"n":1})", max_attempts, timeout_ms);
  t.required_capabilities = {{capability, 0.0}};
  return t;
}

runtime::BreakerPolicy fast_breakers() {
  runtime::BreakerPolicy p;
  p.failure_threshold = 5;
  p.recovery_timeout_ms = 1000;
  p.max_recovery_timeout_ms = 2000;
  p.half_open_max_calls = 2;
  return p;
}

std::function<void(SchedulerOptions&, SupervisionOptions&)> with(ExecutorPolicy executors, runtime::BreakerPolicy breakers,
                                                                bool fault_injection = false, int max_restarts = 1000) {
  return [=](SchedulerOptions& o, SupervisionOptions& s) {
    o.agent_options = {executors, breakers, fault_injection, {}};
    o.default_agent_concurrency = 4;
    o.max_live_tasks = 20000;
    o.max_concurrent_tasks = 256;
    s.max_restarts = max_restarts;
  };
}

// `pattern` starts with a [x] class so the shell running pgrep does not match itself.
bool process_running(const std::string& pattern) {
  std::string cmd = "pgrep -f '" + pattern + "' >/dev/null";
  return std::system(cmd.c_str()) == 0;
}

// An HTTP stub standing in for a model server: named behaviours by path.
struct Stub {
  httplib::Server server;
  std::thread thread;
  int port = 0;
  std::atomic<bool> healed{false};
  std::mutex mutex;
  std::map<std::string, int> calls;

  Stub() {
    server.Post("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) {
      count("/v1/chat/completions");
      auto body = json::parse(req.body, nullptr, false);
      json reply = {{"object", "chat.completion"},
                    {"choices", {{{"index", 0}, {"message", {{"role", "assistant"}, {"content", "ok"}}}}}},
                    {"echo", body}};
      res.set_content(reply.dump(), "application/json");
    });
    server.Post("/broken", [this](const httplib::Request&, httplib::Response& res) {
      count("/broken");
      if (healed) return res.set_content(R"({"ok":true})", "application/json");
      res.status = 500;
      res.set_content(R"({"error":"model server overloaded"})", "application/json");
    });
    server.Post("/slow", [this](const httplib::Request&, httplib::Response& res) {
      count("/slow");
      std::this_thread::sleep_for(std::chrono::milliseconds(1500));
      res.set_content("{}", "application/json");
    });
    server.Post("/limited", [this](const httplib::Request&, httplib::Response& res) {
      if (count("/limited") == 1) {
        res.status = 429;
        res.set_header("Retry-After", "1");
        return res.set_content(R"({"error":"rate limited"})", "application/json");
      }
      res.set_content(R"({"after":"waiting"})", "application/json");
    });
    server.Post("/bad-request", [this](const httplib::Request&, httplib::Response& res) {
      count("/bad-request");
      res.status = 400;
      res.set_content(R"({"error":"no"})", "application/json");
    });
    port = server.bind_to_any_port("127.0.0.1");
    thread = std::thread([this] { server.listen_after_bind(); });
    while (!server.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ~Stub() {
    server.stop();
    thread.join();
  }
  int count(const std::string& path) {
    std::lock_guard<std::mutex> lock(mutex);
    return ++calls[path];
  }
  int calls_of(const std::string& path) {
    std::lock_guard<std::mutex> lock(mutex);
    return calls[path];
  }
  json executor(const std::string& path, int timeout_ms = 5000) const {
    return {{"kind", "http"}, {"url", "http://127.0.0.1:" + std::to_string(port) + path}, {"timeout_ms", timeout_ms}};
  }
};

// A TCP listener that accepts and closes at once: a peer that hangs up mid-request.
struct Hangup {
  int fd = -1, port = 0;
  std::atomic<bool> stop{false};
  std::thread thread;
  Hangup() {
    fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    BOOST_REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    socklen_t len = sizeof addr;
    getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    port = ntohs(addr.sin_port);
    listen(fd, 16);
    thread = std::thread([this] {
      while (!stop) {
        int c = accept(fd, nullptr, nullptr);
        if (c >= 0) close(c);
      }
    });
  }
  ~Hangup() {
    stop = true;
    shutdown(fd, SHUT_RDWR);
    close(fd);
    thread.join();
  }
};

ExecutorPolicy exec_policy() {
  ExecutorPolicy p;
  p.allowed_commands = {"/bin/sh -c *", "/bin/cat", "/bin/echo ...", "/usr/bin/yes"};
  p.max_output_bytes = 64 * 1024;
  return p;
}

ExecutorPolicy http_policy() {
  ExecutorPolicy p;
  p.allowed_hosts = {"127.0.0.1"};
  return p;
}

json exec(std::vector<std::string> command, int timeout_ms = 0) {
  json e = {{"kind", "exec"}, {"command", command}};
  if (timeout_ms > 0) e["timeout_ms"] = timeout_ms;
  return e;
}

}  // namespace

BOOST_AUTO_TEST_CASE(exec_commands_that_hang_crash_flood_or_fail_lose_no_task) {
  std::vector<AgentRecord> agents{
      agent("json", "json", exec({"/bin/cat"})),
      agent("text", "text", exec({"/bin/echo", "plain words"})),
      agent("hang", "hang", exec({"/bin/sh", "-c", "sleep 37.25 & sleep 37.25"}, 400)),
      agent("crash", "crash", exec({"/bin/sh", "-c", "kill -SEGV $$"})),
      agent("flood", "flood", exec({"/usr/bin/yes"}, 500)),
      agent("exit", "exit", exec({"/bin/sh", "-c", "echo the model file is missing >&2; exit 3"})),
  };
  Node node({}, {}, agents, with(exec_policy(), fast_breakers()));
  std::map<std::string, std::string> id_of;
  std::vector<TaskRecord> tasks;
  for (auto cap : {"json", "text", "hang", "crash", "flood", "exit"}) {
    tasks.push_back(needing(cap));
    id_of[cap] = tasks.back().id;
  }
  node.submit(tasks);
  std::vector<std::string> ids;
  for (auto& [cap, id] : id_of) ids.push_back(id);
  BOOST_REQUIRE(node.await_terminal(ids, 15000) == 0u);

  auto json_task = *node.store->task(id_of["json"]);
  BOOST_TEST(json_task.status == "completed");
  BOOST_TEST(json::parse(json_task.result_json)["id"] == id_of["json"]);  // the task came in on stdin
  BOOST_TEST(json::parse(json_task.result_json)["payload"]["n"] == 1);
  BOOST_TEST(json::parse(node.store->task(id_of["text"])->result_json) == "plain words\n");

  auto hang = *node.store->task(id_of["hang"]);
  BOOST_TEST(hang.error_type == "timeout");
  BOOST_TEST(!process_running("[s]leep 37.25"));  // the whole process group was killed

  auto crash = *node.store->task(id_of["crash"]);
  BOOST_TEST(crash.error_type == "exit_code");
  BOOST_TEST(crash.error_message.find("signal 11") != std::string::npos);

  auto flood = *node.store->task(id_of["flood"]);
  BOOST_TEST(flood.error_type == "timeout");  // it never ends; its output stayed capped meanwhile

  auto exit = *node.store->task(id_of["exit"]);
  BOOST_TEST(exit.error_type == "exit_code");
  BOOST_TEST(exit.error_message.find("exit code 3; stderr: the model file is missing") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_task_timeout_kills_the_process_group_and_the_task_is_retried) {
  Node node({}, {}, {agent("slow", "slow", exec({"/bin/sh", "-c", "sleep 41.75 & sleep 41.75"}))},
            with(exec_policy(), fast_breakers()));
  auto t = needing("slow", 2, 300);
  node.submit({t});
  BOOST_REQUIRE(node.await_terminal({t.id}, 10000) == 0u);
  auto done = *node.store->task(t.id);
  BOOST_TEST(done.status == "failed");
  BOOST_TEST(done.attempts == 2);
  BOOST_TEST(done.error_type == "timeout");
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  BOOST_TEST(!process_running("[s]leep 41.75"));
}

BOOST_AUTO_TEST_CASE(http_endpoints_that_time_out_fail_limit_or_hang_up_lose_no_task) {
  Stub stub;
  Hangup hangup;
  std::vector<AgentRecord> agents{
      agent("model", "model", stub.executor("/v1/chat/completions")),
      agent("slow", "slow", stub.executor("/slow", 300)),
      agent("broken", "broken", stub.executor("/broken")),
      agent("limited", "limited", stub.executor("/limited")),
      agent("bad", "bad", stub.executor("/bad-request")),
      agent("hangup", "hangup", {{"kind", "http"}, {"url", "http://127.0.0.1:" + std::to_string(hangup.port) + "/"}}),
  };
  Node node({}, {}, agents, with(http_policy(), fast_breakers()));
  std::map<std::string, TaskRecord> t;
  for (auto cap : {"model", "slow", "broken", "bad", "hangup"}) t[cap] = needing(cap);
  t["limited"] = needing("limited", 2);
  std::vector<TaskRecord> all;
  std::vector<std::string> ids;
  for (auto& [cap, task] : t) all.push_back(task), ids.push_back(task.id);
  node.submit(all);
  BOOST_REQUIRE(node.await_terminal(ids, 15000) == 0u);

  auto model = *node.store->task(t["model"].id);
  BOOST_TEST(model.status == "completed");
  BOOST_TEST(json::parse(model.result_json)["choices"][0]["message"]["content"] == "ok");
  BOOST_TEST(json::parse(model.result_json)["echo"]["id"] == t["model"].id);
  BOOST_TEST(node.store->task(t["slow"].id)->error_type == "timeout");
  auto broken = *node.store->task(t["broken"].id);
  BOOST_TEST(broken.error_type == "http_status");
  BOOST_TEST(broken.error_message.find("answered 500") != std::string::npos);
  BOOST_TEST(node.store->task(t["bad"].id)->error_type == "http_status");
  BOOST_TEST(node.store->task(t["hangup"].id)->error_type == "connection");

  // 429 with Retry-After: 1 -> the retry waits a second (not the backoff), then succeeds.
  auto limited = *node.store->task(t["limited"].id);
  BOOST_TEST(limited.status == "completed");
  BOOST_TEST(limited.attempts == 2);
  bool waited = false;
  for (const auto& e : node.store->task_events(limited.id)) waited |= e.reason.find("retry in 1000 ms") != std::string::npos;
  BOOST_TEST(waited);
}

BOOST_AUTO_TEST_CASE(agents_that_throw_at_random_are_restarted_and_lose_no_task) {
  Node node({"worker:general:4"}, {}, {}, with({}, fast_breakers(), true));
  std::vector<TaskRecord> tasks;
  std::vector<std::string> ids;
  for (int i = 0; i < 200; ++i) {
    auto t = task("crash", R"({"probability":0.15})", 20, 5000);
    tasks.push_back(t);
    ids.push_back(t.id);
  }
  node.submit(tasks);
  BOOST_REQUIRE(node.await_terminal(ids, 60000) == 0u);
  int completed = 0, crashed_attempts = 0;
  for (const auto& id : ids) {
    auto t = *node.store->task(id);
    completed += t.status == "completed";
    crashed_attempts += t.attempts - 1;
  }
  BOOST_TEST(completed == 200);
  BOOST_TEST(crashed_attempts > 0);
  auto tree = json::parse(*node.ask_actor<std::string>(node.actors.root, tree_atom::value));
  const auto& agents = tree["children"][0];
  BOOST_TEST(agents["id"] == "agents");
  BOOST_TEST(agents["supervises"]["restarts"].get<int>() > 0);
  auto listed = node.ask<std::vector<AgentRecord>>(list_atom::value);
  BOOST_TEST(listed->size() == 4u);  // the same agents, restarted under their ids
}

BOOST_AUTO_TEST_CASE(an_agent_killed_mid_task_is_restarted_with_its_learning_and_the_task_moves) {
  Node node({"worker:general:2"}, {}, {}, with({}, fast_breakers()));
  auto t = task("sleep", R"({"ms":1500})", 3, 10000);
  node.submit({t});
  auto running = node.await_status(t.id, "running");
  auto victim = running.assigned_agent;
  // Let it learn a little first: the proficiency it persisted must survive the restart.
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  auto before = node.ask<AgentRecord>(get_atom::value, victim);
  BOOST_REQUIRE(before);
  caf::anon_send(node.scheduler, kill_agent_atom::value, victim);
  auto done = node.await_status(t.id, "completed", 15000);
  BOOST_TEST(done.attempts == 2);  // the interrupted attempt counts
  BOOST_TEST(done.completed_at - running.started_at < 6000);  // moved at once (its timeout is 10 s)
  BOOST_TEST(done.assigned_agent != victim);
  auto tree = json::parse(*node.ask_actor<std::string>(node.actors.root, tree_atom::value));
  int restarts = 0;
  for (const auto& c : tree["children"][0]["supervises"]["children"])
    if (c["id"] == victim) restarts = c["restarts"].get<int>();
  BOOST_TEST(restarts == 1);
  auto after = node.ask<AgentRecord>(get_atom::value, victim);
  BOOST_REQUIRE(after);
  BOOST_TEST(after->capabilities.at(0).proficiency == before->capabilities.at(0).proficiency);
}

BOOST_AUTO_TEST_CASE(too_many_restarts_escalate_and_the_agent_supervisor_starts_again) {
  Node node({"worker:general:2"}, {}, {}, with({}, fast_breakers(), true, 2));
  std::vector<TaskRecord> tasks;
  std::vector<std::string> ids;
  for (int i = 0; i < 4; ++i) {
    auto t = task("crash", R"({"probability":1.0})", 2, 5000);
    tasks.push_back(t);
    ids.push_back(t.id);
  }
  auto echo = task("echo", R"({"after":"escalation"})", 3, 5000);
  node.submit(tasks);
  BOOST_REQUIRE(node.await_terminal(ids, 20000) == 0u);
  for (const auto& id : ids) BOOST_TEST(node.store->task(id)->error_type == "crashed");
  node.submit({echo});
  BOOST_TEST(node.await_status(echo.id, "completed", 10000).status == "completed");
  auto tree = json::parse(*node.ask_actor<std::string>(node.actors.root, tree_atom::value));
  BOOST_TEST(tree["children"][0]["restarts"].get<int>() >= 1);  // the agent supervisor itself restarted
}

BOOST_AUTO_TEST_CASE(ten_thousand_tasks_against_a_pool_with_thirty_percent_broken_agents) {
  Stub healthy, broken;
  auto policy = fast_breakers();
  std::vector<AgentRecord> agents;
  for (int i = 0; i < 7; ++i) agents.push_back(agent("healthy-" + std::to_string(i), "llm", healthy.executor("/v1/chat/completions"), 4));
  for (int i = 0; i < 3; ++i) agents.push_back(agent("broken-" + std::to_string(i), "llm", broken.executor("/broken"), 4));
  Node node({}, {}, agents, with(http_policy(), policy));
  std::vector<TaskRecord> tasks;
  std::vector<std::string> ids;
  for (int i = 0; i < 10000; ++i) {
    auto t = needing("llm", 5, 10000);
    tasks.push_back(t);
    ids.push_back(t.id);
  }
  for (size_t i = 0; i < tasks.size(); i += 1000)
    node.submit(std::vector<TaskRecord>(tasks.begin() + long(i), tasks.begin() + long(i + 1000)));
  BOOST_REQUIRE(node.await_terminal(ids, 240000) == 0u);
  std::set<std::string> broken_ids;
  for (int i = 7; i < 10; ++i) broken_ids.insert(agents[size_t(i)].id);
  int completed = 0, on_broken = 0;
  for (const auto& id : ids) {
    auto t = *node.store->task(id);
    completed += t.status == "completed";
    on_broken += broken_ids.count(t.assigned_agent) > 0;
  }
  BOOST_TEST(completed == 10000);
  BOOST_TEST(on_broken == 0);  // every result came from a healthy agent
  // The broken agents' breakers (and the broken server's) opened within the thresholds:
  // at most failure_threshold failures plus what was already in flight when they tripped.
  // The shared endpoint's breaker usually opens first and then lets one trial call through
  // per recovery window, so a broken agent may reach its own threshold only on a later trial:
  // keep the healthy agents busy (so work spills over to whatever admits it) until each has,
  // within a bound, as an operator's steady traffic would.
  auto& registry = runtime::BreakerRegistry::global();
  auto all_tripped = [&] {
    for (const auto& id : broken_ids)
      if (registry.find(agent_breaker_id(id))->snapshot(runtime::now_ms()).trips < 1) return false;
    return true;
  };
  std::vector<std::string> extra;
  for (int round = 0; round < 60 && !all_tripped(); ++round) {
    std::vector<TaskRecord> batch;
    for (int i = 0; i < 300; ++i) batch.push_back(needing("llm", 5, 10000)), extra.push_back(batch.back().id);
    node.submit(batch);
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  BOOST_REQUIRE(node.await_terminal(extra, 60000) == 0u);
  for (const auto& id : extra) BOOST_TEST(broken_ids.count(node.store->task(id)->assigned_agent) == 0u);
  for (const auto& id : broken_ids) {
    auto s = registry.find(agent_breaker_id(id))->snapshot(runtime::now_ms());
    BOOST_TEST(s.trips >= 1);
    BOOST_TEST(s.state != "closed");
  }
  auto endpoint = registry.find("http:127.0.0.1:" + std::to_string(broken.port))->snapshot(runtime::now_ms());
  BOOST_TEST(endpoint.trips >= 1);
  BOOST_TEST(broken.calls_of("/broken") < 200);  // not hammered: a few calls per recovery window

  // They heal: half-open trials succeed and the breakers close; new work reaches them again.
  broken.healed = true;
  std::vector<std::string> more;
  for (int round = 0; round < 40; ++round) {
    std::vector<TaskRecord> batch;
    for (int i = 0; i < 100; ++i) batch.push_back(needing("llm", 5, 10000)), more.push_back(batch.back().id);
    node.submit(batch);
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
    bool all_closed = true;
    for (const auto& id : broken_ids) all_closed &= registry.find(agent_breaker_id(id))->state(runtime::now_ms()) == "closed";
    if (all_closed) break;
  }
  BOOST_REQUIRE(node.await_terminal(more, 60000) == 0u);
  for (const auto& id : broken_ids) BOOST_TEST(registry.find(agent_breaker_id(id))->state(runtime::now_ms()) == "closed");
  int healed_results = 0;
  for (const auto& id : more) healed_results += broken_ids.count(node.store->task(id)->assigned_agent) > 0;
  BOOST_TEST(healed_results > 0);
}

namespace {

caf::behavior sleeper(caf::event_based_actor*) {
  return {[](get_atom) { return true; }};
}

}  // namespace

BOOST_AUTO_TEST_CASE(rest_for_one_restarts_the_crashed_child_and_every_child_started_after_it) {
  runtime::HubActorConfig cfg{2, "stealing"};
  caf::actor_system system{cfg};
  auto sup = spawn_supervisor(system, {"drill", "rest_for_one", 10, 60000});
  std::vector<caf::actor> first;
  for (auto name : {"a", "b", "c"}) {
    auto child = system.spawn(sleeper);
    first.push_back(child);
    caf::anon_send(sup, adopt_atom::value, ChildSpec{name, "drill", [&system] { return system.spawn(sleeper); }, false}, child);
  }
  caf::scoped_actor self{system};
  auto restarts = [&] {
    std::map<std::string, int> out;
    self->request(sup, std::chrono::seconds(5), tree_atom::value).receive(
        [&](std::string& text) {
          auto tree = json::parse(text);
          for (const auto& c : tree["children"]) out[c["id"].get<std::string>()] = c["restarts"].get<int>();
        },
        [&](caf::error&) {});
    return out;
  };
  BOOST_TEST(restarts().size() == 3u);
  caf::anon_send_exit(first[1], caf::exit_reason::kill);
  std::map<std::string, int> after;
  for (int i = 0; i < 100 && after["c"] == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    after = restarts();
  }
  BOOST_TEST(after["a"] == 0);
  BOOST_TEST(after["b"] == 1);
  BOOST_TEST(after["c"] == 1);  // started after b: restarted with it
  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
}
