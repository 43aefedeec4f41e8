#include "actors/executor.hpp"

#include "runtime/instrumented.hpp"
#include "runtime/clock.hpp"
#include "runtime/json_text.hpp"

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <ctime>
#include <functional>
#include <fcntl.h>
#include <filesystem>
#include <fnmatch.h>
#include <set>
#include <mutex>
#include <poll.h>
#include <regex>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

namespace hub::actors {

using json = nlohmann::json;

namespace {

constexpr int64_t kMaxTimeoutMs = 7LL * 24 * 3600 * 1000;
constexpr int64_t kDefaultHttpTimeoutMs = 30000;
constexpr size_t kStderrTail = 2048;
constexpr int kMaxResultDepth = 64;

struct Url {
  std::string scheme, host;
  int port = 0;
  std::string path;
};

std::optional<Url> parse_url(const std::string& text) {
  static const std::regex pattern(R"(^(https?)://([A-Za-z0-9.\-]+|\[[0-9A-Fa-f:.]+\])(?::([0-9]{1,5}))?(/[^\s]*)?$)");
  std::smatch m;
  if (!std::regex_match(text, m, pattern)) return std::nullopt;
  Url u;
  u.scheme = m[1];
  u.host = m[2];
  u.port = m[3].matched ? std::stoi(m[3]) : (u.scheme == "https" ? 443 : 80);
  if (u.port < 1 || u.port > 65535) return std::nullopt;
  u.path = m[4].matched ? std::string(m[4]) : "/";
  return u;
}

bool host_allowed(const Url& u, const std::vector<std::string>& allowed) {
  auto with_port = u.host + ":" + std::to_string(u.port);
  return std::any_of(allowed.begin(), allowed.end(), [&](const std::string& h) { return h == u.host || h == with_port; });
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& i : items) out += (out.empty() ? "" : ", ") + i;
  return out;
}

std::optional<ExecutorProblem> problem(std::string field, std::string message) {
  return ExecutorProblem{std::move(field), std::move(message)};
}

std::optional<ExecutorProblem> check_timeout(const json& ex) {
  if (!ex.contains("timeout_ms")) return std::nullopt;
  const auto& t = ex["timeout_ms"];
  if (!t.is_number_integer() || t.get<int64_t>() < 1 || t.get<int64_t>() > kMaxTimeoutMs)
    return problem("executor.timeout_ms", "\"executor.timeout_ms\" must be an integer from 1 to " + std::to_string(kMaxTimeoutMs));
  return std::nullopt;
}

// Environment variables that change how a program is loaded or what code it runs (dynamic
// loader, interpreters' search paths and startup hooks, shells): never set by an agent.
bool dangerous_env_name(const std::string& name) {
  static const std::set<std::string> exact{"PATH",      "HOME",    "IFS",        "ENV",         "BASH_ENV",
                                           "SHELLOPTS", "BASHOPTS", "PS4",       "CDPATH",      "GCONV_PATH",
                                           "LOCPATH",   "NLSPATH", "HOSTALIASES", "RESOLV_HOST_CONF", "TMPDIR",
                                           "CLASSPATH", "EDITOR",  "VISUAL",     "PAGER",       "OPENSSL_CONF",
                                           "SSLKEYLOGFILE", "PROMPT_COMMAND", "ZDOTDIR", "INPUTRC"};
  static const std::vector<std::string> prefixes{"LD_",    "DYLD_", "PYTHON", "PERL",  "RUBY",   "NODE_",    "JAVA_",
                                                 "_JAVA_", "JDK_",  "GLIBC_", "MALLOC_", "GIT_", "BASH_FUNC_", "LUA_",
                                                 "GEM_",   "BUNDLE", "R_",    "PHP",   "DOTNET_", "COMPlus_", "GCONV_"};
  if (exact.count(name)) return true;
  return std::any_of(prefixes.begin(), prefixes.end(), [&](const std::string& p) { return name.rfind(p, 0) == 0; });
}

// RFC 9110 token characters (header names).
bool token_char(unsigned char c) {
  return std::isalnum(c) || std::strchr("!#$%&'*+-.^_`|~", c) != nullptr;
}

std::optional<ExecutorProblem> check_string_map(const json& ex, const char* key, bool env_names) {
  if (!ex.contains(key)) return std::nullopt;
  std::string field = std::string("executor.") + key;
  const auto& m = ex[key];
  if (!m.is_object() || m.size() > 100) return problem(field, "\"" + field + "\" must be an object (at most 100) of strings");
  static const std::regex env_name(R"(^[A-Za-z_][A-Za-z0-9_]*$)");
  static const std::set<std::string> framing{"host", "content-length", "transfer-encoding", "connection", "upgrade", "te",
                                             "trailer", "keep-alive", "expect", "proxy-connection"};
  for (auto it = m.begin(); it != m.end(); ++it) {
    auto at = field + "." + it.key();
    if (!it.value().is_string() || it.value().get<std::string>().size() > 8192)
      return problem(at, "\"" + at + "\" must be a string of at most 8192 bytes");
    const auto& value = it.value().get_ref<const std::string&>();
    if (env_names) {
      if (!std::regex_match(it.key(), env_name))
        return problem(field, "\"" + it.key() + "\" is not a valid environment variable name");
      if (dangerous_env_name(it.key()))
        return problem(at, "\"" + it.key() + "\" may not be set: it changes how programs are loaded or what code they run");
      if (value.find('\0') != std::string::npos) return problem(at, "\"" + at + "\" must not contain NUL bytes");
      continue;
    }
    if (it.key().empty() || it.key().size() > 256 ||
        !std::all_of(it.key().begin(), it.key().end(), [](unsigned char c) { return token_char(c); }))
      return problem(field, "header name \"" + it.key() + "\" is not a valid HTTP header name (letters, digits and !#$%&'*+-.^_`|~ only)");
    auto lower_name = it.key();
    std::transform(lower_name.begin(), lower_name.end(), lower_name.begin(), [](unsigned char c) { return std::tolower(c); });
    if (framing.count(lower_name))
      return problem(at, "the \"" + it.key() + "\" header is set by the node itself and may not be given");
    if (std::any_of(value.begin(), value.end(), [](unsigned char c) { return c == '\r' || c == '\n' || c == 0 || c == 0x7f; }))
      return problem(at, "\"" + at + "\" must not contain CR, LF, NUL or DEL");
  }
  return std::nullopt;
}

std::optional<ExecutorProblem> unknown_key(const json& ex, std::initializer_list<const char*> known) {
  for (auto it = ex.begin(); it != ex.end(); ++it)
    if (std::none_of(known.begin(), known.end(), [&](const char* k) { return it.key() == k; })) {
      std::string list;
      for (auto* k : known) list += (list.empty() ? "" : ", ") + std::string(k);
      return problem("executor." + it.key(), "unknown field \"executor." + it.key() + "\" (known: " + list + ")");
    }
  return std::nullopt;
}

// Splits an allow-list entry into its words (spaces and tabs separate them).
std::vector<std::string> words(const std::string& line) {
  std::vector<std::string> out;
  std::string word;
  for (char c : line + " ") {
    if (c == ' ' || c == '\t') {
      if (!word.empty()) out.push_back(std::move(word)), word.clear();
    } else {
      word += c;
    }
  }
  return out;
}

// `dir` resolved (symbolic links followed as far as they exist), to compare against the
// allowed directories, also resolved.
std::string resolved_dir(const std::string& dir) {
  std::error_code ec;
  auto p = std::filesystem::weakly_canonical(std::filesystem::path(dir), ec);
  return ec ? std::filesystem::path(dir).lexically_normal().string() : p.string();
}

bool inside(const std::string& dir, const std::string& root) {
  auto d = resolved_dir(dir), r = resolved_dir(root);
  while (r.size() > 1 && r.back() == '/') r.pop_back();
  return d == r || (d.size() > r.size() && d.compare(0, r.size(), r) == 0 && (r == "/" || d[r.size()] == '/'));
}

std::optional<ExecutorProblem> check_cwd(const std::string& cwd, const ExecutorPolicy& policy) {
  if (policy.allowed_cwd.empty())
    return problem("executor.cwd", "\"executor.cwd\" is not accepted on this node: list the directory under [agents.exec] allowed_cwd");
  if (std::none_of(policy.allowed_cwd.begin(), policy.allowed_cwd.end(), [&](const std::string& root) { return inside(cwd, root); }))
    return problem("executor.cwd", "\"" + cwd + "\" is not inside [agents.exec] allowed_cwd (" + join(policy.allowed_cwd) + ")");
  return std::nullopt;
}

std::optional<ExecutorProblem> check_exec(const json& ex, const ExecutorPolicy& policy) {
  if (auto p = unknown_key(ex, {"kind", "command", "timeout_ms", "env", "cwd"})) return p;
  if (!ex.contains("command") || !ex["command"].is_array() || ex["command"].empty() || ex["command"].size() > 256)
    return problem("executor.command", "\"executor.command\" must be a non-empty array of strings: the program and its arguments (no shell)");
  std::vector<std::string> argv;
  for (const auto& part : ex["command"]) {
    if (!part.is_string() || part.get<std::string>().size() > 4096 || part.get<std::string>().find('\0') != std::string::npos)
      return problem("executor.command", "every item of \"executor.command\" must be a string of at most 4096 bytes (no NUL)");
    argv.push_back(part.get<std::string>());
  }
  if (policy.allowed_commands.empty())
    return problem("executor.command", "exec executors are disabled on this node: list the command line under "
                                       "[agents.exec] allowed_commands to allow it");
  if (!command_allowed(argv, policy.allowed_commands))
    return problem("executor.command", "this command line is not allowed by [agents.exec] allowed_commands (" +
                                           join(policy.allowed_commands) + "): the program and every argument must match one entry");
  if (auto p = check_timeout(ex)) return p;
  if (auto p = check_string_map(ex, "env", true)) return p;
  if (ex.contains("cwd")) {
    if (!ex["cwd"].is_string() || ex["cwd"].get<std::string>().empty() || ex["cwd"].get<std::string>()[0] != '/')
      return problem("executor.cwd", "\"executor.cwd\" must be an absolute directory path");
    if (auto p = check_cwd(ex["cwd"].get<std::string>(), policy)) return p;
  }
  return std::nullopt;
}

std::optional<ExecutorProblem> check_http(const json& ex, const ExecutorPolicy& policy) {
  if (auto p = unknown_key(ex, {"kind", "url", "method", "headers", "timeout_ms", "body"})) return p;
  if (!ex.contains("url") || !ex["url"].is_string())
    return problem("executor.url", "\"executor.url\" is required: http://host[:port]/path or https://...");
  auto url = parse_url(ex["url"].get<std::string>());
  if (!url) return problem("executor.url", "\"executor.url\" must look like http://host[:port]/path or https://host[:port]/path");
  if (policy.allowed_hosts.empty())
    return problem("executor.url", "http executors are disabled on this node: list \"" + url->host + ":" +
                                       std::to_string(url->port) + "\" under [agents.http] allowed_hosts to allow it");
  if (!host_allowed(*url, policy.allowed_hosts))
    return problem("executor.url", "host \"" + url->host + ":" + std::to_string(url->port) +
                                       "\" is not in [agents.http] allowed_hosts (" + join(policy.allowed_hosts) + ")");
  if (ex.contains("method")) {
    if (!ex["method"].is_string() || (ex["method"] != "POST" && ex["method"] != "PUT"))
      return problem("executor.method", "\"executor.method\" must be \"POST\" or \"PUT\"");
  }
  if (ex.contains("body") && (!ex["body"].is_string() || (ex["body"] != "task" && ex["body"] != "payload")))
    return problem("executor.body", "\"executor.body\" must be \"task\" (the whole task) or \"payload\" (the task's payload only)");
  if (auto p = check_timeout(ex)) return p;
  return check_string_map(ex, "headers", false);
}

Outcome failure(std::string type, std::string message, bool retryable) {
  Outcome o;
  o.error_type = std::move(type);
  o.error_message = std::move(message);
  o.retryable = retryable;
  return o;
}

Outcome success_from_text(const std::string& text, bool truncated) {
  Outcome o;
  o.ok = true;
  // Output nested deeper than any API body may be is kept as text: its tree would be walked
  // recursively (dump) every time the task is shown.
  bool usable = !truncated && runtime::json_nesting_depth(text, kMaxResultDepth + 1) <= kMaxResultDepth;
  auto parsed = usable ? json::parse(text, nullptr, false) : json(json::value_t::discarded);
  o.result_json = parsed.is_discarded() ? json(text).dump(-1, ' ', false, json::error_handler_t::replace)
                                        : parsed.dump(-1, ' ', false, json::error_handler_t::replace);
  return o;
}

std::string describe_status(int status) {
  if (WIFEXITED(status)) return "exit code " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return std::string("killed by signal ") + std::to_string(WTERMSIG(status)) + " (" + strsignal(WTERMSIG(status)) + ")";
  return "ended with status " + std::to_string(status);
}

void set_nonblocking(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

Outcome run_exec(const json& ex, const std::string& input, const std::function<bool()>& stopped, const ExecutorPolicy& policy) {
  // The policy may have changed since the agent was created (a restart with a stricter
  // configuration), and a directory may have become a link elsewhere: check again now.
  if (auto p = check_exec(ex, policy)) return failure("exit_code", p->field + ": " + p->message, false);
  static std::once_flag sigpipe_once;
  std::call_once(sigpipe_once, [] { std::signal(SIGPIPE, SIG_IGN); });
  std::vector<std::string> args;
  for (const auto& part : ex["command"]) args.push_back(part.get<std::string>());
  std::vector<std::string> env{"PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8"};
  if (ex.contains("env"))
    for (auto it = ex["env"].begin(); it != ex["env"].end(); ++it) env.push_back(it.key() + "=" + it.value().get<std::string>());
  std::vector<char*> argv, envp;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  int64_t timeout_ms = ex.value("timeout_ms", int64_t(0));

  int in[2], out[2], err[2];
  if (pipe2(in, O_CLOEXEC) != 0) return failure("exit_code", std::string("cannot create a pipe: ") + strerror(errno), true);
  if (pipe2(out, O_CLOEXEC) != 0) {
    close(in[0]), close(in[1]);
    return failure("exit_code", std::string("cannot create a pipe: ") + strerror(errno), true);
  }
  if (pipe2(err, O_CLOEXEC) != 0) {
    close(in[0]), close(in[1]), close(out[0]), close(out[1]);
    return failure("exit_code", std::string("cannot create a pipe: ") + strerror(errno), true);
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in[0], 0);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err[1], 2);
  std::string cwd = ex.value("cwd", std::string());
  if (!cwd.empty()) posix_spawn_file_actions_addchdir_np(&actions, cwd.c_str());
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);  // the node blocks SIGTERM & co. in its threads
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setpgroup(&attr, 0);  // its own process group, so a timeout kills all of it
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  pid_t pid = 0;
  int rc = posix_spawn(&pid, argv[0], &actions, &attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  close(in[0]), close(out[1]), close(err[1]);
  if (rc != 0) {
    close(in[1]), close(out[0]), close(err[0]);
    return failure("exit_code", "cannot start " + args[0] + (cwd.empty() ? "" : " in " + cwd) + ": " + strerror(rc), true);
  }
  int in_fd = in[1], out_fd = out[0], err_fd = err[0];
  set_nonblocking(in_fd), set_nonblocking(out_fd), set_nonblocking(err_fd);

  auto started = std::chrono::steady_clock::now();
  auto elapsed_ms = [&] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count();
  };
  std::string stdout_text, stderr_text;
  bool truncated = false, exited = false;
  int status = 0;
  int64_t exited_at_ms = 0;
  size_t written = 0;
  std::string ended;  // "timeout" | "cancelled" when we killed it
  if (input.empty()) close(in_fd), in_fd = -1;
  char buffer[65536];
  while (true) {
    pollfd fds[3];
    int n = 0;
    if (in_fd >= 0) fds[n++] = {in_fd, POLLOUT, 0};
    if (out_fd >= 0) fds[n++] = {out_fd, POLLIN, 0};
    if (err_fd >= 0) fds[n++] = {err_fd, POLLIN, 0};
    if (n > 0) poll(fds, nfds_t(n), 20);
    else if (!exited) usleep(5000);
    if (in_fd >= 0) {
      auto w = write(in_fd, input.data() + written, input.size() - written);
      if (w > 0) written += size_t(w);
      if ((w < 0 && errno != EAGAIN) || written >= input.size()) close(in_fd), in_fd = -1;
    }
    for (int* fd : {&out_fd, &err_fd}) {
      if (*fd < 0) continue;
      while (true) {
        auto r = read(*fd, buffer, sizeof buffer);
        if (r > 0) {
          if (fd == &out_fd) {
            auto room = size_t(std::max<int64_t>(0, policy.max_output_bytes - int64_t(stdout_text.size())));
            stdout_text.append(buffer, std::min(room, size_t(r)));
            truncated |= size_t(r) > room;
          } else {
            stderr_text.append(buffer, size_t(r));
            if (stderr_text.size() > 4 * kStderrTail) stderr_text.erase(0, stderr_text.size() - kStderrTail);
          }
          continue;
        }
        if (r == 0 || errno != EAGAIN) close(*fd), *fd = -1;
        break;
      }
    }
    if (!exited && waitpid(pid, &status, WNOHANG) == pid) exited = true, exited_at_ms = elapsed_ms();
    // Done once it exited and its output is read; a grandchild that keeps the pipes open
    // gets a short grace, then the group is killed below.
    if (exited && ((out_fd < 0 && err_fd < 0) || elapsed_ms() - exited_at_ms > 200)) break;
    if (stopped()) ended = "cancelled";
    else if (timeout_ms > 0 && elapsed_ms() > timeout_ms) ended = "timeout";
    if (!ended.empty()) break;
  }
  kill(-pid, SIGKILL);  // the whole group: nothing it started outlives the attempt
  if (!exited) waitpid(pid, &status, 0);
  for (int fd : {in_fd, out_fd, err_fd})
    if (fd >= 0) close(fd);
  if (ended == "cancelled") return failure("cancelled", "cancelled; the process group was killed", false);
  if (ended == "timeout")
    return failure("timeout", args[0] + " ran longer than executor.timeout_ms (" + std::to_string(timeout_ms) +
                                  " ms); the process group was killed", true);
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return success_from_text(stdout_text, truncated);
  if (stderr_text.size() > kStderrTail) stderr_text.erase(0, stderr_text.size() - kStderrTail);
  while (!stderr_text.empty() && std::isspace(static_cast<unsigned char>(stderr_text.back()))) stderr_text.pop_back();
  return failure("exit_code", args[0] + ": " + describe_status(status) + (stderr_text.empty() ? "" : "; stderr: " + stderr_text), true);
}

int64_t retry_after_ms(const std::string& value) {
  if (value.empty()) return 0;
  if (std::all_of(value.begin(), value.end(), [](unsigned char c) { return std::isdigit(c); }))
    return std::min<int64_t>(std::stoll(value.substr(0, 9)), 24 * 3600) * 1000;
  std::tm tm{};
  if (strptime(value.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm) == nullptr) return 0;
  auto at_ms = int64_t(timegm(&tm)) * 1000;
  return std::clamp<int64_t>(at_ms - runtime::now_ms(), 0, 24LL * 3600 * 1000);
}

Outcome run_http(const json& ex, const std::string& input, const std::function<bool()>& stopped, const ExecutorPolicy& policy) {
  auto url = parse_url(ex["url"].get<std::string>());
  if (!url) return failure("connection", "bad executor.url", false);
  int64_t timeout_ms = ex.value("timeout_ms", kDefaultHttpTimeoutMs);
  httplib::Client client(url->scheme + "://" + url->host + ":" + std::to_string(url->port));
  auto timeout = std::chrono::milliseconds(timeout_ms);
  client.set_connection_timeout(timeout);
  client.set_read_timeout(timeout);
  client.set_write_timeout(timeout);
  httplib::Request request;
  request.method = ex.value("method", std::string("POST"));
  request.path = url->path;
  if (ex.contains("headers"))
    for (auto it = ex["headers"].begin(); it != ex["headers"].end(); ++it)
      request.headers.emplace(it.key(), it.value().get<std::string>());
  if (!request.has_header("Content-Type")) request.headers.emplace("Content-Type", "application/json");
  if (!request.has_header("Accept")) request.headers.emplace("Accept", "application/json");
  request.body = input;
  std::string body;
  bool truncated = false;
  request.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
    if (int64_t(body.size() + n) > policy.max_response_bytes) {
      truncated = true;
      return false;
    }
    body.append(data, n);
    return !stopped();
  };
  request.progress = [&](uint64_t, uint64_t) { return !stopped(); };
  auto started = std::chrono::steady_clock::now();
  auto result = client.send(request);
  auto took_ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count();
  auto where = url->host + ":" + std::to_string(url->port) + url->path;
  if (stopped()) return failure("cancelled", "cancelled during the request to " + where, false);
  if (truncated) return failure("http_status", "the response of " + where + " is larger than [agents.http] max_response_bytes", false);
  if (!result) {
    auto error = result.error();
    if ((error == httplib::Error::Read || error == httplib::Error::ConnectionTimeout) && took_ms + 50 >= timeout_ms)
      return failure("timeout", where + " did not answer within " + std::to_string(timeout_ms) + " ms", true);
    return failure("connection", where + ": " + httplib::to_string(error) + " error (the connection failed or was closed)", true);
  }
  int status = result->status;
  if (status >= 200 && status < 300) return success_from_text(body, false);
  auto snippet = body.substr(0, 300);
  auto o = failure("http_status", where + " answered " + std::to_string(status) + (snippet.empty() ? "" : ": " + snippet),
                   status >= 500 || status == 429 || status == 408);
  if (status == 429 || status == 503) o.retry_after_ms = retry_after_ms(result->get_header_value("Retry-After"));
  return o;
}

struct WorkerState {
  ExecutorPolicy policy;
  static inline const char* name = "executor_worker";
};

caf::behavior executor_worker(runtime::Instrumented<WorkerState>* self, ExecutorPolicy policy, caf::actor owner) {
  self->state.policy = std::move(policy);
  self->describe("executor", "", owner);
  self->monitor(owner);
  self->set_down_handler([=](caf::down_msg&) { self->quit(); });
  return {
      [=](run_atom, const ExecutorCall& call) { return run_executor(call, self->state.policy); },
  };
}

}  // namespace

ExecutorPolicy executor_policy(const config::AgentsConfig& agents) {
  ExecutorPolicy policy;
  policy.allowed_commands = agents.exec_allowed_commands;
  policy.allowed_cwd = agents.exec_allowed_cwd;
  policy.max_output_bytes = agents.exec_max_output_bytes;
  policy.allowed_hosts = agents.http_allowed_hosts;
  policy.max_response_bytes = agents.http_max_response_bytes;
  return policy;
}

bool command_allowed(const std::vector<std::string>& argv, const std::vector<std::string>& allowed) {
  return std::any_of(allowed.begin(), allowed.end(), [&](const std::string& entry) {
    auto pattern = words(entry);
    bool any_rest = !pattern.empty() && pattern.back() == "...";
    size_t fixed = any_rest ? pattern.size() - 1 : pattern.size();
    if (fixed == 0 || argv.size() < fixed || (!any_rest && argv.size() != fixed) || argv[0] != pattern[0]) return false;
    for (size_t i = 1; i < fixed; ++i)
      if (fnmatch(pattern[i].c_str(), argv[i].c_str(), 0) != 0) return false;
    return true;
  });
}

std::string redact_executor(const std::string& executor_json) {
  auto ex = json::parse(executor_json, nullptr, false);
  if (!ex.is_object()) return executor_json;
  for (const char* key : {"headers", "env"})
    if (ex.contains(key) && ex[key].is_object())
      for (auto it = ex[key].begin(); it != ex[key].end(); ++it) it.value() = "[redacted]";
  if (ex.contains("url") && ex["url"].is_string()) {
    // Query values may be keys (?api_key=...): names stay, values go.
    auto url = ex["url"].get<std::string>();
    auto q = url.find('?');
    if (q != std::string::npos) {
      std::string out = url.substr(0, q + 1), query = url.substr(q + 1);
      size_t start = 0;
      while (start <= query.size()) {
        auto amp = query.find('&', start);
        auto part = query.substr(start, amp == std::string::npos ? std::string::npos : amp - start);
        auto eq = part.find('=');
        out += (start ? "&" : "") + (eq == std::string::npos ? part : part.substr(0, eq + 1) + "[redacted]");
        if (amp == std::string::npos) break;
        start = amp + 1;
      }
      ex["url"] = out;
    }
  }
  return ex.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::optional<ExecutorProblem> check_executor(const std::string& executor_json, const ExecutorPolicy& policy) {
  auto ex = json::parse(executor_json, nullptr, false);
  if (!ex.is_object() || !ex.contains("kind") || !ex["kind"].is_string())
    return problem("executor", "\"executor\" must be an object with a \"kind\": builtin, exec or http");
  auto kind = ex["kind"].get<std::string>();
  if (kind == "builtin") return unknown_key(ex, {"kind"});
  if (kind == "exec") return check_exec(ex, policy);
  if (kind == "http") return check_http(ex, policy);
  if (kind == "simulated") {
    // Benchmarks: {"kind": "simulated", "seed": N, "profile": {"<task type>": {"success": 0..1, "mean_ms": N}}}
    if (auto p = unknown_key(ex, {"kind", "seed", "profile"})) return p;
    if (ex.contains("profile")) {
      if (!ex["profile"].is_object()) return problem("executor.profile", "\"profile\" must map task types to {success, mean_ms}");
      for (auto it = ex["profile"].begin(); it != ex["profile"].end(); ++it) {
        const auto& v = it.value();
        if (!v.is_object() || !v.contains("success") || !v["success"].is_number() || v["success"].get<double>() < 0 ||
            v["success"].get<double>() > 1 || !v.contains("mean_ms") || !v["mean_ms"].is_number() ||
            v["mean_ms"].get<double>() < 0 || v["mean_ms"].get<double>() > 600000)
          return problem("executor.profile." + it.key(), "expected {\"success\": 0..1, \"mean_ms\": 0..600000}");
      }
    }
    return std::nullopt;
  }
  return problem("executor.kind", "executor kind \"" + kind + "\" is not known: builtin, exec, http or simulated");
}

std::string executor_kind(const std::string& executor_json) {
  auto ex = json::parse(executor_json, nullptr, false);
  return ex.is_object() && ex.contains("kind") && ex["kind"].is_string() ? ex["kind"].get<std::string>() : "builtin";
}

std::string executor_endpoint(const std::string& executor_json) {
  auto ex = json::parse(executor_json, nullptr, false);
  if (!ex.is_object()) return {};
  auto kind = ex.value("kind", std::string());
  if (kind == "exec" && ex.contains("command") && ex["command"].is_array() && !ex["command"].empty()) {
    // Ids travel in URL paths (POST /api/breakers/{id}/reset): no slashes.
    auto program = ex["command"][0].get<std::string>();
    std::replace(program.begin(), program.end(), '/', '_');
    return "exec:" + program;
  }
  if (kind == "http" && ex.contains("url") && ex["url"].is_string())
    if (auto u = parse_url(ex["url"].get<std::string>())) return "http:" + u->host + ":" + std::to_string(u->port);
  return {};
}

Outcome run_executor(const ExecutorCall& call, const ExecutorPolicy& policy) {
  try {
    auto ex = json::parse(call.executor_json);
    auto kind = ex.value("kind", std::string());
    // This attempt was cancelled, or its agent stopped: either way, abandon it.
    auto stopped = [&call] {
      return call.cancel->load(std::memory_order_relaxed) || (call.owner_gone && call.owner_gone->load(std::memory_order_relaxed));
    };
    if (kind == "exec") return run_exec(ex, call.task_json, stopped, policy);
    if (kind == "http") {
      auto input = call.task_json;
      if (ex.value("body", std::string("task")) == "payload") {
        auto task = json::parse(call.task_json, nullptr, false);
        input = task.is_object() && task.contains("payload") ? task["payload"].dump() : "null";
      }
      return run_http(ex, input, stopped, policy);
    }
    return failure("exit_code", "executor kind \"" + kind + "\" cannot run in a worker", false);
  } catch (const std::exception& e) {
    return failure("exit_code", std::string("executor failed: ") + e.what(), true);
  }
}

caf::actor spawn_executor_worker(caf::actor_system& system, ExecutorPolicy policy, caf::actor owner) {
  return system.spawn<caf::detached>(executor_worker, std::move(policy), std::move(owner));
}

}  // namespace hub::actors
