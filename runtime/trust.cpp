#include "runtime/trust.hpp"

#include <map>
#include <memory>
#include <mutex>

namespace hub::runtime {

TrustedNodes& TrustedNodes::of(caf::actor_system& system) {
  static std::mutex mutex;
  static std::map<caf::actor_system*, std::unique_ptr<TrustedNodes>> all;
  std::lock_guard<std::mutex> lock(mutex);
  auto& t = all[&system];
  if (!t) t = std::make_unique<TrustedNodes>();
  return *t;
}

void TrustedNodes::add(const caf::node_id& node) {
  std::unique_lock<std::shared_mutex> lock(mutex_);
  nodes_.insert(node);
  count_.store(nodes_.size(), std::memory_order_release);
}

bool TrustedNodes::trusts(const caf::node_id& node) const {
  if (count_.load(std::memory_order_acquire) == 0) return false;
  std::shared_lock<std::shared_mutex> lock(mutex_);
  return nodes_.count(node) > 0;
}

}  // namespace hub::runtime
