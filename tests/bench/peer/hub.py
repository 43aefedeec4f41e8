"""The hub's side of the peer benchmark: a throw-away node started as scripts/bench.sh starts one,
and a plain Python client for it (http.client over one keep-alive connection), the kind of
client a Python user of the hub would write. Also used by ../http_sequential.py.
"""
import http.client
import json
import os
import random
import socket
import subprocess
import time

ECHO_TASK = {"description": "bench", "type": "echo", "payload": {"n": 1}}
UNRUNNABLE_TASK = {"description": "bench pending", "type": "echo", "payload": {"n": 1},
                   "required_capabilities": [{"name": "nobody"}]}


def free_port():
    while True:
        port = random.randint(20000, 31999)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue


def wait_for(fact, timeout, what, interval=0.02):
    """Polls fact() until it returns something true; raises TimeoutError past the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = fact()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f} s")
        time.sleep(interval)


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def stop_process(process, timeout, kill=None):
    """SIGTERM, then (after `timeout` seconds) `kill()` or SIGKILL; waits for the exit."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        (kill or process.kill)()
        process.wait()


class Stoppable:
    """Stops what it started when a `with` block ends, however it ends."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class HubNode(Stoppable):
    """A node in its own data directory (WORKDIR/data) on a free port, with the limits that would
    otherwise throttle a benchmark lifted; SQLite with the given `sqlite_synchronous`."""

    def __init__(self, binary, workdir, synchronous, extra_env=None):
        os.makedirs(workdir, exist_ok=True)
        self.workdir, self.port = workdir, free_port()
        self.data_dir = os.path.join(workdir, "data")
        env = dict(os.environ, HIVE_SERVER__HOST="127.0.0.1", HIVE_SERVER__PORT=str(self.port),
                   HIVE_TASKS__MAX_QUEUE_SIZE="10000000", HIVE_SERVER__WORKERS="64",
                   HIVE_SECURITY__RATE_LIMIT_REQUESTS_PER_MINUTE="100000000", HIVE_LOGGING__LEVEL="warn",
                   HIVE_DATABASE__SQLITE_SYNCHRONOUS=synchronous, **(extra_env or {}))
        self.log_path = os.path.join(workdir, "node.log")
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen([os.path.abspath(binary)], env=env, cwd=workdir, stdout=log,
                                            stderr=subprocess.STDOUT)
        try:
            wait_for(self._ready, 30, f"node on port {self.port} ready (log: {self.log_path})", interval=0.05)
        except BaseException:
            self.stop()
            raise

    def _ready(self):
        if self.process.poll() is not None:
            raise RuntimeError(f"node exited with {self.process.returncode} (log: {self.log_path})")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"GET /readyz HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
                return s.recv(16).startswith(b"HTTP/1.1 200")
        except OSError:
            return False

    def rss_bytes(self):
        return rss_bytes(self.process.pid)

    def stop(self):
        stop_process(self.process, 30)


class HubClient:
    """One keep-alive connection; every call raises on an answer it did not expect."""

    def __init__(self, port):
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def call(self, method, path, body=None):
        data = json.dumps(body) if body is not None else None
        headers = {"Content-Type": "application/json"} if data is not None else {}
        self.connection.request(method, path, body=data, headers=headers)
        response = self.connection.getresponse()
        return response.status, json.loads(response.read() or b"null")

    def submit(self, task=ECHO_TASK):
        status, answer = self.call("POST", "/api/tasks", task)
        if status != 201:
            raise RuntimeError(f"POST /api/tasks answered {status}: {answer}")
        return answer["data"]["id"]

    def submit_batch(self, tasks):
        status, answer = self.call("POST", "/api/tasks/batch", {"tasks": tasks})
        if status != 201 or answer["data"]["count"] != len(tasks):
            raise RuntimeError(f"POST /api/tasks/batch answered {status}: {str(answer)[:300]}")

    def wait(self, task_id, timeout_ms=30000):
        status, answer = self.call("GET", f"/api/tasks/{task_id}/wait?timeout_ms={timeout_ms}")
        if status != 200:
            raise RuntimeError(f"task {task_id} not finished: {status} {str(answer)[:300]}")
        return answer["data"]["status"]

    def hive_tasks(self):
        """The node's task counters: by_status (from the store), live, running, unmatched."""
        status, answer = self.call("GET", "/api/hive/status")
        if status != 200:
            raise RuntimeError(f"GET /api/hive/status answered {status}")
        return answer["data"]["tasks"]

    def close(self):
        self.connection.close()
