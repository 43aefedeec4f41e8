#include "actors/agent.hpp"

#include "actors/task_protocol.hpp"
#include "runtime/clock.hpp"
#include "runtime/metrics.hpp"
#include "runtime/store/store_actor.hpp"

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/response_promise.hpp>
#include <caf/stateful_actor.hpp>
#include <nlohmann/json.hpp>
#include <openssl/evp.h>

#include <algorithm>
#include <chrono>
#include <unordered_map>

namespace hub::actors {

using json = nlohmann::json;
using runtime::AgentRecord;
using runtime::TaskRecord;

bool is_builtin_handler(const std::string& type) {
  return type == "echo" || type == "sleep" || type == "fail" || type == "hash";
}

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
  std::string handler;  // a builtin handler name, or "none"
  int64_t started_ms = 0;
  std::vector<std::string> capabilities;  // the ones this attempt exercises
};

struct AgentState {
  AgentRecord record;
  caf::actor scheduler;
  caf::actor store;
  std::unordered_map<std::string, Running> running;  // by task id
  bool dirty = false;
  bool persist_scheduled = false;
  static inline const char* name = "agent";
};

using AgentActor = caf::stateful_actor<AgentState>;

void refresh_state(AgentActor* self) {
  auto& r = self->state.record;
  if (r.state == "inactive" || r.state == "failed") return;
  r.state = self->state.running.empty() ? "idle" : "working";
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

void record_call(const std::string& handler, const Outcome& outcome, int64_t duration_ms) {
  namespace m = runtime::metrics::names;
  auto& registry = runtime::metrics::Registry::global();
  std::string result = outcome.ok ? "ok" : outcome.error_type == "cancelled" ? "cancelled" : "error";
  registry
      .counter(m::executor_calls, "Executor calls (attempts), by executor, handler and outcome",
               {{"executor", "builtin"}, {"handler", handler}, {"outcome", result}})
      .inc();
  registry
      .histogram(m::executor_duration, "Executor call time in seconds, by executor", runtime::metrics::duration_buckets(),
                 {{"executor", "builtin"}})
      .observe(double(duration_ms) / 1000.0);
}

void finish(AgentActor* self, const std::string& task_id, Outcome outcome) {
  auto& st = self->state;
  auto it = st.running.find(task_id);
  if (it == st.running.end()) return;  // cancelled or timed out meanwhile
  auto running = std::move(it->second);
  st.running.erase(it);
  auto duration_ms = runtime::now_ms() - running.started_ms;
  record_call(running.handler, outcome, duration_ms);
  // A cancelled attempt says nothing about the agent's skill.
  if (outcome.error_type != "cancelled") learn(self, running.capabilities, outcome.ok, duration_ms);
  refresh_state(self);
  running.promise.deliver(std::move(outcome));
  schedule_persist(self);
  report(self);
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

caf::behavior agent_actor(AgentActor* self, AgentRecord record, caf::actor scheduler, caf::actor store) {
  auto& st = self->state;
  st.record = std::move(record);
  st.scheduler = std::move(scheduler);
  st.store = std::move(store);
  refresh_state(self);
  return {
      [=](execute_atom, const TaskRecord& task) -> caf::result<Outcome> {
        auto& st = self->state;
        Running running;
        running.promise = self->make_response_promise();
        running.started_ms = runtime::now_ms();
        running.handler = is_builtin_handler(task.type) ? task.type : "none";
        for (const auto& c : task.required_capabilities) running.capabilities.push_back(c.name);
        running.capabilities.push_back(task.type);
        st.running[task.id] = std::move(running);
        refresh_state(self);
        Outcome out;
        if (is_builtin_handler(task.type)) {
          if (run_builtin(self, task, out)) finish(self, task.id, std::move(out));
        } else {
          // Executors exec/http/neural arrive with issues #5 and #8.
          finish(self, task.id,
                 failure("no_executor", "no executor for task type \"" + task.type +
                                            "\": builtin handlers are echo, sleep, fail, hash",
                         false));
        }
        return caf::delegated<Outcome>{};
      },
      [=](sleep_done_atom, const std::string& task_id, int64_t ms) {
        Outcome out;
        out.ok = true;
        out.result_json = json{{"slept_ms", ms}}.dump();
        finish(self, task_id, std::move(out));
      },
      [=](cancel_atom, const std::string& task_id) { finish(self, task_id, failure("cancelled", "cancelled", false)); },
      [=](pause_atom) {
        self->state.record.state = "inactive";
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
                       finish(self, task_id, failure("cancelled", "cancelled", false));
                       if (self->state.running.empty()) self->quit();
                     },
                     [=](execute_atom, const TaskRecord&) -> Outcome {
                       return failure("crashed", "the agent was deleted", true);
                     });
      },
  };
}

}  // namespace

caf::actor spawn_agent(caf::actor_system& system, AgentRecord record, caf::actor scheduler, caf::actor store) {
  return system.spawn(agent_actor, std::move(record), std::move(scheduler), std::move(store));
}

}  // namespace hub::actors
