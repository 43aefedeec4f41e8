"""The Celery application of the peer benchmark: one no-op task, Redis as broker and result
backend, everything else at Celery's defaults. The worker loads it with `-A noop_app`
(PEER_REDIS_URL names the server); the client builds its own with make_app(url).
"""
import os

from celery import Celery

NOOP = "noop_app.noop"


def make_app(redis_url):
    app = Celery("noop_app", broker=redis_url, backend=redis_url, set_as_current=False)

    @app.task(name=NOOP)
    def noop(n):
        return n

    return app


app = make_app(os.environ.get("PEER_REDIS_URL", "redis://127.0.0.1:6379/0"))
