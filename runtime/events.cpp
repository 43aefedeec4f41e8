#include "runtime/events.hpp"

#include "runtime/clock.hpp"

namespace hub::runtime {

EventFeed& EventFeed::global() {
  static EventFeed feed;
  return feed;
}

uint64_t EventFeed::publish(std::string type, nlohmann::json data) {
  uint64_t id;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    id = ++last_id_;
    ring_.push_back(Event{id, now_ms(), std::move(type), std::move(data)});
    if (ring_.size() > capacity_) ring_.pop_front();
  }
  cv_.notify_all();
  return id;
}

std::vector<Event> EventFeed::after(uint64_t after, size_t max, uint64_t* missed) const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<Event> out;
  if (missed) *missed = 0;
  if (ring_.empty() || after >= last_id_) return out;
  uint64_t oldest = ring_.front().id;
  if (after + 1 < oldest && missed) *missed = oldest - after - 1;
  size_t start = after + 1 <= oldest ? 0 : size_t(after + 1 - oldest);
  for (size_t i = start; i < ring_.size() && out.size() < max; ++i) out.push_back(ring_[i]);
  return out;
}

bool EventFeed::wait_after(uint64_t after, std::chrono::milliseconds timeout) const {
  std::unique_lock<std::mutex> lock(mutex_);
  return cv_.wait_for(lock, timeout, [&] { return last_id_ > after; });
}

uint64_t EventFeed::last_id() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return last_id_;
}

}  // namespace hub::runtime
