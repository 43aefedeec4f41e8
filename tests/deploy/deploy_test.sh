#!/usr/bin/env bash
# The deployment files as an operator installs them: the systemd unit passes
# `systemd-analyze verify` (pointed at the built binary), the logrotate policy passes
# `logrotate -d`, and the release tarball holds the binary and settings/ side by side.
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${1:?usage: deploy_test.sh BUILT_BINARY}
failed=0; passed=0
ok() { passed=$((passed + 1)); echo "  ok    $1"; }
bad() { failed=$((failed + 1)); echo "  FAIL  $1: $2"; }
t=$(mktemp -d); trap 'rm -rf "$t"' EXIT

if command -v systemd-analyze >/dev/null; then
  sed "s#/opt/ai-orchestrator-hub/ai-orchestrator-hub#$bin#" "$root/deploy/systemd/ai-orchestrator-hub.service" >"$t/ai-orchestrator-hub.service"
  if out=$(systemd-analyze verify "$t/ai-orchestrator-hub.service" 2>&1); then ok "systemd-analyze verify"; else bad "systemd-analyze verify" "$out"; fi
  for want in "User=ai-orchestrator" "WorkingDirectory=/opt/ai-orchestrator-hub" "--config settings/production.toml" \
              "Environment=HIVE_ENV=production" "LimitNOFILE=65536" "Restart=always" "RestartSec=5"; do
    grep -q -- "$want" "$root/deploy/systemd/ai-orchestrator-hub.service" && ok "unit has $want" || bad "unit has $want" missing
  done
fi
if command -v logrotate >/dev/null; then
  if out=$(logrotate -d -s "$t/state" "$root/deploy/logrotate/ai-orchestrator-hub" 2>&1); then ok "logrotate -d"; else bad "logrotate -d" "$out"; fi
fi
stage="$t/pkg"; mkdir -p "$stage/settings"
cp "$bin" "$stage/ai-orchestrator-hub"; cp "$root"/config/settings/*.toml "$stage/settings/"
( cd "$stage" && mkdir empty && cd empty && ../ai-orchestrator-hub --check >"$t/check.out" 2>&1 ) \
  && grep -q "$stage/settings/default.toml" "$t/check.out" && ok "an unpacked package finds settings/ beside the binary" \
  || bad "an unpacked package finds settings/ beside the binary" "$(cat "$t/check.out")"
echo
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
