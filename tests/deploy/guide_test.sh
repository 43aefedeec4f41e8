#!/usr/bin/env bash
# What an operator following the guide meets on day one (issue #18): finding and stopping the
# process (the pid file: `pgrep ai-orchestrator-hub` cannot match, Linux cuts process names to
# 15 characters), one node per data directory, logs on stdout and in the file, secrets never
# in a log line, placeholders refused, and --check telling which environment it checked.
#   tests/deploy/guide_test.sh BUILT_BINARY
set -u
bin=$(readlink -f "${1:?usage: guide_test.sh BUILT_BINARY}")
t=$(mktemp -d); pids=()
trap 'for p in "${pids[@]:-}"; do kill -KILL "$p" 2>/dev/null; done; rm -rf "$t"' EXIT
failed=0
check() { local name=$1; shift; if out=$("$@" 2>&1); then echo "  ok    $name"; else echo "  FAIL  $name — $(tail -c 400 <<<"$out")"; failed=$((failed + 1)); fi; }
port() { while :; do p=$(( (RANDOM % 12000) + 20000 )); (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }; done; }
ready() { for _ in $(seq 1 100); do curl -fs -o /dev/null "http://127.0.0.1:$1/readyz" && return 0; sleep 0.1; done; return 1; }

echo "guide: the pid file"
p=$(port)
( cd "$t" && exec env HIVE_SERVER__HOST=127.0.0.1 HIVE_SERVER__PORT="$p" HIVE_LOGGING__FILE="$t/app.log" "$bin" >"$t/stdout.log" 2>&1 ) & pids+=($!)
node=${pids[-1]}
ready "$p"
check "the node writes its pid to data/ai-orchestrator-hub.pid" bash -c "[ \"\$(cat '$t/data/ai-orchestrator-hub.pid')\" = '$node' ]"
check "\`ai-orchestrator-hub config get server.pid_file\` names it (for scripts)" \
  bash -c "cd '$t' && [ \"\$('$bin' config get server.pid_file)\" = './data/ai-orchestrator-hub.pid' ]"
p2=$(port)
( cd "$t" && exec env HIVE_SERVER__HOST=127.0.0.1 HIVE_SERVER__PORT="$p2" "$bin" >"$t/second.log" 2>&1 ); code=$?
check "a second node on the same data directory is refused, naming the first (exit $code)" \
  bash -c "[ $code != 0 ] && grep -q 'another node (pid $node)' '$t/second.log'"

echo "guide: logs where an operator looks"
check "a log line goes to stdout (the journal under systemd)" grep -q 'ready in' "$t/stdout.log"
check "and the same line to [logging] file" grep -q 'ready in' "$t/app.log"

echo "guide: kill -TERM \$(cat the pid file) drains and exits 0"
kill -TERM "$(cat "$t/data/ai-orchestrator-hub.pid")"; wait "$node"; code=$?
check "exit 0 after SIGTERM through the pid file" test "$code" = 0
check "the pid file is gone after a clean exit" test ! -e "$t/data/ai-orchestrator-hub.pid"

echo "guide: secrets and placeholders"
mkdir -p "$t/s"
( cd "$t/s" && exec env HIVE_SERVER__HOST=127.0.0.1 HIVE_SERVER__PORT="$(port)" \
    DATABASE_URL='postgresql://hub:s3cr3t-pw@127.0.0.1:1/hive' HIVE_DATABASE__CONNECTION_TIMEOUT_SECONDS=1 "$bin" >"$t/s/node.log" 2>&1 )
check "a start with a PostgreSQL URL never logs its password" bash -c "! grep -q 's3cr3t-pw' '$t/s/node.log' && grep -q 'not reachable' '$t/s/node.log'"
check "--check never prints it either" \
  bash -c "cd '$t/s' && DATABASE_URL='postgresql://hub:s3cr3t-pw@127.0.0.1:1/hive' HIVE_DATABASE__CONNECTION_TIMEOUT_SECONDS=1 '$bin' --check 2>&1 | { ! grep -q s3cr3t-pw; }"
check "the guide's API_KEY placeholder is refused" \
  bash -c "cd '$t/s' && ! API_KEY=your-api-key-here '$bin' --check >'$t/s/key.out' 2>&1 && grep -q placeholder '$t/s/key.out' && ! grep -q your-api-key-here '$t/s/key.out'"
check "the placeholder of deploy/k8s/secret.yaml is refused" \
  bash -c "cd '$t/s' && ! HIVE_ENV=production JWT_SECRET=replace-with-32-or-more-random-bytes-before-use '$bin' --check >/dev/null 2>&1"

echo "guide: --check agrees with the start"
check "--check says which environment it checked, and what production would refuse" \
  bash -c "cd '$t/s' && env -u HIVE_ENV -u JWT_SECRET '$bin' --check >'$t/s/check.out' 2>&1; grep -q 'environment checked: development' '$t/s/check.out' &&
           grep -q 'in production this would be refused: .*jwt_secret' '$t/s/check.out'"
check "under HIVE_ENV=production the same --check fails" bash -c "cd '$t/s' && ! HIVE_ENV=production '$bin' --check >/dev/null 2>&1"

[ "$failed" -eq 0 ] && echo "guide: all passed" || echo "guide: $failed failed"
exit "$failed"
