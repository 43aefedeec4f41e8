// The node's live event feed: task, agent, breaker, alert and membership events in one
// numbered stream (the source of GET /api/events). A bounded ring: readers that fall more
// than its capacity behind are told how many events they missed. Thread-safe; publish()
// never blocks for long (one short lock) and never fails.
#pragma once

#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

namespace hub::runtime {

struct Event {
  uint64_t id = 0;
  int64_t at_ms = 0;
  std::string type;  // "task", "agent", "breaker", "alert", "membership"
  std::string data;  // a JSON object, as text
};

class EventFeed {
 public:
  static EventFeed& global();
  explicit EventFeed(size_t capacity = 4096) : capacity_(capacity) {}

  uint64_t publish(std::string type, const nlohmann::json& data);
  // data: a JSON object already written as text (runtime::JsonText); the cheap way for hot paths.
  uint64_t publish_text(std::string type, std::string data);
  // Events with id > after, oldest first, at most `max`; *missed: how many were dropped
  // from the ring before the reader got to them.
  std::vector<Event> after(uint64_t after, size_t max, uint64_t* missed) const;
  // Waits until an event with id > after exists, or the timeout passes.
  bool wait_after(uint64_t after, std::chrono::milliseconds timeout) const;
  uint64_t last_id() const;

 private:
  const size_t capacity_;
  mutable std::mutex mutex_;
  mutable std::condition_variable cv_;
  mutable std::atomic<int> waiters_{0};  // readers in wait_after(): nobody to wake costs nothing
  std::deque<Event> ring_;
  uint64_t last_id_ = 0;
};

}  // namespace hub::runtime
