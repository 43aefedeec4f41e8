// Who is calling and what they may do: API keys (constant-time compare), JWT bearer tokens
// (HS256, iss/aud/exp checked, revocable), users with argon2id password hashes, single-use
// refresh tokens, roles and their permissions, per-credential sliding-window rate limits and
// login lockout. Thread-safe. Must never log a secret.
#pragma once

#include "config/config.hpp"
#include "gateway/api.hpp"

#include <deque>
#include <mutex>
#include <unordered_map>
#include <variant>

namespace hub::runtime {
class Store;
}

namespace hub::gateway {

enum class Permission { authenticated, read, submit, manage_tasks, manage_agents, admin };

struct Session {
  std::string access_token;
  std::string refresh_token;
  int64_t expires_in_s = 0;
  std::string username, role;
};

struct Quota {
  bool allowed = true;
  int limit = 0;
  int remaining = 0;
  int reset_s = 0;        // until the bucket is full again
  int retry_after_s = 0;  // until one request is allowed (when refused)
};

bool role_allows(const std::string& role, Permission permission);
bool is_role(const std::string& role);
std::string hash_password(const std::string& password);  // argon2id (libsodium), throws on failure
bool verify_password(const std::string& hash, const std::string& password);

class Security {
 public:
  explicit Security(const config::Config& config);
  void attach(runtime::Store* store) { store_ = store; }

  // No credentials configured: the API is open (development only).
  bool open() const { return open_; }

  std::variant<Principal, ApiError> authenticate(const std::string& api_key, const std::string& authorization);
  std::variant<Session, ApiError> login(const std::string& username, const std::string& password);
  std::variant<Session, ApiError> refresh(const std::string& refresh_token);
  void logout(const Principal& who, const std::string& refresh_token);

  Quota take(const std::string& key);
  int rate_limit() const { return per_minute_; }

  // Exposed for tests: a signed access token for a user and role.
  std::string issue_access_token(const std::string& username, const std::string& role, int64_t ttl_s,
                                 std::string* token_id = nullptr) const;

 private:
  std::variant<Session, ApiError> new_session(const std::string& username, const std::string& role);
  std::optional<ApiError> check_lockout(const std::string& username);
  void record_failure(const std::string& username);

  const config::Config& config_;
  runtime::Store* store_ = nullptr;
  bool open_ = false;
  int per_minute_ = 0;
  std::vector<std::string> api_keys_;

  struct Window {
    int64_t start_ms = 0;
    double current = 0;   // requests allowed in the minute that began at start_ms
    double previous = 0;  // ... in the minute before it
  };
  std::mutex buckets_mutex_;
  std::unordered_map<std::string, Window> buckets_;

  struct Failures {
    std::deque<int64_t> at;
    int64_t locked_until_ms = 0;
  };
  std::mutex logins_mutex_;
  std::unordered_map<std::string, Failures> failures_;

  std::mutex revoked_mutex_;
  std::unordered_map<std::string, int64_t> revoked_;  // token id -> expiry (ms)
};

}  // namespace hub::gateway
