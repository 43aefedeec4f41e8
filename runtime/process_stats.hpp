// Figures about this process read from /proc: resident and virtual memory, CPU time, open
// and maximum file descriptors, start time. Cheap (a few small file reads); thread-safe.
#pragma once

#include <cstdint>
#include <string>

namespace hub::runtime {

struct ProcessStats {
  int64_t rss_bytes = 0;
  int64_t virtual_bytes = 0;
};

ProcessStats read_process_stats();

// The standard process_* families in Prometheus text format.
std::string process_exposition();

}  // namespace hub::runtime
