#include "actors/agent.hpp"
#include "actors/neural/worker.hpp"

#include "actors/task_protocol.hpp"
#include "runtime/clock.hpp"
#include "runtime/events.hpp"
#include "runtime/json_text.hpp"
#include "runtime/instrumented.hpp"
#include "runtime/metrics.hpp"
#include "runtime/store/store_actor.hpp"

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/response_promise.hpp>
#include <caf/sec.hpp>
#include <caf/stateful_actor.hpp>
#include <nlohmann/json.hpp>
#include <openssl/evp.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <atomic>
#include <random>
#include <unordered_map>

namespace hub::actors {

using json = nlohmann::json;
using runtime::AgentRecord;
using runtime::TaskRecord;

bool is_builtin_handler(const std::string& type) {
  return type == "echo" || type == "sleep" || type == "fail" || type == "hash" || type == "crash" ||
         is_neural_task_type(type);
}

std::string agent_breaker_id(const std::string& agent_id) { return "agent:" + agent_id; }

std::string sha256_rounds(const std::string& data, int64_t rounds) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  std::string input = data;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  for (int64_t i = 0; i < std::max<int64_t>(1, rounds); ++i) {
    EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
    EVP_DigestUpdate(ctx, input.data(), input.size());
    EVP_DigestFinal_ex(ctx, digest, &len);
    input.assign(reinterpret_cast<char*>(digest), len);
  }
  EVP_MD_CTX_free(ctx);
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < len; ++i) {
    out += hex[digest[i] >> 4];
    out += hex[digest[i] & 15];
  }
  return out;
}

double learned_proficiency(double p, double rate, bool success) {
  return std::clamp(success ? p + rate * 0.1 : p - rate * 0.05, 0.0, 1.0);
}

namespace {

constexpr auto kPersistEvery = std::chrono::seconds(1);

struct Running {
  caf::response_promise promise;
  std::string handler;  // a builtin handler name, or the executor kind
  int64_t started_ms = 0;
  std::vector<std::string> capabilities;  // the ones this attempt exercises
  std::string task_type, priority;
  std::shared_ptr<std::atomic<bool>> cancel = std::make_shared<std::atomic<bool>>(false);
};

struct AgentState {
  AgentRecord record;
  AgentOptions options;
  std::string kind;  // builtin | exec | http
  caf::actor scheduler;
  caf::actor store;
  std::shared_ptr<runtime::CircuitBreaker> breaker;           // this agent
  std::shared_ptr<runtime::CircuitBreaker> endpoint_breaker;  // its command or host (none for builtin)
  std::vector<caf::actor> idle_workers;
  std::shared_ptr<std::atomic<bool>> gone = std::make_shared<std::atomic<bool>>(false);
  std::unordered_map<std::string, Running> running;  // by task id
  bool dirty = false;
  bool persist_scheduled = false;
  std::string published_state;  // the state last put on the event feed
  static inline const char* name = "agent";
};

using AgentActor = runtime::Instrumented<AgentState>;

// Puts the agent's state on the event feed when it changed.
void publish_state(AgentActor* self, const char* event = "state") {
  auto& st = self->state;
  const auto& r = st.record;
  if (st.published_state == r.state && std::string(event) == "state") return;
  runtime::EventFeed::global().publish_text("agent", runtime::JsonText()
                                                         .str("event", event)
                                                         .str("agent_id", r.id)
                                                         .str("name", r.name)
                                                         .str("node", r.node)
                                                         .str_or_null("from", st.published_state)
                                                         .str("state", r.state)
                                                         .num("running_tasks", int64_t(st.running.size()))
                                                         .done());
  st.published_state = r.state;
}

void refresh_state(AgentActor* self) {
  auto& r = self->state.record;
  if (r.state != "inactive" && r.state != "failed") r.state = self->state.running.empty() ? "idle" : "working";
  publish_state(self);
  self->set_state(r.state + " " + std::to_string(self->state.running.size()) + "/" +
                  std::to_string(r.max_concurrent_tasks));
}

std::string agent_summary(AgentActor* self) {
  auto& st = self->state;
  auto now = runtime::now_ms();
  json caps = json::array();
  for (const auto& c : st.record.capabilities)
    caps.push_back({{"name", c.name}, {"proficiency", c.proficiency}, {"learning_rate", c.learning_rate}});
  json running = json::array();
  for (const auto& [id, r] : st.running)
    running.push_back({{"task_id", id}, {"type", r.task_type}, {"handler", r.handler}, {"running_ms", now - r.started_ms}});
  auto breaker = [&](const std::shared_ptr<runtime::CircuitBreaker>& b) -> json {
    if (!b) return nullptr;
    auto s = b->snapshot(now);
    return {{"id", s.id}, {"state", s.state}, {"successes", s.successes}, {"failures", s.failures},
            {"rejected", s.rejected}, {"consecutive_failures", s.consecutive_failures}, {"trips", s.trips}};
  };
  return json{{"agent_id", st.record.id}, {"name", st.record.name}, {"type", st.record.type}, {"state", st.record.state},
              {"executor", st.kind}, {"capabilities", caps}, {"running_tasks", running},
              {"max_concurrent_tasks", st.record.max_concurrent_tasks}, {"tasks_completed", st.record.tasks_completed},
              {"tasks_failed", st.record.tasks_failed}, {"breaker", breaker(st.breaker)},
              {"endpoint_breaker", breaker(st.endpoint_breaker)}}
      .dump();
}

void schedule_persist(AgentActor* self) {
  self->state.dirty = true;
  if (self->state.persist_scheduled) return;
  self->state.persist_scheduled = true;
  self->delayed_send(self, kPersistEvery, persist_tick_atom::value);
}

void report(AgentActor* self) {
  auto copy = self->state.record;
  copy.running_tasks = int32_t(self->state.running.size());
  self->send(self->state.scheduler, agent_update_atom::value, std::move(copy));
}

void learn(AgentActor* self, const std::vector<std::string>& capabilities, bool success, int64_t duration_ms) {
  auto& r = self->state.record;
  for (auto& cap : r.capabilities)
    if (std::find(capabilities.begin(), capabilities.end(), cap.name) != capabilities.end())
      cap.proficiency = learned_proficiency(cap.proficiency, cap.learning_rate, success);
  auto n = r.tasks_completed + r.tasks_failed;
  r.avg_duration_ms = (r.avg_duration_ms * double(n) + double(duration_ms)) / double(n + 1);
  (success ? r.tasks_completed : r.tasks_failed) += 1;
  r.updated_at = runtime::now_ms();
}

void record_call(const std::string& executor, const std::string& handler, const Outcome& outcome, int64_t duration_ms) {
  namespace m = runtime::metrics::names;
  auto& registry = runtime::metrics::Registry::global();
  std::string result = outcome.ok ? "ok" : outcome.error_type == "cancelled" ? "cancelled" : "error";
  registry
      .counter(m::executor_calls, "Executor calls (attempts), by executor, handler and outcome",
               {{"executor", executor}, {"handler", handler}, {"outcome", result}})
      .inc();
  registry
      .histogram(m::executor_duration, "Executor call time in seconds, by executor", runtime::metrics::duration_buckets(),
                 {{"executor", executor}})
      .observe(double(duration_ms) / 1000.0);
}

void finish(AgentActor* self, const std::string& task_id, Outcome outcome) {
  auto& st = self->state;
  auto it = st.running.find(task_id);
  if (it == st.running.end()) return;  // cancelled or timed out meanwhile
  auto running = std::move(it->second);
  st.running.erase(it);
  auto now = runtime::now_ms();
  auto duration_ms = now - running.started_ms;
  if (!outcome.ok) self->note_error();
  record_call(st.kind, running.handler, outcome, duration_ms);
  if (outcome.error_type == "cancelled") {
    // A cancelled attempt says nothing about the agent's skill or health.
    st.breaker->abandon();
    if (st.endpoint_breaker) st.endpoint_breaker->abandon();
  } else {
    learn(self, running.capabilities, outcome.ok, duration_ms);
    if (!outcome.not_attempted)
      self->send(st.scheduler, attempt_done_atom::value, st.record.id, running.task_type, running.priority, outcome.ok,
                 duration_ms);
    // What the task itself asked for (a builtin "fail", an HTTP 4xx) is not ill health.
    bool healthy = outcome.ok || outcome.error_type == "failed" || !outcome.retryable;
    st.breaker->record(healthy, duration_ms, now);
    if (st.endpoint_breaker) st.endpoint_breaker->record(healthy, duration_ms, now);
  }
  refresh_state(self);
  running.promise.deliver(std::move(outcome));
  schedule_persist(self);
  report(self);
  if (st.record.deleted && st.running.empty()) self->quit();
}

Outcome failure(std::string type, std::string message, bool retryable = true) {
  Outcome o;
  o.error_type = std::move(type);
  o.error_message = std::move(message);
  o.retryable = retryable;
  return o;
}

// Runs a builtin handler. Returns true when the outcome is already known; `sleep` answers
// later through a timer.
bool run_builtin(AgentActor* self, const TaskRecord& task, Outcome& out) {
  auto payload = json::parse(task.payload_json, nullptr, false);
  if (task.type == "crash") {
    if (!self->state.options.fault_injection) {
      out = failure("failed", "the crash handler needs [agents] fault_injection = true", false);
      return true;
    }
    double p = payload.is_object() && payload.contains("probability") && payload["probability"].is_number()
                   ? payload["probability"].get<double>()
                   : 1.0;
    thread_local std::mt19937 rng{std::random_device{}()};
    if (std::uniform_real_distribution<double>(0, 1)(rng) < p)
      throw std::runtime_error("fault injection: agent " + self->state.record.id + " crashed on task " + task.id);
    out.ok = true;
    out.result_json = R"({"survived":true})";
    return true;
  }
  if (is_neural_task_type(task.type)) {
    // Numeric work runs on the neural workers (detached threads), never here.
    auto neural = self->state.options.neural;
    if (!neural) {
      out = failure("failed", "neural workers are off on this node ([neural] workers = 0)", false);
      return true;
    }
    auto id = task.id;
    self->request(neural, caf::infinite, neural_job_atom::value, task.id, task.type, task.payload_json)
        .then([=](Outcome& o) { finish(self, id, std::move(o)); },
              [=](caf::error& err) { finish(self, id, failure("crashed", "the neural pool stopped: " + self->system().render(err))); });
    return false;
  }
  if (task.type == "echo") {
    out.ok = true;
    out.result_json = task.payload_json.empty() ? "null" : task.payload_json;
    return true;
  }
  if (task.type == "fail") {
    std::string message = "the task asked to fail";
    if (payload.is_object() && payload.contains("message") && payload["message"].is_string())
      message = payload["message"].get<std::string>();
    out = failure("failed", message);
    return true;
  }
  if (task.type == "hash") {
    std::string data = payload.is_object() && payload.contains("data") && payload["data"].is_string()
                           ? payload["data"].get<std::string>()
                           : task.payload_json;
    int64_t rounds = payload.is_object() && payload.contains("rounds") && payload["rounds"].is_number_integer()
                         ? payload["rounds"].get<int64_t>()
                         : 1;
    rounds = std::clamp<int64_t>(rounds, 1, 10'000'000);
    out.ok = true;
    out.result_json = json{{"sha256", sha256_rounds(data, rounds)}, {"rounds", rounds}}.dump();
    return true;
  }
  // sleep
  int64_t ms = payload.is_object() && payload.contains("ms") && payload["ms"].is_number() ? payload["ms"].get<int64_t>() : 0;
  ms = std::clamp<int64_t>(ms, 0, 24LL * 3600 * 1000);
  self->delayed_send(self, std::chrono::milliseconds(ms), sleep_done_atom::value, task.id, ms);
  return false;
}

// The simulated executor (benchmarks of placement): each task type has a hidden success rate
// and mean duration per agent; outcomes are drawn from them (seeded), answered by a timer.
void simulate(AgentActor* self, const TaskRecord& task) {
  auto ex = json::parse(self->state.record.executor_json, nullptr, false);
  thread_local std::mt19937_64 rng{std::random_device{}()};
  static std::atomic<uint64_t> draws{0};
  if (ex.contains("seed") && ex["seed"].is_number_unsigned()) rng.seed(ex["seed"].get<uint64_t>() ^ (draws++ * 0x9e3779b97f4a7c15ULL));
  const json* p = nullptr;
  if (ex.contains("profile") && ex["profile"].contains(task.type)) p = &ex["profile"][task.type];
  double success = p ? p->value("success", 0.9) : 0.9, mean = p ? p->value("mean_ms", 10.0) : 10.0;
  bool ok = std::uniform_real_distribution<double>(0, 1)(rng) < success;
  auto ms = int64_t(std::max(0.0, mean * std::uniform_real_distribution<double>(0.5, 1.5)(rng)));
  self->delayed_send(self, std::chrono::milliseconds(ms), sim_done_atom::value, task.id, ok, ms);
}

void cancel_attempt(AgentActor* self, const std::string& task_id) {
  auto it = self->state.running.find(task_id);
  if (it == self->state.running.end()) return;
  it->second.cancel->store(true);  // the worker kills the process group / drops the request
  finish(self, task_id, failure("cancelled", "cancelled", false));
}

// The task as an executor sees it: on stdin (exec) or as the request body (http).
std::string executor_input(const TaskRecord& t) {
  json required = json::array();
  for (const auto& c : t.required_capabilities) required.push_back({{"name", c.name}, {"minimum_proficiency", c.minimum_proficiency}});
  auto payload = json::parse(t.payload_json, nullptr, false);
  return json{{"id", t.id},
              {"type", t.type},
              {"title", t.title},
              {"description", t.description},
              {"priority", t.priority},
              {"attempt", t.attempts},
              {"required_capabilities", required},
              {"payload", payload.is_discarded() ? json() : payload}}
      .dump(-1, ' ', false, json::error_handler_t::replace);
}

void run_in_worker(AgentActor* self, const TaskRecord& task, std::shared_ptr<std::atomic<bool>> cancel) {
  auto& st = self->state;
  caf::actor worker;
  if (!st.idle_workers.empty()) {
    worker = std::move(st.idle_workers.back());
    st.idle_workers.pop_back();
  } else {
    worker = spawn_executor_worker(self->system(), st.options.executors, caf::actor_cast<caf::actor>(self));
  }
  ExecutorCall call;
  call.executor_json = st.record.executor_json;
  call.task_json = executor_input(task);
  call.cancel = std::move(cancel);
  call.owner_gone = st.gone;
  auto task_id = task.id;
  self->request(worker, caf::infinite, run_atom::value, std::move(call))
      .then(
          [=](Outcome& outcome) {
            auto& st = self->state;
            if (int(st.idle_workers.size()) < st.record.max_concurrent_tasks) st.idle_workers.push_back(worker);
            else self->send_exit(worker, caf::exit_reason::user_shutdown);
            finish(self, task_id, std::move(outcome));
          },
          [=](caf::error& err) {
            finish(self, task_id, failure("crashed", "the executor worker stopped: " + self->system().render(err), true));
          });
}

// After a restart: the learned proficiencies and counters are the store's.
void adopt_stored(AgentActor* self, const AgentRecord& stored) {
  auto& r = self->state.record;
  for (auto& cap : r.capabilities)
    for (const auto& s : stored.capabilities)
      if (s.name == cap.name) cap.proficiency = s.proficiency;
  r.tasks_completed = std::max(r.tasks_completed, stored.tasks_completed);
  r.tasks_failed = std::max(r.tasks_failed, stored.tasks_failed);
  r.avg_duration_ms = stored.avg_duration_ms;
  if (stored.state == "inactive") r.state = "inactive";
  report(self);
}

caf::error log_exception(caf::scheduled_actor* self, std::exception_ptr& ep) {
  try {
    std::rethrow_exception(ep);
  } catch (const std::exception& e) {
    spdlog::error("agent actor {} crashed: {}", self->id(), e.what());
    return caf::make_error(caf::sec::runtime_error, std::string("agent crashed: ") + e.what());
  } catch (...) {
    spdlog::error("agent actor {} crashed (unknown exception)", self->id());
    return caf::make_error(caf::sec::runtime_error, "agent crashed");
  }
}

caf::behavior agent_actor(AgentActor* self, AgentRecord record, caf::actor scheduler, caf::actor store,
                          AgentOptions options, bool restarted) {
  auto& st = self->state;
  st.record = std::move(record);
  st.scheduler = std::move(scheduler);
  st.store = std::move(store);
  st.options = std::move(options);
  st.kind = executor_kind(st.record.executor_json);
  auto& breakers = runtime::BreakerRegistry::global();
  st.breaker = breakers.get(agent_breaker_id(st.record.id), "agent", st.record.name, st.options.breaker);
  if (auto endpoint = executor_endpoint(st.record.executor_json); !endpoint.empty())
    st.endpoint_breaker = breakers.get(endpoint, "endpoint", endpoint, st.options.breaker);
  self->describe("agent", st.record.name, st.scheduler, true);
  self->set_exception_handler(log_exception);
  self->attach_functor([gone = st.gone](const caf::error&) { gone->store(true); });
  refresh_state(self);
  if (restarted)
    self->request(st.store, std::chrono::seconds(10), runtime::load_agent_atom::value, st.record.id)
        .then([=](AgentRecord& stored) { adopt_stored(self, stored); },
              [=](caf::error& err) { spdlog::warn("agent {}: restarted without its stored state: {}", self->state.record.id, self->system().render(err)); });
  return {
      [=](execute_atom, const TaskRecord& task) -> caf::result<Outcome> {
        auto& st = self->state;
        auto now = runtime::now_ms();
        bool agent_ok = st.breaker->allow(now);
        bool endpoint_ok = agent_ok && (!st.endpoint_breaker || st.endpoint_breaker->allow(now));
        if (!endpoint_ok) {
          if (agent_ok) st.breaker->abandon();
          auto o = failure("breaker_open", std::string("the circuit breaker of ") +
                                               (agent_ok ? st.endpoint_breaker->id() : st.breaker->id()) + " is open", true);
          o.not_attempted = true;
          return o;
        }
        Running running;
        running.promise = self->make_response_promise();
        running.started_ms = now;
        running.handler = st.kind != "builtin" ? st.kind : is_builtin_handler(task.type) ? task.type : "none";
        for (const auto& c : task.required_capabilities) running.capabilities.push_back(c.name);
        running.capabilities.push_back(task.type);
        running.task_type = task.type;
        running.priority = task.priority;
        auto cancel = running.cancel;
        st.running[task.id] = std::move(running);
        refresh_state(self);
        if (st.kind == "simulated") {
          simulate(self, task);
          return caf::delegated<Outcome>{};
        }
        if (st.kind != "builtin") {
          run_in_worker(self, task, cancel);
          return caf::delegated<Outcome>{};
        }
        Outcome out;
        if (is_builtin_handler(task.type)) {
          if (run_builtin(self, task, out)) finish(self, task.id, std::move(out));
        } else {
          finish(self, task.id,
                 failure("no_executor", "no builtin handler for task type \"" + task.type +
                                            "\" (echo, sleep, fail, hash, neural.train, neural.infer); give the agent an exec or http executor",
                         false));
        }
        return caf::delegated<Outcome>{};
      },
      [=](sim_done_atom, const std::string& task_id, bool ok, int64_t ms) {
        Outcome out;
        out.ok = ok;
        if (ok) out.result_json = json{{"simulated_ms", ms}}.dump();
        else out.error_type = "simulated", out.error_message = "the simulated executor drew a failure";
        finish(self, task_id, std::move(out));
      },
      [=](sleep_done_atom, const std::string& task_id, int64_t ms) {
        Outcome out;
        out.ok = true;
        out.result_json = json{{"slept_ms", ms}}.dump();
        finish(self, task_id, std::move(out));
      },
      [=](cancel_atom, const std::string& task_id) { cancel_attempt(self, task_id); },
      [=](runtime::introspection::introspect_atom) { return agent_summary(self); },
      [=](pause_atom) {
        self->state.record.state = "inactive";
        refresh_state(self);
        schedule_persist(self);
        report(self);
      },
      [=](resume_atom) {
        self->state.record.state = "idle";
        refresh_state(self);
        schedule_persist(self);
        report(self);
      },
      [=](persist_tick_atom) {
        auto& st = self->state;
        st.persist_scheduled = false;
        if (!st.dirty) return;
        st.dirty = false;
        runtime::WriteBatch batch;
        batch.agents.push_back(st.record);
        self->request(st.store, caf::infinite, runtime::persist_atom::value, std::move(batch))
            .then([](bool) {}, [=](caf::error&) { schedule_persist(self); });
      },
      [=](delete_atom) {
        // Deleted: finish what runs, then leave. The scheduler has stopped placing here.
        auto& st = self->state;
        st.record.deleted = true;
        st.record.state = "inactive";
        publish_state(self, "deleted");
        runtime::WriteBatch batch;
        batch.agents.push_back(st.record);
        self->request(st.store, caf::infinite, runtime::persist_atom::value, std::move(batch)).then([=](bool) {
          if (self->state.running.empty()) self->quit();
        });
        self->become(caf::keep_behavior,
                     [=](sleep_done_atom, const std::string& task_id, int64_t ms) {
                       Outcome out;
                       out.ok = true;
                       out.result_json = json{{"slept_ms", ms}}.dump();
                       finish(self, task_id, std::move(out));
                       if (self->state.running.empty()) self->quit();
                     },
                     [=](cancel_atom, const std::string& task_id) {
                       cancel_attempt(self, task_id);
                       if (self->state.running.empty()) self->quit();
                     },
                     [=](execute_atom, const TaskRecord&) -> Outcome {
                       auto o = failure("crashed", "the agent was deleted", true);
                       o.not_attempted = true;
                       return o;
                     });
      },
  };
}

}  // namespace

caf::actor spawn_agent(caf::actor_system& system, AgentRecord record, caf::actor scheduler, caf::actor store,
                       const AgentOptions& options, bool restarted) {
  return system.spawn(agent_actor, std::move(record), std::move(scheduler), std::move(store), options, restarted);
}

}  // namespace hub::actors
