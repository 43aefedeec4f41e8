#include "runtime/process_stats.hpp"

#include <cstdio>
#include <unistd.h>

namespace hub::runtime {

ProcessStats read_process_stats() {
  ProcessStats s;
  if (FILE* f = std::fopen("/proc/self/statm", "r")) {
    long long size = 0, resident = 0;
    if (std::fscanf(f, "%lld %lld", &size, &resident) == 2) {
      long page = sysconf(_SC_PAGESIZE);
      s.virtual_bytes = size * page;
      s.rss_bytes = resident * page;
    }
    std::fclose(f);
  }
  return s;
}

}  // namespace hub::runtime
