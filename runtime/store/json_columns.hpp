// How both stores encode capability lists in their JSON columns (SQLite text, PostgreSQL
// jsonb): one format, one place.
#pragma once

#include "runtime/domain.hpp"

#include <string>
#include <vector>

namespace hub::runtime {

std::string capabilities_json(const std::vector<Capability>& caps);
std::vector<Capability> parse_capabilities(const std::string& text);
std::string required_json(const std::vector<RequiredCapability>& caps);
std::vector<RequiredCapability> parse_required(const std::string& text);

}  // namespace hub::runtime
