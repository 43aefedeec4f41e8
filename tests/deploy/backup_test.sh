#!/usr/bin/env bash
# scripts/backup.sh on a running node, then scripts/restore.sh into a fresh data dir and a
# restart: every task comes back; the manifest names each part with its size; retention prunes.
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${1:?usage: backup_test.sh BUILT_BINARY}
t=$(mktemp -d); pids=()
trap 'for p in "${pids[@]:-}"; do kill -KILL "$p" 2>/dev/null; done; rm -rf "$t"' EXIT
passed=0; failed=0
ok() { passed=$((passed + 1)); echo "  ok    $1"; }
bad() { failed=$((failed + 1)); echo "  FAIL  $1: ${2:-}"; }
port() { while :; do p=$(( (RANDOM % 12000) + 20000 )); (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }; done; }
start() { # DIR PORT
  mkdir -p "$1"
  ( cd "$1" && exec env HIVE_SERVER__HOST=127.0.0.1 HIVE_SERVER__PORT="$2" "$bin" >"$1/node.log" 2>&1 ) & pids+=($!)
  for _ in $(seq 1 100); do curl -fs -o /dev/null "http://127.0.0.1:$2/readyz" && return 0; sleep 0.1; done; return 1
}
p1=$(port); start "$t/a" "$p1" || bad "node starts"
for i in $(seq 1 20); do
  curl -s -XPOST -H 'Content-Type: application/json' -d "{\"description\":\"keep $i\",\"type\":\"echo\"}" "http://127.0.0.1:$p1/api/tasks" | jq -r .data.id
done >"$t/ids"
mkdir -p "$t/backups/20000101_000000"; touch -d '30 days ago' "$t/backups/20000101_000000"
if "$root/scripts/backup.sh" --root "$t/backups" --data-dir "$t/a/data" --settings "$root/config/settings" \
     --logs "$t/no-logs" --keep-days 7 >"$t/backup.out" 2>&1; then ok "backup.sh runs while the node runs"; else bad "backup.sh" "$(cat "$t/backup.out")"; fi
b=$(ls -d "$t"/backups/2*/ | grep -v 20000101 | head -1)
grep -q '^Backup completed: ' "$b/manifest.txt" && grep -q '^Database: [0-9]* bytes' "$b/manifest.txt" && grep -q '^Data: [0-9]* bytes' "$b/manifest.txt" \
  && ok "manifest.txt lists the parts with sizes" || bad "manifest" "$(cat "$b/manifest.txt" 2>/dev/null)"
[ ! -d "$t/backups/20000101_000000" ] && ok "backups older than --keep-days are removed" || bad "retention"
kill -TERM "${pids[0]}"; wait "${pids[0]}" 2>/dev/null
# Its own node is stopped; other nodes on this machine (other tests) are not its business.
if RESTORE_WHILE_RUNNING=1 "$root/scripts/restore.sh" "$b" --data-dir "$t/b/data" >"$t/restore.out" 2>&1; then ok "restore.sh restores into a fresh data dir"; else bad "restore.sh" "$(cat "$t/restore.out")"; fi
p2=$(port); start "$t/b" "$p2" || bad "node starts on the restored data"
found=0
for id in $(cat "$t/ids"); do [ "$(curl -s "http://127.0.0.1:$p2/api/tasks/$id" | jq -r .data.id)" = "$id" ] && found=$((found + 1)); done
[ "$found" = 20 ] && ok "every task is back after restore and restart" || bad "tasks after restore" "$found of 20"
echo
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
