#!/usr/bin/env bash
# Installs (idempotently) every Debian package the build and the tests need; with --bench, also
# those that only scripts/bench.sh needs. Quick when everything is there already: apt-get runs
# only for what is missing.
#   scripts/setup.sh [--bench]
set -euo pipefail

BUILD_PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config git
  libcaf-dev libopenblas-dev libprotobuf-dev protobuf-compiler libpq-dev libsqlite3-dev libspdlog-dev
  libtoml11-dev libcpp-httplib-dev libboost-test-dev nlohmann-json3-dev libjwt-dev
  libcli11-dev libssl-dev libsodium-dev libncurses-dev libreadline-dev libjemalloc-dev
)
TEST_PACKAGES=(postgresql sqlite3 curl jq tmux iproute2 wrk procps logrotate systemd prometheus prometheus-alertmanager bc chromium python3 openssl)
# The peer benchmark (tests/bench/peer/): Celery 5 on Redis 7, for Debian's /usr/bin/python3.
BENCH_PACKAGES=(python3-celery python3-redis redis-server)

wanted=("${BUILD_PACKAGES[@]}" "${TEST_PACKAGES[@]}")
case "${1:-}" in
  "") ;;
  --bench) wanted+=("${BENCH_PACKAGES[@]}") ;;
  *) echo "usage: scripts/setup.sh [--bench]" >&2; exit 2 ;;
esac

missing=()
# npm fetches the dashboard's packages (gateway/web/package-lock.json); a Node.js from
# elsewhere that brings its own npm is fine.
command -v npm >/dev/null || missing+=(npm)
for p in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all packages present"
  exit 0
fi
echo "setup: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup: done"
