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

#include <dirent.h>
#include <fstream>
#include <sstream>
#include <sys/resource.h>
#include <vector>

namespace hub::runtime {

std::string process_exposition() {
  auto stats = read_process_stats();
  double cpu_seconds = 0, start_time = 0;
  std::ifstream stat_file("/proc/self/stat");
  std::string line;
  std::getline(stat_file, line);
  auto close = line.rfind(')');
  if (close != std::string::npos) {
    std::istringstream rest(line.substr(close + 2));
    std::string field;
    std::vector<std::string> f;
    while (rest >> field) f.push_back(field);
    // f[0] is field 3 (state): utime is field 14, stime 15, starttime 22.
    long ticks = sysconf(_SC_CLK_TCK);
    if (f.size() > 19) {
      cpu_seconds = (std::stod(f[11]) + std::stod(f[12])) / double(ticks);
      double boot = 0;
      std::ifstream proc_stat("/proc/stat");
      std::string key;
      while (proc_stat >> key) {
        if (key == "btime") {
          proc_stat >> boot;
          break;
        }
      }
      start_time = boot + std::stod(f[19]) / double(ticks);
    }
  }
  int fds = 0;
  if (DIR* d = opendir("/proc/self/fd")) {
    while (readdir(d)) ++fds;
    closedir(d);
    fds -= 3;  // ".", ".." and the directory's own descriptor
  }
  rlimit limit{};
  getrlimit(RLIMIT_NOFILE, &limit);
  std::ostringstream o;
  o.precision(15);
  o << "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n"
    << "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total " << cpu_seconds << "\n"
    << "# HELP process_open_fds Number of open file descriptors.\n# TYPE process_open_fds gauge\nprocess_open_fds " << fds << "\n"
    << "# HELP process_max_fds Maximum number of open file descriptors.\n# TYPE process_max_fds gauge\nprocess_max_fds "
    << limit.rlim_cur << "\n"
    << "# HELP process_resident_memory_bytes Resident memory size in bytes.\n# TYPE process_resident_memory_bytes gauge\n"
    << "process_resident_memory_bytes " << stats.rss_bytes << "\n"
    << "# HELP process_virtual_memory_bytes Virtual memory size in bytes.\n# TYPE process_virtual_memory_bytes gauge\n"
    << "process_virtual_memory_bytes " << stats.virtual_bytes << "\n"
    << "# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.\n"
    << "# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds " << start_time << "\n";
  return o.str();
}

}  // namespace hub::runtime
