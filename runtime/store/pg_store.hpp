// The PostgreSQL store: the same tables as SQLite (JSON in jsonb, times in timestamptz),
// one writer connection (the store actor's), a pool of up to max_connections readers, a
// connection for users and sessions. A lost connection is re-established on next use, so
// the node recovers by itself when the database returns; reads meanwhile throw
// StoreUnavailable and writes return an error.
#pragma once

#include "runtime/store/store.hpp"

#include <memory>

namespace hub::runtime {

class PgStore final : public Store {
 public:
  PgStore();
  ~PgStore() override;

  // Connects and applies pending migrations.
  std::optional<StoreError> open(const std::string& url, int max_connections, int connect_timeout_s);

  std::string backend() const override { return "postgresql"; }
  std::optional<StoreError> write(const WriteBatch& batch) override;
  std::optional<TaskRecord> task(const std::string& id) override;
  std::vector<TaskEvent> task_events(const std::string& id) override;
  TaskPage tasks(const TaskFilter& filter) override;
  std::optional<std::string> task_id_by_idempotency_key(const std::string& key) override;
  std::vector<TaskRecord> unfinished_tasks() override;
  std::map<std::string, int64_t> task_counts_by_status() override;
  std::vector<AgentRecord> agents() override;
  StoreStats stats() override;
  std::optional<StoreError> ping() override;
  std::optional<StoreError> renew_leases(const std::string& owner, int64_t until_ms) override;
  std::optional<StoreError> expire_leases(const std::string& owner, int64_t now_ms) override;
  std::vector<TaskRecord> claim_tasks(const std::string& owner, int64_t now_ms, int64_t until_ms, int limit,
                                      bool include_own) override;
  std::optional<StoreError> put_user(const UserRecord& user) override;
  std::optional<UserRecord> user(const std::string& username) override;
  std::optional<StoreError> put_refresh_token(const std::string& token_hash, const std::string& username,
                                              const std::string& session, int64_t expires_at) override;
  RefreshUse consume_refresh_token(const std::string& token_hash, int64_t now) override;
  std::optional<StoreError> put_revocation(const Revocation& revocation) override;
  std::vector<Revocation> revocations_since(int64_t at_ms) override;
  void revoke_refresh_token(const std::string& token_hash) override;
  std::vector<AuditEntry> audit_log(int limit, int offset, int64_t& total) override;
  std::optional<StoreError> put_model(const ModelRecord& model) override;
  std::optional<ModelRecord> model(const std::string& name) override;
  std::vector<ModelRecord> models() override;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace hub::runtime
