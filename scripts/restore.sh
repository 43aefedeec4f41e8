#!/usr/bin/env bash
# Restores a backup made by scripts/backup.sh. Stop the node first; start it afterwards and it
# resumes every unfinished task.
# Usage: scripts/restore.sh BACKUP_DIR [--config FILE] [--workdir DIR] [--env-file FILE] [--bin PATH]
#                           [--data-dir DIR] [--database-url URL] [--settings DIR]
# The node's database and data directory are resolved as the node resolves them (see
# scripts/backup.sh); --data-dir and --database-url override.
# SQLite: database.db becomes the node's database file; the old file and any -wal/-shm beside
#   it (which SQLite would otherwise replay onto the restored file) are kept as *.before-restore.
# PostgreSQL: database.sql (made with pg_dump --clean) replaces what the database holds, in one
#   transaction. A dump made without --clean is loaded only into an empty database.
# Either way the result is checked (integrity, the row counts of the manifest) before OK.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
[ $# -ge 1 ] || { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
src=$1; shift
config="" workdir="" env_file="" bin=${HUB_BIN:-} data_dir="" url="" settings=""
while [ $# -gt 0 ]; do
  case "$1" in
    --config) config=$2; shift 2 ;;
    --workdir) workdir=$2; shift 2 ;;
    --env-file) env_file=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    --data-dir) data_dir=$2; shift 2 ;;
    --database-url) url=$2; shift 2 ;;
    --settings) settings=$2; shift 2 ;;
    *) echo "restore: unknown argument $1" >&2; exit 2 ;;
  esac
done
die() { echo "restore: $*" >&2; exit 1; }
. "$here/scripts/node-config.sh"
[ -f "$src/manifest.txt" ] || die "$src has no manifest.txt (not a backup)"

resolve_node_config restore
[ -n "$data_dir" ] || data_dir=$NODE_DATA_DIR
[ -n "$url" ] || url=$NODE_DATABASE_URL
node_pid=$(running_node_pid "$NODE_PID_FILE")
[ -z "$node_pid" ] || die "the node (pid $node_pid) runs on this data: stop it first (systemctl stop ai-orchestrator-hub)"
expected=$(sed -n 's/^Rows: //p' "$src/manifest.txt")
echo "restore: into database $(redact "$url"), data $data_dir (environment $NODE_ENVIRONMENT)"

mkdir -p "$data_dir"
tar -xzf "$src/data.tar.gz" -C "$(dirname "$data_dir")" --exclude='hive.db' --exclude='hive.db-wal' --exclude='hive.db-shm'
owner=$(stat -c %U:%G "$data_dir")
if [ -f "$src/database.db" ]; then
  case "$url" in sqlite://*) ;; *) die "the backup holds a SQLite database but the node uses $(redact "$url")" ;; esac
  db=${url#sqlite://}
  [ "$(sqlite3 "$src/database.db" 'PRAGMA integrity_check')" = ok ] || die "the backup's database fails its integrity check"
  for f in "$db" "$db-wal" "$db-shm"; do
    [ -e "$f" ] && mv -f "$f" "$f.before-restore" && echo "restore: kept the old $(basename "$f") as $(basename "$f").before-restore"
  done
  mkdir -p "$(dirname "$db")"
  cp "$src/database.db" "$db"
  chmod 600 "$db"
  chown "$owner" "$db" 2>/dev/null || true
  [ "$(sqlite3 "$db" 'PRAGMA integrity_check')" = ok ] || die "the restored $db fails its integrity check"
  got=$(sqlite3 "$db" "SELECT 'tasks=' || (SELECT count(*) FROM tasks) || ' agents=' || (SELECT count(*) FROM agents)
                        || ' users=' || (SELECT count(*) FROM users)")
  echo "restore: SQLite database -> $db"
elif [ -f "$src/database.sql" ]; then
  case "$url" in postgres://*|postgresql://*) ;; *) die "the backup holds a PostgreSQL dump: give --database-url (or the node's configuration) of a PostgreSQL database" ;; esac
  tables=$(psql -qtA --dbname="$url" -c "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'") ||
    die "cannot reach $(redact "$url")"
  if [ "$tables" != 0 ] && ! grep -q '^DROP TABLE IF EXISTS public.tasks' "$src/database.sql"; then
    die "$(redact "$url") is not empty and this dump (made without pg_dump --clean) cannot replace what it holds.
  Restore into a clean database:  dropdb DB && createdb -O OWNER DB  (then run this again),
  or use a backup made by scripts/backup.sh (its dump replaces the tables)."
  fi
  psql --quiet -v ON_ERROR_STOP=1 --single-transaction --dbname="$url" -f "$src/database.sql" >/dev/null ||
    die "psql failed; nothing was changed (one transaction)"
  got=$(psql -qtA --dbname="$url" -c "SELECT 'tasks=' || (SELECT count(*) FROM tasks) || ' agents=' || (SELECT count(*) FROM agents)
                                         || ' users=' || (SELECT count(*) FROM users)")
  echo "restore: PostgreSQL database loaded from database.sql"
else
  die "$src holds neither database.db nor database.sql"
fi
if [ -n "$expected" ] && [ "$got" != "$expected" ]; then
  die "the restored database holds $got, the backup's manifest says $expected"
fi
echo "restore: rows $got (as the manifest says)"
if [ -n "$settings" ] && [ -f "$src/config.tar.gz" ]; then
  tar -xzf "$src/config.tar.gz" -C "$(dirname "$settings")"
  echo "restore: settings -> $settings"
fi
echo "restore: OK; start the node"
