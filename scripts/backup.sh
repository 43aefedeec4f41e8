#!/usr/bin/env bash
# Backs up a node while it runs, as the operations guide describes:
#   BACKUP_ROOT/<YYYYmmdd_HHMMSS>/  database.db (SQLite online .backup) or database.sql (pg_dump),
#                                   data.tar.gz, config.tar.gz, logs.tar.gz (when present), manifest.txt
# Usage: scripts/backup.sh [--config FILE] [--workdir DIR] [--env-file FILE] [--bin PATH]
#                          [--root DIR] [--keep-days N] [--settings DIR] [--logs DIR]
#                          [--data-dir DIR] [--database-url URL]
# Which database and data directory are the node's is resolved by the node binary itself
# (`ai-orchestrator-hub config get`), exactly as the node resolves them: from its working
# directory (--workdir; default /opt/ai-orchestrator-hub when installed, else here), settings/,
# HIVE_ENV, --config FILE and the environment (plus --env-file, default /etc/ai-orchestrator-hub/env
# when readable, as the systemd unit loads it). --data-dir and --database-url override.
# It refuses (exit 1) to back up a database that is not the running node's, or not a hub
# database at all, and checks what it wrote (integrity, row counts) before saying OK.
# Defaults: /var/backups/ai-orchestrator-hub, /opt/ai-orchestrator-hub/settings,
# /var/log/ai-orchestrator-hub, keep 7 days (0 = keep everything).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
root=/var/backups/ai-orchestrator-hub
settings=/opt/ai-orchestrator-hub/settings
logs=/var/log/ai-orchestrator-hub
keep_days=7
config="" workdir="" env_file="" bin=${HUB_BIN:-} data_dir="" url=""
while [ $# -gt 0 ]; do
  case "$1" in
    --config) config=$2; shift 2 ;;
    --workdir) workdir=$2; shift 2 ;;
    --env-file) env_file=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    --root) root=$2; shift 2 ;;
    --settings) settings=$2; shift 2 ;;
    --logs) logs=$2; shift 2 ;;
    --data-dir) data_dir=$2; shift 2 ;;
    --database-url) url=$2; shift 2 ;;
    --keep-days) keep_days=$2; shift 2 ;;
    -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "backup: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
die() { echo "backup: $*" >&2; exit 1; }
. "$here/scripts/node-config.sh"

resolve_node_config backup
[ -n "$data_dir" ] || data_dir=$NODE_DATA_DIR
[ -n "$url" ] || url=$NODE_DATABASE_URL
echo "backup: the node's configuration (environment $NODE_ENVIRONMENT, from $workdir): database $(redact "$url"), data $data_dir"

date=$(date +%Y%m%d_%H%M%S)
dir=$root/$date
mkdir -p "$dir"
echo "backup: writing $dir"

node_pid=$(running_node_pid "$NODE_PID_FILE")
case "$url" in
  sqlite://*)
    db=$(abs_path "${url#sqlite://}")
    [ -f "$db" ] || die "no SQLite database at $db: this is not the node's database (is --config/--workdir as the node runs?)"
    [ -s "$db" ] || die "$db is empty (0 bytes): not a database the node wrote; nothing backed up"
    [ "$(sqlite3 "$db" "SELECT count(*) FROM sqlite_master WHERE name IN ('schema_migrations','tasks','agents')")" = 3 ] ||
      die "$db is not an AI Orchestrator Hub database (no schema_migrations, tasks and agents tables); nothing backed up"
    if [ -n "$node_pid" ] && ! ls -l "/proc/$node_pid/fd" 2>/dev/null | grep -q -- "-> $(readlink -f "$db")\$"; then
      die "the running node (pid $node_pid) does not use $db: refusing to back up another file than the node's database
        (give --config, --workdir or HIVE_ENV as the node runs; the node's database is what 'ai-orchestrator-hub config get database.url' prints there)"
    fi
    # The online backup API gives a consistent copy while the node writes (WAL).
    sqlite3 "$db" ".backup '$dir/database.db'"
    [ "$(sqlite3 "$dir/database.db" 'PRAGMA integrity_check')" = ok ] || die "the copy fails its integrity check"
    counts=$(sqlite3 "$dir/database.db" "SELECT 'tasks=' || (SELECT count(*) FROM tasks) || ' agents=' || (SELECT count(*) FROM agents)
                                          || ' users=' || (SELECT count(*) FROM users)")
    schema=$(sqlite3 "$dir/database.db" "SELECT max(version) FROM schema_migrations")
    db_file=$dir/database.db ;;
  postgres://*|postgresql://*)
    command -v pg_dump >/dev/null || die "needs pg_dump (apt-get install postgresql-client)"
    [ "$(psql -qtA --dbname="$url" -c "SELECT count(*) FROM information_schema.tables WHERE table_name IN ('schema_migrations','tasks','agents')")" = 3 ] ||
      die "$(redact "$url") is not an AI Orchestrator Hub database (or cannot be reached); nothing backed up"
    if [ -n "$node_pid" ] && [ "$(psql -qtA --dbname="$url" -c "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'ai-orchestrator-hub'")" = 0 ]; then
      die "the running node (pid $node_pid) has no connection to $(redact "$url"): refusing to back up another database than the node's"
    fi
    # --clean: the dump replaces what a target database holds, so the guide's
    # `psql ... < database.sql` restores it even into a database that is not empty.
    pg_dump --no-owner --clean --if-exists --dbname="$url" >"$dir/database.sql"
    grep -q '^CREATE TABLE public.tasks' "$dir/database.sql" || die "the dump holds no tasks table"
    counts=$(psql -qtA --dbname="$url" -c "SELECT 'tasks=' || (SELECT count(*) FROM tasks) || ' agents=' || (SELECT count(*) FROM agents)
                                              || ' users=' || (SELECT count(*) FROM users)")
    schema=$(psql -qtA --dbname="$url" -c "SELECT max(version) FROM schema_migrations")
    db_file=$dir/database.sql ;;
  *) die "unsupported database URL $(redact "$url")" ;;
esac
echo "backup: database -> $(basename "$db_file") ($counts)"

# The live SQLite files are in database.db already; the rest of the data dir is archived.
tar -czf "$dir/data.tar.gz" --exclude='hive.db' --exclude='hive.db-wal' --exclude='hive.db-shm' \
    --exclude='*.pid' -C "$(dirname "$data_dir")" "$(basename "$data_dir")"
[ -d "$settings" ] && tar -czf "$dir/config.tar.gz" -C "$(dirname "$settings")" "$(basename "$settings")"
[ -d "$logs" ] && tar -czf "$dir/logs.tar.gz" -C "$(dirname "$logs")" "$(basename "$logs")"

{
  echo "Backup completed: $date"
  echo "Database: $(stat -c%s "$db_file") bytes ($(basename "$db_file"), from ${url%%://*})"
  echo "Rows: $counts"
  echo "Schema: $schema"
  echo "Source: $(redact "$url")"
  echo "Data: $(stat -c%s "$dir/data.tar.gz") bytes"
  [ -f "$dir/config.tar.gz" ] && echo "Config: $(stat -c%s "$dir/config.tar.gz") bytes"
  [ -f "$dir/logs.tar.gz" ] && echo "Logs: $(stat -c%s "$dir/logs.tar.gz") bytes"
} >"$dir/manifest.txt"
cat "$dir/manifest.txt"

if [ "$keep_days" -gt 0 ]; then
  find "$root" -mindepth 1 -maxdepth 1 -type d -name '[0-9]*_[0-9]*' -mtime +"$keep_days" -print -exec rm -rf {} + |
    sed 's/^/backup: removed old /'
fi
echo "backup: OK"
