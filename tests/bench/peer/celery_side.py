"""Celery's side of the peer benchmark: a throw-away Redis server (defaults, or the append-only
file with `appendfsync everysec`) and a 2-process prefork worker of noop_app.
"""
import os
import signal
import subprocess
import sys

import redis

from hub import Stoppable, free_port, stop_process, wait_for

PEER_DIR = os.path.dirname(os.path.abspath(__file__))
QUEUE = "celery"  # Celery's default queue: a Redis list of that name


class RedisServer(Stoppable):
    def __init__(self, workdir, append_only):
        self.dir = os.path.join(workdir, "redis-aof" if append_only else "redis-default")
        os.makedirs(self.dir, exist_ok=True)
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir]
        if append_only:
            args += ["--appendonly", "yes", "--appendfsync", "everysec"]
        self.log_path = os.path.join(self.dir, "redis.log")
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        self.client = redis.Redis(host="127.0.0.1", port=self.port)
        try:
            wait_for(self._ready, 30, f"redis-server on port {self.port} (log: {self.log_path})", interval=0.05)
        except BaseException:
            self.stop()
            raise

    def _ready(self):
        if self.process.poll() is not None:
            raise RuntimeError(f"redis-server exited with {self.process.returncode} (log: {self.log_path})")
        try:
            return self.client.ping()
        except redis.ConnectionError:
            return False

    def used_memory(self):
        return self.client.info("memory")["used_memory"]

    def queue_length(self):
        return self.client.llen(QUEUE)

    def stop(self):
        self.client.close()
        stop_process(self.process, 60)


class CeleryWorker(Stoppable):
    """`celery -A noop_app worker -c 2 --pool prefork`, ready once it answers a ping."""

    def __init__(self, app, redis_url, log_dir):
        self.log_path = os.path.join(log_dir, "celery-worker.log")
        env = dict(os.environ, PEER_REDIS_URL=redis_url)
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "noop_app", "worker", "-c", "2", "--pool", "prefork",
                 "--loglevel", "WARNING"],
                cwd=PEER_DIR, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_for(lambda: self._answers(app), 60, f"celery worker ready (log: {self.log_path})", interval=0.1)
        except BaseException:
            self.stop()
            raise

    def _answers(self, app):
        if self.process.poll() is not None:
            raise RuntimeError(f"celery worker exited with {self.process.returncode} (log: {self.log_path})")
        return app.control.ping(timeout=0.5)

    def stop(self):
        # SIGTERM is Celery's warm shutdown: the pool's children go with it.
        stop_process(self.process, 60, kill=lambda: os.killpg(self.process.pid, signal.SIGKILL))
