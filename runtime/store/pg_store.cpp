#include "runtime/store/pg_store.hpp"

#include "runtime/clock.hpp"
#include "runtime/json_text.hpp"
#include "runtime/store/json_columns.hpp"

#include <libpq-fe.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <set>
#include <string_view>
#include <unordered_map>

namespace hub::runtime {
namespace {

using json = nlohmann::json;

const char* const kMigrations[] = {
    R"sql(
CREATE TABLE agents (
  id TEXT PRIMARY KEY, name TEXT NOT NULL, type TEXT NOT NULL, specialization TEXT NOT NULL DEFAULT '',
  state TEXT NOT NULL, capabilities JSONB NOT NULL, max_concurrent_tasks INT NOT NULL, executor JSONB NOT NULL,
  node TEXT NOT NULL DEFAULT '', energy DOUBLE PRECISION NOT NULL DEFAULT 100, tasks_completed BIGINT NOT NULL DEFAULT 0,
  tasks_failed BIGINT NOT NULL DEFAULT 0, avg_duration_ms DOUBLE PRECISION NOT NULL DEFAULT 0,
  created_at TIMESTAMPTZ NOT NULL, updated_at TIMESTAMPTZ NOT NULL, deleted BOOLEAN NOT NULL DEFAULT false);
CREATE TABLE tasks (
  seq BIGSERIAL NOT NULL, id UUID PRIMARY KEY, title TEXT NOT NULL DEFAULT '', description TEXT NOT NULL,
  type TEXT NOT NULL DEFAULT '', priority TEXT NOT NULL, required_capabilities JSONB NOT NULL DEFAULT '[]',
  payload JSONB, status TEXT NOT NULL, attempts INT NOT NULL DEFAULT 0, max_attempts INT NOT NULL,
  timeout_ms BIGINT NOT NULL, idempotency_key TEXT UNIQUE, assigned_agent TEXT, node TEXT NOT NULL DEFAULT '',
  result JSONB, error_type TEXT, error_message TEXT, created_at TIMESTAMPTZ NOT NULL, updated_at TIMESTAMPTZ NOT NULL,
  started_at TIMESTAMPTZ, completed_at TIMESTAMPTZ);
CREATE INDEX idx_tasks_status_created ON tasks(status, created_at);
CREATE TABLE task_events (
  id BIGSERIAL PRIMARY KEY, task_id UUID NOT NULL, from_status TEXT NOT NULL DEFAULT '', to_status TEXT NOT NULL,
  at TIMESTAMPTZ NOT NULL, attempt INT NOT NULL DEFAULT 0, reason TEXT NOT NULL DEFAULT '');
CREATE INDEX idx_task_events_task ON task_events(task_id, id);
)sql",
    R"sql(
CREATE TABLE users (username TEXT PRIMARY KEY, password_hash TEXT NOT NULL, role TEXT NOT NULL, created_at TIMESTAMPTZ NOT NULL);
CREATE TABLE refresh_tokens (token_hash TEXT PRIMARY KEY, username TEXT NOT NULL, expires_at BIGINT NOT NULL,
  used BOOLEAN NOT NULL DEFAULT false);
CREATE INDEX idx_refresh_tokens_user ON refresh_tokens(username);
CREATE TABLE audit_log (id BIGSERIAL PRIMARY KEY, at TIMESTAMPTZ NOT NULL, actor TEXT NOT NULL, role TEXT NOT NULL,
  action TEXT NOT NULL, resource TEXT NOT NULL, status INT NOT NULL, request_id TEXT NOT NULL, client TEXT NOT NULL);
)sql",
    R"sql(
ALTER TABLE tasks ADD COLUMN lease_owner TEXT;
ALTER TABLE tasks ADD COLUMN lease_expires_at TIMESTAMPTZ;
CREATE INDEX idx_tasks_lease ON tasks(lease_expires_at) WHERE status IN ('pending', 'assigned', 'running');
)sql",
    R"sql(
CREATE TABLE models (
  name TEXT PRIMARY KEY, kind TEXT NOT NULL, spec JSONB NOT NULL, metadata JSONB NOT NULL, metrics JSONB NOT NULL,
  data TEXT NOT NULL, size_bytes BIGINT NOT NULL, created_at TIMESTAMPTZ NOT NULL, updated_at TIMESTAMPTZ NOT NULL
);
)sql",
    R"sql(
ALTER TABLE tasks ADD COLUMN inferred JSONB;
)sql",
    // 6: sessions (a login and its refreshes) and revoked access tokens, shared by the nodes.
    R"sql(
ALTER TABLE refresh_tokens ADD COLUMN session TEXT NOT NULL DEFAULT '';
ALTER TABLE refresh_tokens ADD COLUMN revoked BOOLEAN NOT NULL DEFAULT false;
CREATE INDEX idx_refresh_tokens_session ON refresh_tokens(session);
CREATE TABLE revocations (kind TEXT NOT NULL, subject TEXT NOT NULL, at BIGINT NOT NULL, expires_at BIGINT NOT NULL,
  PRIMARY KEY (kind, subject));
CREATE INDEX idx_revocations_at ON revocations(at);
)sql",
    // 7: a task's events trail in its own row (one JSON object per line; json_columns.hpp).
    // Older events stay in task_events and are read before the trail.
    R"sql(
ALTER TABLE tasks ADD COLUMN events TEXT NOT NULL DEFAULT '';
)sql",
};

// Epoch milliseconds of a timestamptz column, for SELECT lists.
std::string ms(const char* column) {
  return std::string("(EXTRACT(EPOCH FROM ") + column + ") * 1000)::bigint";
}

const std::string kTaskColumns = "id::text, title, description, type, priority, required_capabilities::text, "
                                 "COALESCE(payload::text, 'null'), status, attempts, max_attempts, timeout_ms, "
                                 "COALESCE(idempotency_key, ''), COALESCE(assigned_agent, ''), node, "
                                 "COALESCE(result::text, ''), COALESCE(error_type, ''), COALESCE(error_message, ''), " +
                                 ms("created_at") + ", " + ms("updated_at") + ", COALESCE(" + ms("started_at") +
                                 ", 0), COALESCE(" + ms("completed_at") + ", 0), COALESCE(inferred::text, '')";

struct Result {
  PGresult* r = nullptr;
  explicit Result(PGresult* res) : r(res) {}
  ~Result() { PQclear(r); }
  Result(Result&& other) noexcept : r(other.r) { other.r = nullptr; }
  Result(const Result&) = delete;
  Result& operator=(const Result&) = delete;
  bool ok() const {
    auto s = PQresultStatus(r);
    return s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK;
  }
  int rows() const { return PQntuples(r); }
  std::string text(int row, int col) const { return PQgetisnull(r, row, col) ? "" : PQgetvalue(r, row, col); }
  int64_t integer(int row, int col) const { return PQgetisnull(r, row, col) ? 0 : std::stoll(PQgetvalue(r, row, col)); }
};

// Parameters as text, NULL for empty optional values.
struct Params {
  std::vector<std::string> values;
  std::vector<bool> null;
  Params& add(std::string v) {
    values.push_back(std::move(v));
    null.push_back(false);
    return *this;
  }
  Params& add_or_null(std::string v) {
    bool is_null = v.empty();
    values.push_back(std::move(v));
    null.push_back(is_null);
    return *this;
  }
  Params& time_or_null(int64_t ms_value) { return ms_value > 0 ? add(rfc3339(ms_value)) : add_or_null(""); }
};

// A named statement, prepared on every (re)connect of the connection that runs it.
struct Prepared {
  const char* name;
  const char* sql;
};

class Connection {
 public:
  // `session`: SET statements run on every new session (before anything else).
  Connection(std::string conninfo, std::vector<Prepared> prepared = {}, std::string session = {})
      : conninfo_(std::move(conninfo)), prepared_(std::move(prepared)), session_(std::move(session)) {}
  ~Connection() {
    if (conn_) PQfinish(conn_);
  }
  // Connected (reconnecting when the link was lost), or the reason it cannot be. After a
  // failed attempt the next one waits (0.25 s doubling to 5 s), so a dead database is not
  // hammered by every refused write.
  std::string ensure() {
    if (conn_ && PQstatus(conn_) == CONNECTION_OK) return {};
    auto now = now_ms();
    if (now < retry_at_ms_) return last_error_ + " (next attempt in " + std::to_string(retry_at_ms_ - now) + " ms)";
    if (conn_) PQfinish(conn_);
    conn_ = PQconnectdb(conninfo_.c_str());
    if (PQstatus(conn_) == CONNECTION_OK) {
      PQclear(PQexec(conn_, "SET client_min_messages = warning"));
      if (!session_.empty()) PQclear(PQexec(conn_, session_.c_str()));
      ready_.clear();  // a new session: its statements are prepared again on first use
      backoff_ms_ = 0;
      return {};
    }
    std::string why = PQerrorMessage(conn_);
    while (!why.empty() && (why.back() == '\n' || why.back() == ' ')) why.pop_back();
    for (auto& c : why)
      if (c == '\n') c = ' ';
    last_error_ = why.empty() ? "cannot connect" : why;
    backoff_ms_ = std::min<int64_t>(5000, backoff_ms_ == 0 ? 250 : backoff_ms_ * 2);
    retry_at_ms_ = now + backoff_ms_;
    return last_error_;
  }
  Result exec(const std::string& sql, const Params& p = {}) {
    std::vector<const char*> values;
    for (size_t i = 0; i < p.values.size(); ++i) values.push_back(p.null[i] ? nullptr : p.values[i].c_str());
    return Result(PQexecParams(conn_, sql.c_str(), int(values.size()), nullptr, values.data(), nullptr, nullptr, 0));
  }
  Result run(const char* prepared_name, const Params& p) {
    if (!ready_.count(prepared_name)) {
      for (const auto& s : prepared_)
        if (std::string_view(s.name) == prepared_name) {
          Result r(PQprepare(conn_, s.name, s.sql, 0, nullptr));
          if (!r.ok()) return r;
          ready_.insert(s.name);
        }
    }
    std::vector<const char*> values;
    for (size_t i = 0; i < p.values.size(); ++i) values.push_back(p.null[i] ? nullptr : p.values[i].c_str());
    return Result(PQexecPrepared(conn_, prepared_name, int(values.size()), values.data(), nullptr, nullptr, 0));
  }
  // Several statements, no parameters (migrations).
  Result script(const std::string& sql) { return Result(PQexec(conn_, sql.c_str())); }
  std::string error() const {
    std::string e = conn_ ? PQerrorMessage(conn_) : "not connected";
    while (!e.empty() && (e.back() == '\n' || e.back() == ' ')) e.pop_back();
    return e;
  }

 private:
  std::string conninfo_;
  std::vector<Prepared> prepared_;
  std::string session_;
  std::set<std::string> ready_;  // prepared in this session
  PGconn* conn_ = nullptr;
  int64_t backoff_ms_ = 0;
  int64_t retry_at_ms_ = 0;
  std::string last_error_;
};

TaskRecord read_task(const Result& r, int i) {
  TaskRecord t;
  t.id = r.text(i, 0);
  t.title = r.text(i, 1);
  t.description = r.text(i, 2);
  t.type = r.text(i, 3);
  t.priority = r.text(i, 4);
  t.required_capabilities = parse_required(r.text(i, 5));
  t.payload_json = r.text(i, 6);
  t.status = r.text(i, 7);
  t.attempts = int32_t(r.integer(i, 8));
  t.max_attempts = int32_t(r.integer(i, 9));
  t.timeout_ms = r.integer(i, 10);
  t.idempotency_key = r.text(i, 11);
  t.assigned_agent = r.text(i, 12);
  t.node = r.text(i, 13);
  t.result_json = r.text(i, 14);
  t.error_type = r.text(i, 15);
  t.error_message = r.text(i, 16);
  t.created_at = r.integer(i, 17);
  t.updated_at = r.integer(i, 18);
  t.started_at = r.integer(i, 19);
  t.completed_at = r.integer(i, 20);
  t.inferred_json = r.text(i, 21);
  return t;
}


}  // namespace

// The writer's statements: set-based, one per table per group commit. The rows travel as
// one JSON array parameter, unpacked by jsonb_to_recordset (no per-row round trips).
// Every join the writer makes is "these few given rows, to their rows in a large table by
// primary key". The planner cannot see how few rows a jsonb_to_recordset set holds (it guesses
// 100), and on a tasks table of some ten thousand rows it chose a hash join over a sequential
// scan of every task for every commit (measured: 7 ms a commit at 4,000 tasks, growing with the
// table; enqueue->start p99 1.1 s at 4,000 tasks/s). Without hash and merge joins it takes a
// nested loop over the primary key, whatever the table's size and statistics.
const char* const kWriterSession = "SET enable_hashjoin = off; SET enable_mergejoin = off";

const std::vector<Prepared> kWriterStatements = {
    {"insert_tasks",
     "INSERT INTO tasks(id, title, description, type, priority, required_capabilities, payload, status, attempts, "
     "max_attempts, timeout_ms, idempotency_key, assigned_agent, node, result, error_type, error_message, created_at, "
     "updated_at, started_at, completed_at, lease_owner, lease_expires_at, inferred, events) SELECT id, title, description, "
     "type, priority, required_capabilities, payload, status, attempts, max_attempts, timeout_ms, idempotency_key, "
     "assigned_agent, node, result, error_type, error_message, created_at, updated_at, started_at, completed_at, "
     "NULLIF(node, ''), lease_expires_at, inferred, COALESCE(events, '') FROM "
     "jsonb_to_recordset($1::jsonb) AS x(id uuid, title text, description text, type text, priority text, "
     "required_capabilities jsonb, payload jsonb, status text, attempts int, max_attempts int, timeout_ms bigint, "
     "idempotency_key text, assigned_agent text, node text, result jsonb, error_type text, error_message text, "
     "created_at timestamptz, updated_at timestamptz, started_at timestamptz, completed_at timestamptz, "
     "lease_expires_at timestamptz, inferred jsonb, events text) ON CONFLICT (id) DO UPDATE SET events = tasks.events || "
     "EXCLUDED.events, status = EXCLUDED.status, attempts = "
     "EXCLUDED.attempts, assigned_agent = EXCLUDED.assigned_agent, node = EXCLUDED.node, result = EXCLUDED.result, "
     "error_type = EXCLUDED.error_type, error_message = EXCLUDED.error_message, updated_at = EXCLUDED.updated_at, "
     "started_at = EXCLUDED.started_at, completed_at = EXCLUDED.completed_at, lease_owner = EXCLUDED.lease_owner, "
     "lease_expires_at = EXCLUDED.lease_expires_at WHERE tasks.lease_owner IS NULL OR tasks.lease_owner = "
     "EXCLUDED.lease_owner OR tasks.status IN ('completed', 'failed', 'cancelled')"},
    {"update_tasks",
     "UPDATE tasks t SET status = x.status, attempts = x.attempts, assigned_agent = x.assigned_agent, node = x.node, "
     "result = x.result, error_type = x.error_type, error_message = x.error_message, updated_at = x.updated_at, "
     "started_at = x.started_at, completed_at = x.completed_at, lease_owner = NULLIF(x.node, ''), lease_expires_at = "
     "x.lease_expires_at, events = t.events || COALESCE(x.events, '') FROM jsonb_to_recordset($1::jsonb) AS x(id uuid, "
     "status text, attempts int, assigned_agent text, node text, result jsonb, error_type text, error_message text, "
     "updated_at timestamptz, started_at timestamptz, completed_at timestamptz, lease_expires_at timestamptz, events "
     "text) WHERE t.id = x.id AND (t.lease_owner IS NULL OR t.lease_owner = x.node)"},
    {"renew_leases",
     "UPDATE tasks SET lease_expires_at = $2 WHERE lease_owner = $1 AND status IN ('pending', 'assigned', 'running')"},
    // Events of tasks whose state the batch does not write, fenced like a state update.
    {"append_events",
     "UPDATE tasks t SET events = t.events || x.events FROM jsonb_to_recordset($1::jsonb) AS x(id uuid, events text) "
     "WHERE t.id = x.id AND ($2 = '' OR t.lease_owner IS NULL OR t.lease_owner = '' OR t.lease_owner = $2)"},
    {"expire_leases",
     "UPDATE tasks SET lease_expires_at = $2 WHERE lease_owner = $1 AND status IN ('pending', 'assigned', 'running')"},
};

// Rows travel as JSON text written straight into one string (no tree per row: building and
// dumping nlohmann objects was most of the writer's own CPU per task).
void time_or_null(JsonText& row, std::string_view key, int64_t ms_value) {
  if (ms_value > 0) row.str(key, rfc3339(ms_value));
  else row.raw(key, "null");
}
// Results are JSON when they parse, else stored as a JSON string.
void json_value_or_null(JsonText& row, std::string_view key, const std::string& text) {
  if (text.empty()) row.raw(key, "null");
  else if (json::accept(text)) row.raw(key, text);
  else row.str(key, text);
}

// The mutable columns of a task, as update_tasks and insert_tasks read them, and its new events.
JsonText& task_state_row(JsonText& row, const TaskRecord& t, int64_t lease_until, const std::string& events) {
  row.str("id", t.id).str("status", t.status).num("attempts", t.attempts).str_or_null("assigned_agent", t.assigned_agent);
  row.str("node", t.node);
  json_value_or_null(row, "result", t.result_json);
  row.str_or_null("error_type", t.error_type).str_or_null("error_message", t.error_message);
  row.str("updated_at", rfc3339(t.updated_at));
  time_or_null(row, "started_at", t.started_at);
  time_or_null(row, "completed_at", t.completed_at);
  time_or_null(row, "lease_expires_at", is_terminal(t.status) ? 0 : lease_until);
  return row.str("events", events);
}

std::string task_row(const TaskRecord& t, int64_t lease_until, const std::string& events) {
  JsonText row;
  task_state_row(row, t, lease_until, events);
  row.str("title", t.title).str("description", t.description).str("type", t.type).str("priority", t.priority);
  row.raw("required_capabilities", required_json(t.required_capabilities));
  json_value_or_null(row, "payload", t.payload_json);
  row.num("max_attempts", t.max_attempts).num("timeout_ms", t.timeout_ms).str_or_null("idempotency_key", t.idempotency_key);
  row.str("created_at", rfc3339(t.created_at));
  json_value_or_null(row, "inferred", t.inferred_json);
  return row.done();
}

std::string task_state_row(const TaskRecord& t, int64_t lease_until, const std::string& events) {
  JsonText row;
  return task_state_row(row, t, lease_until, events).done();
}

// Appends one row to a JSON array being written ("[" first, "]" by the caller).
void add_row(std::string& rows, const std::string& row) {
  if (rows.size() > 1) rows += ',';
  rows += row;
}

std::string dump(const json& rows) { return rows.dump(-1, ' ', false, json::error_handler_t::replace); }

struct PgStore::Impl {
  std::string conninfo;
  int max_connections = 10;  // the writer and the pool together ([database] max_connections)
  int wait_ms = 5000;        // a caller waits this long for a pooled connection, then 503
  std::unique_ptr<Connection> writer;
  std::mutex pool_mutex;
  std::condition_variable pool_free;
  std::vector<std::unique_ptr<Connection>> idle;
  int open_pooled = 0;  // pooled connections that exist (idle or lent)
  std::mutex stats_mutex;
  StoreStats stats = [] {
    StoreStats s;
    s.backend = "postgresql";
    return s;
  }();

  int pool_size() const { return std::max(1, max_connections - 1); }

  struct Lease {
    Impl* impl;
    std::unique_ptr<Connection> conn;
    ~Lease() {
      if (!conn) return;
      std::lock_guard<std::mutex> lock(impl->pool_mutex);
      impl->idle.push_back(std::move(conn));
      impl->pool_free.notify_one();
    }
    Connection& operator*() { return *conn; }
  };
  // A connection of the pool (reads, users and sessions): at most pool_size() exist; when
  // all are lent the caller waits for one, up to wait_ms (then StoreUnavailable: a 503).
  Lease reader() {
    std::unique_ptr<Connection> conn;
    {
      std::unique_lock<std::mutex> lock(pool_mutex);
      ++stats.reads;
      bool got = pool_free.wait_for(lock, std::chrono::milliseconds(wait_ms),
                                    [&] { return !idle.empty() || open_pooled < pool_size(); });
      if (!got)
        throw StoreUnavailable("PostgreSQL: all " + std::to_string(pool_size()) +
                               " pooled connections are busy ([database] max_connections = " + std::to_string(max_connections) +
                               ", the writer included)");
      if (!idle.empty()) {
        conn = std::move(idle.back());
        idle.pop_back();
      } else {
        ++open_pooled;
      }
    }
    if (!conn) conn = std::make_unique<Connection>(conninfo);
    if (auto why = conn->ensure(); !why.empty()) {
      std::lock_guard<std::mutex> lock(pool_mutex);
      --open_pooled;  // this connection is dropped, not returned
      pool_free.notify_one();
      throw StoreUnavailable("PostgreSQL: " + why);
    }
    return Lease{this, std::move(conn)};
  }
  Result query(const std::string& sql, const Params& p = {}) {
    auto lease = reader();
    auto r = (*lease).exec(sql, p);
    if (!r.ok()) throw StoreUnavailable("PostgreSQL: " + (*lease).error());
    return r;
  }
  // Runs `fn` on a pooled connection; a database that cannot be reached is a StoreError.
  template <class Fn>
  std::optional<StoreError> on_pool(Fn fn) {
    try {
      auto lease = reader();
      return fn(*lease);
    } catch (const StoreUnavailable& e) {
      return StoreError{"unavailable", e.what()};
    }
  }
};

PgStore::PgStore() : impl_(std::make_unique<Impl>()) {}
PgStore::~PgStore() = default;

std::optional<StoreError> PgStore::open(const std::string& url, int max_connections, int connect_timeout_s) {
  impl_->conninfo = url + (url.find('?') == std::string::npos ? "?" : "&") + "connect_timeout=" + std::to_string(connect_timeout_s) +
                    "&application_name=ai-orchestrator-hub";
  impl_->max_connections = max_connections;
  impl_->wait_ms = std::max(1000, connect_timeout_s * 1000);
  impl_->writer = std::make_unique<Connection>(impl_->conninfo, kWriterStatements, kWriterSession);
  if (auto why = impl_->writer->ensure(); !why.empty()) return StoreError{"unavailable", "PostgreSQL is not reachable: " + why};
  auto& w = *impl_->writer;
  // Nodes of a cluster start together on one database: one migrates, the others wait for it
  // (a session-level advisory lock, released below or when this connection closes).
  constexpr const char* kMigrationLock = "SELECT pg_advisory_lock(4711001)";
  if (!w.exec(kMigrationLock).ok()) return StoreError{"unavailable", "PostgreSQL: " + w.error()};
  struct Unlock {
    Connection& c;
    ~Unlock() { c.exec("SELECT pg_advisory_unlock(4711001)"); }
  } unlock{w};
  w.exec("CREATE TABLE IF NOT EXISTS schema_migrations (version INT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())");
  auto current = w.exec("SELECT COALESCE(MAX(version), 0) FROM schema_migrations");
  if (!current.ok()) return StoreError{"unavailable", "PostgreSQL: " + w.error()};
  int version = int(current.integer(0, 0));
  const int latest = int(sizeof(kMigrations) / sizeof(kMigrations[0]));
  if (version > latest)
    return StoreError{"corrupt", "schema version " + std::to_string(version) + " is newer than this binary knows"};
  for (int v = version + 1; v <= latest; ++v) {
    auto r = w.script(std::string("BEGIN; ") + kMigrations[v - 1] + "; INSERT INTO schema_migrations(version) VALUES (" +
                    std::to_string(v) + "); COMMIT;");
    if (!r.ok()) {
      auto why = w.error();
      w.script("ROLLBACK");
      return StoreError{"corrupt", "migration " + std::to_string(v) + " failed: " + why};
    }
  }
  return std::nullopt;
}

std::optional<StoreError> PgStore::write(const WriteBatch& batch) {
  if (batch.empty()) return std::nullopt;
  auto started = std::chrono::steady_clock::now();
  auto& w = *impl_->writer;
  auto fail = [&](const std::string& what) -> std::optional<StoreError> {
    w.exec("ROLLBACK");
    std::lock_guard<std::mutex> lock(impl_->stats_mutex);
    ++impl_->stats.write_errors;
    impl_->stats.last_write_failed = true;
    impl_->stats.last_error = what;
    return StoreError{"unavailable", what};
  };
  if (auto why = w.ensure(); !why.empty()) return fail("PostgreSQL is not reachable: " + why);
  if (!w.exec("BEGIN").ok()) return fail("PostgreSQL: " + w.error());
  auto lease_until = now_ms() + lease_ms_;
  // Last record per task wins (one statement may not touch a row twice).
  auto last_of = [](const std::vector<TaskRecord>& records) {
    std::unordered_map<std::string_view, size_t> last;
    for (size_t i = 0; i < records.size(); ++i) last[records[i].id] = i;
    return last;
  };
  // Each task's new events, appended by the first statement below that writes its row.
  EventTrails trails(batch.events);
  if (!batch.tasks.empty()) {
    auto last = last_of(batch.tasks);
    std::string rows = "[";
    for (size_t i = 0; i < batch.tasks.size(); ++i)
      if (last[batch.tasks[i].id] == i) add_row(rows, task_row(batch.tasks[i], lease_until, trails.take(batch.tasks[i].id)));
    rows += ']';
    if (!w.run("insert_tasks", Params().add(rows)).ok()) return fail("tasks: " + w.error());
  }
  if (!batch.task_updates.empty()) {
    auto last = last_of(batch.task_updates);
    std::string rows = "[";
    for (size_t i = 0; i < batch.task_updates.size(); ++i)
      if (last[batch.task_updates[i].id] == i)
        add_row(rows, task_state_row(batch.task_updates[i], lease_until, trails.take(batch.task_updates[i].id)));
    rows += ']';
    if (!w.run("update_tasks", Params().add(rows)).ok()) return fail("task updates: " + w.error());
  }
  int64_t written = int64_t(batch.tasks.size() + batch.task_updates.size() + trails.left().size() + batch.agents.size() + batch.audit.size());
  if (!trails.left().empty()) {
    json rows = json::array();
    for (auto& [id, trail] : trails.left()) rows.push_back({{"id", id}, {"events", std::move(trail)}});
    if (!w.run("append_events", Params().add(dump(rows)).add(node_)).ok()) return fail("task events: " + w.error());
  }
  for (const auto& a : batch.agents) {
    Params p;
    p.add(a.id).add(a.name).add(a.type).add(a.specialization).add(a.state).add(capabilities_json(a.capabilities));
    p.add(std::to_string(a.max_concurrent_tasks)).add(a.executor_json).add(a.node).add(std::to_string(a.energy));
    p.add(std::to_string(a.tasks_completed)).add(std::to_string(a.tasks_failed)).add(std::to_string(a.avg_duration_ms));
    p.add(rfc3339(a.created_at)).add(rfc3339(a.updated_at)).add(a.deleted ? "true" : "false");
    auto r = w.exec(
        "INSERT INTO agents(id, name, type, specialization, state, capabilities, max_concurrent_tasks, executor, node, "
        "energy, tasks_completed, tasks_failed, avg_duration_ms, created_at, updated_at, deleted) VALUES ($1, $2, $3, $4, "
        "$5, $6::jsonb, $7, $8::jsonb, $9, $10, $11, $12, $13, $14, $15, $16) ON CONFLICT (id) DO UPDATE SET name = "
        "EXCLUDED.name, state = EXCLUDED.state, capabilities = EXCLUDED.capabilities, max_concurrent_tasks = "
        "EXCLUDED.max_concurrent_tasks, executor = EXCLUDED.executor, node = EXCLUDED.node, energy = EXCLUDED.energy, "
        "tasks_completed = EXCLUDED.tasks_completed, tasks_failed = EXCLUDED.tasks_failed, avg_duration_ms = "
        "EXCLUDED.avg_duration_ms, updated_at = EXCLUDED.updated_at, deleted = EXCLUDED.deleted",
        p);
    if (!r.ok()) return fail("agent " + a.id + ": " + w.error());
  }
  for (const auto& a : batch.audit) {
    Params p;
    p.add(rfc3339(a.at)).add(a.actor).add(a.role).add(a.action).add(a.resource).add(std::to_string(a.status));
    p.add(a.request_id).add(a.client);
    auto r = w.exec("INSERT INTO audit_log(at, actor, role, action, resource, status, request_id, client) VALUES ($1, $2, "
                    "$3, $4, $5, $6, $7, $8)",
                    p);
    if (!r.ok()) return fail("audit: " + w.error());
  }
  if (!w.exec("COMMIT").ok()) return fail("PostgreSQL: commit failed: " + w.error());
  double elapsed = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
  std::lock_guard<std::mutex> lock(impl_->stats_mutex);
  ++impl_->stats.writes;
  impl_->stats.rows_written += written;
  impl_->stats.last_commit_ms = elapsed;
  impl_->stats.total_commit_ms += elapsed;
  impl_->stats.last_write_failed = false;
  return std::nullopt;
}

std::optional<TaskRecord> PgStore::task(const std::string& id) {
  if (!is_uuid(id)) return std::nullopt;
  auto r = impl_->query("SELECT " + kTaskColumns + " FROM tasks WHERE id = $1", Params().add(id));
  if (r.rows() == 0) return std::nullopt;
  return read_task(r, 0);
}

std::vector<TaskEvent> PgStore::task_events(const std::string& id) {
  std::vector<TaskEvent> out;
  if (!is_uuid(id)) return out;
  auto r = impl_->query("SELECT from_status, to_status, " + ms("at") + ", attempt, reason FROM task_events WHERE task_id = $1 ORDER BY id",
                        Params().add(id));
  for (int i = 0; i < r.rows(); ++i)
    out.push_back({id, r.text(i, 0), r.text(i, 1), r.integer(i, 2), int32_t(r.integer(i, 3)), r.text(i, 4)});
  auto trail = impl_->query("SELECT events FROM tasks WHERE id = $1", Params().add(id));
  if (trail.rows() > 0) parse_event_lines(id, trail.text(0, 0), out);
  return out;
}

TaskPage PgStore::tasks(const TaskFilter& f) {
  std::string where = " WHERE true";
  Params p;
  auto add = [&](const char* column, const std::string& v) {
    if (v.empty()) return;
    p.add(v);
    where += std::string(" AND ") + column + " = $" + std::to_string(p.values.size());
  };
  add("status", f.status);
  add("type", f.type);
  add("assigned_agent", f.agent);
  add("priority", f.priority);
  TaskPage page;
  page.total = impl_->query("SELECT COUNT(*) FROM tasks" + where, p).integer(0, 0);
  auto r = impl_->query("SELECT " + kTaskColumns + " FROM tasks" + where + " ORDER BY seq DESC LIMIT " +
                            std::to_string(f.limit) + " OFFSET " + std::to_string(f.offset),
                        p);
  for (int i = 0; i < r.rows(); ++i) page.tasks.push_back(read_task(r, i));
  return page;
}

std::optional<std::string> PgStore::task_id_by_idempotency_key(const std::string& key) {
  auto r = impl_->query("SELECT id::text FROM tasks WHERE idempotency_key = $1", Params().add(key));
  if (r.rows() == 0) return std::nullopt;
  return r.text(0, 0);
}

std::vector<TaskRecord> PgStore::unfinished_tasks() {
  auto r = impl_->query("SELECT " + kTaskColumns +
                        " FROM tasks WHERE status IN ('pending', 'assigned', 'running') ORDER BY created_at, seq");
  std::vector<TaskRecord> out;
  for (int i = 0; i < r.rows(); ++i) out.push_back(read_task(r, i));
  return out;
}

std::map<std::string, int64_t> PgStore::task_counts_by_status() {
  auto r = impl_->query("SELECT status, COUNT(*) FROM tasks GROUP BY status");
  std::map<std::string, int64_t> out;
  for (int i = 0; i < r.rows(); ++i) out[r.text(i, 0)] = r.integer(i, 1);
  return out;
}

std::vector<AgentRecord> PgStore::agents() {
  auto r = impl_->query("SELECT id, name, type, specialization, state, capabilities::text, max_concurrent_tasks, executor::text, "
                        "node, energy, tasks_completed, tasks_failed, avg_duration_ms, " +
                        ms("created_at") + ", " + ms("updated_at") + " FROM agents WHERE NOT deleted ORDER BY created_at, id");
  std::vector<AgentRecord> out;
  for (int i = 0; i < r.rows(); ++i) {
    AgentRecord a;
    a.id = r.text(i, 0);
    a.name = r.text(i, 1);
    a.type = r.text(i, 2);
    a.specialization = r.text(i, 3);
    a.state = r.text(i, 4);
    a.capabilities = parse_capabilities(r.text(i, 5));
    a.max_concurrent_tasks = int32_t(r.integer(i, 6));
    a.executor_json = r.text(i, 7);
    a.node = r.text(i, 8);
    a.energy = std::stod(r.text(i, 9));
    a.tasks_completed = r.integer(i, 10);
    a.tasks_failed = r.integer(i, 11);
    a.avg_duration_ms = std::stod(r.text(i, 12));
    a.created_at = r.integer(i, 13);
    a.updated_at = r.integer(i, 14);
    out.push_back(std::move(a));
  }
  return out;
}

std::optional<StoreError> PgStore::renew_leases(const std::string& owner, int64_t until_ms) {
  auto& w = *impl_->writer;
  if (auto why = w.ensure(); !why.empty()) return StoreError{"unavailable", "PostgreSQL is not reachable: " + why};
  if (!w.run("renew_leases", Params().add(owner).add(rfc3339(until_ms))).ok())
    return StoreError{"unavailable", "renewing leases: " + w.error()};
  return std::nullopt;
}

std::optional<StoreError> PgStore::expire_leases(const std::string& owner, int64_t now_ms) {
  auto& w = *impl_->writer;
  if (auto why = w.ensure(); !why.empty()) return StoreError{"unavailable", "PostgreSQL is not reachable: " + why};
  if (!w.run("expire_leases", Params().add(owner).add(rfc3339(now_ms - 1))).ok())
    return StoreError{"unavailable", "expiring leases: " + w.error()};
  return std::nullopt;
}

std::vector<TaskRecord> PgStore::claim_tasks(const std::string& owner, int64_t now_ms, int64_t until_ms, int limit,
                                             bool include_own) {
  auto& w = *impl_->writer;
  if (auto why = w.ensure(); !why.empty()) throw StoreUnavailable("PostgreSQL: " + why);
  // SKIP LOCKED: rows another node is claiming right now are left to it, not waited for.
  auto r = w.exec("UPDATE tasks SET lease_owner = $1, node = $1, lease_expires_at = $3 FROM (SELECT id AS claim_id FROM "
                  "tasks WHERE status IN ('pending', 'assigned', 'running') AND (lease_owner IS NULL OR lease_owner = '' OR lease_expires_at "
                  "IS NULL OR lease_expires_at < $2 OR ($5 AND lease_owner = $1)) ORDER BY created_at LIMIT $4 FOR UPDATE "
                  "SKIP LOCKED) c WHERE tasks.id = c.claim_id RETURNING " +
                      kTaskColumns,
                  Params().add(owner).add(rfc3339(now_ms)).add(rfc3339(until_ms)).add(std::to_string(limit)).add(
                      include_own ? "true" : "false"));
  if (!r.ok()) throw StoreUnavailable("PostgreSQL: claiming tasks: " + w.error());
  std::vector<TaskRecord> out;
  for (int i = 0; i < r.rows(); ++i) out.push_back(read_task(r, i));
  std::sort(out.begin(), out.end(), [](const TaskRecord& a, const TaskRecord& b) { return a.created_at < b.created_at; });
  return out;
}

StoreStats PgStore::stats() {
  StoreStats s;
  {
    std::lock_guard<std::mutex> lock(impl_->stats_mutex);
    s = impl_->stats;
  }
  std::lock_guard<std::mutex> lock(impl_->pool_mutex);
  s.reads = impl_->stats.reads;
  s.pool_idle = int64_t(impl_->idle.size());
  s.pool_active = int64_t(impl_->open_pooled) - s.pool_idle + 1;  // + the writer
  return s;
}

std::optional<StoreError> PgStore::ping() {
  auto& w = *impl_->writer;
  std::string why = w.ensure();
  if (why.empty() && !w.exec("SELECT 1").ok()) why = w.error();
  if (!why.empty()) return StoreError{"unavailable", "PostgreSQL is not reachable: " + why};
  std::lock_guard<std::mutex> lock(impl_->stats_mutex);
  impl_->stats.last_write_failed = false;
  impl_->stats.last_error.clear();
  return std::nullopt;
}


std::optional<StoreError> PgStore::put_user(const UserRecord& u) {
  return impl_->on_pool([&](Connection& c) -> std::optional<StoreError> {
    auto r = c.exec("INSERT INTO users(username, password_hash, role, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT "
                    "(username) DO UPDATE SET password_hash = EXCLUDED.password_hash, role = EXCLUDED.role",
                    Params().add(u.username).add(u.password_hash).add(u.role).add(rfc3339(u.created_at)));
    if (!r.ok()) return StoreError{"io", c.error()};
    return std::nullopt;
  });
}

std::optional<StoreError> PgStore::put_model(const ModelRecord& m) {
  return impl_->on_pool([&](Connection& c) -> std::optional<StoreError> {
  auto r = c.exec(
      "INSERT INTO models(name, kind, spec, metadata, metrics, data, size_bytes, created_at, updated_at) VALUES ($1, $2, "
      "$3::jsonb, $4::jsonb, $5::jsonb, $6, $7, $8, $9) ON CONFLICT (name) DO UPDATE SET kind = EXCLUDED.kind, spec = "
      "EXCLUDED.spec, metadata = EXCLUDED.metadata, metrics = EXCLUDED.metrics, data = EXCLUDED.data, size_bytes = "
      "EXCLUDED.size_bytes, updated_at = EXCLUDED.updated_at",
      Params().add(m.name).add(m.kind).add(m.spec_json).add(m.metadata_json).add(m.metrics_json).add(base64_encode(m.data))
          .add(std::to_string(m.data.size())).add(rfc3339(m.created_at)).add(rfc3339(m.updated_at)));
  if (!r.ok()) return StoreError{"io", c.error()};
  return std::nullopt;
  });
}

namespace {
const std::string kModelColumns = "name, kind, spec::text, metadata::text, metrics::text, size_bytes, " + ms("created_at") +
                                  ", " + ms("updated_at");
}

std::optional<ModelRecord> PgStore::model(const std::string& name) {
  auto r = impl_->query("SELECT " + kModelColumns + ", data FROM models WHERE name = $1", Params().add(name));
  if (r.rows() == 0) return std::nullopt;
  ModelRecord m{r.text(0, 0), r.text(0, 1), r.text(0, 2), r.text(0, 3), r.text(0, 4), {}, r.integer(0, 5), r.integer(0, 6),
                r.integer(0, 7)};
  base64_decode(r.text(0, 8), m.data);
  return m;
}

std::vector<ModelRecord> PgStore::models() {
  auto r = impl_->query("SELECT " + kModelColumns + " FROM models ORDER BY name");
  std::vector<ModelRecord> out;
  for (int i = 0; i < r.rows(); ++i)
    out.push_back({r.text(i, 0), r.text(i, 1), r.text(i, 2), r.text(i, 3), r.text(i, 4), {}, r.integer(i, 5), r.integer(i, 6),
                   r.integer(i, 7)});
  return out;
}

std::optional<UserRecord> PgStore::user(const std::string& username) {
  auto r = impl_->query("SELECT username, password_hash, role, " + ms("created_at") + " FROM users WHERE username = $1",
                        Params().add(username));
  if (r.rows() == 0) return std::nullopt;
  return UserRecord{r.text(0, 0), r.text(0, 1), r.text(0, 2), r.integer(0, 3)};
}

std::optional<StoreError> PgStore::put_refresh_token(const std::string& hash, const std::string& username,
                                                  const std::string& session, int64_t expires_at) {
  return impl_->on_pool([&](Connection& c) -> std::optional<StoreError> {
    auto r = c.exec("INSERT INTO refresh_tokens(token_hash, username, session, expires_at) VALUES ($1, $2, $3, $4)",
                    Params().add(hash).add(username).add(session).add(std::to_string(expires_at)));
    if (!r.ok()) return StoreError{"io", c.error()};
    return std::nullopt;
  });
}

RefreshUse PgStore::consume_refresh_token(const std::string& hash, int64_t now) {
  auto lease = impl_->reader();
  auto& c = *lease;
  // One statement marks the token used and tells whether it already was.
  auto r = c.exec("UPDATE refresh_tokens t SET used = true FROM (SELECT token_hash, used AS was_used FROM refresh_tokens "
                  "WHERE token_hash = $1 AND NOT revoked FOR UPDATE) old WHERE t.token_hash = old.token_hash RETURNING t.username, "
                  "old.was_used, t.expires_at, t.session",
                  Params().add(hash));
  if (!r.ok()) throw StoreUnavailable("PostgreSQL: " + c.error());
  RefreshUse use;
  if (r.rows() == 0) return use;
  use.username = r.text(0, 0);
  use.session = r.text(0, 3);
  if (r.text(0, 1) == "t") {
    use.outcome = RefreshUse::Outcome::replayed;
    c.exec("UPDATE refresh_tokens SET used = true WHERE username = $1", Params().add(use.username));
    return use;
  }
  use.outcome = r.integer(0, 2) < now ? RefreshUse::Outcome::expired : RefreshUse::Outcome::valid;
  return use;
}

std::optional<StoreError> PgStore::put_revocation(const Revocation& rv) {
  return impl_->on_pool([&](Connection& c) -> std::optional<StoreError> {
  auto r = c.exec("INSERT INTO revocations(kind, subject, at, expires_at) VALUES ($1, $2, $3, $4) ON CONFLICT (kind, subject) "
                  "DO UPDATE SET at = excluded.at, expires_at = excluded.expires_at",
                  Params().add(rv.kind).add(rv.subject).add(std::to_string(rv.at_ms)).add(std::to_string(rv.expires_at_ms)));
  if (!r.ok()) return StoreError{"io", c.error()};
  if (rv.kind == "session") c.exec("UPDATE refresh_tokens SET revoked = true WHERE session = $1", Params().add(rv.subject));
  c.exec("DELETE FROM revocations WHERE expires_at < $1", Params().add(std::to_string(rv.at_ms)));
  return std::nullopt;
  });
}

std::vector<Revocation> PgStore::revocations_since(int64_t at_ms) {
  auto r = impl_->query("SELECT kind, subject, at, expires_at FROM revocations WHERE at >= $1 ORDER BY at",
                        Params().add(std::to_string(at_ms)));
  std::vector<Revocation> out;
  for (int i = 0; i < r.rows(); ++i) out.push_back({r.text(i, 0), r.text(i, 1), r.integer(i, 2), r.integer(i, 3)});
  return out;
}

void PgStore::revoke_refresh_token(const std::string& hash) {
  impl_->on_pool([&](Connection& c) -> std::optional<StoreError> {
    c.exec("UPDATE refresh_tokens SET revoked = true WHERE token_hash = $1", Params().add(hash));
    return std::nullopt;
  });
}

std::vector<AuditEntry> PgStore::audit_log(int limit, int offset, int64_t& total) {
  total = impl_->query("SELECT COUNT(*) FROM audit_log").integer(0, 0);
  auto r = impl_->query("SELECT " + ms("at") + ", actor, role, action, resource, status, request_id, client FROM audit_log ORDER BY id DESC LIMIT " +
                        std::to_string(limit) + " OFFSET " + std::to_string(offset));
  std::vector<AuditEntry> out;
  for (int i = 0; i < r.rows(); ++i)
    out.push_back({r.integer(i, 0), r.text(i, 1), r.text(i, 2), r.text(i, 3), r.text(i, 4), int32_t(r.integer(i, 5)),
                   r.text(i, 6), r.text(i, 7)});
  return out;
}

}  // namespace hub::runtime
