#include "runtime/store/sqlite_store.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/clock.hpp"
#include "runtime/store/json_columns.hpp"

#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <stdexcept>
#include <string_view>
#include <unordered_map>

namespace hub::runtime {
namespace {


// Schema versions, applied in order inside one transaction each. Never edit a shipped
// migration: add the next one.
const char* const kMigrations[] = {
    // 1: agents, tasks, task events.
    R"sql(
CREATE TABLE agents (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  type TEXT NOT NULL,
  specialization TEXT NOT NULL DEFAULT '',
  state TEXT NOT NULL,
  capabilities TEXT NOT NULL,
  max_concurrent_tasks INTEGER NOT NULL,
  executor TEXT NOT NULL,
  node TEXT NOT NULL DEFAULT '',
  energy REAL NOT NULL DEFAULT 100,
  tasks_completed INTEGER NOT NULL DEFAULT 0,
  tasks_failed INTEGER NOT NULL DEFAULT 0,
  avg_duration_ms REAL NOT NULL DEFAULT 0,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  deleted INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE tasks (
  id TEXT PRIMARY KEY,
  title TEXT NOT NULL DEFAULT '',
  description TEXT NOT NULL,
  type TEXT NOT NULL DEFAULT '',
  priority TEXT NOT NULL,
  required_capabilities TEXT NOT NULL DEFAULT '[]',
  payload TEXT NOT NULL DEFAULT 'null',
  status TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  max_attempts INTEGER NOT NULL,
  timeout_ms INTEGER NOT NULL,
  idempotency_key TEXT UNIQUE,
  assigned_agent TEXT,
  node TEXT NOT NULL DEFAULT '',
  result TEXT,
  error_type TEXT,
  error_message TEXT,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  started_at TEXT,
  completed_at TEXT
);
CREATE INDEX idx_tasks_status_created ON tasks(status, created_at);
CREATE TABLE task_events (
  id INTEGER PRIMARY KEY,
  task_id TEXT NOT NULL,
  from_status TEXT NOT NULL DEFAULT '',
  to_status TEXT NOT NULL,
  at TEXT NOT NULL,
  attempt INTEGER NOT NULL DEFAULT 0,
  reason TEXT NOT NULL DEFAULT ''
);
CREATE INDEX idx_task_events_task ON task_events(task_id, id);
)sql",
    // 2: users, refresh tokens (single use), the audit log.
    R"sql(
CREATE TABLE users (
  username TEXT PRIMARY KEY,
  password_hash TEXT NOT NULL,
  role TEXT NOT NULL,
  created_at TEXT NOT NULL
);
CREATE TABLE refresh_tokens (
  token_hash TEXT PRIMARY KEY,
  username TEXT NOT NULL,
  expires_at INTEGER NOT NULL,
  used INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX idx_refresh_tokens_user ON refresh_tokens(username);
CREATE TABLE audit_log (
  id INTEGER PRIMARY KEY,
  at TEXT NOT NULL,
  actor TEXT NOT NULL,
  role TEXT NOT NULL,
  action TEXT NOT NULL,
  resource TEXT NOT NULL,
  status INTEGER NOT NULL,
  request_id TEXT NOT NULL,
  client TEXT NOT NULL
);
)sql",
    // 3: task leases (clusters).
    R"sql(
ALTER TABLE tasks ADD COLUMN lease_owner TEXT;
ALTER TABLE tasks ADD COLUMN lease_expires_at TEXT;
CREATE INDEX idx_tasks_lease ON tasks(lease_expires_at) WHERE status IN ('pending', 'assigned', 'running');
)sql",
    // 4: trained models (neural jobs); the bytes as base64 text.
    R"sql(
CREATE TABLE models (
  name TEXT PRIMARY KEY, kind TEXT NOT NULL, spec TEXT NOT NULL, metadata TEXT NOT NULL, metrics TEXT NOT NULL,
  data TEXT NOT NULL, size_bytes INTEGER NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL
);
)sql",
    // 5: capabilities inferred at submission (JSON).
    R"sql(
ALTER TABLE tasks ADD COLUMN inferred TEXT;
)sql",
    // 6: the lease index keyed on "has a lease" (terminal tasks have none): its old predicate,
    // status IN (...), made SQLite build a temporary table for every task row it wrote.
    R"sql(
DROP INDEX idx_tasks_lease;
CREATE INDEX idx_tasks_lease ON tasks(lease_expires_at) WHERE lease_expires_at IS NOT NULL;
)sql",
    // 7: sessions (a login and its refreshes) and revoked access tokens, shared by the nodes.
    R"sql(
ALTER TABLE refresh_tokens ADD COLUMN session TEXT NOT NULL DEFAULT '';
ALTER TABLE refresh_tokens ADD COLUMN revoked INTEGER NOT NULL DEFAULT 0;
CREATE INDEX idx_refresh_tokens_session ON refresh_tokens(session);
CREATE TABLE revocations (
  kind TEXT NOT NULL,
  subject TEXT NOT NULL,
  at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  PRIMARY KEY (kind, subject)
);
CREATE INDEX idx_revocations_at ON revocations(at);
)sql",
    // 8: a task's events trail in its own row (one JSON object per line), so a transition is
    // written with the task's state instead of as a row of its own. Older events stay in
    // task_events and are read before the trail.
    R"sql(
ALTER TABLE tasks ADD COLUMN events TEXT NOT NULL DEFAULT '';
)sql",
};

class Db {
 public:
  explicit Db(sqlite3* db) : db_(db) {}
  ~Db() { sqlite3_close_v2(db_); }
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;
  sqlite3* get() const { return db_; }

 private:
  sqlite3* db_;
};

class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) {
    if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt_, nullptr) != SQLITE_OK)
      throw std::runtime_error(std::string("prepare failed: ") + sqlite3_errmsg(db));
  }
  ~Stmt() { sqlite3_finalize(stmt_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  sqlite3_stmt* get() const { return stmt_; }
  void reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  void text(int i, const std::string& s) { sqlite3_bind_text(stmt_, i, s.data(), int(s.size()), SQLITE_TRANSIENT); }
  void text_or_null(int i, const std::string& s) {
    if (s.empty()) sqlite3_bind_null(stmt_, i);
    else text(i, s);
  }
  void time_or_null(int i, int64_t ms) {
    if (ms <= 0) sqlite3_bind_null(stmt_, i);
    else text(i, rfc3339(ms));
  }
  void integer(int i, int64_t v) { sqlite3_bind_int64(stmt_, i, v); }
  void real(int i, double v) { sqlite3_bind_double(stmt_, i, v); }

 private:
  sqlite3_stmt* stmt_ = nullptr;
};

std::string column_text(sqlite3_stmt* s, int i) {
  auto p = sqlite3_column_text(s, i);
  return p ? std::string(reinterpret_cast<const char*>(p), size_t(sqlite3_column_bytes(s, i))) : std::string();
}
int64_t column_time(sqlite3_stmt* s, int i) {
  auto t = column_text(s, i);
  return t.empty() ? 0 : parse_rfc3339(t);
}

constexpr const char* kTaskColumns =
    "id, title, description, type, priority, required_capabilities, payload, status, attempts, max_attempts, "
    "timeout_ms, idempotency_key, assigned_agent, node, result, error_type, error_message, created_at, updated_at, "
    "started_at, completed_at, COALESCE(inferred, '')";

TaskRecord read_task(sqlite3_stmt* s) {
  TaskRecord t;
  t.id = column_text(s, 0);
  t.title = column_text(s, 1);
  t.description = column_text(s, 2);
  t.type = column_text(s, 3);
  t.priority = column_text(s, 4);
  t.required_capabilities = parse_required(column_text(s, 5));
  t.payload_json = column_text(s, 6);
  t.status = column_text(s, 7);
  t.attempts = sqlite3_column_int(s, 8);
  t.max_attempts = sqlite3_column_int(s, 9);
  t.timeout_ms = sqlite3_column_int64(s, 10);
  t.idempotency_key = column_text(s, 11);
  t.assigned_agent = column_text(s, 12);
  t.node = column_text(s, 13);
  t.result_json = column_text(s, 14);
  t.error_type = column_text(s, 15);
  t.error_message = column_text(s, 16);
  t.created_at = column_time(s, 17);
  t.updated_at = column_time(s, 18);
  t.started_at = column_time(s, 19);
  t.completed_at = column_time(s, 20);
  t.inferred_json = column_text(s, 21);
  return t;
}

// The database holds password and token hashes: readable by the node's user only. A new
// file is created 0600 (SQLite gives its -wal and -shm the database file's mode); an existing
// one that others could read is tightened.
void make_private(const std::string& path, bool create) {
  if (path.empty() || path == ":memory:") return;
  if (create) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0) ::close(fd);
  }
  for (const auto& file : {path, path + "-wal", path + "-shm"}) {
    struct stat st {};
    if (::stat(file.c_str(), &st) == 0 && (st.st_mode & 077) != 0) ::chmod(file.c_str(), st.st_mode & 0700);
  }
}

std::unique_ptr<Db> open_db(const std::string& path, int flags, int busy_timeout_ms, std::string& error) {
  if (flags & SQLITE_OPEN_CREATE) make_private(path, true);
  sqlite3* raw = nullptr;
  // Every connection is used by one thread at a time, so SQLite's own memory accounting (a
  // global mutex on every allocation) buys nothing; it can only be turned off before SQLite
  // initializes, which the first open does.
  static const bool configured = [] { return sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0) == SQLITE_OK; }();
  (void)configured;
  int rc = sqlite3_open_v2(path.c_str(), &raw, flags | SQLITE_OPEN_NOMUTEX, nullptr);
  auto db = std::make_unique<Db>(raw);
  if (rc != SQLITE_OK) {
    error = "cannot open " + path + ": " + (raw ? sqlite3_errmsg(raw) : sqlite3_errstr(rc));
    return nullptr;
  }
  sqlite3_busy_timeout(raw, busy_timeout_ms);
  return db;
}

bool exec(sqlite3* db, const std::string& sql, std::string& error) {
  char* msg = nullptr;
  if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &msg) != SQLITE_OK) {
    error = msg ? msg : "unknown SQLite error";
    sqlite3_free(msg);
    return false;
  }
  return true;
}

}  // namespace

struct SqliteStore::Impl {
  std::string path;
  int busy_timeout_ms = 30000;
  std::unique_ptr<Db> writer;
  std::unique_ptr<Stmt> upsert_task, update_task, append_events, upsert_agent, insert_audit;
  // Users and sessions write through a connection of their own, serialized here.
  std::mutex auth_mutex;
  std::unique_ptr<Db> auth_db;
  std::mutex readers_mutex;
  std::vector<std::unique_ptr<Db>> idle_readers;
  std::mutex stats_mutex;
  StoreStats stats = [] {
    StoreStats s;
    s.backend = "sqlite";
    return s;
  }();
  int64_t readers_active = 0;

  // A reader connection, returned to the pool when the lease ends.
  struct Lease {
    Impl* impl;
    std::unique_ptr<Db> db;
    ~Lease() {
      {
        std::lock_guard<std::mutex> lock(impl->stats_mutex);
        --impl->readers_active;
      }
      if (!db) return;
      std::lock_guard<std::mutex> lock(impl->readers_mutex);
      impl->idle_readers.push_back(std::move(db));
    }
    sqlite3* get() const { return db->get(); }
  };

  Lease reader() {
    {
      std::lock_guard<std::mutex> lock(stats_mutex);
      ++stats.reads;
      ++readers_active;
    }
    {
      std::lock_guard<std::mutex> lock(readers_mutex);
      if (!idle_readers.empty()) {
        auto db = std::move(idle_readers.back());
        idle_readers.pop_back();
        return Lease{this, std::move(db)};
      }
    }
    std::string error;
    auto db = open_db(path, SQLITE_OPEN_READONLY, busy_timeout_ms, error);
    if (!db) throw std::runtime_error(error);
    return Lease{this, std::move(db)};
  }
};

SqliteStore::SqliteStore() : impl_(std::make_unique<Impl>()) {}
SqliteStore::~SqliteStore() = default;

std::optional<StoreError> SqliteStore::open(const std::string& path, int busy_timeout_ms, bool synchronous_full) {
  impl_->path = path;
  impl_->busy_timeout_ms = busy_timeout_ms;
  std::string error;
  impl_->writer = open_db(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, busy_timeout_ms, error);
  if (!impl_->writer) return StoreError{"unavailable", error};
  auto* db = impl_->writer->get();
  std::string pragmas = "PRAGMA journal_mode=WAL; PRAGMA cache_size=-65536; PRAGMA temp_store=MEMORY; PRAGMA synchronous=";
  pragmas += synchronous_full ? "FULL;" : "NORMAL;";
  if (!exec(db, pragmas, error)) return StoreError{"unavailable", path + ": " + error};
  if (!exec(db, "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)",
            error))
    return StoreError{"unavailable", path + ": " + error};
  int current = 0;
  {
    Stmt s(db, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations");
    if (sqlite3_step(s.get()) == SQLITE_ROW) current = sqlite3_column_int(s.get(), 0);
  }
  const int latest = int(sizeof(kMigrations) / sizeof(kMigrations[0]));
  if (current > latest)
    return StoreError{"corrupt", path + ": schema version " + std::to_string(current) +
                                     " is newer than this binary knows (" + std::to_string(latest) + ")"};
  for (int v = current + 1; v <= latest; ++v) {
    std::string sql = std::string("BEGIN IMMEDIATE;") + kMigrations[v - 1] +
                      "INSERT INTO schema_migrations(version, applied_at) VALUES (" + std::to_string(v) + ", '" +
                      now_rfc3339() + "'); COMMIT;";
    if (!exec(db, sql, error)) {
      std::string ignored;
      exec(db, "ROLLBACK", ignored);
      return StoreError{"corrupt", path + ": migration " + std::to_string(v) + " failed: " + error};
    }
  }
  try {
    impl_->upsert_task = std::make_unique<Stmt>(
        db,
        "INSERT INTO tasks(id, title, description, type, priority, required_capabilities, payload, status, attempts, "
        "max_attempts, timeout_ms, idempotency_key, assigned_agent, node, result, error_type, error_message, "
        "created_at, updated_at, started_at, completed_at, lease_owner, lease_expires_at, inferred, events) VALUES (?1, ?2, ?3, "
        "?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, NULLIF(?14, ''), ?22, NULLIF(?23, ''), "
        "?24) ON CONFLICT(id) DO UPDATE SET events = tasks.events || excluded.events, status = excluded.status, attempts = excluded.attempts, assigned_agent = excluded.assigned_agent, "
        "node = excluded.node, result = excluded.result, error_type = excluded.error_type, error_message = "
        "excluded.error_message, updated_at = excluded.updated_at, started_at = excluded.started_at, completed_at = "
        "excluded.completed_at, lease_owner = excluded.lease_owner, lease_expires_at = excluded.lease_expires_at "
        "WHERE tasks.lease_owner IS NULL OR tasks.lease_owner = excluded.lease_owner");
    impl_->update_task = std::make_unique<Stmt>(
        db,
        "UPDATE tasks SET status = ?2, attempts = ?3, assigned_agent = ?4, node = ?5, result = ?6, error_type = ?7, "
        "error_message = ?8, updated_at = ?9, started_at = ?10, completed_at = ?11, lease_owner = NULLIF(?5, ''), "
        "lease_expires_at = ?12, events = events || ?13 WHERE id = ?1 AND (lease_owner IS NULL OR lease_owner = ?5)");
    impl_->insert_audit = std::make_unique<Stmt>(
        db, "INSERT INTO audit_log(at, actor, role, action, resource, status, request_id, client) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)");
    // Events of a task whose state this batch does not write (fenced like a state update).
    impl_->append_events = std::make_unique<Stmt>(
        db, "UPDATE tasks SET events = events || ?2 WHERE id = ?1 AND (?3 = '' OR lease_owner IS NULL OR lease_owner = ?3)");
    impl_->upsert_agent = std::make_unique<Stmt>(
        db,
        "INSERT INTO agents(id, name, type, specialization, state, capabilities, max_concurrent_tasks, executor, node, "
        "energy, tasks_completed, tasks_failed, avg_duration_ms, created_at, updated_at, deleted) VALUES (?1, ?2, ?3, "
        "?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16) ON CONFLICT(id) DO UPDATE SET name = excluded.name, "
        "state = excluded.state, capabilities = excluded.capabilities, max_concurrent_tasks = "
        "excluded.max_concurrent_tasks, executor = excluded.executor, node = excluded.node, energy = excluded.energy, "
        "tasks_completed = excluded.tasks_completed, tasks_failed = excluded.tasks_failed, avg_duration_ms = "
        "excluded.avg_duration_ms, updated_at = excluded.updated_at, deleted = excluded.deleted");
  } catch (const std::exception& e) {
    return StoreError{"corrupt", path + ": " + e.what()};
  }
  return std::nullopt;
}

std::optional<StoreError> SqliteStore::write(const WriteBatch& batch) {
  if (batch.empty()) return std::nullopt;
  auto started = std::chrono::steady_clock::now();
  auto* db = impl_->writer->get();
  std::string error;
  auto fail = [&](const std::string& what) -> std::optional<StoreError> {
    std::string ignored;
    exec(db, "ROLLBACK", ignored);
    std::lock_guard<std::mutex> lock(impl_->stats_mutex);
    ++impl_->stats.write_errors;
    impl_->stats.last_write_failed = true;
    impl_->stats.last_error = what;
    return StoreError{"io", what};
  };
  if (!exec(db, "BEGIN IMMEDIATE", error)) return fail(error);
  auto lease_until = now_ms() + lease_ms_;
  auto step = [&](Stmt& s) {
    int rc = sqlite3_step(s.get());
    s.reset();
    return rc == SQLITE_DONE;
  };
  // Each task's new events, to be appended by the first write of its row below.
  EventTrails trails(batch.events);
  for (const auto& t : batch.tasks) {
    auto& s = *impl_->upsert_task;
    s.text(1, t.id);
    s.text(2, t.title);
    s.text(3, t.description);
    s.text(4, t.type);
    s.text(5, t.priority);
    s.text(6, required_json(t.required_capabilities));
    s.text(7, t.payload_json);
    s.text(8, t.status);
    s.integer(9, t.attempts);
    s.integer(10, t.max_attempts);
    s.integer(11, t.timeout_ms);
    s.text_or_null(12, t.idempotency_key);
    s.text_or_null(13, t.assigned_agent);
    s.text(14, t.node);
    s.text_or_null(15, t.result_json);
    s.text_or_null(16, t.error_type);
    s.text_or_null(17, t.error_message);
    s.text(18, rfc3339(t.created_at));
    s.text(19, rfc3339(t.updated_at));
    s.time_or_null(20, t.started_at);
    s.time_or_null(21, t.completed_at);
    s.time_or_null(22, is_terminal(t.status) ? 0 : lease_until);
    s.text(23, t.inferred_json);
    s.text(24, trails.take(t.id));
    if (!step(s)) return fail(std::string("task ") + t.id + ": " + sqlite3_errmsg(db));
  }
  // Several transitions of one task in one commit: only its last state needs writing.
  std::unordered_map<std::string_view, size_t> last_update;
  for (size_t i = 0; i < batch.task_updates.size(); ++i) last_update[batch.task_updates[i].id] = i;
  for (size_t i = 0; i < batch.task_updates.size(); ++i) {
    const auto& t = batch.task_updates[i];
    if (last_update[t.id] != i) continue;
    auto& s = *impl_->update_task;
    s.text(1, t.id);
    s.text(2, t.status);
    s.integer(3, t.attempts);
    s.text_or_null(4, t.assigned_agent);
    s.text(5, t.node);
    s.text_or_null(6, t.result_json);
    s.text_or_null(7, t.error_type);
    s.text_or_null(8, t.error_message);
    s.text(9, rfc3339(t.updated_at));
    s.time_or_null(10, t.started_at);
    s.time_or_null(11, t.completed_at);
    s.time_or_null(12, is_terminal(t.status) ? 0 : lease_until);
    s.text(13, trails.take(t.id));
    if (!step(s)) return fail(std::string("task ") + t.id + ": " + sqlite3_errmsg(db));
  }
  int64_t rows = int64_t(batch.tasks.size() + last_update.size() + trails.left().size() + batch.agents.size() + batch.audit.size());
  for (auto& [id, trail] : trails.left()) {
    auto& s = *impl_->append_events;
    s.text(1, std::string(id));
    s.text(2, trail);
    s.text(3, node_);
    if (!step(s)) return fail("events of " + std::string(id) + ": " + sqlite3_errmsg(db));
  }
  for (const auto& a : batch.agents) {
    auto& s = *impl_->upsert_agent;
    s.text(1, a.id);
    s.text(2, a.name);
    s.text(3, a.type);
    s.text(4, a.specialization);
    s.text(5, a.state);
    s.text(6, capabilities_json(a.capabilities));
    s.integer(7, a.max_concurrent_tasks);
    s.text(8, a.executor_json);
    s.text(9, a.node);
    s.real(10, a.energy);
    s.integer(11, a.tasks_completed);
    s.integer(12, a.tasks_failed);
    s.real(13, a.avg_duration_ms);
    s.text(14, rfc3339(a.created_at));
    s.text(15, rfc3339(a.updated_at));
    s.integer(16, a.deleted ? 1 : 0);
    if (!step(s)) return fail(std::string("agent ") + a.id + ": " + sqlite3_errmsg(db));
  }
  for (const auto& a : batch.audit) {
    auto& s = *impl_->insert_audit;
    s.text(1, rfc3339(a.at));
    s.text(2, a.actor);
    s.text(3, a.role);
    s.text(4, a.action);
    s.text(5, a.resource);
    s.integer(6, a.status);
    s.text(7, a.request_id);
    s.text(8, a.client);
    if (!step(s)) return fail(std::string("audit: ") + sqlite3_errmsg(db));
  }
  if (!exec(db, "COMMIT", error)) return fail(error);
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
  std::lock_guard<std::mutex> lock(impl_->stats_mutex);
  ++impl_->stats.writes;
  impl_->stats.last_write_failed = false;
  impl_->stats.rows_written += rows;
  impl_->stats.last_commit_ms = ms;
  impl_->stats.total_commit_ms += ms;
  return std::nullopt;
}

std::optional<TaskRecord> SqliteStore::task(const std::string& id) {
  auto db = impl_->reader();
  Stmt s(db.get(), (std::string("SELECT ") + kTaskColumns + " FROM tasks WHERE id = ?1").c_str());
  s.text(1, id);
  if (sqlite3_step(s.get()) != SQLITE_ROW) return std::nullopt;
  return read_task(s.get());
}

std::vector<TaskEvent> SqliteStore::task_events(const std::string& id) {
  auto db = impl_->reader();
  Stmt s(db.get(), "SELECT from_status, to_status, at, attempt, reason FROM task_events WHERE task_id = ?1 ORDER BY id");
  s.text(1, id);
  std::vector<TaskEvent> out;
  while (sqlite3_step(s.get()) == SQLITE_ROW)
    out.push_back({id, column_text(s.get(), 0), column_text(s.get(), 1), column_time(s.get(), 2),
                   sqlite3_column_int(s.get(), 3), column_text(s.get(), 4)});
  Stmt trail(db.get(), "SELECT events FROM tasks WHERE id = ?1");
  trail.text(1, id);
  if (sqlite3_step(trail.get()) == SQLITE_ROW) parse_event_lines(id, column_text(trail.get(), 0), out);
  return out;
}

TaskPage SqliteStore::tasks(const TaskFilter& f) {
  auto db = impl_->reader();
  std::string where = " WHERE 1=1";
  std::vector<std::string> args;
  auto add = [&](const char* column, const std::string& v) {
    if (v.empty()) return;
    args.push_back(v);
    where += std::string(" AND ") + column + " = ?" + std::to_string(args.size());
  };
  add("status", f.status);
  add("type", f.type);
  add("assigned_agent", f.agent);
  add("priority", f.priority);
  TaskPage page;
  {
    Stmt s(db.get(), ("SELECT COUNT(*) FROM tasks" + where).c_str());
    for (size_t i = 0; i < args.size(); ++i) s.text(int(i + 1), args[i]);
    if (sqlite3_step(s.get()) == SQLITE_ROW) page.total = sqlite3_column_int64(s.get(), 0);
  }
  std::string sql = std::string("SELECT ") + kTaskColumns + " FROM tasks" + where + " ORDER BY rowid DESC LIMIT " +
                    std::to_string(f.limit) + " OFFSET " + std::to_string(f.offset);
  Stmt s(db.get(), sql.c_str());
  for (size_t i = 0; i < args.size(); ++i) s.text(int(i + 1), args[i]);
  while (sqlite3_step(s.get()) == SQLITE_ROW) page.tasks.push_back(read_task(s.get()));
  return page;
}

std::optional<std::string> SqliteStore::task_id_by_idempotency_key(const std::string& key) {
  auto db = impl_->reader();
  Stmt s(db.get(), "SELECT id FROM tasks WHERE idempotency_key = ?1");
  s.text(1, key);
  if (sqlite3_step(s.get()) != SQLITE_ROW) return std::nullopt;
  return column_text(s.get(), 0);
}

std::vector<TaskRecord> SqliteStore::unfinished_tasks() {
  auto db = impl_->reader();
  Stmt s(db.get(), (std::string("SELECT ") + kTaskColumns +
                    " FROM tasks WHERE status IN ('pending', 'assigned', 'running') ORDER BY created_at, rowid")
                       .c_str());
  std::vector<TaskRecord> out;
  while (sqlite3_step(s.get()) == SQLITE_ROW) out.push_back(read_task(s.get()));
  return out;
}

std::map<std::string, int64_t> SqliteStore::task_counts_by_status() {
  auto db = impl_->reader();
  Stmt s(db.get(), "SELECT status, COUNT(*) FROM tasks GROUP BY status");
  std::map<std::string, int64_t> out;
  while (sqlite3_step(s.get()) == SQLITE_ROW) out[column_text(s.get(), 0)] = sqlite3_column_int64(s.get(), 1);
  return out;
}

std::vector<AgentRecord> SqliteStore::agents() {
  auto db = impl_->reader();
  Stmt s(db.get(),
         "SELECT id, name, type, specialization, state, capabilities, max_concurrent_tasks, executor, node, energy, "
         "tasks_completed, tasks_failed, avg_duration_ms, created_at, updated_at FROM agents WHERE deleted = 0 "
         "ORDER BY created_at, rowid");
  std::vector<AgentRecord> out;
  while (sqlite3_step(s.get()) == SQLITE_ROW) {
    AgentRecord a;
    auto* r = s.get();
    a.id = column_text(r, 0);
    a.name = column_text(r, 1);
    a.type = column_text(r, 2);
    a.specialization = column_text(r, 3);
    a.state = column_text(r, 4);
    a.capabilities = parse_capabilities(column_text(r, 5));
    a.max_concurrent_tasks = sqlite3_column_int(r, 6);
    a.executor_json = column_text(r, 7);
    a.node = column_text(r, 8);
    a.energy = sqlite3_column_double(r, 9);
    a.tasks_completed = sqlite3_column_int64(r, 10);
    a.tasks_failed = sqlite3_column_int64(r, 11);
    a.avg_duration_ms = sqlite3_column_double(r, 12);
    a.created_at = column_time(r, 13);
    a.updated_at = column_time(r, 14);
    out.push_back(std::move(a));
  }
  return out;
}

std::optional<StoreError> SqliteStore::renew_leases(const std::string& owner, int64_t until_ms) {
  auto* db = impl_->writer->get();
  Stmt s(db, "UPDATE tasks SET lease_expires_at = ?2 WHERE lease_owner = ?1 AND status IN ('pending', 'assigned', 'running')");
  s.text(1, owner);
  s.text(2, rfc3339(until_ms));
  if (sqlite3_step(s.get()) != SQLITE_DONE) return StoreError{"io", std::string("renewing leases: ") + sqlite3_errmsg(db)};
  return std::nullopt;
}

std::optional<StoreError> SqliteStore::expire_leases(const std::string& owner, int64_t now_ms) {
  auto* db = impl_->writer->get();
  Stmt s(db, "UPDATE tasks SET lease_expires_at = ?2 WHERE lease_owner = ?1 AND status IN ('pending', 'assigned', 'running')");
  s.text(1, owner);
  s.text(2, rfc3339(now_ms - 1));
  if (sqlite3_step(s.get()) != SQLITE_DONE) return StoreError{"io", std::string("expiring leases: ") + sqlite3_errmsg(db)};
  return std::nullopt;
}

std::vector<TaskRecord> SqliteStore::claim_tasks(const std::string& owner, int64_t now_ms, int64_t until_ms, int limit,
                                                 bool include_own) {
  auto* db = impl_->writer->get();
  // One writer: no other claimer can interleave, so no row locks are needed here.
  Stmt s(db, (std::string("UPDATE tasks SET lease_owner = ?1, node = ?1, lease_expires_at = ?3 WHERE id IN (SELECT id "
                          "FROM tasks WHERE status IN ('pending', 'assigned', 'running') AND (lease_owner IS NULL OR lease_owner = '' OR "
                          "lease_expires_at IS NULL OR lease_expires_at < ?2 OR (?5 AND lease_owner = ?1)) ORDER BY "
                          "created_at, rowid LIMIT ?4) RETURNING ") +
                  kTaskColumns)
                 .c_str());
  s.text(1, owner);
  s.text(2, rfc3339(now_ms));
  s.text(3, rfc3339(until_ms));
  s.integer(4, limit);
  s.integer(5, include_own ? 1 : 0);
  std::vector<TaskRecord> out;
  while (sqlite3_step(s.get()) == SQLITE_ROW) out.push_back(read_task(s.get()));
  std::sort(out.begin(), out.end(), [](const TaskRecord& a, const TaskRecord& b) { return a.created_at < b.created_at; });
  return out;
}

StoreStats SqliteStore::stats() {
  size_t idle = 0;
  {
    std::lock_guard<std::mutex> lock(impl_->readers_mutex);
    idle = impl_->idle_readers.size();
  }
  std::lock_guard<std::mutex> lock(impl_->stats_mutex);
  auto s = impl_->stats;
  s.pool_active = impl_->readers_active + 1;  // the writer connection is always held
  s.pool_idle = int64_t(idle);
  return s;
}

std::optional<StoreError> SqliteStore::ping() {
  std::string error;
  if (!exec(impl_->writer->get(), "SELECT 1 FROM schema_migrations LIMIT 1", error)) return StoreError{"unavailable", error};
  std::lock_guard<std::mutex> lock(impl_->stats_mutex);
  impl_->stats.last_write_failed = false;
  impl_->stats.last_error.clear();
  return std::nullopt;
}

}  // namespace hub::runtime

namespace hub::runtime {
namespace {

// Runs `fn` on the auth connection (opened on first use) under its mutex.
template <class Fn>
auto with_auth_db(std::mutex& mutex, std::unique_ptr<Db>& db, const std::string& path, int busy_ms, Fn fn) {
  std::lock_guard<std::mutex> lock(mutex);
  if (!db) {
    std::string error;
    db = open_db(path, SQLITE_OPEN_READWRITE, busy_ms, error);
    if (!db) throw std::runtime_error(error);
  }
  return fn(db->get());
}

}  // namespace

std::optional<StoreError> SqliteStore::put_user(const UserRecord& u) {
  return with_auth_db(impl_->auth_mutex, impl_->auth_db, impl_->path, impl_->busy_timeout_ms,
                      [&](sqlite3* db) -> std::optional<StoreError> {
                        Stmt s(db,
                               "INSERT INTO users(username, password_hash, role, created_at) VALUES (?1, ?2, ?3, ?4) "
                               "ON CONFLICT(username) DO UPDATE SET password_hash = excluded.password_hash, role = excluded.role");
                        s.text(1, u.username);
                        s.text(2, u.password_hash);
                        s.text(3, u.role);
                        s.text(4, rfc3339(u.created_at));
                        if (sqlite3_step(s.get()) != SQLITE_DONE) return StoreError{"io", sqlite3_errmsg(db)};
                        return std::nullopt;
                      });
}

std::optional<UserRecord> SqliteStore::user(const std::string& username) {
  auto db = impl_->reader();
  Stmt s(db.get(), "SELECT username, password_hash, role, created_at FROM users WHERE username = ?1");
  s.text(1, username);
  if (sqlite3_step(s.get()) != SQLITE_ROW) return std::nullopt;
  return UserRecord{column_text(s.get(), 0), column_text(s.get(), 1), column_text(s.get(), 2), column_time(s.get(), 3)};
}

std::optional<StoreError> SqliteStore::put_refresh_token(const std::string& hash, const std::string& username,
                                                      const std::string& session, int64_t expires_at) {
  return with_auth_db(impl_->auth_mutex, impl_->auth_db, impl_->path, impl_->busy_timeout_ms,
                      [&](sqlite3* db) -> std::optional<StoreError> {
                        Stmt s(db, "INSERT INTO refresh_tokens(token_hash, username, session, expires_at) VALUES (?1, ?2, ?3, ?4)");
                        s.text(1, hash);
                        s.text(2, username);
                        s.text(3, session);
                        s.integer(4, expires_at);
                        if (sqlite3_step(s.get()) != SQLITE_DONE) return StoreError{"io", sqlite3_errmsg(db)};
                        return std::nullopt;
                      });
}

RefreshUse SqliteStore::consume_refresh_token(const std::string& hash, int64_t now) {
  return with_auth_db(impl_->auth_mutex, impl_->auth_db, impl_->path, impl_->busy_timeout_ms, [&](sqlite3* db) {
    RefreshUse use;
    int64_t expires = 0, used = 0;
    {
      Stmt s(db, "SELECT username, session, expires_at, used, revoked FROM refresh_tokens WHERE token_hash = ?1");
      s.text(1, hash);
      if (sqlite3_step(s.get()) != SQLITE_ROW) return use;
      use.username = column_text(s.get(), 0);
      use.session = column_text(s.get(), 1);
      expires = sqlite3_column_int64(s.get(), 2);
      used = sqlite3_column_int64(s.get(), 3);
      if (sqlite3_column_int64(s.get(), 4)) return use;  // logged out: simply not valid
    }
    if (used) {
      // A used token came back: someone holds a copy. Revoke the user's sessions.
      use.outcome = RefreshUse::Outcome::replayed;
      Stmt s(db, "UPDATE refresh_tokens SET used = 1 WHERE username = ?1");
      s.text(1, use.username);
      sqlite3_step(s.get());
      return use;
    }
    Stmt s(db, "UPDATE refresh_tokens SET used = 1 WHERE token_hash = ?1 AND used = 0");
    s.text(1, hash);
    if (sqlite3_step(s.get()) != SQLITE_DONE || sqlite3_changes(db) != 1) return use;
    use.outcome = expires < now ? RefreshUse::Outcome::expired : RefreshUse::Outcome::valid;
    return use;
  });
}

std::optional<StoreError> SqliteStore::put_revocation(const Revocation& r) {
  return with_auth_db(impl_->auth_mutex, impl_->auth_db, impl_->path, impl_->busy_timeout_ms,
                      [&](sqlite3* db) -> std::optional<StoreError> {
                        Stmt s(db, "INSERT INTO revocations(kind, subject, at, expires_at) VALUES (?1, ?2, ?3, ?4) "
                                   "ON CONFLICT(kind, subject) DO UPDATE SET at = excluded.at, expires_at = excluded.expires_at");
                        s.text(1, r.kind);
                        s.text(2, r.subject);
                        s.integer(3, r.at_ms);
                        s.integer(4, r.expires_at_ms);
                        if (sqlite3_step(s.get()) != SQLITE_DONE) return StoreError{"io", sqlite3_errmsg(db)};
                        if (r.kind == "session") {
                          Stmt t(db, "UPDATE refresh_tokens SET revoked = 1 WHERE session = ?1");
                          t.text(1, r.subject);
                          sqlite3_step(t.get());
                        }
                        Stmt old(db, "DELETE FROM revocations WHERE expires_at < ?1");
                        old.integer(1, r.at_ms);
                        sqlite3_step(old.get());
                        return std::nullopt;
                      });
}

std::vector<Revocation> SqliteStore::revocations_since(int64_t at_ms) {
  auto db = impl_->reader();
  Stmt s(db.get(), "SELECT kind, subject, at, expires_at FROM revocations WHERE at >= ?1 ORDER BY at");
  s.integer(1, at_ms);
  std::vector<Revocation> out;
  while (sqlite3_step(s.get()) == SQLITE_ROW)
    out.push_back({column_text(s.get(), 0), column_text(s.get(), 1), sqlite3_column_int64(s.get(), 2),
                   sqlite3_column_int64(s.get(), 3)});
  return out;
}

void SqliteStore::revoke_refresh_token(const std::string& hash) {
  with_auth_db(impl_->auth_mutex, impl_->auth_db, impl_->path, impl_->busy_timeout_ms, [&](sqlite3* db) {
    Stmt s(db, "UPDATE refresh_tokens SET revoked = 1 WHERE token_hash = ?1");
    s.text(1, hash);
    sqlite3_step(s.get());
    return 0;
  });
}

std::optional<StoreError> SqliteStore::put_model(const ModelRecord& m) {
  return with_auth_db(impl_->auth_mutex, impl_->auth_db, impl_->path, impl_->busy_timeout_ms,
                      [&](sqlite3* db) -> std::optional<StoreError> {
                        Stmt s(db,
                               "INSERT INTO models(name, kind, spec, metadata, metrics, data, size_bytes, created_at, updated_at) "
                               "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT(name) DO UPDATE SET kind = excluded.kind, "
                               "spec = excluded.spec, metadata = excluded.metadata, metrics = excluded.metrics, data = "
                               "excluded.data, size_bytes = excluded.size_bytes, updated_at = excluded.updated_at");
                        s.text(1, m.name);
                        s.text(2, m.kind);
                        s.text(3, m.spec_json);
                        s.text(4, m.metadata_json);
                        s.text(5, m.metrics_json);
                        s.text(6, base64_encode(m.data));
                        s.integer(7, int64_t(m.data.size()));
                        s.text(8, rfc3339(m.created_at));
                        s.text(9, rfc3339(m.updated_at));
                        if (sqlite3_step(s.get()) != SQLITE_DONE) return StoreError{"io", sqlite3_errmsg(db)};
                        return std::nullopt;
                      });
}

namespace {
ModelRecord read_model(sqlite3_stmt* s, bool with_data) {
  ModelRecord m;
  m.name = column_text(s, 0);
  m.kind = column_text(s, 1);
  m.spec_json = column_text(s, 2);
  m.metadata_json = column_text(s, 3);
  m.metrics_json = column_text(s, 4);
  m.size_bytes = sqlite3_column_int64(s, 5);
  m.created_at = column_time(s, 6);
  m.updated_at = column_time(s, 7);
  if (with_data) base64_decode(column_text(s, 8), m.data);
  return m;
}
}  // namespace

std::optional<ModelRecord> SqliteStore::model(const std::string& name) {
  auto db = impl_->reader();
  Stmt s(db.get(), "SELECT name, kind, spec, metadata, metrics, size_bytes, created_at, updated_at, data FROM models WHERE name = ?1");
  s.text(1, name);
  if (sqlite3_step(s.get()) != SQLITE_ROW) return std::nullopt;
  return read_model(s.get(), true);
}

std::vector<ModelRecord> SqliteStore::models() {
  auto db = impl_->reader();
  Stmt s(db.get(), "SELECT name, kind, spec, metadata, metrics, size_bytes, created_at, updated_at FROM models ORDER BY name");
  std::vector<ModelRecord> out;
  while (sqlite3_step(s.get()) == SQLITE_ROW) out.push_back(read_model(s.get(), false));
  return out;
}

std::vector<AuditEntry> SqliteStore::audit_log(int limit, int offset, int64_t& total) {
  auto db = impl_->reader();
  {
    Stmt s(db.get(), "SELECT COUNT(*) FROM audit_log");
    total = sqlite3_step(s.get()) == SQLITE_ROW ? sqlite3_column_int64(s.get(), 0) : 0;
  }
  Stmt s(db.get(), ("SELECT at, actor, role, action, resource, status, request_id, client FROM audit_log ORDER BY id DESC LIMIT " +
                    std::to_string(limit) + " OFFSET " + std::to_string(offset))
                       .c_str());
  std::vector<AuditEntry> out;
  while (sqlite3_step(s.get()) == SQLITE_ROW) {
    auto* r = s.get();
    out.push_back({column_time(r, 0), column_text(r, 1), column_text(r, 2), column_text(r, 3), column_text(r, 4),
                   sqlite3_column_int(r, 5), column_text(r, 6), column_text(r, 7)});
  }
  return out;
}

}  // namespace hub::runtime
