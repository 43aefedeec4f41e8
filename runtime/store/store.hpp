// The store: where agents, tasks and task events live durably. One interface, two backends
// (SQLite embedded by default; PostgreSQL arrives with issue #4).
// Threading: write() is called by one writer (the store actor) only; every read is safe
// from any thread and never blocks the writer for long (SQLite WAL readers).
// Must never know about actors or HTTP.
#pragma once

#include "runtime/domain.hpp"

#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace hub::runtime {

// Thrown by reads when the database cannot be reached (the gateway answers 503).
struct StoreUnavailable : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct StoreError {
  std::string code;     // "unavailable", "corrupt", "constraint", "io"
  std::string message;  // one line, for operators
};

struct TaskFilter {
  std::string status, type, agent, priority;
  int limit = 50;
  int offset = 0;
};

struct TaskPage {
  std::vector<TaskRecord> tasks;
  int64_t total = 0;
};

struct StoreStats {
  std::string backend;
  int64_t writes = 0;        // committed transactions
  int64_t rows_written = 0;
  int64_t write_errors = 0;
  bool last_write_failed = false;
  std::string last_error;
  int64_t reads = 0;
  int64_t pool_active = 0;  // connections in use (writer included while committing)
  int64_t pool_idle = 0;
  double last_commit_ms = 0;
  double total_commit_ms = 0;
};

// Folds a batch's state updates into its new tasks and drops updates that a later one of
// the same task supersedes, so a task created and finished within one commit is one row.
// What the batch means is unchanged; the rows written are fewer.
void coalesce(WriteBatch& batch);

class Store {
 public:
  virtual ~Store() = default;
  virtual std::string backend() const = 0;

  // One transaction: all of the batch or none of it.
  virtual std::optional<StoreError> write(const WriteBatch& batch) = 0;

  virtual std::optional<TaskRecord> task(const std::string& id) = 0;
  virtual std::vector<TaskEvent> task_events(const std::string& id) = 0;
  virtual TaskPage tasks(const TaskFilter& filter) = 0;
  virtual std::optional<std::string> task_id_by_idempotency_key(const std::string& key) = 0;
  virtual std::vector<TaskRecord> unfinished_tasks() = 0;
  virtual std::map<std::string, int64_t> task_counts_by_status() = 0;
  virtual std::vector<AgentRecord> agents() = 0;  // not deleted
  virtual StoreStats stats() = 0;
  // Reaches the database (reconnecting when needed) without writing; success clears the
  // failure that the last write left in stats(). For the single writer (the store actor).
  virtual std::optional<StoreError> ping() = 0;

  // Task ownership (clusters share one database). Every task write carries a lease:
  // lease_owner = the task's node, lease_expires_at = write time + lease_ms (none once
  // terminal). A write to a task whose lease another node holds is skipped (fencing).
  // Like write(), these are for the single writer (the store actor).
  // Extends this owner's leases on its unfinished tasks to `until_ms`.
  virtual std::optional<StoreError> renew_leases(const std::string& owner, int64_t until_ms) = 0;
  // Takes up to `limit` unfinished tasks whose lease expired (or that have none; and the
  // owner's own when `include_own`, as at boot) for `owner`, until `until_ms`; oldest first.
  // On PostgreSQL concurrent claimers skip each other's rows (FOR UPDATE SKIP LOCKED).
  virtual std::vector<TaskRecord> claim_tasks(const std::string& owner, int64_t now_ms, int64_t until_ms, int limit,
                                              bool include_own) = 0;
  // Ends `owner`'s leases now (the cluster's leader downed that node): others may claim its tasks.
  virtual std::optional<StoreError> expire_leases(const std::string& owner, int64_t now_ms) = 0;
  void set_lease_ms(int64_t ms) { lease_ms_ = ms; }
  // The node this store writes for. With a name set, a task event is written only while the
  // task's lease is this node's (or nobody's): a node that was downed and comes back cannot
  // add a second "completed" to a task another node finished.
  void set_node(const std::string& name) { node_ = name; }
  int64_t lease_ms() const { return lease_ms_; }

  // Users and sessions: small, synchronous, safe from any thread.
  virtual std::optional<StoreError> put_user(const UserRecord& user) = 0;
  virtual std::optional<UserRecord> user(const std::string& username) = 0;
  // Refresh tokens belong to a session (one login and its refreshes).
  virtual std::optional<StoreError> put_refresh_token(const std::string& token_hash, const std::string& username,
                                                      const std::string& session, int64_t expires_at) = 0;
  // Uses a refresh token up. A token that had been used before comes back as `replayed`
  // (someone holds a copy): every refresh token of its user is revoked then.
  virtual RefreshUse consume_refresh_token(const std::string& token_hash, int64_t now) = 0;
  virtual void revoke_refresh_token(const std::string& token_hash) = 0;
  // Access tokens are revoked through their session or their user (every token issued before
  // `at`); what is revoked is kept until `expires_at` and shared by every node on the database.
  // A revoked session's unused refresh tokens are revoked with it.
  virtual std::optional<StoreError> put_revocation(const Revocation& revocation) = 0;
  virtual std::vector<Revocation> revocations_since(int64_t at_ms) = 0;

  virtual std::vector<AuditEntry> audit_log(int limit, int offset, int64_t& total) = 0;

  // Trained models: small, synchronous, safe from any thread (a neural worker saves its own).
  virtual std::optional<StoreError> put_model(const ModelRecord& model) = 0;
  virtual std::optional<ModelRecord> model(const std::string& name) = 0;  // with its bytes
  virtual std::vector<ModelRecord> models() = 0;                          // without them

 protected:
  int64_t lease_ms_ = 30000;
  std::string node_;
};

struct StoreOptions {
  std::string url;  // sqlite://PATH or postgresql://USER@HOST:PORT/DB
  int busy_timeout_ms = 30000;  // also the PostgreSQL connect timeout
  bool synchronous_full = true;
  int max_connections = 10;  // PostgreSQL pool size
  int64_t lease_ms = 30000;   // task leases (see Store::claim_tasks)
};

struct OpenResult {
  std::unique_ptr<Store> store;
  std::optional<StoreError> error;
};

// Model bytes travel as base64 text in both backends.
std::string base64_encode(const std::string& bytes);
bool base64_decode(const std::string& text, std::string& bytes);

// Opens (creating and migrating as needed) the store the URL names.
OpenResult open_store(const StoreOptions& options);

// For `--check`: can the database the URL names be reached? Never creates or changes
// anything. Returns "" and fills `detail` when reachable, else the reason.
std::string probe_database(const std::string& url, int timeout_seconds, std::string& detail);

// The URL with its password replaced by "****", for logs and reports.
std::string redact_url(const std::string& url);

// The file path of a sqlite:// URL ("" for other schemes).
std::string sqlite_path(const std::string& url);

}  // namespace hub::runtime
