#!/usr/bin/env bash
# tests/with_postgres.sh CMD [ARG...]: runs CMD with a throw-away PostgreSQL server of its own
# (initdb into a temp dir, a free loopback port, trust auth), exported as HUB_TEST_PG_URL and
# DATABASE_URL-style postgresql://postgres@127.0.0.1:PORT/hive_test; stops and removes it after.
# Exits 77 (CTest "skipped") when no PostgreSQL server binaries are installed.
set -u
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
  echo "with_postgres: no PostgreSQL server installed (apt-get install postgresql); skipped"
  exit 77
fi
t=$(mktemp -d /tmp/hub-pg.XXXXXX)
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" = 0 ] && chown postgres "$t"
chmod 755 "$t"
port=0
while :; do port=$(( (RANDOM % 12000) + 20000 )); (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || break; done
cleanup() { as_pg "$bin/pg_ctl" -D "$t/data" -m immediate -w stop >/dev/null 2>&1; rm -rf "$t"; }
trap cleanup EXIT
as_pg "$bin/initdb" -D "$t/data" -U postgres -A trust >"$t/initdb.log" 2>&1 || { cat "$t/initdb.log"; exit 1; }
as_pg "$bin/pg_ctl" -D "$t/data" -l "$t/server.log" -w \
  -o "-p $port -k $t -c listen_addresses=127.0.0.1 -c fsync=on -c max_connections=200" start >/dev/null || { cat "$t/server.log"; exit 1; }
as_pg "$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres hive_test || exit 1
export HUB_TEST_PG_URL="postgresql://postgres@127.0.0.1:$port/hive_test" HUB_TEST_PG_BIN="$bin" HUB_TEST_PG_PORT="$port" \
  HUB_TEST_PG_DATA="$t/data" HUB_TEST_PG_SOCKET_DIR="$t"
"$@"
