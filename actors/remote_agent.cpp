#include "actors/remote_agent.hpp"

#include "cluster.pb.h"
#include "runtime/instrumented.hpp"
#include "runtime/cluster.hpp"

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/response_promise.hpp>
#include <caf/stateful_actor.hpp>
#include <spdlog/spdlog.h>

#include <unordered_map>

namespace hub::actors {

std::string encode_outcome(const Outcome& o) {
  proto::Outcome p;
  p.set_ok(o.ok);
  p.set_result_json(o.result_json);
  p.set_error_type(o.error_type);
  p.set_error_message(o.error_message);
  p.set_retryable(o.retryable);
  p.set_retry_after_ms(o.retry_after_ms);
  p.set_not_attempted(o.not_attempted);
  return p.SerializeAsString();
}

bool decode_outcome(const std::string& bytes, Outcome& o) {
  proto::Outcome p;
  if (!p.ParseFromString(bytes)) return false;
  o.ok = p.ok();
  o.result_json = p.result_json();
  o.error_type = p.error_type();
  o.error_message = p.error_message();
  o.retryable = p.retryable();
  o.retry_after_ms = p.retry_after_ms();
  o.not_attempted = p.not_attempted();
  return true;
}

namespace {

struct RemoteAgentState {
  std::string node;
  caf::actor remote;
  uint64_t next = 0;
  std::unordered_map<uint64_t, caf::response_promise> pending;
  static inline const char* name = "remote_agent";
};

using RemoteAgentActor = runtime::Instrumented<RemoteAgentState>;

Outcome crashed(const std::string& why) {
  Outcome o;
  o.error_type = "crashed";
  o.error_message = why;
  o.retryable = true;
  return o;
}

caf::behavior remote_agent(RemoteAgentActor* self, std::string node, caf::actor remote) {
  self->state.node = std::move(node);
  self->state.remote = remote;
  self->describe("remote_agent", self->state.node);
  self->set_state("relaying to " + self->state.node);
  self->monitor(remote);
  self->set_down_handler([=](caf::down_msg& dm) {
    auto& st = self->state;
    if (dm.source != st.remote.address()) return;
    auto why = "node " + st.node + " was lost during the attempt (" + self->system().render(dm.reason) + ")";
    for (auto& [seq, rp] : st.pending) rp.deliver(crashed(why));
    st.pending.clear();
    self->quit();
  });
  self->set_exit_handler([=](caf::exit_msg& msg) {
    auto& st = self->state;
    for (auto& [seq, rp] : st.pending) rp.deliver(crashed("node " + st.node + " left the cluster during the attempt"));
    st.pending.clear();
    self->quit(msg.reason);
  });
  return {
      [=](execute_atom, const runtime::TaskRecord& task) -> caf::result<Outcome> {
        auto& st = self->state;
        auto rp = self->make_response_promise<Outcome>();
        auto seq = ++st.next;
        st.pending.emplace(seq, rp);
        // The task actor has its own timeout; this one only keeps a lost reply from leaking.
        auto timeout = task.timeout_ms > 0 ? std::chrono::milliseconds(task.timeout_ms + 10000)
                                           : std::chrono::milliseconds(3600 * 1000);
        self->request(st.remote, timeout, runtime::remote_execute_atom::value, task.assigned_agent,
                      runtime::encode_task(task))
            .then(
                [=](std::string& bytes) {
                  auto it = self->state.pending.find(seq);
                  if (it == self->state.pending.end()) return;
                  Outcome o;
                  if (!decode_outcome(bytes, o)) o = crashed("node " + self->state.node + " sent an unreadable outcome");
                  it->second.deliver(std::move(o));
                  self->state.pending.erase(it);
                },
                [=](caf::error& err) {
                  auto it = self->state.pending.find(seq);
                  if (it == self->state.pending.end()) return;
                  it->second.deliver(crashed("node " + self->state.node + ": " + self->system().render(err)));
                  self->state.pending.erase(it);
                });
        return rp;
      },
      [=](cancel_atom, const std::string& task_id) {
        self->send(self->state.remote, runtime::remote_cancel_atom::value, task_id);
      },
  };
}

}  // namespace

caf::actor spawn_remote_agent(caf::actor_system& system, std::string node, caf::actor remote_scheduler) {
  return system.spawn(remote_agent, std::move(node), std::move(remote_scheduler));
}

}  // namespace hub::actors
