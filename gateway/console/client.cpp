#include "gateway/console/client.hpp"

#include <httplib.h>

#include <iomanip>
#include <iostream>
#include <sstream>

namespace hub::console {

namespace {

httplib::Headers auth_headers(const Options& o) {
  httplib::Headers headers;
  if (!o.api_key.empty()) headers.emplace("X-API-Key", o.api_key);
  if (!o.token.empty()) headers.emplace("Authorization", "Bearer " + o.token);
  return headers;
}

}  // namespace

const json& Reply::data() const {
  static const json none;
  if (!body.is_object() || !body.contains("data")) return none;
  return body["data"];
}

std::string Reply::problem() const {
  if (!transport_error.empty()) return transport_error;
  if (ok()) return {};
  std::string message = body.is_object() && body.contains("error") && body["error"].is_object()
                            ? body["error"].value("message", "")
                            : "";
  return "HTTP " + std::to_string(status) + (message.empty() ? "" : ": " + message);
}

struct Client::Impl {
  Options o;
  httplib::Client http;
  Impl(const Options& options, bool keep_alive) : o(options), http(options.url) {
    http.set_connection_timeout(5, 0);
    http.set_read_timeout(o.timeout_s, 0);
    http.set_keep_alive(keep_alive);
  }
};

Client::Client(const Options& o, bool keep_alive) : impl_(std::make_unique<Impl>(o, keep_alive)) {}
Client::~Client() = default;

Reply Client::call(const std::string& method, const std::string& path, const json* body) {
  auto headers = auth_headers(impl_->o);
  auto& http = impl_->http;
  httplib::Result res = method == "GET"    ? http.Get(path.c_str(), headers)
                        : method == "POST" ? http.Post(path.c_str(), headers, body ? body->dump() : "{}", "application/json")
                                           : http.Delete(path.c_str(), headers);
  Reply r;
  if (!res) {
    r.transport_error = "cannot reach " + impl_->o.url + ": " + httplib::to_string(res.error());
    return r;
  }
  r.status = res->status;
  r.body = json::parse(res->body, nullptr, false);
  return r;
}

std::string Client::stream(const std::string& path,
                           const std::function<bool(const std::string&, const json&)>& on_event) {
  auto headers = auth_headers(impl_->o);
  headers.emplace("Accept", "text/event-stream");
  std::string buffer, event, data, refusal;
  bool stopped = false;
  int status = 0;
  httplib::Client http(impl_->o.url);
  http.set_connection_timeout(5, 0);
  http.set_read_timeout(60, 0);
  http.set_follow_location(true);
  auto res = http.Get(
      path.c_str(), headers,
      [&](const httplib::Response& response) {
        status = response.status;
        return true;
      },
      [&](const char* bytes, size_t n) {
        if (status != 200) {
          refusal.append(bytes, n);
          return true;
        }
        buffer.append(bytes, n);
        size_t end;
        while ((end = buffer.find('\n')) != std::string::npos) {
          auto line = buffer.substr(0, end);
          buffer.erase(0, end + 1);
          if (line.empty()) {
            if (!data.empty() || !event.empty()) {
              auto parsed = json::parse(data, nullptr, false);
              if (!on_event(event.empty() ? "message" : event, parsed.is_discarded() ? json(data) : parsed)) {
                stopped = true;
                return false;
              }
            }
            event.clear();
            data.clear();
          } else if (line.rfind("event: ", 0) == 0) {
            event = line.substr(7);
          } else if (line.rfind("data: ", 0) == 0) {
            data += line.substr(6);
          }
        }
        return true;
      });
  if (stopped) return {};
  if (status != 0 && status != 200) {
    Reply r;
    r.status = status;
    r.body = json::parse(refusal, nullptr, false);
    return r.problem();
  }
  if (!res) return "cannot reach " + impl_->o.url + ": " + httplib::to_string(res.error());
  return {};
}

Reply call(const Options& o, const std::string& method, const std::string& path, const json* body) {
  return Client(o).call(method, path, body);
}

int report_failure(const Reply& r) {
  std::cerr << "hivectl: " << r.problem() << "\n";
  return r.transport_error.empty() ? 1 : 2;
}

std::string cell(const json& v) {
  if (v.is_null()) return "-";
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number_float()) {
    std::ostringstream o;
    o << std::fixed << std::setprecision(2) << v.get<double>();
    return o.str();
  }
  return v.dump();
}

void table(const std::vector<std::string>& headers, const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width(headers.size());
  for (size_t i = 0; i < headers.size(); ++i) width[i] = headers[i].size();
  for (const auto& row : rows)
    for (size_t i = 0; i < row.size() && i < width.size(); ++i) width[i] = std::max(width[i], row[i].size());
  auto line = [&](const std::vector<std::string>& row) {
    for (size_t i = 0; i < row.size(); ++i) std::cout << std::left << std::setw(int(width[i]) + 2) << row[i];
    std::cout << "\n";
  };
  line(headers);
  for (const auto& row : rows) line(row);
}

bool split_actor(const std::string& ref, std::string& node, std::string& id) {
  auto slash = ref.rfind('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 == ref.size()) return false;
  node = ref.substr(0, slash);
  id = ref.substr(slash + 1);
  return id.find_first_not_of("0123456789") == std::string::npos;
}

void print_actor(const json& a) {
  std::cout << "actor:     " << cell(a["node"]) << "/" << cell(a["id"]) << "\nkind:      " << cell(a["kind"])
            << "\nname:      " << cell(a["name"]) << "\nstate:     " << cell(a["state"]) << "\nmailbox:   "
            << cell(a["mailbox_size"]) << "\nmessages:  " << cell(a["messages"]) << "\nerrors:    " << cell(a["errors"])
            << "\nbusy:      " << cell(a["busy_ms"]) << " ms (" << cell(a.value("busy_percent_since_start", json())) << " %)"
            << "\nlast msg:  " << cell(a["last_message_at"]) << "\nstarted:   " << cell(a["started_at"]) << "\n";
  if (a.contains("parent_actor") && a["parent_actor"].is_object())
    std::cout << "parent:    " << cell(a["parent_actor"]["kind"]) << " " << cell(a["parent_actor"]["name"]) << " (#"
              << cell(a["parent_actor"]["id"]) << ")\n";
  if (a.contains("summary") && !a["summary"].is_null()) std::cout << "summary:\n" << a["summary"].dump(2) << "\n";
}

void print_trace_event(const std::string& event, const json& d) {
  if (event == "message")
    std::cout << cell(d["at"]) << "  " << std::left << std::setw(12) << cell(d["type"]) << " from " << std::setw(40)
              << (d.value("sender", "").empty() ? std::string("(anonymous)") : cell(d["sender"])) << " " << std::setw(6)
              << cell(d["size"]) << " B  " << cell(d["handling_us"]) << " us\n";
  else
    std::cout << "-- " << event << " " << d.dump() << "\n";
  std::cout.flush();
}

}  // namespace hub::console
