// What every hivectl command shares: the connection options, one HTTP call to the node (in
// the API's JSON envelope), Server-Sent-Events streams, and how answers are printed (tables
// for people, --json for scripts). Never exits the process; errors are values.
#pragma once

#include <nlohmann/json.hpp>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace hub::console {

using json = nlohmann::json;

struct Options {
  std::string url;
  std::string api_key;
  std::string token;
  bool as_json = false;
  int timeout_s = 30;
};

struct Reply {
  int status = 0;
  json body;
  std::string transport_error;
  bool ok() const { return transport_error.empty() && status >= 200 && status < 300; }
  // The envelope's data (null when the call failed).
  const json& data() const;
  // One line saying what went wrong ("" when ok).
  std::string problem() const;
};

// A connection to the node kept open between calls (hivectl top, the console).
class Client {
 public:
  explicit Client(const Options& o, bool keep_alive = false);
  ~Client();
  Reply call(const std::string& method, const std::string& path, const json* body = nullptr);
  // Reads an SSE stream; on_event(event, data) returns false to stop. Returns the error
  // ("" when the stream ended normally or was stopped).
  std::string stream(const std::string& path, const std::function<bool(const std::string&, const json&)>& on_event);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

Reply call(const Options& o, const std::string& method, const std::string& path, const json* body = nullptr);
// Prints a failed reply in one line (stderr) and returns the exit code for it.
int report_failure(const Reply& r);
std::string cell(const json& v);
void table(const std::vector<std::string>& headers, const std::vector<std::vector<std::string>>& rows);
// "node/id" -> (node, id); false when malformed.
bool split_actor(const std::string& ref, std::string& node, std::string& id);
// Prints one actor (GET /api/actors/{node}/{id} data) for people.
void print_actor(const json& a);
// Prints one traced message / one event of the feed, one line each.
void print_trace_event(const std::string& event, const json& data);

// Full-screen live view (ncurses); returns the exit code.
int run_top(const Options& o);
// Interactive shell (readline); returns the exit code.
int run_console(const Options& o);

}  // namespace hub::console
