#!/usr/bin/env bash
# A 3-node cluster on SQLite started by scripts/cluster.sh (run from the repo root):
# membership, the cluster-wide agent directory, a task placed on another node's agent,
# agents changed only where they run, a graceful leave, and failure detection (kill -9
# within 1 s, SIGSTOP within 3 s).
set -u
cd "$(dirname "$0")/../.."
export HUB_CLUSTER_DIR=$(mktemp -d)
export HUB_BIN=${HUB_BIN:-$PWD/build/ai-orchestrator-hub}
failed=0
ok() { echo "  ok    $1"; }
bad() { echo "  FAIL  $1${2:+ — $2}"; failed=$((failed + 1)); }
cleanup() {
  for f in "$HUB_CLUSTER_DIR"/n*/pid; do [ -f "$f" ] && kill -CONT "$(cat "$f")" 2>/dev/null; done
  scripts/cluster.sh stop >/dev/null 2>&1
  [ "$failed" = 0 ] || tail -20 "$HUB_CLUSTER_DIR"/n*/node.log
  rm -rf "$HUB_CLUSTER_DIR"
}
trap cleanup EXIT
free_base() { # five consecutive free ports below the ephemeral range
  local b i
  while :; do
    b=$(( (RANDOM % 2300) * 5 + 20000 ))
    for i in 0 1 2 3 4; do (exec 3<>"/dev/tcp/127.0.0.1/$((b + i))") 2>/dev/null && continue 2; done
    echo "$b"; return
  done
}
hb=$(free_base); cb=$(free_base)
url() { echo "http://127.0.0.1:$((hb + ${1#n} - 1))"; }
status_of() { # SEEN_BY NAME
  curl -s --max-time 1 "$(url "$1")/api/cluster/nodes" | jq -r --arg n "$2" '.data.nodes[] | select(.name == $n) | .status'
}
elapsed_until_not_up() { # SEEN_BY NAME SINCE_NS -> seconds, or "never" after 10 s
  local s st
  for s in $(seq 1 100); do
    st=$(status_of "$1" "$2")
    if [ -n "$st" ] && [ "$st" != up ]; then
      awk -v a="$(date +%s%N)" -v b="$3" 'BEGIN { printf "%.2f", (a - b) / 1e9 }'
      return
    fi
    sleep 0.1
  done
  echo never
}

scripts/cluster.sh start 3 --http-base "$hb" --cluster-base "$cb" >"$HUB_CLUSTER_DIR/start.log" 2>&1 \
  || { cat "$HUB_CLUSTER_DIR/start.log"; bad "scripts/cluster.sh start 3"; exit 1; }
ok "scripts/cluster.sh start 3: three members up"
[ "$(curl -s "$(url n3)/api/cluster/nodes" | jq '[.data.nodes[] | select(.role == "leader")] | length')" = 1 ] \
  && ok "exactly one leader" || bad "exactly one leader"

r=$(curl -s -XPOST -H 'Content-Type: application/json' \
  -d '{"name":"gpu-box","type":"specialist","specialization":"x","capabilities":[{"name":"only-n2","proficiency":1}]}' "$(url n2)/api/agents")
agent=$(jq -r .data.id <<<"$r")
seen=""
for s in $(seq 1 30); do
  seen=$(curl -s "$(url n1)/api/agents?limit=1000" | jq -r --arg id "$agent" '.data.agents[] | select(.id == $id) | .node')
  [ "$seen" = n2 ] && break; sleep 0.2
done
[ "$seen" = n2 ] && ok "n1 lists the agent created on n2, with node n2" || bad "n1 lists n2's agent" "node=$seen"
t=$(curl -s -XPOST -H 'Content-Type: application/json' \
  -d '{"description":"needs n2","type":"echo","payload":{"x":1},"required_capabilities":[{"name":"only-n2"}]}' "$(url n1)/api/tasks" | jq -r .data.id)
done_t=$(curl -s "$(url n1)/api/tasks/$t/wait?timeout_ms=10000" | jq -c .data)
jq -e --arg a "$agent" '.status == "completed" and .assigned_agent == $a and .result.x == 1' <<<"$done_t" >/dev/null \
  && ok "a task submitted to n1 ran on n2's agent and its result came back" || bad "remote placement" "$done_t"
code=$(curl -s -o "$HUB_CLUSTER_DIR/del.json" -w '%{http_code}' -XDELETE "$(url n1)/api/agents/$agent")
[ "$code" = 409 ] && grep -q 'n2' "$HUB_CLUSTER_DIR/del.json" && ok "deleting n2's agent through n1: 409 naming n2" \
  || bad "delete through another node" "$code $(cat "$HUB_CLUSTER_DIR/del.json")"

# Introspection across the cluster: n1 answers for every member's actors.
all=$(curl -s "$(url n1)/api/actors?kind=agent&limit=1000")
jq -e '(.data.nodes | sort) == ["n1","n2","n3"] and ([.data.actors[].node] | unique | sort) == ["n1","n2","n3"] and .data.by_kind.n2.agent >= 5' \
  <<<"$all" >/dev/null && ok "GET /api/actors on n1 lists the actors of all three nodes" || bad "cluster-wide /api/actors" "$(jq -c .data.nodes <<<"$all")"
remote=$(jq -r '[.data.actors[] | select(.node == "n2" and .name == "gpu-box")][0].id' <<<"$all")
curl -s "$(url n1)/api/actors/n2/$remote" | jq -e '.data.node == "n2" and .data.summary.name == "gpu-box"' >/dev/null \
  && ok "n1 shows n2's actor in detail (relayed to n2)" || bad "remote actor detail"
curl -s "$(url n1)/api/actors?node=n3&kind=scheduler" | jq -e '[.data.actors[].node] == ["n3"]' >/dev/null \
  && ok "?node=n3 through n1 lists only n3's actors" || bad "node filter through a peer"
curl -sL "$(url n1)/api/actors/n2/$remote/trace?seconds=1" | grep -q '^event: end' \
  && ok "a trace of n2's actor through n1 is redirected to n2 and streams" || bad "remote trace"

code=$(curl -s -o /dev/null -w '%{http_code}' -XPOST "$(url n1)/api/cluster/nodes/n3/leave")
n3pid=$(cat "$HUB_CLUSTER_DIR/n3/pid")
for s in $(seq 1 100); do kill -0 "$n3pid" 2>/dev/null || break; sleep 0.1; done
st=""
for s in $(seq 1 30); do st=$(status_of n1 n3); [ "$st" = removed ] && break; sleep 0.1; done
[ "$code" = 202 ] && ! kill -0 "$n3pid" 2>/dev/null && [ "$st" = removed ] \
  && ok "POST /api/cluster/nodes/n3/leave (through n1): n3 drained, stopped, and is removed" \
  || bad "graceful leave" "code=$code status=$st"
grep -q "asked to leave" "$HUB_CLUSTER_DIR/n3/node.log" && ok "n3 logged why it stopped" || bad "n3 logged the leave"

scripts/cluster.sh restart n3 >/dev/null 2>&1
for s in $(seq 1 50); do [ "$(status_of n1 n3)" = up ] && break; sleep 0.2; done
[ "$(status_of n1 n3)" = up ] && ok "n3 restarted and rejoined" || bad "n3 rejoins" "$(status_of n1 n3)"

since=$(date +%s%N); scripts/cluster.sh kill n3 >/dev/null
d=$(elapsed_until_not_up n1 n3 "$since")
[ "$d" != never ] && awk -v d="$d" 'BEGIN { exit !(d <= 1.0) }' && ok "kill -9 of n3 seen by n1 in $d s (<= 1 s)" \
  || bad "kill -9 detected within 1 s" "$d"
since=$(date +%s%N); scripts/cluster.sh freeze n2 >/dev/null
d=$(elapsed_until_not_up n1 n2 "$since")
[ "$d" != never ] && awk -v d="$d" 'BEGIN { exit !(d <= 3.0) }' && ok "a frozen n2 seen by n1 in $d s (<= 3 s)" \
  || bad "SIGSTOP detected within 3 s" "$d"
scripts/cluster.sh thaw n2 >/dev/null
for s in $(seq 1 50); do [ "$(status_of n1 n2)" = up ] && break; sleep 0.2; done
[ "$(status_of n1 n2)" = up ] && ok "n2 thawed is up again" || bad "n2 up after thaw" "$(status_of n1 n2)"
scripts/cluster.sh status | grep -q 'n3.*stopped' && ok "scripts/cluster.sh status shows the killed node stopped" \
  || bad "cluster.sh status"

echo "cluster_test: $failed failed"
[ "$failed" = 0 ]
