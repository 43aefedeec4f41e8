#!/usr/bin/python3
"""The peer benchmark of issue #19: the same no-op tasks through the hub and through Celery 5 on
Redis 7, on this machine, in one run, each measured by the same Python client loop (http.client
keep-alive for the hub, Celery's own calls for Celery). Needs Debian's python3-celery,
python3-redis and redis-server (scripts/setup.sh --bench), hence /usr/bin/python3.

    peer_bench.py BINARY WORKDIR [--tasks N] [--rate R] [--seconds S] [--pending N]

Each system runs in two settings: the hub with sqlite_synchronous "full" (its default) and
"normal" (survives kill -9); Redis with its defaults and with `appendonly yes`,
`appendfsync everysec` (the setting closest to the hub's durability). Measures:
  submit_loop     one client submits N tasks one after another: accepted tasks/s
  end_to_end      the same N, from the first submission until all of them completed: tasks/s
  batch           N tasks in batches of 1,000 (the hub's POST /api/tasks/batch; a Celery group,
                  Celery's way to submit many tasks that each keep their own id, state and
                  result — `chunks` would make one task of many calls): accepted tasks/s
  latency         tasks due at a steady R/s for S seconds, each submitted and then waited for
                  by one of 8 client threads: submit -> complete p50/p99
  pending_memory  N' tasks that nothing runs (the hub: a capability no agent has; Celery: no
                  worker): node RSS delta vs Redis used_memory delta, per task
One `BENCH {json}` line per measure and per system, then one per pair of settings compared
(hub / Celery: "durable" = hub normal vs Redis AOF everysec, "defaults" = both defaults), and
a table. Environment: BENCH_PEER_TASKS (default 20000), BENCH_PEER_RATE (500),
BENCH_PEER_SECONDS (5), BENCH_PEER_PENDING (100000; the issue's figure is 1000000).
"""
import argparse
import gc
import json
import os
import signal
import sys
import threading
import time
import traceback

from hub import ECHO_TASK, UNRUNNABLE_TASK, HubClient, HubNode, wait_for

try:
    from celery import group
    from celery.result import ResultSet

    from celery_side import CeleryWorker, RedisServer
    from noop_app import NOOP, make_app
except ImportError as missing:
    sys.exit(f"peer_bench: {missing}: run it with Debian's /usr/bin/python3 after scripts/setup.sh --bench")

BATCH = 1000
LATENCY_THREADS = 8
WARMUP_TASKS = 200
DRAIN_TIMEOUT = 600  # seconds: a system that has not run its queue by then has stalled


def emit(record):
    print("BENCH " + json.dumps(record), flush=True)
    return record


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]



class Hub:
    """A system as the measures see it: submit one, submit a batch, wait until everything
    submitted is done, and a submit-and-wait probe for the latency threads."""

    name = "hub"

    def __init__(self, binary, workdir, synchronous):
        self.config = f"sqlite_synchronous={synchronous}"
        # Every latency thread holds a long-poll (GET /api/tasks/{id}/wait) at times.
        self.node = HubNode(binary, os.path.join(workdir, f"hub-{synchronous}"), synchronous,
                            {"HIVE_SERVER__MAX_STREAMS": "256", "HIVE_SERVER__MAX_STREAMS_PER_CLIENT": "128"})
        self.client = HubClient(self.node.port)

    def submit(self):
        self.client.submit(ECHO_TASK)

    def submit_batch(self, size):
        self.client.submit_batch([ECHO_TASK] * size)

    def wait_all(self):
        """Waits until no task is left unfinished (every one was stored at its 201); a failed
        no-op is an error, as it is for Celery."""
        wait_for(self._settled, DRAIN_TIMEOUT, "hub tasks finished")

    def _settled(self):
        by_status = self.client.hive_tasks()["by_status"]
        if by_status.get("failed"):
            raise RuntimeError(f"{by_status['failed']} hub no-op tasks failed")
        return not any(by_status.get(s) for s in ("pending", "assigned", "running"))

    def latency_probe(self):
        """A submit-and-wait callable for one client thread, on a connection of its own."""
        client = HubClient(self.node.port)

        def probe():
            status = client.wait(client.submit(ECHO_TASK))
            if status != "completed":
                raise RuntimeError(f"hub task ended {status}")

        return probe

    def close(self):
        self.client.close()
        self.node.stop()


class Celery:
    """The same for Celery: a Redis server, a worker, and the client's AsyncResults."""

    name = "celery"

    def __init__(self, workdir, append_only):
        self.config = "redis appendonly everysec" if append_only else "redis defaults"
        self.redis = RedisServer(workdir, append_only)
        self.app = make_app(self.redis.url)
        self.noop = self.app.tasks[NOOP]
        try:
            self.worker = CeleryWorker(self.app, self.redis.url, self.redis.dir)
        except BaseException:
            self.redis.stop()
            raise
        self.pending = []

    def submit(self):
        self.pending.append(self.noop.delay(1))

    def submit_batch(self, size):
        self.pending.extend(group(self.noop.s(1) for _ in range(size)).apply_async().results)

    def wait_all(self):
        ResultSet(self.pending, app=self.app).join_native(timeout=DRAIN_TIMEOUT)  # raises if one failed
        self.pending = []

    def latency_probe(self):
        noop = self.app.tasks[NOOP]  # the result backend is per thread: this thread's own

        def probe():
            noop.delay(1).get(timeout=30)

        return probe

    def close(self):
        # An AsyncResult unsubscribes from Redis when it is collected: let them all go while
        # Redis is still there (else each one retries its connection for seconds).
        self.pending = []
        gc.collect()
        self.worker.stop()
        self.app.close()
        self.redis.stop()


def measure_submit_loop(system, n):
    """One client, one task at a time; end to end runs on until the last one completed."""
    started = time.perf_counter()
    for _ in range(n):
        system.submit()
    submitted = time.perf_counter()
    system.wait_all()
    finished = time.perf_counter()
    base = {"figure": "peer", "system": system.name, "config": system.config, "tasks": n}
    return (emit({**base, "measure": "submit_loop", "seconds": round(submitted - started, 3),
                  "tasks_per_second": round(n / (submitted - started), 1)}),
            emit({**base, "measure": "end_to_end", "seconds": round(finished - started, 3),
                  "tasks_per_second": round(n / (finished - started), 1)}))


def measure_batches(system, n):
    batches = max(1, n // BATCH)
    started = time.perf_counter()
    for _ in range(batches):
        system.submit_batch(BATCH)
    submitted = time.perf_counter()
    system.wait_all()  # not timed: the next measure starts on an empty queue
    return emit({"figure": "peer", "measure": "batch", "system": system.name, "config": system.config,
                 "tasks": batches * BATCH, "batch_size": BATCH, "seconds": round(submitted - started, 3),
                 "tasks_per_second": round(batches * BATCH / (submitted - started), 1)})


def measure_latency(system, rate, seconds):
    """Paced: task i is due at start + i/rate and submitted by one of LATENCY_THREADS threads,
    which then waits for it; latency runs from just before the submission until the client saw
    it done. A thread whose previous task is not done yet starts late: `late_p99_ms` and
    `achieved_rate_per_second` tell when the client or the system could not hold the rate."""
    n = max(1, int(rate * seconds))
    latencies, lateness, began_at, errors = [], [], [], []
    schedule = {}
    barrier = threading.Barrier(LATENCY_THREADS, action=lambda: schedule.setdefault("start", time.perf_counter() + 0.05))

    def run(first):
        try:
            probe = system.latency_probe()
        except Exception as e:  # reported below; the barrier must not wait for this thread forever
            errors.append(repr(e))
            barrier.abort()
            return
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            return
        for i in range(first, n, LATENCY_THREADS):
            due = schedule["start"] + i / rate
            ahead = due - time.perf_counter()
            if ahead > 0:
                time.sleep(ahead)
            began = time.perf_counter()
            try:
                probe()
            except Exception as e:
                errors.append(repr(e))
                return
            latencies.append(time.perf_counter() - began)
            lateness.append(max(0.0, began - due))
            began_at.append(began)

    threads = [threading.Thread(target=run, args=(j,)) for j in range(LATENCY_THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"{system.name} latency: {errors[0]} ({len(errors)} errors)")
    ms = [x * 1000 for x in latencies]
    return emit({"figure": "peer", "measure": "latency", "system": system.name, "config": system.config,
                 "tasks": n, "rate_per_second": rate, "threads": LATENCY_THREADS,
                 "achieved_rate_per_second": round((n - 1) / (max(began_at) - min(began_at)), 1) if n > 1 else None,
                 "p50_ms": round(percentile(ms, 0.50), 3), "p99_ms": round(percentile(ms, 0.99), 3),
                 "max_ms": round(max(ms), 3), "late_p99_ms": round(percentile(lateness, 0.99) * 1000, 3)})


def run_system(system, args):
    try:
        for _ in range(WARMUP_TASKS):
            system.submit()
        system.wait_all()
        loop, e2e = measure_submit_loop(system, args.tasks)
        return {"submit_loop": loop, "end_to_end": e2e, "batch": measure_batches(system, args.tasks),
                "latency": measure_latency(system, args.rate, args.seconds)}
    except BaseException as failure:
        # The failed measure's frames may hold Celery AsyncResults, which talk to Redis when
        # collected: let them go now, while Redis is still up (close() collects them).
        traceback.clear_frames(failure.__traceback__)
        raise
    finally:
        system.close()


def hub_pending_memory(binary, workdir, n):
    with HubNode(binary, os.path.join(workdir, "hub-pending"), "normal") as node:
        client = HubClient(node.port)
        before = node.rss_bytes()
        for first in range(0, n, BATCH):
            client.submit_batch([UNRUNNABLE_TASK] * min(BATCH, n - first))
        wait_for(lambda: client.hive_tasks()["unmatched"] >= n, DRAIN_TIMEOUT, "hub tasks parked")
        after = node.rss_bytes()
        client.close()
    return emit({"figure": "peer", "measure": "pending_memory", "system": "hub", "config": "node RSS",
                 "tasks": n, "before_bytes": before, "after_bytes": after, "bytes_per_task": round((after - before) / n, 1)})


def celery_pending_memory(workdir, n):
    with RedisServer(workdir, append_only=False) as server:
        app = make_app(server.url)
        noop = app.tasks[NOOP]
        before = server.used_memory()
        # ignore_result: the submitting client holds no result subscriptions in Redis, so what
        # is measured is the queued tasks alone (their messages are the same size either way).
        for _ in range(n):
            noop.apply_async((1,), ignore_result=True)
        app.close()
        gc.collect()
        wait_for(lambda: server.queue_length() == n, 60, "celery tasks queued")
        after = server.used_memory()
    return emit({"figure": "peer", "measure": "pending_memory", "system": "celery", "config": "redis used_memory",
                 "tasks": n, "before_bytes": before, "after_bytes": after, "bytes_per_task": round((after - before) / n, 1)})


def versus(hub, celery, key, unit, target):
    return {"hub": hub[key], "celery": celery[key], "unit": unit, "ratio": round(hub[key] / celery[key], 3),
            "target": target}


def compare(pair, hub, celery, memory):
    """hub / Celery for every measure: above 1 is better for rates, below 1 for latency and memory."""
    return emit({
        "figure": "peer_ratios", "pair": pair, "hub": hub["submit_loop"]["config"], "celery": celery["submit_loop"]["config"],
        "submit_loop": versus(hub["submit_loop"], celery["submit_loop"], "tasks_per_second", "tasks/s", ">= 1.5"),
        "end_to_end": versus(hub["end_to_end"], celery["end_to_end"], "tasks_per_second", "tasks/s", ">= 3"),
        "batch": versus(hub["batch"], celery["batch"], "tasks_per_second", "tasks/s", ">= 3"),
        "latency_p99": versus(hub["latency"], celery["latency"], "p99_ms", "ms", "< 1"),
        "pending_memory": versus(memory["hub"], memory["celery"], "bytes_per_task", "B/task", "< 1")})


def print_table(results, memory, ratios):
    print()
    print(f"{'system':<8} {'config':<28} {'submit/s':>10} {'e2e/s':>10} {'batch/s':>10} {'p50 ms':>8} {'p99 ms':>8}")
    for r in results:
        print(f"{r['submit_loop']['system']:<8} {r['submit_loop']['config']:<28} {r['submit_loop']['tasks_per_second']:>10.0f} "
              f"{r['end_to_end']['tasks_per_second']:>10.0f} {r['batch']['tasks_per_second']:>10.0f} "
              f"{r['latency']['p50_ms']:>8.2f} {r['latency']['p99_ms']:>8.2f}")
    for m in memory.values():
        print(f"pending memory, {m['system']} ({m['config']}): {m['bytes_per_task']:.0f} B/task at {m['tasks']}")
    for r in ratios:
        print(f"hub / celery, {r['pair']} ({r['hub']} vs {r['celery']}): "
              + ", ".join(f"{m} {r[m]['ratio']}x (target {r[m]['target']})"
                          for m in ("submit_loop", "end_to_end", "batch", "latency_p99", "pending_memory")))


def main():
    env = os.environ.get
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("binary")
    parser.add_argument("workdir")
    parser.add_argument("--tasks", type=int, default=int(env("BENCH_PEER_TASKS", "20000")))
    parser.add_argument("--rate", type=float, default=float(env("BENCH_PEER_RATE", "500")))
    parser.add_argument("--seconds", type=float, default=float(env("BENCH_PEER_SECONDS", "5")))
    parser.add_argument("--pending", type=int, default=int(env("BENCH_PEER_PENDING", "100000")))
    args = parser.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    # Stopped from outside: unwind, so that every server and worker started is stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    hub_full = run_system(Hub(args.binary, args.workdir, "full"), args)
    hub_normal = run_system(Hub(args.binary, args.workdir, "normal"), args)
    celery_default = run_system(Celery(args.workdir, append_only=False), args)
    celery_aof = run_system(Celery(args.workdir, append_only=True), args)
    memory = {"hub": hub_pending_memory(args.binary, args.workdir, args.pending),
              "celery": celery_pending_memory(args.workdir, args.pending)}
    ratios = [compare("durable", hub_normal, celery_aof, memory), compare("defaults", hub_full, celery_default, memory)]
    print_table([hub_full, hub_normal, celery_default, celery_aof], memory, ratios)
    return 0


if __name__ == "__main__":
    sys.exit(main())
