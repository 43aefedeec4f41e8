#!/usr/bin/env python3
"""tasks_http_sequential (issue #19): one client, one task per request, over one keep-alive
connection, against a node with sqlite_synchronous "normal" and then "full"; beside them, in
the same run, the two ceilings that bound the figure:
  - the client's own: the same loop against a bare cpp-httplib server (hub_bench bare_http);
  - the disk's: a bare loop that writes a small record and syncs it, one at a time, in the
    node's data directory (what one durable request at a time can at best do with "full").
The client sends pre-encoded request bytes over a raw socket and reads just enough of each
answer (status line, Content-Length), so that it stays well above what it measures.
Prints one JSON object.

    http_sequential.py BINARY HUB_BENCH WORKDIR [--tasks N] [--fsync-seconds S]
"""
import argparse
import json
import os
import socket
import subprocess
import sys
import time

from peer.hub import ECHO_TASK, HubNode, free_port, wait_for

FSYNC_RECORD = b"x" * 127 + b"\n"
FSYNC_FILE_BYTES = 4 << 20


class RawClient:
    """POSTs one constant body per call; returns the status. Reconnects when the server closes."""

    def __init__(self, port, path, body):
        self.port = port
        self.request = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                        f"Content-Length: {len(body)}\r\n\r\n").encode() + body
        self._connect()

    def _connect(self):
        self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=60)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection mid-answer")
        self.buffer += chunk

    def post(self):
        self.sock.sendall(self.request)
        while (head_end := self.buffer.find(b"\r\n\r\n")) < 0:
            self._fill()
        head = self.buffer[:head_end]
        at = head.find(b"\r\nContent-Length: ")
        if at < 0:
            raise RuntimeError(f"an answer without Content-Length: {head[:200]!r}")
        length = int(head[at + 18:head.find(b"\r\n", at + 2)])
        end = head_end + 4 + length
        while len(self.buffer) < end:
            self._fill()
        self.buffer = self.buffer[end:]
        if b"\r\nConnection: close" in head:
            self.sock.close()
            self._connect()
        return int(head[9:12])

    def close(self):
        self.sock.close()


def sequential(port, n):
    """n POST /api/tasks one after another: {requests_per_second, non_2xx, client_cpu_share}, the
    last being how much of the time the client itself was on a CPU (near 1: the client is the bound)."""
    client = RawClient(port, "/api/tasks", json.dumps(ECHO_TASK).encode())
    rejected = 0
    started, cpu_started = time.perf_counter(), time.process_time()
    for _ in range(n):
        if not 200 <= client.post() < 300:
            rejected += 1
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    client.close()
    return {"requests": n, "seconds": round(elapsed, 3), "requests_per_second": round(n / elapsed, 1),
            "non_2xx": rejected, "client_cpu_share": round(cpu / elapsed, 3)}


def port_open(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def client_ceiling(hub_bench, n):
    port = free_port()
    server = subprocess.Popen([hub_bench, "bare_http", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: port_open(port), 30, f"bare_http on port {port}")
        return sequential(port, n)
    finally:
        server.kill()
        server.wait()


def fsync_loop(directory, seconds):
    """The disk's bound for one durable request at a time: a small record written in place into
    a preallocated file and fdatasync'ed, one at a time, for `seconds` — the way SQLite syncs its
    reused WAL. (Appending instead would also commit the file's growing size on every sync, a
    cost the WAL does not pay, and the hub could beat such a loop.) {ops_per_second}"""
    path = os.path.join(directory, "fsync-loop.bin")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    ops = 0
    try:
        os.write(fd, bytes(FSYNC_FILE_BYTES))
        os.fsync(fd)
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            os.pwrite(fd, FSYNC_RECORD, ops * len(FSYNC_RECORD) % FSYNC_FILE_BYTES)
            os.fdatasync(fd)
            ops += 1
        elapsed = time.perf_counter() - started
    finally:
        os.close(fd)
        os.unlink(path)
    return {"ops": ops, "seconds": round(elapsed, 3), "ops_per_second": round(ops / elapsed, 1)}


def hub_sequential(binary, node_dir, synchronous, n):
    with HubNode(binary, node_dir, synchronous) as node:
        return {"sqlite_synchronous": synchronous, **sequential(node.port, n)}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("binary")
    parser.add_argument("hub_bench")
    parser.add_argument("workdir")
    parser.add_argument("--tasks", type=int, default=int(os.environ.get("BENCH_SEQ_TASKS", "20000")))
    parser.add_argument("--fsync-seconds", type=float, default=3.0)
    a = parser.parse_args()

    ceiling = client_ceiling(os.path.abspath(a.hub_bench), a.tasks)
    normal = hub_sequential(a.binary, os.path.join(a.workdir, "seq-normal"), "normal", a.tasks)
    # The write+fsync loop runs in the "full" node's data directory, while no node runs, just
    # before and just after the node's figure (the disk is shared: its speed drifts).
    full_dir = os.path.join(a.workdir, "seq-full")
    os.makedirs(os.path.join(full_dir, "data"), exist_ok=True)
    fsync_before = fsync_loop(os.path.join(full_dir, "data"), a.fsync_seconds / 2)
    full = hub_sequential(a.binary, full_dir, "full", a.tasks)
    fsync_after = fsync_loop(os.path.join(full_dir, "data"), a.fsync_seconds / 2)
    fsync = {"before": fsync_before, "after": fsync_after,
             "ops_per_second": round((fsync_before["ops_per_second"] + fsync_after["ops_per_second"]) / 2, 1)}
    print(json.dumps({
        "figure": "tasks_http_sequential", "normal": normal, "full": full,
        "client_ceiling": ceiling, "fsync_loop": fsync,
        "normal_tasks_per_second": normal["requests_per_second"], "full_tasks_per_second": full["requests_per_second"],
        "full_ratio_to_fsync_loop": round(full["requests_per_second"] / fsync["ops_per_second"], 3),
        "target_normal_tasks_per_second": 5000, "target_full_ratio_to_fsync_loop": 0.8}))
    return 0 if normal["non_2xx"] == 0 and full["non_2xx"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
