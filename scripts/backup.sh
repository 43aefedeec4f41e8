#!/usr/bin/env bash
# Backs up a node while it runs, as the operations guide describes:
#   BACKUP_ROOT/<YYYYmmdd_HHMMSS>/  database.db (SQLite online .backup) or database.sql (pg_dump),
#                                   data.tar.gz, config.tar.gz, logs.tar.gz (when present), manifest.txt
# Usage: scripts/backup.sh [--root DIR] [--data-dir DIR] [--settings DIR] [--logs DIR]
#                          [--database-url URL] [--keep-days N]
# Defaults: /var/backups/ai-orchestrator-hub, /var/lib/ai-orchestrator-hub/data,
# /opt/ai-orchestrator-hub/settings, /var/log/ai-orchestrator-hub, $DATABASE_URL or the
# data dir's hive.db, keep 7 days (0 = keep everything).
set -euo pipefail
root=/var/backups/ai-orchestrator-hub
data_dir=/var/lib/ai-orchestrator-hub/data
settings=/opt/ai-orchestrator-hub/settings
logs=/var/log/ai-orchestrator-hub
url=${DATABASE_URL:-}
keep_days=7
while [ $# -gt 0 ]; do
  case "$1" in
    --root) root=$2; shift 2 ;;
    --data-dir) data_dir=$2; shift 2 ;;
    --settings) settings=$2; shift 2 ;;
    --logs) logs=$2; shift 2 ;;
    --database-url) url=$2; shift 2 ;;
    --keep-days) keep_days=$2; shift 2 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "backup: unknown argument $1 (see --help)"; exit 2 ;;
  esac
done
[ -n "$url" ] || url="sqlite://$data_dir/hive.db"
date=$(date +%Y%m%d_%H%M%S)
dir=$root/$date
mkdir -p "$dir"
echo "backup: writing $dir"

case "$url" in
  sqlite://*)
    db=${url#sqlite://}
    [ -f "$db" ] || { echo "backup: no SQLite database at $db"; exit 1; }
    # The online backup API gives a consistent copy while the node writes (WAL).
    sqlite3 "$db" ".backup '$dir/database.db'"
    [ "$(sqlite3 "$dir/database.db" 'PRAGMA integrity_check')" = ok ] || { echo "backup: integrity check failed"; exit 1; }
    db_file=$dir/database.db ;;
  postgres://*|postgresql://*)
    pg_dump --no-owner --dbname="$url" >"$dir/database.sql"
    db_file=$dir/database.sql ;;
  *) echo "backup: unsupported database URL $url"; exit 2 ;;
esac
echo "backup: database -> $(basename "$db_file")"

# The live SQLite files are in database.db already; the rest of the data dir is archived.
tar -czf "$dir/data.tar.gz" --exclude='hive.db' --exclude='hive.db-wal' --exclude='hive.db-shm' \
    -C "$(dirname "$data_dir")" "$(basename "$data_dir")"
[ -d "$settings" ] && tar -czf "$dir/config.tar.gz" -C "$(dirname "$settings")" "$(basename "$settings")"
[ -d "$logs" ] && tar -czf "$dir/logs.tar.gz" -C "$(dirname "$logs")" "$(basename "$logs")"

{
  echo "Backup completed: $date"
  echo "Database: $(stat -c%s "$db_file") bytes ($(basename "$db_file"), from ${url%%://*})"
  echo "Data: $(stat -c%s "$dir/data.tar.gz") bytes"
  [ -f "$dir/config.tar.gz" ] && echo "Config: $(stat -c%s "$dir/config.tar.gz") bytes"
  [ -f "$dir/logs.tar.gz" ] && echo "Logs: $(stat -c%s "$dir/logs.tar.gz") bytes"
} >"$dir/manifest.txt"
cat "$dir/manifest.txt"

if [ "$keep_days" -gt 0 ]; then
  find "$root" -mindepth 1 -maxdepth 1 -type d -name '[0-9]*_[0-9]*' -mtime +"$keep_days" -print -exec rm -rf {} + |
    sed 's/^/backup: removed old /'
fi
