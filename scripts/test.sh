#!/usr/bin/env bash
# Sets up, builds, and runs every test suite with CTest: the Boost.Test suites, the
# end-to-end tests against the real binary and, when ../shared/acceptance is there, the
# operator acceptance scripts. Extra arguments go to ctest (e.g. -R config).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
cd build
ctest --output-on-failure --timeout 900 "$@"
