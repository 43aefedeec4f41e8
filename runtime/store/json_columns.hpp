// How both stores encode capability lists in their JSON columns (SQLite text, PostgreSQL
// jsonb) and a task's events trail: one format, one place.
#pragma once

#include "runtime/domain.hpp"

#include <string>
#include <vector>

namespace hub::runtime {

std::string capabilities_json(const std::vector<Capability>& caps);
std::vector<Capability> parse_capabilities(const std::string& text);
std::string required_json(const std::vector<RequiredCapability>& caps);
std::vector<RequiredCapability> parse_required(const std::string& text);

// A task's events live in its own row (column `events`): one JSON object per line, appended
// by the write that makes the transition, so a transition costs no row of its own.
void append_event_line(std::string& trail, const TaskEvent& event);
// The events of task `id` that `trail` holds, in order, appended to `out`.
void parse_event_lines(const std::string& id, const std::string& trail, std::vector<TaskEvent>& out);

}  // namespace hub::runtime
