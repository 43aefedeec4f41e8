// The routing benchmark (issue #8, `routing_quality`): 20 agents whose real success rates and
// speeds per task type (hidden, drawn from a seed) have nothing to do with the proficiencies
// they declare; 20,000 tasks of 4 types arrive at a steady rate; the simulated executor draws
// each attempt's outcome from the agent's hidden distribution. Run once per mode:
//   routing_bench basic|advanced [TASKS] [RATE_PER_SECOND] [MAX_ATTEMPTS]
// Prints one JSON line: attempts, failed attempts, success rate, mean completion time.
#include "actors/neural/worker.hpp"
#include "actors/scheduler.hpp"
#include "actors/task_protocol.hpp"
#include "runtime/actor_runtime.hpp"
#include "runtime/clock.hpp"
#include "runtime/store/store.hpp"
#include "runtime/store/store_actor.hpp"

#include <caf/actor_system.hpp>
#include <caf/scoped_actor.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <random>
#include <thread>

using namespace hub;
using json = nlohmann::json;
namespace fs = std::filesystem;

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: routing_bench basic|advanced [TASKS] [RATE_PER_SECOND] [MAX_ATTEMPTS]\n";
    return 2;
  }
  std::string mode = argv[1];
  int n = argc > 2 ? std::atoi(argv[2]) : 20000;
  double rate = argc > 3 ? std::atof(argv[3]) : 1200.0;
  int max_attempts = argc > 4 ? std::atoi(argv[4]) : 10;
  auto dir = fs::temp_directory_path() / ("hub-routing-bench-" + runtime::new_uuid());
  fs::create_directories(dir);
  auto opened = runtime::open_store({"sqlite://" + (dir / "hive.db").string(), 30000, false});
  if (opened.error) {
    std::cerr << opened.error->message << "\n";
    return 1;
  }
  auto& store = *opened.store;
  int result = 0;
  {
    runtime::HubActorConfig cfg(int(std::max(1u, std::thread::hardware_concurrency())), "stealing");
    caf::actor_system system{cfg};
    auto store_actor = runtime::spawn_store_actor(system, store);
    auto pool = actors::spawn_neural_pool(system, {1, false, 0.01f, dir.string(), &store});
    actors::SchedulerOptions options;
    options.node = "bench";
    options.max_concurrent_tasks = 256;
    options.max_live_tasks = n + 1000;
    options.agent_options.breaker.enabled = false;  // placement alone is measured
    options.agent_options.neural = pool;
    options.learned_routing = mode == "advanced";
    auto scheduler = actors::spawn_scheduler(system, options, store_actor);
    caf::scoped_actor self{system};
    self->request(scheduler, caf::infinite, actors::boot_atom::value, std::vector<runtime::AgentRecord>{},
                  std::vector<runtime::TaskRecord>{}, false)
        .receive([](bool) {}, [](caf::error&) {});

    // The hidden truth: per agent and task type, a success rate and a mean duration. The
    // declared proficiency is drawn independently of both.
    const std::vector<std::string> types{"summarize", "classify", "translate", "extract"};
    std::mt19937_64 truth(2026);
    std::uniform_real_distribution<double> success(0.35, 0.98), mean_ms(4, 40), declared(0.5, 1.0);
    for (int a = 0; a < 20; ++a) {
      json profile;
      for (const auto& t : types) profile[t] = {{"success", success(truth)}, {"mean_ms", mean_ms(truth)}};
      runtime::AgentRecord r;
      r.name = "sim-" + std::to_string(a);
      r.type = "worker";
      r.capabilities = {{"general", declared(truth), 0.0}};  // learning_rate 0: the declaration stays as declared
      r.max_concurrent_tasks = 4;
      r.executor_json = json{{"kind", "simulated"}, {"seed", uint64_t(1000 + a)}, {"profile", profile}}.dump();
      self->request(scheduler, caf::infinite, actors::create_atom::value, r).receive([](runtime::AgentRecord&) {}, [](caf::error&) {});
    }

    std::mt19937_64 pick(7);
    auto start = std::chrono::steady_clock::now();
    const int chunk = 10;
    for (int i = 0; i < n; i += chunk) {
      std::vector<runtime::TaskRecord> batch;
      for (int j = i; j < std::min(n, i + chunk); ++j) {
        runtime::TaskRecord t;
        t.id = runtime::new_time_uuid();
        t.description = "routing bench " + std::to_string(j);
        t.type = types[pick() % types.size()];
        t.required_capabilities = {{"general", 0.0}};
        t.max_attempts = max_attempts;
        t.timeout_ms = 60000;
        t.created_at = t.updated_at = runtime::now_ms();
        batch.push_back(std::move(t));
      }
      self->request(scheduler, caf::infinite, actors::submit_atom::value, batch)
          .receive([](actors::SubmitReply&) {}, [](caf::error&) {});
      std::this_thread::sleep_until(start + std::chrono::microseconds(int64_t(double(i + chunk) / rate * 1e6)));
    }
    auto finished = [&] {
      json st;
      self->request(scheduler, caf::infinite, actors::status_atom::value).receive([&](std::string& s) { st = json::parse(s); }, [](caf::error&) {});
      return st;
    };
    json st;
    while (true) {
      st = finished();
      auto by = st["finished_since_start"];
      if (by.value("completed", 0) + by.value("failed", 0) >= n) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    self->request(store_actor, caf::infinite, runtime::flush_atom::value).receive([](bool) {}, [](caf::error&) {});

    int64_t attempts = 0, failed_attempts = 0, completed = 0, failed = 0;
    double completion_ms = 0;
    std::vector<double> times;
    for (int offset = 0;; offset += 1000) {
      runtime::TaskFilter f;
      f.limit = 1000;
      f.offset = offset;
      auto page = store.tasks(f);
      if (page.tasks.empty()) break;
      for (const auto& t : page.tasks) {
        attempts += t.attempts;
        if (t.status == "completed") {
          ++completed;
          failed_attempts += t.attempts - 1;
          times.push_back(double(t.completed_at - t.created_at));
          completion_ms += double(t.completed_at - t.created_at);
        } else {
          ++failed;
          failed_attempts += t.attempts;
        }
      }
    }
    std::sort(times.begin(), times.end());
    json out{{"figure", "routing_quality"},
             {"mode", mode},
             {"tasks", n},
             {"rate_per_second", rate},
             {"agents", 20},
             {"completed", completed},
             {"failed_tasks", failed},
             {"attempts", attempts},
             {"failed_attempts", failed_attempts},
             {"attempt_success_rate", attempts ? double(attempts - failed_attempts) / double(attempts) : 0.0},
             {"mean_completion_ms", completed ? completion_ms / double(completed) : 0.0},
             {"p50_completion_ms", times.empty() ? 0.0 : times[times.size() / 2]},
             {"p99_completion_ms", times.empty() ? 0.0 : times[std::min(times.size() - 1, times.size() * 99 / 100)]},
             {"routing", st["routing"]},
             {"seconds", seconds}};
    std::cout << out.dump() << std::endl;
    caf::anon_send_exit(scheduler, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(pool, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(store_actor, caf::exit_reason::user_shutdown);
  }
  fs::remove_all(dir);
  return result;
}
