#!/usr/bin/env bash
# The node on PostgreSQL through what operators meet (issue #18): [database] max_connections is
# the most connections the node opens (the writer included), and /health recovers by itself
# within seconds when the database comes back, with nothing written in between.
#   tests/with_postgres.sh bash tests/deploy/pg_ops_test.sh BUILT_BINARY
set -u
bin=$(readlink -f "${1:?usage: pg_ops_test.sh BUILT_BINARY}")
: "${HUB_TEST_PG_URL:?run through tests/with_postgres.sh}"
t=$(mktemp -d); pid=""; locker=""
trap '[ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null; [ -n "$locker" ] && kill "$locker" 2>/dev/null; rm -rf "$t"' EXIT
failed=0
check() { local name=$1; shift; if out=$("$@" 2>&1); then echo "  ok    $name"; else echo "  FAIL  $name — $(tail -c 300 <<<"$out")"; failed=$((failed + 1)); fi; }
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
psql_q() { "$HUB_TEST_PG_BIN/psql" -qtA -h 127.0.0.1 -p "$HUB_TEST_PG_PORT" -U postgres hive_test -c "$1"; }
wait_for() { local secs=$1; shift; for _ in $(seq 1 $((secs * 10))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done; return 1; }

while :; do p=$(( (RANDOM % 12000) + 20000 )); (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || break; done
u="http://127.0.0.1:$p"
( cd "$t" && exec env HIVE_SERVER__HOST=127.0.0.1 HIVE_SERVER__PORT="$p" DATABASE_URL="$HUB_TEST_PG_URL" DATABASE_MAX_CONNECTIONS=2 \
    HIVE_DATABASE__CONNECTION_TIMEOUT_SECONDS=20 "$bin" >"$t/node.log" 2>&1 ) & pid=$!
wait_for 30 curl -fs "$u/readyz"
curl -s -XPOST "$u/api/tasks" -H 'Content-Type: application/json' -d '{"description":"one","type":"echo"}' >/dev/null

echo "pg_ops: DATABASE_MAX_CONNECTIONS=2 holds under load"
# A transaction holds the tasks table; eight readers pile up behind it.
( "$HUB_TEST_PG_BIN/psql" -q -h 127.0.0.1 -p "$HUB_TEST_PG_PORT" -U postgres hive_test \
    -c "BEGIN; LOCK TABLE tasks IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(4); COMMIT;" >/dev/null ) & locker=$!
for _ in $(seq 1 100); do
  [ "$(psql_q "SELECT count(*) FROM pg_locks WHERE relation = 'tasks'::regclass AND mode = 'AccessExclusiveLock' AND granted")" = 1 ] && break
  sleep 0.1
done
readers=()
for i in $(seq 1 8); do curl -s -o "$t/list$i" -w '%{http_code}\n' --max-time 30 "$u/api/tasks?limit=5" >>"$t/codes" & readers+=($!); done
most=0
for _ in $(seq 1 30); do
  n=$(psql_q "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'ai-orchestrator-hub'")
  [ "$n" -gt "$most" ] && most=$n
  sleep 0.1
done
check "at most 2 connections open to PostgreSQL while 8 requests wait (saw $most)" test "$most" -le 2
wait "$locker"; locker=""
wait "${readers[@]}"
check "the waiting requests were answered once the table was free (200, or 503 past the wait)" bash -c "! grep -Ev '^(200|503)$' '$t/codes'"
check "and most of them with 200" bash -c "[ \$(grep -c '^200$' '$t/codes') -ge 4 ]"

echo "pg_ops: /health recovers by itself after an outage"
as_pg "$HUB_TEST_PG_BIN/pg_ctl" -D "$HUB_TEST_PG_DATA" -m fast -w stop >/dev/null
curl -s -o /dev/null -XPOST "$u/api/tasks" -H 'Content-Type: application/json' -d '{"description":"during","type":"echo"}'
check "/health is 503 while the database is down" wait_for 20 bash -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' '$u/health')\" = 503 ]"
as_pg "$HUB_TEST_PG_BIN/pg_ctl" -D "$HUB_TEST_PG_DATA" -l "$HUB_TEST_PG_SOCKET_DIR/restart.log" -w \
  -o "-p $HUB_TEST_PG_PORT -k $HUB_TEST_PG_SOCKET_DIR -c listen_addresses=127.0.0.1" start >/dev/null
back=$(date +%s.%N)
ok=""
for _ in $(seq 1 150); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' "$u/health")" = 200 ] && { ok=$(awk -v a="$(date +%s.%N)" -v b="$back" 'BEGIN{printf "%.1f", a-b}'); break; }
  sleep 0.1
done
check "/health is 200 again within 10 s of the database's return, nothing written meanwhile (took ${ok:-more than 15} s)" \
  bash -c "[ -n '$ok' ] && awk -v d='$ok' 'BEGIN{exit !(d <= 10)}'"
echo "pg_ops: backup and restore of the node's PostgreSQL database"
root=$(cd "$(dirname "$0")/../.." && pwd)
export DATABASE_URL="$HUB_TEST_PG_URL" PATH="$HUB_TEST_PG_BIN:$PATH"
check "backup.sh takes the node's database from its environment, as the node does" \
  bash -c "'$root/scripts/backup.sh' --bin '$bin' --workdir '$t' --root '$t/bk' --settings '$root/config/settings' --logs '$t/none' >'$t/bk.out' 2>&1 &&
           grep -q '^Source: postgresql://' '$t'/bk/*/manifest.txt && grep -q '^Rows: tasks=' '$t'/bk/*/manifest.txt"
for i in 1 2 3; do curl -s -o /dev/null -XPOST "$u/api/tasks" -H 'Content-Type: application/json' -d '{"description":"after the backup","type":"echo"}'; done
kill -TERM "$pid"; wait "$pid"; pid=""
bk=$(ls -d "$t"/bk/*/ | head -1)
check "restore.sh replaces what the database holds and checks the rows against the manifest" \
  bash -c "'$root/scripts/restore.sh' '$bk' --bin '$bin' --workdir '$t' >'$t/rs.out' 2>&1 && grep -q 'as the manifest says' '$t/rs.out'"
check "the guide's psql < database.sql into the live database: exit 0, no ERROR" \
  bash -c "psql -h 127.0.0.1 -p $HUB_TEST_PG_PORT -U postgres hive_test <'${bk}database.sql' >'$t/psql.out' 2>&1 && ! grep -q ERROR '$t/psql.out'"
[ "$failed" -eq 0 ] && echo "pg_ops: all passed" || { echo "pg_ops: $failed failed"; tail -20 "$t/node.log"; }
exit "$failed"
