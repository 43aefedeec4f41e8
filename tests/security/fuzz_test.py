#!/usr/bin/env python3
"""A bounded fuzz of the node's HTTP surface (issue #17).

    python3 tests/security/fuzz_test.py --binary build/ai-orchestrator-hub [-v]
    HUB_FUZZ_SEED=1234 HUB_FUZZ_N=3000 HUB_FUZZ_WORKERS=6 python3 tests/security/fuzz_test.py ...

One node with credentials as in production (JWT_SECRET, API_KEY, a user per role). A few
thousand requests, each made from its own seeded generator (case i of seed S is always the same
bytes; the seed is printed), across every route of README's HTTP API table and unknown ones:
methods, malformed request lines, bad / huge / duplicate headers, bad Content-Length, chunked
framing errors, truncated, deeply nested, invalid UTF-8, huge-number, wrong-type, random-byte and
gzip-encoded bodies, slow writers; with no credential, wrong ones and those of every role. Each
request comes from its own loopback address (127.42.x.y), so that per-address limits do not turn
the run into a wall of 429s.

Fails when: an answer is 500, 502 or 504, or an error (>= 400; 503, and the protocol's 501 and 505
included) is not the JSON envelope; a complete request gets no answer and no close within the read timeout; the node
dies; GET /health (probed every 50 ms from another process) has p99 over HUB_HEALTH_MS (100) or a
probe over HUB_HEALTH_MAX_MS (5 x); the node's RSS exceeds its start + 300 MB. A closed connection
without an answer is never a failure.
"""

import collections
import concurrent.futures
import gzip
import json
import os
import random
import socket
import sys
import threading
import time
import unittest
import uuid
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hubnode  # noqa: E402
from hubnode import API_KEY, HealthProbe, ROLES  # noqa: E402

MiB = 1024 * 1024
SEED = int(os.environ.get("HUB_FUZZ_SEED", str(random.SystemRandom().randrange(1, 2 ** 31))))
N = int(os.environ.get("HUB_FUZZ_N", "3000"))
WORKERS = int(os.environ.get("HUB_FUZZ_WORKERS", "6"))
READ_TIMEOUT = float(os.environ.get("HUB_FUZZ_READ_TIMEOUT", "12"))
RSS_HEADROOM = int(os.environ.get("HUB_FUZZ_RSS_MB", "300")) * MiB


# ---------------------------------------------------------------------------------------------
# What a case is


class Case:
    def __init__(self, index, kind, desc):
        self.index, self.kind, self.desc = index, kind, desc
        self.parts = []          # [(bytes, delay after in s)]
        self.half_close = False  # shutdown(SHUT_WR) after sending: the request is incomplete on purpose
        self.abandon = False     # close without reading (a client that goes away)
        self.method = "GET"
        self.stream = False      # an event stream: the head is enough
        self.source = "127.0.0.1"

    def data(self):
        return b"".join(p for p, _ in self.parts)

    def preview(self, n=300):
        d = self.data()
        return repr(d[:n]) + (" ... (%d bytes)" % len(d) if len(d) > n else "")


class Ctx:
    """Ids and credentials of the node under test, gathered before the fuzz starts."""

    def __init__(self):
        self.node_name = "node"
        self.tokens = {}
        self.refresh = []  # refresh tokens of a throwaway user ("spare")
        self.tasks, self.agents, self.actors, self.breakers = [], [], [], []
        self.models = ["m1", "nope"]
        self.lock = threading.Lock()

    def take_refresh(self, rng):
        with self.lock:
            if self.refresh and rng.random() < 0.5:
                return self.refresh.pop(0)
        return rng.choice(["", "x", "0" * 64, uuid.uuid4().hex * 2])


# ---------------------------------------------------------------------------------------------
# Building blocks

METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]
ODD_METHODS = ["TRACE", "CONNECT", "get", "Post", "PROPFIND", "BREW", "G ET", "GET\x00", "\xffGET", "A" * 300, ""]
UNKNOWN_PATHS = ["/api", "/api/", "/api/unknown", "/api/tasks/a/b/c", "/api/agents/x/y/z/w", "/../../etc/passwd",
                 "/%2e%2e/%2e%2e/etc/passwd", "/api/tasks/%00", "/api//tasks", "//", "/.env", "/ui/../../etc/passwd",
                 "/ui/%2e%2e%2fREADME.md", "/api/tasks?%", "/api/tasks?limit=%ZZ", "/health/", "/metrics/x",
                 "/api/actors/a/b/c/d", "/api/cluster", "/api/auth", "/favicon.ico", "/ui/", "/ui/nope.js"]


def rand_str(rng, n=None, alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_"):
    n = rng.randint(1, 24) if n is None else n
    return "".join(rng.choice(alphabet) for _ in range(n))


def weird_value(rng):
    """A JSON value of a random (often wrong) type."""
    return rng.choice([
        None, True, False, 0, -1, 1, 2 ** 31, 2 ** 63, -2 ** 63, 2 ** 64, 0.5, -0.0, 1e308, "", " ", "x",
        "a" * rng.choice([10, 1000, 20000]), "\u0000", "\ud7ff\ue000", "é", "𝄞", [], [1, 2], {}, {"a": 1}, [[[]]],
        {"": None}, "null", "1e999", rand_str(rng),
    ])


def task_body(rng, ctx):
    if rng.random() < 0.4:
        return {"description": "fuzz " + rand_str(rng), "type": rng.choice(["echo", "hash"]),
                "priority": rng.choice(["low", "medium", "high", "critical"]), "payload": {"data": rand_str(rng), "rounds": 2}}
    b = {"description": rng.choice(["fuzz " + rand_str(rng), "", " ", "x" * rng.choice([1, 100, 10001])])}
    for key, gen in (("title", lambda: rand_str(rng)), ("type", lambda: rng.choice(["echo", "sleep", "fail", "hash", "x", ""])),
                     ("priority", lambda: rng.choice(["low", "medium", "high", "critical", "HIGH", "urgent", 3])),
                     ("payload", lambda: rng.choice([{"ms": rng.randint(0, 50)}, {"data": "abc", "rounds": 3}, [], "s", None])),
                     ("max_attempts", lambda: rng.choice([1, 3, 0, -1, 101, 1.5, "3"])),
                     ("timeout_ms", lambda: rng.choice([1, 1000, 0, -5, 10 ** 15, "x"])),
                     ("required_capabilities", lambda: rng.choice([[{"name": "general"}], [{"name": ""}], [1], {}, [{"name": "g", "minimum_proficiency": 2}]])),
                     ("idempotency_key", lambda: rng.choice([rand_str(rng), "k" * 300, 5])),
                     ("context", lambda: rng.choice([{}, [], "x"])),
                     ("unknown_" + rand_str(rng, 4), lambda: weird_value(rng))):
        if rng.random() < 0.3:
            b[key] = gen()
    if b.get("type") == "sleep":
        b["payload"] = {"ms": rng.randint(0, 50)}
    return b


def agent_body(rng, ctx):
    if rng.random() < 0.3:
        return {"name": "fz-" + rand_str(rng), "type": "worker", "capabilities": [{"name": "fuzz-" + rand_str(rng, 3)}]}
    b = {"name": rng.choice(["fz-" + rand_str(rng), "", "bad/name", "x" * 200]),
         "type": rng.choice(["worker", "coordinator", "specialist", "learner", "WORKER", "boss", ""])}
    for key, gen in (("agent_type", lambda: rng.choice(["specialist:nlp", "worker:x", "specialist:", "nope"])),
                     ("specialization", lambda: rand_str(rng)),
                     ("capabilities", lambda: rng.choice([[{"name": "general", "proficiency": 0.5}], [{"name": "x", "proficiency": 2}], "x", [{}]])),
                     ("max_concurrent_tasks", lambda: rng.choice([1, 4, 0, 10001, -1, "4"])),
                     ("executor", lambda: rng.choice([{"kind": "builtin"}, {"kind": "exec", "command": ["/bin/sh", "-c", "id"]},
                                                       {"kind": "http", "url": "http://169.254.169.254/latest"},
                                                       {"kind": "http", "url": "http://127.0.0.1:9/", "headers": {"X\r\nY": "z"}},
                                                       {"kind": "simulated", "profile": {"x": {"success": 2}}}, {"kind": 5}, "exec", []]))):
        if rng.random() < 0.3:
            b[key] = gen()
    return b


def login_body(rng, ctx):
    user = rng.choice(list(ROLES) + ["spare", "nobody", "", "admin' OR '1'='1"])
    pw = hubnode.password_of(user) if rng.random() < 0.5 else rng.choice(["wrong-password", "", "x" * 2000])
    b = {"username": user, "password": pw}
    if rng.random() < 0.2:
        b[rng.choice(["username", "password"])] = weird_value(rng)
    if rng.random() < 0.1:
        b["client_type"] = weird_value(rng)
    return b


def body_for(route, rng, ctx):
    if route in ("/api/tasks",):
        return task_body(rng, ctx)
    if route == "/api/tasks/batch":
        return {"tasks": [task_body(rng, ctx) for _ in range(rng.choice([0, 1, 3, 20]))]} if rng.random() < 0.9 else \
            {"tasks": rng.choice([[], "x", [1] * 1001, None])}
    if route == "/api/agents":
        return agent_body(rng, ctx)
    if route == "/api/auth/login":
        return login_body(rng, ctx)
    if route == "/api/auth/refresh":
        return {"refresh_token": ctx.take_refresh(rng)}
    if route == "/api/auth/logout":
        return rng.choice([{}, {"refresh_token": ctx.take_refresh(rng)}, None])
    return rng.choice([{}, None, {"x": 1}])


def pick(rng, items, fallback):
    return rng.choice(items) if items and rng.random() < 0.7 else fallback


def routes(rng, ctx):
    """(method, path, body route key or None) for a README route with plausible parameters."""
    task = pick(rng, ctx.tasks, rng.choice([str(uuid.uuid4()), "x", "0", "%00", "a" * 300]))
    agent = pick(rng, ctx.agents, rng.choice([str(uuid.uuid4()), "x", "-1"]))
    fake_agent = rng.choice([str(uuid.uuid4()), "x", "nope"])  # never delete a real agent
    actor = pick(rng, ctx.actors, rng.choice(["1", "0", "abc", "99999999999999999999"]))
    fake_actor = str(rng.randint(10 ** 6, 10 ** 9))             # never kill a real actor
    node = ctx.node_name if rng.random() < 0.8 else rng.choice(["other", "", "%2F"])
    breaker = pick(rng, ctx.breakers, rng.choice(["x", "agent:nope", "store"]))
    q = lambda *opts: rng.choice(list(opts))
    table = [
        ("GET", "/health" + q("", "?detailed=true", "?detailed=1", "?detailed=%ff"), None),
        ("GET", q("/livez", "/readyz"), None),
        ("POST", "/api/agents", "/api/agents"),
        ("GET", "/api/agents" + q("", "?state=idle", "?type=worker&limit=5&offset=1", "?limit=0", "?limit=abc", "?capability=general", "?bogus=1"), None),
        ("GET", "/api/agents/" + agent, None),
        ("DELETE", "/api/agents/" + fake_agent, None),
        ("POST", "/api/agents/%s/%s" % (agent, q("pause", "resume")), None),
        ("POST", "/api/tasks", "/api/tasks"),
        ("POST", "/api/tasks/batch", "/api/tasks/batch"),
        ("GET", "/api/tasks" + q("", "?status=pending", "?status=bogus", "?limit=1000", "?limit=1001", "?offset=-1", "?priority=high&type=echo", "?agent=x"), None),
        ("GET", "/api/tasks/" + task, None),
        ("GET", "/api/tasks/%s/wait?timeout_ms=%s" % (task, q("0", "50", "300", "-1", "x", "300001")), None),
        ("POST", "/api/tasks/%s/%s" % (task, q("cancel", "retry")), None),
        ("GET", "/api/hive/status", None),
        ("GET", "/metrics" + q("", "?format=prometheus", "?format=json", "?format=xml"), None),
        ("GET", "/api/resources", None),
        ("GET", "/api/monitoring/alerts" + q("", "?since=2020-01-01T00:00:00Z", "?until=x"), None),
        ("GET", "/api/monitoring/history", None),
        ("POST", "/api/auth/login", "/api/auth/login"),
        ("POST", "/api/auth/refresh", "/api/auth/refresh"),
        ("POST", "/api/auth/logout", "/api/auth/logout"),
        ("GET", "/api/auth/me", None),
        ("GET", "/api/audit" + q("", "?limit=5", "?limit=99999", "?offset=x"), None),
        ("GET", "/api/supervisors", None),
        ("GET", "/api/breakers" + q("", "?state=open", "?kind=agent", "?state=x"), None),
        ("POST", "/api/breakers/%s/reset" % breaker, None),
        ("GET", "/api/neural/models", None),
        ("GET", "/api/neural/models/" + rng.choice(ctx.models), None),
        ("GET", "/api/cluster/nodes", None),
        ("POST", "/api/cluster/nodes/%s/leave" % rng.choice(["other", "x", "%00"]), None),
        ("GET", "/api/actors" + q("", "?limit=5", "?limit=10001", "?sort=mailbox", "?sort=bogus", "?kind=agent", "?node=other", "?scope=local"), None),
        ("GET", "/api/actors/%s/%s" % (node, actor), None),
        ("POST", "/api/actors/%s/%s/kill" % (node, fake_actor), None),
        ("GET", "/api/actors/%s/%s/trace?seconds=%s" % (node, actor, q("1", "0", "301", "x")), None),
        ("GET", "/api/events?seconds=%s%s" % (q("1", "0", "86401", "x"), q("", "&types=task", "&types=bogus")), None),
        ("GET", q("/", "/ui/app.js", "/ui/index.html", "/ui/style.css", "/ui/nope"), None),
    ]
    return rng.choice(table)


def credential(rng, ctx):
    """Header lines for a random credential: none, right, wrong, any role's."""
    k = rng.choices(["none", "key", "badkey", "admin", "operator", "viewer", "agent", "badtoken", "scheme", "both"],
                    [10, 12, 6, 10, 8, 8, 8, 6, 3, 3])[0]
    if k == "none":
        return [], k
    if k == "key":
        return [("X-API-Key", API_KEY)], k
    if k == "badkey":
        return [("X-API-Key", rng.choice(["x", API_KEY + "x", "", "k" * 5000, "\xff\xfe"]))], k
    if k in ROLES:
        return [("Authorization", "Bearer " + ctx.tokens[k])], k
    if k == "badtoken":
        return [("Authorization", "Bearer " + rng.choice(["x", "a.b.c", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", "", "." * 3000,
                                                           ctx.tokens["viewer"][:-3] + "abc"]))], k
    if k == "scheme":
        return [("Authorization", rng.choice(["Basic YWRtaW46YWRtaW4=", "bearer x", "Bearer", "Token x", ""]))], k
    return [("X-API-Key", API_KEY), ("Authorization", "Bearer " + ctx.tokens["viewer"])], k


def encode_json(rng, value):
    text = json.dumps(value, ensure_ascii=rng.random() < 0.5)
    return text.encode("utf-8")


def mutate_body(rng, body):
    """A JSON body made hostile; returns (bytes, description, extra headers)."""
    k = rng.choice(["deep", "deep_obj", "utf8", "bignum", "digits", "types", "random", "gzip", "truncated_json",
                    "bom", "dupkeys", "nul", "big", "empty", "array", "scalar", "trailing", "surrogate"])
    if k == "deep":
        d = rng.choice([65, 1000, 70000])
        return ('{"description":"x","payload":' + "[" * d + "]" * d + "}").encode(), "deep %d" % d, []
    if k == "deep_obj":
        d = rng.choice([65, 5000, 50000])
        return ('{"description":"x","payload":' + '{"a":' * d + "1" + "}" * d + "}").encode(), "deep objects %d" % d, []
    if k == "utf8":
        raw = encode_json(rng, body)
        pos = rng.randint(0, max(0, len(raw) - 1))
        bad = rng.choice([b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x80", b"\xe2\x82"])
        return raw[:pos] + bad + raw[pos:], "invalid UTF-8", []
    if k == "bignum":
        key = rng.choice(["priority", "max_attempts", "timeout_ms", "username", "max_concurrent_tasks", "description"])
        return ('{"description":"x","%s":%s}' % (key, rng.choice(["1e999", "-1e999", "1e-999", "123456789012345678901234567890"]))).encode(), "big number", []
    if k == "digits":
        key = rng.choice(["priority", "max_attempts", "timeout_ms", "password", "max_concurrent_tasks"])
        return ('{"description":"x","name":"n","type":"worker","%s":%s}' % (key, "9" * rng.choice([20, 400, 5000]))).encode(), "many digits", []
    if k == "types":
        if isinstance(body, dict) and body:
            b = dict(body)
            b[rng.choice(list(b))] = weird_value(rng)
            return encode_json(rng, b), "wrong type", []
        return encode_json(rng, weird_value(rng)), "wrong type", []
    if k == "random":
        n = rng.choice([1, 16, 512, 8192])
        return bytes(rng.getrandbits(8) for _ in range(n)), "random bytes", []
    if k == "gzip":
        enc = rng.choice(["gzip", "deflate", "br", "gzip, gzip", "identity", "x"])
        raw = encode_json(rng, body)
        data = gzip.compress(raw) if "gzip" in enc else zlib.compress(raw) if enc == "deflate" else raw
        return data, "Content-Encoding " + enc, [("Content-Encoding", enc)]
    if k == "truncated_json":
        raw = encode_json(rng, body)
        return raw[:rng.randint(0, max(0, len(raw) - 1))], "truncated JSON", []
    if k == "bom":
        return b"\xef\xbb\xbf" + encode_json(rng, body), "BOM", []
    if k == "dupkeys":
        return b'{"description":"a","description":"b","username":"x","username":"y","password":"p","password":"q"}', "duplicate keys", []
    if k == "nul":
        return b'{"description":"a\x00b","username":"a\x00","password":"\x00"}', "raw NUL", []
    if k == "big":
        n = rng.choice([900 * 1024, 1100 * 1024, 2 * MiB])
        return ('{"description":"big","payload":"' + "a" * n + '"}').encode(), "big body %d" % n, []
    if k == "empty":
        return b"", "empty body", []
    if k == "array":
        return b"[" + encode_json(rng, body) + b"]", "array body", []
    if k == "scalar":
        return rng.choice([b"null", b"1", b'"x"', b"true"]), "scalar body", []
    if k == "trailing":
        return encode_json(rng, body) + rng.choice([b"x", b"{}", b"\x00", b"  \n"]), "trailing bytes", []
    return b'{"description":"\\ud800","username":"\\udfff"}', "lone surrogates", []


def head(method, path, headers, version="HTTP/1.1", eol=b"\r\n"):
    lines = [("%s %s %s" % (method, path, version)).encode("latin-1", "replace")]
    for k, v in headers:
        lines.append(k.encode("latin-1", "replace") + b": " + (v.encode("latin-1", "replace") if isinstance(v, str) else v))
    return eol.join(lines) + eol + eol


def with_body_headers(hdrs, body, ctype="application/json"):
    return hdrs + [("Content-Type", ctype), ("Content-Length", str(len(body)))]


# ---------------------------------------------------------------------------------------------
# The generator: case i of a seed is always the same bytes


def make_case(i, ctx):
    rng = random.Random(SEED * 1000003 + i)
    kind = rng.choices(["valid", "body", "headers", "chunked", "line", "unknown", "random", "slow", "truncated", "pipeline"],
                       [30, 20, 12, 8, 8, 6, 3, 4, 5, 4])[0]
    c = Case(i, kind, "")
    c.source = "127.42.%d.%d" % (rng.randint(0, 255), rng.randint(1, 254))
    method, path, body_route = routes(rng, ctx)
    cred, who = credential(rng, ctx)
    base = [("Host", "127.0.0.1")] + cred
    if rng.random() < 0.1:
        base.append(("X-Request-Id", rng.choice(["fz-" + rand_str(rng), "bad id \x01", "r" * 300])))
    if rng.random() < 0.05:
        base.append(("Origin", rng.choice(["http://evil.example", "null"])))
    body = None
    if body_route:
        body = encode_json(rng, body_for(body_route, rng, ctx))
    elif method == "POST" and rng.random() < 0.5:
        body = b"{}"
    if method == "GET" and rng.random() < 0.08:
        method = rng.choice(["HEAD", "OPTIONS", "PUT", "PATCH"])
    c.method = method
    c.stream = "/api/events" in path or "/trace" in path
    desc = "%s %s as %s" % (method, path[:80], who)

    if kind in ("valid", "slow", "pipeline"):
        hdrs = list(base)
        data = head(method, path, with_body_headers(hdrs, body) if body is not None else hdrs) + (body or b"")
        if kind == "pipeline":
            m2, p2, _ = routes(rng, ctx)
            data += head("GET" if m2 != "HEAD" else "HEAD", p2, base)
            desc += " + pipelined GET " + p2[:60]
        if kind == "slow":
            pieces, pos = [], 0
            while pos < len(data):
                n = rng.randint(1, 64)
                pieces.append((data[pos:pos + n], rng.uniform(0.0, 0.12)))
                pos += n
            # At most ~2 s of dribbling: the rest goes at once.
            total, keep = 0.0, []
            for p, d in pieces:
                total += d
                keep.append((p, d if total < 2.0 else 0.0))
            c.parts = keep
            desc = "slow writer: " + desc
        else:
            c.parts = [(data, 0.0)]
        c.desc = desc
        return c

    if kind == "body":
        source = json.loads(body) if body and body[:1] == b"{" else {"description": "x"}
        data, what, extra = mutate_body(rng, source)
        m = method if method in ("POST", "PUT", "PATCH", "DELETE") else "POST"
        if m != method:
            path = rng.choice(["/api/tasks", "/api/tasks/batch", "/api/agents", "/api/auth/login", "/api/auth/refresh"])
        ctype = rng.choice(["application/json"] * 6 + ["application/json; charset=utf-16", "text/plain", "", "application/x-www-form-urlencoded",
                                                       "multipart/form-data; boundary=x", "application/jsonx"])
        hdrs = base + extra + [("Content-Length", str(len(data)))]
        if ctype:
            hdrs.append(("Content-Type", ctype))
        c.method = m
        c.parts = [(head(m, path, hdrs) + data, 0.0)]
        c.desc = "%s %s as %s, body: %s (%s)" % (m, path[:60], who, what, ctype or "no Content-Type")
        return c

    if kind == "headers":
        hdrs = list(base)
        b = body if body is not None else b""
        k = rng.choice(["no_colon", "space_before_colon", "obs_fold", "nul", "non_ascii", "huge_one", "many", "dup_cl_same",
                        "dup_cl_diff", "dup_host", "no_host", "dup_auth", "cl_neg", "cl_text", "cl_huge", "cl_plus", "cl_and_te",
                        "te_weird", "expect", "upgrade", "cl_short", "cl_long", "empty_name", "long_name", "lf_only"])
        eol = b"\r\n"
        cl = str(len(b))
        ctype = [("Content-Type", "application/json")]
        raw_extra = b""
        if k == "no_colon":
            raw_extra = b"X-No-Colon-Here\r\n"
        elif k == "space_before_colon":
            raw_extra = b"Content-Length : 5\r\n"
        elif k == "obs_fold":
            raw_extra = b"X-Folded: a\r\n  b\r\n"
        elif k == "nul":
            raw_extra = b"X-Nul: a\x00b\r\n"
        elif k == "non_ascii":
            raw_extra = "X-Ünïcödé: ✓\r\n".encode("utf-8") + b"X-Latin: \xe9\xff\r\n"
        elif k == "huge_one":
            raw_extra = b"X-Huge: " + b"h" * rng.choice([8 * 1024, 70 * 1024, 200 * 1024]) + b"\r\n"
        elif k == "many":
            raw_extra = b"".join(b"X-M%d: v\r\n" % j for j in range(rng.choice([99, 101, 150, 1000])))
        elif k == "empty_name":
            raw_extra = b": value\r\n"
        elif k == "long_name":
            raw_extra = b"X-" + b"n" * 10000 + b": v\r\n"
        elif k == "lf_only":
            eol = b"\n"
        lines = []
        if k == "dup_cl_same":
            lines = [("Content-Length", cl), ("Content-Length", cl)]
        elif k == "dup_cl_diff":
            lines = [("Content-Length", cl), ("Content-Length", str(len(b) + 5))]
        elif k == "dup_host":
            hdrs.append(("Host", "evil.example"))
        elif k == "no_host":
            hdrs = [h for h in hdrs if h[0] != "Host"]
        elif k == "dup_auth":
            hdrs += [("Authorization", "Bearer " + ctx.tokens["admin"]), ("Authorization", "Bearer x")]
        elif k == "cl_neg":
            lines = [("Content-Length", "-1")]
        elif k == "cl_text":
            lines = [("Content-Length", rng.choice(["abc", "1e3", "0x10", " 5", "5 5", ""]))]
        elif k == "cl_huge":
            lines = [("Content-Length", rng.choice(["99999999999999999999999", "18446744073709551616", "9223372036854775807", "2147483648"]))]
        elif k == "cl_plus":
            lines = [("Content-Length", "+" + cl)]
        elif k == "cl_and_te":
            lines = [("Content-Length", cl), ("Transfer-Encoding", "chunked")]
        elif k == "te_weird":
            lines = [("Transfer-Encoding", rng.choice(["gzip", "chunked, chunked", "xchunked", "identity", "gzip, chunked", "chunked;x"]))]
        elif k == "expect":
            lines = [("Expect", rng.choice(["100-continue", "nonsense"])), ("Content-Length", cl)]
        elif k == "upgrade":
            lines = [("Connection", "Upgrade"), ("Upgrade", rng.choice(["websocket", "h2c"])), ("Content-Length", cl)]
        elif k == "cl_short":
            lines = [("Content-Length", str(max(0, len(b) - 3)))]
        elif k == "cl_long":
            lines = [("Content-Length", str(len(b) + 10))]
            c.half_close = True  # the body never arrives in full
        else:
            lines = [("Content-Length", cl)]
        m = method if method != "HEAD" or k not in ("cl_long",) else "GET"
        h = head(m, path, hdrs + ctype + lines, eol=eol)
        h = h[:-len(eol)] + raw_extra + eol if raw_extra else h
        if k in ("cl_neg", "cl_text", "cl_huge"):
            c.half_close = True
        c.method = m
        c.parts = [(h + b, 0.0)]
        c.desc = "%s %s as %s, headers: %s" % (m, path[:60], who, k)
        return c

    if kind == "chunked":
        b = body if body is not None else b'{"description":"chunked fuzz","type":"echo"}'
        m = "POST"
        path = rng.choice(["/api/tasks", "/api/tasks/batch", "/api/agents", "/api/auth/login", "/api/auth/logout"])
        k = rng.choice(["valid", "bad_hex", "no_crlf", "negative", "overflow", "ext", "trailer", "no_last", "extra_data",
                        "too_big", "size_lies", "zero_only", "lf_only", "space"])
        hdrs = base + [("Content-Type", "application/json"), ("Transfer-Encoding", "chunked")]
        chunks = []
        if k == "valid":
            chunks = [b"%x\r\n%s\r\n" % (len(b), b), b"0\r\n\r\n"]
        elif k == "bad_hex":
            chunks = [b"zz\r\n" + b + b"\r\n0\r\n\r\n"]
        elif k == "no_crlf":
            chunks = [b"%x\r\n%s0\r\n\r\n" % (len(b), b)]
        elif k == "negative":
            chunks = [b"-5\r\nhello\r\n0\r\n\r\n"]
        elif k == "overflow":
            chunks = [b"fffffffffffffffffff\r\n" + b + b"\r\n0\r\n\r\n"]
            c.half_close = True
        elif k == "ext":
            chunks = [b"%x;name=value;x\r\n%s\r\n0\r\n\r\n" % (len(b), b)]
        elif k == "trailer":
            chunks = [b"%x\r\n%s\r\n0\r\nX-Trailer: 1\r\nContent-Length: 5\r\n\r\n" % (len(b), b)]
        elif k == "no_last":
            chunks = [b"%x\r\n%s\r\n" % (len(b), b)]
            c.half_close = True
        elif k == "extra_data":
            chunks = [b"3\r\n" + b + b"\r\n0\r\n\r\n"]
        elif k == "too_big":
            piece = b"a" * 65536
            chunks = [b'10\r\n{"description":"\r\n'] + [b"10000\r\n" + piece + b"\r\n"] * 24 + [b'2\r\n"}\r\n0\r\n\r\n']
        elif k == "size_lies":
            chunks = [b"%x\r\n%s\r\n0\r\n\r\n" % (len(b) + 100, b)]
            c.half_close = True
        elif k == "zero_only":
            chunks = [b"0\r\n\r\n"]
        elif k == "lf_only":
            chunks = [b"%x\n%s\n0\n\n" % (len(b), b)]
            c.half_close = True
        else:
            chunks = [b"%x \r\n%s\r\n0\r\n\r\n" % (len(b), b)]
        c.method = m
        c.parts = [(head(m, path, hdrs), 0.0)] + [(ch, 0.0) for ch in chunks]
        c.desc = "POST %s as %s, chunked: %s" % (path, who, k)
        return c

    if kind == "line":
        k = rng.choice(["odd_method", "no_version", "http2", "http10", "http09", "bad_version", "extra_spaces", "tab", "no_path",
                        "absolute", "star", "nul", "lf_only", "long_uri", "huge_uri", "spaces_in_path", "empty_line_first",
                        "lower_version", "control"])
        p = path
        if k == "odd_method":
            line = "%s %s HTTP/1.1" % (rng.choice(ODD_METHODS), p)
        elif k == "no_version":
            line = "GET %s" % p
        elif k == "http2":
            line = "GET %s HTTP/2.0" % p
        elif k == "http10":
            line = "GET %s HTTP/1.0" % p
        elif k == "http09":
            line = "GET %s" % p
        elif k == "bad_version":
            line = "GET %s %s" % (p, rng.choice(["HTTP/9.9", "HTTP/1.x", "HTTP/", "FTP/1.0", "HTTP/1.1.1", "http/1.1"]))
        elif k == "extra_spaces":
            line = "GET  %s  HTTP/1.1" % p
        elif k == "tab":
            line = "GET\t%s\tHTTP/1.1" % p
        elif k == "no_path":
            line = "GET HTTP/1.1"
        elif k == "absolute":
            line = "GET http://127.0.0.1%s HTTP/1.1" % p
        elif k == "star":
            line = "%s * HTTP/1.1" % rng.choice(["OPTIONS", "GET"])
        elif k == "nul":
            line = "GET /health\x00/x HTTP/1.1"
        elif k == "long_uri":
            line = "GET /api/tasks?x=%s HTTP/1.1" % ("a" * rng.choice([2000, 8000, 9000]))
        elif k == "huge_uri":
            line = "GET /%s HTTP/1.1" % ("a" * rng.choice([70 * 1024, 300 * 1024]))
        elif k == "spaces_in_path":
            line = "GET /api/ta sks HTTP/1.1"
        elif k == "empty_line_first":
            line = "\r\nGET /health HTTP/1.1"
        elif k == "lower_version":
            line = "GET /health http/1.1"
        elif k == "control":
            line = "GET /health\x01\x7f HTTP/1.1"
        else:
            line = "GET %s HTTP/1.1" % p
        eol = b"\n" if k == "lf_only" else b"\r\n"
        hdrs = b"".join(("%s: %s" % (a, v)).encode("latin-1", "replace") + eol for a, v in base)
        c.parts = [(line.encode("latin-1", "replace") + eol + hdrs + eol, 0.0)]
        c.half_close = k in ("no_version", "http09", "no_path")  # an HTTP/0.9-looking line may wait for more
        c.method = "GET" if not line.startswith("HEAD") else "HEAD"
        c.desc = "request line %s: %r" % (k, line[:80])
        return c

    if kind == "unknown":
        p = rng.choice(UNKNOWN_PATHS)
        m = rng.choice(METHODS)
        data = head(m, p, with_body_headers(base, b"{}") if m in ("POST", "PUT", "PATCH") else base)
        if m in ("POST", "PUT", "PATCH"):
            data += b"{}"
        c.method = m
        c.parts = [(data, 0.0)]
        c.desc = "%s %s (unknown) as %s" % (m, p, who)
        return c

    if kind == "random":
        n = rng.choice([1, 7, 100, 4096])
        data = bytes(rng.getrandbits(8) for _ in range(n))
        if rng.random() < 0.5:
            data += b"\r\n\r\n"
        c.parts = [(data, 0.0)]
        c.half_close = True
        c.desc = "random bytes (%d)" % len(data)
        return c

    # truncated: a request cut short; the client either waits (half-closed) or goes away
    hdrs = list(base)
    b = body if body is not None else b'{"description":"truncated fuzz"}'
    full = head("POST" if method in ("GET", "HEAD", "OPTIONS", "DELETE") else method, path if method not in ("GET", "HEAD", "OPTIONS", "DELETE") else "/api/tasks",
                with_body_headers(hdrs, b)) + b
    cut = rng.randint(1, len(full) - 1)
    c.parts = [(full[:cut], 0.0)]
    c.method = "POST"
    if rng.random() < 0.5:
        c.abandon = True
        c.desc = "truncated at %d/%d, then gone" % (cut, len(full))
    else:
        c.half_close = True
        c.desc = "truncated at %d/%d, half-closed" % (cut, len(full))
    return c


# ---------------------------------------------------------------------------------------------
# Running a case


def read_answer(sock, method, stream, timeout):
    """Reads one response (1xx skipped). Returns (status, headers, body, outcome) where outcome is
    'answered', 'closed' (no answer; the peer closed) or 'timeout' (nothing, still open)."""
    deadline = time.monotonic() + timeout
    buf = b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        sock.settimeout(left)
        try:
            b = sock.recv(65536)
        except socket.timeout:
            break
        except OSError:
            b = b""
        if not b:
            status, hdrs, body = hubnode.parse_raw(buf)
            return (status, hdrs, body, "answered") if status else (0, {}, buf, "closed")
        buf += b
        while True:
            if b"\r\n\r\n" not in buf:
                break
            status, hdrs, body = hubnode.parse_raw(buf)
            if not status:
                return 0, {}, buf, "garbage"
            if 100 <= status < 200:
                buf = buf.split(b"\r\n\r\n", 1)[1]
                continue
            if method == "HEAD" or status in (204, 304) or stream and status == 200:
                return status, hdrs, body, "answered"
            te = hdrs.get("transfer-encoding", "").lower()
            if "chunked" in te:
                if body.endswith(b"0\r\n\r\n") and (body.startswith(b"0\r\n") or b"\r\n0\r\n\r\n" in body):
                    return status, hdrs, dechunk(body), "answered"
                break
            n = hdrs.get("content-length")
            if n is None:
                break  # until close
            try:
                n = int(n)
            except ValueError:
                return status, hdrs, body, "answered"
            if len(body) >= n:
                return status, hdrs, body[:n], "answered"
            break
    status, hdrs, body = hubnode.parse_raw(buf)
    if status:
        return status, hdrs, body, "answered_partial"
    return 0, {}, buf, "timeout"


def dechunk(body):
    out, pos = b"", 0
    while True:
        end = body.find(b"\r\n", pos)
        if end < 0:
            return out
        try:
            n = int(body[pos:end].split(b";")[0], 16)
        except ValueError:
            return out
        if n == 0:
            return out
        out += body[end + 2:end + 2 + n]
        pos = end + 2 + n + 2


def run_case(port, case):
    """Returns (outcome, status, headers, body)."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(case.source, 0))
    except OSError as e:
        return "connect_failed: %s" % e, 0, {}, b""
    try:
        try:
            for data, delay in case.parts:
                s.sendall(data)
                if delay:
                    time.sleep(delay)
            if case.half_close:
                s.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server may answer (413, 431, 400) and close before taking everything
        if case.abandon:
            return "abandoned", 0, {}, b""
        status, hdrs, body, outcome = read_answer(s, case.method, case.stream, READ_TIMEOUT)
        return outcome, status, hdrs, body
    finally:
        s.close()


def judge(case, outcome, status, hdrs, body):
    """A failure message, or None."""
    if outcome.startswith("connect_failed"):
        return outcome
    if outcome in ("closed", "abandoned"):
        return None
    if outcome == "garbage":
        return "an answer that is not HTTP: %r" % body[:200]
    if outcome == "timeout":
        return "no answer and no close within %.0f s" % READ_TIMEOUT
    if status in (500, 502, 504):
        return "HTTP %d" % status
    if status >= 400 and case.method != "HEAD":
        if outcome == "answered_partial":
            return "HTTP %d with a body cut short" % status
        try:
            j = json.loads(body.decode("utf-8"))
        except Exception:
            return "HTTP %d without a JSON body: %r" % (status, body[:200])
        if not hubnode.is_envelope(j, error_expected=True) or j.get("success") is not False:
            return "HTTP %d without the error envelope: %r" % (status, body[:200])
    return None


# ---------------------------------------------------------------------------------------------


class Fuzz(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.node = hubnode.secured_node(name="fuzz")
        n = cls.node
        ctx = Ctx()
        ctx.tokens = dict(n.tokens)
        n.add_user("spare", "viewer")
        for _ in range(8):
            r = n.login("spare")
            if r.status == 200:
                ctx.refresh.append(r.data["refresh_token"])
        for i in range(4):
            r = n.as_role("key", "POST", "/api/tasks", {"description": "fuzz seed %d" % i, "type": "echo"})
            if r.status == 201:
                ctx.tasks.append(r.data["id"])
        r = n.as_role("key", "POST", "/api/tasks", {"description": "fuzz long", "type": "sleep", "payload": {"ms": 600000}})
        if r.status == 201:
            ctx.tasks.append(r.data["id"])
        r = n.as_role("key", "GET", "/api/agents?limit=100")
        if r.status == 200:
            ctx.agents = [a["id"] for a in r.data["agents"]]
        r = n.as_role("key", "GET", "/api/actors?limit=100")
        if r.status == 200:
            ctx.node_name = r.data["actors"][0]["node"] if r.data["actors"] else ctx.node_name
            ctx.actors = [str(a["id"]) for a in r.data["actors"]]
        r = n.as_role("key", "GET", "/api/breakers")
        if r.status == 200 and isinstance(r.data, dict):
            ctx.breakers = [b.get("id") for b in r.data.get("breakers", []) if isinstance(b, dict) and b.get("id")]
        cls.ctx = ctx

    @classmethod
    def tearDownClass(cls):
        cls.node.stop()

    def test_fuzz_http_surface(self):
        node, ctx = self.node, self.ctx
        sys.stderr.write("\n  fuzz: seed %d, %d cases, %d workers (HUB_FUZZ_SEED=%d HUB_FUZZ_N=%d to repeat)\n"
                         % (SEED, N, WORKERS, SEED, N))
        cases = [make_case(i, ctx) for i in range(N)]
        rss0 = node.rss()
        rss_peak = [rss0]
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                v = node.rss()
                if v:
                    rss_peak.append(v)
                stop.wait(0.1)
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        counts = collections.Counter()
        by_kind = collections.Counter()
        failures = []
        died = []
        started = time.monotonic()
        lock = threading.Lock()

        def one(case):
            if died:
                return
            outcome, status, hdrs, body = run_case(node.port, case)
            key = str(status) if status else outcome.split(":")[0]
            problem = judge(case, outcome, status, hdrs, body)
            with lock:
                counts[key] += 1
                by_kind[case.kind] += 1
            if problem:
                failures.append((case, problem, outcome, status, body[:300]))
            if not node.alive():
                died.append(case)

        with HealthProbe(node.port) as probe:
            with concurrent.futures.ThreadPoolExecutor(WORKERS) as pool:
                list(pool.map(one, cases))
        stop.set()
        sampler.join(5)
        took = time.monotonic() - started
        stats = probe.stats()
        peak = max(rss_peak)

        sys.stderr.write("  fuzz: %d requests in %.1f s; answers by status: %s\n"
                         % (sum(counts.values()), took, ", ".join("%s: %d" % kv for kv in sorted(counts.items()))))
        sys.stderr.write("  fuzz: cases by kind: %s\n" % ", ".join("%s: %d" % kv for kv in sorted(by_kind.items())))
        sys.stderr.write("  fuzz: /health p50 %.1f ms, p99 %.1f ms, max %.1f ms over %d probes (%d not 200)\n"
                         % (stats["p50_ms"], stats["p99_ms"], stats["max_ms"], stats["count"], stats["bad"]))
        sys.stderr.write("  fuzz: RSS %d MiB at start, peak %d MiB (bound %d MiB)\n"
                         % (rss0 // MiB, peak // MiB, (rss0 + RSS_HEADROOM) // MiB))
        for case, problem, outcome, status, body in failures[:25]:
            sys.stderr.write("  FAILED case %d (%s): %s\n      %s\n      sent %s\n"
                             % (case.index, case.kind, problem, case.desc, case.preview(240)))
        if len(failures) > 25:
            sys.stderr.write("  ... and %d more failed cases\n" % (len(failures) - 25))

        self.assertFalse(died, "the node died during case %d (%s); seed %d" % (died[0].index, died[0].desc, SEED)
                         if died else "")
        self.assertTrue(node.alive(), "the node died (seed %d)" % SEED)
        self.assertEqual(failures, [], "%d cases failed (seed %d); first: case %d: %s"
                         % (len(failures), SEED, failures[0][0].index, failures[0][1]) if failures else "")
        p99, mx = hubnode.health_limit_ms(), float(os.environ.get("HUB_HEALTH_MAX_MS", str(5 * hubnode.health_limit_ms())))
        self.assertEqual(stats["bad"], 0, "GET /health did not answer 200 within 2 s %d times" % stats["bad"])
        self.assertLessEqual(stats["p99_ms"], p99, "GET /health p99 %.1f ms > %.0f ms" % (stats["p99_ms"], p99))
        self.assertLessEqual(stats["max_ms"], mx, "GET /health max %.1f ms > %.0f ms" % (stats["max_ms"], mx))
        self.assertLess(peak, rss0 + RSS_HEADROOM, "RSS peaked at %d MiB (start %d MiB)" % (peak // MiB, rss0 // MiB))
        # Still a working node.
        self.assertEqual(node.request("GET", "/health").status, 200)
        r = node.as_role("key", "POST", "/api/tasks", {"description": "after the fuzz", "type": "echo"})
        self.assertEqual(r.status, 201, r)


if __name__ == "__main__":
    hubnode.run_tests()
