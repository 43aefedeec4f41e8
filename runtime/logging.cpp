#include "runtime/logging.hpp"

#include <spdlog/details/file_helper.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>
#include <vector>

namespace hub::runtime {
namespace {

// A file sink that can reopen its path, so that a rotated file is let go of on SIGHUP.
class ReopenableFileSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  explicit ReopenableFileSink(const std::string& path) { file_.open(path, false); }
  void reopen() {
    std::lock_guard<std::mutex> lock(mutex_);
    file_.reopen(false);
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    spdlog::memory_buf_t out;
    formatter_->format(msg, out);
    file_.write(out);
  }
  void flush_() override { file_.flush(); }

 private:
  spdlog::details::file_helper file_;
};

void append_json_string(spdlog::memory_buf_t& out, spdlog::string_view_t s) {
  out.push_back('"');
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out.append(std::string_view("\\\"")); break;
      case '\\': out.append(std::string_view("\\\\")); break;
      case '\n': out.append(std::string_view("\\n")); break;
      case '\r': out.append(std::string_view("\\r")); break;
      case '\t': out.append(std::string_view("\\t")); break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out.append(std::string_view(buf));
        } else {
          out.push_back(ch);
        }
    }
  }
  out.push_back('"');
}

// One JSON object per line: {"ts":"…Z","level":"info","msg":"…"}.
class JsonFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    auto t = std::chrono::system_clock::to_time_t(msg.time);
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(msg.time.time_since_epoch()).count() % 1000;
    std::tm tm{};
    gmtime_r(&t, &tm);
    char ts[64];
    std::snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                  tm.tm_hour, tm.tm_min, tm.tm_sec, int(ms));
    dest.append(std::string_view("{\"ts\":\""));
    dest.append(std::string_view(ts));
    dest.append(std::string_view("\",\"level\":\""));
    auto level = spdlog::level::to_string_view(msg.level);
    dest.append(level.data(), level.data() + level.size());
    dest.append(std::string_view("\",\"thread\":"));
    auto tid = std::to_string(msg.thread_id);
    dest.append(std::string_view(tid));
    dest.append(std::string_view(",\"msg\":"));
    append_json_string(dest, msg.payload);
    dest.append(std::string_view("}\n"));
  }
  std::unique_ptr<spdlog::formatter> clone() const override { return std::make_unique<JsonFormatter>(); }
};

std::mutex g_sink_mutex;
std::shared_ptr<ReopenableFileSink> g_file_sink;

}  // namespace

std::string setup_logging(const LogOptions& options) {
  // Always stdout (the journal under systemd, the container's log under docker), and the
  // file as well when one is configured: an operator finds the lines wherever they look.
  std::vector<spdlog::sink_ptr> sinks{std::make_shared<spdlog::sinks::stdout_sink_mt>()};
  if (!options.file.empty()) {
    try {
      auto file = std::make_shared<ReopenableFileSink>(options.file);
      std::lock_guard<std::mutex> lock(g_sink_mutex);
      g_file_sink = file;
      sinks.push_back(file);
    } catch (const std::exception& e) {
      return "cannot open log file " + options.file + ": " + e.what();
    }
  }
  for (auto& sink : sinks) {
    if (options.format == "json") sink->set_formatter(std::make_unique<JsonFormatter>());
    else
      sink->set_formatter(std::make_unique<spdlog::pattern_formatter>("%Y-%m-%dT%H:%M:%S.%eZ %-5l %v", spdlog::pattern_time_type::utc));
  }
  auto logger = std::make_shared<spdlog::logger>("hub", sinks.begin(), sinks.end());
  logger->set_level(spdlog::level::from_str(options.level));
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
  return {};
}

void reopen_log_file() {
  std::shared_ptr<ReopenableFileSink> sink;
  {
    std::lock_guard<std::mutex> lock(g_sink_mutex);
    sink = g_file_sink;
  }
  if (sink) sink->reopen();
}

}  // namespace hub::runtime
