#!/usr/bin/env bash
# Restores a backup made by scripts/backup.sh. Stop the node first; start it afterwards
# and it resumes every unfinished task.
# Usage: scripts/restore.sh BACKUP_DIR [--data-dir DIR] [--settings DIR] [--database-url URL]
# SQLite: database.db becomes DATA_DIR/hive.db (the old file is kept as hive.db.before-restore).
# PostgreSQL: database.sql is loaded with psql into the (empty) database of the URL.
set -euo pipefail
[ $# -ge 1 ] || { sed -n '2,6p' "$0"; exit 2; }
src=$1; shift
data_dir=/var/lib/ai-orchestrator-hub/data
settings=
url=${DATABASE_URL:-}
while [ $# -gt 0 ]; do
  case "$1" in
    --data-dir) data_dir=$2; shift 2 ;;
    --settings) settings=$2; shift 2 ;;
    --database-url) url=$2; shift 2 ;;
    *) echo "restore: unknown argument $1"; exit 2 ;;
  esac
done
[ -f "$src/manifest.txt" ] || { echo "restore: $src has no manifest.txt (not a backup)"; exit 1; }
if pgrep -x ai-orchestrator >/dev/null && [ "${RESTORE_WHILE_RUNNING:-0}" != 1 ]; then
  echo "restore: a node is running; stop it first (systemctl stop ai-orchestrator-hub)"; exit 1
fi
mkdir -p "$data_dir"
tar -xzf "$src/data.tar.gz" -C "$(dirname "$data_dir")"
if [ -f "$src/database.db" ]; then
  [ -f "$data_dir/hive.db" ] && mv "$data_dir/hive.db" "$data_dir/hive.db.before-restore"
  rm -f "$data_dir/hive.db-wal" "$data_dir/hive.db-shm"
  cp "$src/database.db" "$data_dir/hive.db"
  echo "restore: SQLite database -> $data_dir/hive.db"
elif [ -f "$src/database.sql" ]; then
  [ -n "$url" ] || { echo "restore: give --database-url (or DATABASE_URL) for the PostgreSQL restore"; exit 2; }
  psql --quiet -v ON_ERROR_STOP=1 --dbname="$url" <"$src/database.sql" >/dev/null
  echo "restore: PostgreSQL database loaded from database.sql"
fi
if [ -n "$settings" ] && [ -f "$src/config.tar.gz" ]; then
  tar -xzf "$src/config.tar.gz" -C "$(dirname "$settings")"
  echo "restore: settings -> $settings"
fi
echo "restore: done; start the node"
