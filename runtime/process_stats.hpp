// Figures about this process and host read from /proc: resident memory, CPU time, load.
// Cheap (a few small file reads); thread-safe.
#pragma once

#include <cstdint>

namespace hub::runtime {

struct ProcessStats {
  int64_t rss_bytes = 0;
  int64_t virtual_bytes = 0;
};

ProcessStats read_process_stats();

}  // namespace hub::runtime
