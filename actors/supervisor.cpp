#include "actors/supervisor.hpp"

#include "runtime/clock.hpp"
#include "runtime/instrumented.hpp"
#include "runtime/metrics.hpp"

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/exit_reason.hpp>
#include <caf/response_promise.hpp>
#include <caf/sec.hpp>
#include <caf/stateful_actor.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <deque>
#include <memory>
#include <vector>

namespace hub::actors {

using json = nlohmann::json;

namespace {

struct Child {
  ChildSpec spec;
  caf::actor handle;
  int restarts = 0;
  int64_t started_ms = 0;
  int64_t last_restart_ms = 0;
  std::string last_reason;
};

struct SupervisorState {
  SupervisorOptions options;
  std::vector<Child> children;  // in start order (rest_for_one restarts the tail)
  std::deque<int64_t> recent_restarts;
  int64_t total_restarts = 0;
  caf::actor listener;
  bool stopping = false;
  static inline const char* name = "supervisor";
};

using SupervisorActor = runtime::Instrumented<SupervisorState>;

// Children show this supervisor as their parent in the introspection registry.
void claim_child(SupervisorActor* self, const caf::actor& child) {
  if (auto probe = runtime::introspection::Registry::of(self->system()).find(child.id())) probe->set_parent(self->id());
}

void show_state(SupervisorActor* self) {
  auto& st = self->state;
  self->set_state(std::to_string(st.children.size()) + " children, " + std::to_string(st.total_restarts) + " restarts");
}

void count_restart(const std::string& supervisor, const std::string& kind) {
  runtime::metrics::Registry::global()
      .counter(runtime::metrics::names::supervisor_restarts, "Children restarted by a supervisor, by supervisor and kind",
               {{"supervisor", supervisor}, {"kind", kind}})
      .inc();
}

void stop_all(SupervisorActor* self, const caf::error& reason) {
  auto& st = self->state;
  st.stopping = true;
  for (auto& c : st.children)
    if (c.handle) self->send_exit(c.handle, reason);
}

// Gives up: the parent decides what happens next.
void escalate(SupervisorActor* self, const std::string& why) {
  spdlog::error("supervisor {}: {}; stopping its children and escalating", self->state.options.name, why);
  stop_all(self, caf::exit_reason::user_shutdown);
  self->quit(caf::make_error(caf::sec::runtime_error, "supervisor " + self->state.options.name + ": " + why));
}

void restart(SupervisorActor* self, size_t index, const std::string& reason) {
  auto& st = self->state;
  auto now = runtime::now_ms();
  st.recent_restarts.push_back(now);
  while (!st.recent_restarts.empty() && now - st.recent_restarts.front() > st.options.period_ms) st.recent_restarts.pop_front();
  if (int(st.recent_restarts.size()) > st.options.max_restarts) {
    escalate(self, "more than " + std::to_string(st.options.max_restarts) + " restarts within " +
                       std::to_string(st.options.period_ms / 1000) + " s (last: " + st.children[index].spec.id + ", " + reason + ")");
    return;
  }
  if (!st.children[index].spec.start) {
    escalate(self, "child " + st.children[index].spec.id + " cannot be restarted (" + reason + ")");
    return;
  }
  // rest_for_one: the children started after it go down too and start again, in order.
  size_t last = st.options.strategy == "rest_for_one" ? st.children.size() : index + 1;
  for (size_t i = index + 1; i < last; ++i)
    if (st.children[i].handle) {
      self->demonitor(st.children[i].handle);
      self->send_exit(st.children[i].handle, caf::exit_reason::user_shutdown);
    }
  for (size_t i = index; i < last; ++i) {
    auto& c = st.children[i];
    c.handle = c.spec.start ? c.spec.start() : caf::actor{};
    if (!c.handle) continue;
    self->monitor(c.handle);
    claim_child(self, c.handle);
    c.restarts += 1;
    c.last_restart_ms = now;
    c.last_reason = i == index ? reason : "rest_for_one: " + st.children[index].spec.id + " crashed";
    st.total_restarts += 1;
    count_restart(st.options.name, c.spec.kind);
    spdlog::warn("supervisor {}: restarted {} {} ({}; {} restarts)", st.options.name, c.spec.kind, c.spec.id, c.last_reason,
                 c.restarts);
    if (st.listener) self->send(st.listener, restarted_atom::value, c.spec.kind, c.spec.id, c.handle);
  }
}

json child_view(const Child& c) {
  return json{{"id", c.spec.id},   {"kind", c.spec.kind},   {"alive", bool(c.handle)}, {"restarts", c.restarts},
              {"restartable", bool(c.spec.start)}, {"started_at", runtime::rfc3339(c.started_ms)},
              {"last_restart_at", c.last_restart_ms ? json(runtime::rfc3339(c.last_restart_ms)) : json()},
              {"last_reason", c.last_reason.empty() ? json() : json(c.last_reason)}};
}

caf::behavior supervisor(SupervisorActor* self, SupervisorOptions options) {
  self->state.options = std::move(options);
  self->describe("supervisor", self->state.options.name, nullptr, true);
  show_state(self);
  self->set_down_handler([=](caf::down_msg& msg) {
    auto& st = self->state;
    if (st.stopping) return;
    for (size_t i = 0; i < st.children.size(); ++i) {
      if (st.children[i].handle.address() != msg.source) continue;
      st.children[i].handle = nullptr;
      if (!msg.reason || msg.reason == caf::exit_reason::normal || msg.reason == caf::exit_reason::user_shutdown) {
        st.children.erase(st.children.begin() + long(i));  // done or stopped on purpose: not restarted
        show_state(self);
        return;
      }
      self->note_error();
      restart(self, i, self->system().render(msg.reason));
      show_state(self);
      return;
    }
  });
  // Our own exit takes the children along (OTP: a supervisor never leaves orphans).
  self->set_exit_handler([=](caf::exit_msg& msg) {
    stop_all(self, msg.reason);
    self->quit(msg.reason);
  });
  return {
      [=](adopt_atom, ChildSpec& spec, caf::actor& handle) {
        auto& st = self->state;
        self->monitor(handle);
        claim_child(self, handle);
        Child c;
        c.spec = std::move(spec);
        c.handle = std::move(handle);
        c.started_ms = runtime::now_ms();
        st.children.push_back(std::move(c));
        show_state(self);
      },
      [=](runtime::introspection::introspect_atom) {
        auto& st = self->state;
        json children = json::array();
        for (const auto& c : st.children) {
          auto v = child_view(c);
          v["actor_id"] = c.handle ? json(c.handle.id()) : json();
          children.push_back(std::move(v));
        }
        return json{{"name", st.options.name},         {"strategy", st.options.strategy},
                    {"max_restarts", st.options.max_restarts}, {"period_seconds", st.options.period_ms / 1000},
                    {"restarts", st.total_restarts},   {"restarts_in_period", st.recent_restarts.size()},
                    {"children", children}}
            .dump();
      },
      [=](listen_atom, caf::actor& listener) { self->state.listener = std::move(listener); },
      [=](tree_atom) -> caf::result<std::string> {
        auto& st = self->state;
        auto tree = std::make_shared<json>(json{{"name", st.options.name},
                                                {"strategy", st.options.strategy},
                                                {"max_restarts", st.options.max_restarts},
                                                {"period_seconds", st.options.period_ms / 1000},
                                                {"restarts", st.total_restarts},
                                                {"restarts_in_period", st.recent_restarts.size()},
                                                {"children", json::array()}});
        std::vector<std::pair<size_t, caf::actor>> nested;
        for (const auto& c : st.children) {
          if (c.spec.answers_tree && c.handle) nested.emplace_back((*tree)["children"].size(), c.handle);
          (*tree)["children"].push_back(child_view(c));
        }
        if (nested.empty()) return tree->dump();
        auto rp = self->make_response_promise<std::string>();
        auto pending = std::make_shared<size_t>(nested.size());
        for (auto& [index, handle] : nested) {
          auto i = index;
          self->request(handle, std::chrono::seconds(2), tree_atom::value)
              .then(
                  [=](std::string& sub) mutable {
                    (*tree)["children"][i]["supervises"] = json::parse(sub, nullptr, false);
                    if (--*pending == 0) rp.deliver(tree->dump());
                  },
                  [=](caf::error&) mutable {
                    (*tree)["children"][i]["supervises"] = nullptr;
                    if (--*pending == 0) rp.deliver(tree->dump());
                  });
        }
        return rp;
      },
  };
}

}  // namespace

caf::actor spawn_supervisor(caf::actor_system& system, SupervisorOptions options) {
  return system.spawn(supervisor, std::move(options));
}

}  // namespace hub::actors
