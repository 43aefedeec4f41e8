// The nodes whose messages this node's actors accept: its own, and the cluster members that
// proved they hold the cluster secret (the node manager adds them; runtime/cluster.hpp). Every
// runtime actor (runtime/instrumented.hpp) drops a message whose sender is on any other node
// before handling it. Node ids carry the process id, so a restarted member proves itself again.
// Thread-safe; read on every message from another node, written once per member.
#pragma once

#include <caf/fwd.hpp>
#include <caf/node_id.hpp>

#include <atomic>
#include <shared_mutex>
#include <unordered_set>

namespace hub::runtime {

class TrustedNodes {
 public:
  static TrustedNodes& of(caf::actor_system& system);
  void add(const caf::node_id& node);
  bool trusts(const caf::node_id& node) const;

 private:
  mutable std::shared_mutex mutex_;
  std::unordered_set<caf::node_id> nodes_;
  std::atomic<size_t> count_{0};
};

}  // namespace hub::runtime
