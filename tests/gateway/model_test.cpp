#define BOOST_TEST_MODULE gateway_model
#include <boost/test/unit_test.hpp>

#include "gateway/model.hpp"

using namespace hub::gateway;
using hub::runtime::AgentRecord;
using hub::runtime::TaskRecord;

namespace {

std::string field_of(const json& body) {
  auto r = task_from_json(body, {});
  auto* e = std::get_if<ApiError>(&r);
  return e ? (e->field.empty() ? "<no field>" : e->field) : "<accepted>";
}
std::string agent_field_of(const json& body) {
  auto r = agent_from_json(body, 4);
  auto* e = std::get_if<ApiError>(&r);
  return e ? (e->field.empty() ? "<no field>" : e->field) : "<accepted>";
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_minimal_task_gets_defaults) {
  auto r = task_from_json(json{{"description", "x"}}, {5, 1234});
  auto& t = std::get<TaskRecord>(r);
  BOOST_TEST(t.priority == "medium");
  BOOST_TEST(t.max_attempts == 5);
  BOOST_TEST(t.timeout_ms == 1234);
  BOOST_TEST(t.status == "pending");
  BOOST_TEST(t.id.size() == 36u);
  BOOST_TEST(t.payload_json == "null");
}

BOOST_AUTO_TEST_CASE(every_task_field_is_validated) {
  BOOST_TEST(field_of({{"type", "echo"}}) == "description");
  BOOST_TEST(field_of({{"description", "  "}}) == "description");
  BOOST_TEST(field_of({{"description", 42}}) == "description");
  BOOST_TEST(field_of({{"description", std::string(10001, 'a')}}) == "description");
  BOOST_TEST(field_of({{"description", "x"}, {"title", 1}}) == "title");
  BOOST_TEST(field_of({{"description", "x"}, {"type", json::array()}}) == "type");
  BOOST_TEST(field_of({{"description", "x"}, {"priority", "urgent"}}) == "priority");
  BOOST_TEST(field_of({{"description", "x"}, {"priority", 2}}) == "priority");
  BOOST_TEST(field_of({{"description", "x"}, {"required_capabilities", "nlp"}}) == "required_capabilities");
  BOOST_TEST(field_of({{"description", "x"}, {"required_capabilities", {{{"minimum_proficiency", 0.5}}}}}) ==
             "required_capabilities[0].name");
  BOOST_TEST(field_of({{"description", "x"}, {"required_capabilities", {{{"name", "a"}, {"minimum_proficiency", 1.5}}}}}) ==
             "required_capabilities[0].minimum_proficiency");
  BOOST_TEST(field_of({{"description", "x"}, {"required_capabilities", {{{"name", "a"}, {"colour", 1}}}}}) ==
             "required_capabilities[0].colour");
  BOOST_TEST(field_of({{"description", "x"}, {"max_attempts", 0}}) == "max_attempts");
  BOOST_TEST(field_of({{"description", "x"}, {"max_attempts", 1.5}}) == "max_attempts");
  BOOST_TEST(field_of({{"description", "x"}, {"timeout_ms", -1}}) == "timeout_ms");
  BOOST_TEST(field_of({{"description", "x"}, {"idempotency_key", 7}}) == "idempotency_key");
  BOOST_TEST(field_of({{"description", "x"}, {"context", 7}}) == "context");
  BOOST_TEST(field_of({{"description", "x"}, {"colour", "red"}}) == "colour");
}

BOOST_AUTO_TEST_CASE(the_original_request_bodies_still_work) {
  auto r = task_from_json({{"description", "d"}, {"title", "t"}, {"type", "echo"}, {"priority", "High"},
                           {"required_capabilities", {{{"name", "nlp"}, {"min_proficiency", 0.3}}}}},
                          {});
  auto& t = std::get<TaskRecord>(r);
  BOOST_TEST(t.priority == "high");
  BOOST_TEST(t.required_capabilities.at(0).minimum_proficiency == 0.3);
  auto a = agent_from_json({{"name", "W1"}, {"agent_type", "worker"}, {"type", "worker"}}, 4);
  BOOST_TEST(std::get<AgentRecord>(a).type == "worker");
}

BOOST_AUTO_TEST_CASE(the_idempotency_header_applies_when_the_body_has_no_key) {
  BOOST_TEST(std::get<TaskRecord>(task_from_json({{"description", "x"}}, {}, "hk")).idempotency_key == "hk");
  BOOST_TEST(std::get<TaskRecord>(task_from_json({{"description", "x"}, {"idempotency_key", "bk"}}, {}, "hk"))
                 .idempotency_key == "bk");
}

BOOST_AUTO_TEST_CASE(specialist_alias_sets_specialization_and_capability) {
  auto a = std::get<AgentRecord>(agent_from_json({{"name", "v"}, {"agent_type", "specialist:vision"}}, 4));
  BOOST_TEST(a.type == "specialist");
  BOOST_TEST(a.specialization == "vision");
  BOOST_TEST(a.capabilities.at(0).name == "vision");
  BOOST_TEST(a.max_concurrent_tasks == 4);
}

BOOST_AUTO_TEST_CASE(executors_are_checked_against_the_allow_lists) {
  hub::actors::ExecutorPolicy none, allowed;
  allowed.allowed_commands = {"/usr/bin/python3 score.py", "/usr/bin/python3 /srv/models/*.py ...", "/bin/echo"};
  allowed.allowed_cwd = {"/srv/models"};
  allowed.allowed_hosts = {"127.0.0.1:8000", "models.internal"};
  auto message_of = [](const json& body, const hub::actors::ExecutorPolicy& p) {
    auto r = agent_from_json(body, 4, p);
    auto* e = std::get_if<ApiError>(&r);
    return e ? e->field + ": " + e->message : std::string("ok");
  };
  json exec = {{"name", "a"}, {"type", "worker"}, {"executor", {{"kind", "exec"}, {"command", {"/usr/bin/python3", "score.py"}}}}};
  BOOST_TEST(message_of(exec, none).find("exec executors are disabled") != std::string::npos);
  BOOST_TEST(message_of(exec, allowed) == "ok");
  exec["executor"]["command"][0] = "/bin/sh";
  BOOST_TEST(message_of(exec, allowed).find("executor.command: this command line is not allowed by [agents.exec] allowed_commands") == 0);
  // Whole command lines: an allowed interpreter does not allow any code.
  exec["executor"]["command"] = {"/usr/bin/python3", "-c", "print(open('/proc/1/environ').read())"};
  BOOST_TEST(message_of(exec, allowed).rfind("executor.command", 0) == 0);
  exec["executor"]["command"] = {"/usr/bin/python3", "/srv/models/rank.py", "--top", "5"};
  BOOST_TEST(message_of(exec, allowed) == "ok");
  exec["executor"]["command"] = {"/usr/bin/python3", "/tmp/rank.py"};
  BOOST_TEST(message_of(exec, allowed).rfind("executor.command", 0) == 0);
  exec["executor"]["command"] = {"/bin/echo", "extra"};
  BOOST_TEST(message_of(exec, allowed).rfind("executor.command", 0) == 0);
  exec["executor"] = {{"kind", "exec"}, {"command", {"/bin/echo"}}, {"env", {{"BAD-NAME", "1"}}}};
  BOOST_TEST(message_of(exec, allowed).rfind("executor.env", 0) == 0);
  for (const char* name : {"LD_PRELOAD", "PYTHONPATH", "PATH", "HOME", "NODE_OPTIONS", "BASH_ENV", "PERL5OPT"}) {
    exec["executor"] = {{"kind", "exec"}, {"command", {"/bin/echo"}}, {"env", {{name, "x"}}}};
    BOOST_TEST(message_of(exec, allowed).rfind(std::string("executor.env.") + name + ":", 0) == 0, name);
  }
  exec["executor"] = {{"kind", "exec"}, {"command", {"/bin/echo"}}, {"env", {{"MODEL", "small"}}}, {"cwd", "/srv/models/v2"}};
  BOOST_TEST(message_of(exec, allowed) == "ok");
  for (const char* cwd : {"/tmp", "/srv/models/../../etc", "/srv/modelsX"}) {
    exec["executor"]["cwd"] = cwd;
    BOOST_TEST(message_of(exec, allowed).rfind("executor.cwd", 0) == 0, cwd);
  }
  exec["executor"] = {{"kind", "exec"}, {"command", {"/bin/echo"}}, {"cwd", "/srv/models"}};
  BOOST_TEST(message_of(exec, none).rfind("executor.command", 0) == 0);
  hub::actors::ExecutorPolicy no_cwd = allowed;
  no_cwd.allowed_cwd.clear();
  BOOST_TEST(message_of(exec, no_cwd).find("allowed_cwd") != std::string::npos);
  exec["executor"] = {{"kind", "exec"}, {"command", {"/bin/echo"}}, {"timeout_ms", 0}};
  BOOST_TEST(message_of(exec, allowed).rfind("executor.timeout_ms", 0) == 0);
  json http = {{"name", "a"}, {"type", "worker"}, {"executor", {{"kind", "http"}, {"url", "http://127.0.0.1:8000/v1/chat/completions"}}}};
  BOOST_TEST(message_of(http, none).find("http executors are disabled") != std::string::npos);
  BOOST_TEST(message_of(http, allowed) == "ok");
  http["executor"]["url"] = "https://models.internal/v1";
  BOOST_TEST(message_of(http, allowed) == "ok");
  http["executor"]["url"] = "http://127.0.0.1:9999/";
  BOOST_TEST(message_of(http, allowed).find("not in [agents.http] allowed_hosts") != std::string::npos);
  http["executor"]["url"] = "ftp://x";
  BOOST_TEST(message_of(http, allowed).rfind("executor.url", 0) == 0);
  http["executor"] = {{"kind", "http"}, {"url", "http://127.0.0.1:8000/"}, {"method", "GET"}};
  BOOST_TEST(message_of(http, allowed).rfind("executor.method", 0) == 0);
  http["executor"] = {{"kind", "http"}, {"url", "http://127.0.0.1:8000/"}, {"retries", 3}};
  BOOST_TEST(message_of(http, allowed).rfind("executor.retries", 0) == 0);
  // Headers reach another server verbatim: no CR/LF, no framing headers, valid names.
  for (const json& headers : {json{{"X-A", "a\r\nX-Injected: 1"}}, json{{"X-A", "a\nb"}}, json{{"Bad Name", "1"}},
                              json{{"Host", "evil.example"}}, json{{"content-length", "5"}}, json{{"Transfer-Encoding", "chunked"}}}) {
    http["executor"] = {{"kind", "http"}, {"url", "http://127.0.0.1:8000/"}, {"headers", headers}};
    BOOST_TEST(message_of(http, allowed).rfind("executor.headers", 0) == 0, headers.dump());
  }
  http["executor"] = {{"kind", "http"}, {"url", "http://127.0.0.1:8000/"}, {"headers", {{"Authorization", "Bearer x"}}}};
  BOOST_TEST(message_of(http, allowed) == "ok");
}

BOOST_AUTO_TEST_CASE(executor_secrets_are_redacted_in_every_view) {
  auto view = agent_view([] {
    AgentRecord a;
    a.executor_json = R"({"kind":"http","url":"http://127.0.0.1:8000/v1?api_key=k3y&mode=x","headers":{"Authorization":"Bearer s3cr3t"}})";
    return a;
  }());
  auto text = view.dump();
  BOOST_TEST(text.find("s3cr3t") == std::string::npos);
  BOOST_TEST(text.find("k3y") == std::string::npos);
  BOOST_TEST(view["executor"]["headers"]["Authorization"] == "[redacted]");
  BOOST_TEST(view["executor"]["url"] == "http://127.0.0.1:8000/v1?api_key=[redacted]&mode=[redacted]");
  AgentRecord e;
  e.executor_json = R"({"kind":"exec","command":["/bin/echo"],"env":{"TOKEN":"s3cr3t-e"}})";
  BOOST_TEST(agent_view(e)["executor"]["env"]["TOKEN"] == "[redacted]");
  BOOST_TEST(agent_view(e)["executor"]["command"][0] == "/bin/echo");
}

BOOST_AUTO_TEST_CASE(deep_and_huge_json_is_a_clear_400) {
  std::string deep = "{\"description\":\"d\",\"payload\":" + std::string(70000, '[') + std::string(70000, ']') + "}";
  json out;
  auto e = parse_json_text(deep, 64, out);
  BOOST_REQUIRE(e);
  BOOST_TEST(e->status == 400);
  BOOST_TEST(e->code == "json_too_deep");
  BOOST_TEST(e->field == "payload");
  BOOST_TEST(e->message.find("64") != std::string::npos);
  // The object and 63 arrays in it are 64 levels: the most allowed; one more is refused.
  BOOST_TEST(!parse_json_text("{\"a\":" + std::string(63, '[') + std::string(63, ']') + "}", 64, out));
  BOOST_TEST(parse_json_text("{\"a\":" + std::string(64, '[') + std::string(64, ']') + "}", 64, out).has_value());
  // Brackets inside strings are text, not nesting.
  BOOST_TEST(!parse_json_text("{\"a\":\"" + std::string(1000, '[') + "\\\"\"}", 64, out));
  auto huge = parse_json_text(R"({"username":1e999,"password":"x"})", 64, out);
  BOOST_REQUIRE(huge);
  BOOST_TEST(huge->code == "number_out_of_range");
  BOOST_TEST(huge->field == "username");
  auto digits = parse_json_text("{\"description\":\"d\",\"priority\":" + std::string(5000, '9') + "}", 64, out);
  BOOST_REQUIRE(digits);
  BOOST_TEST(digits->status == 400);
  BOOST_TEST(digits->field == "priority");
}

BOOST_AUTO_TEST_CASE(every_agent_field_is_validated) {
  BOOST_TEST(agent_field_of({{"type", "worker"}}) == "name");
  BOOST_TEST(agent_field_of({{"name", "a/b"}, {"type", "worker"}}) == "name");
  BOOST_TEST(agent_field_of({{"name", "a"}}) == "type");
  BOOST_TEST(agent_field_of({{"name", "a"}, {"type", "robot"}}) == "type");
  BOOST_TEST(agent_field_of({{"name", "a"}, {"agent_type", "worker:x"}}) == "agent_type");
  BOOST_TEST(agent_field_of({{"name", "a"}, {"agent_type", "specialist:"}}) == "agent_type");
  BOOST_TEST(agent_field_of({{"name", "a"}, {"type", "learner"}, {"agent_type", "worker"}}) == "type");
  BOOST_TEST(agent_field_of({{"name", "a"}, {"type", "worker"}, {"specialization", "x"}}) == "specialization");
  BOOST_TEST(agent_field_of({{"name", "a"}, {"type", "worker"}, {"capabilities", {{{"name", "x"}, {"proficiency", 2}}}}}) ==
             "capabilities[0].proficiency");
  BOOST_TEST(agent_field_of({{"name", "a"}, {"type", "worker"}, {"capabilities", {{{"name", "x"}, {"learning_rate", -1}}}}}) ==
             "capabilities[0].learning_rate");
  BOOST_TEST(agent_field_of({{"name", "a"}, {"type", "worker"}, {"max_concurrent_tasks", 0}}) == "max_concurrent_tasks");
  BOOST_TEST(agent_field_of({{"name", "a"}, {"type", "worker"}, {"executor", {{"kind", "exec"}}}}) == "executor.command");
  BOOST_TEST(agent_field_of({{"name", "a"}, {"type", "worker"}, {"executor", {{"kind", "magic"}}}}) == "executor.kind");
  BOOST_TEST(agent_field_of({{"name", "a"}, {"type", "worker"}, {"executor", "builtin"}}) == "executor");
  BOOST_TEST(agent_field_of({{"name", "a"}, {"type", "worker"}, {"extra", 1}}) == "extra");
}

BOOST_AUTO_TEST_CASE(views_carry_the_contract_fields) {
  TaskRecord t;
  t.id = "x";
  t.result_json = R"({"a":1})";
  t.error_type = "timeout";
  t.error_message = "slow";
  t.created_at = 1700000000123;
  auto v = task_view(t);
  BOOST_TEST(v["result"]["a"] == 1);
  BOOST_TEST(v["error"]["type"] == "timeout");
  BOOST_TEST(v["created_at"] == "2023-11-14T22:13:20.123Z");
  BOOST_TEST(v["completed_at"].is_null());
}

BOOST_AUTO_TEST_CASE(paging_is_bounded) {
  int limit = 50, offset = 0;
  BOOST_TEST(!read_paging({{"limit", "10"}, {"offset", "5"}}, limit, offset));
  BOOST_TEST(limit == 10);
  BOOST_TEST(offset == 5);
  BOOST_TEST(read_paging({{"limit", "1001"}}, limit, offset)->field == "limit");
  BOOST_TEST(read_paging({{"limit", "abc"}}, limit, offset)->field == "limit");
  BOOST_TEST(read_paging({{"offset", "-1"}}, limit, offset)->field == "offset");
}
