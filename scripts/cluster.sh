#!/usr/bin/env bash
# A local cluster on loopback, for trying things out and for drills.
#
#   scripts/cluster.sh start N [--postgres] [--plain] [--http-base PORT] [--cluster-base PORT]
#       N nodes n1..nN; HTTP on 3001.. and the cluster port on 4001.. (by default); with
#       --postgres they share a PostgreSQL server of their own (started here, in the state
#       folder), else each keeps its own SQLite file (such a cluster does not survive the loss
#       of a node's disk). The members share a random [cluster] secret and talk mutual TLS
#       (certificates from scripts/cluster-certs.sh in the state folder); --plain: plain TCP.
#       Waits until every node sees N members up.
#   scripts/cluster.sh status          the members as node n1 (or the first live one) sees them
#   scripts/cluster.sh kill NAME       kill -9 one node (a crash)
#   scripts/cluster.sh freeze NAME     SIGSTOP it (a hung process: its socket stays open)
#   scripts/cluster.sh thaw NAME       SIGCONT it
#   scripts/cluster.sh restart NAME    start a node again (after kill, or to roll it)
#   scripts/cluster.sh stop [--clean]  SIGTERM every node (they drain), stop PostgreSQL;
#                                      --clean also deletes the state folder
#
# State (configs, logs, data, pids) lives in $HUB_CLUSTER_DIR (default: ./.cluster).
# The node binary is build/ai-orchestrator-hub (or $HUB_BIN).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
DIR=${HUB_CLUSTER_DIR:-$ROOT/.cluster}
HUB_BIN=${HUB_BIN:-$ROOT/build/ai-orchestrator-hub}
PG_BIN=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}

die() { echo "cluster.sh: $*" >&2; exit 1; }
usage() { sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-2}"; }
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
alive() { [ -f "$DIR/$1/pid" ] && kill -0 "$(cat "$DIR/$1/pid")" 2>/dev/null; }
nodes() { for d in "$DIR"/n*/; do [ -d "$d" ] && basename "$d"; done | sort -V; }
http_of() { sed -n 's/^port = \([0-9]*\)$/\1/p' "$DIR/$1/node.toml" | head -1; }

start_node() { # NAME
  local name=$1
  alive "$name" && die "$name is already running (pid $(cat "$DIR/$name/pid"))"
  # The database is the one this script chose (node.toml), whatever the caller's shell says.
  (cd "$DIR/$name" || exit 1
   env -u DATABASE_URL -u HIVE_DATABASE__URL nohup "$HUB_BIN" --config node.toml >>node.log 2>&1 &
   echo $! >pid)
}

wait_health() { # NAME SECONDS
  local port i
  port=$(http_of "$1")
  for i in $(seq 1 $(($2 * 5))); do
    curl -sf -o /dev/null "http://127.0.0.1:$port/health" && return 0
    alive "$1" || { tail -5 "$DIR/$1/node.log" >&2; die "$1 exited during start (log: $DIR/$1/node.log)"; }
    sleep 0.2
  done
  die "$1 did not answer /health on port $port within $2 s (log: $DIR/$1/node.log)"
}

members_up() { # NAME
  curl -s --max-time 2 "http://127.0.0.1:$(http_of "$1")/api/cluster/nodes" |
    jq '[.data.nodes[]? | select(.status == "up")] | length' 2>/dev/null || echo 0
}

cmd_start() {
  local n=${1:-}; shift || true
  [[ "$n" =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] && [ "$n" -le 32 ] || die "start needs a node count from 1 to 32 (e.g. start 3)"
  local postgres=0 http_base=3001 cluster_base=4001 tls=1
  while [ $# -gt 0 ]; do
    case "$1" in
      --postgres) postgres=1 ;;
      --plain) tls=0 ;;
      --http-base) http_base=${2:?--http-base needs a port}; shift ;;
      --cluster-base) cluster_base=${2:?--cluster-base needs a port}; shift ;;
      -h|--help) usage 0 ;;
      *) die "unknown option $1 (see scripts/cluster.sh --help)" ;;
    esac
    shift
  done
  for name in $(nodes 2>/dev/null); do alive "$name" && die "a cluster is already running here ($name); scripts/cluster.sh stop first"; done
  [ -x "$HUB_BIN" ] || scripts/build.sh
  command -v jq >/dev/null || die "needs jq (apt-get install -y jq)"
  rm -rf "$DIR"; mkdir -p "$DIR"
  local i seeds="" db
  for i in $(seq 1 "$n"); do
    port_busy $((http_base + i - 1)) && die "port $((http_base + i - 1)) is in use (choose --http-base)"
    port_busy $((cluster_base + i - 1)) && die "port $((cluster_base + i - 1)) is in use (choose --cluster-base)"
  done
  for i in $(seq 1 "$(( n < 2 ? n : 2 ))"); do seeds+="${seeds:+, }\"127.0.0.1:$((cluster_base + i - 1))\""; done
  if [ "$postgres" = 1 ]; then
    [ -x "$PG_BIN/initdb" ] || die "PostgreSQL is not installed (scripts/setup.sh installs it)"
    local pg_port=$((cluster_base + 999))
    port_busy "$pg_port" && die "port $pg_port (PostgreSQL) is in use"
    mkdir -p "$DIR/pg"
    [ "$(id -u)" = 0 ] && chown postgres "$DIR/pg" && chmod 755 "$DIR"
    echo "postgresql: initdb and start on port $pg_port"
    as_pg "$PG_BIN/initdb" -D "$DIR/pg/data" -U postgres -A trust >/dev/null
    as_pg "$PG_BIN/pg_ctl" -D "$DIR/pg/data" -l "$DIR/pg/log" -w \
      -o "-p $pg_port -k $DIR/pg -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null
    as_pg "$PG_BIN/createdb" -h 127.0.0.1 -p "$pg_port" -U postgres hive_db
    echo "$pg_port" >"$DIR/pg/port"
    db="postgresql://postgres@127.0.0.1:$pg_port/hive_db"
  fi
  # What the members prove they hold when they join, and (unless --plain) their certificates.
  local secret names=()
  secret=$(head -c 32 /dev/urandom | base64 | tr -d '\n/+=')
  for i in $(seq 1 "$n"); do names+=("n$i"); done
  [ "$tls" = 1 ] && scripts/cluster-certs.sh "$DIR/certs" "${names[@]}" >/dev/null
  for i in $(seq 1 "$n"); do
    mkdir -p "$DIR/n$i"
    [ "$postgres" = 1 ] || db="sqlite://$DIR/n$i/hive.db"
    (umask 077; cat >"$DIR/n$i/node.toml") <<EOF
[server]
host = "127.0.0.1"
port = $((http_base + i - 1))
data_dir = "$DIR/n$i/data"
[database]
url = "$db"
[cluster]
enabled = true
node_name = "n$i"
host = "127.0.0.1"
port = $((cluster_base + i - 1))
seeds = [$seeds]
secret = "$secret"
EOF
    if [ "$tls" = 1 ]; then
      printf 'tls_cert = "%s"\ntls_key = "%s"\ntls_ca = "%s"\n' "$DIR/certs/n$i.pem" "$DIR/certs/n$i.key" "$DIR/certs/ca.pem" \
        >>"$DIR/n$i/node.toml"
    fi
    start_node "n$i"
    echo "n$i: http://127.0.0.1:$((http_base + i - 1))  cluster 127.0.0.1:$((cluster_base + i - 1)) ($([ "$tls" = 1 ] && echo "mutual TLS" || echo "plain TCP"))  pid $(cat "$DIR/n$i/pid")"
  done
  for i in $(seq 1 "$n"); do wait_health "n$i" 60; done
  local s up
  for s in $(seq 1 60); do
    up=$(members_up n1)
    [ "$up" = "$n" ] && break
    sleep 1
  done
  [ "$up" = "$n" ] || die "only $up of $n members are up after 60 s (logs: $DIR/n*/node.log)"
  echo "cluster of $n nodes is up"
  cmd_status
}

cmd_status() {
  [ -d "$DIR" ] || die "no cluster here (scripts/cluster.sh start N)"
  local name port
  for name in $(nodes); do
    alive "$name" || continue
    port=$(http_of "$name")
    if curl -sf --max-time 2 -o "$DIR/.status.json" "http://127.0.0.1:$port/api/cluster/nodes"; then
      echo "as seen by $name (leader: $(jq -r .data.leader "$DIR/.status.json")):"
      jq -r '["NAME", "STATUS", "ROLE", "HTTP", "AGENTS", "RUNNING", "CPU%", "HEARTBEAT"],
             (.data.nodes[] | [.name, .status, .role, .http_address, (.agents | tostring), (.running_tasks | tostring),
              (.cpu_percent | floor | tostring), (if .self then "self" else "\(.last_heartbeat_age_ms) ms ago" end)]) | @tsv' \
        "$DIR/.status.json" | column -t -s $'\t'
      break
    fi
  done
  echo "processes:"
  for name in $(nodes); do
    if alive "$name"; then
      local state
      state=$(ps -o stat= -p "$(cat "$DIR/$name/pid")" | cut -c1)
      [ "$state" = T ] && echo "  $name  pid $(cat "$DIR/$name/pid")  frozen" || echo "  $name  pid $(cat "$DIR/$name/pid")  running"
    else
      echo "  $name  stopped"
    fi
  done
}

signal_node() { # SIGNAL NAME
  [ -n "${2:-}" ] || die "which node? (e.g. n2)"
  [ -d "$DIR/$2" ] || die "no node $2 (nodes: $(nodes | tr '\n' ' '))"
  alive "$2" || die "$2 is not running"
  kill "-$1" "$(cat "$DIR/$2/pid")"
}

cmd_stop() {
  [ -d "$DIR" ] || { echo "no cluster here"; return 0; }
  local name pids=()
  for name in $(nodes); do
    if alive "$name"; then
      kill -CONT "$(cat "$DIR/$name/pid")" 2>/dev/null || true
      kill -TERM "$(cat "$DIR/$name/pid")"
      pids+=("$(cat "$DIR/$name/pid")")
    fi
  done
  local s p left
  for s in $(seq 1 150); do
    left=0
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && left=1; done
    [ "$left" = 0 ] && break
    sleep 0.2
  done
  for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && { echo "pid $p did not stop in 30 s: killing it"; kill -KILL "$p"; }; done
  if [ -f "$DIR/pg/port" ]; then as_pg "$PG_BIN/pg_ctl" -D "$DIR/pg/data" -m fast -w stop >/dev/null 2>&1 || true; fi
  echo "stopped ${#pids[@]} nodes"
  if [ "${1:-}" = --clean ]; then rm -rf "$DIR"; echo "removed $DIR"; fi
}

case "${1:-}" in
  start) shift; cmd_start "$@" ;;
  status) cmd_status ;;
  kill) signal_node KILL "${2:-}"; echo "killed ${2}" ;;
  freeze) signal_node STOP "${2:-}"; echo "froze ${2}" ;;
  thaw) signal_node CONT "${2:-}"; echo "thawed ${2}" ;;
  restart)
    [ -d "$DIR/${2:-none}" ] || die "no node ${2:-} here"
    start_node "$2"; wait_health "$2" 60; echo "$2 is back" ;;
  stop) shift; cmd_stop "$@" ;;
  -h|--help|help) usage 0 ;;
  *) usage ;;
esac
