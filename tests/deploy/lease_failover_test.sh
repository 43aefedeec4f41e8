#!/usr/bin/env bash
# Two nodes on one PostgreSQL database (run under tests/with_postgres.sh): node A takes tasks
# and is killed with -9 mid-work; once A's leases expire, node B claims A's unfinished tasks
# (FOR UPDATE SKIP LOCKED) and finishes every one of them.
#   tests/deploy/lease_failover_test.sh BUILT_BINARY
set -u
bin=${1:?usage: lease_failover_test.sh BUILT_BINARY}
[ -n "${HUB_TEST_PG_URL:-}" ] || { echo "lease_failover_test: run me under tests/with_postgres.sh"; exit 2; }
t=$(mktemp -d); pids=()
trap 'kill -KILL "${pids[@]}" 2>/dev/null; rm -rf "$t"' EXIT
port() { while :; do p=$(( (RANDOM % 12000) + 20000 )); (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }; done; }
start() { # NAME PORT
  mkdir -p "$t/$1"
  ( cd "$t/$1" && exec env HIVE_SERVER__HOST=127.0.0.1 HIVE_SERVER__PORT="$2" DATABASE_URL="$HUB_TEST_PG_URL" \
      HIVE_TASKS__LEASE_SECONDS=3 "$bin" >"$t/$1.log" 2>&1 ) & pids+=($!)
  for _ in $(seq 1 200); do curl -fs -o /dev/null "http://127.0.0.1:$2/readyz" && return 0; sleep 0.05; done
  echo "node $1 did not start"; cat "$t/$1.log"; exit 1
}
pa=$(port); start a "$pa"; a_pid=${pids[0]}
pb=$(port); start b "$pb"
ids=()
for i in $(seq 1 12); do
  ids+=("$(curl -s -XPOST -H 'Content-Type: application/json' -d "{\"description\":\"slow $i\",\"type\":\"sleep\",\"payload\":{\"ms\":1500}}" \
    "http://127.0.0.1:$pa/api/tasks" | jq -r .data.id)")
done
sleep 0.5
kill -KILL "$a_pid"
echo "  ..    node A killed with 12 tasks accepted; waiting for node B to claim them"
deadline=$((SECONDS + 40)); done_count=0
while [ $SECONDS -lt $deadline ]; do
  done_count=0
  for id in "${ids[@]}"; do
    [ "$(curl -s "http://127.0.0.1:$pb/api/tasks/$id" | jq -r .data.status)" = completed ] && done_count=$((done_count + 1))
  done
  [ "$done_count" = 12 ] && break
  sleep 1
done
claimed_by_b=$("$HUB_TEST_PG_BIN/psql" "$HUB_TEST_PG_URL" -Atc "SELECT count(*) FROM tasks WHERE node LIKE '%:$pb'")
echo "lease_failover: $done_count of 12 tasks completed after node A died; $claimed_by_b rows now owned by node B"
grep -q "claimed" "$t/b.log" && echo "  ok    node B logged the claim: $(grep claimed "$t/b.log" | head -1 | cut -c1-160)"
[ "$done_count" = 12 ]
