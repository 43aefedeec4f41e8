#!/usr/bin/env bash
# Introspection as an operator uses it, over HTTP: /api/actors (kinds, filters, sorting,
# refusals naming the field), one actor's detail with its own summary, kill (the supervisor
# restarts it; unsupervised actors are refused), the SSE trace of the scheduler under load,
# the /api/events feed resumed with Last-Event-ID, and the bound on open streams.
#   tests/deploy/introspection_test.sh BUILT_BINARY
set -u
bin=$(realpath "${1:?usage: introspection_test.sh BUILT_BINARY}")
t=$(mktemp -d); pid=""
trap '[ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null; jobs -p | xargs -r kill 2>/dev/null; rm -rf "$t"' EXIT
failed=0
ok() { echo "  ok    $1"; }
bad() { echo "  FAIL  $1${2:+ — $2}"; failed=$((failed + 1)); }
check() { local what=$1; shift; if "$@" >/dev/null 2>&1; then ok "$what"; else bad "$what"; fi; }
while :; do p=$(( (RANDOM % 12000) + 20000 )); (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || break; done
u="http://127.0.0.1:$p"
( cd "$t" && exec env HIVE_SERVER__HOST=127.0.0.1 HIVE_SERVER__PORT="$p" HIVE_SERVER__MAX_STREAMS=4 HIVE_SERVER__MAX_STREAMS_PER_CLIENT=3 DATABASE_URL="sqlite://$t/hive.db" "$bin" >"$t/node.log" 2>&1 ) & pid=$!
for _ in $(seq 1 200); do curl -fs -o /dev/null "$u/readyz" && break; sleep 0.05; done
node=$(curl -s "$u/health" | jq -r .data.node)
submit() { curl -s -XPOST -H 'Content-Type: application/json' -d "{\"description\":\"t\",\"type\":\"${1:-echo}\",\"payload\":${2:-null}}" "$u/api/tasks" | jq -r .data.id; }

echo "introspection: listing"
curl -s "$u/api/actors?limit=1000" >"$t/all.json"
check "agents, scheduler, supervisors, store and neural workers are listed" \
  jq -e '[.data.actors[].kind] | unique | (index("agent") and index("scheduler") and index("supervisor") and index("store") and index("neural_worker")) != null' "$t/all.json"
check "every entry has mailbox, messages, errors, state, started_at" \
  jq -e '[.data.actors[] | has("mailbox_size") and has("messages") and has("errors") and has("state") and has("started_at")] | all' "$t/all.json"
check "by_kind counts this node's actors" jq -e --arg n "$node" '.data.by_kind[$n].agent == 4' "$t/all.json"
check "kind filter" bash -c "curl -s '$u/api/actors?kind=agent' | jq -e '[.data.actors[].kind] | unique == [\"agent\"]'"
check "limit cuts, total counts" bash -c "curl -s '$u/api/actors?limit=2' | jq -e '(.data.actors | length) == 2 and .data.total > 2'"
check "sort=messages puts the busiest first" bash -c "curl -s '$u/api/actors?sort=messages&limit=5' | jq -e '[.data.actors[].messages] as \$m | \$m == (\$m | sort | reverse)'"
check "sort=bogus is refused naming the field" bash -c "curl -s -w '%{http_code}' -o '$t/r.json' '$u/api/actors?sort=bogus' | grep -q 400 && jq -e '.error.field == \"sort\"' '$t/r.json'"
check "limit=0 is refused naming the field" bash -c "curl -s '$u/api/actors?limit=0' | jq -e '.error.field == \"limit\"'"
check "an unknown node is a 404" bash -c "curl -s -o /dev/null -w '%{http_code}' '$u/api/actors?node=nowhere' | grep -q 404"

echo "introspection: one actor"
agent=$(jq -r '[.data.actors[] | select(.kind == "agent")][0]' "$t/all.json")
aid=$(jq -r .id <<<"$agent"); aname=$(jq -r .name <<<"$agent")
curl -s "$u/api/actors/$node/$aid" >"$t/agent.json"
check "an agent's detail has its capabilities, running tasks and breaker" \
  jq -e '.data.summary.capabilities | length >= 1' "$t/agent.json"
check "and its parent, the agents supervisor" jq -e '.data.parent_actor.kind == "supervisor" and .data.parent_actor.name == "agents"' "$t/agent.json"
check "a non-numeric id is a 400 naming the field" bash -c "curl -s '$u/api/actors/$node/abc' | jq -e '.error.field == \"id\"'"
check "an id that is not live is a 404" bash -c "curl -s -o /dev/null -w '%{http_code}' '$u/api/actors/$node/999999' | grep -q 404"
tid=$(submit sleep '{"ms":3000}'); sleep 0.3
task_actor=$(curl -s "$u/api/actors?kind=task" | jq -r --arg id "$tid" '.data.actors[] | select(.name == $id) | .id')
check "a running task is an actor; its detail shows its state machine position" \
  bash -c "curl -s '$u/api/actors/$node/$task_actor' | jq -e '.data.state == \"running\" and .data.summary.status == \"running\" and .data.summary.attempts == 1'"

queued=$(curl -s -XPOST -H 'Content-Type: application/json' \
  -d '{"description":"waits","required_capabilities":[{"name":"nobody-has-this"}]}' "$u/api/tasks" | jq -r .data.id)
curl -s "$u/api/actors?kind=task&limit=1000" >"$t/tasks.json"
check "a queued task (kept as a record until placed) lists as a pending task, under the scheduler" \
  jq -e --arg id "$queued" '[.data.actors[] | select(.name == $id)][0] | .kind == "task" and .state == "pending" and .parent != null' "$t/tasks.json"
check "and is counted in by_kind" jq -e --arg n "$node" '.data.by_kind[$n].task >= 1' "$t/tasks.json"
check "cancelling it starts its actor, which cancels it" \
  bash -c "curl -s -XPOST '$u/api/tasks/$queued/cancel' | jq -e '.data.status == \"cancelled\"'"

echo "introspection: kill"
code=$(curl -s -o "$t/kill.json" -w '%{http_code}' -XPOST "$u/api/actors/$node/$aid/kill")
check "kill answers 202 and names the supervisor" bash -c "[ $code = 202 ] && jq -e '.data.parent.name == \"agents\"' '$t/kill.json'"
restarted=""
for _ in $(seq 1 100); do
  restarted=$(curl -s "$u/api/actors?kind=agent" | jq -r --arg n "$aname" --argjson old "$aid" '.data.actors[] | select(.name == $n and .id != $old) | .id')
  [ -n "$restarted" ] && break; sleep 0.05
done
check "the supervisor restarted the agent as a new actor" test -n "$restarted"
check "the supervision tree counts the restart" \
  bash -c "curl -s '$u/api/supervisors' | jq -e '[.. | objects | select(.kind? == \"agent\") | .restarts] | add >= 1'"
store=$(jq -r '[.data.actors[] | select(.kind == "store")][0].id' "$t/all.json")
check "the store's detail shows its breaker and commits" \
  bash -c "curl -s '$u/api/actors/$node/$store' | jq -e '.data.summary.breaker.state == \"closed\" and .data.summary.commits >= 1'"
check "an unsupervised actor (the store) is not killed: 409" \
  bash -c "curl -s -o /dev/null -w '%{http_code}' -XPOST '$u/api/actors/$node/$store/kill' | grep -q 409"
check "the node still completes tasks" bash -c "curl -s '$u/api/tasks/$(submit)/wait?timeout_ms=10000' | jq -e '.data.status == \"completed\"'"

echo "introspection: trace"
sched=$(jq -r '[.data.actors[] | select(.kind == "scheduler")][0].id' "$t/all.json")
curl -sN "$u/api/actors/$node/$sched/trace?seconds=2" >"$t/trace.txt" &
sleep 0.4
for _ in $(seq 1 5); do submit >/dev/null; done
wait $!
check "the trace streams the scheduler's messages (submit among them) and ends" \
  bash -c "grep -c '\"type\":\"submit\"' '$t/trace.txt' | awk '\$1 >= 5 {ok=1} END {exit !ok}' && grep -q '^event: end' '$t/trace.txt'"
# A task says "released" as its attempt ends, and lives on until its end is durable (a commit).
check "trace events carry sender, size and handling time" \
  bash -c "grep '^data: ' '$t/trace.txt' | sed 's/^data: //' | jq -se '[.[] | select(.type == \"released\")] | any((.sender | test(\"task\")) and .size > 0 and (.handling_us | type) == \"number\")'"
check "tracing is off again once the stream ends" bash -c "curl -s '$u/api/actors/$node/$sched' | jq -e '.data.traced == false'"
short=$(submit sleep '{"ms":800}'); sleep 0.2
short_actor=$(curl -s "$u/api/actors?kind=task" | jq -r --arg id "$short" '.data.actors[] | select(.name == $id) | .id')
check "a trace ends when its actor stops, saying so" \
  bash -c "timeout 8 curl -sN '$u/api/actors/$node/$short_actor/trace?seconds=60' | grep -q 'the actor stopped'"
check "seconds=0 is refused naming the field" bash -c "curl -s '$u/api/actors/$node/$sched/trace?seconds=0' | jq -e '.error.field == \"seconds\"'"

echo "introspection: event feed"
curl -sN "$u/api/events?seconds=2&types=task" >"$t/events.txt" &
sleep 0.3
eid=$(submit); wait $!
check "the feed streams the task's transitions" bash -c "grep -q '\"task_id\":\"$eid\"' '$t/events.txt' && grep -q '\"to\":\"completed\"' '$t/events.txt'"
first=$(grep '^id: ' "$t/events.txt" | head -1 | cut -d' ' -f2)
second=$(grep '^id: ' "$t/events.txt" | sed -n 2p | cut -d' ' -f2)
curl -sN -H "Last-Event-ID: $first" "$u/api/events?seconds=1" >"$t/resumed.txt"
check "Last-Event-ID resumes right after that event" bash -c "[ \"\$(grep '^id: ' '$t/resumed.txt' | head -1 | cut -d' ' -f2)\" = '$second' ]"
check "types filters" bash -c "! grep -q '^event: agent' '$t/events.txt'"
check "a bad type is refused naming the field" bash -c "curl -s '$u/api/events?types=nope' | jq -e '.error.field == \"types\"'"
# Streams have a budget of their own ([server] max_streams = 4 here), and one client (here:
# one address, the API being open) gets at most max_streams_per_client = 3 of it.
streams=()
for i in 1 2 3; do curl -sN "$u/api/events?seconds=8" >/dev/null & streams+=($!); done
code_of() { curl -s -o /dev/null -w '%{http_code}' --max-time 0.3 "$@"; }
for i in $(seq 50); do [ "$(code_of "$u/api/events?seconds=1")" = 429 ] && break; sleep 0.1; done
check "a fourth stream from one client gets 429 too_many_streams" \
  bash -c "curl -s '$u/api/events?seconds=1' | jq -e '.error.code == \"too_many_streams\"'"
curl -sN --interface 127.0.0.2 "$u/api/events?seconds=8" >/dev/null & streams+=($!)
for i in $(seq 50); do [ "$(code_of --interface 127.0.0.3 "$u/api/events?seconds=1")" = 503 ] && break; sleep 0.1; done
check "past max_streams on the node, another client's stream gets 503" \
  bash -c "curl -s --interface 127.0.0.3 '$u/api/events?seconds=1' | jq -e '.error.code == \"too_many_streams\"'"
check "plain requests still answer while every stream slot is taken" bash -c "curl -s -o /dev/null -w '%{http_code}' '$u/api/hive/status' | grep -q 200"
check "and so does /health" bash -c "curl -s -o /dev/null -w '%{http_code}' --max-time 1 '$u/health' | grep -q '200\\|503'"
wait "${streams[@]}"

echo
[ "$failed" -eq 0 ] && echo "introspection: all passed" || { echo "introspection: $failed failed"; tail -20 "$t/node.log"; }
exit "$failed"
