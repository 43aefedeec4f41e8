"""A small harness for end-to-end security tests of the ai-orchestrator-hub node binary.

Python 3 standard library only. It starts the real binary in a fresh temporary directory on a
free loopback port, creates users through the binary's own `user add`, logs in, sends requests
(through http.client or as raw bytes), measures the node (RSS, /health latency from a separate
process) and always kills what it started.

    node = Node(binary, env={"JWT_SECRET": ..., "API_KEY": ...}, config="[server]\\n...")
    node.add_user("admin", "admin", "a-long-password")
    node.start()                      # waits for GET /readyz == 200
    r = node.request("GET", "/api/tasks", api_key=...)
    r.status, r.json, r.headers       # headers: lower-cased names
    node.stop()                       # SIGTERM, SIGKILL after a deadline

Every started node is killed at interpreter exit (atexit, SIGTERM/SIGINT handlers, and
PR_SET_PDEATHSIG so that even a SIGKILL of the test process takes the nodes with it).
`run_tests()` runs unittest with a result class that prints the tail of every node's log
that took part in a failed test, and keeps those directories.
"""

import atexit
import ctypes
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
DEFAULT_BINARY = os.path.join(REPO, "build", "ai-orchestrator-hub")

# Set by parse_binary_arg(); the tests read it.
BINARY = os.environ.get("HUB_BINARY", DEFAULT_BINARY)

# Credentials "as in production".
JWT_SECRET = "security-probe-jwt-secret-0123456789abcdef"
API_KEY = "probe-api-key-0123456789"
ROLES = ("admin", "operator", "viewer", "agent")


def password_of(user):
    return "pw-" + user + "-12345678"


# Variables of the test runner's environment that would change what a node does.
_SCRUB_PREFIXES = ("HIVE_",)
_SCRUB_NAMES = {"JWT_SECRET", "API_KEY", "DATABASE_URL", "DATABASE_MAX_CONNECTIONS", "LOG_LEVEL", "RUST_LOG",
                "METRICS_ENABLED", "SENTRY_DSN", "CLUSTER_SECRET"}

_session_root = None
_session_lock = threading.Lock()
_ports_given = set()
ALL_NODES = []  # every Node ever made in this process, in order
_keep_dirs = False


def session_root():
    """One temporary folder per test process; each node gets a folder inside it."""
    global _session_root
    with _session_lock:
        if _session_root is None:
            _session_root = tempfile.mkdtemp(prefix="hub-sec-")
        return _session_root


def keep_dirs():
    global _keep_dirs
    _keep_dirs = True


# ---------------------------------------------------------------------------------------------
# Ports


def port_is_free(port, host="127.0.0.1"):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((host, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def free_port(lo=20000, hi=31999):
    """A port in [lo, hi] that bind() accepts now and that this process has not handed out yet.

    Below the kernel's ephemeral range (32768+), so that no outgoing connection holds it."""
    rng = random.Random()
    for _ in range(5000):
        port = rng.randint(lo, hi)
        with _session_lock:
            if port in _ports_given:
                continue
        if port_is_free(port) and port_is_free(port, "0.0.0.0"):
            with _session_lock:
                _ports_given.add(port)
            return port
    raise RuntimeError("no free port in %d-%d" % (lo, hi))


# ---------------------------------------------------------------------------------------------
# Process handling


def _pdeathsig():
    """preexec_fn: the child gets SIGKILL when this process dies; default umask (so file modes
    the node creates are its own choice, not an inherited strict umask)."""
    _set_pdeathsig()
    os.umask(0o022)


def _as_user(uid, gid):
    """preexec_fn running the child as uid:gid (the parent-death signal is set after the switch,
    which clears it)."""
    def pre():
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)
        _set_pdeathsig()
        os.umask(0o022)
    return pre


def _set_pdeathsig():
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def base_env(extra=None):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(_SCRUB_PREFIXES) and k not in _SCRUB_NAMES}
    env.update(extra or {})
    return env


def _kill_all_nodes():
    for n in list(ALL_NODES):
        try:
            n.kill()
        except Exception:
            pass


def _cleanup_at_exit():
    _kill_all_nodes()
    root = _session_root
    if root and os.path.isdir(root):
        if _keep_dirs:
            sys.stderr.write("hubnode: node folders kept in %s\n" % root)
        else:
            shutil.rmtree(root, ignore_errors=True)


atexit.register(_cleanup_at_exit)


def _on_signal(signum, frame):
    _kill_all_nodes()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


for _sig in (signal.SIGTERM, signal.SIGHUP):
    try:
        signal.signal(_sig, _on_signal)
    except (ValueError, OSError):
        pass


def rss_bytes(pid, field="VmRSS"):
    """VmRSS (or VmHWM, the peak) of a process in bytes, from /proc/PID/status; None if gone."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def wait_for(predicate, timeout, interval=0.05, what="condition"):
    """Polls predicate() until it returns a truthy value (returned) or the deadline passes
    (returns the last value, falsy)."""
    deadline = time.monotonic() + timeout
    value = predicate()
    while not value and time.monotonic() < deadline:
        time.sleep(interval)
        value = predicate()
    return value


# ---------------------------------------------------------------------------------------------
# HTTP


class Response:
    def __init__(self, status, headers, body, error=None):
        self.status = status          # 0 when no response came (connection refused/closed/timeout)
        self.headers = headers        # dict, lower-cased names (a repeated header: the values joined by ", ")
        self.body = body              # bytes
        self.error = error            # the exception text when status == 0
        self._json = None
        self._parsed = False

    @property
    def json(self):
        if not self._parsed:
            self._parsed = True
            try:
                self._json = json.loads(self.body.decode("utf-8"))
            except Exception:
                self._json = None
        return self._json

    @property
    def data(self):
        j = self.json
        return j.get("data") if isinstance(j, dict) else None

    @property
    def error_code(self):
        j = self.json
        if isinstance(j, dict) and isinstance(j.get("error"), dict):
            return j["error"].get("code")
        return None

    @property
    def error_field(self):
        j = self.json
        if isinstance(j, dict) and isinstance(j.get("error"), dict):
            return j["error"].get("field")
        return None

    @property
    def error_message(self):
        j = self.json
        if isinstance(j, dict) and isinstance(j.get("error"), dict):
            return j["error"].get("message") or ""
        return ""

    def text(self, limit=600):
        t = self.body[:limit].decode("utf-8", "replace")
        return t + ("..." if len(self.body) > limit else "")

    def __iter__(self):
        """status, json, headers = response"""
        return iter((self.status, self.json, self.headers))

    def __repr__(self):
        if self.status == 0:
            return "<no response: %s>" % self.error
        return "<HTTP %d %s>" % (self.status, self.text(300))


def is_envelope(j, error_expected=None):
    """The JSON envelope: {"success","data","error":{"code","message"},"timestamp","request_id"}."""
    if not isinstance(j, dict):
        return False
    for k in ("success", "data", "error", "timestamp", "request_id"):
        if k not in j:
            return False
    if not isinstance(j["success"], bool):
        return False
    if error_expected is True or (error_expected is None and j["success"] is False):
        e = j["error"]
        if not isinstance(e, dict) or not isinstance(e.get("code"), str) or not isinstance(e.get("message"), str):
            return False
    return True


def request(port, method, path, body=None, headers=None, token=None, api_key=None, source=None, timeout=15.0,
            host="127.0.0.1"):
    """One request on a fresh connection. body: dict/list (sent as JSON), str or bytes."""
    h = {}
    if body is not None and not isinstance(body, (bytes, bytearray, str)):
        body = json.dumps(body)
        h["Content-Type"] = "application/json"
    elif body is not None:
        h["Content-Type"] = "application/json"
    if isinstance(body, str):
        body = body.encode("utf-8")
    if token:
        h["Authorization"] = "Bearer " + token
    if api_key:
        h["X-API-Key"] = api_key
    h.update(headers or {})
    conn = http.client.HTTPConnection(host, port, timeout=timeout,
                                      source_address=(source, 0) if source else None)
    try:
        conn.request(method, path, body=body, headers=h)
        r = conn.getresponse()
        data = r.read()
        hdrs = {}
        for k, v in r.getheaders():
            k = k.lower()
            hdrs[k] = hdrs[k] + ", " + v if k in hdrs else v
        return Response(r.status, hdrs, data)
    except (OSError, http.client.HTTPException) as e:
        return Response(0, {}, b"", error="%s: %s" % (type(e).__name__, e))
    finally:
        conn.close()


def raw_exchange(port, data, timeout=5.0, source=None, until_close=False, host="127.0.0.1"):
    """Sends raw bytes on a fresh connection and reads the answer: until the head and a
    Content-Length body are in (or the connection closes, or `timeout` passes).
    Returns (bytes, closed: bool) where closed says the peer closed the connection."""
    s = socket.create_connection((host, port), timeout=timeout, source_address=(source, 0) if source else None)
    try:
        try:
            s.sendall(data)
        except OSError:
            pass  # the server may answer and close before taking everything
        return read_response(s, timeout=timeout, until_close=until_close)
    finally:
        s.close()


def read_response(sock, timeout=5.0, until_close=False):
    """Reads one HTTP response (head + Content-Length body, or until close) from a socket.
    Returns (bytes, closed)."""
    deadline = time.monotonic() + timeout
    out = b""
    closed = False
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
            closed = True
            break
        if not b:
            closed = True
            break
        out += b
        if not until_close and b"\r\n\r\n" in out:
            head, _, rest = out.partition(b"\r\n\r\n")
            length = None
            for line in head.split(b"\r\n")[1:]:
                k, _, v = line.partition(b":")
                if k.strip().lower() == b"content-length":
                    try:
                        length = int(v.strip())
                    except ValueError:
                        pass
            if length is not None and len(rest) >= length:
                break
            if length is None and b"transfer-encoding" not in head.lower():
                break
    return out, closed


def parse_raw(data):
    """(status, headers dict lower-cased, body bytes) of raw response bytes; status 0 if none."""
    if not data.startswith(b"HTTP/"):
        return 0, {}, data
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    try:
        status = int(lines[0].split()[1])
    except (IndexError, ValueError):
        return 0, {}, data
    hdrs = {}
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        hdrs[k.strip().lower().decode("latin-1")] = v.strip().decode("latin-1")
    return status, hdrs, body


def wait_closed(sock, timeout):
    """True when the peer closes the connection (EOF or reset) within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            b = sock.recv(65536)
        except socket.timeout:
            return False
        except OSError:
            return True
        if not b:
            return True
    return False


class SSE:
    """A Server-Sent-Events stream over http.client: events() yields (event, data, id)."""

    def __init__(self, port, path, headers=None, timeout=10.0, source=None):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout,
                                               source_address=(source, 0) if source else None)
        self.conn.request("GET", path, headers=headers or {})
        self.resp = self.conn.getresponse()
        self.status = self.resp.status
        self.raw = b""
        if self.status != 200:
            self.body = self.resp.read()
            self.raw = self.body

    def set_timeout(self, seconds):
        try:
            self.conn.sock.settimeout(seconds)
        except Exception:
            pass

    def events(self, deadline):
        """Yields (event, data, id) until the stream ends or the monotonic deadline passes."""
        event, data, eid = "message", [], None
        while time.monotonic() < deadline:
            self.set_timeout(max(0.05, deadline - time.monotonic()))
            try:
                line = self.resp.readline()
            except (socket.timeout, TimeoutError):
                return
            except (OSError, http.client.HTTPException):
                return
            if not line:
                return
            self.raw += line
            line = line.rstrip(b"\r\n").decode("utf-8", "replace")
            if line == "":
                if data or event != "message":
                    yield event, "\n".join(data), eid
                event, data, eid = "message", [], None
            elif line.startswith(":"):
                continue
            else:
                k, _, v = line.partition(":")
                v = v[1:] if v.startswith(" ") else v
                if k == "event":
                    event = v
                elif k == "data":
                    data.append(v)
                elif k == "id":
                    eid = v

    def close(self):
        try:
            self.conn.close()
        except Exception:
            pass


# ---------------------------------------------------------------------------------------------
# /health latency, measured from a separate process (so the test's own threads and the GIL do
# not add to what is measured)

_PROBE_CODE = r"""
import socket, sys, time, signal
port, interval, timeout = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
stop = False
def on_term(*a):
    global stop
    stop = True
signal.signal(signal.SIGTERM, on_term)
req = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
while not stop:
    t0 = time.monotonic()
    status = 0
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        s.settimeout(max(0.001, timeout - (time.monotonic() - t0)))
        s.sendall(req)
        buf = b""
        while b"\r\n\r\n" not in buf:
            b = s.recv(4096)
            if not b:
                break
            buf += b
            s.settimeout(max(0.001, timeout - (time.monotonic() - t0)))
        s.close()
        if buf.startswith(b"HTTP/"):
            status = int(buf.split()[1])
    except Exception:
        status = 0
    ms = (time.monotonic() - t0) * 1000.0
    sys.stdout.write("%.3f %d\n" % (ms, status))
    sys.stdout.flush()
    rest = interval - (time.monotonic() - t0)
    if rest > 0 and not stop:
        time.sleep(rest)
"""


class HealthProbe:
    """GET /health every `interval` s on a fresh connection, from a child process.

    with HealthProbe(port) as probe: ...   then probe.stats() -> dict(count, max_ms, p99_ms, bad)"""

    def __init__(self, port, interval=0.05, timeout=2.0):
        self.port, self.interval, self.timeout = port, interval, timeout
        self.samples = []  # (ms, status)
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen([sys.executable, "-c", _PROBE_CODE, str(self.port), str(self.interval),
                                      str(self.timeout)], stdout=subprocess.PIPE, text=True,
                                     preexec_fn=_pdeathsig)
        self._lines = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        # The probe runs once it has measured something.
        wait_for(lambda: len(self._lines) > 0, 10)
        return self

    def _read(self):
        for line in self.proc.stdout:
            self._lines.append(line)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(self.timeout + 5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(5)
        self.samples = []
        for line in self._lines:
            try:
                ms, status = line.split()
                self.samples.append((float(ms), int(status)))
            except ValueError:
                pass
        return self.stats()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    def stats(self):
        lat = sorted(ms for ms, _ in self.samples)
        if not lat:
            return {"count": 0, "max_ms": float("inf"), "p99_ms": float("inf"), "p50_ms": float("inf"), "bad": 0}
        p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]
        return {"count": len(lat), "max_ms": lat[-1], "p99_ms": p(0.99), "p50_ms": p(0.5),
                "bad": sum(1 for _, s in self.samples if s != 200)}


def health_limit_ms():
    """The /health latency bound; HUB_HEALTH_MS overrides it (default 100 ms, as issue #17 asks)."""
    return float(os.environ.get("HUB_HEALTH_MS", "100"))


# ---------------------------------------------------------------------------------------------
# The node


class Node:
    def __init__(self, binary=None, env=None, config=None, name="node", port=None, args=(), user=None):
        """user: (uid, gid) to run the node (and `user add`) as; its folder is given to that user."""
        self.binary = binary or BINARY
        self.name = name
        self.dir = tempfile.mkdtemp(prefix=name + "-", dir=session_root())
        self.user = user
        self.preexec = _pdeathsig
        if user is not None:
            os.chmod(session_root(), 0o711)
            os.chown(self.dir, user[0], user[1])
            self.preexec = _as_user(user[0], user[1])
        self.port = port or free_port()
        self.extra_env = dict(env or {})
        self.args = list(args)
        self.config_path = None
        if config is not None:
            self.config_path = os.path.join(self.dir, "node.toml")
            with open(self.config_path, "w") as f:
                f.write(config)
            os.chmod(self.config_path, 0o644)
        self.proc = None
        self.log_path = os.path.join(self.dir, "node.log")
        self.started_at = None
        self.stopped_at = None
        self.exit_code = None
        self.tokens = {}
        ALL_NODES.append(self)

    # -- environment and command line
    def env(self):
        e = base_env({"HIVE_SERVER__HOST": "127.0.0.1", "HIVE_SERVER__PORT": str(self.port)})
        e.update(self.extra_env)
        return e

    def command(self, *extra):
        cmd = [self.binary]
        if self.config_path:
            cmd += ["--config", self.config_path]
        return cmd + self.args + list(extra)

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    # -- lifecycle
    def start(self, wait=True, timeout=30.0):
        if self.alive():
            raise RuntimeError("%s is already running" % self.name)
        log = open(self.log_path, "ab")
        log.write(("\n===== %s start %s =====\n" % (self.name, time.strftime("%H:%M:%S"))).encode())
        log.flush()
        self.proc = subprocess.Popen(self.command(), cwd=self.dir, env=self.env(), stdin=subprocess.DEVNULL,
                                     stdout=log, stderr=subprocess.STDOUT, preexec_fn=self.preexec,
                                     start_new_session=True)
        log.close()
        self.started_at = time.monotonic()
        self.stopped_at = None
        self.exit_code = None
        if wait:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout=30.0):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError("%s exited with %s before it was ready; log tail:\n%s"
                                   % (self.name, self.proc.returncode, self.log_tail()))
            last = request(self.port, "GET", "/readyz", timeout=2.0)
            if last.status == 200:
                return True
            time.sleep(0.05)
        raise RuntimeError("%s not ready within %.0f s (last: %r); log tail:\n%s"
                           % (self.name, timeout, last, self.log_tail()))

    def wait_exit(self, timeout):
        """Exit code once the process ended within `timeout` s, else None."""
        if self.proc is None:
            return None
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        self.exit_code = code
        self.stopped_at = self.stopped_at or time.monotonic()
        return code

    def stop(self, timeout=20.0):
        """SIGTERM, then SIGKILL once `timeout` s passed. Returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.exit_code = self.proc.returncode
        self.stopped_at = time.monotonic()
        return self.exit_code

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.kill()
            except ProcessLookupError:
                pass
            self.proc.wait()
            self.stopped_at = time.monotonic()

    def restart(self, timeout=30.0):
        self.stop()
        return self.start(timeout=timeout)

    def remove(self):
        """Deletes the node's folder (only when it has stopped)."""
        if not self.alive():
            shutil.rmtree(self.dir, ignore_errors=True)

    # -- users and sessions
    def add_user(self, name, role, password=None, jwt_secret=None):
        """`BINARY user add NAME --role ROLE` in the node's folder with the node's environment."""
        password = password or password_of(name)
        env = self.env()
        env["JWT_SECRET"] = jwt_secret or self.extra_env.get("JWT_SECRET", JWT_SECRET)
        p = subprocess.run(self.command("user", "add", name, "--role", role), cwd=self.dir, env=env,
                           input=("%s\n%s\n" % (password, password)).encode(), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=60, preexec_fn=self.preexec)
        if p.returncode != 0:
            raise RuntimeError("user add %s failed (%d): %s" % (name, p.returncode, p.stdout.decode(errors="replace")))
        return password

    def add_role_users(self):
        for role in ROLES:
            self.add_user(role, role)

    def login(self, user, password=None, source=None, timeout=60.0):
        """POST /api/auth/login -> Response."""
        return self.request("POST", "/api/auth/login", {"username": user, "password": password or password_of(user)},
                            source=source, timeout=timeout)

    def token(self, user, password=None, source=None):
        r = self.login(user, password, source=source)
        if r.status != 200:
            raise AssertionError("login of %s: %r" % (user, r))
        return r.data["token"]

    def login_roles(self):
        self.tokens = {role: self.token(role) for role in ROLES}
        return self.tokens

    # -- requests
    def request(self, method, path, body=None, headers=None, token=None, api_key=None, source=None, timeout=15.0):
        return request(self.port, method, path, body, headers, token, api_key, source, timeout)

    def as_role(self, role, method, path, body=None, headers=None, timeout=15.0, source=None):
        """A request with the credential of a role: a role name (its token), "key" (the API key) or "" (none)."""
        if role == "key":
            return self.request(method, path, body, headers, api_key=self.extra_env.get("API_KEY", API_KEY),
                                timeout=timeout, source=source)
        if role:
            return self.request(method, path, body, headers, token=self.tokens[role], timeout=timeout, source=source)
        return self.request(method, path, body, headers, timeout=timeout, source=source)

    def raw(self, data, timeout=5.0, source=None, until_close=False):
        return raw_exchange(self.port, data, timeout=timeout, source=source, until_close=until_close)

    def connect(self, source=None, timeout=10.0):
        return socket.create_connection(("127.0.0.1", self.port), timeout=timeout,
                                        source_address=(source, 0) if source else None)

    def sse(self, path, headers=None, timeout=10.0, source=None):
        return SSE(self.port, path, headers=headers, timeout=timeout, source=source)

    def healthy(self, timeout=2.0):
        return self.alive() and request(self.port, "GET", "/health", timeout=timeout).status == 200

    # -- measurements
    def rss(self):
        return rss_bytes(self.pid) if self.alive() else None

    def hwm(self):
        return rss_bytes(self.pid, "VmHWM") if self.alive() else None

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_tail(self, lines=40):
        return "\n".join(self.log_text().splitlines()[-lines:])


def secured_node(name="node", env=None, config=None, users=True, binary=None, user=None):
    """A node with credentials as in production (JWT_SECRET, API_KEY, a user per role), started
    and logged in (node.tokens[role])."""
    e = {"JWT_SECRET": JWT_SECRET, "API_KEY": API_KEY}
    e.update(env or {})
    node = Node(binary=binary, env=e, config=config, name=name, user=user)
    if users:
        node.add_role_users()
    node.start()
    if users:
        node.login_roles()
    return node


# ---------------------------------------------------------------------------------------------
# Running the tests


class LogTailResult(unittest.TextTestResult):
    """Prints the tail of the log of every node that took part in a failing test."""

    def startTest(self, test):
        self._test_started = time.monotonic()
        super().startTest(test)

    def _tails(self, test):
        started = getattr(self, "_test_started", 0)
        out = []
        for n in ALL_NODES:
            if n.started_at is None:
                continue
            if n.alive() or (n.stopped_at is not None and n.stopped_at >= started) or (n.started_at >= started):
                out.append("----- %s (port %s, pid %s, %s) log tail: %s -----\n%s"
                           % (n.name, n.port, n.pid, "alive" if n.alive() else "exit %s" % n.exit_code,
                              n.log_path, n.log_tail(30)))
        if out:
            keep_dirs()
            self.stream.write("\n" + "\n".join(out) + "\n")
            self.stream.flush()

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._tails(test)

    def addError(self, test, err):
        super().addError(test, err)
        self._tails(test)


def parse_binary_arg(argv):
    """Strips --binary PATH (or --binary=PATH) from argv; sets hubnode.BINARY. Returns the rest."""
    global BINARY
    rest = [argv[0]]
    i = 1
    while i < len(argv):
        a = argv[i]
        if a == "--binary" and i + 1 < len(argv):
            BINARY = os.path.abspath(argv[i + 1])
            i += 2
            continue
        if a.startswith("--binary="):
            BINARY = os.path.abspath(a.split("=", 1)[1])
            i += 1
            continue
        rest.append(a)
        i += 1
    if not (os.path.isfile(BINARY) and os.access(BINARY, os.X_OK)):
        sys.stderr.write("hubnode: the node binary %s is missing or not executable (use --binary PATH)\n" % BINARY)
        sys.exit(2)
    return rest


def run_tests(module="__main__"):
    argv = parse_binary_arg(sys.argv)
    sys.stderr.write("hubnode: binary %s\n" % BINARY)
    runner = unittest.TextTestRunner(resultclass=LogTailResult, verbosity=2)
    unittest.main(module=module, argv=argv, testRunner=runner)
