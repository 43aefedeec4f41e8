#include "runtime/store/store.hpp"

#include "runtime/store/pg_store.hpp"
#include "runtime/store/sqlite_store.hpp"

#include <libpq-fe.h>
#include <sqlite3.h>

#include <algorithm>
#include <filesystem>
#include <string_view>
#include <unordered_map>
#include <utility>

namespace hub::runtime {

bool is_terminal(const std::string& status) {
  return status == "completed" || status == "failed" || status == "cancelled";
}

namespace {

// The state fields of a task (what a state update writes), copied or moved from `from`.
template <class Record>
void assign_state(TaskRecord& to, Record&& from) {
  to.status = std::forward<Record>(from).status;
  to.attempts = from.attempts;
  to.assigned_agent = std::forward<Record>(from).assigned_agent;
  to.node = std::forward<Record>(from).node;
  to.result_json = std::forward<Record>(from).result_json;
  to.error_type = std::forward<Record>(from).error_type;
  to.error_message = std::forward<Record>(from).error_message;
  to.updated_at = from.updated_at;
  to.started_at = from.started_at;
  to.completed_at = from.completed_at;
}

}  // namespace

TaskRecord task_state(const TaskRecord& t) {
  TaskRecord s;
  s.id = t.id;
  assign_state(s, t);
  return s;
}

int priority_rank(const std::string& p) {
  if (p == "critical") return 0;
  if (p == "high") return 1;
  if (p == "medium") return 2;
  if (p == "low") return 3;
  return -1;
}

void coalesce(WriteBatch& batch) {
  if (batch.task_updates.empty()) return;
  std::unordered_map<std::string_view, size_t> last;  // id -> index of its last update
  last.reserve(batch.task_updates.size());
  for (size_t i = 0; i < batch.task_updates.size(); ++i) last[batch.task_updates[i].id] = i;
  // The map's keys view the updates' ids, which are never moved until the end.
  std::vector<bool> keep(batch.task_updates.size(), false);
  for (size_t i = 0; i < batch.task_updates.size(); ++i) keep[i] = last[batch.task_updates[i].id] == i;
  // Into the last insert of each id (an earlier duplicate is overwritten by it anyway).
  for (auto t = batch.tasks.rbegin(); t != batch.tasks.rend(); ++t) {
    auto it = last.find(t->id);
    if (it == last.end()) continue;
    keep[it->second] = false;
    assign_state(*t, std::move(batch.task_updates[it->second]));  // dropped below
    last.erase(it);
  }
  std::vector<TaskRecord> kept;
  for (size_t i = 0; i < batch.task_updates.size(); ++i)
    if (keep[i]) kept.push_back(std::move(batch.task_updates[i]));
  batch.task_updates = std::move(kept);
}

std::string redact_url(const std::string& url) {
  auto scheme = url.find("://");
  if (scheme == std::string::npos) return url;
  auto at = url.find('@', scheme + 3);
  auto colon = url.find(':', scheme + 3);
  if (at == std::string::npos || colon == std::string::npos || colon > at) return url;
  return url.substr(0, colon + 1) + "****" + url.substr(at);
}

std::string sqlite_path(const std::string& url) {
  const std::string scheme = "sqlite://";
  return url.rfind(scheme, 0) == 0 ? url.substr(scheme.size()) : std::string();
}

namespace {
bool is_postgres(const std::string& url) {
  return url.rfind("postgresql://", 0) == 0 || url.rfind("postgres://", 0) == 0;
}
}  // namespace

OpenResult open_store(const StoreOptions& options) {
  OpenResult result;
  if (is_postgres(options.url)) {
    auto store = std::make_unique<PgStore>();
    if (auto err = store->open(options.url, options.max_connections, std::max(1, options.busy_timeout_ms / 1000))) {
      result.error = err;
      return result;
    }
    store->set_lease_ms(options.lease_ms);
    result.store = std::move(store);
    return result;
  }
  auto path = sqlite_path(options.url);
  if (path.empty()) {
    result.error = StoreError{"unavailable", "unsupported database URL " + options.url};
    return result;
  }
  std::error_code ec;
  auto dir = std::filesystem::path(path).parent_path();
  if (!dir.empty()) std::filesystem::create_directories(dir, ec);
  if (ec) {
    result.error = StoreError{"unavailable", "cannot create " + dir.string() + ": " + ec.message()};
    return result;
  }
  auto store = std::make_unique<SqliteStore>();
  if (auto err = store->open(path, options.busy_timeout_ms, options.synchronous_full)) {
    result.error = err;
    return result;
  }
  store->set_lease_ms(options.lease_ms);
  result.store = std::move(store);
  return result;
}

std::string probe_database(const std::string& url, int timeout_seconds, std::string& detail) {
  if (is_postgres(url)) {
    std::string conninfo = url;
    conninfo += (url.find('?') == std::string::npos ? "?" : "&");
    conninfo += "connect_timeout=" + std::to_string(std::max(1, timeout_seconds));
    PGconn* conn = PQconnectdb(conninfo.c_str());
    std::string why;
    if (PQstatus(conn) != CONNECTION_OK) {
      why = PQerrorMessage(conn);
      while (!why.empty() && (why.back() == '\n' || why.back() == ' ')) why.pop_back();
      for (auto& ch : why)
        if (ch == '\n') ch = ' ';
      why = "PostgreSQL is not reachable: " + why;
    } else {
      detail = "PostgreSQL " + std::to_string(PQserverVersion(conn) / 10000) + " at " + PQhost(conn) + ":" + PQport(conn) +
               ", database " + PQdb(conn) + " (reachable)";
    }
    PQfinish(conn);
    return why;
  }
  auto path = sqlite_path(url);
  if (path.empty()) return "unsupported database URL " + url;
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    auto dir = std::filesystem::path(path).parent_path();
    detail = "SQLite " + std::string(sqlite3_libversion()) + ", " + path + " (will be created)";
    (void)dir;
    return {};
  }
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
  std::string why;
  if (rc == SQLITE_OK) {
    sqlite3_busy_timeout(db, timeout_seconds * 1000);
    char* msg = nullptr;
    rc = sqlite3_exec(db, "SELECT count(*) FROM sqlite_master", nullptr, nullptr, &msg);
    if (rc != SQLITE_OK) why = "SQLite file " + path + " is not usable: " + (msg ? msg : sqlite3_errstr(rc));
    sqlite3_free(msg);
  } else {
    why = "cannot open SQLite file " + path + ": " + sqlite3_errstr(rc);
  }
  sqlite3_close_v2(db);
  if (why.empty()) detail = "SQLite " + std::string(sqlite3_libversion()) + ", " + path + " (readable)";
  return why;
}

namespace {
constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
}

std::string base64_encode(const std::string& in) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    uint32_t v = uint32_t(uint8_t(in[i])) << 16 | uint32_t(uint8_t(in[i + 1])) << 8 | uint8_t(in[i + 2]);
    for (int s = 18; s >= 0; s -= 6) out += kAlphabet[(v >> s) & 63];
  }
  if (i < in.size()) {
    uint32_t v = uint32_t(uint8_t(in[i])) << 16 | (i + 1 < in.size() ? uint32_t(uint8_t(in[i + 1])) << 8 : 0);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += i + 1 < in.size() ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

bool base64_decode(const std::string& in, std::string& out) {
  int8_t map[256];
  std::fill(std::begin(map), std::end(map), int8_t(-1));
  for (int i = 0; i < 64; ++i) map[uint8_t(kAlphabet[i])] = int8_t(i);
  if (in.size() % 4) return false;
  out.clear();
  out.reserve(in.size() / 4 * 3);
  for (size_t i = 0; i < in.size(); i += 4) {
    uint32_t v = 0;
    int pad = 0;
    for (int k = 0; k < 4; ++k) {
      char c = in[i + size_t(k)];
      if (c == '=' && i + 4 == in.size() && k >= 2) {
        ++pad;
        v <<= 6;
        continue;
      }
      if (map[uint8_t(c)] < 0 || pad) return false;
      v = v << 6 | uint32_t(map[uint8_t(c)]);
    }
    out += char(v >> 16 & 255);
    if (pad < 2) out += char(v >> 8 & 255);
    if (pad < 1) out += char(v & 255);
  }
  return true;
}

}  // namespace hub::runtime
