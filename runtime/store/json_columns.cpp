#include "runtime/store/json_columns.hpp"

#include "runtime/json_text.hpp"

#include <nlohmann/json.hpp>

namespace hub::runtime {

using json = nlohmann::json;

std::string capabilities_json(const std::vector<Capability>& caps) {
  json a = json::array();
  for (const auto& c : caps) a.push_back({{"name", c.name}, {"proficiency", c.proficiency}, {"learning_rate", c.learning_rate}});
  return a.dump();
}

std::vector<Capability> parse_capabilities(const std::string& text) {
  std::vector<Capability> out;
  auto a = json::parse(text, nullptr, false);
  if (!a.is_array()) return out;
  for (const auto& c : a) out.push_back({c.value("name", ""), c.value("proficiency", 0.5), c.value("learning_rate", 0.1)});
  return out;
}

std::string required_json(const std::vector<RequiredCapability>& caps) {
  json a = json::array();
  for (const auto& c : caps) a.push_back({{"name", c.name}, {"minimum_proficiency", c.minimum_proficiency}});
  return a.dump();
}

std::vector<RequiredCapability> parse_required(const std::string& text) {
  std::vector<RequiredCapability> out;
  auto a = json::parse(text, nullptr, false);
  if (!a.is_array()) return out;
  for (const auto& c : a) out.push_back({c.value("name", ""), c.value("minimum_proficiency", 0.0)});
  return out;
}

void append_event_line(std::string& trail, const TaskEvent& e) {
  trail += JsonText().str("from", e.from).str("to", e.to).num("at", e.at).num("attempt", e.attempt).str("reason", e.reason).done();
  trail += '\n';
}

void parse_event_lines(const std::string& id, const std::string& trail, std::vector<TaskEvent>& out) {
  size_t at = 0;
  while (at < trail.size()) {
    auto end = trail.find('\n', at);
    if (end == std::string::npos) end = trail.size();
    auto line = json::parse(trail.begin() + std::ptrdiff_t(at), trail.begin() + std::ptrdiff_t(end), nullptr, false);
    if (line.is_object())
      out.push_back({id, line.value("from", ""), line.value("to", ""), line.value("at", int64_t(0)),
                     line.value("attempt", 0), line.value("reason", "")});
    at = end + 1;
  }
}

}  // namespace hub::runtime
