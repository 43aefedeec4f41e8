#!/usr/bin/env bash
# Benchmarks: a table on stdout and one JSON line per figure (prefixed "BENCH ").
#   scripts/bench.sh [FIGURE...]     default: all of them but peer (minutes: name it)
# Figures: caf_request_response tasks_inproc tasks_http tasks_http_batch pending_memory restart_recovery
#          tasks_http_sequential (one client, one task per request, keep-alive: sqlite_synchronous normal, and full
#          next to a bare write+fdatasync loop in the node's data directory; the client's own ceiling against bare
#          cpp-httplib beside it; BENCH_SEQ_TASKS, default 20000)
#          peer = peer_submit_loop peer_end_to_end peer_batch peer_latency_p99 peer_pending_memory: hub / Celery 5 on
#          Redis 7 (tests/bench/peer/; hub normal vs Redis appendonly everysec, both defaults beside it; several
#          minutes; BENCH_PEER_TASKS, default 20000, BENCH_PEER_PENDING, default 100000, BENCH_PEER_RATE/s,
#          default 500, for BENCH_PEER_SECONDS, default 5)
#          metrics_scrape auth_overhead health_under_attack (/health p99 under slowloris + logins + long-polls)
#          breaker_overhead (BENCH_BREAKER_TASKS, default 50000, x3 rounds each way)
#          durable = pg_tasks_durable sqlite_tasks_durable pg_enqueue_start_latency (BENCH_DURABLE_TASKS, default
#          50000; a throw-away PostgreSQL server, pgbench insert-only TPS beside it)
#          cluster = cluster_placement_overhead cluster_throughput_ratio cluster_kill_detection cluster_kill_reassign
#          (local clusters via scripts/cluster.sh; BENCH_CLUSTER_TASKS, default 30000)
#          mlp_train (+ mlp_train_cuda on a machine with a GPU; BENCH_MLP_SECONDS, default 10)
#          routing_quality = routing_failed_attempts routing_completion_time ([neural] mode advanced vs basic;
#          BENCH_ROUTING_TASKS, default 20000, at BENCH_ROUTING_RATE/s, default 1200)
# Scale with BENCH_TASKS (tasks_inproc, default 200000), BENCH_PENDING (default 1000000),
# BENCH_RECOVERY (default 1000000), BENCH_SECONDS (wrk duration, default 10).
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --bench >/dev/null
scripts/build.sh >/dev/null || { echo "bench: build failed"; exit 1; }
command -v wrk >/dev/null || { echo "bench: needs wrk"; exit 2; }

BIN=build/ai-orchestrator-hub
B=build/hub_bench
T=$(mktemp -d /tmp/hub-bench.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -KILL "$p" 2>/dev/null; done; rm -rf "$T"; }
trap cleanup EXIT
ROWS=()

# figure NAME VALUE UNIT TARGET JSON
figure() {
  ROWS+=("$(printf '%-26s %14s %-10s %s' "$1" "$2" "$3" "$4")")
  echo "BENCH $5"
}
free_port() { local p; while :; do p=$(( (RANDOM % 12000) + 20000 )); (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }; done; }
wait_ready() { for _ in $(seq 1 600); do curl -fs -o /dev/null "http://127.0.0.1:$1/readyz" && return 0; sleep 0.05; done; return 1; }
jqv() { jq -r "$2" <<<"$1"; }

cat >"$T/post.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = os.getenv("WRK_BODY") or '{"description":"bench","type":"echo","payload":{"n":1}}'
if os.getenv("WRK_API_KEY") then wrk.headers["X-API-Key"] = os.getenv("WRK_API_KEY") end
done = function(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status + summary.errors.timeout
  -- rps counts successful (2xx) answers only; non-2xx answers are in "errors".
  io.write(string.format('{"requests":%d,"duration_s":%.3f,"rps":%.1f,"p50_ms":%.3f,"p99_ms":%.3f,"errors":%d}\n',
    summary.requests, summary.duration / 1e6, (summary.requests - errors) / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, errors))
end
LUA
wrk_json() { wrk "$@" -s "$T/post.lua" | tail -1; }

# start_node DIR PORT [ENV=VALUE...]: a node for a benchmark, pid left in NODE.
start_node() {
  local dir=$1 port=$2; shift 2
  mkdir -p "$dir"
  ( cd "$dir" && exec env HIVE_SERVER__HOST=127.0.0.1 HIVE_SERVER__PORT="$port" HIVE_TASKS__MAX_QUEUE_SIZE=10000000 \
      HIVE_SERVER__WORKERS=64 HIVE_SECURITY__RATE_LIMIT_REQUESTS_PER_MINUTE=100000000 HIVE_LOGGING__LEVEL=warn "$@" \
      "$OLDPWD/$BIN" >"$dir/node.log" 2>&1 ) & PIDS+=($!)
  NODE=${PIDS[-1]}
  wait_ready "$port"
}

run_caf() {
  local r; r=$($B caf_rr 1000000 | tail -1)
  CAF_RPS=$(jqv "$r" .requests_per_second)
  figure caf_request_response "$(printf %.0f "$CAF_RPS")" "req/s" "(reference)" "$r"
}

run_inproc() {
  local n=${BENCH_TASKS:-200000} r
  [ -n "${CAF_RPS:-}" ] || run_caf
  mkdir -p "$T/inproc"
  r=$($B inproc "$n" "$T/inproc" 2>/dev/null | tail -1)
  local tps; tps=$(jqv "$r" .tasks_per_second)
  r=$(jq -c --argjson caf "$CAF_RPS" '. + {caf_request_response_per_second: $caf, ratio_to_caf: (.tasks_per_second / $caf), target_tasks_per_second: 50000}' <<<"$r")
  figure tasks_inproc "$(printf %.0f "$tps")" "tasks/s" ">= 50000" "$r"
}

run_http() {
  local secs=${BENCH_SECONDS:-10} port bare node r_bare r_hub
  port=$(free_port)
  $B bare_http "$port" & PIDS+=($!)
  sleep 0.5
  r_bare=$(wrk_json -t2 -c64 -d"${secs}s" --latency "http://127.0.0.1:$port/api/tasks")
  kill -KILL "${PIDS[-1]}" 2>/dev/null
  port=$(free_port)
  start_node "$T/http" "$port" || { echo "bench: node did not start"; return; }
  node=$NODE
  r_hub=$(wrk_json -t2 -c64 -d"${secs}s" --latency "http://127.0.0.1:$port/api/tasks")
  local r; r=$(jq -nc --argjson hub "$r_hub" --argjson bare "$r_bare" \
    '{figure:"tasks_http", hub:$hub, bare_httplib:$bare, ratio:($hub.rps/$bare.rps), target_ratio:0.70, target_p99_ms:25}')
  figure tasks_http "$(printf %.0f "$(jqv "$r_hub" .rps)")" "req/s" ">= 70% of bare" "$r"
  figure tasks_http_ratio "$(printf %.2f "$(jqv "$r" .ratio)")" "x bare" ">= 0.70 (bare $(printf %.0f "$(jqv "$r_bare" .rps)") req/s)" \
    "$(jq -c '{figure:"tasks_http_ratio", ratio, target_ratio}' <<<"$r")"
  figure tasks_http_p99 "$(jqv "$r_hub" .p99_ms)" "ms" "<= 25" "$(jq -nc --argjson h "$r_hub" '{figure:"tasks_http_p99", p99_ms:$h.p99_ms, p50_ms:$h.p50_ms, target_p99_ms:25}')"
  # Batches of 100 tasks per request.
  local body; body=$(jq -nc '{tasks: [range(100) | {description: "bench \(.)", type: "echo"}]}')
  local r_batch; r_batch=$(WRK_BODY="$body" wrk_json -t2 -c16 -d"${secs}s" --latency "http://127.0.0.1:$port/api/tasks/batch")
  local tps; tps=$(jq -r '.rps * 100' <<<"$r_batch")
  figure tasks_http_batch "$(printf %.0f "$tps")" "tasks/s" ">= 100000" \
    "$(jq -c --argjson t "$tps" '{figure:"tasks_http_batch", tasks_per_second:$t, requests:., target_tasks_per_second:100000}' <<<"$r_batch")"
  kill -TERM "$node"; wait "$node" 2>/dev/null
}

# One client, one task per request: the figure of a user's script (tests/bench/http_sequential.py).
run_http_sequential() {
  local r
  r=$(python3 tests/bench/http_sequential.py "$BIN" "$B" "$T/sequential" | tail -1)
  [ -n "$r" ] || { echo "bench: tasks_http_sequential failed (logs: $T/sequential)"; return; }
  figure tasks_http_sequential "$(printf %.0f "$(jqv "$r" .normal_tasks_per_second)")" "tasks/s" \
    ">= 5000 (sqlite_synchronous normal; client ceiling $(printf %.0f "$(jqv "$r" .client_ceiling.requests_per_second)") req/s)" \
    "$(jq -c '{figure:"tasks_http_sequential", tasks_per_second:.normal_tasks_per_second, hub:.normal, client_ceiling,
               target_tasks_per_second:.target_normal_tasks_per_second}' <<<"$r")"
  figure tasks_http_sequential_full "$(printf %.2f "$(jqv "$r" .full_ratio_to_fsync_loop)")" "x fsync" \
    ">= 0.80 (full $(printf %.0f "$(jqv "$r" .full_tasks_per_second)") tasks/s; write+fdatasync loop $(printf %.0f "$(jqv "$r" .fsync_loop.ops_per_second)") ops/s)" \
    "$(jq -c '{figure:"tasks_http_sequential_full", ratio:.full_ratio_to_fsync_loop, tasks_per_second:.full_tasks_per_second,
               hub:.full, fsync_loop, client_ceiling, target_ratio:.target_full_ratio_to_fsync_loop}' <<<"$r")"
}

# The hub next to Celery 5 on Redis 7, same tasks, same machine, same run (tests/bench/peer/; Celery
# is Debian's, for /usr/bin/python3). Each row: hub normal / Redis AOF everysec, both defaults beside it.
run_peer() {
  local out durable defaults m
  out=$(/usr/bin/python3 tests/bench/peer/peer_bench.py "$BIN" "$T/peer")
  grep '^BENCH {"figure": "peer",' <<<"$out"
  durable=$(sed -n 's/^BENCH \(.*"pair": "durable".*\)/\1/p' <<<"$out")
  defaults=$(sed -n 's/^BENCH \(.*"pair": "defaults".*\)/\1/p' <<<"$out")
  [ -n "$durable" ] && [ -n "$defaults" ] || { echo "bench: peer failed (logs: $T/peer)"; return; }
  for m in submit_loop end_to_end batch latency_p99 pending_memory; do
    figure "peer_$m" "$(jqv "$durable" ".$m.ratio")" "x celery" \
      "$(jqv "$durable" ".$m.target") (hub $(jqv "$durable" ".$m.hub") vs $(jqv "$durable" ".$m.celery") $(jqv "$durable" ".$m.unit"); defaults: $(jqv "$defaults" ".$m.ratio")x)" \
      "$(jq -nc --arg m "$m" --argjson d "$durable" --argjson f "$defaults" \
        '{figure:("peer_" + $m), ratio:$d[$m].ratio, target:$d[$m].target, durable:($d[$m] + {hub_config:$d.hub, celery_config:$d.celery}),
          defaults:($f[$m] + {hub_config:$f.hub, celery_config:$f.celery})}')"
  done
}

run_pending() {
  local n=${BENCH_PENDING:-1000000} r
  mkdir -p "$T/pending"
  r=$($B pending "$n" "$T/pending" 2>/dev/null | tail -1)
  figure pending_memory "$(printf %.0f "$(jqv "$r" .bytes_per_task)")" "B/task" "<= 2048" \
    "$(jq -c '. + {target_bytes_per_task: 2048}' <<<"$r")"
}

run_recovery() {
  local n=${BENCH_RECOVERY:-1000000} port start ready r
  mkdir -p "$T/recovery"
  $B seed "$n" "$T/recovery" >/dev/null || { echo "bench: seeding failed"; return; }
  port=$(free_port)
  start=$(date +%s.%N)
  ( cd "$T/recovery" && exec env HIVE_SERVER__HOST=127.0.0.1 HIVE_SERVER__PORT="$port" HIVE_TASKS__MAX_QUEUE_SIZE=10000000 \
      HIVE_LOGGING__LEVEL=warn "$OLDPWD/$BIN" >"$T/recovery/node.log" 2>&1 ) & PIDS+=($!)
  wait_ready "$port"
  ready=$(date +%s.%N)
  local secs; secs=$(echo "$ready - $start" | bc)
  r=$(jq -nc --argjson n "$n" --argjson s "$secs" '{figure:"restart_recovery", tasks_in_store:$n, unfinished:($n/10), seconds_to_ready:$s, target_seconds:10}')
  figure restart_recovery "$secs" "s" "<= 10 ($n tasks, 10 % unfinished)" "$r"
  kill -TERM "${PIDS[-1]}"; wait "${PIDS[-1]}" 2>/dev/null
}

run_scrape() {
  local port; port=$(free_port)
  start_node "$T/scrape" "$port" 'HIVE_AGENTS__DEFAULT_POOL=["worker:general:1000"]' || { echo "bench: node did not start"; return; }
  local body; body=$(jq -nc '{tasks: [range(100) | {description: "unmatched \(.)", required_capabilities: [{name: "nobody"}]}]}')
  for _ in $(seq 1 90); do curl -s -o /dev/null -X POST -H 'Content-Type: application/json' --data-binary "$body" "http://127.0.0.1:$port/api/tasks/batch"; done
  sleep 2
  local actors; actors=$(curl -s "http://127.0.0.1:$port/metrics" | jq '[.data.current_metrics.actors[]] | add')
  local times=()
  for _ in $(seq 1 30); do times+=("$(curl -s -o /dev/null -w '%{time_total}' "http://127.0.0.1:$port/metrics?format=prometheus")"); done
  local sorted; sorted=$(printf '%s\n' "${times[@]}" | sort -n)
  local p50 p99; p50=$(sed -n 15p <<<"$sorted"); p99=$(tail -1 <<<"$sorted")
  local r; r=$(jq -nc --argjson a "$actors" --argjson p50 "$p50" --argjson max "$p99" \
    '{figure:"metrics_scrape", actors:$a, agents:1000, scrape_ms_p50:($p50*1000), scrape_ms_max:($max*1000), target_ms:50}')
  figure metrics_scrape "$(jq -r .scrape_ms_p50 <<<"$r")" "ms p50" "<= 50 (max $(jq -r .scrape_ms_max <<<"$r") ms, $actors actors)" "$r"
  kill -TERM "$NODE"; wait "$NODE" 2>/dev/null
}

run_auth() {
  local secs=${BENCH_SECONDS:-10} port off on
  port=$(free_port)
  start_node "$T/auth-off" "$port" || return
  off=$(wrk_json -t2 -c64 -d"${secs}s" "http://127.0.0.1:$port/api/tasks")
  kill -TERM "$NODE"; wait "$NODE" 2>/dev/null
  port=$(free_port)
  start_node "$T/auth-on" "$port" API_KEY=bench-api-key-0123456789 JWT_SECRET=bench-secret-0123456789-0123456789 || return
  on=$(WRK_API_KEY=bench-api-key-0123456789 wrk_json -t2 -c64 -d"${secs}s" "http://127.0.0.1:$port/api/tasks")
  kill -TERM "$NODE"; wait "$NODE" 2>/dev/null
  local r; r=$(jq -nc --argjson on "$on" --argjson off "$off" '{figure:"auth_overhead", auth_on:$on, auth_off:$off, ratio:($on.rps/$off.rps), target_ratio:0.95}')
  figure auth_overhead "$(printf %.2f "$(jq -r .ratio <<<"$r")")" "on/off" ">= 0.95 ($(jq -r .auth_on.rps <<<"$r") vs $(jq -r .auth_off.rps <<<"$r") req/s)" "$r"
}

# /health under an attack mix (slowloris + a login burst + a viewer's long-polls), probed like a
# load balancer: a new connection every 50 ms; the same probe on the quiet node first.
run_attack() {
  local r
  r=$(python3 tests/bench/attack_figures.py "$BIN" "$T/attack" --seconds "${BENCH_SECONDS:-10}" | tail -1)
  [ -n "$r" ] || { echo "bench: health_under_attack failed (log: $T/attack/node.log)"; return; }
  r=$(jq -c '{figure:"health_under_attack", p99_ms:.attack.p99_ms, p50_ms:.attack.p50_ms, max_ms:.attack.max_ms,
              failures:.attack.failures, quiet_p99_ms:.quiet.p99_ms, attackers, node_rss_bytes, node_alive, target_p99_ms:50}' <<<"$r")
  figure health_under_attack "$(jqv "$r" .p99_ms)" "ms p99" \
    "<= 50 (quiet $(jqv "$r" .quiet_p99_ms) ms; p50 $(jqv "$r" .p50_ms), max $(jqv "$r" .max_ms), $(jqv "$r" .failures) failed)" "$r"
}

run_breakers() {
  local n=${BENCH_BREAKER_TASKS:-50000} r
  mkdir -p "$T/breakers"
  r=$($B breaker_overhead "$n" "$T/breakers" 2>/dev/null | tail -1)
  r=$(jq -c '. + {target_ratio: 0.95}' <<<"$r")
  figure breaker_overhead "$(printf %.3f "$(jqv "$r" .ratio)")" "on/off" \
    ">= 0.95 ($(printf %.0f "$(jqv "$r" .tasks_per_second_breakers_on)") vs $(printf %.0f "$(jqv "$r" .tasks_per_second_breakers_off)") tasks/s)" "$r"
}

run_durable() {
  local n=${BENCH_DURABLE_TASKS:-50000} out pgb pg pgraw lat sq sqraw r
  out=$(tests/with_postgres.sh bash tests/bench/durable_figures.sh "$B" "$T" "$n")
  pick() { grep "\"measure\":\"$1\"" <<<"$out" | tail -1; }
  pgb=$(pick pgbench_insert_only); pg=$(pick pg_durable); pgraw=$(pick pg_raw_insert); lat=$(pick pg_latency)
  sq=$(pick sqlite_durable); sqraw=$(pick sqlite_raw_insert)
  r=$(jq -nc --argjson pg "$pg" --argjson pgb "$pgb" --argjson raw "$pgraw" \
    '{figure:"pg_tasks_durable", tasks_per_second:$pg.tasks_per_second, pgbench_insert_only_tps:$pgb.tps,
      ratio_to_pgbench:($pg.tasks_per_second / $pgb.tps), raw_batched_insert_rows_per_second:$raw.rows_per_second,
      tasks:$pg.tasks, target_tasks_per_second:20000}')
  figure pg_tasks_durable "$(printf %.0f "$(jqv "$r" .tasks_per_second)")" "tasks/s" \
    ">= 20000 (pgbench insert-only $(printf %.0f "$(jqv "$pgb" .tps)") tps; ratio $(printf %.2f "$(jqv "$r" .ratio_to_pgbench)"))" "$r"
  r=$(jq -nc --argjson s "$sq" --argjson raw "$sqraw" \
    '{figure:"sqlite_tasks_durable", tasks_per_second:$s.tasks_per_second, raw_batched_insert_rows_per_second:$raw.rows_per_second,
      ratio_to_raw:($s.tasks_per_second / $raw.rows_per_second), tasks:$s.tasks}')
  figure sqlite_tasks_durable "$(printf %.0f "$(jqv "$r" .tasks_per_second)")" "tasks/s" \
    "(raw batched insert $(printf %.0f "$(jqv "$sqraw" .rows_per_second)") rows/s; ratio $(printf %.2f "$(jqv "$r" .ratio_to_raw)"))" "$r"
  r=$(jq -c '{figure:"pg_enqueue_start_latency", p50_ms, p99_ms, max_ms, rate_per_second, peak_tasks_per_second, tasks, target_p99_ms:20}' <<<"$lat")
  figure pg_enqueue_start_p99 "$(jqv "$r" .p99_ms)" "ms" "<= 20 (p50 $(jqv "$r" .p50_ms) ms at $(jqv "$r" .rate_per_second) tasks/s = 50 % of peak)" "$r"
}

# Introspection: GET /api/actors over 10,000 live actors (1,000 agents + 9,000 task actors
# waiting for a capability nobody has), timed with curl.
run_actors() {
  local port; port=$(free_port)
  start_node "$T/actors" "$port" 'HIVE_AGENTS__DEFAULT_POOL=["worker:general:1000"]' || { echo "bench: node did not start"; return; }
  local u="http://127.0.0.1:$port" body
  body=$(jq -nc '{tasks: [range(100) | {description: "unmatched \(.)", required_capabilities: [{name: "nobody"}]}]}')
  for _ in $(seq 1 90); do curl -s -o /dev/null -X POST -H 'Content-Type: application/json' --data-binary "$body" "$u/api/tasks/batch"; done
  sleep 2
  local actors; actors=$(curl -s "$u/api/actors?limit=1" | jq .data.total)
  time_p50() {  # time_p50 PATH -> "p50_ms max_ms" over 30 requests
    local times=() sorted
    for _ in $(seq 1 30); do times+=("$(curl -s -o /dev/null -w '%{time_total}' "$u$1")"); done
    sorted=$(printf '%s\n' "${times[@]}" | sort -n)
    echo "$(awk '{print $1 * 1000}' <<<"$(sed -n 15p <<<"$sorted")") $(awk '{print $1 * 1000}' <<<"$(tail -1 <<<"$sorted")")"
  }
  local top full kind
  read -r top top_max <<<"$(time_p50 "/api/actors?sort=mailbox&limit=100")"
  read -r full full_max <<<"$(time_p50 "/api/actors?limit=10000")"
  read -r kind kind_max <<<"$(time_p50 "/api/actors?kind=agent&sort=messages&limit=100")"
  local r; r=$(jq -nc --argjson a "$actors" --argjson t "$top" --argjson tm "$top_max" --argjson f "$full" --argjson fm "$full_max" \
    --argjson k "$kind" --argjson km "$kind_max" \
    '{figure:"actors_list", actors:$a, sorted_top100_p50_ms:$t, sorted_top100_max_ms:$tm, all_10000_p50_ms:$f, all_10000_max_ms:$fm,
      kind_filter_p50_ms:$k, kind_filter_max_ms:$km, target_ms:100}')
  figure actors_list "$top" "ms p50" "<= 100 ($actors actors, sorted by mailbox, top 100; all 10,000: $full ms)" "$r"
  kill -TERM "$NODE"; wait "$NODE" 2>/dev/null
}

# What the registry costs every actor: CAF request/response to a plain actor vs to an
# instrumented one (the worst case: the handler itself does nothing), 6 alternating pairs.
run_instrumentation() {
  local plain=() inst=() i r
  for i in 1 2 3 4 5 6; do
    plain+=("$($B caf_rr 1000000 | tail -1 | jq .requests_per_second)")
    inst+=("$($B caf_rr_instrumented 1000000 | tail -1 | jq .requests_per_second)")
  done
  r=$(jq -nc --argjson p "$(printf '%s\n' "${plain[@]}" | jq -s .)" --argjson i "$(printf '%s\n' "${inst[@]}" | jq -s .)" \
    '{figure:"instrumentation_overhead", plain_requests_per_second:$p, instrumented_requests_per_second:$i,
      cost:(1 - ($i | add) / ($p | add)), added_ns_per_message:((($p | length) / ($i | add) - ($p | length) / ($p | add)) * 1e9)}')
  figure instrumentation_overhead "$(jq -r '.cost * 1000 | round / 10' <<<"$r")" "% slower" \
    "(reference: empty handler; +$(jq -r '.added_ns_per_message | round' <<<"$r") ns per message)" "$r"
}

# Tracing the scheduler under load, against the same workload untraced: three alternating pairs.
run_trace() {
  local n=${BENCH_TASKS:-100000} off=() on=() r i
  for i in 1 2 3; do
    mkdir -p "$T/tr$i-off" "$T/tr$i-on"
    off+=("$($B inproc "$n" "$T/tr$i-off" 2>/dev/null | tail -1 | jq .tasks_per_second)")
    on+=("$($B inproc_traced "$n" "$T/tr$i-on" 2>/dev/null | tail -1 | jq .tasks_per_second)")
  done
  r=$(jq -nc --argjson off "$(printf '%s\n' "${off[@]}" | jq -s .)" --argjson on "$(printf '%s\n' "${on[@]}" | jq -s .)" \
    '{figure:"trace_overhead", untraced_tasks_per_second:$off, traced_tasks_per_second:$on,
      cost:(1 - ($on | add) / ($off | add)), target_cost:0.05}')
  figure trace_overhead "$(jq -r '.cost * 100 | . * 10 | round / 10' <<<"$r")" "% slower" \
    "<= 5 (tasks_inproc, scheduler traced; $(jq -r '[.traced_tasks_per_second[] | round] | join("/")' <<<"$r") vs $(jq -r '[.untraced_tasks_per_second[] | round] | join("/")' <<<"$r") tasks/s)" "$r"
}

# hivectl top watching a node under a steady light load: the node's CPU with and without it.
run_top() {
  command -v tmux >/dev/null || { echo "bench: top_cpu needs tmux"; return; }
  local port; port=$(free_port)
  start_node "$T/top" "$port" || { echo "bench: node did not start"; return; }
  local u="http://127.0.0.1:$port" secs=${BENCH_TOP_SECONDS:-20} load_pid
  ( while :; do curl -s -o /dev/null -X POST -H 'Content-Type: application/json' -d '{"description":"load","type":"echo"}' "$u/api/tasks"; sleep 0.02; done ) &
  load_pid=$!
  cpu_ticks() { awk '{print $14 + $15}' "/proc/$NODE/stat"; }
  measure() {  # CPU % of one core used by the node over $secs
    local a b; a=$(cpu_ticks); sleep "$secs"; b=$(cpu_ticks)
    awk -v a="$a" -v b="$b" -v s="$secs" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", (b - a) / hz / s * 100 }'
  }
  sleep 2
  local without1 with1 without2 with2 session="bench-top-$$"
  without1=$(measure)
  tmux new-session -d -s "$session" -x 160 -y 48 "HIVE_URL=$u $PWD/build/hivectl top"
  sleep 1; with1=$(measure)
  tmux kill-session -t "$session"
  without2=$(measure)
  tmux new-session -d -s "$session" -x 160 -y 48 "HIVE_URL=$u $PWD/build/hivectl top"
  sleep 1; with2=$(measure)
  tmux kill-session -t "$session"
  kill "$load_pid" 2>/dev/null; wait "$load_pid" 2>/dev/null
  local r; r=$(jq -nc --argjson a "$without1" --argjson b "$with1" --argjson c "$without2" --argjson d "$with2" --argjson s "$secs" \
    '{figure:"top_cpu", seconds_each:$s, node_cpu_percent_without:[$a,$c], node_cpu_percent_with_top:[$b,$d],
      added_percent_of_a_core:((($b + $d) - ($a + $c)) / 2), target:2}')
  figure top_cpu "$(jq -r '.added_percent_of_a_core | . * 100 | round / 100' <<<"$r")" "% of a core" \
    "<= 2 (node at ~50 tasks/s: $without1/$without2 % without, $with1/$with2 % with top)" "$r"
  kill -TERM "$NODE"; wait "$NODE" 2>/dev/null
}

# The numeric figure of the neural engine: training throughput next to the BLAS ceiling.
run_mlp() {
  local r
  r=$(build/neural_bench mlp_train cpu "${BENCH_MLP_SECONDS:-10}")
  figure mlp_train "$(printf %.0f "$(jqv "$r" .samples_per_second)")" "samples/s" \
    ">= 60% of sgemm: $(printf %.1f "$(jqv "$r" .training_gflops)") of $(printf %.1f "$(jqv "$r" .sgemm_gflops)") GFLOP/s = $(printf %.2f "$(jqv "$r" .ratio_to_sgemm)") ($(jqv "$r" .backend))" "$r"
  r=$(build/neural_bench mlp_train cuda "${BENCH_MLP_SECONDS:-10}")
  if [ "$(jqv "$r" '.skipped // empty')" != "" ]; then
    echo "bench: mlp_train_cuda skipped: $(jqv "$r" .skipped)"
  else
    figure mlp_train_cuda "$(printf %.0f "$(jqv "$r" .samples_per_second)")" "samples/s" \
      ">= 50% of cuBLAS sgemm: $(printf %.1f "$(jqv "$r" .training_gflops)") of $(printf %.1f "$(jqv "$r" .sgemm_gflops)") GFLOP/s = $(printf %.2f "$(jqv "$r" .ratio_to_sgemm)") ($(jqv "$r" .backend))" "$r"
  fi
}

# Learned routing against the heuristic: the same hidden world, one run per mode.
run_routing() {
  local n=${BENCH_ROUTING_TASKS:-20000} rate=${BENCH_ROUTING_RATE:-1200} b a r
  b=$(build/routing_bench basic "$n" "$rate" 3 2>/dev/null | grep '"figure"')
  a=$(build/routing_bench advanced "$n" "$rate" 3 2>/dev/null | grep '"figure"')
  r=$(jq -nc --argjson b "$b" --argjson a "$a" '{figure:"routing_quality", basic:$b, advanced:$a,
      fewer_failed_attempts:(1 - $a.failed_attempts / $b.failed_attempts),
      lower_mean_completion:(1 - $a.mean_completion_ms / $b.mean_completion_ms),
      target_fewer_failed_attempts:0.20, target_lower_mean_completion:0.15}')
  figure routing_failed_attempts "$(printf %.0f "$(jqv "$r" '.fewer_failed_attempts * 100')")" "% fewer" \
    ">= 20 ($(jqv "$a" .failed_attempts) vs $(jqv "$b" .failed_attempts) failed attempts; success $(printf %.2f "$(jqv "$a" .attempt_success_rate)") vs $(printf %.2f "$(jqv "$b" .attempt_success_rate)"))" "$r"
  figure routing_completion_time "$(printf %.0f "$(jqv "$r" '.lower_mean_completion * 100')")" "% lower" \
    ">= 15 (mean $(printf %.0f "$(jqv "$a" .mean_completion_ms)") vs $(printf %.0f "$(jqv "$b" .mean_completion_ms)") ms, $n tasks at $rate/s, 20 agents)" \
    "$(jq -c '{figure:"routing_completion_time", lower_mean_completion, target_lower_mean_completion}' <<<"$r")"
}

# The cluster figures (tests/bench/cluster_figures.py starts local clusters with scripts/cluster.sh).
run_cluster() {
  local which=("$@") out line
  out=$(python3 tests/bench/cluster_figures.py "${which[@]}")
  while IFS= read -r line; do
    case "$(jq -r .measure <<<"$line")" in
      placement)
        figure cluster_placement_overhead "$(jqv "$line" .overhead_p50_us)" "us p50" \
          "<= 300 (remote p50 $(jqv "$line" .remote_p50_ms) ms vs local $(jqv "$line" .local_p50_ms) ms, submit+wait over HTTP)" \
          "$(jq -c '. + {figure:"cluster_placement_overhead", target_us:300}' <<<"$line")" ;;
      throughput)
        figure cluster_throughput_ratio "$(jqv "$line" .ratio)" "x 1 node" \
          ">= 2.0 (3 nodes $(jqv "$line" .three_nodes.tasks_per_second) vs 1 node $(jqv "$line" .single_node.tasks_per_second) tasks/s on $(jqv "$line" .cores) cores)" \
          "$(jq -c '. + {figure:"cluster_throughput_ratio", target_ratio:2.0}' <<<"$line")" ;;
      failover)
        figure cluster_kill_detection "$(jqv "$line" .detection_seconds)" "s" "<= 1 (kill -9 seen by another node)" \
          "$(jq -c '{figure:"cluster_kill_detection", detection_seconds, target_seconds:1}' <<<"$line")"
        figure cluster_kill_reassign "$(jqv "$line" .reassign_seconds)" "s" \
          "(measured; down_after_ms 5000; all $(jqv "$line" .tasks) tasks completed after $(jqv "$line" .all_completed_seconds) s)" \
          "$(jq -c '. + {figure:"cluster_kill_reassign"}' <<<"$line")" ;;
    esac
  done <<<"$out"
}

want=("$@")
[ ${#want[@]} -eq 0 ] && want=(caf_request_response tasks_inproc tasks_http tasks_http_sequential pending_memory restart_recovery metrics_scrape auth_overhead health_under_attack breaker_overhead
                               durable cluster mlp_train routing_quality actors_list instrumentation_overhead trace_overhead top_cpu)
for f in "${want[@]}"; do
  case "$f" in
    caf_request_response) run_caf ;;
    tasks_inproc) run_inproc ;;
    tasks_http|tasks_http_batch) run_http ;;
    tasks_http_sequential|tasks_http_sequential_full) run_http_sequential ;;
    peer|peer_submit_loop|peer_end_to_end|peer_batch|peer_latency_p99|peer_pending_memory) run_peer ;;
    pending_memory) run_pending ;;
    restart_recovery) run_recovery ;;
    metrics_scrape) run_scrape ;;
    auth_overhead) run_auth ;;
    health_under_attack) run_attack ;;
    breaker_overhead) run_breakers ;;
    durable|pg_tasks_durable|sqlite_tasks_durable|pg_enqueue_start_latency) run_durable ;;
    cluster) run_cluster placement throughput failover ;;
    mlp_train|mlp_train_cuda) run_mlp ;;
    routing_quality|routing_failed_attempts|routing_completion_time) run_routing ;;
    actors_list) run_actors ;;
    trace_overhead) run_trace ;;
    instrumentation_overhead) run_instrumentation ;;
    top_cpu) run_top ;;
    cluster_placement_overhead) run_cluster placement ;;
    cluster_throughput_ratio) run_cluster throughput ;;
    cluster_kill_detection|cluster_kill_reassign) run_cluster failover ;;
    *) echo "bench: unknown figure $f" ;;
  esac
done
echo
printf '%-26s %14s %-10s %s\n' FIGURE VALUE UNIT TARGET
printf '%s\n' "${ROWS[@]}"
