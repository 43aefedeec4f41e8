#include "runtime/store/store_actor.hpp"

#include "runtime/metrics.hpp"
#include "runtime/store/store.hpp"

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/response_promise.hpp>
#include <caf/sec.hpp>
#include <caf/stateful_actor.hpp>
#include <spdlog/spdlog.h>

namespace hub::runtime {
namespace {

// Bounds one transaction (and so the wait of everyone in it) to a few milliseconds.
constexpr size_t kMaxBatchRows = 2048;

struct StoreActorState {
  Store* store = nullptr;
  WriteBatch pending;
  std::vector<caf::response_promise> waiting;
  static inline const char* name = "store";
};

using StoreActor = caf::stateful_actor<StoreActorState>;

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

void commit(StoreActor* self) {
  auto& st = self->state;
  if (st.waiting.empty()) return;
  namespace m = metrics::names;
  auto& registry = metrics::Registry::global();
  auto started = std::chrono::steady_clock::now();
  auto rows = st.pending.size();
  auto error = st.store->write(st.pending);
  registry.histogram(m::store_commit_duration, "Store transaction (group commit) time in seconds",
                     metrics::latency_buckets())
      .observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  if (error) registry.counter(m::store_errors, "Store transactions that failed").inc();
  else registry.counter(m::store_rows, "Rows written to the store").inc(double(rows));
  st.pending = WriteBatch{};
  auto waiting = std::move(st.waiting);
  st.waiting.clear();
  if (error) {
    spdlog::error("store: write of {} batches failed: {}", waiting.size(), error->message);
    for (auto& rp : waiting) rp.deliver(caf::make_error(caf::sec::runtime_error, "store: " + error->message));
    return;
  }
  for (auto& rp : waiting) rp.deliver(true);
}

caf::behavior store_actor(StoreActor* self, Store* store) {
  self->state.store = store;
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
  };
}

}  // namespace

caf::actor spawn_store_actor(caf::actor_system& system, Store& store) {
  return system.spawn<caf::detached>(store_actor, &store);
}

}  // namespace hub::runtime
