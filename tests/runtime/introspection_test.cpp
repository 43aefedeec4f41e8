// The introspection registry and the event feed: every instrumented actor is listed with its
// counters while it lives and leaves when it ends; traces record what an actor handles,
// bounded and sampled; sorting and limits; the event feed's resume and missed counts.
#define BOOST_TEST_MODULE introspection
#include "runtime/actor_runtime.hpp"
#include "runtime/events.hpp"
#include "runtime/json_text.hpp"
#include "runtime/instrumented.hpp"

#include <boost/test/unit_test.hpp>
#include <caf/actor_system.hpp>
#include <caf/atom.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>

#include <thread>

using namespace hub::runtime;
using introspection::Registry;

namespace {

using ping_atom = caf::atom_constant<caf::atom("ping")>;
using fail_atom = caf::atom_constant<caf::atom("fail")>;

struct EchoState {
  int handled = 0;
};

caf::behavior echo(Instrumented<EchoState>* self, std::string name) {
  self->describe("echo", std::move(name), nullptr, true);
  self->set_state("ready");
  return {
      [=](ping_atom, int n) {
        self->set_state("handled " + std::to_string(++self->state.handled));
        return n + 1;
      },
      [=](fail_atom) { self->note_error(); },
      [=](introspection::introspect_atom) { return std::string("{\"handled\":") + std::to_string(self->state.handled) + "}"; },
  };
}

// Waits (bounded) until `done` holds.
template <class F>
bool eventually(F done) {
  for (int i = 0; i < 400; ++i) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return done();
}

}  // namespace

BOOST_AUTO_TEST_CASE(actors_are_listed_with_their_counters_and_leave_when_they_end) {
  HubActorConfig cfg(2, "stealing");
  caf::actor_system system{cfg};
  auto& registry = Registry::of(system);
  auto a = system.spawn(echo, std::string("first"));
  auto b = system.spawn(echo, std::string("second"));
  caf::scoped_actor self{system};
  for (int i = 0; i < 5; ++i) self->request(a, caf::infinite, ping_atom::value, i).receive([](int) {}, [](caf::error&) {});
  self->request(b, caf::infinite, ping_atom::value, 1).receive([](int) {}, [](caf::error&) {});
  caf::anon_send(b, fail_atom::value);
  BOOST_REQUIRE(eventually([&] { return registry.find(b.id()) && registry.find(b.id())->info().errors == 1; }));

  BOOST_REQUIRE(eventually([&] { return registry.find(a.id())->info().messages == 5u; }));
  auto info = registry.find(a.id())->info();
  BOOST_TEST(info.kind == "echo");
  BOOST_TEST(info.name == "first");
  BOOST_TEST(info.state == "handled 5");
  BOOST_TEST(info.messages == 5u);
  BOOST_TEST(info.inspectable);
  BOOST_TEST(info.last_message_ms > 0);

  introspection::ActorQuery q;
  q.kind = "echo";
  q.sort = "messages";
  size_t total = 0;
  auto listed = registry.list(q, &total);
  BOOST_TEST(total == 2u);
  BOOST_REQUIRE(listed.size() == 2u);
  BOOST_TEST(listed[0].name == "first");  // most messages first
  q.sort = "errors";
  q.limit = 1;
  listed = registry.list(q, &total);
  BOOST_REQUIRE(listed.size() == 1u);
  BOOST_TEST(listed[0].name == "second");
  BOOST_TEST(total == 2u);

  std::string summary;
  self->request(a, caf::infinite, introspection::introspect_atom::value).receive([&](std::string& s) { summary = s; }, [](caf::error&) {});
  BOOST_TEST(summary == "{\"handled\":5}");

  self->send_exit(a, caf::exit_reason::kill);
  BOOST_TEST(eventually([&] { return registry.find(a.id()) == nullptr; }));
  BOOST_TEST(registry.find(b.id()) != nullptr);
  self->send_exit(b, caf::exit_reason::user_shutdown);
}

BOOST_AUTO_TEST_CASE(a_trace_records_type_sender_and_size_only_while_asked_sampled_and_bounded) {
  HubActorConfig cfg(2, "stealing");
  caf::actor_system system{cfg};
  auto& registry = Registry::of(system);
  auto a = system.spawn(echo, std::string("traced"));
  caf::scoped_actor self{system};
  auto probe = registry.find(a.id());
  BOOST_REQUIRE(probe);
  // The answer reaches us before the actor's bookkeeping of that message ends: wait for it.
  uint64_t sent = 0;
  auto ping = [&](int n) {
    for (int i = 0; i < n; ++i) self->request(a, caf::infinite, ping_atom::value, i).receive([](int) {}, [](caf::error&) {});
    sent += uint64_t(n);
    BOOST_REQUIRE(eventually([&] { return probe->info().messages == sent; }));
  };
  ping(3);
  uint64_t lost = 0;
  BOOST_TEST(probe->trace_after(0, 100, &lost).empty());  // off unless asked

  probe->start_trace(1, 1000);
  ping(4);
  auto events = probe->trace_after(0, 100, &lost);
  BOOST_REQUIRE(events.size() == 4u);
  BOOST_TEST(events[0].type == "ping");
  BOOST_TEST(events[0].size > 0u);
  BOOST_TEST(events[0].sender.find('#') != std::string::npos);  // the scoped actor, by id
  BOOST_TEST(events[3].seq == events[0].seq + 3);
  BOOST_TEST(probe->trace_after(events[1].seq, 100, &lost).size() == 2u);
  probe->stop_trace();

  probe->start_trace(3, 1000);  // every third message
  ping(9);
  auto sampled = probe->trace_after(events[3].seq, 100, &lost);
  BOOST_TEST(sampled.size() == 3u);
  probe->stop_trace();

  probe->start_trace(1, 2);  // at most 2 per second
  ping(10);
  auto bounded = probe->trace_after(sampled.empty() ? events[3].seq : sampled.back().seq, 100, &lost);
  BOOST_TEST(bounded.size() <= 4u);  // two per second; the window may roll over once
  BOOST_TEST(lost >= 6u);
  probe->stop_trace();
  BOOST_TEST(!probe->tracing());
  self->send_exit(a, caf::exit_reason::user_shutdown);
}

BOOST_AUTO_TEST_CASE(the_event_feed_resumes_after_an_id_and_counts_what_fell_out) {
  EventFeed feed(4);
  for (int i = 1; i <= 3; ++i) feed.publish("task", {{"n", i}});
  uint64_t missed = 0;
  auto all = feed.after(0, 100, &missed);
  BOOST_REQUIRE(all.size() == 3u);
  BOOST_TEST(missed == 0u);
  BOOST_TEST(all[0].id == 1u);
  auto rest = feed.after(2, 100, &missed);
  BOOST_REQUIRE(rest.size() == 1u);
  BOOST_TEST(nlohmann::json::parse(rest[0].data)["n"] == 3);
  for (int i = 4; i <= 10; ++i) feed.publish("agent", {{"n", i}});
  auto late = feed.after(1, 100, &missed);
  BOOST_TEST(late.size() == 4u);  // the ring keeps 4
  BOOST_TEST(missed == 5u);       // 2..6 fell out
  BOOST_TEST(late.front().id == 7u);
  BOOST_TEST(feed.after(10, 100, &missed).empty());
  BOOST_TEST(!feed.wait_after(10, std::chrono::milliseconds(10)));
  std::thread later([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    feed.publish("alert", {});
  });
  BOOST_TEST(feed.wait_after(10, std::chrono::seconds(5)));
  later.join();
}

BOOST_AUTO_TEST_CASE(json_text_writes_valid_json_from_any_bytes) {
  std::string bad = "quote\" back\\ tab\t nul";
  bad += '\0';
  bad += " latin1 \xe9 cut \xe2\x82 ok \xe2\x82\xac surrogate \xed\xa0\x80 end";
  auto text = hub::runtime::JsonText().str("s", bad).num("n", -7).str_or_null("none", "").raw("raw", "[1,2]").done();
  auto parsed = nlohmann::json::parse(text);  // throws on invalid JSON or UTF-8
  auto s = parsed["s"].get<std::string>();
  BOOST_TEST(s.find("quote\" back\\ tab\t nul") == 0u);
  BOOST_TEST(s[21] == '\0');
  BOOST_TEST(s.find("ok \xe2\x82\xac surrogate") != std::string::npos);
  BOOST_TEST(s.find("latin1 \xef\xbf\xbd cut \xef\xbf\xbd\xef\xbf\xbd ok") != std::string::npos);
  BOOST_TEST(parsed["n"] == -7);
  BOOST_TEST(parsed["none"].is_null());
  BOOST_TEST(parsed["raw"] == nlohmann::json::array({1, 2}));
}
