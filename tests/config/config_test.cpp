#define BOOST_TEST_MODULE config
#include <boost/test/unit_test.hpp>

#include "config/config.hpp"

#include <filesystem>
#include <fstream>

using namespace hub::config;
namespace fs = std::filesystem;

namespace {

bool mentions(const LoadResult& r, const std::string& needle) {
  for (const auto& p : r.problems)
    if (p.find(needle) != std::string::npos) return true;
  return false;
}

struct TempDir {
  fs::path path = fs::temp_directory_path() / ("hub-config-test-" + std::to_string(::getpid()) + "-" + std::to_string(rand()));
  TempDir() { fs::create_directories(path / "settings"); }
  ~TempDir() { fs::remove_all(path); }
  void write(const std::string& rel, const std::string& text) const { std::ofstream(path / rel) << text; }
};

}  // namespace

BOOST_AUTO_TEST_CASE(built_in_defaults_are_valid) {
  auto r = load_text("");
  BOOST_TEST(r.ok());
  BOOST_TEST(r.config.server.port == 3001);
  BOOST_TEST(r.config.server.host == "0.0.0.0");
  BOOST_TEST(r.config.database.url == "sqlite://./data/hive.db");
  BOOST_TEST(r.config.environment == "development");
}

BOOST_AUTO_TEST_CASE(shipped_default_toml_equals_built_in_defaults_and_has_no_pending_keys) {
  std::ifstream in(fs::path(HUB_SOURCE_DIR) / "config/settings/default.toml");
  std::string text((std::istreambuf_iterator<char>(in)), {});
  auto shipped = load_text(text);
  BOOST_TEST(shipped.ok());
  BOOST_TEST(shipped.warnings.empty(), "default.toml holds a key that has no effect yet");
  BOOST_TEST(render(shipped.config) == render(load_text("").config));
}

BOOST_AUTO_TEST_CASE(shipped_overlays_are_valid_partial_files) {
  for (auto name : {"development.toml", "production.toml"}) {
    std::ifstream in(fs::path(HUB_SOURCE_DIR) / "config/settings" / name);
    std::string text((std::istreambuf_iterator<char>(in)), {});
    auto r = load_text(text);
    BOOST_TEST(r.ok(), name);
  }
}

BOOST_AUTO_TEST_CASE(every_problem_is_reported_once_each_naming_key_and_value) {
  auto r = load_text("[server]\nport = 70000\nworkers = 0\n[performance]\ncircuit_breaker_failure_threshold = -1\n");
  BOOST_TEST(r.problems.size() == 3u);
  BOOST_TEST(mentions(r, "port = 70000"));
  BOOST_TEST(mentions(r, "from 1 to 65535"));
  BOOST_TEST(mentions(r, "workers = 0"));
  BOOST_TEST(mentions(r, "circuit_breaker_failure_threshold = -1"));
}

BOOST_AUTO_TEST_CASE(wrong_types_are_errors) {
  BOOST_TEST(mentions(load_text("[server]\nport = \"abc\"\n"), "port = \"abc\""));
  BOOST_TEST(mentions(load_text("[server]\nhost = 5\n"), "host = 5"));
  BOOST_TEST(mentions(load_text("[logging]\nlevel = \"loud\"\n"), "expected one of"));
  BOOST_TEST(mentions(load_text("[logging]\nformat = \"xml\"\n"), "format"));
  BOOST_TEST(mentions(load_text("[performance]\ncpu_cores = \"many\"\n"), "\"auto\" or an integer"));
  BOOST_TEST(mentions(load_text("[performance]\nscheduler_policy = \"fifo\"\n"), "scheduler_policy"));
  BOOST_TEST(mentions(load_text("[database]\nurl = \"mysql://x\"\n"), "sqlite://PATH or postgresql://"));
  BOOST_TEST(mentions(load_text("[agents]\ndefault_pool = [\"robot:x:1\"]\n"), "worker|coordinator"));
  BOOST_TEST(mentions(load_text("[agents]\ndefault_pool = [\"worker:x:0\"]\n"), "count"));
  BOOST_TEST(mentions(load_text("[tasks]\nretry_attempts = 0\n"), "retry_attempts = 0"));
  BOOST_TEST(mentions(load_text("[server]\ncors_origins = \"x\"\n"), "list of strings"));
  BOOST_TEST(mentions(load_text("[server]\nmax_body_bytes = 10\n"), "max_body_bytes"));
  BOOST_TEST(mentions(load_text("[database]\nsqlite_synchronous = \"off\"\n"), "sqlite_synchronous"));
}

BOOST_AUTO_TEST_CASE(unknown_keys_and_sections_get_a_hint) {
  auto r = load_text("[server]\nprot = 3001\n");
  BOOST_TEST(mentions(r, "unknown key \"prot\""));
  BOOST_TEST(mentions(r, "did you mean \"port\""));
  BOOST_TEST(mentions(load_text("[sever]\nport = 1\n"), "did you mean \"server\""));
  BOOST_TEST(mentions(load_text("port = 1\n"), "must be a [section]"));
}

BOOST_AUTO_TEST_CASE(syntax_errors_are_one_line) {
  auto r = load_text("[server\nport = 1\n");
  BOOST_TEST(r.problems.size() == 1u);
  BOOST_TEST(r.problems[0].find('\n') == std::string::npos);
}

BOOST_AUTO_TEST_CASE(compatibility_keys_warn_and_live_keys_do_not) {
  auto r = load_text("[neural]\nmode = \"advanced\"\nmax_agents = 10\n[performance]\ncircuit_breaker_failure_threshold = 3\n"
                     "[monitoring]\nsentry_dsn = \"https://x@example.org/1\"\n");
  BOOST_TEST(r.ok());
  BOOST_REQUIRE(r.warnings.size() == 1u);  // only the Sentry key: neural keys are live since #8, breakers since #5
  BOOST_TEST(r.warnings[0].find("compatibility") != std::string::npos);
  BOOST_TEST(r.config.neural.max_agents == 10);
  BOOST_TEST(r.config.performance.circuit_breaker_failure_threshold == 3);
}

BOOST_AUTO_TEST_CASE(executor_allow_lists_and_supervision_are_read_from_nested_sections) {
  auto r = load_text(
      "[agents.exec]\nallowed_commands = [\"/usr/bin/python3\"]\n[agents.http]\nallowed_hosts = [\"127.0.0.1:8000\"]\n"
      "[supervision]\nstrategy = \"rest_for_one\"\nmax_restarts = 3\n");
  BOOST_TEST(r.ok());
  BOOST_TEST(r.config.agents.exec_allowed_commands.at(0) == "/usr/bin/python3");
  BOOST_TEST(r.config.agents.http_allowed_hosts.at(0) == "127.0.0.1:8000");
  BOOST_TEST(r.config.supervision.strategy == "rest_for_one");
  BOOST_TEST(r.config.supervision.max_restarts == 3);
  auto bad = load_text("[agents.exec]\nallowed_commands = [\"python3\"]\nallowed_cwd = [\"tmp\"]\n[supervision]\nstrategy = \"all_for_one\"\n");
  BOOST_TEST(bad.problems.size() == 3u);
  BOOST_TEST(bad.problems[0].find("absolute") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(cluster_keys_seeds_and_timing_rules) {
  auto r = load_text("[cluster]\nenabled = true\nnode_name = \"n1\"\nport = 4101\nseeds = [\"10.0.0.5:4001\"]\n",
                     {{"HIVE_CLUSTER__SEEDS", "a:4001, b:4002"}, {"CLUSTER_SECRET", "cluster-secret-0123456789"}});
  BOOST_TEST(r.ok());
  BOOST_TEST(r.config.cluster.enabled);
  BOOST_TEST(r.config.cluster.node_name == "n1");
  BOOST_TEST(r.config.cluster.port == 4101);
  BOOST_TEST(r.config.cluster.seeds.size() == 2u);  // the environment's comma-separated list wins
  BOOST_TEST(r.config.cluster.seeds.at(1) == "b:4002");
  BOOST_TEST(r.config.cluster.heartbeat_interval_ms == 500);
  auto bad = load_text("[cluster]\nseeds = [\"no-port\"]\nnode_name = \"has space\"\nadvertise_host = \"\"\n");
  BOOST_TEST(bad.problems.size() == 2u);
  auto timing = load_text("[cluster]\nheartbeat_interval_ms = 1000\nfailure_timeout_ms = 1500\ndown_after_ms = 1000\n");
  BOOST_TEST(timing.problems.size() == 2u);
  BOOST_TEST(timing.problems[0].find("twice heartbeat_interval_ms") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(environment_overrides_with_double_underscores_and_aliases) {
  auto r = load_text("[server]\nport = 4000\n", {{"HIVE_SERVER__PORT", "4100"},
                                                  {"HIVE_SERVER__HOST", "127.0.0.1"},
                                                  {"DATABASE_URL", "sqlite:///tmp/x.db"},
                                                  {"LOG_LEVEL", "debug"},
                                                  {"HIVE_AGENTS__DEFAULT_POOL", "[\"worker:a:1\",\"learner:b:2\"]"},
                                                  {"HIVE_URL", "http://ignored"}});
  BOOST_TEST(r.ok());
  BOOST_TEST(r.config.server.port == 4100);
  BOOST_TEST(r.config.server.host == "127.0.0.1");
  BOOST_TEST(r.config.database.url == "sqlite:///tmp/x.db");
  BOOST_TEST(r.config.logging.level == "debug");
  BOOST_TEST(r.config.agents.default_pool.size() == 2u);
}

BOOST_AUTO_TEST_CASE(bad_environment_values_and_names_are_errors) {
  BOOST_TEST(mentions(load_text("", {{"HIVE_SERVER__PORT", "notaport"}}), "environment HIVE_SERVER__PORT"));
  BOOST_TEST(mentions(load_text("", {{"HIVE_SERVER__PROT", "1"}}), "did you mean \"port\""));
  BOOST_TEST(mentions(load_text("", {{"HIVE_NOPE__X", "1"}}), "unknown section"));
}

BOOST_AUTO_TEST_CASE(production_refuses_placeholder_short_and_missing_secrets) {
  BOOST_TEST(mentions(load_text("", {{"HIVE_ENV", "production"}, {"JWT_SECRET", "your-256-bit-secret-here"}}), "jwt_secret"));
  BOOST_TEST(mentions(load_text("", {{"HIVE_ENV", "production"}, {"JWT_SECRET", "short"}}), "too short"));
  BOOST_TEST(mentions(load_text("", {{"HIVE_ENV", "production"}}), "required in production"));
  BOOST_TEST(load_text("", {{"HIVE_ENV", "production"}, {"JWT_SECRET", std::string(40, 'k')}}).ok());
  // Short or placeholder secrets let anyone forge tokens: refused in every environment.
  BOOST_TEST(mentions(load_text("", {{"JWT_SECRET", "your-256-bit-secret-here"}}), "placeholder"));
  BOOST_TEST(mentions(load_text("", {{"JWT_SECRET", "x"}}), "too short"));
  BOOST_TEST(load_text("", {{"JWT_SECRET", std::string(32, 'k')}}).ok());
}

BOOST_AUTO_TEST_CASE(documented_placeholders_are_refused_for_every_secret) {
  BOOST_TEST(mentions(load_text("", {{"API_KEY", "your-api-key-here"}}), "placeholder"));
  BOOST_TEST(mentions(load_text("[cluster]\nenabled = true\n", {{"CLUSTER_SECRET", "replace-with-32-or-more-random-bytes-before-use"}}),
                      "placeholder"));
  BOOST_TEST(mentions(load_text("", {{"JWT_SECRET", "replace-with-32-or-more-random-bytes-before-use"}}), "placeholder"));
}

BOOST_AUTO_TEST_CASE(secrets_never_appear_in_problems) {
  auto r = load_text("", {{"API_KEY", "short7"}});
  BOOST_REQUIRE(!r.ok());
  for (const auto& p : r.problems) BOOST_TEST(p.find("short7") == std::string::npos);
  BOOST_TEST(mentions(r, "(hidden)"));
  auto jwt = load_text("[security]\njwt_secret = 42\n");
  for (const auto& p : jwt.problems) BOOST_TEST(p.find("42") == std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_cluster_proves_membership_with_a_secret_and_optional_mutual_tls) {
  // Beyond loopback (the default 0.0.0.0) or in production a cluster needs its secret.
  BOOST_TEST(mentions(load_text("[cluster]\nenabled = true\n"), "[cluster] secret"));
  BOOST_TEST(mentions(load_text("[cluster]\nenabled = true\nhost = \"127.0.0.1\"\n", {{"HIVE_ENV", "production"}, {"JWT_SECRET", std::string(40, 'k')}}),
                      "[cluster] secret"));
  BOOST_TEST(load_text("[cluster]\nenabled = true\nhost = \"127.0.0.1\"\n").ok());  // a laptop's loopback cluster
  auto with_secret = load_text("[cluster]\nenabled = true\n", {{"CLUSTER_SECRET", "cluster-secret-0123456789"}});
  BOOST_TEST(with_secret.ok());
  BOOST_TEST(with_secret.config.cluster.secret == "cluster-secret-0123456789");
  bool warns = false;
  for (const auto& w : with_secret.warnings) warns |= w.find("tls_cert") != std::string::npos;
  BOOST_TEST(warns);  // plain TCP beyond loopback: said
  BOOST_TEST(mentions(load_text("[cluster]\nenabled = true\nsecret = \"short\"\n"), "too short"));
  BOOST_TEST(mentions(load_text("[cluster]\nenabled = true\nhost = \"127.0.0.1\"\ntls_cert = \"/nonexistent.pem\"\n"),
                      "set all three"));
}

BOOST_AUTO_TEST_CASE(layering_order_is_defaults_env_file_config_file_environment) {
  TempDir dir;
  dir.write("settings/default.toml", "[server]\nport = 5000\nworkers = 2\n");
  dir.write("settings/staging.toml", "[server]\nport = 5001\n");
  dir.write("custom.toml", "[server]\nworkers = 7\n");
  auto r = load({"custom.toml", {{"HIVE_ENV", "staging"}}, dir.path, {}});
  BOOST_TEST(r.ok());
  BOOST_TEST(r.config.server.port == 5001);
  BOOST_TEST(r.config.server.workers == 7);
  BOOST_TEST(r.config.environment == "staging");
  BOOST_TEST(r.sources.size() == 4u);
  auto env = load({"custom.toml", {{"HIVE_ENV", "staging"}, {"HIVE_SERVER__WORKERS", "9"}}, dir.path, {}});
  BOOST_TEST(env.config.server.workers == 9);
}

BOOST_AUTO_TEST_CASE(settings_beside_the_binary_are_used_when_the_working_dir_has_none) {
  TempDir cwd, bin;
  bin.write("settings/default.toml", "[server]\nport = 6001\n");
  fs::remove_all(cwd.path / "settings");
  auto r = load({"", {}, cwd.path, bin.path});
  BOOST_TEST(r.config.server.port == 6001);
}

BOOST_AUTO_TEST_CASE(a_missing_config_file_is_an_error) {
  TempDir dir;
  auto r = load({"nope.toml", {}, dir.path, {}});
  BOOST_TEST(mentions(r, "nope.toml: not found"));
}

BOOST_AUTO_TEST_CASE(cpu_cores_auto_uses_all_cores) {
  BOOST_TEST(load_text("[performance]\ncpu_cores = \"auto\"\n").config.scheduler_threads() >= 1);
  BOOST_TEST(load_text("[performance]\ncpu_cores = 3\n").config.scheduler_threads() == 3);
}
