// A node's actors (the supervision tree, scheduler, agents, store actor) on a real SQLite
// store in a temp dir, for the actor tests. Header-only; one per test module.
#pragma once

#include "actors/agent.hpp"
#include "actors/scheduler.hpp"
#include "actors/task.hpp"
#include "actors/task_protocol.hpp"
#include "runtime/actor_runtime.hpp"
#include "runtime/clock.hpp"
#include "runtime/store/store.hpp"
#include "runtime/store/store_actor.hpp"
#include "tests/test_database.hpp"

#include <caf/actor_system.hpp>
#include <caf/scoped_actor.hpp>

#include <filesystem>
#include <functional>
#include <thread>

using namespace hub;
using namespace hub::actors;
using runtime::AgentRecord;
using runtime::TaskRecord;
namespace fs = std::filesystem;

namespace {

// A node's actors on a real SQLite store in a temp dir.
struct Node {
  fs::path dir = fs::temp_directory_path() / ("hub-actors-test-" + runtime::new_uuid());
  std::unique_ptr<runtime::Store> store;
  runtime::HubActorConfig cfg{2, "stealing"};
  std::unique_ptr<caf::actor_system> system;
  caf::actor store_actor, scheduler;

  NodeActors actors;

  explicit Node(std::vector<std::string> pool = {"worker:general:2"}, std::vector<TaskRecord> unfinished = {},
                std::vector<AgentRecord> agents = {},
                const std::function<void(SchedulerOptions&, SupervisionOptions&)>& configure = {}) {
    auto opened = runtime::open_store({test::fresh_database_url(dir), 5000, false});
    BOOST_REQUIRE(!opened.error);
    store = std::move(opened.store);
    if (!unfinished.empty()) BOOST_REQUIRE(!store->write({unfinished, {}, {}, {}, {}}));
    system = std::make_unique<caf::actor_system>(cfg);
    store_actor = runtime::spawn_store_actor(*system, *store);
    SchedulerOptions options;
    options.node = "test";
    options.default_pool = std::move(pool);
    options.max_live_tasks = 1000;
    options.default_agent_concurrency = 1;  // one slot each, so queues form and priorities show
    SupervisionOptions supervision;
    if (configure) configure(options, supervision);
    actors = spawn_node_actors(*system, options, supervision, store_actor);
    scheduler = actors.scheduler;
    caf::scoped_actor self{*system};
    bool ok = false;
    self->request(scheduler, std::chrono::seconds(10), boot_atom::value, std::move(agents), store->unfinished_tasks(), true)
        .receive([&](bool) { ok = true; }, [&](caf::error&) {});
    BOOST_REQUIRE(ok);
  }
  ~Node() {
    caf::anon_send_exit(actors.root, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(store_actor, caf::exit_reason::user_shutdown);
    // A detached actor's thread ends only once no handle to it is left.
    actors = NodeActors{};
    scheduler = nullptr;
    store_actor = nullptr;
    system.reset();
    store.reset();
    fs::remove_all(dir);
  }

  std::vector<TaskRecord> submit(std::vector<TaskRecord> tasks) {
    caf::scoped_actor self{*system};
    std::vector<TaskRecord> out;
    self->request(scheduler, std::chrono::seconds(10), submit_atom::value, std::move(tasks))
        .receive([&](SubmitReply& r) { out = r.tasks; }, [&](caf::error& e) { BOOST_FAIL(system->render(e)); });
    return out;
  }
  template <class T, class... Ts>
  std::optional<T> ask(Ts... xs) {
    caf::scoped_actor self{*system};
    std::optional<T> out;
    self->request(scheduler, std::chrono::seconds(10), xs...).receive([&](T& v) { out = v; }, [&](caf::error&) {});
    return out;
  }
  template <class T, class... Ts>
  std::optional<T> ask_actor(const caf::actor& whom, Ts... xs) {
    caf::scoped_actor self{*system};
    std::optional<T> out;
    self->request(whom, std::chrono::seconds(10), xs...).receive([&](T& v) { out = v; }, [&](caf::error&) {});
    return out;
  }
  // Waits until every task is terminal; returns how many are not.
  size_t await_terminal(const std::vector<std::string>& ids, int ms) {
    size_t open = ids.size();
    for (int i = 0; i < ms / 50 && open > 0; ++i) {
      open = 0;
      for (const auto& id : ids) {
        auto t = store->task(id);
        if (!t || !runtime::is_terminal(t->status)) ++open;
      }
      if (open > 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return open;
  }
  TaskRecord await_status(const std::string& id, const std::string& status, int ms = 8000) {
    for (int i = 0; i < ms / 10; ++i) {
      auto t = store->task(id);
      if (t && t->status == status) return *t;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    auto t = store->task(id);
    std::string history;
    for (const auto& e : store->task_events(id)) history += " -> " + e.to + " (" + e.reason + ")";
    BOOST_FAIL("task " << id << " is " << (t ? t->status : "missing") << ", wanted " << status << "; history:" << history);
    return {};
  }
};

TaskRecord task(const std::string& type, const std::string& payload = "null", int max_attempts = 3, int64_t timeout_ms = 5000) {
  TaskRecord t;
  t.id = runtime::new_uuid();
  t.description = type;
  t.type = type;
  t.payload_json = payload;
  t.max_attempts = max_attempts;
  t.timeout_ms = timeout_ms;
  t.created_at = t.updated_at = runtime::now_ms();
  return t;
}

[[maybe_unused]] std::vector<std::string> path_of(runtime::Store& store, const std::string& id) {
  std::vector<std::string> out;
  for (const auto& e : store.task_events(id)) out.push_back(e.to);
  return out;
}

}  // namespace
