#include "runtime/store/store_actor.hpp"

#include "runtime/breaker.hpp"
#include "runtime/clock.hpp"
#include "runtime/instrumented.hpp"
#include "runtime/metrics.hpp"
#include "runtime/store/store.hpp"

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/response_promise.hpp>
#include <caf/sec.hpp>
#include <caf/stateful_actor.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

namespace hub::runtime {
namespace {

using probe_atom = caf::atom_constant<caf::atom("st_probe")>;

// Bounds one transaction (and so the wait of everyone in it) to a few milliseconds.
constexpr size_t kMaxBatchRows = 2048;

struct StoreActorState {
  Store* store = nullptr;
  bool probing = false;  // a probe of the database is scheduled
  std::shared_ptr<CircuitBreaker> breaker;
  WriteBatch pending;
  std::vector<caf::response_promise> waiting;
  static inline const char* name = "store";
};

using StoreActor = Instrumented<StoreActorState>;

void append(WriteBatch& into, WriteBatch& from) {
  auto move_all = [](auto& dst, auto& src) {
    if (dst.empty()) dst = std::move(src);
    else dst.insert(dst.end(), std::make_move_iterator(src.begin()), std::make_move_iterator(src.end()));
  };
  move_all(into.tasks, from.tasks);
  move_all(into.task_updates, from.task_updates);
  move_all(into.events, from.events);
  move_all(into.agents, from.agents);
  move_all(into.audit, from.audit);
}

// After a failure nothing may write for a while (a quiet node): the store reaches for the
// database by itself every second until it answers, so health recovers without a write.
void schedule_probe(StoreActor* self) {
  if (self->state.probing) return;
  self->state.probing = true;
  self->delayed_send(self, std::chrono::seconds(1), probe_atom::value);
}

void commit(StoreActor* self) {
  auto& st = self->state;
  if (st.waiting.empty()) return;
  namespace m = metrics::names;
  auto& registry = metrics::Registry::global();
  auto started = std::chrono::steady_clock::now();
  auto rows = st.pending.size();
  if (!st.breaker->allow(now_ms())) {
    // A database that keeps failing is not hammered: refuse at once; senders retry later.
    auto waiting = std::move(st.waiting);
    st.waiting.clear();
    st.pending = WriteBatch{};
    auto snap = st.breaker->snapshot(now_ms());
    for (auto& rp : waiting)
      rp.deliver(caf::make_error(caf::sec::runtime_error, "store: circuit breaker open (" + snap.last_reason + ")"));
    return;
  }
  coalesce(st.pending);
  auto error = st.store->write(st.pending);
  st.breaker->record(!error, 0, now_ms());
  if (error) self->note_error();
  self->set_state("breaker " + st.breaker->state(now_ms()) + ", last commit " + std::to_string(rows) + " rows" +
                  (error ? " failed" : ""));
  registry.histogram(m::store_commit_duration, "Store transaction (group commit) time in seconds",
                     metrics::latency_buckets())
      .observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  if (error) registry.counter(m::store_errors, "Store transactions that failed").inc();
  else registry.counter(m::store_rows, "Rows written to the store").inc(double(rows));
  st.pending = WriteBatch{};
  auto waiting = std::move(st.waiting);
  st.waiting.clear();
  if (error) {
    schedule_probe(self);
    spdlog::error("store: write of {} batches failed: {}", waiting.size(), error->message);
    for (auto& rp : waiting) rp.deliver(caf::make_error(caf::sec::runtime_error, "store: " + error->message));
    return;
  }
  for (auto& rp : waiting) rp.deliver(true);
}

caf::behavior store_actor(StoreActor* self, Store* store, BreakerPolicy policy) {
  self->state.store = store;
  self->state.breaker = BreakerRegistry::global().get("store", "store", store->backend(), policy);
  self->describe("store", store->backend(), nullptr, true);
  self->set_state("breaker " + self->state.breaker->state(now_ms()));
  return {
      [=](persist_atom, WriteBatch& batch) -> caf::result<bool> {
        auto& st = self->state;
        auto rp = self->make_response_promise<bool>();
        append(st.pending, batch);
        st.waiting.push_back(rp);
        // Commit when nothing else is waiting in the mailbox (so a burst shares one
        // transaction) or when the batch has grown large.
        if (self->mailbox().size() == 0 || st.pending.size() >= kMaxBatchRows) commit(self);
        return rp;
      },
      [=](flush_atom) -> bool {
        commit(self);
        return true;
      },
      [=](probe_atom) {
        auto& st = self->state;
        st.probing = false;
        if (!st.store->stats().last_write_failed) return;
        if (auto error = st.store->ping()) {
          schedule_probe(self);
          return;
        }
        // The database answers again: the breaker closes (a half-open trial that succeeded)
        // and /health reports the store healthy.
        if (st.breaker->allow(now_ms())) st.breaker->record(true, 0, now_ms());
        self->set_state("breaker " + st.breaker->state(now_ms()) + ", database reachable again");
        spdlog::info("store: the database answers again");
      },
      [=](introspection::introspect_atom) {
        auto& st = self->state;
        auto b = st.breaker->snapshot(now_ms());
        auto stats = st.store->stats();
        return nlohmann::json{{"backend", st.store->backend()},
                              {"rows_waiting", st.pending.size()},
                              {"writers_waiting", st.waiting.size()},
                              {"commits", stats.writes},
                              {"rows_written", stats.rows_written},
                              {"breaker", {{"state", b.state}, {"successes", b.successes}, {"failures", b.failures},
                                           {"rejected", b.rejected}, {"trips", b.trips}, {"last_reason", b.last_reason}}}}
            .dump();
      },
      [=](renew_atom, const std::string& owner, int64_t until_ms) -> caf::result<bool> {
        commit(self);
        if (auto err = self->state.store->renew_leases(owner, until_ms))
          return caf::make_error(caf::sec::runtime_error, "unavailable|" + err->message);
        return true;
      },
      [=](expire_atom, const std::string& owner, int64_t now_ms) -> caf::result<bool> {
        commit(self);
        if (auto err = self->state.store->expire_leases(owner, now_ms))
          return caf::make_error(caf::sec::runtime_error, "unavailable|" + err->message);
        return true;
      },
      [=](claim_atom, const std::string& owner, int64_t now_ms, int64_t until_ms, int32_t limit)
          -> caf::result<std::vector<TaskRecord>> {
        commit(self);
        try {
          return self->state.store->claim_tasks(owner, now_ms, until_ms, limit, false);
        } catch (const std::exception& e) {
          return caf::make_error(caf::sec::runtime_error, std::string("unavailable|") + e.what());
        }
      },
      [=](load_agent_atom, const std::string& id) -> caf::result<AgentRecord> {
        commit(self);  // a batch held back for more company is written first (and read back)
        try {
          for (auto& a : self->state.store->agents())
            if (a.id == id) return a;
          return caf::make_error(caf::sec::runtime_error, "not_found|no agent " + id);
        } catch (const std::exception& e) {
          return caf::make_error(caf::sec::runtime_error, std::string("unavailable|") + e.what());
        }
      },
      [=](load_task_atom, const std::string& id) -> caf::result<TaskRecord> {
        commit(self);
        try {
          if (auto t = self->state.store->task(id)) return *t;
          return caf::make_error(caf::sec::runtime_error, "not_found|no task " + id);
        } catch (const std::exception& e) {
          return caf::make_error(caf::sec::runtime_error, std::string("unavailable|") + e.what());
        }
      },
  };
}

}  // namespace

// The store's breaker recovers fast: a database back after an outage is used within seconds.
static BreakerPolicy store_policy(BreakerPolicy p) {
  p.recovery_timeout_ms = std::min<int64_t>(p.recovery_timeout_ms, 1000);
  p.max_recovery_timeout_ms = std::min<int64_t>(p.max_recovery_timeout_ms, 10000);
  p.half_open_max_calls = 1;
  p.slow_call_ms = 0;
  p.minimum_calls = 1 << 30;  // consecutive failures only: a write either works or the database is gone
  return p;
}

caf::actor spawn_store_actor(caf::actor_system& system, Store& store) {
  return spawn_store_actor(system, store, BreakerPolicy{});
}

caf::actor spawn_store_actor(caf::actor_system& system, Store& store, const BreakerPolicy& breaker) {
  return system.spawn<caf::detached>(store_actor, &store, store_policy(breaker));
}

}  // namespace hub::runtime
