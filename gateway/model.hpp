// JSON <-> records for the API: the views of agents and tasks that responses show, and the
// validation of request bodies (every field checked; the first problem is reported with
// its field name and the rule). Pure functions, no I/O.
#pragma once

#include "actors/executor.hpp"
#include "gateway/api.hpp"
#include "runtime/domain.hpp"

#include <variant>

namespace hub::gateway {

struct TaskDefaults {
  int max_attempts = 3;
  int64_t timeout_ms = 300000;
};

json task_view(const runtime::TaskRecord& task);
json event_view(const runtime::TaskEvent& event);
json agent_view(const runtime::AgentRecord& agent);

// A new task from a POST body (id and timestamps assigned). `idempotency_header` wins
// when the body has no key of its own.
std::variant<runtime::TaskRecord, ApiError> task_from_json(const json& body, const TaskDefaults& defaults,
                                                           const std::string& idempotency_header = "");
std::variant<runtime::AgentRecord, ApiError> agent_from_json(const json& body, int default_concurrency,
                                                             const actors::ExecutorPolicy& executors = {});

// limit/offset and friends from the query string.
std::optional<ApiError> read_paging(const std::multimap<std::string, std::string>& params, int& limit, int& offset);

}  // namespace hub::gateway
