#define BOOST_TEST_MODULE store
#include <boost/test/unit_test.hpp>

#include "runtime/clock.hpp"
#include "runtime/store/store.hpp"
#include "tests/test_database.hpp"

#include <filesystem>
#include <set>
#include <thread>
#include <nlohmann/json.hpp>
#include <sqlite3.h>

using namespace hub::runtime;
namespace fs = std::filesystem;

namespace {

struct Fixture {
  fs::path dir = fs::temp_directory_path() / ("hub-store-test-" + new_uuid());
  std::string url = hub::test::fresh_database_url(dir);
  std::unique_ptr<Store> store;
  Fixture() {
    auto opened = open_store({url, 5000, false});
    BOOST_REQUIRE_MESSAGE(!opened.error, (opened.error ? opened.error->message : ""));
    store = std::move(opened.store);
    BOOST_TEST_MESSAGE("backend: " << store->backend());
  }
  ~Fixture() {
    store.reset();
    fs::remove_all(dir);
  }
};

TaskRecord make_task(const std::string& status = "pending", const std::string& key = "") {
  TaskRecord t;
  t.id = new_uuid();
  t.description = "d";
  t.type = "echo";
  t.status = status;
  t.idempotency_key = key;
  t.required_capabilities = {{"nlp", 0.5}};
  t.payload_json = R"({"x":1})";
  t.created_at = t.updated_at = now_ms();
  return t;
}

}  // namespace

BOOST_FIXTURE_TEST_CASE(migrations_create_the_guide_schema_and_reopen_cleanly, Fixture) {
  store.reset();
  auto again = open_store({url, 5000, false});  // second open: nothing left to migrate
  BOOST_REQUIRE(!again.error);
  if (hub::test::on_postgres()) return;  // the SQLite file itself is inspected below
  sqlite3* db = nullptr;
  BOOST_REQUIRE(sqlite3_open((dir / "hive.db").c_str(), &db) == SQLITE_OK);
  sqlite3_stmt* s = nullptr;
  sqlite3_prepare_v2(db, "SELECT name FROM sqlite_master WHERE name = 'idx_tasks_status_created'", -1, &s, nullptr);
  BOOST_TEST(sqlite3_step(s) == SQLITE_ROW);
  sqlite3_finalize(s);
  sqlite3_prepare_v2(db, "SELECT MAX(version) FROM schema_migrations", -1, &s, nullptr);
  BOOST_TEST(sqlite3_step(s) == SQLITE_ROW);
  BOOST_TEST(sqlite3_column_int(s, 0) == 8);
  sqlite3_finalize(s);
  // The lease index holds tasks that have a lease, and says so without an IN list.
  sqlite3_prepare_v2(db, "SELECT sql FROM sqlite_master WHERE name = 'idx_tasks_lease'", -1, &s, nullptr);
  BOOST_REQUIRE(sqlite3_step(s) == SQLITE_ROW);
  BOOST_TEST(std::string(reinterpret_cast<const char*>(sqlite3_column_text(s, 0))).find("lease_expires_at IS NOT NULL") != std::string::npos);
  sqlite3_finalize(s);
  sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &s, nullptr);
  sqlite3_step(s);
  BOOST_TEST(std::string(reinterpret_cast<const char*>(sqlite3_column_text(s, 0))) == "wal");
  sqlite3_finalize(s);
  sqlite3_close(db);
}

BOOST_FIXTURE_TEST_CASE(a_batch_round_trips_tasks_events_and_agents, Fixture) {
  auto t = make_task();
  AgentRecord a;
  a.id = new_uuid();
  a.name = "w";
  a.type = "worker";
  a.state = "idle";
  a.capabilities = {{"general", 0.7, 0.2}};
  a.created_at = a.updated_at = now_ms();
  WriteBatch b;
  b.tasks.push_back(t);
  b.events.push_back({t.id, "", "pending", now_ms(), 0, "submitted"});
  b.agents.push_back(a);
  BOOST_REQUIRE(!store->write(b));
  auto back = store->task(t.id);
  BOOST_REQUIRE(back);
  // jsonb keeps the value, not the spelling: compare as JSON.
  BOOST_TEST(nlohmann::json::parse(back->payload_json) == nlohmann::json::parse(t.payload_json));
  BOOST_TEST(back->required_capabilities.at(0).name == "nlp");
  BOOST_TEST(back->created_at == t.created_at);
  BOOST_TEST(store->task_events(t.id).size() == 1u);
  auto agents = store->agents();
  BOOST_REQUIRE(agents.size() == 1u);
  BOOST_TEST(agents[0].capabilities.at(0).proficiency == 0.7);
  BOOST_TEST(store->stats().writes == 1);
}

BOOST_FIXTURE_TEST_CASE(an_upsert_moves_status_and_keeps_the_definition, Fixture) {
  auto t = make_task();
  BOOST_REQUIRE(!store->write({{t}, {}, {}, {}, {}}));
  t.status = "completed";
  t.result_json = "42";
  t.completed_at = now_ms();
  BOOST_REQUIRE(!store->write({{t}, {}, {}, {}, {}}));
  auto back = store->task(t.id);
  BOOST_TEST(back->status == "completed");
  BOOST_TEST(back->result_json == "42");
  BOOST_TEST(store->unfinished_tasks().empty());
  BOOST_TEST(store->task_counts_by_status().at("completed") == 1);
}

BOOST_FIXTURE_TEST_CASE(a_failing_batch_writes_nothing, Fixture) {
  auto first = make_task("pending", "same-key");
  BOOST_REQUIRE(!store->write({{first}, {}, {}, {}, {}}));
  auto other = make_task();
  auto clash = make_task("pending", "same-key");
  auto err = store->write({{other, clash}, {}, {}, {}, {}});
  BOOST_TEST(err.has_value());
  BOOST_TEST(!store->task(other.id));
  BOOST_TEST(*store->task_id_by_idempotency_key("same-key") == first.id);
  BOOST_TEST(store->stats().write_errors == 1);
}

BOOST_FIXTURE_TEST_CASE(listing_filters_pages_and_counts, Fixture) {
  WriteBatch b;
  for (int i = 0; i < 30; ++i) b.tasks.push_back(make_task(i % 3 == 0 ? "failed" : "pending"));
  BOOST_REQUIRE(!store->write(b));
  TaskFilter f;
  f.status = "failed";
  f.limit = 4;
  auto page = store->tasks(f);
  BOOST_TEST(page.total == 10);
  BOOST_TEST(page.tasks.size() == 4u);
  BOOST_TEST(page.tasks[0].id == b.tasks[27].id);  // newest first
  BOOST_TEST(store->unfinished_tasks().size() == 20u);
}

BOOST_AUTO_TEST_CASE(probing_never_creates_and_reports_unreachable_databases) {
  std::string detail;
  auto path = fs::temp_directory_path() / ("hub-probe-" + new_uuid() + ".db");
  BOOST_TEST(probe_database("sqlite://" + path.string(), 1, detail).empty());
  BOOST_TEST(!fs::exists(path));
  BOOST_TEST(detail.find("will be created") != std::string::npos);
  auto why = probe_database("postgresql://postgres@127.0.0.1:1/none", 1, detail);
  BOOST_TEST(why.find("PostgreSQL is not reachable") != std::string::npos);
}

BOOST_FIXTURE_TEST_CASE(leases_keep_tasks_with_their_node_until_it_stops_renewing, Fixture) {
  WriteBatch b;
  for (int i = 0; i < 3; ++i) {
    auto t = make_task();
    t.node = "node-a";
    b.tasks.push_back(t);
  }
  auto done = make_task("completed");
  done.node = "node-a";
  b.tasks.push_back(done);
  BOOST_REQUIRE(!store->write(b));
  auto now = now_ms();
  // A live lease: another node takes nothing; the owner itself does at boot.
  BOOST_TEST(store->claim_tasks("node-b", now, now + 30000, 100, false).empty());
  BOOST_TEST(store->claim_tasks("node-a", now, now + 30000, 100, true).size() == 3u);
  // Renewed, then left to expire: node-b takes the unfinished ones (never a finished one).
  BOOST_REQUIRE(!store->renew_leases("node-a", now + 1000));
  BOOST_TEST(store->claim_tasks("node-b", now + 500, now + 30000, 100, false).empty());
  auto claimed = store->claim_tasks("node-b", now + 2000, now + 30000, 100, false);
  BOOST_REQUIRE(claimed.size() == 3u);
  BOOST_TEST(claimed[0].node == "node-b");
  // Fencing: node-a's late write to a task it lost is skipped; node-b's lands.
  auto stale = b.tasks[0];
  stale.status = "completed";
  stale.updated_at = now_ms();
  BOOST_REQUIRE(!store->write({{}, {stale}, {}, {}, {}}));
  BOOST_TEST(store->task(stale.id)->status == "pending");
  auto mine = claimed[0];
  mine.status = "running";
  BOOST_REQUIRE(!store->write({{}, {mine}, {}, {}, {}}));
  BOOST_TEST(store->task(mine.id)->status == "running");
}

BOOST_FIXTURE_TEST_CASE(a_tasks_events_travel_in_its_row_in_order_and_fenced, Fixture) {
  auto t = make_task();
  t.node = "node-a";
  auto at = now_ms();
  WriteBatch b;
  b.tasks.push_back(t);
  b.events.push_back({t.id, "", "pending", at, 0, "submitted"});
  BOOST_REQUIRE(!store->write(b));
  auto running = t;
  running.status = "running", running.attempts = 1, running.assigned_agent = "agent-1";
  WriteBatch c;  // a state update with two events: one row
  c.task_updates.push_back(task_state(running));
  c.events.push_back({t.id, "pending", "assigned", at + 1, 1, "agent agent-1"});
  c.events.push_back({t.id, "assigned", "running", at + 2, 1, "quote \" and\nnewline"});
  BOOST_REQUIRE(!store->write(c));
  WriteBatch d;  // events alone (no state in the batch) land too
  d.events.push_back({t.id, "running", "running", at + 3, 1, "note"});
  BOOST_REQUIRE(!store->write(d));
  BOOST_TEST(store->stats().rows_written == 3);
  auto events = store->task_events(t.id);
  BOOST_REQUIRE(events.size() == 4u);
  BOOST_TEST(events[0].to == "pending");
  BOOST_TEST(events[1].reason == "agent agent-1");
  BOOST_TEST(events[2].reason == "quote \" and\nnewline");
  BOOST_TEST(events[2].at == at + 2);
  BOOST_TEST(events[3].attempt == 1);
  // Another node's events for a task whose lease node-a holds are not written.
  store->set_node("node-b");
  WriteBatch e;
  e.events.push_back({t.id, "running", "completed", at + 4, 1, "late"});
  BOOST_REQUIRE(!store->write(e));
  BOOST_TEST(store->task_events(t.id).size() == 4u);
}

BOOST_FIXTURE_TEST_CASE(concurrent_claimers_never_take_the_same_task, Fixture) {
  WriteBatch b;
  for (int i = 0; i < 200; ++i) {
    auto t = make_task();
    t.node = "gone";
    b.tasks.push_back(t);
  }
  BOOST_REQUIRE(!store->write(b));
  auto later = now_ms() + store->lease_ms() + 1000;
  auto other = open_store({url, 5000, false});
  BOOST_REQUIRE(!other.error);
  std::vector<TaskRecord> first, second;
  std::thread a([&] {
    for (int i = 0; i < 10; ++i) {
      auto got = store->claim_tasks("claimer-1", later, later + 60000, 15, false);
      first.insert(first.end(), got.begin(), got.end());
    }
  });
  std::thread c([&] {
    for (int i = 0; i < 10; ++i) {
      auto got = other.store->claim_tasks("claimer-2", later, later + 60000, 15, false);
      second.insert(second.end(), got.begin(), got.end());
    }
  });
  a.join();
  c.join();
  std::set<std::string> ids;
  for (const auto& t : first) ids.insert(t.id);
  for (const auto& t : second) BOOST_TEST(!ids.count(t.id));
  BOOST_TEST(first.size() + second.size() == 200u);
}

BOOST_FIXTURE_TEST_CASE(models_round_trip_their_bytes_exactly_and_list_without_them, Fixture) {
  ModelRecord m;
  m.name = "spirals";
  m.spec_json = R"({"layers":[2,8,2]})";
  m.metadata_json = R"({"classes":["a","b"]})";
  m.metrics_json = R"({"accuracy":0.99})";
  for (int i = 0; i < 1000; ++i) m.data.push_back(char(i * 37 % 256));  // every byte value, zeros included
  m.created_at = m.updated_at = 1700000000000;
  BOOST_REQUIRE(!store->put_model(m));
  auto back = store->model("spirals");
  BOOST_REQUIRE(back);
  BOOST_TEST(back->data == m.data);
  BOOST_TEST(back->size_bytes == 1000);
  BOOST_TEST(nlohmann::json::parse(back->metadata_json)["classes"][1] == "b");
  m.data = "replaced";
  m.updated_at += 1000;
  BOOST_REQUIRE(!store->put_model(m));
  auto listed = store->models();
  BOOST_REQUIRE_EQUAL(listed.size(), 1u);
  BOOST_TEST(listed[0].data.empty());
  BOOST_TEST(listed[0].size_bytes == 8);
  BOOST_TEST(store->model("spirals")->data == "replaced");
  BOOST_TEST(!store->model("nope"));
}

BOOST_FIXTURE_TEST_CASE(a_task_keeps_the_capabilities_inferred_for_it, Fixture) {
  auto t = make_task();
  t.inferred_json = R"({"capabilities":["translation"],"confidence":0.93,"applied":true})";
  WriteBatch batch;
  batch.tasks.push_back(t);
  BOOST_REQUIRE(!store->write(batch));
  auto back = store->task(t.id);
  BOOST_REQUIRE(back);
  BOOST_TEST(nlohmann::json::parse(back->inferred_json)["capabilities"][0] == "translation");
  BOOST_TEST(!store->task(make_task().id).has_value());
  auto plain = make_task();
  WriteBatch second;
  second.tasks.push_back(plain);
  BOOST_REQUIRE(!store->write(second));
  BOOST_TEST(store->task(plain.id)->inferred_json.empty());
}

BOOST_FIXTURE_TEST_CASE(a_commit_folds_updates_into_new_tasks_and_keeps_only_the_last_update, Fixture) {
  auto stored = make_task();
  BOOST_REQUIRE(!store->write(WriteBatch{{stored}, {}, {}, {}, {}}));
  auto fresh = make_task();
  auto state = [](TaskRecord t, const std::string& status, const std::string& result) {
    t.status = status;
    t.attempts = 1;
    t.assigned_agent = "agent-1";
    t.result_json = result;
    t.updated_at += 5;
    return task_state(t);
  };
  WriteBatch b;
  b.tasks.push_back(fresh);
  b.task_updates.push_back(state(fresh, "running", ""));
  b.task_updates.push_back(state(stored, "running", ""));
  b.task_updates.push_back(state(fresh, "completed", R"({"done":true})"));
  b.task_updates.push_back(state(stored, "failed", ""));
  b.events.push_back({fresh.id, "", "pending", now_ms(), 0, "submitted"});
  coalesce(b);
  BOOST_REQUIRE(b.tasks.size() == 1u);
  BOOST_TEST(b.tasks[0].status == "completed");  // the last update, folded into the insert
  BOOST_TEST(b.tasks[0].result_json == R"({"done":true})");
  BOOST_TEST(b.tasks[0].description == "d");  // what the insert alone carries is kept
  BOOST_REQUIRE(b.task_updates.size() == 1u);  // the stored task's last update only
  BOOST_TEST(b.task_updates[0].id == stored.id);
  BOOST_TEST(b.task_updates[0].status == "failed");
  BOOST_TEST(b.events.size() == 1u);  // events are never folded
  BOOST_REQUIRE(!store->write(b));
  BOOST_TEST(store->task(fresh.id)->status == "completed");
  BOOST_TEST(store->task(fresh.id)->assigned_agent == "agent-1");
  BOOST_TEST(store->task(stored.id)->status == "failed");

  // The same task inserted twice in one batch: the later insert wins, so it takes the update.
  auto twice = make_task();
  WriteBatch d;
  d.tasks.push_back(twice);
  d.tasks.push_back(twice);
  d.task_updates.push_back(state(twice, "assigned", ""));
  coalesce(d);
  BOOST_TEST(d.tasks[0].status == "pending");
  BOOST_TEST(d.tasks[1].status == "assigned");
  BOOST_TEST(d.task_updates.empty());
}
