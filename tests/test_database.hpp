// The database a test case runs on: a fresh SQLite file in `dir`, or, when the suite runs
// under tests/with_postgres.sh (HUB_TEST_PG_URL set), a fresh database on that server.
#pragma once

#include "runtime/clock.hpp"

#include <boost/test/unit_test.hpp>

#include <cstdlib>
#include <filesystem>
#include <string>

namespace hub::test {

inline bool on_postgres() { return std::getenv("HUB_TEST_PG_URL") != nullptr; }

inline std::string fresh_database_url(const std::filesystem::path& dir) {
  if (!on_postgres()) return "sqlite://" + (dir / "hive.db").string();
  std::string name = "t" + runtime::new_uuid().substr(0, 8);
  std::string port = std::getenv("HUB_TEST_PG_PORT");
  std::string cmd = std::string(std::getenv("HUB_TEST_PG_BIN")) + "/createdb -h 127.0.0.1 -p " + port + " -U postgres " + name;
  BOOST_REQUIRE(std::system(cmd.c_str()) == 0);
  return "postgresql://postgres@127.0.0.1:" + port + "/" + name;
}

}  // namespace hub::test
