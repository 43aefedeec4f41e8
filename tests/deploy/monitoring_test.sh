#!/usr/bin/env bash
# What the guide's monitoring section names, shipped and checked (issue #18): Prometheus's
# configurations and alert rules (promtool), the Alertmanager configuration (amtool), and the
# Grafana dashboard — valid JSON of a dashboard, every query valid PromQL (promtool), every
# metric it and the rules use one the node exports — and docker-compose's monitoring profile
# mounting files that exist.
#   tests/deploy/monitoring_test.sh BUILT_BINARY
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=$(readlink -f "${1:?usage: monitoring_test.sh BUILT_BINARY}")
t=$(mktemp -d); pid=""
trap '[ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null; rm -rf "$t"' EXIT
failed=0
check() { local name=$1; shift; if out=$("$@" 2>&1); then echo "  ok    $name"; else echo "  FAIL  $name — $(tail -c 600 <<<"$out")"; failed=$((failed + 1)); fi; }
cd "$root"

check "promtool: deploy/prometheus/prometheus.yml (with alerting to Alertmanager)" promtool check config deploy/prometheus/prometheus.yml
check "promtool: deploy/prometheus/prometheus-compose.yml" promtool check config deploy/prometheus/prometheus-compose.yml
check "promtool: deploy/prometheus/alert_rules.yml" promtool check rules deploy/prometheus/alert_rules.yml
if command -v amtool >/dev/null; then
  check "amtool: deploy/alertmanager/alertmanager.yml" amtool check-config deploy/alertmanager/alertmanager.yml
else
  echo "  skip  amtool is not installed (apt-get install prometheus-alertmanager)"
fi

# The dashboard: structure, then every query as a recording rule for promtool.
check "the Grafana dashboard is a dashboard (uid, title, panels with ids, positions and queries)" python3 - <<'PY'
import json, sys
d = json.load(open("deploy/grafana/ai-orchestrator-hub.json"))
assert d["uid"] and d["title"] and isinstance(d["schemaVersion"], int), "uid, title, schemaVersion"
ids = [p["id"] for p in d["panels"]]
assert len(ids) == len(set(ids)) and len(ids) >= 8, "panel ids unique, at least 8 panels"
for p in d["panels"]:
    assert p["type"] in ("timeseries", "stat"), p["type"]
    g = p["gridPos"]
    assert all(isinstance(g[k], int) for k in "xywh") and g["x"] + g["w"] <= 24, ("gridPos", p["title"])
    assert p["targets"] and all(t.get("expr") for t in p["targets"]), ("queries", p["title"])
names = [v["name"] for v in d["templating"]["list"]]
assert "datasource" in names and "instance" in names, names
PY
python3 - "$t/queries.yml" <<'PY'
import json, sys
d = json.load(open("deploy/grafana/ai-orchestrator-hub.json"))
with open(sys.argv[1], "w") as out:
    out.write("groups:\n  - name: dashboard\n    rules:\n")
    n = 0
    for p in d["panels"]:
        for t in p["targets"]:
            n += 1
            expr = t["expr"].replace("$instance", ".*")
            out.write("      - record: dashboard:query_%d\n        expr: %s\n" % (n, json.dumps(expr)))
PY
check "every dashboard query is valid PromQL (promtool)" promtool check rules "$t/queries.yml"

# Every metric named by the dashboard and the rules is exported by the node.
while :; do p=$(( (RANDOM % 12000) + 20000 )); (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || break; done
( cd "$t" && exec env HIVE_SERVER__HOST=127.0.0.1 HIVE_SERVER__PORT="$p" "$bin" >"$t/node.log" 2>&1 ) & pid=$!
for _ in $(seq 1 100); do curl -fs -o /dev/null "http://127.0.0.1:$p/readyz" && break; sleep 0.1; done
for i in 1 2 3; do curl -s -o /dev/null -XPOST "http://127.0.0.1:$p/api/tasks" -H 'Content-Type: application/json' -d '{"description":"m","type":"echo"}'; done
curl -s "http://127.0.0.1:$p/api/tasks/none/wait?timeout_ms=300" >/dev/null
curl -s "http://127.0.0.1:$p/metrics?format=prometheus" | grep -v '^#' | sed 's/[{ ].*//' | sed -E 's/_(bucket|sum|count)$//' | sort -u >"$t/exported"
grep -o 'ai_orchestrator_[a-z_]*' runtime/metrics.hpp | sed -E 's/_(bucket|sum|count)$//' | sort -u >"$t/declared"
grep -ho 'ai_orchestrator_[a-z_]*' deploy/grafana/ai-orchestrator-hub.json deploy/prometheus/alert_rules.yml | sed -E 's/_(bucket|sum|count)$//' | sort -u >"$t/used"
missing=$(comm -23 "$t/used" <(sort -u "$t/exported" "$t/declared"))
check "every metric the dashboard and the rules use is one the node exports ($(wc -l <"$t/used") names)" test -z "$missing"
[ -n "$missing" ] && echo "        missing: $missing"
live=$(comm -12 "$t/used" "$t/exported" | wc -l)
check "most of them are in a fresh node's scrape ($live of $(wc -l <"$t/used"); the rest appear with clusters, restarts, breakers)" \
  test "$live" -ge $(( $(wc -l <"$t/used") / 2 ))

check "docker-compose.yml's monitoring profile mounts files that exist" bash -c '
  for f in $(grep -o "\./deploy/[A-Za-z0-9_./-]*" docker-compose.yml | sort -u); do [ -e "$f" ] || { echo "missing $f"; exit 1; }; done'

[ "$failed" -eq 0 ] && echo "monitoring: all passed" || echo "monitoring: $failed failed"
exit "$failed"
