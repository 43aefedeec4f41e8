#!/usr/bin/env bash
# Neural jobs as a user runs them, over HTTP: a neural.train task on inline rows (two
# interleaved spirals) and on a CSV file under <data_dir>/neural, progress while it runs, the
# model in GET /api/neural/models, neural.infer with its predictions, and clear refusals.
#   tests/deploy/neural_test.sh BUILT_BINARY
set -u
bin=${1:?usage: neural_test.sh BUILT_BINARY}
t=$(mktemp -d); pid=""
trap '[ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null; rm -rf "$t"' EXIT
failed=0
ok() { echo "  ok    $1"; }
bad() { echo "  FAIL  $1${2:+ — $2}"; failed=$((failed + 1)); }
while :; do p=$(( (RANDOM % 12000) + 20000 )); (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || break; done
u="http://127.0.0.1:$p"
mkdir -p "$t/data/neural"
( cd "$t" && exec env HIVE_SERVER__HOST=127.0.0.1 HIVE_SERVER__PORT="$p" DATABASE_URL="sqlite://$t/hive.db" \
    HIVE_SERVER__DATA_DIR="$t/data" HIVE_NEURAL__MODE=advanced "$bin" >"$t/node.log" 2>&1 ) & pid=$!
for _ in $(seq 1 200); do curl -fs -o /dev/null "$u/readyz" && break; sleep 0.05; done
post() { curl -s -XPOST -H 'Content-Type: application/json' --data-binary @- "$u/api/tasks"; }
wait_task() { curl -s "$u/api/tasks/$1/wait?timeout_ms=${2:-60000}" | jq -c .data; }

# Two interleaved spirals, 300 points each.
jq -nc '[range(0; 2) as $c | range(0; 300) as $i | (0.25 + 9.42477 * $i / 300) as $t | ($t / 9.67477) as $r |
         ($t + $c * 3.14159) as $a | {x: ($r * ($a | cos)), y: ($r * ($a | sin)), label: (if $c == 0 then "a" else "b" end)}]' >"$t/rows.json"
id=$(jq -c '{description: "learn the spirals", type: "neural.train", timeout_ms: 120000,
             payload: {model: "spirals", layers: [64, 64], data: ., target: "label", epochs: 600, batch_size: 50, learning_rate: 0.01}}' \
      "$t/rows.json" | post | jq -r .data.id)
progress=""
for _ in $(seq 1 100); do
  progress=$(curl -s "$u/api/tasks/$id" | jq -c '.data.progress // empty')
  [ -n "$progress" ] && break
  [ "$(curl -s "$u/api/tasks/$id" | jq -r .data.status)" = completed ] && break
  sleep 0.02
done
[ -n "$progress" ] && jq -e '.epoch >= 1 and .epochs == 600 and (.loss | type) == "number"' <<<"$progress" >/dev/null \
  && ok "progress while it trains: $progress" || bad "progress visible while training" "${progress:-none seen}"
r=$(wait_task "$id")
jq -e '.status == "completed" and .result.metrics.accuracy >= 0.95 and (.result.loss_curve | length) == 600 and
       .result.loss_curve[-1].loss < .result.loss_curve[0].loss and .result.saved' <<<"$r" >/dev/null \
  && ok "neural.train on inline rows: accuracy $(jq .result.metrics.accuracy <<<"$r"), backend $(jq -r .result.backend <<<"$r")" \
  || bad "neural.train on inline rows" "$(jq -c '{status, error, metrics: .result.metrics}' <<<"$r")"
curl -s "$u/api/neural/models/spirals" | jq -e '.data.metadata.classes == ["a", "b"] and .data.size_bytes > 0' >/dev/null \
  && ok "GET /api/neural/models/spirals describes the saved model" || bad "the model is listed"
r=$(jq -nc --slurpfile rows "$t/rows.json" '{description: "classify", type: "neural.infer",
      payload: {model: "spirals", inputs: [($rows[0][10] | {x, y}), [$rows[0][450].x, $rows[0][450].y]]}}' | post | jq -r .data.id)
r=$(wait_task "$r")
jq -e '.status == "completed" and .result.predictions == ["a", "b"] and (.result.probabilities | length) == 2' <<<"$r" >/dev/null \
  && ok "neural.infer predicts the right spiral for two points" || bad "neural.infer" "$r"

printf 'size,rooms,price\n50,2,150\n60,2,180\n80,3,240\n100,4,300\n120,4,360\n40,1,120\n90,3,270\n70,3,210\n' >"$t/data/neural/houses.csv"
r=$(jq -nc '{description: "regression from a CSV", type: "neural.train",
     payload: {model: "houses", csv: "houses.csv", target: "price", loss: "mse", layers: [16], epochs: 800, batch_size: 8, learning_rate: 0.01}}' | post | jq -r .data.id)
r=$(wait_task "$r")
jq -e '.status == "completed" and (.result.metrics.rmse | type) == "number" and .result.metrics.rmse < 30' <<<"$r" >/dev/null \
  && ok "neural.train from a CSV file (regression): rmse $(jq .result.metrics.rmse <<<"$r")" || bad "CSV regression" "$(jq -c '{status, error, m: .result.metrics}' <<<"$r")"
r=$(jq -nc '{description: "price a flat", type: "neural.infer", payload: {model: "houses", inputs: [{size: 110, rooms: 4}]}}' | post | jq -r .data.id)
r=$(wait_task "$r")
jq -e '.status == "completed" and (.result.predictions[0] > 280) and (.result.predictions[0] < 380)' <<<"$r" >/dev/null \
  && ok "the regression model prices a 110 m2 flat at $(jq .result.predictions[0] <<<"$r") (about 330 expected)" || bad "regression inference" "$r"

r=$(jq -nc '{description: "bad", type: "neural.train", payload: {model: "x", data: [[1, 2], [3]]}}' | post | jq -r .data.id)
r=$(wait_task "$r")
jq -e '.status == "failed" and (.error.message | test("payload.data\\[1\\]")) and .attempts == 1' <<<"$r" >/dev/null \
  && ok "a malformed job fails at once, naming the field: $(jq -r .error.message <<<"$r")" || bad "malformed job" "$r"
r=$(jq -nc '{description: "escape", type: "neural.train", payload: {model: "x", csv: "../../etc/passwd"}}' | post | jq -r .data.id)
r=$(wait_task "$r")
jq -e '.status == "failed" and (.error.message | test("payload.csv"))' <<<"$r" >/dev/null \
  && ok "a CSV path outside <data_dir>/neural is refused" || bad "CSV path escape" "$r"
r=$(jq -nc '{description: "missing", type: "neural.infer", payload: {model: "nope", inputs: [[1]]}}' | post | jq -r .data.id)
r=$(wait_task "$r")
jq -e '.status == "failed" and (.error.message | test("no model named"))' <<<"$r" >/dev/null \
  && ok "inference with an unknown model fails clearly" || bad "unknown model" "$r"
# Capability inference: tasks that name their capability teach the text model; a task that
# names none gets one predicted, stored on the task, and applied when confident.
for cap in translation summarization; do
  curl -s -XPOST -H 'Content-Type: application/json' \
    -d "{\"name\":\"$cap-agent\",\"type\":\"specialist\",\"specialization\":\"$cap\",\"capabilities\":[{\"name\":\"$cap\",\"proficiency\":0.9}]}" \
    "$u/api/agents" >/dev/null
done
langs=(french german spanish italian dutch polish)
docs=(report article memo paper thread email)
for i in $(seq 0 29); do
  jq -nc --arg l "${langs[$((i % 6))]}" '{description: ("translate this letter into " + $l), type: "echo", required_capabilities: [{name: "translation"}]}' | post >/dev/null
  jq -nc --arg d "${docs[$((i % 6))]}" '{description: ("summarize the attached " + $d + " in three sentences"), type: "echo", required_capabilities: [{name: "summarization"}]}' | post >/dev/null
done
sleep 1
id=$(jq -nc '{description: "please translate the contract into portuguese", type: "echo"}' | post | jq -r .data.id)
r=$(wait_task "$id" 10000)
jq -e '.status == "completed" and .inferred_capabilities.capabilities == ["translation"] and .inferred_capabilities.applied and
       .inferred_capabilities.confidence >= 0.6 and .required_capabilities[0].name == "translation"' <<<"$r" >/dev/null \
  && ok "a task naming no capability got one inferred from its text: $(jq -c .inferred_capabilities <<<"$r")" \
  || bad "capability inference (translation)" "$(jq -c '{status, inferred_capabilities, required_capabilities}' <<<"$r")"
id=$(jq -nc '{description: "summarize the quarterly report", type: "echo"}' | post | jq -r .data.id)
r=$(wait_task "$id" 10000)
jq -e '.inferred_capabilities.capabilities == ["summarization"]' <<<"$r" >/dev/null \
  && ok "and another one: $(jq -c .inferred_capabilities <<<"$r")" || bad "capability inference (summarization)" "$(jq -c .inferred_capabilities <<<"$r")"

curl -s "$u/api/resources" | jq -e '.data | has("gpu")' >/dev/null && ok "/api/resources has data.gpu ($(curl -s "$u/api/resources" | jq -c .data.gpu))" \
  || bad "/api/resources data.gpu"
[ "$failed" = 0 ] || tail -20 "$t/node.log"
echo "neural_test: $failed failed"
[ "$failed" = 0 ]
