// The actor type every runtime-spawned actor uses: a stateful_actor that keeps its entry in
// the node's introspection registry current (messages handled, handling time, mailbox size,
// dropped messages as errors, traced messages) and leaves the registry when it terminates.
// An actor names itself once with describe(kind, name, parent) and keeps set_state() current.
#pragma once

#include "runtime/introspection.hpp"
#include "runtime/trust.hpp"

#include <caf/actor.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/invoke_message_result.hpp>
#include <caf/stateful_actor.hpp>

#include <chrono>
#include <optional>

namespace hub::runtime {

template <class State>
class Instrumented : public caf::stateful_actor<State> {
 public:
  using super = caf::stateful_actor<State>;

  explicit Instrumented(caf::actor_config& cfg)
      : super(cfg),
        probe_(introspection::Registry::of(this->home_system()).add(this->id(), this->address())),
        trusted_(&TrustedNodes::of(this->home_system())) {
    auto* registry = &introspection::Registry::of(this->home_system());
    this->attach_functor([registry, id = this->id()] { registry->remove(id); });
  }

  caf::invoke_message_result consume(caf::mailbox_element& x) override {
    // A message from a node that has not proven its cluster membership is never handled.
    if (x.sender && !strangers_welcome_ && x.sender->node() != this->ctrl()->node() && !trusted_->trusts(x.sender->node())) {
      probe_->note_error();
      return caf::invoke_message_result::dropped;
    }
    std::optional<introspection::TraceEvent> traced;
    if (probe_->tracing() && probe_->admit_trace()) traced = probe_->describe_message(x);
    auto started = std::chrono::steady_clock::now();
    auto result = super::consume(x);
    auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - started).count();
    if (result != caf::invoke_message_result::skipped)
      probe_->handled(ns, mailbox_size(), result == caf::invoke_message_result::dropped, traced ? &*traced : nullptr);
    return result;
  }

  void describe(std::string kind, std::string name, const caf::actor& parent = nullptr, bool inspectable = false) {
    probe_->describe(std::move(kind), std::move(name), parent ? parent.id() : 0, inspectable);
  }
  void set_state(const std::string& state) { probe_->set_state(state); }
  void note_error() { probe_->note_error(); }
  // For the one actor strangers must reach (the node manager: they prove themselves to it);
  // it checks membership in its own handlers.
  void welcome_strangers() { strangers_welcome_ = true; }
  introspection::Probe& probe() { return *probe_; }

 private:
  // Reading the mailbox's size costs about as much as the rest of the bookkeeping: it is read
  // after every message while messages wait, and after every 16th while the mailbox is empty.
  size_t mailbox_size() {
    if (last_mailbox_ != 0 || (++mailbox_reads_skipped_ & 15) == 0) last_mailbox_ = this->mailbox().size();
    return last_mailbox_;
  }

  std::shared_ptr<introspection::Probe> probe_;
  TrustedNodes* trusted_;
  bool strangers_welcome_ = false;
  size_t last_mailbox_ = 0;
  uint32_t mailbox_reads_skipped_ = 0;
};

}  // namespace hub::runtime
