#define BOOST_TEST_MODULE security
#include <boost/test/unit_test.hpp>

#include "gateway/security.hpp"

using namespace hub::gateway;

namespace {
hub::config::Config config_with(int per_minute, std::vector<std::string> keys = {}, std::string secret = "") {
  hub::config::Config c;
  c.security.rate_limit_requests_per_minute = per_minute;
  c.security.api_keys = std::move(keys);
  c.security.jwt_secret = std::move(secret);
  return c;
}
}  // namespace

BOOST_AUTO_TEST_CASE(roles_grant_what_the_table_says) {
  BOOST_TEST(role_allows("viewer", Permission::read));
  BOOST_TEST(!role_allows("viewer", Permission::submit));
  BOOST_TEST(role_allows("agent", Permission::submit));
  BOOST_TEST(!role_allows("agent", Permission::manage_agents));
  BOOST_TEST(role_allows("operator", Permission::manage_tasks));
  BOOST_TEST(role_allows("operator", Permission::manage_agents));
  BOOST_TEST(!role_allows("operator", Permission::admin));
  BOOST_TEST(role_allows("admin", Permission::admin));
  BOOST_TEST(!role_allows("root", Permission::read));
}

BOOST_AUTO_TEST_CASE(passwords_are_salted_argon2id_hashes) {
  auto a = hash_password("correct horse");
  auto b = hash_password("correct horse");
  BOOST_TEST(a != b);  // salted
  BOOST_TEST(a.rfind("$argon2id$", 0) == 0);
  BOOST_TEST(verify_password(a, "correct horse"));
  BOOST_TEST(!verify_password(a, "correct horse!"));
}

BOOST_AUTO_TEST_CASE(the_rate_limit_holds_per_key_within_a_minute) {
  auto cfg = config_with(10);
  Security s(cfg);
  int allowed = 0;
  Quota last;
  for (int i = 0; i < 15; ++i) {
    last = s.take("alice");
    allowed += last.allowed;
  }
  BOOST_TEST(allowed == 10);
  BOOST_TEST(!last.allowed);
  BOOST_TEST(last.retry_after_s >= 1);
  BOOST_TEST(last.remaining == 0);
  BOOST_TEST(s.take("bob").allowed);  // another key has its own window
}

BOOST_AUTO_TEST_CASE(api_keys_and_tokens_authenticate_and_open_mode_is_explicit) {
  auto open_cfg = config_with(10);
  Security open(open_cfg);
  BOOST_TEST(open.open());
  BOOST_TEST(std::get<Principal>(open.authenticate("", "", "10.0.0.1")).via == "open");

  auto cfg = config_with(10, {"key-0123456789"}, "secret-0123456789-0123456789-0123456789");
  Security secured(cfg);
  BOOST_TEST(!secured.open());
  BOOST_TEST(std::get<ApiError>(secured.authenticate("", "", "10.0.0.1")).status == 401);
  BOOST_TEST(std::get<ApiError>(secured.authenticate("wrong-key-000", "", "10.0.0.1")).status == 401);
  BOOST_TEST(std::get<Principal>(secured.authenticate("key-0123456789", "", "10.0.0.1")).role == "admin");
  auto token = secured.issue_access_token("carol", "viewer", 60);
  auto who = std::get<Principal>(secured.authenticate("", "Bearer " + token, "10.0.0.1"));
  BOOST_TEST(who.name == "carol");
  BOOST_TEST(who.role == "viewer");
  BOOST_TEST(std::get<ApiError>(secured.authenticate("", "Bearer " + secured.issue_access_token("carol", "viewer", -5), "10.0.0.1")).status == 401);
  BOOST_TEST(std::get<ApiError>(secured.authenticate("", "Basic abc", "10.0.0.1")).status == 401);
}

BOOST_AUTO_TEST_CASE(failed_authentications_are_bounded_per_client_address) {
  auto cfg = config_with(1000, {"key-0123456789"}, "secret-0123456789-0123456789-0123456789");
  cfg.security.auth_failures_per_minute = 5;
  Security s(cfg);
  for (int i = 0; i < 5; ++i) BOOST_TEST(std::get<ApiError>(s.authenticate("wrong-key-000", "", "10.0.0.1")).status == 401);
  // The sixth bad key, and even the right one, from that address: 429 until the minute passes.
  BOOST_TEST(std::get<ApiError>(s.authenticate("wrong-key-000", "", "10.0.0.1")).status == 429);
  BOOST_TEST(std::get<ApiError>(s.authenticate("key-0123456789", "", "10.0.0.1")).code == "rate_limited");
  // Another address is not affected.
  BOOST_TEST(std::get<Principal>(s.authenticate("key-0123456789", "", "10.0.0.2")).role == "admin");
}

BOOST_AUTO_TEST_CASE(tokens_carry_their_session_and_issue_time) {
  auto cfg = config_with(1000, {}, "secret-0123456789-0123456789-0123456789");
  Security s(cfg);
  auto token = s.issue_access_token("dave", "operator", 60, "session-1");
  auto who = std::get<Principal>(s.authenticate("", "Bearer " + token, "10.0.0.1"));
  BOOST_TEST(who.session == "session-1");
  BOOST_TEST(who.token_issued_ms > 0);
  BOOST_TEST(s.still_valid(who));
  s.logout(who, "");
  BOOST_TEST(!s.still_valid(who));
  BOOST_TEST(std::get<ApiError>(s.authenticate("", "Bearer " + token, "10.0.0.1")).status == 401);
  // Another session of the same user is not affected.
  auto other = s.issue_access_token("dave", "operator", 60, "session-2");
  BOOST_TEST(std::get<Principal>(s.authenticate("", "Bearer " + other, "10.0.0.1")).name == "dave");
}
