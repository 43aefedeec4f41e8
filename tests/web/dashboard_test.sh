#!/usr/bin/env bash
# The web dashboard end to end: a node with an API key, and tests/web/dashboard.cjs driving
# Debian's chromium (playwright-core from gateway/web's lock file) against it.
#   tests/web/dashboard_test.sh BUILT_BINARY ARTEFACT_DIR
set -u
bin=$(realpath "${1:?usage: dashboard_test.sh BUILT_BINARY ARTEFACT_DIR}")
artefacts=${2:?usage: dashboard_test.sh BUILT_BINARY ARTEFACT_DIR}
here=$(cd "$(dirname "$0")" && pwd)
command -v chromium >/dev/null || { echo "dashboard_test: needs chromium (scripts/setup.sh installs it)"; exit 1; }
[ -d "$here/../../gateway/web/node_modules/playwright-core" ] || { echo "dashboard_test: run npm ci in gateway/web"; exit 1; }
t=$(mktemp -d); pid=""
trap '[ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null; rm -rf "$t"' EXIT
while :; do p=$(( (RANDOM % 12000) + 20000 )); (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || break; done
rm -rf "$artefacts"; mkdir -p "$artefacts"
( cd "$t" && exec env HIVE_SERVER__HOST=127.0.0.1 HIVE_SERVER__PORT="$p" DATABASE_URL="sqlite://$t/hive.db" \
    API_KEY=dashboard-key-1 "$bin" >"$t/node.log" 2>&1 ) & pid=$!
for _ in $(seq 1 200); do curl -fs -o /dev/null "http://127.0.0.1:$p/readyz" && break; sleep 0.05; done
timeout 180 node "$here/dashboard.cjs" "http://127.0.0.1:$p" dashboard-key-1 "$artefacts"
rc=$?
[ $rc -eq 0 ] || tail -20 "$t/node.log"
exit $rc
