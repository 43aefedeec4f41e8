#include "gateway/security.hpp"

#include "runtime/clock.hpp"
#include "runtime/store/store.hpp"

#include <jwt.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <sodium.h>

#include <cmath>
#include <cstdlib>
#include <stdexcept>

namespace hub::gateway {
namespace {

constexpr const char* kIssuer = "ai-orchestrator-hub";
constexpr const char* kAudience = "ai-orchestrator-hub-api";

std::string sha256_hex(const std::string& s) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(s.data(), s.size(), digest, &len, EVP_sha256(), nullptr);
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < len; ++i) out += {hex[digest[i] >> 4], hex[digest[i] & 15]};
  return out;
}

std::string random_token(size_t bytes) {
  std::string raw(bytes, '\0');
  randombytes_buf(raw.data(), raw.size());
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned char c : raw) out += {hex[c >> 4], hex[c & 15]};
  return out;
}

bool constant_time_equal(const std::string& a, const std::string& b) {
  // Compare digests so that neither content nor length leaks through timing.
  auto da = sha256_hex(a), db = sha256_hex(b);
  return CRYPTO_memcmp(da.data(), db.data(), da.size()) == 0;
}

ApiError unauthorized(const std::string& message) { return {401, "unauthorized", message, {}, 0}; }

}  // namespace

bool is_role(const std::string& role) {
  return role == "admin" || role == "operator" || role == "viewer" || role == "agent";
}

bool role_allows(const std::string& role, Permission p) {
  if (role == "admin") return true;
  switch (p) {
    case Permission::authenticated:
    case Permission::read: return is_role(role);
    case Permission::submit: return role == "operator" || role == "agent";
    case Permission::manage_tasks:
    case Permission::manage_agents: return role == "operator";
    case Permission::admin: return false;
  }
  return false;
}

std::string hash_password(const std::string& password) {
  if (sodium_init() < 0) throw std::runtime_error("libsodium failed to initialize");
  char out[crypto_pwhash_STRBYTES];
  if (crypto_pwhash_str(out, password.c_str(), password.size(), crypto_pwhash_OPSLIMIT_INTERACTIVE,
                        crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0)
    throw std::runtime_error("out of memory while hashing the password");
  return out;
}

bool verify_password(const std::string& hash, const std::string& password) {
  if (sodium_init() < 0) return false;
  return crypto_pwhash_str_verify(hash.c_str(), password.c_str(), password.size()) == 0;
}

Security::Security(const config::Config& config) : config_(config) {
  if (sodium_init() < 0) throw std::runtime_error("libsodium failed to initialize");
  api_keys_ = config.security.api_keys;
  open_ = api_keys_.empty() && config.security.jwt_secret.empty();
  per_minute_ = config.security.rate_limit_requests_per_minute;
}

std::string Security::issue_access_token(const std::string& username, const std::string& role, int64_t ttl_s,
                                         const std::string& session, std::string* token_id) const {
  jwt_t* jwt = nullptr;
  jwt_new(&jwt);
  auto now_ms = runtime::now_ms();
  auto now_s = now_ms / 1000;
  auto jti = runtime::new_uuid();
  jwt_add_grant(jwt, "iss", kIssuer);
  jwt_add_grant(jwt, "aud", kAudience);
  jwt_add_grant(jwt, "sub", username.c_str());
  jwt_add_grant(jwt, "role", role.c_str());
  jwt_add_grant(jwt, "jti", jti.c_str());
  jwt_add_grant(jwt, "sid", (session.empty() ? jti : session).c_str());
  jwt_add_grant(jwt, "typ", "access");
  jwt_add_grant_int(jwt, "iat", now_s);
  jwt_add_grant_int(jwt, "iat_ms", now_ms);
  jwt_add_grant_int(jwt, "exp", now_s + ttl_s);
  const auto& secret = config_.security.jwt_secret;
  jwt_set_alg(jwt, JWT_ALG_HS256, reinterpret_cast<const unsigned char*>(secret.data()), int(secret.size()));
  char* encoded = jwt_encode_str(jwt);
  std::string token = encoded ? encoded : "";
  std::free(encoded);
  jwt_free(jwt);
  if (token_id) *token_id = jti;
  return token;
}

bool Security::too_many_failures(const std::string& client) {
  if (!any_auth_failures_.load(std::memory_order_relaxed)) return false;
  std::lock_guard<std::mutex> lock(auth_failures_mutex_);
  auto it = auth_failures_.find(client);
  if (it == auth_failures_.end()) return false;
  auto now = runtime::now_ms();
  while (!it->second.empty() && now - it->second.front() >= 60000) it->second.pop_front();
  return int(it->second.size()) >= config_.security.auth_failures_per_minute;
}

void Security::note_failure(const std::string& client) {
  std::lock_guard<std::mutex> lock(auth_failures_mutex_);
  auto now = runtime::now_ms();
  if (auth_failures_.size() > 100000)  // bounded: forget the clients whose minute has passed
    std::erase_if(auth_failures_, [&](const auto& kv) { return kv.second.empty() || now - kv.second.back() >= 60000; });
  auto& times = auth_failures_[client];
  any_auth_failures_.store(true, std::memory_order_relaxed);
  times.push_back(now);
  while (int(times.size()) > config_.security.auth_failures_per_minute) times.pop_front();
}

std::variant<Principal, ApiError> Security::authenticate(const std::string& api_key, const std::string& authorization,
                                                         const std::string& client) {
  if ((!api_key.empty() || !authorization.empty()) && too_many_failures(client))
    return ApiError{429, "rate_limited",
                    "too many failed authentications from this address (more than " +
                        std::to_string(config_.security.auth_failures_per_minute) + " a minute); try again later",
                    {}, 60};
  auto refuse = [&](const std::string& message) -> std::variant<Principal, ApiError> {
    note_failure(client);
    return unauthorized(message);
  };
  if (!api_key.empty()) {
    for (const auto& key : api_keys_)
      if (constant_time_equal(key, api_key)) return Principal{"api-key:" + sha256_hex(key).substr(0, 8), "admin", "api_key", {}, 0, {}, 0};
    return refuse("the X-API-Key is not valid");
  }
  const std::string bearer = "Bearer ";
  if (authorization.rfind(bearer, 0) == 0) {
    const auto& secret = config_.security.jwt_secret;
    if (secret.empty()) return refuse("bearer tokens are not accepted: no JWT secret is configured");
    jwt_t* jwt = nullptr;
    auto token = authorization.substr(bearer.size());
    if (jwt_decode(&jwt, token.c_str(), reinterpret_cast<const unsigned char*>(secret.data()), int(secret.size())) != 0 || !jwt)
      return refuse("the bearer token is not valid (bad signature or format)");
    auto grant = [&](const char* name) {
      const char* v = jwt_get_grant(jwt, name);
      return std::string(v ? v : "");
    };
    Principal p{grant("sub"), grant("role"), "token", grant("jti"), 0, grant("sid"), 0};
    long exp = jwt_get_grant_int(jwt, "exp");
    long iat = jwt_get_grant_int(jwt, "iat");
    long iat_ms = jwt_get_grant_int(jwt, "iat_ms");
    bool ok_alg = jwt_get_alg(jwt) == JWT_ALG_HS256;
    std::string iss = grant("iss"), aud = grant("aud"), typ = grant("typ");
    jwt_free(jwt);
    if (!ok_alg) return refuse("the bearer token must be signed with HS256");
    if (iss != kIssuer || aud != kAudience) return refuse("the bearer token was not issued for this API (iss/aud)");
    if (typ != "access") return refuse("not an access token");
    if (exp <= 0 || exp * 1000 <= runtime::now_ms()) return refuse("the bearer token has expired");
    if (p.name.empty() || !is_role(p.role)) return refuse("the bearer token carries no valid user or role");
    p.token_expires_ms = int64_t(exp) * 1000;
    p.token_issued_ms = iat_ms > 0 ? int64_t(iat_ms) : int64_t(iat) * 1000;
    if (p.session.empty()) p.session = p.token_id;
    if (revoked(p)) return refuse("the bearer token was revoked (its session was logged out or its user's sessions were revoked)");
    return p;
  }
  if (!authorization.empty()) return refuse("unsupported Authorization scheme (use Bearer or X-API-Key)");
  if (open_) return Principal{"anonymous", "admin", "open", {}, 0, {}, 0};
  return unauthorized("credentials required: send X-API-Key or Authorization: Bearer <token>");
}

bool Security::still_valid(const Principal& who) {
  if (who.via != "token") return true;
  return who.token_expires_ms > runtime::now_ms() && !revoked(who);
}

void Security::sync_revocations() {
  if (!store_) return;
  auto now = runtime::now_ms();
  {
    std::shared_lock<std::shared_mutex> lock(revoked_mutex_);
    if (now - revocations_synced_ms_ < 1000) return;
  }
  std::unique_lock<std::shared_mutex> lock(revoked_mutex_);
  if (now - revocations_synced_ms_ < 1000) return;
  revocations_synced_ms_ = now;
  std::vector<runtime::Revocation> rows;
  try {
    rows = store_->revocations_since(revocations_seen_ms_);
  } catch (const std::exception&) {
    return;  // the database is away: what is known stays in force, news comes at the next sync
  }
  for (const auto& r : rows) {
    if (r.kind == "session") revoked_sessions_[r.subject] = r.expires_at_ms;
    else if (r.kind == "user") user_revoked_at_[r.subject] = std::max(user_revoked_at_[r.subject], r.at_ms);
    revocations_seen_ms_ = std::max(revocations_seen_ms_, r.at_ms);
  }
  std::erase_if(revoked_sessions_, [&](const auto& kv) { return kv.second < now; });
}

bool Security::revoked(const Principal& who) {
  sync_revocations();
  std::shared_lock<std::shared_mutex> lock(revoked_mutex_);
  if (revoked_sessions_.count(who.session)) return true;
  auto it = user_revoked_at_.find(who.name);
  return it != user_revoked_at_.end() && who.token_issued_ms <= it->second;
}

void Security::revoke(const runtime::Revocation& r) {
  {
    std::unique_lock<std::shared_mutex> lock(revoked_mutex_);
    if (r.kind == "session") revoked_sessions_[r.subject] = r.expires_at_ms;
    else user_revoked_at_[r.subject] = std::max(user_revoked_at_[r.subject], r.at_ms);
  }
  if (store_) store_->put_revocation(r);
}

std::variant<Session, ApiError> Security::new_session(const std::string& username, const std::string& role, std::string session) {
  if (session.empty()) session = runtime::new_uuid();
  Session s;
  s.username = username;
  s.role = role;
  s.expires_in_s = config_.security.access_token_ttl_seconds;
  s.access_token = issue_access_token(username, role, s.expires_in_s, session);
  s.refresh_token = random_token(32);
  auto expires = runtime::now_ms() + int64_t(config_.security.refresh_token_ttl_seconds) * 1000;
  if (auto err = store_->put_refresh_token(sha256_hex(s.refresh_token), username, session, expires))
    return ApiError::unavailable("the session could not be stored: " + err->message, 2);
  return s;
}

Security::LoginResult Security::login(const std::string& username, const std::string& password, const std::string& client) {
  LoginResult result;
  if (config_.security.jwt_secret.empty()) {
    result.outcome = ApiError{409, "login_disabled", "login needs a JWT secret ([security] jwt_secret or JWT_SECRET)", {}, 0};
    return result;
  }
  const auto key = username + "\n" + client;
  const int max_failures = config_.security.login_max_failures;
  const int64_t window = int64_t(config_.security.login_lockout_seconds) * 1000;
  {
    std::lock_guard<std::mutex> lock(logins_mutex_);
    auto now = runtime::now_ms();
    if (failures_.size() > 100000)
      std::erase_if(failures_, [&](const auto& kv) {
        return kv.second.in_flight == 0 && kv.second.locked_until_ms <= now && (kv.second.at.empty() || now - kv.second.at.back() > window);
      });
    auto& f = failures_[key];
    while (!f.at.empty() && now - f.at.front() > window) f.at.pop_front();
    if (f.locked_until_ms > now) {
      int wait = int((f.locked_until_ms - now + 999) / 1000);
      result.outcome = ApiError{429, "locked_out",
                                "too many failed logins for this user from this address; try again in " + std::to_string(wait) + " s",
                                {}, wait};
      return result;
    }
    // Attempts under way count as failures until they are known not to be: parallel
    // guesses get no more tries than sequential ones.
    if (int(f.at.size()) + f.in_flight >= max_failures) {
      result.outcome = ApiError{429, "locked_out", "too many login attempts for this user from this address at once; try again later", {}, 5};
      return result;
    }
    ++f.in_flight;
  }
  bool ok = false;
  bool hashed = false;
  std::optional<runtime::UserRecord> user;
  {
    std::unique_lock<std::mutex> lock(hashing_mutex_);
    hashed = hashing_cv_.wait_for(lock, std::chrono::seconds(10), [&] { return hashing_ < config_.security.max_concurrent_logins; });
    if (hashed) ++hashing_;
  }
  if (hashed) {
    try {
      user = store_->user(username);
      // Verify against a fixed hash when the user is unknown, so both cases take as long.
      static const std::string dummy = hash_password("no-such-user-dummy-password");
      ok = verify_password(user ? user->password_hash : dummy, password) && user.has_value();
    } catch (...) {
      std::lock_guard<std::mutex> lock(hashing_mutex_);
      --hashing_;
      hashing_cv_.notify_one();
      std::lock_guard<std::mutex> guard(logins_mutex_);
      --failures_[key].in_flight;
      throw;
    }
    std::lock_guard<std::mutex> lock(hashing_mutex_);
    --hashing_;
    hashing_cv_.notify_one();
  }
  {
    std::lock_guard<std::mutex> lock(logins_mutex_);
    auto& f = failures_[key];
    --f.in_flight;
    if (!hashed) {
      result.outcome = ApiError{503, "busy", "too many logins are being checked right now; try again in a moment", {}, 1};
      return result;
    }
    if (!ok) {
      auto now = runtime::now_ms();
      f.at.push_back(now);
      if (int(f.at.size()) >= max_failures) {
        f.locked_until_ms = now + window;
        f.at.clear();
        result.locked_now = true;
      }
    } else if (f.in_flight == 0) {
      failures_.erase(key);
    } else {
      f.at.clear();
    }
  }
  if (!ok) {
    note_failure(client);
    result.outcome = unauthorized("unknown user or wrong password");
    return result;
  }
  result.outcome = new_session(user->username, user->role, {});
  return result;
}

Security::RefreshResult Security::refresh(const std::string& refresh_token) {
  RefreshResult result;
  auto now = runtime::now_ms();
  auto use = store_->consume_refresh_token(sha256_hex(refresh_token), now);
  result.username = use.username;
  using Outcome = runtime::RefreshUse::Outcome;
  if (use.outcome == Outcome::replayed) {
    // Whoever holds the copy may also hold access tokens of this user: void them all.
    result.replayed = true;
    auto keep = int64_t(std::max(config_.security.access_token_ttl_seconds, config_.security.refresh_token_ttl_seconds)) * 1000;
    revoke({"user", use.username, now, now + keep});
    result.outcome = unauthorized("this refresh token was already used; every session of its user is revoked");
    return result;
  }
  if (use.outcome != Outcome::valid) {
    result.outcome = unauthorized("the refresh token is not valid or has expired");
    return result;
  }
  auto user = store_->user(use.username);
  if (!user) {
    result.outcome = unauthorized("the user no longer exists");
    return result;
  }
  result.outcome = new_session(user->username, user->role, use.session);
  return result;
}

void Security::logout(const Principal& who, const std::string& refresh_token) {
  if (!refresh_token.empty() && store_) store_->revoke_refresh_token(sha256_hex(refresh_token));
  if (who.via != "token" || who.session.empty()) return;
  auto now = runtime::now_ms();
  // The session's access tokens live at most access_token_ttl_seconds past now.
  auto until = std::max(who.token_expires_ms, now + int64_t(config_.security.access_token_ttl_seconds) * 1000);
  revoke({"session", who.session, now, until});
}

Quota Security::take(const std::string& key) {
  // Sliding window: the previous minute's count, weighted by how much of it still
  // overlaps the last 60 s, plus this minute's count must stay under the limit.
  constexpr int64_t kWindowMs = 60000;
  Quota q;
  q.limit = per_minute_;
  auto now = runtime::now_ms();
  std::lock_guard<std::mutex> lock(buckets_mutex_);
  if (buckets_.size() > 100000) buckets_.clear();  // bounded; a forgotten window only forgives
  auto [it, fresh] = buckets_.try_emplace(key, Window{now, 0, 0});
  auto& w = it->second;
  auto elapsed = now - w.start_ms;
  if (elapsed >= kWindowMs) {
    auto windows = elapsed / kWindowMs;
    w.previous = windows == 1 ? w.current : 0;
    w.current = 0;
    w.start_ms += windows * kWindowMs;
    elapsed = now - w.start_ms;
  }
  double overlap = 1.0 - double(elapsed) / double(kWindowMs);
  double used = w.previous * overlap + w.current;
  q.reset_s = int((kWindowMs - elapsed + 999) / 1000);
  if (used + 1 <= double(per_minute_)) {
    w.current += 1;
    q.allowed = true;
    q.remaining = std::max(0, int(double(per_minute_) - used - 1));
    return q;
  }
  q.allowed = false;
  q.remaining = 0;
  // When will previous * overlap(t) + current drop to limit - 1?
  double wait_ms = double(kWindowMs - elapsed);
  if (w.current + 1 <= double(per_minute_) && w.previous > 0)
    wait_ms = std::min(wait_ms, (1.0 - (double(per_minute_) - 1 - w.current) / w.previous) * kWindowMs - double(elapsed));
  q.retry_after_s = std::max(1, int(std::ceil(wait_ms / 1000.0)));
  return q;
}

}  // namespace hub::gateway
