// Who is calling and what they may do: API keys (constant-time compare), JWT bearer tokens
// (HS256, iss/aud/exp checked; revocable per session and per user, the revocations shared
// through the store), users with argon2id password hashes, single-use refresh tokens,
// roles and their permissions, per-credential sliding-window rate limits, a bound on failed
// authentications per client address, and login lockout per user and address.
// Thread-safe. Must never log a secret.
#pragma once

#include "config/config.hpp"
#include "gateway/api.hpp"
#include "runtime/domain.hpp"

#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <shared_mutex>
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

  // `client`: the caller's address; failed attempts count against it, and past
  // [security] auth_failures_per_minute it gets 429 before anything is checked.
  std::variant<Principal, ApiError> authenticate(const std::string& api_key, const std::string& authorization,
                                                 const std::string& client);
  // For what outlives one request (event streams): not expired, not revoked since.
  bool still_valid(const Principal& who);

  struct LoginResult {
    std::variant<Session, ApiError> outcome;
    bool locked_now = false;  // this failure locked the user out from `client`
  };
  // Lockout is per user and client address; attempts count before the password is checked,
  // so concurrent guesses cannot outrun it. At most [security] max_concurrent_logins hashes run
  // at once (503 busy after a bounded wait).
  LoginResult login(const std::string& username, const std::string& password, const std::string& client);

  struct RefreshResult {
    std::variant<Session, ApiError> outcome;
    bool replayed = false;  // a used token came back: the user's sessions and tokens are revoked
    std::string username;
  };
  RefreshResult refresh(const std::string& refresh_token);
  // Ends the caller's session: its access tokens and every refresh token of it (and
  // `refresh_token`, when given) stop working, on every node sharing the database.
  void logout(const Principal& who, const std::string& refresh_token);

  Quota take(const std::string& key);
  int rate_limit() const { return per_minute_; }

  // Exposed for tests: a signed access token for a user and role (in `session`, when given).
  std::string issue_access_token(const std::string& username, const std::string& role, int64_t ttl_s,
                                 const std::string& session = "", std::string* token_id = nullptr) const;

 private:
  std::variant<Session, ApiError> new_session(const std::string& username, const std::string& role, std::string session);
  bool too_many_failures(const std::string& client);
  void note_failure(const std::string& client);
  bool revoked(const Principal& who);
  void sync_revocations();
  void revoke(const runtime::Revocation& revocation);

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

  std::mutex auth_failures_mutex_;
  std::unordered_map<std::string, std::deque<int64_t>> auth_failures_;  // client -> failure times (last minute)
  std::atomic<bool> any_auth_failures_{false};  // no lock on the path of good credentials until one fails

  struct Failures {
    std::deque<int64_t> at;
    int64_t locked_until_ms = 0;
    int in_flight = 0;  // password checks under way
  };
  std::mutex logins_mutex_;
  std::unordered_map<std::string, Failures> failures_;  // "user\nclient"

  std::mutex hashing_mutex_;
  std::condition_variable hashing_cv_;
  int hashing_ = 0;

  std::shared_mutex revoked_mutex_;
  std::unordered_map<std::string, int64_t> revoked_sessions_;  // session -> when its tokens have all expired
  std::unordered_map<std::string, int64_t> user_revoked_at_;   // user -> tokens issued before this are void
  int64_t revocations_synced_ms_ = 0;
  int64_t revocations_seen_ms_ = 0;
};

}  // namespace hub::gateway
