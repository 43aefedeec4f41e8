#!/usr/bin/env bash
# The durable-store figures, each on a fresh database; prints one JSON line per measurement.
# Run by scripts/bench.sh under tests/with_postgres.sh (HUB_TEST_PG_* set).
#   durable_figures.sh HUB_BENCH TMPDIR TASKS
set -u
B=$1; T=$2; N=$3
psql() { "$HUB_TEST_PG_BIN/psql" -h 127.0.0.1 -p "$HUB_TEST_PG_PORT" -U postgres -Atq "$@"; }
fresh_pg() { psql -d hive_test -c "CREATE DATABASE $1" && echo "postgresql://postgres@127.0.0.1:$HUB_TEST_PG_PORT/$1"; }

# The physical limit: pgbench, insert-only transactions (one row, one fsync'd commit each).
psql -d hive_test -c "CREATE TABLE bench_insert(id bigserial PRIMARY KEY, payload text)"
echo "INSERT INTO bench_insert(payload) VALUES ('a task-sized row of text, about one hundred bytes long, as the tasks table holds');" >"$T/insert.sql"
tps=$("$HUB_TEST_PG_BIN/pgbench" -h 127.0.0.1 -p "$HUB_TEST_PG_PORT" -U postgres -n -c 8 -j 2 -T 10 -f "$T/insert.sql" hive_test 2>/dev/null \
  | awk '/^tps/ {print $3; exit}')
echo "{\"measure\":\"pgbench_insert_only\",\"tps\":${tps:-0},\"clients\":8,\"seconds\":10}"

url=$(fresh_pg bench_durable)
$B durable "$N" "$url" 2>/dev/null | tail -1 | jq -c '. + {measure:"pg_durable"}'
url=$(fresh_pg bench_raw)
$B raw_insert "$N" "$url" 2>/dev/null | tail -1 | jq -c '. + {measure:"pg_raw_insert"}'
peak=$(jq -r .tasks_per_second <<<"$($B durable "$((N / 4))" "$(fresh_pg bench_peak)" 2>/dev/null | tail -1)")
rate=$(awk -v p="$peak" 'BEGIN {printf "%.0f", p / 2}')
$B latency "$((rate * 10))" "$(fresh_pg bench_latency)" "$rate" 2>/dev/null | tail -1 | jq -c --argjson peak "$peak" '. + {measure:"pg_latency", peak_tasks_per_second:$peak}'

mkdir -p "$T/sqlite_durable" "$T/sqlite_raw"
$B durable "$N" "$T/sqlite_durable" 2>/dev/null | tail -1 | jq -c '. + {measure:"sqlite_durable"}'
$B raw_insert "$N" "$T/sqlite_raw" 2>/dev/null | tail -1 | jq -c '. + {measure:"sqlite_raw_insert"}'
