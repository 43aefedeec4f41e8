#define BOOST_TEST_MODULE actors
#include <boost/test/unit_test.hpp>

#include "node_fixture.hpp"

#include <nlohmann/json.hpp>

BOOST_AUTO_TEST_CASE(fitness_requires_every_capability_at_its_minimum) {
  AgentRecord a;
  a.capabilities = {{"nlp", 0.8, 0.1}, {"vision", 0.4, 0.1}};
  BOOST_TEST(fitness(a, {}) == 0.5);
  BOOST_TEST(fitness(a, {{"nlp", 0.5}}) == 0.8);
  BOOST_TEST(fitness(a, {{"nlp", 0.5}, {"vision", 0.5}}) < 0);
  BOOST_TEST(fitness(a, {{"audio", 0}}) < 0);
  BOOST_TEST(std::abs(fitness(a, {{"nlp", 0}, {"vision", 0.4}}) - 0.6) < 1e-9);
}

BOOST_AUTO_TEST_CASE(backoff_doubles_from_one_second_with_jitter_and_a_cap) {
  BOOST_TEST(retry_backoff_ms(1, 0.0) == 900);
  BOOST_TEST(retry_backoff_ms(1, 0.9999) >= 1099);
  BOOST_TEST(retry_backoff_ms(2, 0.5) == 2000);
  BOOST_TEST(retry_backoff_ms(3, 0.5) == 4000);
  BOOST_TEST(retry_backoff_ms(20, 0.5) == 60000);
  BOOST_TEST(retry_backoff_ms(20, 0.9999) <= 66000);
}

BOOST_AUTO_TEST_CASE(learning_moves_proficiency_and_clamps) {
  BOOST_TEST(std::abs(learned_proficiency(0.5, 0.1, true) - 0.51) < 1e-12);
  BOOST_TEST(std::abs(learned_proficiency(0.5, 0.1, false) - 0.495) < 1e-12);
  BOOST_TEST(learned_proficiency(0.999, 1.0, true) == 1.0);
  BOOST_TEST(learned_proficiency(0.01, 1.0, false) == 0.0);
}

BOOST_AUTO_TEST_CASE(hash_is_real_sha256) {
  BOOST_TEST(sha256_rounds("abc", 1) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  BOOST_TEST(sha256_rounds("abc", 2) != sha256_rounds("abc", 1));
}

BOOST_AUTO_TEST_CASE(a_task_walks_the_state_machine_and_every_step_is_stored) {
  Node node;
  auto t = node.submit({task("echo", R"({"x":41})")}).at(0);
  auto done = node.await_status(t.id, "completed");
  BOOST_TEST(nlohmann::json::parse(done.result_json) == nlohmann::json::parse(R"({"x":41})"));  // jsonb respells
  BOOST_TEST(done.attempts == 1);
  BOOST_TEST(!done.assigned_agent.empty());
  BOOST_TEST((path_of(*node.store, t.id) == std::vector<std::string>{"pending", "assigned", "running", "completed"}));
}

BOOST_AUTO_TEST_CASE(failures_are_retried_with_backoff_then_fail) {
  Node node;
  auto t = node.submit({task("fail", R"({"message":"boom"})", 2)}).at(0);
  auto done = node.await_status(t.id, "failed", 10000);
  BOOST_TEST(done.attempts == 2);
  BOOST_TEST(done.error_message == "boom");
  auto events = node.store->task_events(t.id);
  BOOST_TEST(events.size() == 7u);  // pending assigned running pending assigned running failed
  BOOST_TEST(events[3].reason.find("retry in") != std::string::npos);
  BOOST_TEST(events[4].at - events[3].at >= 850);
}

BOOST_AUTO_TEST_CASE(an_attempt_over_its_timeout_fails_with_timeout) {
  Node node;
  auto t = node.submit({task("sleep", R"({"ms":3000})", 1, 100)}).at(0);
  auto done = node.await_status(t.id, "failed");
  BOOST_TEST(done.error_type == "timeout");
}

BOOST_AUTO_TEST_CASE(a_long_timeout_is_kept_by_the_scheduler_watchdog_within_a_second) {
  // Timeouts of kWatchedTimeoutMs and more are not CAF request timeouts: the scheduler's tick
  // tells the task it is overdue. It must still fail on time, and only once.
  Node node;
  auto t = node.submit({task("sleep", R"({"ms":30000})", 1, kWatchedTimeoutMs)}).at(0);
  auto done = node.await_status(t.id, "failed", 15000);
  BOOST_TEST(done.error_type == "timeout");
  BOOST_TEST(done.attempts == 1);
  BOOST_REQUIRE(done.started_at > 0);
  auto late = done.completed_at - done.started_at;
  BOOST_TEST(late >= kWatchedTimeoutMs);
  BOOST_TEST(late <= kWatchedTimeoutMs + 2000);  // one tick, and some slack for a busy machine
  // A long timeout that is not reached does not fire.
  auto quick = node.submit({task("sleep", R"({"ms":200})", 1, 60000)}).at(0);
  BOOST_TEST(node.await_status(quick.id, "completed", 10000).status == "completed");
}

BOOST_AUTO_TEST_CASE(a_running_task_can_be_cancelled) {
  Node node;
  auto t = node.submit({task("sleep", R"({"ms":20000})")}).at(0);
  node.await_status(t.id, "running");
  auto r = node.ask<TaskRecord>(cancel_atom::value, t.id);
  BOOST_REQUIRE(r);
  BOOST_TEST(r->status == "cancelled");
  BOOST_TEST(node.await_status(t.id, "cancelled").error_type == "cancelled");
  // The agent's slot is free again: another task runs.
  auto next = node.submit({task("echo")}).at(0);
  node.await_status(next.id, "completed");
}

BOOST_AUTO_TEST_CASE(idempotency_keys_collapse_duplicates) {
  Node node;
  auto a = task("sleep", R"({"ms":500})");
  a.idempotency_key = "k1";
  auto b = a;
  b.id = runtime::new_uuid();
  auto reply = node.submit({a, b});
  BOOST_TEST(reply.size() == 2u);
  BOOST_TEST(reply[1].id == a.id);
  auto later = a;
  later.id = runtime::new_uuid();
  BOOST_TEST(node.submit({later}).at(0).id == a.id);  // still live: the scheduler knows the key
}

BOOST_AUTO_TEST_CASE(an_unmatchable_task_waits_visibly_until_an_agent_fits) {
  Node node;
  auto t = task("echo");
  t.required_capabilities = {{"quantum", 0.5}};
  t = node.submit({t}).at(0);
  for (int i = 0; i < 200 && node.store->task(t.id)->error_type.empty(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  auto waiting = node.store->task(t.id);
  BOOST_TEST(waiting->status == "pending");
  BOOST_TEST(waiting->error_type == "no_matching_agent");
  AgentRecord a;
  a.name = "q";
  a.type = "specialist";
  a.capabilities = {{"quantum", 0.9, 0.1}};
  auto created = node.ask<AgentRecord>(create_atom::value, a);
  BOOST_REQUIRE(created);
  auto done = node.await_status(t.id, "completed");
  BOOST_TEST(done.assigned_agent == created->id);
  BOOST_TEST(done.error_type.empty());
}

BOOST_AUTO_TEST_CASE(critical_tasks_overtake_queued_low_ones) {
  Node node({"worker:prio:1"});
  auto hold = node.submit({task("sleep", R"({"ms":400})")}).at(0);
  node.await_status(hold.id, "running");
  std::vector<TaskRecord> lows;
  for (int i = 0; i < 3; ++i) {
    auto low = task("echo");
    low.priority = "low";
    lows.push_back(node.submit({low}).at(0));
  }
  auto crit = task("echo");
  crit.priority = "critical";
  crit = node.submit({crit}).at(0);
  auto c = node.await_status(crit.id, "completed");
  for (const auto& low : lows) BOOST_TEST(node.await_status(low.id, "completed").completed_at >= c.completed_at);
}

BOOST_AUTO_TEST_CASE(an_interrupted_attempt_counts_and_is_retried_after_restart) {
  auto t = task("echo");
  t.status = "running";
  t.attempts = 1;
  t.assigned_agent = "gone";
  auto spent = task("echo", "null", 1);
  spent.status = "running";
  spent.attempts = 1;
  Node node({"worker:general:1"}, {t, spent});
  auto done = node.await_status(t.id, "completed");
  BOOST_TEST(done.attempts == 2);
  auto failed = node.await_status(spent.id, "failed");
  BOOST_TEST(failed.error_type == "crashed");
  auto events = node.store->task_events(t.id);
  BOOST_TEST(events.at(0).reason == "node restarted during attempt");
}

BOOST_AUTO_TEST_CASE(a_full_node_refuses_with_queue_full) {
  Node node({"worker:general:1"});
  std::vector<TaskRecord> many;
  for (int i = 0; i < 1001; ++i) many.push_back(task("echo"));
  caf::scoped_actor self{*node.system};
  std::string refusal;
  self->request(node.scheduler, std::chrono::seconds(10), submit_atom::value, many)
      .receive([&](SubmitReply&) {}, [&](caf::error& e) { refusal = node.system->render(e); });
  BOOST_TEST(refusal.find("queue_full") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(agents_learn_and_pause) {
  Node node({"worker:echo:1"});
  auto agents = node.ask<std::vector<AgentRecord>>(list_atom::value);
  BOOST_REQUIRE(agents && agents->size() == 1u);
  auto id = agents->at(0).id;
  auto t = node.submit({task("echo")}).at(0);
  node.await_status(t.id, "completed");
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  auto after = node.ask<AgentRecord>(get_atom::value, id);
  BOOST_TEST(after->capabilities.at(0).proficiency > 0.8);  // the "echo" capability learned
  BOOST_TEST(after->tasks_completed == 1);
  BOOST_TEST(node.ask<AgentRecord>(pause_atom::value, id)->state == "inactive");
  auto held = node.submit({task("echo")}).at(0);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  BOOST_TEST(node.store->task(held.id)->status == "pending");
  node.ask<AgentRecord>(resume_atom::value, id);
  node.await_status(held.id, "completed");
}
