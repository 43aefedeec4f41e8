// Benchmark driver for scripts/bench.sh. Each mode prints one JSON line:
//   hub_bench inproc N DB_DIR        N echo tasks through scheduler, agents and SQLite
//   hub_bench caf_rr N               raw CAF request/response between two actors
//   hub_bench bare_http PORT         a bare cpp-httplib server answering a constant JSON body
//   hub_bench pending N DB_DIR       N pending tasks no agent matches: RSS per task
//   hub_bench seed N DB_DIR          writes N finished + pending tasks into a store (for restart_recovery)
//   hub_bench breaker_overhead N DB_DIR   the inproc workload with circuit breakers on, then off (3 rounds each)
//   hub_bench durable N DIR|URL     the inproc workload on SQLite (a dir) or PostgreSQL (a postgresql:// URL)
//   hub_bench raw_insert N DIR|URL  N task rows written straight through the store in batches of 1000 (no actors)
//   hub_bench latency N DIR|URL RATE   N tasks submitted one by one at RATE/s: enqueue -> start p50/p99
#include "actors/scheduler.hpp"
#include "config/config.hpp"
#include "actors/task_protocol.hpp"
#include "runtime/instrumented.hpp"
#include "runtime/introspection.hpp"
#include "runtime/actor_runtime.hpp"
#include "runtime/clock.hpp"
#include "runtime/process_stats.hpp"
#include "runtime/store/store.hpp"
#include "runtime/store/store_actor.hpp"

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <iostream>
#include <thread>

using namespace hub;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

// The node's default actor scheduler policy ([performance] scheduler_policy); BENCH_POLICY overrides it.
std::string scheduler_policy() {
  const char* p = std::getenv("BENCH_POLICY");
  return p && *p ? p : config::Config{}.performance.scheduler_policy;
}

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

runtime::TaskRecord echo_task(int i, const std::string& capability = "") {
  runtime::TaskRecord t;
  t.id = runtime::new_time_uuid();
  t.description = "bench " + std::to_string(i);
  t.type = "echo";
  t.payload_json = "{\"i\":" + std::to_string(i) + "}";
  t.max_attempts = 3;
  t.timeout_ms = 60000;
  if (!capability.empty()) t.required_capabilities = {{capability, 0.5}};
  t.created_at = t.updated_at = runtime::now_ms();
  return t;
}

// A directory means SQLite in it; a postgresql:// URL means that database.
std::unique_ptr<runtime::Store> open_bench_store(const std::string& dir_or_url) {
  bool pg = dir_or_url.rfind("postgresql://", 0) == 0;
  auto opened = runtime::open_store({pg ? dir_or_url : "sqlite://" + dir_or_url + "/hive.db", 30000,
                                     std::getenv("BENCH_SYNC_NORMAL") == nullptr, 16});
  if (opened.error) {
    std::cerr << "hub_bench: " << opened.error->message << "\n";
    std::exit(1);
  }
  return std::move(opened.store);
}

struct Hub {
  std::unique_ptr<runtime::Store> store;
  runtime::HubActorConfig cfg;
  caf::actor_system system;
  caf::actor store_actor, scheduler;

  Hub(const std::string& dir, int threads, std::vector<std::string> pool, int live, bool breakers = true)
      : store(open_bench_store(dir)),
        cfg(threads, scheduler_policy()),
        system(cfg) {
    store_actor = runtime::spawn_store_actor(system, *store);
    actors::SchedulerOptions options;
    options.node = "bench";
    options.default_pool = std::move(pool);
    options.max_live_tasks = live;
    options.max_concurrent_tasks = 256;
    options.default_agent_concurrency = 32;
    options.agent_options.breaker.enabled = breakers;
    scheduler = actors::spawn_scheduler(system, options, store_actor);
    caf::scoped_actor self{system};
    self->request(scheduler, caf::infinite, actors::boot_atom::value, store->agents(), store->unfinished_tasks(), true)
        .receive([](bool) {}, [](caf::error&) {});
  }
  ~Hub() {
    caf::anon_send_exit(scheduler, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(store_actor, caf::exit_reason::user_shutdown);
    scheduler = nullptr;
    store_actor = nullptr;
  }
  json status() {
    caf::scoped_actor self{system};
    json out;
    self->request(scheduler, caf::infinite, actors::status_atom::value)
        .receive([&](std::string& s) { out = json::parse(s); }, [](caf::error&) {});
    return out;
  }
  void submit_all(int n, const std::string& capability, int batch = 1000) {
    caf::scoped_actor self{system};
    for (int i = 0; i < n; i += batch) {
      std::vector<runtime::TaskRecord> tasks;
      for (int j = i; j < std::min(n, i + batch); ++j) tasks.push_back(echo_task(j, capability));
      bool ok = false;
      while (!ok) {
        self->request(scheduler, caf::infinite, actors::submit_atom::value, tasks)
            .receive([&](actors::SubmitReply&) { ok = true; },
                     [&](caf::error&) { std::this_thread::sleep_for(std::chrono::milliseconds(2)); });
      }
    }
  }
};

// Runs n echo tasks to completion; returns tasks per second.
double run_inproc(Hub& hub, int n) {
  auto start = Clock::now();
  std::thread submitter([&] { hub.submit_all(n, ""); });
  int64_t done = 0;
  while (done < n) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    done = hub.status()["finished_since_start"].value("completed", int64_t(0));
  }
  double secs = seconds_since(start);
  submitter.join();
  return n / secs;
}

int breaker_overhead(int n, const std::string& dir) {
  int threads = int(std::max(1u, std::thread::hardware_concurrency()));
  std::vector<double> on, off;
  for (int round = 0; round < 3; ++round) {
    for (bool breakers : {true, false}) {
      auto where = dir + "/" + (breakers ? "on" : "off") + std::to_string(round);
      std::filesystem::create_directories(where);
      Hub hub(where, threads, {"worker:general:8"}, 1'000'000, breakers);
      (breakers ? on : off).push_back(run_inproc(hub, n));
    }
  }
  std::sort(on.begin(), on.end());
  std::sort(off.begin(), off.end());
  double with = on[1], without = off[1];  // medians
  std::cout << json{{"figure", "breaker_overhead"}, {"tasks", n}, {"tasks_per_second_breakers_on", with},
                    {"tasks_per_second_breakers_off", without}, {"ratio", with / without}, {"rounds", 3}}
                   .dump()
            << std::endl;
  return 0;
}

int durable(int n, const std::string& where) {
  Hub hub(where, int(std::max(1u, std::thread::hardware_concurrency())), {"worker:general:8"}, 1'000'000);
  auto tps = run_inproc(hub, n);
  auto stats = hub.store->stats();
  std::cout << json{{"backend", hub.store->backend()}, {"tasks", n}, {"tasks_per_second", tps}, {"commits", stats.writes},
                    {"rows_per_commit", double(stats.rows_written) / double(std::max<int64_t>(1, stats.writes))}}
                   .dump()
            << std::endl;
  return 0;
}

int raw_insert(int n, const std::string& where) {
  auto store = open_bench_store(where);
  auto start = Clock::now();
  for (int i = 0; i < n; i += 1000) {
    runtime::WriteBatch batch;
    for (int j = i; j < std::min(n, i + 1000); ++j) batch.tasks.push_back(echo_task(j));
    if (auto err = store->write(batch)) {
      std::cerr << err->message << "\n";
      return 1;
    }
  }
  double secs = seconds_since(start);
  std::cout << json{{"backend", store->backend()}, {"rows", n}, {"batch", 1000}, {"rows_per_second", n / secs}}.dump() << std::endl;
  return 0;
}

int latency(int n, const std::string& where, double rate) {
  Hub hub(where, int(std::max(1u, std::thread::hardware_concurrency())), {"worker:general:8"}, 1'000'000);
  std::vector<std::string> ids;
  caf::scoped_actor self{hub.system};
  auto start = Clock::now();
  for (int i = 0; i < n; ++i) {
    std::this_thread::sleep_until(start + std::chrono::microseconds(int64_t(1e6 * i / rate)));
    auto t = echo_task(i);
    ids.push_back(t.id);
    self->send(hub.scheduler, actors::submit_atom::value, std::vector<runtime::TaskRecord>{t});
  }
  while (hub.status()["finished_since_start"].value("completed", int64_t(0)) < n)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  std::vector<double> waits;
  for (const auto& id : ids)
    if (auto t = hub.store->task(id)) waits.push_back(double(t->started_at - t->created_at));
  std::sort(waits.begin(), waits.end());
  auto at = [&](double q) { return waits.empty() ? 0.0 : waits[std::min(waits.size() - 1, size_t(q * double(waits.size())))]; };
  auto stats = hub.store->stats();
  std::cout << json{{"backend", hub.store->backend()}, {"tasks", n}, {"rate_per_second", rate}, {"p50_ms", at(0.50)},
                    {"p99_ms", at(0.99)}, {"max_ms", waits.empty() ? 0.0 : waits.back()}, {"commits", stats.writes},
                    {"mean_commit_ms", stats.total_commit_ms / double(std::max<int64_t>(1, stats.writes))},
                    {"rows_per_commit", double(stats.rows_written) / double(std::max<int64_t>(1, stats.writes))}}
                   .dump()
            << std::endl;
  return 0;
}

// traced: the scheduler (the busiest actor) is traced the way GET .../trace does it (every
// message offered, at most 200 recorded per second, a reader draining the ring every 100 ms).
int inproc(int n, const std::string& dir, bool traced) {
  Hub hub(dir, int(std::max(1u, std::thread::hardware_concurrency())), {"worker:general:8"}, 1'000'000);
  std::atomic<bool> tracing{traced};
  uint64_t recorded = 0;
  auto probe = runtime::introspection::Registry::of(hub.system).find(hub.scheduler.id());
  std::thread reader;
  if (traced) {
    probe->start_trace(1, 200);
    reader = std::thread([&] {
      uint64_t after = 0, lost = 0;
      while (tracing) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        for (const auto& e : probe->trace_after(after, 500, &lost)) {
          after = e.seq;
          recorded += json{{"seq", e.seq}, {"type", e.type}, {"sender", e.sender}, {"size", e.size}}.dump().size() > 0;
        }
      }
    });
  }
  auto start = Clock::now();
  std::thread submitter([&] { hub.submit_all(n, ""); });
  int64_t done = 0;
  while (done < n) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    auto st = hub.status();
    done = st["finished_since_start"].value("completed", int64_t(0));
  }
  double secs = seconds_since(start);
  submitter.join();
  if (traced) {
    tracing = false;
    reader.join();
    probe->stop_trace();
  }
  auto stats = hub.store->stats();
  std::cout << json{{"figure", "tasks_inproc"}, {"traced", traced}, {"trace_events_read", recorded}, {"tasks", n}, {"seconds", secs}, {"tasks_per_second", n / secs},
                    {"commits", stats.writes}, {"commit_seconds", stats.total_commit_ms / 1000}, {"rows_per_commit", double(stats.rows_written) / double(std::max<int64_t>(1, stats.writes))}}.dump()
            << std::endl;
  return 0;
}

using ping_atom = caf::atom_constant<caf::atom("ping")>;

struct PongState {};

// instrumented: the answering actor is a runtime::Instrumented one (registry entry, counters,
// handling time, mailbox size per message), as every actor of the node is.
int caf_rr(int n, bool instrumented) {
  runtime::HubActorConfig cfg(int(std::max(1u, std::thread::hardware_concurrency())), scheduler_policy());
  caf::actor_system system{cfg};
  auto pong = instrumented ? system.spawn([](runtime::Instrumented<PongState>* self) -> caf::behavior {
    self->describe("pong", "");
    return {[](ping_atom, int64_t x) { return x + 1; }};
  })
                           : system.spawn([]() -> caf::behavior { return {[](ping_atom, int64_t x) { return x + 1; }}; });
  auto start = Clock::now();
  caf::scoped_actor self{system};
  auto driver = system.spawn([=](caf::event_based_actor* me) -> caf::behavior {
    auto step = std::make_shared<std::function<void(int64_t)>>();
    *step = [=](int64_t x) {
      if (x >= n) {
        me->quit();
        return;
      }
      me->request(pong, caf::infinite, ping_atom::value, x).then([=](int64_t y) { (*step)(y); });
    };
    (*step)(0);
    return {[](int) {}};
  });
  self->wait_for(driver);
  double secs = seconds_since(start);
  caf::anon_send_exit(pong, caf::exit_reason::user_shutdown);
  std::cout << json{{"figure", "caf_request_response"}, {"instrumented", instrumented}, {"requests", n}, {"seconds", secs},
                    {"requests_per_second", n / secs}}
                   .dump()
            << std::endl;
  return 0;
}

int bare_http(int port) {
  httplib::Server server;
  // Same threads and socket options as the gateway under bench.
  server.new_task_queue = [] { return new httplib::ThreadPool(64); };
  server.set_socket_options([](int sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof(yes));
  });
  const std::string body = R"({"success":true,"data":{"id":"00000000-0000-0000-0000-000000000000","status":"pending"}})";
  server.Post("/api/tasks", [&](const httplib::Request&, httplib::Response& res) { res.set_content(body, "application/json"); });
  server.listen("127.0.0.1", port);
  return 0;
}

int pending(int n, const std::string& dir) {
  Hub hub(dir, 2, {"worker:general:1"}, n + 1000);
  auto before = runtime::read_process_stats().rss_bytes;
  auto start = Clock::now();
  hub.submit_all(n, "nobody-has-this");
  while (hub.status().value("live_tasks", 0) < n) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  std::this_thread::sleep_for(std::chrono::seconds(2));
  auto after = runtime::read_process_stats().rss_bytes;
  std::cout << json{{"figure", "pending_memory"}, {"tasks", n}, {"seconds_to_accept", seconds_since(start)},
                    {"rss_before_bytes", before}, {"rss_after_bytes", after},
                    {"bytes_per_task", double(after - before) / n}}
                   .dump()
            << std::endl;
  // Measured; skip tearing down a million actors.
  std::quick_exit(0);
}

int seed(int n, const std::string& dir) {
  auto opened = runtime::open_store({"sqlite://" + dir + "/data/hive.db", 30000, false});
  if (opened.error) {
    std::cerr << opened.error->message << "\n";
    return 1;
  }
  for (int i = 0; i < n; i += 20000) {
    runtime::WriteBatch batch;
    for (int j = i; j < std::min(n, i + 20000); ++j) {
      auto t = echo_task(j, j % 10 == 0 ? "nobody-has-this" : "");
      if (j % 10 != 0) t.status = "completed", t.result_json = t.payload_json, t.attempts = 1, t.completed_at = t.created_at;
      batch.tasks.push_back(std::move(t));
    }
    if (auto err = opened.store->write(batch)) {
      std::cerr << err->message << "\n";
      return 1;
    }
  }
  std::cout << json{{"seeded", n}, {"pending", n / 10}}.dump() << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: hub_bench inproc|inproc_traced|caf_rr|caf_rr_instrumented|bare_http|pending|seed|breaker_overhead|durable|raw_insert|latency N [DIR|URL] [RATE]\n";
    return 2;
  }
  std::string mode = argv[1];
  int n = std::atoi(argv[2]);
  std::string dir = argc > 3 ? argv[3] : "/tmp";
  if (mode == "inproc") return inproc(n, dir, false);
  if (mode == "inproc_traced") return inproc(n, dir, true);
  if (mode == "caf_rr") return caf_rr(n, false);
  if (mode == "caf_rr_instrumented") return caf_rr(n, true);
  if (mode == "bare_http") return bare_http(n);
  if (mode == "pending") return pending(n, dir);
  if (mode == "seed") return seed(n, dir);
  if (mode == "breaker_overhead") return breaker_overhead(n, dir);
  if (mode == "durable") return durable(n, dir);
  if (mode == "raw_insert") return raw_insert(n, dir);
  if (mode == "latency") return latency(n, dir, argc > 4 ? std::atof(argv[4]) : 1000.0);
  std::cerr << "unknown mode " << mode << "\n";
  return 2;
}
