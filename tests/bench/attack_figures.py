#!/usr/bin/env python3
"""/health latency under an attack mix (issue #17's figure): a node with credentials set as in
production is probed like a load balancer would (a new connection every 50 ms, GET /health),
first alone, then while slowloris connections, a burst of logins (argon2id) and a viewer's
long-polls run against it. Prints one JSON object: p50/p99/max of the probe in both phases
and what the attackers managed.

    attack_figures.py BINARY WORKDIR [--seconds N] [--slow N] [--logins N] [--polls N]
"""
import argparse
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request

from peer.hub import free_port

SECRET = "bench-attack-secret-0123456789-0123456789"
PASSWORD = "a-long-password-123"


def request(port, method, path, body=None, headers=None, timeout=30):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method)
    req.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def percentile(values, q):
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Probe(threading.Thread):
    """GET /health on a fresh connection every 50 ms; latencies in ms (a failure counts as 2000)."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port, self.samples, self.failures, self.stop = port, [], 0, threading.Event()

    def run(self):
        while not self.stop.is_set():
            started = time.perf_counter()
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                    s.sendall(b"GET /health HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n")
                    reply = b""
                    while True:
                        chunk = s.recv(65536)
                        if not chunk:
                            break
                        reply += chunk
                ok = reply.startswith(b"HTTP/1.1 200") or reply.startswith(b"HTTP/1.1 503")
            except OSError:
                ok = False
            elapsed = (time.perf_counter() - started) * 1000
            if not ok:
                self.failures += 1
                elapsed = 2000.0
            self.samples.append(elapsed)
            self.stop.wait(max(0.0, 0.05 - elapsed / 1000))


def slowloris(port, count, stop, stats):
    """`count` connections that send a request head one header line every 3 s, never ending it."""
    socks = []
    while not stop.is_set():
        while len(socks) < count and not stop.is_set():
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=2)
                s.sendall(b"GET /api/tasks HTTP/1.1\r\nHost: slow\r\n")
                socks.append(s)
                stats["slow_opened"] += 1
            except OSError:
                break
        stop.wait(3)
        alive = []
        for s in socks:
            try:
                s.sendall(b"X-Slow: %d\r\n" % random.randint(0, 1 << 30))
                alive.append(s)
            except OSError:
                stats["slow_cut"] += 1
                s.close()
        socks = alive
    for s in socks:
        s.close()


def logins(port, stop, stats):
    while not stop.is_set():
        try:
            code, _ = request(port, "POST", "/api/auth/login", {"username": "burst", "password": PASSWORD})
        except OSError:
            code = "error"
        stats[f"login_{code}"] = stats.get(f"login_{code}", 0) + 1


def long_polls(port, token, task_id, stop, stats):
    while not stop.is_set():
        try:
            code, _ = request(port, "GET", f"/api/tasks/{task_id}/wait?timeout_ms=20000",
                              headers={"Authorization": f"Bearer {token}"}, timeout=25)
        except OSError:
            code = "error"
        stats[f"poll_{code}"] = stats.get(f"poll_{code}", 0) + 1
        if code != 202:
            stop.wait(0.2)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binary")
    parser.add_argument("workdir")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--slow", type=int, default=200)
    parser.add_argument("--logins", type=int, default=16)
    parser.add_argument("--polls", type=int, default=16)
    a = parser.parse_args()
    a.binary = os.path.abspath(a.binary)

    os.makedirs(a.workdir, exist_ok=True)
    env = dict(os.environ, JWT_SECRET=SECRET, API_KEY="bench-attack-key-0123456789", HIVE_SERVER__HOST="127.0.0.1",
               HIVE_LOGGING__LEVEL="warn")
    for user, role in (("burst", "viewer"), ("watcher", "viewer")):
        subprocess.run([a.binary, "user", "add", user, "--role", role], input=f"{PASSWORD}\n{PASSWORD}\n",
                       text=True, env=env, cwd=a.workdir, check=True, capture_output=True)
    port = free_port()
    env["HIVE_SERVER__PORT"] = str(port)
    log = open(os.path.join(a.workdir, "node.log"), "w")
    node = subprocess.Popen([a.binary], env=env, cwd=a.workdir, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                if request(port, "GET", "/readyz", timeout=1)[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.05)
        key = {"X-API-Key": "bench-attack-key-0123456789"}
        _, task = request(port, "POST", "/api/tasks", {"description": "waits forever",
                                                       "required_capabilities": [{"name": "nobody-has-it"}]}, key)
        _, session = request(port, "POST", "/api/auth/login", {"username": "watcher", "password": PASSWORD})
        token = session["data"]["token"]

        quiet = Probe(port)
        quiet.start()
        time.sleep(3)
        quiet.stop.set()
        quiet.join()

        stop, stats = threading.Event(), {"slow_opened": 0, "slow_cut": 0}
        attackers = [threading.Thread(target=slowloris, args=(port, a.slow, stop, stats), daemon=True)]
        attackers += [threading.Thread(target=logins, args=(port, stop, stats), daemon=True) for _ in range(a.logins)]
        attackers += [threading.Thread(target=long_polls, args=(port, token, task["data"]["id"], stop, stats), daemon=True)
                      for _ in range(a.polls)]
        for t in attackers:
            t.start()
        time.sleep(1)  # let the attack build up before measuring
        loud = Probe(port)
        loud.start()
        time.sleep(a.seconds)
        loud.stop.set()
        loud.join()
        rss = int(open(f"/proc/{node.pid}/status").read().split("VmRSS:")[1].split()[0]) * 1024
        stop.set()
        alive = node.poll() is None
    finally:
        node.send_signal(signal.SIGKILL)
        node.wait()

    def summary(p):
        return {"samples": len(p.samples), "failures": p.failures, "p50_ms": round(percentile(p.samples, 0.5), 2),
                "p99_ms": round(percentile(p.samples, 0.99), 2), "max_ms": round(max(p.samples), 2),
                "mean_ms": round(statistics.mean(p.samples), 2)}

    print(json.dumps({"quiet": summary(quiet), "attack": summary(loud), "attackers": stats,
                      "slowloris_connections": a.slow, "login_threads": a.logins, "poll_threads": a.polls,
                      "node_alive": alive, "node_rss_bytes": rss}))
    return 0 if alive else 1


if __name__ == "__main__":
    sys.exit(main())
