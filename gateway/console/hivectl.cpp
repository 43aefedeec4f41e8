// hivectl: the operator console. One-shot commands over the HTTP API with tables for people
// and --json for scripts; `top` (a live full-screen view) and `console` (an interactive
// shell). Talks to one node (--url, or HIVE_URL; default http://127.0.0.1:3001).
#include "gateway/console/client.hpp"
#include "runtime/version.hpp"

#include <CLI/CLI.hpp>

#include <cctype>
#include <cstdlib>
#include <functional>
#include <iomanip>
#include <iostream>

using namespace hub::console;

namespace {

int show(const Options& o, const Reply& r, const std::function<void(const json&)>& human) {
  if (!r.ok()) {
    if (o.as_json && r.body.is_object()) std::cout << r.body.dump(2) << "\n";
    return report_failure(r);
  }
  if (o.as_json) std::cout << r.data().dump(2) << "\n";
  else human(r.data());
  return 0;
}

// Prints an event stream until it ends: one JSON line per event with --json, else `human`.
int follow(const Options& o, const std::string& path, const std::function<void(const std::string&, const json&)>& human) {
  auto error = Client(o).stream(path, [&](const std::string& event, const json& data) {
    if (o.as_json) std::cout << json{{"event", event}, {"data", data}}.dump() << std::endl;
    else human(event, data);
    return true;
  });
  if (error.empty()) return 0;
  std::cerr << "hivectl: " << error << "\n";
  return 1;
}

int bad_actor_ref(const std::string& ref) {
  std::cerr << "hivectl: \"" << ref << "\" is not NODE/ID (as `hivectl actors` shows them, e.g. node-1:3001/42)\n";
  return 2;
}

std::string percent_encode(const std::string& s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') out += char(c);
    else out += '%', out += hex[c >> 4], out += hex[c & 15];
  }
  return out;
}

void print_task(const json& t) {
  std::cout << "id:        " << cell(t["id"]) << "\nstatus:    " << cell(t["status"]) << "\ntype:      " << cell(t["type"])
            << "\npriority:  " << cell(t["priority"]) << "\nattempts:  " << cell(t["attempts"]) << "/"
            << cell(t["max_attempts"]) << "\nagent:     " << cell(t["assigned_agent"]) << "\ncreated:   "
            << cell(t["created_at"]) << "\ncompleted: " << cell(t["completed_at"]) << "\n";
  if (!t["result"].is_null()) std::cout << "result:    " << t["result"].dump() << "\n";
  if (!t["error"].is_null()) std::cout << "error:     " << cell(t["error"]["type"]) << ": " << cell(t["error"]["message"]) << "\n";
}

// The supervision tree, one line per child, indented by depth.
void print_tree(const json& node, int depth) {
  std::string pad(size_t(depth) * 2, ' ');
  std::cout << pad << cell(node["name"]) << "  (" << cell(node["strategy"]) << ", " << cell(node.value("restarts", json(0)))
            << " restarts; at most " << cell(node.value("max_restarts", json())) << " per "
            << cell(node.value("period_seconds", json())) << " s)";
  if (node.contains("children_count")) std::cout << "  " << cell(node["children_count"]) << " live children";
  std::cout << "\n";
  if (!node.contains("children") || !node["children"].is_array()) return;
  for (const auto& c : node["children"]) {
    if (c.contains("supervises") && c["supervises"].is_object()) {
      print_tree(c["supervises"], depth + 1);
      continue;
    }
    bool alive = !c.contains("alive") || !c["alive"].is_boolean() || c["alive"].get<bool>();
    bool has_reason = c.contains("last_reason") && !c["last_reason"].is_null();
    std::cout << pad << "  " << cell(c.value("kind", json())) << " " << cell(c.value("id", json())) << "  restarts "
              << cell(c.value("restarts", json(0))) << (alive ? "" : "  DOWN") << (has_reason ? "  last: " + cell(c["last_reason"]) : "")
              << "\n";
  }
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  const char* env_url = std::getenv("HIVE_URL");
  const char* env_key = std::getenv("HIVE_API_KEY");
  const char* env_token = std::getenv("HIVE_TOKEN");
  o.token = env_token ? env_token : "";
  o.url = env_url ? env_url : "http://127.0.0.1:3001";
  o.api_key = env_key ? env_key : "";

  CLI::App app{"hivectl: operate an AI Orchestrator Hub node from the shell"};
  app.require_subcommand(1);
  app.fallthrough();
  app.add_option("--url", o.url, "node URL (env HIVE_URL)");
  app.add_option("--api-key", o.api_key, "API key (env HIVE_API_KEY)");
  app.add_option("--token", o.token, "bearer token from POST /api/auth/login (env HIVE_TOKEN)");
  app.add_flag("--json", o.as_json, "print the raw JSON data");

  auto* health = app.add_subcommand("health", "the node's health (exit 1 when unhealthy)");
  bool detailed = false;
  health->add_flag("--detailed", detailed, "per component");
  auto* version = app.add_subcommand("version", "versions of hivectl and of the node");
  auto* status = app.add_subcommand("status", "the hive at a glance: agents, queues, throughput");
  auto* agents = app.add_subcommand("agents", "list agents");
  auto* tasks = app.add_subcommand("tasks", "list tasks, newest first");
  std::string task_status, task_type;
  int limit = 20;
  tasks->add_option("--status", task_status, "pending|assigned|running|completed|failed|cancelled");
  tasks->add_option("--type", task_type, "task type");
  tasks->add_option("--limit", limit, "how many (1-1000)");
  auto* submit = app.add_subcommand("submit", "submit a task");
  std::string description, type = "echo", priority = "medium", payload = "null";
  submit->add_option("description", description, "what the task is");
  submit->add_option("--description,-d", description, "what the task is (instead of the positional argument)");
  submit->add_option("--type", type, "task type (builtin: echo, sleep, fail, hash)");
  submit->add_option("--priority", priority, "low|medium|high|critical");
  submit->add_option("--payload", payload, "JSON payload");
  bool submit_wait = false;
  submit->add_flag("--wait", submit_wait, "wait until the task ends");
  auto* wait = app.add_subcommand("wait", "wait until a task ends (exit 1 unless completed)");
  std::string task_id;
  wait->add_option("id", task_id, "task id")->required();
  auto* cancel = app.add_subcommand("cancel", "cancel a task");
  cancel->add_option("id", task_id, "task id")->required();
  auto* task = app.add_subcommand("task", "show one task");
  task->add_option("id", task_id, "task id")->required();
  auto* supervisors = app.add_subcommand("supervisors", "the supervision tree with each child's restarts");
  auto* nodes = app.add_subcommand("nodes", "cluster members: status, role, agents, running tasks, heartbeat age");
  auto* leave = app.add_subcommand("leave", "ask a cluster member to leave: it drains and stops (admin)");
  std::string leave_name;
  leave->add_option("name", leave_name, "node name, as `hivectl nodes` shows it")->required();
  auto* breakers = app.add_subcommand("breakers", "circuit breakers: state, failures, last transition");
  std::string breaker_state;
  breakers->add_option("--state", breaker_state, "closed|open|half_open");
  auto* breaker_reset = app.add_subcommand("breaker-reset", "close a circuit breaker by hand (admin)");
  std::string breaker_id;
  breaker_reset->add_option("id", breaker_id, "breaker id, as `hivectl breakers` shows it")->required();

  auto* actors = app.add_subcommand("actors", "actors inside the cluster: kind, state, mailbox, messages, errors");
  std::string actor_node, actor_kind, actor_sort;
  int actor_limit = 50;
  actors->add_option("--node", actor_node, "only this node");
  actors->add_option("--kind", actor_kind, "only this kind (agent, task, scheduler, supervisor, store, ...)");
  actors->add_option("--sort", actor_sort, "mailbox|messages|errors (largest first)");
  actors->add_option("--limit", actor_limit, "how many (1-10000)");
  auto* actor = app.add_subcommand("actor", "one actor in detail, with its own state summary");
  std::string actor_ref;
  actor->add_option("ref", actor_ref, "NODE/ID, as `hivectl actors` shows it")->required();
  auto* kill = app.add_subcommand("kill", "kill one actor (admin); its supervisor restarts it");
  kill->add_option("ref", actor_ref, "NODE/ID")->required();
  auto* trace = app.add_subcommand("trace", "stream the messages one actor handles");
  int trace_seconds = 10, trace_sample = 1;
  trace->add_option("ref", actor_ref, "NODE/ID")->required();
  trace->add_option("--seconds", trace_seconds, "how long (1-300)");
  trace->add_option("--sample", trace_sample, "record every n-th message");
  auto* alerts = app.add_subcommand("alerts", "alerts firing now and recently resolved");
  auto* events = app.add_subcommand("events", "follow the live event feed (tasks, agents, breakers, alerts, membership)");
  int events_seconds = 86400;
  std::string events_types;
  events->add_option("--seconds", events_seconds, "stop after this long");
  events->add_option("--types", events_types, "comma list: task,agent,breaker,alert,membership");
  auto* top = app.add_subcommand("top", "live full-screen view of the cluster (q quits, ? for keys)");
  auto* console = app.add_subcommand("console", "interactive shell: ls, cd, inspect, trace, kill, submit, help");

  CLI11_PARSE(app, argc, argv);
  while (!o.url.empty() && o.url.back() == '/') o.url.pop_back();

  if (*version) {
    std::cout << "hivectl " << hub::kVersion << "\n";
    auto r = call(o, "GET", "/health");
    if (r.status == 200 || r.status == 503) std::cout << "node    " << cell(r.body["data"]["version"]) << " at " << o.url << "\n";
    else std::cout << "node    unreachable at " << o.url << "\n";
    return 0;
  }
  if (*health) {
    auto r = call(o, "GET", detailed ? "/health?detailed=true" : "/health");
    if (!r.transport_error.empty()) return report_failure(r);
    const auto& d = r.body["data"];
    if (o.as_json) std::cout << d.dump(2) << "\n";
    else {
      std::cout << cell(d["status"]) << "  node " << cell(d["node"]) << "  version " << cell(d["version"]) << "  up "
                << cell(d["uptime_seconds"]) << " s\n";
      if (d.contains("components"))
        for (const auto& [name, c] : d["components"].items())
          std::cout << "  " << std::left << std::setw(12) << name << cell(c["status"])
                    << (c.contains("reason") ? "  (" + cell(c["reason"]) + ")" : "") << "\n";
    }
    return r.status == 200 ? 0 : 1;
  }
  if (*status) {
    return show(o, call(o, "GET", "/api/hive/status"), [](const json& d) {
      std::cout << "node " << cell(d["node"]) << "  version " << cell(d["version"]) << "  up " << cell(d["uptime_seconds"]) << " s\n";
      std::cout << "agents: " << cell(d["agents"]["total"]) << "  by state " << d["agents"]["by_state"].dump() << "\n";
      std::cout << "tasks:  " << d["tasks"]["by_status"].dump() << "  running " << cell(d["tasks"]["running"]) << "\n";
      std::cout << "queues: " << d["queue_depth"].dump() << "\n";
      std::cout << "throughput: " << cell(d["throughput"]["tasks_per_second"]) << " tasks/s over the last minute\n";
    });
  }
  if (*agents) {
    return show(o, call(o, "GET", "/api/agents?limit=1000"), [](const json& d) {
      std::vector<std::vector<std::string>> rows;
      for (const auto& a : d["agents"]) {
        std::string caps;
        for (const auto& c : a["capabilities"]) caps += (caps.empty() ? "" : ",") + cell(c["name"]) + ":" + cell(c["proficiency"]);
        rows.push_back({cell(a["id"]), cell(a["name"]), cell(a["type"]), cell(a["node"]), cell(a["state"]),
                        cell(a["running_tasks"]) + "/" + cell(a["max_concurrent_tasks"]), cell(a["tasks_completed"]),
                        cell(a["tasks_failed"]), caps});
      }
      table({"ID", "NAME", "TYPE", "NODE", "STATE", "LOAD", "DONE", "FAILED", "CAPABILITIES"}, rows);
    });
  }
  if (*tasks) {
    std::string path = "/api/tasks?limit=" + std::to_string(limit);
    if (!task_status.empty()) path += "&status=" + task_status;
    if (!task_type.empty()) path += "&type=" + task_type;
    return show(o, call(o, "GET", path), [](const json& d) {
      std::vector<std::vector<std::string>> rows;
      for (const auto& t : d["tasks"])
        rows.push_back({cell(t["id"]), cell(t["status"]), cell(t["type"]), cell(t["priority"]),
                        cell(t["attempts"]), cell(t["created_at"]), cell(t["description"]).substr(0, 40)});
      table({"ID", "STATUS", "TYPE", "PRIORITY", "ATTEMPTS", "CREATED", "DESCRIPTION"}, rows);
      std::cout << d["tasks"].size() << " of " << cell(d["total"]) << "\n";
    });
  }
  if (*task) return show(o, call(o, "GET", "/api/tasks/" + task_id), print_task);
  if (*supervisors) return show(o, call(o, "GET", "/api/supervisors"), [](const json& d) { print_tree(d["root"], 0); });
  if (*nodes) {
    return show(o, call(o, "GET", "/api/cluster/nodes"), [](const json& d) {
      std::vector<std::vector<std::string>> rows;
      for (const auto& n : d["nodes"]) {
        auto age = n["self"].get<bool>() ? std::string("self") : cell(n["last_heartbeat_age_ms"]) + " ms ago";
        rows.push_back({cell(n["name"]), cell(n["status"]), cell(n["role"]), cell(n["http_address"]), cell(n["agents"]),
                        cell(n["running_tasks"]), cell(n["queued_tasks"]), age});
      }
      table({"NODE", "STATUS", "ROLE", "HTTP", "AGENTS", "RUNNING", "QUEUED", "HEARTBEAT"}, rows);
    });
  }
  if (*leave)
    return show(o, call(o, "POST", "/api/cluster/nodes/" + leave_name + "/leave"),
                [](const json& d) { std::cout << cell(d["name"]) << ": " << cell(d["message"]) << "\n"; });
  if (*breakers) {
    return show(o, call(o, "GET", "/api/breakers" + (breaker_state.empty() ? "" : "?state=" + breaker_state)), [](const json& d) {
      std::vector<std::vector<std::string>> rows;
      for (const auto& b : d["breakers"])
        rows.push_back({cell(b["id"]), cell(b["kind"]), cell(b["state"]), cell(b["successes"]), cell(b["failures"]),
                        cell(b["rejected_calls"]), cell(b["trips"]), cell(b["last_transition_at"]), cell(b["last_reason"])});
      table({"ID", "KIND", "STATE", "OK", "FAILED", "REFUSED", "TRIPS", "LAST CHANGE", "REASON"}, rows);
    });
  }
  if (*breaker_reset)
    return show(o, call(o, "POST", "/api/breakers/" + breaker_id + "/reset"), [](const json& b) {
      std::cout << cell(b["id"]) << " is " << cell(b["state"]) << " (" << cell(b["last_reason"]) << ")\n";
    });
  if (*top) return run_top(o);
  if (*console) return run_console(o);
  if (*actors) {
    std::string path = "/api/actors?limit=" + std::to_string(actor_limit);
    if (!actor_node.empty()) path += "&node=" + percent_encode(actor_node);
    if (!actor_kind.empty()) path += "&kind=" + percent_encode(actor_kind);
    if (!actor_sort.empty()) path += "&sort=" + percent_encode(actor_sort);
    return show(o, call(o, "GET", path), [](const json& d) {
      std::vector<std::vector<std::string>> rows;
      for (const auto& a : d["actors"])
        rows.push_back({cell(a["node"]) + "/" + cell(a["id"]), cell(a["kind"]), cell(a["name"]).substr(0, 36),
                        cell(a["state"]).substr(0, 44), cell(a["mailbox_size"]), cell(a["messages"]), cell(a["errors"]),
                        cell(a["last_message_at"])});
      table({"ACTOR", "KIND", "NAME", "STATE", "MAILBOX", "MESSAGES", "ERRORS", "LAST MESSAGE"}, rows);
      std::cout << d["actors"].size() << " of " << cell(d["total"]) << " on " << d["nodes"].size() << " node(s)";
      for (const auto& u : d["unreachable"]) std::cout << "; " << cell(u["node"]) << " did not answer (" << cell(u["reason"]) << ")";
      std::cout << "\n";
    });
  }
  if (*actor || *kill || *trace) {
    std::string node, id;
    if (!split_actor(actor_ref, node, id)) return bad_actor_ref(actor_ref);
    auto base = "/api/actors/" + percent_encode(node) + "/" + id;
    if (*actor) return show(o, call(o, "GET", base), print_actor);
    if (*kill)
      return show(o, call(o, "POST", base + "/kill"), [](const json& d) {
        std::cout << "killed " << cell(d["kind"]) << " " << cell(d["name"]) << " (" << cell(d["node"]) << "/" << cell(d["id"])
                  << "): " << cell(d["message"]) << "\n";
      });
    return follow(o, base + "/trace?seconds=" + std::to_string(trace_seconds) + "&sample=" + std::to_string(trace_sample),
                  print_trace_event);
  }
  if (*events) {
    auto path = "/api/events?seconds=" + std::to_string(events_seconds) + (events_types.empty() ? "" : "&types=" + events_types);
    return follow(o, path, [](const std::string& event, const json& data) {
      std::cout << cell(data.value("at", json())) << "  " << std::left << std::setw(11) << event << " "
                << (data.contains("data") ? data["data"].dump() : data.dump()) << std::endl;
    });
  }
  if (*alerts) {
    return show(o, call(o, "GET", "/api/monitoring/alerts"), [](const json& d) {
      std::vector<std::vector<std::string>> rows;
      for (const auto& a : d["active"])
        rows.push_back({"FIRING", cell(a["severity"]), cell(a["name"]), cell(a["message"]), cell(a["since"]), "-"});
      for (const auto& a : d["resolved"])
        rows.push_back({"resolved", cell(a["severity"]), cell(a["name"]), cell(a["message"]), cell(a["since"]), cell(a["until"])});
      table({"STATUS", "SEVERITY", "NAME", "MESSAGE", "SINCE", "UNTIL"}, rows);
      std::cout << cell(d["total_active"]) << " firing\n";
    });
  }
  if (*cancel) return show(o, call(o, "POST", "/api/tasks/" + task_id + "/cancel"), print_task);
  if (*submit || *wait) {
    if (*submit) {
      if (description.empty()) {
        std::cerr << "hivectl: submit needs a description (positional or --description)\n";
        return 2;
      }
      auto parsed = json::parse(payload, nullptr, false);
      if (parsed.is_discarded()) {
        std::cerr << "hivectl: --payload is not valid JSON\n";
        return 2;
      }
      json body{{"description", description}, {"type", type}, {"priority", priority}, {"payload", parsed}};
      auto r = call(o, "POST", "/api/tasks", &body);
      if (!submit_wait) return show(o, r, print_task);
      if (r.status != 201 && r.status != 200) return report_failure(r);
      task_id = r.body["data"].value("id", "");
    }
    while (true) {
      auto r = call(o, "GET", "/api/tasks/" + task_id + "/wait?timeout_ms=20000");
      if (r.status == 202) continue;
      int rc = show(o, r, print_task);
      if (rc != 0) return rc;
      return r.body["data"].value("status", "") == "completed" ? 0 : 1;
    }
  }
  return 0;
}
