// The composition root of a node: wires config, logging, the store, the actor system, the
// actors and the HTTP gateway, and runs the lifecycle (start, ready, drain, stop). The only
// place that sees every module.
#include "actors/neural/worker.hpp"
#include "actors/supervisor.hpp"
#include "actors/scheduler.hpp"
#include "actors/task_protocol.hpp"
#include "config/config.hpp"
#include "gateway/gateway.hpp"
#include "gateway/security.hpp"
#include "runtime/introspection.hpp"
#include "runtime/actor_runtime.hpp"
#include "runtime/breaker.hpp"
#include "runtime/cluster.hpp"
#include "runtime/clock.hpp"
#include "runtime/logging.hpp"
#include "runtime/store/store.hpp"
#include "runtime/store/store_actor.hpp"
#include "runtime/system_monitor.hpp"
#include "runtime/version.hpp"

#include <CLI/CLI.hpp>
#include <caf/actor_cast.hpp>
#include <caf/actor_system.hpp>
#include <caf/exit_reason.hpp>
#include <caf/scoped_actor.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <map>
#include <mutex>
#include <thread>
#include <unistd.h>
#include <cstring>
#include <set>
#include <sys/prctl.h>
#include <fcntl.h>
#include <sys/file.h>

extern char** environ;

namespace fs = std::filesystem;
using namespace hub;

namespace {

std::string data_dir_problem(const std::string& dir) {
  std::error_code ec;
  fs::path path(dir);
  if (fs::exists(path, ec)) {
    if (!fs::is_directory(path, ec)) return "data directory " + dir + " is not a directory";
    if (access(dir.c_str(), W_OK) != 0) return "data directory " + dir + " is not writable by this user";
    return {};
  }
  auto parent = fs::absolute(path, ec).parent_path();
  while (!parent.empty() && !fs::exists(parent, ec)) parent = parent.parent_path();
  if (parent.empty() || access(parent.c_str(), W_OK) != 0)
    return "data directory " + dir + " does not exist and cannot be created (" + parent.string() + " is not writable)";
  return {};
}

std::string file_dir_problem(const std::string& what, const std::string& file) {
  if (file.empty()) return {};
  auto dir = fs::path(file).parent_path();
  if (dir.empty()) dir = ".";
  std::error_code ec;
  if (!fs::exists(dir, ec)) return what + " directory " + dir.string() + " does not exist";
  if (access(dir.c_str(), W_OK) != 0) return what + " directory " + dir.string() + " is not writable by this user";
  return {};
}

fs::path binary_dir() {
  std::error_code ec;
  auto exe = fs::read_symlink("/proc/self/exe", ec);
  return ec ? fs::path() : exe.parent_path();
}

std::string node_name(const config::Config& cfg) {
  if (!cfg.cluster.node_name.empty()) return cfg.cluster.node_name;
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  return std::string(host) + ":" + std::to_string(cfg.server.port);
}

// Whether a database file exists but cannot be this node's: empty (a backup command run
// against a path where no database was leaves one), or not writable by this user.
std::string database_file_problem(const std::string& path) {
  if (path.empty()) return {};
  std::error_code ec;
  if (!fs::exists(path, ec)) return {};
  auto size = fs::file_size(path, ec);
  if (!ec && size == 0)
    return "database file " + path + " is empty (0 bytes): it is not a database this node wrote. Remove it to start "
           "afresh (rm " + path + "), or restore a backup into it (scripts/restore.sh)";
  if (access(path.c_str(), R_OK | W_OK) != 0)
    return "database file " + path + " is not readable and writable by this user (uid " + std::to_string(getuid()) +
           "): give it to the node's user (chown ai-orchestrator: " + path + "*)";
  return {};
}

// The log file a node writes: [logging] file, or in production (where the guide tails it)
// /var/log/ai-orchestrator-hub/app.log when that directory is there and writable.
std::string log_file_of(const config::Config& cfg) {
  if (!cfg.logging.file.empty() || cfg.environment != "production") return cfg.logging.file;
  const char* dir = "/var/log/ai-orchestrator-hub";
  std::error_code ec;
  return fs::is_directory(dir, ec) && access(dir, W_OK) == 0 ? std::string(dir) + "/app.log" : std::string();
}

std::string pid_file_of(const config::Config& cfg) {
  return cfg.server.pid_file.empty() ? (fs::path(cfg.server.data_dir) / "ai-orchestrator-hub.pid").string() : cfg.server.pid_file;
}

// The node's process id in a file (for kill, logrotate and scripts: the process name is cut to
// 15 characters, so `pgrep ai-orchestrator-hub` finds nothing), locked while the node runs:
// a second node on the same data directory is refused. The lock goes with the process, even
// on kill -9; the file is removed on a clean exit.
class PidFile {
 public:
  std::string take(const std::string& path) {
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) return "cannot open the pid file " + path + ": " + std::strerror(errno) + " ([server] pid_file)";
    if (flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      char text[32] = {0};
      auto n = ::pread(fd_, text, sizeof text - 1, 0);
      ::close(fd_);
      fd_ = -1;
      std::string other = n > 0 ? std::string(text, size_t(n)) : "?";
      while (!other.empty() && (other.back() == '\n' || other.back() == ' ')) other.pop_back();
      return "another node (pid " + other + ") runs with this data directory (its pid file " + path +
             " is locked); stop it first, or give this one another [server] data_dir";
    }
    auto text = std::to_string(getpid()) + "\n";
    if (ftruncate(fd_, 0) != 0 || ::pwrite(fd_, text.data(), text.size(), 0) != ssize_t(text.size()))
      return "cannot write the pid file " + path + ": " + std::strerror(errno);
    path_ = path;
    return {};
  }
  ~PidFile() {
    if (fd_ < 0) return;
    ::unlink(path_.c_str());
    ::close(fd_);
  }

 private:
  int fd_ = -1;
  std::string path_;
};

int run_check(const config::LoadResult& loaded, const config::LoadOptions& options) {
  const auto& cfg = loaded.config;
  std::vector<std::string> problems = loaded.problems;
  std::cout << "ai-orchestrator-hub " << kVersion << " --check\n";
  std::cout << "  environment checked: " << cfg.environment
            << (cfg.environment == "production" ? "" : " (HIVE_ENV; the systemd unit and the Docker image run \"production\")")
            << "\n";
  if (cfg.environment != "production") {
    // What the same command would meet under HIVE_ENV=production, so that an OK here is not
    // a surprise there.
    auto prod_options = options;
    prod_options.env["HIVE_ENV"] = "production";
    auto prod = config::load(prod_options);
    for (const auto& p : prod.problems)
      if (std::find(loaded.problems.begin(), loaded.problems.end(), p) == loaded.problems.end())
        std::cout << "  in production this would be refused: " << p << "\n";
  }
  std::cout << "  config layers: ";
  for (size_t i = 0; i < loaded.sources.size(); ++i) std::cout << (i ? " -> " : "") << loaded.sources[i];
  std::cout << "\n";
  for (const auto& w : loaded.warnings) std::cout << "  warning: " << w << "\n";
  if (loaded.ok()) {
    std::cout << "  http: " << cfg.server.host << ":" << cfg.server.port << " (" << cfg.server.workers << " workers)\n";
    if (auto p = data_dir_problem(cfg.server.data_dir); !p.empty()) problems.push_back(p);
    else std::cout << "  data directory: " << cfg.server.data_dir << " (writable)\n";
    if (auto p = file_dir_problem("log file", log_file_of(cfg)); !p.empty()) problems.push_back(p);
    std::string detail;
    auto db_path = runtime::sqlite_path(cfg.database.url);
    if (!db_path.empty()) {
      if (auto p = data_dir_problem(fs::path(db_path).parent_path().empty() ? "." : fs::path(db_path).parent_path().string());
          !p.empty())
        problems.push_back("database: " + p);
      if (auto p = database_file_problem(db_path); !p.empty()) problems.push_back("database: " + p);
    }
    if (auto why = runtime::probe_database(cfg.database.url, cfg.database.connection_timeout_seconds, detail); !why.empty())
      problems.push_back("database: " + why);
    else
      std::cout << "  database: " << runtime::redact_url(detail) << "\n";
    std::cout << "  actor scheduler: " << cfg.scheduler_threads() << " threads, " << cfg.performance.scheduler_policy << "\n";
    if (cfg.cluster.enabled) {
      std::cout << "  cluster: node " << node_name(cfg) << " on " << cfg.cluster.host << ":" << cfg.cluster.port << ", "
                << cfg.cluster.seeds.size() << " seeds\n";
      if (!db_path.empty())
        std::cout << "  warning: a cluster on SQLite: each node keeps the tasks it accepted in its own file, so the cluster "
                     "does not survive the loss of a node's disk (use PostgreSQL: [database] url = \"postgresql://...\")\n";
    }
  }
  if (problems.empty()) {
    std::cout << "OK\n";
    return 0;
  }
  for (const auto& p : problems) std::cerr << "error: " << p << "\n";
  std::cerr << problems.size() << " problem" << (problems.size() == 1 ? "" : "s") << " found\n";
  return 1;
}

// `user add NAME --role ROLE`: the password comes from stdin (a second line, when given,
// must repeat it), so it never shows in the process list or the shell history.
int add_user(const config::LoadResult& loaded, const std::string& name, const std::string& role) {
  if (!loaded.ok()) {
    for (const auto& p : loaded.problems) std::cerr << "ai-orchestrator-hub: config: " << p << "\n";
    return 1;
  }
  if (name.empty() || name.size() > 100 || name.find_first_of(" \t\n:/") != std::string::npos) {
    std::cerr << "ai-orchestrator-hub: user names are 1-100 characters without spaces, ':' or '/'\n";
    return 2;
  }
  std::string password, again;
  if (!std::getline(std::cin, password) || password.size() < 8) {
    std::cerr << "ai-orchestrator-hub: give the password (8 or more characters) on stdin\n";
    return 2;
  }
  if (std::getline(std::cin, again) && again != password) {
    std::cerr << "ai-orchestrator-hub: the two passwords differ\n";
    return 2;
  }
  const auto& cfg = loaded.config;
  auto opened = runtime::open_store({cfg.database.url, cfg.database.connection_timeout_seconds * 1000,
                                     cfg.database.sqlite_synchronous == "full"});
  if (opened.error) {
    std::cerr << "ai-orchestrator-hub: store: " << opened.error->message << "\n";
    return 1;
  }
  runtime::UserRecord user{name, gateway::hash_password(password), role, runtime::now_ms()};
  if (auto err = opened.store->put_user(user)) {
    std::cerr << "ai-orchestrator-hub: cannot save the user: " << err->message << "\n";
    return 1;
  }
  std::cout << "user " << name << " saved with role " << role << "\n";
  return 0;
}

// `config get KEY...`: what backup and restore must agree with the node about, resolved
// exactly as the node resolves it (settings/, HIVE_ENV, --config, the environment).
int print_config(const config::LoadResult& loaded, const std::vector<std::string>& keys) {
  if (!loaded.ok()) {
    for (const auto& p : loaded.problems) std::cerr << "ai-orchestrator-hub: config: " << p << "\n";
    return 1;
  }
  const auto& cfg = loaded.config;
  const std::map<std::string, std::string> values{{"environment", cfg.environment},
                                                  {"server.data_dir", cfg.server.data_dir},
                                                  {"server.pid_file", pid_file_of(cfg)},
                                                  {"database.url", cfg.database.url},
                                                  {"logging.file", log_file_of(cfg)}};
  for (const auto& key : keys) {
    auto it = values.find(key);
    if (it == values.end()) {
      std::cerr << "ai-orchestrator-hub: config get: unknown key " << key
                << " (known: environment, server.data_dir, server.pid_file, database.url, logging.file)\n";
      return 2;
    }
    std::cout << it->second << "\n";
  }
  return 0;
}

// Threads started before main() blocked the stop signals (OpenBLAS starts its pool when the
// library loads) would take SIGTERM's default action and kill the process: a handler hands
// such a signal on to the signal thread, which has it blocked and waits for it.
std::atomic<pthread_t> signal_thread{};
std::atomic<bool> signal_thread_set{false};

extern "C" void forward_signal(int sig) {
  if (signal_thread_set.load()) pthread_kill(signal_thread.load(), sig);
}

// The signal thread's report to main.
struct Shutdown {
  std::mutex mutex;
  std::condition_variable cv;
  int signal = 0;  // -1: the root supervisor gave up (escalation): stop and exit 1; -2: asked to leave the cluster
};

void wait_for_signals(Shutdown* shutdown) {
  sigset_t set;
  sigemptyset(&set);
  for (int s : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&set, s);
  bool asked = false;
  int64_t asked_at_ms = 0;
  while (true) {
    int sig = 0;
    if (sigwait(&set, &sig) != 0) continue;
    if (sig == SIGHUP) {
      runtime::reopen_log_file();
      spdlog::info("SIGHUP: log file reopened");
      continue;
    }
    if (asked && runtime::now_ms() - asked_at_ms < 1000) {
      // One stop request delivered twice (e.g. `timeout`, or `kill` on the whole process
      // group) is not an operator insisting; a signal a second or more later is.
      spdlog::info("{} again within a second: still draining", strsignal(sig));
      continue;
    }
    if (asked) {
      spdlog::warn("second {}: exiting now without draining", strsignal(sig));
      spdlog::default_logger()->flush();
      std::_Exit(130);
    }
    asked = true;
    asked_at_ms = runtime::now_ms();
    std::lock_guard<std::mutex> lock(shutdown->mutex);
    shutdown->signal = sig;
    shutdown->cv.notify_all();
  }
}

// What a command started by an exec agent (the node's user) could read of the node: the
// node is made non-dumpable (its /proc files, memory included, become root's), and the
// secrets it took from the environment are blanked in /proc/<pid>/environ, which shows the
// environment block the process started with. The configuration keeps its own copies.
void hide_secrets_from_children() {
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  static const std::set<std::string> secret_vars{"JWT_SECRET", "API_KEY", "CLUSTER_SECRET", "HIVE_SECURITY__JWT_SECRET",
                                                 "HIVE_SECURITY__API_KEYS", "HIVE_CLUSTER__SECRET", "PGPASSWORD"};
  for (char** e = environ; e && *e; ++e) {
    char* eq = std::strchr(*e, '=');
    if (!eq) continue;
    std::string name(*e, size_t(eq - *e));
    char* value = eq + 1;
    if (secret_vars.count(name)) {
      std::memset(value, '*', std::strlen(value));
    } else if (name == "DATABASE_URL" || name == "HIVE_DATABASE__URL") {
      // postgresql://user:PASSWORD@host/db: the password only
      char* scheme = std::strstr(value, "://");
      char* at = scheme ? std::strchr(scheme + 3, '@') : nullptr;
      char* colon = scheme ? std::strchr(scheme + 3, ':') : nullptr;
      if (at && colon && colon < at) std::memset(colon + 1, '*', size_t(at - colon - 1));
    }
  }
}

int run_node(const config::LoadResult& loaded) {
  const auto& cfg = loaded.config;
  auto started_ms = runtime::now_ms();
  hide_secrets_from_children();
  if (auto err = runtime::setup_logging({cfg.logging.level, cfg.logging.format, log_file_of(cfg)}); !err.empty()) {
    std::cerr << "ai-orchestrator-hub: " << err << "\n";
    return 1;
  }
  spdlog::info("ai-orchestrator-hub {} starting (environment {}, pid {})", kVersion, cfg.environment, getpid());
  for (const auto& w : loaded.warnings) spdlog::warn("config: {}", w);
  if (cfg.security.api_keys.empty() && cfg.security.jwt_secret.empty())
    spdlog::warn("SECURITY: no credentials are configured (no API_KEY / [security] api_keys, no JWT_SECRET): "
                 "the API is OPEN to anyone who can reach {}:{}. Development only.", cfg.server.host, cfg.server.port);

  if (auto p = data_dir_problem(cfg.server.data_dir); !p.empty()) {
    spdlog::error("{}", p);
    std::cerr << "ai-orchestrator-hub: " << p << "\n";
    return 1;
  }
  std::error_code ec;
  fs::create_directories(cfg.server.data_dir, ec);
  PidFile pid_file;
  if (auto p = pid_file.take(pid_file_of(cfg)); !p.empty()) {
    spdlog::error("{}", p);
    std::cerr << "ai-orchestrator-hub: " << p << "\n";
    return 1;
  }
  if (auto p = database_file_problem(runtime::sqlite_path(cfg.database.url)); !p.empty()) {
    spdlog::error("store: {}", p);
    std::cerr << "ai-orchestrator-hub: store: " << p << "\n";
    return 1;
  }

  Shutdown shutdown;
  {
    std::thread waiter(wait_for_signals, &shutdown);
    signal_thread = waiter.native_handle();
    signal_thread_set = true;
    waiter.detach();
  }

  auto name = node_name(cfg);
  runtime::SystemMonitor monitor(cfg.server.data_dir, cfg.monitoring);
  gateway::Gateway gateway({nullptr, &cfg, name, kVersion, started_ms, &monitor});
  if (auto err = gateway.bind(); !err.empty()) {
    spdlog::error("{}", err);
    std::cerr << "ai-orchestrator-hub: " << err << "\n";
    return 1;
  }

  auto opened = runtime::open_store({cfg.database.url, cfg.database.connection_timeout_seconds * 1000,
                                     cfg.database.sqlite_synchronous == "full", cfg.database.max_connections,
                                     int64_t(cfg.tasks.lease_seconds) * 1000});
  if (opened.error) {
    spdlog::error("store: {}", opened.error->message);
    std::cerr << "ai-orchestrator-hub: store: " << opened.error->message << "\n";
    return 1;
  }
  auto& store = *opened.store;
  spdlog::info("store: {} at {}", store.backend(), runtime::redact_url(cfg.database.url));

  if (cfg.cluster.enabled) store.set_node(name);
  runtime::HubActorConfig actor_config(cfg.scheduler_threads(), cfg.performance.scheduler_policy, cfg.cluster.enabled,
                                       {cfg.cluster.tls_cert, cfg.cluster.tls_key, cfg.cluster.tls_ca});
  caf::actor_system system{actor_config};
  runtime::introspection::Registry::of(system).set_node(name);
  auto* gw = &gateway;
  monitor.start();
  gw->serve();
  spdlog::info("http: listening on {}:{} ({} workers, {} connection threads); not ready until recovery ends", cfg.server.host,
               cfg.server.port, cfg.server.workers, gateway::connection_threads(cfg.server.workers));

  auto breakers = runtime::breaker_policy(cfg.performance);
  auto store_actor = runtime::spawn_store_actor(system, store, breakers);
  actors::SchedulerOptions options;
  options.node = name;
  options.max_concurrent_tasks = cfg.tasks.max_concurrent_tasks;
  options.max_live_tasks = cfg.tasks.max_queue_size;
  options.max_agents = cfg.agents.max_agents;
  options.default_agent_concurrency = cfg.agents.default_max_concurrent_tasks;
  options.default_pool = cfg.agents.default_pool;
  options.lease_ms = int64_t(cfg.tasks.lease_seconds) * 1000;
  actors::NeuralOptions neural_options{cfg.neural.workers, cfg.neural.gpu_enabled, float(cfg.neural.learning_rate),
                                       cfg.server.data_dir, &store};
  auto neural_pool = actors::spawn_neural_pool(system, neural_options);
  options.agent_options = {actors::executor_policy(cfg.agents), breakers, cfg.agents.fault_injection, neural_pool};
  options.learned_routing = cfg.neural.mode == "advanced" && cfg.neural.workers > 0;
  options.routing_max_agents = cfg.neural.max_agents;
  actors::SupervisionOptions supervision{cfg.supervision.strategy, cfg.supervision.max_restarts,
                                         int64_t(cfg.supervision.restart_period_seconds) * 1000};
  auto node_actors = actors::spawn_node_actors(system, options, supervision, store_actor);
  // The neural pool restarts its own workers; its crash (it only dispatches) escalates.
  caf::anon_send(node_actors.root, actors::adopt_atom::value, actors::ChildSpec{"neural", "supervisor", {}, true}, neural_pool);
  auto scheduler = node_actors.scheduler;
  // The root supervisor gives up only when the node cannot go on (its scheduler crashed, or
  // restarts kept failing): stop in order and exit 1, so the service manager restarts it.
  caf::actor_cast<caf::abstract_actor*>(node_actors.root)->attach_functor([&shutdown](const caf::error& reason) {
    if (!reason || reason == caf::exit_reason::user_shutdown) return;
    spdlog::critical("supervision: the root supervisor stopped ({}); shutting the node down", caf::to_string(reason));
    std::lock_guard<std::mutex> lock(shutdown.mutex);
    if (shutdown.signal == 0) shutdown.signal = -1;
    shutdown.cv.notify_all();
  });

  auto agents = store.agents();
  if (cfg.cluster.enabled) {
    // In a cluster each node runs the agents created through it; the others know them
    // through the membership heartbeats.
    std::erase_if(agents, [&](const runtime::AgentRecord& a) { return a.node != name; });
  }
  // Our own unfinished tasks, and any whose owner's lease expired (a node on the same
  // database that stopped); tasks another live node holds are left to it.
  std::vector<runtime::TaskRecord> tasks;
  try {
    auto now = runtime::now_ms();
    tasks = store.claim_tasks(name, now, now + store.lease_ms(), std::numeric_limits<int>::max(), true);
  } catch (const std::exception& e) {
    spdlog::error("recovery: {}", e.what());
    std::cerr << "ai-orchestrator-hub: recovery: " << e.what() << "\n";
    return 1;
  }
  bool first_boot = agents.empty() && (cfg.cluster.enabled || store.task_counts_by_status().empty());
  spdlog::info("recovery: {} agents and {} unfinished tasks in the store", agents.size(), tasks.size());
  bool booted = false;
  {
    caf::scoped_actor self{system};
    self->request(scheduler, caf::infinite, actors::boot_atom::value, std::move(agents), std::move(tasks), first_boot)
        .receive([&](bool) { booted = true; },
                 [&](caf::error& err) { spdlog::error("recovery failed: {}", system.render(err)); });
  }
  if (!booted) {
    gw->stop(0);
    caf::anon_send_exit(node_actors.root, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(store_actor, caf::exit_reason::user_shutdown);
    return 1;
  }
  caf::actor cluster;
  if (cfg.cluster.enabled) {
    runtime::ClusterOptions co;
    co.name = name;
    co.host = cfg.cluster.host;
    co.port = cfg.cluster.port;
    co.advertise_host = cfg.cluster.advertise_host;
    co.http_address = (cfg.server.host == "0.0.0.0" ? co.advertise_host.empty() ? std::string("localhost") : co.advertise_host
                                                     : cfg.server.host) +
                      ":" + std::to_string(cfg.server.port);
    co.seeds = cfg.cluster.seeds;
    co.secret = cfg.cluster.secret;
    co.tls = !cfg.cluster.tls_cert.empty();
    co.heartbeat_ms = cfg.cluster.heartbeat_interval_ms;
    co.failure_ms = cfg.cluster.failure_timeout_ms;
    co.down_after_ms = cfg.cluster.down_after_ms;
    co.version = kVersion;
    co.load = [&monitor] {
      auto s = monitor.latest();
      return runtime::NodeLoad{s.cpu_percent, s.process_rss_bytes};
    };
    co.on_leave = [&shutdown] {
      std::lock_guard<std::mutex> lock(shutdown.mutex);
      if (shutdown.signal == 0) shutdown.signal = -2;
      shutdown.cv.notify_all();
    };
    auto started = runtime::start_cluster(system, co, scheduler);
    if (!started.error.empty()) {
      spdlog::error("{}", started.error);
      std::cerr << "ai-orchestrator-hub: " << started.error << "\n";
      gw->stop(0);
      caf::anon_send_exit(node_actors.root, caf::exit_reason::user_shutdown);
      caf::anon_send_exit(store_actor, caf::exit_reason::user_shutdown);
      std::quick_exit(1);
    }
    cluster = started.manager;
    if (cfg.cluster.secret.empty())
      spdlog::warn("cluster: no [cluster] secret: any process on this host can join (allowed on loopback outside production only)");
    spdlog::info("cluster: node {} listening on {}:{} ({}); seeds: {}", name, cfg.cluster.host, cfg.cluster.port,
                 co.tls ? "mutual TLS" : "plain TCP",
                 cfg.cluster.seeds.empty() ? std::string("(none: first node)") : [&] {
                   std::string s;
                   for (const auto& seed : cfg.cluster.seeds) s += (s.empty() ? "" : ", ") + seed;
                   return s;
                 }());
  }
  gw->attach(system, scheduler, store_actor, &store, node_actors.root, cluster);
  gw->set_ready(true);
  spdlog::info("ready in {} ms: http://{}:{}/health", runtime::now_ms() - started_ms, cfg.server.host, cfg.server.port);

  int sig = 0;
  {
    std::unique_lock<std::mutex> lock(shutdown.mutex);
    shutdown.cv.wait(lock, [&] { return shutdown.signal != 0; });
    sig = shutdown.signal;
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(cfg.server.shutdown_timeout_ms);
  auto left_ms = [&] {
    return int(std::max<int64_t>(
        0, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count()));
  };
  spdlog::info("{}: shutting down (readiness now 503, deadline {} ms)",
               sig > 0 ? strsignal(sig) : sig == -2 ? "asked to leave the cluster" : "escalation", cfg.server.shutdown_timeout_ms);
  if (cluster) {
    // The others stop placing work here first; our attempts for them finish in the drain.
    caf::scoped_actor self{system};
    self->request(cluster, std::chrono::seconds(2), runtime::leaving_atom::value).receive([](bool) {}, [](caf::error&) {});
  }
  gw->set_ready(false);
  bool http_done = gw->stop(left_ms());
  spdlog::info("http: {}", http_done ? "stopped accepting; in-flight requests finished" : "deadline passed with requests in flight");
  {
    caf::scoped_actor self{system};
    bool drained = false;
    self->request(scheduler, std::chrono::milliseconds(std::max(1, left_ms())), actors::drain_atom::value)
        .receive([&](bool) { drained = true; }, [&](caf::error&) {});
    spdlog::info("tasks: {}", drained ? "running attempts finished" : "deadline passed; unfinished attempts resume at next start");
    self->request(store_actor, std::chrono::seconds(30), runtime::flush_atom::value)
        .receive([&](bool) { spdlog::info("store: flushed"); },
                 [&](caf::error& err) { spdlog::error("store: flush failed: {}", system.render(err)); });
  }
  caf::anon_send_exit(node_actors.root, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(store_actor, caf::exit_reason::user_shutdown);
  if (cluster) caf::anon_send_exit(cluster, caf::exit_reason::user_shutdown);
  int code = sig == -1 ? 1 : 0;
  if (!http_done) {
    spdlog::info("stopped (exit without waiting for stuck HTTP requests)");
    spdlog::default_logger()->flush();
    std::quick_exit(code);
  }
  system.await_all_actors_done();
  spdlog::info("stopped");
  spdlog::default_logger()->flush();
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  // Signals are taken by one thread (sigwait); every thread started later inherits the mask.
  sigset_t set;
  sigemptyset(&set);
  for (int s : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&set, s);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  struct sigaction forward {};
  forward.sa_handler = forward_signal;
  sigemptyset(&forward.sa_mask);
  for (int s : {SIGTERM, SIGINT, SIGHUP}) sigaction(s, &forward, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  CLI::App app{"AI Orchestrator Hub node: orchestrates AI agents and their tasks as CAF actors"};
  std::string config_file;
  bool check = false, version = false;
  app.add_option("--config", config_file, "TOML file layered over settings/ (then the environment wins)");
  app.add_flag("--check", check, "validate the configuration and reach the dependencies, then exit (0 = all good)");
  app.add_flag("--version", version, "print the version and exit");
  auto* user_cmd = app.add_subcommand("user", "manage API users (stored in the node's database)");
  auto* user_add = user_cmd->add_subcommand("add", "create or update a user; the password is read from stdin");
  std::string user_name, user_role = "viewer";
  user_add->add_option("name", user_name, "user name")->required();
  user_add->add_option("--role", user_role, "admin | operator | viewer | agent")->check(CLI::IsMember({"admin", "operator", "viewer", "agent"}));
  user_cmd->require_subcommand(1);
  auto* config_cmd = app.add_subcommand("config", "show the configuration as the node resolves it (for scripts)");
  auto* config_get = config_cmd->add_subcommand("get", "print each KEY's effective value, one per line (secrets included: "
                                                       "for backup and restore scripts run by the operator)");
  std::vector<std::string> config_keys;
  config_get->add_option("key", config_keys, "environment | server.data_dir | server.pid_file | database.url | logging.file")
      ->required();
  config_cmd->require_subcommand(1);
  app.footer(
      "Configuration layers: built-in defaults -> settings/default.toml -> settings/$HIVE_ENV.toml -> --config FILE ->\n"
      "environment (HIVE_SECTION__KEY, DATABASE_URL, JWT_SECRET, API_KEY, LOG_LEVEL, ...). settings/ is looked for in\n"
      "the working directory, then beside the binary. Signals: SIGTERM/SIGINT drain and exit 0; SIGHUP reopens the log.");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (version) {
    std::cout << "ai-orchestrator-hub " << kVersion << " (" << kGitRevision << ")\n";
    return 0;
  }
  std::error_code ec;
  config::LoadOptions options{config_file, config::current_environment(), fs::current_path(ec), binary_dir()};
  auto loaded = config::load(options);
  if (*user_add) return add_user(loaded, user_name, user_role);
  if (*config_get) return print_config(loaded, config_keys);
  if (check) return run_check(loaded, options);
  if (!loaded.ok()) {
    for (const auto& p : loaded.problems) std::cerr << "ai-orchestrator-hub: config: " << p << "\n";
    std::cerr << "ai-orchestrator-hub: refusing to start (run with --check for a full report)\n";
    return 1;
  }
  try {
    return run_node(loaded);
  } catch (const std::exception& e) {
    std::cerr << "ai-orchestrator-hub: fatal: " << e.what() << "\n";
    return 1;
  }
}
