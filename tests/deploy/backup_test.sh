#!/usr/bin/env bash
# scripts/backup.sh on a running node, then scripts/restore.sh into a fresh data dir and a
# restart: every task comes back; the manifest names each part with its size and row counts;
# retention prunes. And what went wrong for operators (issue #18): the database is the one
# the node's configuration names (--config, the working directory), never another file; a
# restore after kill -9 is not mixed with the crashed node's -wal; an empty database file is
# refused by the node with a message that says what to do.
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=$(readlink -f "${1:?usage: backup_test.sh BUILT_BINARY}")
t=$(mktemp -d); pids=()
trap 'for p in "${pids[@]:-}"; do kill -KILL "$p" 2>/dev/null; done; rm -rf "$t"' EXIT
passed=0; failed=0
ok() { passed=$((passed + 1)); echo "  ok    $1"; }
bad() { failed=$((failed + 1)); echo "  FAIL  $1: ${2:-}"; }
port() { while :; do p=$(( (RANDOM % 12000) + 20000 )); (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }; done; }
start() { # DIR PORT [ARGS...]
  local dir=$1 p=$2; shift 2
  mkdir -p "$dir"
  ( cd "$dir" && exec env HIVE_SERVER__HOST=127.0.0.1 HIVE_SERVER__PORT="$p" "$bin" "$@" >"$dir/node.log" 2>&1 ) & pids+=($!)
  for _ in $(seq 1 100); do curl -fs -o /dev/null "http://127.0.0.1:$p/readyz" && return 0; sleep 0.1; done; return 1
}
submit() { # PORT N PREFIX
  for i in $(seq 1 "$2"); do
    curl -s -XPOST -H 'Content-Type: application/json' -d "{\"description\":\"$3 $i\",\"type\":\"echo\"}" "http://127.0.0.1:$1/api/tasks" | jq -r .data.id
  done
}
backup() { "$root/scripts/backup.sh" --bin "$bin" --settings "$root/config/settings" --logs "$t/no-logs" "$@"; }

echo "backup: a running node, its working directory given"
p1=$(port); start "$t/a" "$p1" || bad "node starts"
submit "$p1" 20 keep >"$t/ids"
mkdir -p "$t/backups/20000101_000000"; touch -d '30 days ago' "$t/backups/20000101_000000"
if backup --workdir "$t/a" --root "$t/backups" --keep-days 7 >"$t/backup.out" 2>&1; then ok "backup.sh runs while the node runs"; else bad "backup.sh" "$(cat "$t/backup.out")"; fi
b=$(ls -d "$t"/backups/2*/ | grep -v 20000101 | head -1)
grep -q '^Backup completed: ' "$b/manifest.txt" && grep -q '^Database: [0-9]* bytes' "$b/manifest.txt" && grep -q '^Data: [0-9]* bytes' "$b/manifest.txt" \
  && grep -q '^Rows: tasks=20 agents=[0-9]* users=0$' "$b/manifest.txt" \
  && ok "manifest.txt lists the parts with sizes and the row counts" || bad "manifest" "$(cat "$b/manifest.txt" 2>/dev/null)"
[ ! -d "$t/backups/20000101_000000" ] && ok "backups older than --keep-days are removed" || bad "retention"

echo "backup: refuses what is not the node's database"
cp "$b/database.db" "$t/decoy.db"
if backup --workdir "$t/a" --database-url "sqlite://$t/decoy.db" --root "$t/refused" >"$t/decoy.out" 2>&1; then
  bad "a database the running node does not use is refused" "exit 0: $(tail -3 "$t/decoy.out")"
else
  grep -q 'does not use' "$t/decoy.out" && ok "a database the running node does not use is refused" || bad "refusal message" "$(cat "$t/decoy.out")"
fi
mkdir -p "$t/nothing"
if (cd "$t/nothing" && backup --root "$t/refused" >"$t/nothing.out" 2>&1); then bad "no database where the configuration points: refused" "exit 0"
else grep -q 'no SQLite database' "$t/nothing.out" && ok "no database where the configuration points: refused" || bad "message" "$(cat "$t/nothing.out")"; fi

echo "backup: the database the node's --config names"
mkdir -p "$t/c/elsewhere"
printf '[database]\nurl = "sqlite://%s/c/elsewhere/custom.db"\n' "$t" >"$t/c/node.toml"
p3=$(port); start "$t/c" "$p3" --config node.toml || bad "node with --config starts"
submit "$p3" 3 custom >/dev/null
if backup --workdir "$t/c" --config node.toml --root "$t/cb" >"$t/c.out" 2>&1 && grep -q "Source: sqlite://$t/c/elsewhere/custom.db" "$t"/cb/*/manifest.txt &&
   grep -q '^Rows: tasks=3 ' "$t"/cb/*/manifest.txt; then
  ok "backup.sh --config backs up the file the node's --config names"
else bad "backup with --config" "$(cat "$t/c.out")"; fi
kill -TERM "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null

echo "restore: into a fresh data dir"
kill -TERM "${pids[0]}"; wait "${pids[0]}" 2>/dev/null
mkdir -p "$t/b"
if "$root/scripts/restore.sh" "$b" --bin "$bin" --workdir "$t/b" >"$t/restore.out" 2>&1 && grep -q 'rows tasks=20' "$t/restore.out"; then
  ok "restore.sh restores into a fresh data dir and checks the rows against the manifest"
else bad "restore.sh" "$(cat "$t/restore.out")"; fi
p2=$(port); start "$t/b" "$p2" || bad "node starts on the restored data"
found=0
for id in $(cat "$t/ids"); do [ "$(curl -s "http://127.0.0.1:$p2/api/tasks/$id" | jq -r .data.id)" = "$id" ] && found=$((found + 1)); done
[ "$found" = 20 ] && ok "every task is back after restore and restart" || bad "tasks after restore" "$found of 20"
if "$root/scripts/restore.sh" "$b" --bin "$bin" --workdir "$t/b" >"$t/running.out" 2>&1; then bad "restore refuses while the node runs" "exit 0"
else grep -q 'stop it first' "$t/running.out" && ok "restore refuses while the node runs" || bad "message" "$(cat "$t/running.out")"; fi

echo "restore: after kill -9, the crashed node's -wal is not replayed onto the backup"
submit "$p2" 30 later >/dev/null
kill -KILL "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null
[ -s "$t/b/data/hive.db-wal" ] && ok "the killed node left a -wal behind" || echo "  ..    (no -wal left: the check below still holds)"
"$root/scripts/restore.sh" "$b" --bin "$bin" --workdir "$t/b" >"$t/restore2.out" 2>&1 || bad "restore after kill -9" "$(cat "$t/restore2.out")"
p4=$(port); start "$t/b" "$p4" || bad "node starts after the second restore"
n=$(curl -s "http://127.0.0.1:$p4/api/tasks?limit=1" | jq .data.total)
[ "$n" = 20 ] && ok "the node comes back with the backup's 20 tasks, not the crashed node's 50" || bad "tasks after restore over a -wal" "$n"
[ -f "$t/b/data/hive.db-wal.before-restore" ] || [ ! -s "$t/b/data/hive.db-wal" ] && ok "the old -wal was set aside" || bad "old -wal"
kill -TERM "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null

echo "the node refuses an empty database file"
mkdir -p "$t/e/data"
(cd "$t/e" && sqlite3 data/hive.db ".backup $t/e/b.db" 2>/dev/null)
[ -f "$t/e/data/hive.db" ] && [ ! -s "$t/e/data/hive.db" ] && ok "sqlite3 .backup against a missing database leaves a 0-byte file (the guide's wart)" || echo "  ..    (sqlite3 left no empty file here)"
: >"$t/e/data/hive.db"
pe=$(port)
( cd "$t/e" && exec env HIVE_SERVER__HOST=127.0.0.1 HIVE_SERVER__PORT="$pe" "$bin" >"$t/e/node.log" 2>&1 ); code=$?
[ "$code" != 0 ] && grep -q 'is empty (0 bytes)' "$t/e/node.log" && grep -q 'rm ' "$t/e/node.log" \
  && ok "the node exits $code on an empty database file, saying what to do" || bad "empty database file" "exit $code: $(tail -2 "$t/e/node.log")"
(cd "$t/e" && "$bin" --check >"$t/e/check.out" 2>&1); code=$?
[ "$code" != 0 ] && grep -q 'is empty' "$t/e/check.out" && ok "--check says so too" || bad "--check on an empty database" "$(cat "$t/e/check.out")"

echo
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
