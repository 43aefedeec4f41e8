#!/usr/bin/env bash
# The Debian package (issue #18): scripts/package.sh builds it; apt-get installs it on this
# bookworm host (its Depends, computed by dpkg-shlibdeps, resolved by apt); the node starts
# from it as the guide runs it (the ai-orchestrator user, /opt/ai-orchestrator-hub, settings,
# HIVE_ENV=production, the JWT secret postinst made); then it is purged again.
#   tests/deploy/package_test.sh      (exit 77: skipped — not root, no apt, or already installed here)
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
[ "$(id -u)" = 0 ] || { echo "package_test: needs root to install a package (skipped)"; exit 77; }
command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null || { echo "package_test: no apt/dpkg here (skipped)"; exit 77; }
if dpkg -s ai-orchestrator-hub >/dev/null 2>&1 || [ -e /opt/ai-orchestrator-hub ] || getent passwd ai-orchestrator >/dev/null; then
  echo "package_test: ai-orchestrator-hub is installed on this machine already: not touching it (skipped)"; exit 77
fi
t=$(mktemp -d); pid=""
cleanup() {
  [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
  dpkg --purge ai-orchestrator-hub >/dev/null 2>&1
  rm -rf /var/lib/ai-orchestrator-hub /var/log/ai-orchestrator-hub "$t"
  getent passwd ai-orchestrator >/dev/null && deluser --system ai-orchestrator >/dev/null 2>&1
  getent group ai-orchestrator >/dev/null && delgroup --system ai-orchestrator >/dev/null 2>&1
}
trap cleanup EXIT
failed=0
check() { local name=$1; shift; if out=$("$@" 2>&1); then echo "  ok    $name"; else echo "  FAIL  $name — $(tail -c 500 <<<"$out")"; failed=$((failed + 1)); fi; }

cd "$root"
rm -f dist/ai-orchestrator-hub_*.deb
check "scripts/package.sh builds the .deb" bash -c "scripts/package.sh --no-build >'$t/package.out' 2>&1 || { cat '$t/package.out'; exit 1; }"
deb=$(ls dist/ai-orchestrator-hub_*_"$(dpkg --print-architecture)".deb 2>/dev/null | head -1)
[ -n "$deb" ] || { echo "package_test: no .deb built"; cat "$t/package.out"; exit 1; }
depends=$(dpkg-deb -f "$deb" Depends)
check "Depends names the run-time libraries (computed: $(tr -d '\n' <<<"$depends" | cut -c1-80)...)" \
  bash -c "for lib in libcaf-core0.17 libcaf-io0.17 libcaf-openssl0.17 libspdlog libopenblas0 libpq5 libprotobuf32 libjemalloc2 libsqlite3-0 libsodium23 libjwt0 libcpp-httplib0.11; do
             grep -q \"\$lib\" <<<'$depends' || { echo \"missing \$lib\"; exit 1; }; done; ! grep -qi cublas <<<'$depends'"
check "apt-get installs it (dependencies resolved by apt)" bash -c "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq '$root/$deb' >'$t/apt.out' 2>&1"
check "postinst made the ai-orchestrator user" getent passwd ai-orchestrator
check "files where the guide puts them" bash -c "[ -x /opt/ai-orchestrator-hub/ai-orchestrator-hub ] && [ -x /opt/ai-orchestrator-hub/hivectl ] &&
  [ -f /etc/ai-orchestrator-hub/settings/production.toml ] && [ \"\$(readlink /opt/ai-orchestrator-hub/settings)\" = /etc/ai-orchestrator-hub/settings ] &&
  [ -f /lib/systemd/system/ai-orchestrator-hub.service ] && [ -f /etc/logrotate.d/ai-orchestrator-hub ] && [ -x /usr/bin/hivectl ]"
check "settings and the logrotate policy are conffiles (an operator's edits survive upgrades)" \
  bash -c "dpkg-query -W -f='\${Conffiles}' ai-orchestrator-hub | grep -q /etc/ai-orchestrator-hub/settings/production.toml &&
           dpkg-query -W -f='\${Conffiles}' ai-orchestrator-hub | grep -q /etc/logrotate.d/ai-orchestrator-hub"
check "postinst wrote a random JWT secret, readable by the service only" \
  bash -c "grep -Eq '^JWT_SECRET=.{40,}' /etc/ai-orchestrator-hub/env && [ \"\$(stat -c %a:%G /etc/ai-orchestrator-hub/env)\" = 640:ai-orchestrator ]"
check "the installed binary runs (--version)" /opt/ai-orchestrator-hub/ai-orchestrator-hub --version

while :; do p=$(( (RANDOM % 12000) + 20000 )); (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || break; done
secret=$(sed -n 's/^JWT_SECRET=//p' /etc/ai-orchestrator-hub/env)
check "the node's --check passes as the service's user, in production" \
  bash -c "cd /opt/ai-orchestrator-hub && runuser -u ai-orchestrator -- env HIVE_ENV=production JWT_SECRET='$secret' HIVE_SERVER__PORT=$p \
             ./ai-orchestrator-hub --config settings/production.toml --check"
( cd /opt/ai-orchestrator-hub && exec runuser -u ai-orchestrator -- env HIVE_ENV=production JWT_SECRET="$secret" \
    HIVE_SERVER__HOST=127.0.0.1 HIVE_SERVER__PORT="$p" ./ai-orchestrator-hub --config settings/production.toml >"$t/node.out" 2>&1 ) & pid=$!
for _ in $(seq 1 150); do curl -fs -o /dev/null "http://127.0.0.1:$p/readyz" && break; sleep 0.1; done
check "the node from the package serves /health" bash -c "curl -s 'http://127.0.0.1:$p/health' | jq -e '.success'"
check "its data goes to /var/lib/ai-orchestrator-hub/data, private to the service" \
  bash -c "[ \"\$(stat -c %U:%a /var/lib/ai-orchestrator-hub/data/hive.db)\" = ai-orchestrator:600 ]"
check "its log goes to /var/log/ai-orchestrator-hub/app.log and to stdout" \
  bash -c "grep -q 'ready in' /var/log/ai-orchestrator-hub/app.log && grep -q 'ready in' '$t/node.out'"
kill -TERM "$(cat /var/lib/ai-orchestrator-hub/data/ai-orchestrator-hub.pid)"; wait "$pid"; code=$?; pid=""
check "kill -TERM through the pid file: exit 0" test "$code" = 0
check "dpkg --purge removes it (the data stays until removed by hand)" \
  bash -c "dpkg --purge ai-orchestrator-hub >/dev/null && [ ! -e /opt/ai-orchestrator-hub/ai-orchestrator-hub ] && [ -d /var/lib/ai-orchestrator-hub ]"

[ "$failed" -eq 0 ] && echo "package: all passed" || echo "package: $failed failed"
exit "$failed"
