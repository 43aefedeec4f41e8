#!/usr/bin/env python3
"""The cluster figures, on local clusters started with scripts/cluster.sh; one JSON line each.

  cluster_figures.py [placement] [throughput] [failover]

placement   2 nodes: submit-to-completion latency of an echo task whose only fitting agent
            is on the node it was sent to (local) and on the other node (remote), interleaved;
            the cross-node overhead is the difference of the medians.
throughput  the tasks_inproc workload (echo tasks, in batches of 500; 8 agents x 32 slots per node)
            through the gateways of one node and of three nodes (each on its own SQLite file), clients round-robin over
            the gateways; tasks/s from the first submission to the last completion.
failover    3 nodes on one PostgreSQL: 300 sleep tasks accepted by n3, n3 killed with -9;
            how long until n1 sees n3 unreachable, until no unfinished task is n3's any more,
            and until every task completed.
Environment: BENCH_CLUSTER_TASKS (throughput, default 30000), BENCH_PLACEMENT_SAMPLES (default 400).
"""
import http.client
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def free_base(span=5):
    while True:
        base = random.randrange(20000, 31000, 5)
        if all(not port_open(base + i) for i in range(span)):
            return base


def port_open(port):
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


class Cluster:
    def __init__(self, n, postgres=False, env=None):
        self.dir = tempfile.mkdtemp(prefix="hub-cluster-bench.")
        self.env = dict(os.environ, HUB_CLUSTER_DIR=self.dir, **(env or {}))
        self.http_base, self.cluster_base = free_base(), free_base()
        args = [os.path.join(ROOT, "scripts/cluster.sh"), "start", str(n), "--http-base", str(self.http_base),
                "--cluster-base", str(self.cluster_base)] + (["--postgres"] if postgres else [])
        subprocess.run(args, env=self.env, check=True, stdout=subprocess.DEVNULL)
        self.n = n

    def port(self, i):  # i from 1
        return self.http_base + i - 1

    def sh(self, *args):
        subprocess.run([os.path.join(ROOT, "scripts/cluster.sh"), *args], env=self.env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self):
        subprocess.run([os.path.join(ROOT, "scripts/cluster.sh"), "stop", "--clean"], env=self.env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class Client:
    def __init__(self, port):
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def call(self, method, path, body=None):
        data = json.dumps(body) if body is not None else None
        for attempt in range(2):
            try:
                self.conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
                r = self.conn.getresponse()
                return r.status, json.loads(r.read() or b"null")
            except (http.client.HTTPException, ConnectionError, socket.timeout):
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                if attempt:
                    raise


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


def placement():
    samples = int(os.environ.get("BENCH_PLACEMENT_SAMPLES", "400"))
    c = Cluster(2)
    try:
        n1, n2 = Client(c.port(1)), Client(c.port(2))
        status, r = n2.call("POST", "/api/agents", {"name": "lat", "type": "worker", "max_concurrent_tasks": 4,
                                                    "capabilities": [{"name": "lat", "proficiency": 1}]})
        assert status == 201, r
        for _ in range(100):  # n1 learns of the agent with the next heartbeat
            _, a = n1.call("GET", "/api/agents?limit=1000")
            if any(x["name"] == "lat" for x in a["data"]["agents"]):
                break
            time.sleep(0.1)
        body = {"description": "latency", "type": "echo", "required_capabilities": [{"name": "lat"}]}

        def one(client):
            t0 = time.perf_counter()
            status, r = client.call("POST", "/api/tasks", body)
            assert status == 201, r
            status, w = client.call("GET", "/api/tasks/%s/wait?timeout_ms=10000" % r["data"]["id"])
            assert w["data"]["status"] == "completed", w
            return (time.perf_counter() - t0) * 1000.0

        for _ in range(50):
            one(n1), one(n2)
        local, remote = [], []
        for _ in range(samples):
            local.append(one(n2))
            remote.append(one(n1))
        out = {"measure": "placement", "samples": samples,
               "local_p50_ms": round(statistics.median(local), 3), "local_p99_ms": round(pct(local, 0.99), 3),
               "remote_p50_ms": round(statistics.median(remote), 3), "remote_p99_ms": round(pct(remote, 0.99), 3)}
        out["overhead_p50_us"] = round((out["remote_p50_ms"] - out["local_p50_ms"]) * 1000.0, 1)
        print(json.dumps(out), flush=True)
    finally:
        c.stop()


def run_load(ports, total, batch=500, clients_per_gateway=2):
    """Submits `total` echo tasks in batches round-robin over the gateways; returns tasks/s to the last completion."""
    batches = total // batch
    lock = threading.Lock()
    next_batch = [0]
    accepted = [0]
    body = {"tasks": [{"description": "bench %d" % i, "type": "echo", "payload": {"n": i}} for i in range(batch)]}

    def worker(port):
        client = Client(port)
        while True:
            with lock:
                if next_batch[0] >= batches:
                    return
                next_batch[0] += 1
            while True:
                status, r = client.call("POST", "/api/tasks/batch", body)
                if status == 201:
                    with lock:
                        accepted[0] += batch
                    break
                time.sleep(0.2)  # 503 backpressure: come back

    def completed():
        n = 0
        for p in ports:
            _, r = Client(p).call("GET", "/api/hive/status")
            n += r["data"]["tasks"]["by_status"].get("completed", 0) if "tasks" in r["data"] else 0
        return n

    base = completed()
    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(p,)) for p in ports for _ in range(clients_per_gateway)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    submitted = time.perf_counter() - t0
    while completed() - base < accepted[0]:
        if time.perf_counter() - t0 > 600:
            break
        time.sleep(0.2)
    elapsed = time.perf_counter() - t0
    return {"tasks": accepted[0], "seconds": round(elapsed, 2), "submit_seconds": round(submitted, 2),
            "tasks_per_second": round(accepted[0] / elapsed, 1)}


def throughput():
    total = int(os.environ.get("BENCH_CLUSTER_TASKS", "30000"))
    results = {}
    for n in (1, 3):
        # The agents of tasks_inproc (hub_bench): 8 workers x 32 slots per node.
        c = Cluster(n, env={"HIVE_AGENTS__DEFAULT_POOL": "worker:general:8", "HIVE_AGENTS__DEFAULT_MAX_CONCURRENT_TASKS": "32"})
        try:
            results[n] = run_load([c.port(i) for i in range(1, n + 1)], total)
        finally:
            c.stop()
    out = {"measure": "throughput", "single_node": results[1], "three_nodes": results[3],
           "ratio": round(results[3]["tasks_per_second"] / results[1]["tasks_per_second"], 2), "cores": os.cpu_count()}
    print(json.dumps(out), flush=True)


def failover():
    c = Cluster(3, postgres=True)
    try:
        pg_port = open(os.path.join(c.dir, "pg", "port")).read().strip()
        psql = ["/usr/lib/postgresql/15/bin/psql"] if os.path.exists("/usr/lib/postgresql/15/bin/psql") else ["psql"]

        def q(sql):
            return subprocess.run(psql + ["-h", "127.0.0.1", "-p", pg_port, "-U", "postgres", "-d", "hive_db", "-Atqc", sql],
                                  capture_output=True, text=True).stdout.strip()

        n1, n3 = Client(c.port(1)), Client(c.port(3))
        tasks = [{"description": "fo %d" % i, "type": "sleep", "payload": {"ms": 500}} for i in range(300)]
        status, r = n3.call("POST", "/api/tasks/batch", {"tasks": tasks})
        assert status == 201, r
        ids = [t["id"] for t in r["data"]["tasks"]]
        time.sleep(0.3)
        c.sh("kill", "n3")
        t0 = time.perf_counter()
        detected = reassigned = finished = None
        while time.perf_counter() - t0 < 120:
            now = time.perf_counter() - t0
            if detected is None:
                _, nodes = n1.call("GET", "/api/cluster/nodes")
                st = [x["status"] for x in nodes["data"]["nodes"] if x["name"] == "n3"]
                if st and st[0] != "up":
                    detected = now
            if reassigned is None and q("SELECT count(*) FROM tasks WHERE lease_owner = 'n3' AND status IN "
                                        "('pending','assigned','running')") == "0":
                reassigned = now
            if finished is None and q("SELECT count(*) FROM tasks WHERE status = 'completed'") == str(len(ids)):
                finished = now
            if detected is not None and reassigned is not None and finished is not None:
                break
            time.sleep(0.02 if detected is None else 0.1)
        out = {"measure": "failover", "tasks": len(ids), "detection_seconds": round(detected, 3) if detected else None,
               "reassign_seconds": round(reassigned, 2) if reassigned else None,
               "all_completed_seconds": round(finished, 2) if finished else None,
               "completed": int(q("SELECT count(*) FROM tasks WHERE status = 'completed'") or 0),
               "down_after_ms": 5000, "failure_timeout_ms": 2000}
        print(json.dumps(out), flush=True)
    finally:
        c.stop()


if __name__ == "__main__":
    wanted = sys.argv[1:] or ["placement", "throughput", "failover"]
    for name in wanted:
        {"placement": placement, "throughput": throughput, "failover": failover}[name]()
