// The records the node keeps: agents, tasks and the events of a task's life, as the store
// holds them. Plain data with CAF inspectors (so actors can pass them); JSON-valued fields
// (payload, result, capabilities, executor) are carried as serialized JSON text.
// Must never hold behaviour: the actors in actors/ own what these records mean.
#pragma once

#include <caf/meta/type_name.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace hub::runtime {

struct Capability {
  std::string name;
  double proficiency = 0.5;
  double learning_rate = 0.1;
};

struct AgentRecord {
  std::string id;
  std::string name;
  std::string type;            // worker|coordinator|specialist|learner
  std::string specialization;  // specialist only
  std::string state;           // idle|working|learning|failed|inactive
  std::vector<Capability> capabilities;
  int32_t max_concurrent_tasks = 4;
  std::string executor_json = R"({"kind":"builtin"})";
  std::string node;
  double energy = 100.0;
  int64_t tasks_completed = 0;
  int64_t tasks_failed = 0;
  double avg_duration_ms = 0;
  int64_t created_at = 0;  // epoch ms
  int64_t updated_at = 0;
  bool deleted = false;
  int32_t running_tasks = 0;  // live view only, not stored
};

struct RequiredCapability {
  std::string name;
  double minimum_proficiency = 0.0;
};

struct TaskRecord {
  std::string id;
  std::string title;
  std::string description;
  std::string type;
  std::string priority = "medium";  // low|medium|high|critical
  std::vector<RequiredCapability> required_capabilities;
  std::string payload_json = "null";
  std::string status = "pending";  // pending|assigned|running|completed|failed|cancelled
  int32_t attempts = 0;
  int32_t max_attempts = 3;
  int64_t timeout_ms = 0;
  std::string idempotency_key;
  std::string assigned_agent;
  std::string node;
  std::string result_json;  // empty: none
  std::string error_type;   // empty: none
  std::string error_message;
  int64_t created_at = 0;  // epoch ms; 0 = unset
  int64_t updated_at = 0;
  int64_t started_at = 0;
  int64_t completed_at = 0;
  std::string inferred_json;  // capabilities predicted at submission: {"capabilities", "confidence", "applied"}; empty: none
};

struct TaskEvent {
  std::string task_id;
  std::string from;
  std::string to;
  int64_t at = 0;
  int32_t attempt = 0;
  std::string reason;
};

// Who did what to which resource, and how it ended (the audit log).
struct AuditEntry {
  int64_t at = 0;
  std::string actor;
  std::string role;
  std::string action;    // "POST /api/tasks/{id}/cancel"
  std::string resource;  // the request path
  int32_t status = 0;
  std::string request_id;
  std::string client;  // remote address
};

// What using a refresh token found.
struct RefreshUse {
  enum class Outcome { unknown, expired, valid, replayed } outcome = Outcome::unknown;
  std::string username;
  std::string session;
};

// A revoked session ("session", its id) or user ("user", every token issued before `at_ms`).
struct Revocation {
  std::string kind;
  std::string subject;
  int64_t at_ms = 0;
  int64_t expires_at_ms = 0;
};

struct UserRecord {
  std::string username;
  std::string password_hash;  // argon2id, libsodium's crypto_pwhash_str format
  std::string role;           // admin|operator|viewer|agent
  int64_t created_at = 0;
};

// A trained model (neural jobs): its bytes as the neural engine saved them, and what it
// needs besides (feature columns, normalisation, class labels) as JSON text.
struct ModelRecord {
  std::string name;
  std::string kind = "mlp";
  std::string spec_json = "{}";
  std::string metadata_json = "{}";
  std::string metrics_json = "{}";
  std::string data;  // bytes; empty in listings
  int64_t size_bytes = 0;
  int64_t created_at = 0;
  int64_t updated_at = 0;
};

// Everything one group commit writes: all of it or nothing.
struct WriteBatch {
  std::vector<TaskRecord> tasks;         // full upserts, by id (new or re-submitted tasks)
  std::vector<TaskRecord> task_updates;  // state only (status, attempts, agent, result, error, times) of stored tasks
  std::vector<TaskEvent> events;
  std::vector<AgentRecord> agents;  // upserts, by id
  std::vector<AuditEntry> audit;
  bool empty() const { return tasks.empty() && task_updates.empty() && events.empty() && agents.empty() && audit.empty(); }
  size_t size() const { return tasks.size() + task_updates.size() + events.size() + agents.size() + audit.size(); }
};

bool is_terminal(const std::string& status);
// The part of a task a state update writes (id, status, attempts, agent, node, result, error,
// times): what WriteBatch::task_updates carries, without the description and payload.
TaskRecord task_state(const TaskRecord& t);
int priority_rank(const std::string& priority);  // critical 0 .. low 3; -1 unknown

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, Capability& x) {
  return f(caf::meta::type_name("capability"), x.name, x.proficiency, x.learning_rate);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, RequiredCapability& x) {
  return f(caf::meta::type_name("required_capability"), x.name, x.minimum_proficiency);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, AgentRecord& x) {
  return f(caf::meta::type_name("agent_record"), x.id, x.name, x.type, x.specialization, x.state, x.capabilities,
           x.max_concurrent_tasks, x.executor_json, x.node, x.energy, x.tasks_completed, x.tasks_failed,
           x.avg_duration_ms, x.created_at, x.updated_at, x.deleted, x.running_tasks);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, TaskRecord& x) {
  return f(caf::meta::type_name("task_record"), x.id, x.title, x.description, x.type, x.priority,
           x.required_capabilities, x.payload_json, x.status, x.attempts, x.max_attempts, x.timeout_ms,
           x.idempotency_key, x.assigned_agent, x.node, x.result_json, x.error_type, x.error_message, x.created_at,
           x.updated_at, x.started_at, x.completed_at, x.inferred_json);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, TaskEvent& x) {
  return f(caf::meta::type_name("task_event"), x.task_id, x.from, x.to, x.at, x.attempt, x.reason);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, AuditEntry& x) {
  return f(caf::meta::type_name("audit_entry"), x.at, x.actor, x.role, x.action, x.resource, x.status, x.request_id,
           x.client);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, WriteBatch& x) {
  return f(caf::meta::type_name("write_batch"), x.tasks, x.task_updates, x.events, x.agents, x.audit);
}

}  // namespace hub::runtime
