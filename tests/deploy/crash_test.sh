#!/usr/bin/env bash
# Crash safety: `kill -9` the node at random moments 20 times while clients submit tasks;
# after each restart, every task that got a 201 is in the store. SQLite by default; on the
# PostgreSQL server of tests/with_postgres.sh when HUB_TEST_PG_URL is set.
#   tests/deploy/crash_test.sh BUILT_BINARY [KILLS]
set -u
bin=${1:?usage: crash_test.sh BUILT_BINARY [KILLS]}
kills=${2:-20}
t=$(mktemp -d); node=0; loaders=()
trap 'kill -KILL $node "${loaders[@]}" 2>/dev/null; rm -rf "$t"' EXIT
port() { while :; do p=$(( (RANDOM % 12000) + 20000 )); (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }; done; }
p=$(port)
db_env=()
[ -n "${HUB_TEST_PG_URL:-}" ] && db_env=(DATABASE_URL="$HUB_TEST_PG_URL")
backend=${HUB_TEST_PG_URL:+postgresql}; backend=${backend:-sqlite}
start() {
  ( cd "$t" && exec env HIVE_SERVER__HOST=127.0.0.1 HIVE_SERVER__PORT="$p" HIVE_PERFORMANCE__CPU_CORES=2 \
      "${db_env[@]}" "$bin" >>"$t/node.log" 2>&1 ) &
  node=$!
  for _ in $(seq 1 300); do curl -fs -o /dev/null "http://127.0.0.1:$p/readyz" && return 0; sleep 0.05; done
  echo "crash_test: the node did not become ready after a restart"; tail -20 "$t/node.log"; exit 1
}
# A client: submits tasks one by one; records the id of every 201 (and only those).
load() {
  local i=0 code
  while :; do
    i=$((i + 1))
    code=$(curl -s -o "$t/body.$1" -w '%{http_code}' -m 5 -XPOST -H 'Content-Type: application/json' \
      -d "{\"description\":\"crash $1-$i\",\"type\":\"sleep\",\"payload\":{\"ms\":$((RANDOM % 50))}}" \
      "http://127.0.0.1:$p/api/tasks" 2>/dev/null)
    [ "$code" = 201 ] && jq -r .data.id "$t/body.$1" >>"$t/accepted.$1"
  done
}
# How many of the ids in FILE are in the store (the node may be running: WAL / MVCC reads).
stored_of() {
  if [ "$backend" = sqlite ]; then
    printf 'CREATE TEMP TABLE a(id TEXT);\n.import %s a\nSELECT count(*) FROM a JOIN tasks USING (id);\n' "$1" \
      | sqlite3 "$t/data/hive.db" 2>&1 | tail -1
  else
    printf 'CREATE TEMP TABLE accepted_ids(id uuid);\n\\copy accepted_ids FROM %s\nSELECT count(*) FROM accepted_ids JOIN tasks USING (id);\n' \
      "$1" | "$HUB_TEST_PG_BIN/psql" "$HUB_TEST_PG_URL" -Atq 2>&1 | tail -1
  fi
}
start
for c in 1 2 3 4; do load "$c" & loaders+=($!); done
short=0
for k in $(seq 1 "$kills"); do
  sleep "0.$((RANDOM % 9 + 1))"
  kill -KILL "$node"; wait "$node" 2>/dev/null
  start
  # After each restart: every task that got a 201 so far is in the store.
  cat "$t"/accepted.* 2>/dev/null | sort -u >"$t/so_far"
  n=$(wc -l <"$t/so_far"); found=$(stored_of "$t/so_far")
  [ "$found" = "$n" ] || { short=$((short + 1)); echo "  FAIL  after kill $k: $found of $n accepted tasks in the store"; }
done
echo "  ..    after each of the $kills restarts every task that got a 201 so far was in the store ($short shortfalls)"
sleep 1
kill -KILL "${loaders[@]}" 2>/dev/null; wait "${loaders[@]}" 2>/dev/null
sleep 0.2
cat "$t"/accepted.* 2>/dev/null | sort -u >"$t/accepted"
accepted=$(wc -l <"$t/accepted")
kill -TERM "$node"; wait "$node" 2>/dev/null
stored=$(stored_of "$t/accepted")
if [ "$backend" = sqlite ]; then
  total=$(sqlite3 "$t/data/hive.db" "SELECT count(*) FROM tasks")
else
  total=$("$HUB_TEST_PG_BIN/psql" "$HUB_TEST_PG_URL" -Atqc "SELECT count(*) FROM tasks")
fi
echo "crash_test ($backend): $kills kill -9s; $accepted tasks got a 201; $stored of them are in the store ($total rows in all;"
echo "  the difference is requests in flight at a kill: stored, but their client saw the connection drop)"
[ "$accepted" -gt 0 ] && [ "$short" = 0 ] && [ "$stored" = "$accepted" ] && [ "$total" -ge "$accepted" ]
