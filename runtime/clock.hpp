// The one clock of the node and the identifiers it hands out: RFC 3339 UTC timestamps with
// milliseconds, and random (v4) UUIDs. Thread-safe.
#pragma once

#include <cstdint>
#include <string>

namespace hub::runtime {

int64_t now_ms();                          // milliseconds since the Unix epoch
std::string rfc3339(int64_t epoch_ms);     // 2026-11-27T18:29:56.123Z
std::string now_rfc3339();
int64_t parse_rfc3339(const std::string&); // inverse of rfc3339(); -1 if malformed
std::string new_uuid();                    // random v4 UUID, lower case
std::string new_time_uuid();               // v7 UUID (time-ordered), lower case: task ids
bool is_uuid(const std::string&);

}  // namespace hub::runtime
