// hivectl console: an interactive shell over the cluster with history and tab completion.
// The cluster reads like a file tree: / lists nodes, /NODE the kinds of actors on it,
// /NODE/KIND the actors of that kind. ls, cd, inspect, trace, kill, submit, status, help.
#include "gateway/console/client.hpp"

#include <readline/history.h>
#include <readline/readline.h>

#include <cstdlib>
#include <iostream>
#include <set>
#include <sstream>

namespace hub::console {

namespace {

const std::vector<std::string> kCommands{"ls", "cd", "inspect", "trace", "kill", "submit", "status", "help", "exit", "quit"};

struct Shell {
  Options o;
  std::unique_ptr<Client> client;
  std::vector<std::string> cwd;          // [], [node], [node, kind]
  std::vector<std::string> nodes;        // seen in the last listing
  std::vector<std::string> kinds;        // of the current node
  std::vector<std::string> actor_ids;    // of the last listing, "node/id" and "id"
};

Shell* shell = nullptr;

std::string path_of(const std::vector<std::string>& cwd) {
  std::string p;
  for (const auto& part : cwd) p += "/" + part;
  return p.empty() ? "/" : p;
}

void help() {
  std::cout << "commands:\n"
               "  ls [PATH]              list: / -> nodes, /NODE -> kinds of actors, /NODE/KIND -> actors\n"
               "  cd PATH                move: a node, then a kind ('..' up, '/' top)\n"
               "  inspect ID|NODE/ID     one actor: state, mailbox, messages, errors and its own summary\n"
               "  trace ID [SECONDS]     stream the messages the actor handles (default 5 s)\n"
               "  kill ID                kill the actor (admin); its supervisor restarts it\n"
               "  submit [--type T] [--priority P] DESCRIPTION   submit a task and print its id\n"
               "  status                 the hive at a glance\n"
               "  help                   this text\n"
               "  exit                   leave (also quit, Ctrl-D)\n"
               "Tab completes commands, nodes, kinds and actor ids; history is kept in ~/.hivectl_history.\n";
}

bool fail(const Reply& r) {
  if (r.ok()) return false;
  std::cout << "error: " << r.problem() << "\n";
  return true;
}

void list_nodes(Shell& s) {
  auto r = s.client->call("GET", "/api/cluster/nodes");
  if (fail(r)) return;
  s.nodes.clear();
  std::vector<std::vector<std::string>> rows;
  for (const auto& n : r.data()["nodes"]) {
    s.nodes.push_back(cell(n["name"]));
    rows.push_back({cell(n["name"]), cell(n["status"]), cell(n["role"]), cell(n["agents"]), cell(n["running_tasks"]),
                    cell(n["queued_tasks"])});
  }
  table({"NODE", "STATUS", "ROLE", "AGENTS", "RUNNING", "QUEUED"}, rows);
  std::cout << "(cd NODE to see its actors)\n";
}

void list_kinds(Shell& s, const std::string& node) {
  auto r = s.client->call("GET", "/api/actors?limit=1&node=" + node);
  if (fail(r)) return;
  s.kinds.clear();
  std::vector<std::vector<std::string>> rows;
  const auto& by_kind = r.data()["by_kind"];
  if (by_kind.contains(node))
    for (const auto& [kind, n] : by_kind[node].items()) {
      s.kinds.push_back(kind);
      rows.push_back({kind, cell(n)});
    }
  table({"KIND", "ACTORS"}, rows);
  std::cout << "(cd KIND to list those actors)\n";
}

void list_actors(Shell& s, const std::string& node, const std::string& kind) {
  auto r = s.client->call("GET", "/api/actors?limit=200&sort=messages&node=" + node + "&kind=" + kind);
  if (fail(r)) return;
  s.actor_ids.clear();
  std::vector<std::vector<std::string>> rows;
  for (const auto& a : r.data()["actors"]) {
    s.actor_ids.push_back(cell(a["id"]));
    s.actor_ids.push_back(cell(a["node"]) + "/" + cell(a["id"]));
    rows.push_back({cell(a["id"]), cell(a["name"]).substr(0, 36), cell(a["state"]).substr(0, 44), cell(a["mailbox_size"]),
                    cell(a["messages"]), cell(a["errors"])});
  }
  table({"ID", "NAME", "STATE", "MAILBOX", "MESSAGES", "ERRORS"}, rows);
  std::cout << r.data()["actors"].size() << " of " << cell(r.data()["total"]) << " actor(s) of kind " << kind << "\n";
}

// Resolves a PATH argument against the current directory.
std::vector<std::string> resolve(const Shell& s, const std::string& arg) {
  std::vector<std::string> out = arg.rfind('/', 0) == 0 ? std::vector<std::string>{} : s.cwd;
  std::stringstream in(arg);
  std::string part;
  while (std::getline(in, part, '/')) {
    if (part.empty() || part == ".") continue;
    if (part == "..") {
      if (!out.empty()) out.pop_back();
    } else {
      out.push_back(part);
    }
  }
  if (out.size() > 2) out.resize(2);
  return out;
}

void ls(Shell& s, const std::vector<std::string>& where) {
  if (where.empty()) list_nodes(s);
  else if (where.size() == 1) list_kinds(s, where[0]);
  else list_actors(s, where[0], where[1]);
}

// "42" (on the current node) or "node/42" -> the API path of the actor; "" when unclear.
std::string actor_path(const Shell& s, const std::string& ref) {
  std::string node, id;
  if (split_actor(ref, node, id)) return "/api/actors/" + node + "/" + id;
  if (!ref.empty() && ref.find_first_not_of("0123456789") == std::string::npos && !s.cwd.empty())
    return "/api/actors/" + s.cwd[0] + "/" + ref;
  std::cout << "error: give an actor as NODE/ID, or cd into a node and give its ID\n";
  return {};
}

void submit(Shell& s, const std::vector<std::string>& args) {
  json body{{"type", "echo"}, {"priority", "medium"}};
  std::string description;
  for (size_t i = 1; i < args.size(); ++i) {
    if ((args[i] == "--type" || args[i] == "--priority") && i + 1 < args.size()) {
      body[args[i].substr(2)] = args[i + 1];
      ++i;
    } else {
      description += (description.empty() ? "" : " ") + args[i];
    }
  }
  if (description.empty()) {
    std::cout << "usage: submit [--type T] [--priority P] DESCRIPTION\n";
    return;
  }
  body["description"] = description;
  auto r = s.client->call("POST", "/api/tasks", &body);
  if (fail(r)) return;
  std::cout << "task " << cell(r.data()["id"]) << " " << cell(r.data()["status"]) << "\n";
}

bool run(Shell& s, const std::string& text) {
  std::vector<std::string> args;
  std::stringstream in(text);
  for (std::string word; in >> word;) args.push_back(word);
  if (args.empty()) return true;
  const auto& cmd = args[0];
  if (cmd == "exit" || cmd == "quit") return false;
  if (cmd == "help" || cmd == "?") help();
  else if (cmd == "ls") ls(s, args.size() > 1 ? resolve(s, args[1]) : s.cwd);
  else if (cmd == "cd") {
    auto target = resolve(s, args.size() > 1 ? args[1] : "/");
    if (target.size() >= 1) {
      auto r = s.client->call("GET", "/api/actors?limit=1&node=" + target[0]);
      if (fail(r)) return true;
      json kinds = r.data()["by_kind"].value(target[0], json::object());
      if (target.size() == 2 && !kinds.contains(target[1])) {
        std::cout << "error: no actors of kind " << target[1] << " on " << target[0] << "\n";
        return true;
      }
      s.kinds.clear();
      for (const auto& [kind, n] : kinds.items()) s.kinds.push_back(kind);
    }
    s.cwd = target;
  } else if (cmd == "inspect" && args.size() > 1) {
    auto path = actor_path(s, args[1]);
    if (path.empty()) return true;
    auto r = s.client->call("GET", path);
    if (!fail(r)) print_actor(r.data());
  } else if (cmd == "kill" && args.size() > 1) {
    auto path = actor_path(s, args[1]);
    if (path.empty()) return true;
    auto r = s.client->call("POST", path + "/kill");
    if (!fail(r)) std::cout << cell(r.data()["message"]) << "\n";
  } else if (cmd == "trace" && args.size() > 1) {
    auto path = actor_path(s, args[1]);
    if (path.empty()) return true;
    auto seconds = args.size() > 2 ? args[2] : "5";
    auto error = s.client->stream(path + "/trace?seconds=" + seconds, [](const std::string& event, const json& data) {
      print_trace_event(event, data);
      return true;
    });
    if (!error.empty()) std::cout << "error: " << error << "\n";
  } else if (cmd == "submit") {
    submit(s, args);
  } else if (cmd == "status") {
    auto r = s.client->call("GET", "/api/hive/status");
    if (!fail(r)) {
      const auto& d = r.data();
      std::cout << "node " << cell(d["node"]) << "  agents " << cell(d["agents"]["total"]) << "  tasks " << d["tasks"]["by_status"].dump()
                << "  queued " << d["queue_depth"].dump() << "  " << cell(d["throughput"]["tasks_per_second"]) << " tasks/s\n";
    }
  } else {
    std::cout << "unknown command: " << text << " (help lists the commands; inspect, trace and kill need an actor)\n";
  }
  return true;
}

std::vector<std::string> candidates(const std::string& line_start) {
  std::stringstream in(line_start);
  std::vector<std::string> words;
  for (std::string w; in >> w;) words.push_back(w);
  bool first = words.empty() || (words.size() == 1 && !line_start.empty() && line_start.back() != ' ');
  if (first) return kCommands;
  const auto& cmd = words[0];
  if (cmd == "cd" || cmd == "ls") {
    if (shell->cwd.empty()) return shell->nodes;
    if (shell->cwd.size() == 1) {
      auto out = shell->kinds;
      out.push_back("..");
      return out;
    }
    return {"..", "/"};
  }
  if (cmd == "inspect" || cmd == "trace" || cmd == "kill") return shell->actor_ids;
  if (cmd == "submit") return {"--type", "--priority"};
  return {};
}

char* generator(const char* text, int state) {
  static std::vector<std::string> matches;
  static size_t index;
  if (state == 0) {
    matches.clear();
    index = 0;
    std::string prefix(text);
    for (const auto& c : candidates(std::string(rl_line_buffer, size_t(rl_point))))
      if (c.rfind(prefix, 0) == 0) matches.push_back(c);
  }
  if (index >= matches.size()) return nullptr;
  return strdup(matches[index++].c_str());
}

char** complete(const char* text, int, int) {
  rl_attempted_completion_over = 1;
  return rl_completion_matches(text, generator);
}

}  // namespace

int run_console(const Options& o) {
  Shell s;
  s.o = o;
  s.client = std::make_unique<Client>(o, true);
  shell = &s;
  auto hello = s.client->call("GET", "/api/cluster/nodes");
  if (!hello.ok()) {
    std::cerr << "hivectl: " << hello.problem() << "\n";
    return hello.transport_error.empty() ? 1 : 2;
  }
  for (const auto& n : hello.data()["nodes"]) s.nodes.push_back(cell(n["name"]));
  std::cout << "hivectl console on " << o.url << " (" << s.nodes.size() << " node(s)); help lists the commands\n";
  rl_attempted_completion_function = complete;
  const char* home = std::getenv("HOME");
  std::string history = std::string(home ? home : ".") + "/.hivectl_history";
  read_history(history.c_str());
  while (true) {
    std::string prompt = "hive:" + path_of(s.cwd) + "> ";
    char* raw = readline(prompt.c_str());
    if (!raw) {
      std::cout << "\n";
      break;
    }
    std::string text(raw);
    free(raw);
    if (!text.empty()) add_history(text.c_str());
    if (!run(s, text)) break;
    std::cout.flush();
  }
  write_history(history.c_str());
  history_truncate_file(history.c_str(), 1000);
  return 0;
}

}  // namespace hub::console
