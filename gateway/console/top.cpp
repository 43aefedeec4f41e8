// hivectl top: the cluster on one screen, refreshed every second: nodes and their health,
// tasks/s and latency with sparklines, queue depth per priority, the busiest actors (by
// mailbox, message rate or errors), open breakers and firing alerts. Keys sort, filter by
// node and kind, drill into an actor, and quit. Reads the HTTP API like any client.
#include "gateway/console/client.hpp"

#include <langinfo.h>
#include <ncurses.h>

#include <chrono>
#include <clocale>
#include <cmath>
#include <deque>
#include <map>
#include <set>

namespace hub::console {

namespace {

constexpr size_t kHistory = 60;

struct Sample {
  json nodes, status, actors, breakers, alerts;
  std::string error;
};

struct View {
  std::vector<std::string> sorts{"mailbox", "messages", "errors"};
  size_t sort = 0;
  std::vector<std::string> kinds{""};
  size_t kind = 0;
  std::vector<std::string> node_names{""};
  size_t node = 0;
  int selected = 0;
  bool help = false;
  bool utf8 = false;
  std::deque<double> rate, p95;
  double last_finished = -1;
  std::chrono::steady_clock::time_point last_at;
  std::map<std::string, std::pair<double, std::chrono::steady_clock::time_point>> messages;  // node/id -> count, when
  std::map<std::string, double> message_rate;
};

std::string fixed(double v, int decimals = 1) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

std::string sparkline(const std::deque<double>& values, bool utf8, size_t width) {
  static const char* blocks[] = {"\u2581", "\u2582", "\u2583", "\u2584", "\u2585", "\u2586", "\u2587", "\u2588"};
  static const char ascii[] = " .:-=+*#";
  double top = 0;
  for (double v : values) top = std::max(top, v);
  std::string out;
  size_t start = values.size() > width ? values.size() - width : 0;
  for (size_t i = start; i < values.size(); ++i) {
    int level = top > 0 ? int(std::lround(values[i] / top * 7)) : 0;
    if (utf8) out += blocks[level];
    else out += ascii[level];
  }
  return out;
}

std::string query(const View& v) {
  std::string path = "/api/actors?limit=200&sort=" + v.sorts[v.sort];
  if (!v.kinds[v.kind].empty()) path += "&kind=" + v.kinds[v.kind];
  if (!v.node_names[v.node].empty()) path += "&node=" + v.node_names[v.node];
  return path;
}

Sample fetch(Client& client, const View& v) {
  Sample s;
  auto nodes = client.call("GET", "/api/cluster/nodes");
  if (!nodes.ok()) {
    s.error = nodes.problem();
    return s;
  }
  s.nodes = nodes.data();
  s.status = client.call("GET", "/api/hive/status").data();
  s.actors = client.call("GET", query(v)).data();
  s.breakers = client.call("GET", "/api/breakers?state=open").data();
  s.alerts = client.call("GET", "/api/monitoring/alerts").data();
  return s;
}

void learn(View& v, const Sample& s) {
  auto now = std::chrono::steady_clock::now();
  if (s.status.is_object() && s.status.contains("latency")) {
    double finished = s.status["latency"].value("finished_total", 0.0);
    if (v.last_finished >= 0) {
      double seconds = std::chrono::duration<double>(now - v.last_at).count();
      v.rate.push_back(seconds > 0 ? std::max(0.0, finished - v.last_finished) / seconds : 0);
      v.p95.push_back(s.status["latency"].value("p95_ms", 0.0));
      if (v.rate.size() > kHistory) v.rate.pop_front(), v.p95.pop_front();
    }
    v.last_finished = finished;
    v.last_at = now;
  }
  if (s.nodes.is_object())
    for (const auto& n : s.nodes["nodes"]) {
      auto name = n.value("name", "");
      if (std::find(v.node_names.begin(), v.node_names.end(), name) == v.node_names.end()) v.node_names.push_back(name);
    }
  if (s.actors.is_object()) {
    for (const auto& [node, kinds] : s.actors["by_kind"].items())
      for (const auto& [kind, count] : kinds.items())
        if (std::find(v.kinds.begin(), v.kinds.end(), kind) == v.kinds.end()) v.kinds.push_back(kind);
    for (const auto& a : s.actors["actors"]) {
      auto key = cell(a["node"]) + "/" + cell(a["id"]);
      double count = a.value("messages", 0.0);
      auto it = v.messages.find(key);
      if (it != v.messages.end()) {
        double seconds = std::chrono::duration<double>(now - it->second.second).count();
        v.message_rate[key] = seconds > 0 ? (count - it->second.first) / seconds : 0;
      }
      v.messages[key] = {count, now};
    }
  }
}

void line(int y, const std::string& text, int attrs = 0) {
  if (y >= LINES) return;
  if (attrs) attron(attrs);
  mvaddnstr(y, 0, text.c_str(), COLS);
  if (attrs) attroff(attrs);
}

std::string pad(const std::string& s, size_t width) {
  if (s.size() >= width) return s.substr(0, width - (width > 1 ? 1 : 0)) + (width > 1 ? " " : "");
  return s + std::string(width - s.size(), ' ');
}

std::vector<json> actor_rows(const Sample& s) {
  std::vector<json> rows;
  if (s.actors.is_object())
    for (const auto& a : s.actors["actors"]) rows.push_back(a);
  return rows;
}

void draw(const Options& o, View& v, const Sample& s) {
  erase();
  int y = 0;
  line(y++, "hivectl top  " + o.url + "   sort: " + v.sorts[v.sort] + "   kind: " + (v.kinds[v.kind].empty() ? "all" : v.kinds[v.kind]) +
                "   node: " + (v.node_names[v.node].empty() ? "all" : v.node_names[v.node]) + "   (? keys, q quit)",
       A_REVERSE);
  if (!s.error.empty()) {
    line(y++, "cannot read the node: " + s.error + " (retrying every second)", A_BOLD);
    refresh();
    return;
  }
  if (v.help) {
    for (const char* text : {"keys:", "  q        quit", "  s        sort actors by mailbox / message count / errors",
                             "  k        next kind filter (agent, task, scheduler, supervisor, ...)", "  n        next node filter",
                             "  up/down  select an actor", "  enter    drill into the selected actor (any key returns)",
                             "  ?        this help"})
      line(++y, text);
    refresh();
    return;
  }
  line(y++, "NODES", A_BOLD);
  line(y++, pad("NODE", 22) + pad("STATUS", 12) + pad("ROLE", 8) + pad("AGENTS", 8) + pad("RUNNING", 9) + pad("QUEUED", 8) +
                pad("CPU%", 7) + pad("MEM MB", 9) + "HEARTBEAT");
  for (const auto& n : s.nodes["nodes"]) {
    auto hb = n.value("self", false) ? std::string("self") : cell(n["last_heartbeat_age_ms"]) + " ms";
    line(y++, pad(cell(n["name"]), 22) + pad(cell(n["status"]), 12) + pad(cell(n["role"]), 8) + pad(cell(n["agents"]), 8) +
                  pad(cell(n["running_tasks"]), 9) + pad(cell(n["queued_tasks"]), 8) + pad(fixed(n.value("cpu_percent", 0.0)), 7) +
                  pad(fixed(n.value("memory_bytes", 0.0) / 1048576.0, 0), 9) + hb);
  }
  ++y;
  const auto& st = s.status;
  double rate = v.rate.empty() ? 0 : v.rate.back();
  line(y++, "TASKS  " + pad(fixed(rate) + " tasks/s", 16) + sparkline(v.rate, v.utf8, 60), A_BOLD);
  if (st.is_object()) {
    const auto& lat = st["latency"];
    line(y++, "       latency p50 " + fixed(lat.value("p50_ms", 0.0)) + " ms  p95 " + fixed(lat.value("p95_ms", 0.0)) + " ms  p99 " +
                  fixed(lat.value("p99_ms", 0.0)) + " ms (last " + fixed(lat.value("window_seconds", 0.0), 0) + " s)   p95 " +
                  sparkline(v.p95, v.utf8, 40));
    const auto& q = st["queue_depth"];
    line(y++, "       queued: critical " + cell(q["critical"]) + "  high " + cell(q["high"]) + "  medium " + cell(q["medium"]) +
                  "  low " + cell(q["low"]) + "    running " + cell(st["tasks"]["running"]) + "  live " + cell(st["tasks"]["live"]) +
                  "    tasks by status " + st["tasks"]["by_status"].dump());
  }
  ++y;
  auto rows = actor_rows(s);
  v.selected = std::clamp(v.selected, 0, std::max(0, int(rows.size()) - 1));
  line(y++, "ACTORS  " + cell(s.actors.value("total", json(0))) + " matching", A_BOLD);
  line(y++, pad("ACTOR", 24) + pad("KIND", 14) + pad("NAME", 26) + pad("STATE", 34) + pad("MAILBOX", 9) + pad("MSG/S", 9) +
                pad("MESSAGES", 10) + "ERRORS");
  int room = LINES - y - 6;
  for (int i = 0; i < int(rows.size()) && i < room; ++i) {
    const auto& a = rows[size_t(i)];
    auto key = cell(a["node"]) + "/" + cell(a["id"]);
    auto rate_it = v.message_rate.find(key);
    line(y++, pad(key, 24) + pad(cell(a["kind"]), 14) + pad(cell(a["name"]), 26) + pad(cell(a["state"]), 34) +
                  pad(cell(a["mailbox_size"]), 9) + pad(rate_it == v.message_rate.end() ? "-" : fixed(rate_it->second), 9) +
                  pad(cell(a["messages"]), 10) + cell(a["errors"]),
         i == v.selected ? A_REVERSE : 0);
  }
  y = std::max(y, LINES - 5);
  std::string breakers = "BREAKERS open: ";
  size_t open = 0;
  if (s.breakers.is_object())
    for (const auto& b : s.breakers["breakers"]) breakers += (open++ ? ", " : "") + cell(b["id"]);
  line(y++, open ? breakers : "BREAKERS open: none", open ? A_BOLD : 0);
  std::string alerts = "ALERTS firing: ";
  size_t firing = 0;
  if (s.alerts.is_object())
    for (const auto& a : s.alerts["active"]) alerts += (firing++ ? ", " : "") + cell(a["name"]) + " (" + cell(a["message"]) + ")";
  line(y++, firing ? alerts : "ALERTS firing: none", firing ? A_BOLD : 0);
  refresh();
}

void drill(Client& client, const json& a) {
  auto r = client.call("GET", "/api/actors/" + cell(a["node"]) + "/" + cell(a["id"]));
  erase();
  int y = 0;
  line(y++, "actor " + cell(a["node"]) + "/" + cell(a["id"]) + "   (any key returns)", A_REVERSE);
  if (!r.ok()) {
    line(y++, r.problem());
  } else {
    const auto& d = r.data();
    for (const char* k : {"kind", "name", "state", "mailbox_size", "messages", "errors", "busy_ms", "last_message_at", "started_at"})
      line(y++, pad(k, 18) + cell(d[k]));
    if (d.contains("parent_actor") && d["parent_actor"].is_object())
      line(y++, pad("parent", 18) + cell(d["parent_actor"]["kind"]) + " " + cell(d["parent_actor"]["name"]));
    if (d.contains("summary") && !d["summary"].is_null()) {
      ++y;
      std::string text = d["summary"].dump(2);
      size_t start = 0;
      while (start < text.size() && y < LINES) {
        auto end = text.find('\n', start);
        line(y++, text.substr(start, end - start));
        if (end == std::string::npos) break;
        start = end + 1;
      }
    }
  }
  refresh();
  timeout(-1);
  getch();
  timeout(100);
}

}  // namespace

int run_top(const Options& o) {
  std::setlocale(LC_ALL, "");
  View v;
  v.utf8 = std::string(nl_langinfo(CODESET)) == "UTF-8";
  Options keep = o;
  keep.timeout_s = 5;
  Client client(keep, true);
  initscr();
  cbreak();
  noecho();
  keypad(stdscr, TRUE);
  curs_set(0);
  timeout(100);
  Sample s = fetch(client, v);
  learn(v, s);
  draw(o, v, s);
  auto next = std::chrono::steady_clock::now() + std::chrono::seconds(1);
  while (true) {
    int ch = getch();
    bool redraw = true;
    if (ch == 'q' || ch == 'Q') break;
    else if (ch == 's') v.sort = (v.sort + 1) % v.sorts.size();
    else if (ch == 'k') v.kind = (v.kind + 1) % v.kinds.size();
    else if (ch == 'n') v.node = (v.node + 1) % v.node_names.size();
    else if (ch == '?') v.help = !v.help;
    else if (ch == KEY_UP) v.selected -= 1;
    else if (ch == KEY_DOWN) v.selected += 1;
    else if (ch == '\n' || ch == KEY_ENTER) {
      auto rows = actor_rows(s);
      if (v.selected >= 0 && v.selected < int(rows.size())) drill(client, rows[size_t(v.selected)]);
    } else redraw = false;
    if (ch == 's' || ch == 'k' || ch == 'n') next = std::chrono::steady_clock::now();  // refetch with the new filter
    if (std::chrono::steady_clock::now() >= next) {
      s = fetch(client, v);
      learn(v, s);
      next = std::chrono::steady_clock::now() + std::chrono::seconds(1);
      redraw = true;
    }
    if (redraw) draw(o, v, s);
  }
  endwin();
  return 0;
}

}  // namespace hub::console
