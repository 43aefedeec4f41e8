// The one logger setup of the node: spdlog with a level, `text` or `json` lines, to stdout
// and, when one is set, also to a file that SIGHUP reopens (for logrotate). Must never be
// configured anywhere else.
#pragma once

#include <string>

namespace hub::runtime {

struct LogOptions {
  std::string level = "info";   // trace|debug|info|warn|error|critical|off
  std::string format = "text";  // text|json
  std::string file;             // empty: stdout only
};

// Installs the default spdlog logger. Returns an error message, or "" on success.
std::string setup_logging(const LogOptions& options);

// Reopens the log file (no-op on stdout). Safe to call from any thread.
void reopen_log_file();

}  // namespace hub::runtime
