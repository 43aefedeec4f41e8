// How both stores encode capability lists in their JSON columns (SQLite text, PostgreSQL
// jsonb) and a task's events trail: one format, one place.
#pragma once

#include "runtime/domain.hpp"

#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace hub::runtime {

std::string capabilities_json(const std::vector<Capability>& caps);
std::vector<Capability> parse_capabilities(const std::string& text);
std::string required_json(const std::vector<RequiredCapability>& caps);
std::vector<RequiredCapability> parse_required(const std::string& text);

// A task's events live in its own row (column `events`): one JSON object per line, appended
// by the write that makes the transition, so a transition costs no row of its own.
void append_event_line(std::string& trail, const TaskEvent& event);
// A batch's new events grouped by task, one trail text each; the first write of a task's row
// takes its trail, and what no write took is left for an append of its own.
class EventTrails {
 public:
  explicit EventTrails(const std::vector<TaskEvent>& events) {
    for (const auto& e : events) append_event_line(by_task_[e.task_id], e);
  }
  std::string take(const std::string& id) {
    auto it = by_task_.find(id);
    if (it == by_task_.end()) return {};
    auto trail = std::move(it->second);
    by_task_.erase(it);
    return trail;
  }
  std::unordered_map<std::string_view, std::string>& left() { return by_task_; }

 private:
  std::unordered_map<std::string_view, std::string> by_task_;  // views the events' task ids
};

// The events of task `id` that `trail` holds, in order, appended to `out`.
void parse_event_lines(const std::string& id, const std::string& trail, std::vector<TaskEvent>& out);

}  // namespace hub::runtime
