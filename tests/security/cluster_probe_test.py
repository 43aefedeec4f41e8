#!/usr/bin/env python3
"""Issue #17, finding H3: who may join a cluster, and how members talk.

    python3 tests/security/cluster_probe_test.py --binary build/ai-orchestrator-hub [-v] [Class.test]

Every node runs on loopback with its own SQLite file; certificates come from
scripts/cluster-certs.sh (openssl). A rogue node is given 10 s to be listed as "up" by the real
members; a good late joiner started at the same moment shows that 10 s are enough to join.
"""

import json
import os
import socket
import ssl
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hubnode  # noqa: E402
from hubnode import JWT_SECRET, wait_for  # noqa: E402

CERTS_SCRIPT = os.path.join(hubnode.REPO, "scripts", "cluster-certs.sh")
SECRET = "cluster-probe-secret-0123456789abcdef"
JOIN_S = 30.0   # real members must see each other up within this
ROGUE_S = 10.0  # a rogue must not be listed as up within this (10 s)


def make_certs(directory, *names):
    p = subprocess.run(["bash", CERTS_SCRIPT, directory] + list(names), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=120)
    if p.returncode != 0:
        raise RuntimeError("cluster-certs.sh failed: " + p.stdout.decode(errors="replace"))
    return p.stdout.decode()


def toml_str(s):
    return json.dumps(s)


class ClusterNode(hubnode.Node):
    def __init__(self, name, cluster_port, seeds=(), secret=None, tls=None, api_key=hubnode.API_KEY,
                 jwt_secret=JWT_SECRET, cluster_host="127.0.0.1", env=None):
        lines = ["[cluster]", "enabled = true", "node_name = %s" % toml_str(name), "host = %s" % toml_str(cluster_host),
                 "port = %d" % cluster_port, "advertise_host = \"127.0.0.1\"",
                 "seeds = [%s]" % ", ".join(toml_str("127.0.0.1:%d" % p) for p in seeds)]
        if secret is not None:
            lines.append("secret = %s" % toml_str(secret))
        if tls is not None:
            cert, key, ca = tls
            lines += ["tls_cert = %s" % toml_str(cert), "tls_key = %s" % toml_str(key), "tls_ca = %s" % toml_str(ca)]
        e = {"API_KEY": api_key, "JWT_SECRET": jwt_secret}
        e.update(env or {})
        super().__init__(env=e, config="\n".join(lines) + "\n", name=name)
        self.node_name = name
        self.cluster_port = cluster_port
        self.api_key = api_key

    def members(self):
        """{name: status} as this node lists them; {} when it does not answer."""
        r = self.request("GET", "/api/cluster/nodes", api_key=self.api_key, timeout=5)
        if r.status != 200 or not isinstance(r.data, dict):
            return {}
        return {n.get("name"): n.get("status") for n in r.data.get("nodes", [])}


def all_up(nodes):
    names = [n.node_name for n in nodes]
    for n in nodes:
        m = n.members()
        if any(m.get(x) != "up" for x in names):
            return False
    return True


class ClusterCase(unittest.TestCase):
    def setUp(self):
        self.nodes = []

    def tearDown(self):
        for n in self.nodes:
            n.stop(timeout=10)

    def start(self, node, wait=True):
        self.nodes.append(node)
        node.start(wait=wait)
        return node

    def assertAllUp(self, nodes):
        ok = wait_for(lambda: all_up(nodes), JOIN_S, interval=0.2)
        views = {n.node_name: n.members() for n in nodes}
        self.assertTrue(ok, "the real members did not all see each other up within %.0f s: %s" % (JOIN_S, views))

    def watch_rogues(self, members, rogues, joiner=None):
        """For ROGUE_S seconds: no member lists a rogue as up. When a good joiner was started with
        the rogues, it must be up on every member by the end (10 s are enough to join)."""
        deadline = time.monotonic() + ROGUE_S
        seen_up, listed = [], {}
        while time.monotonic() < deadline:
            for m in members:
                view = m.members()
                for r in rogues:
                    if r.node_name in view:
                        listed[(m.node_name, r.node_name)] = view[r.node_name]
                    if view.get(r.node_name) == "up":
                        seen_up.append("%s lists %s as up" % (m.node_name, r.node_name))
            if seen_up:
                break
            time.sleep(0.25)
        for r in rogues:
            # It was ready (it started before the watch); a rogue may give up when it is refused.
            if not r.alive():
                sys.stderr.write("  rogue %s exited (%s) during the watch\n" % (r.node_name, r.proc.poll()))
        self.assertEqual(seen_up, [], "a rogue became a member (listed: %s)" % listed)
        if listed:
            sys.stderr.write("  rogues listed but never up: %s\n" % listed)
        if joiner is not None:
            self.assertAllUp(members + [joiner])


class H3ClusterSecret(ClusterCase):
    def test_h3_nodes_without_or_with_another_secret_never_become_members(self):
        p1, p2, p3, p4, p5 = (hubnode.free_port() for _ in range(5))
        n1 = self.start(ClusterNode("n1", p1, seeds=[p1], secret=SECRET))
        n2 = self.start(ClusterNode("n2", p2, seeds=[p1], secret=SECRET))
        self.assertAllUp([n1, n2])
        rogue_none = self.start(ClusterNode("rogue-nosecret", p3, seeds=[p1, p2]))
        rogue_other = self.start(ClusterNode("rogue-othersecret", p4, seeds=[p1, p2], secret="another-secret-0123456789abcdef00"))
        good = self.start(ClusterNode("n3", p5, seeds=[p1], secret=SECRET))
        self.watch_rogues([n1, n2], [rogue_none, rogue_other], joiner=good)


class H3ClusterTls(ClusterCase):
    @classmethod
    def setUpClass(cls):
        root = hubnode.session_root()
        cls.ca1 = os.path.join(root, "certs-ca1")
        cls.ca2 = os.path.join(root, "certs-ca2")
        make_certs(cls.ca1, "n1", "n2", "n3", "probe")
        make_certs(cls.ca2, "rogue", "probe")

    def tls(self, d, name):
        return (os.path.join(d, name + ".pem"), os.path.join(d, name + ".key"), os.path.join(d, "ca.pem"))

    def test_h3_a_node_with_a_certificate_of_another_ca_never_becomes_a_member(self):
        p1, p2, p3, p4 = (hubnode.free_port() for _ in range(4))
        n1 = self.start(ClusterNode("n1", p1, seeds=[p1], secret=SECRET, tls=self.tls(self.ca1, "n1")))
        n2 = self.start(ClusterNode("n2", p2, seeds=[p1], secret=SECRET, tls=self.tls(self.ca1, "n2")))
        self.assertAllUp([n1, n2])
        # The right secret, but a certificate of another CA.
        rogue = self.start(ClusterNode("rogue", p3, seeds=[p1, p2], secret=SECRET, tls=self.tls(self.ca2, "rogue")))
        good = self.start(ClusterNode("n3", p4, seeds=[p1], secret=SECRET, tls=self.tls(self.ca1, "n3")))
        self.watch_rogues([n1, n2], [rogue], joiner=good)

    def test_h3_a_tls_client_of_another_ca_cannot_connect_at_all(self):
        p1 = hubnode.free_port()
        self.start(ClusterNode("n1", p1, seeds=[p1], secret=SECRET, tls=self.tls(self.ca1, "n1")))
        outcome = self.tls_probe(p1, self.ca2)
        self.assertNotEqual(outcome, "open", "a client with a certificate of another CA got a working TLS connection")
        plain = self.plain_probe(p1)
        self.assertNotEqual(plain, "open", "a plain TCP client is still talked to on a TLS cluster port")

    def tls_probe(self, port, ca_dir):
        """'refused' (handshake or first read failed / closed) or 'open' (still open after 3 s)."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        # Trust the node's real CA, so that a failure is the node refusing us, not us refusing it.
        ctx.load_verify_locations(os.path.join(self.ca1, "ca.pem"))
        ctx.load_cert_chain(os.path.join(ca_dir, "probe.pem"), os.path.join(ca_dir, "probe.key"))
        raw = socket.create_connection(("127.0.0.1", port), timeout=5)
        try:
            s = ctx.wrap_socket(raw, do_handshake_on_connect=False)
            try:
                s.do_handshake()
            except (ssl.SSLError, OSError) as e:
                sys.stderr.write("  TLS client of another CA: handshake failed (%s)\n" % e)
                return "refused"
            s.settimeout(3)
            try:
                # TLS 1.3: the server checks the client certificate after the client's Finished;
                # a refusal arrives as an alert on the first read.
                b = s.recv(1)
                if not b:
                    return "refused"
                return "open"
            except socket.timeout:
                return "open"
            except (ssl.SSLError, OSError) as e:
                sys.stderr.write("  TLS client of another CA: refused after the handshake (%s)\n" % e)
                return "refused"
        finally:
            raw.close()

    def plain_probe(self, port):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        try:
            s.sendall(b"\x00" * 64)
            s.settimeout(3)
            try:
                b = s.recv(4096)
            except socket.timeout:
                return "open"
            except OSError:
                return "refused"
            return "refused" if not b or b[:1] == b"\x15" else "open"  # 0x15: a TLS alert
        finally:
            s.close()


class H3CrossNodeActors(ClusterCase):
    """GET /api/actors across nodes whose credentials differ: peers talk as nodes."""

    def test_h3_cross_node_actors_work_with_different_api_keys(self):
        p1, p2 = hubnode.free_port(), hubnode.free_port()
        n1 = self.start(ClusterNode("n1", p1, seeds=[p1], api_key="cluster-key-one-0123456789",
                                    jwt_secret="jwt-secret-of-node-one-0123456789abcdef"))
        n2 = self.start(ClusterNode("n2", p2, seeds=[p1], api_key="cluster-key-two-0123456789",
                                    jwt_secret="jwt-secret-of-node-two-0123456789abcdef"))
        self.assertAllUp([n1, n2])
        n1.add_user("viewer1", "viewer", jwt_secret="jwt-secret-of-node-one-0123456789abcdef")
        viewer = n1.token("viewer1")
        for asker, other, cred in ((n1, n2, {"api_key": n1.api_key}), (n2, n1, {"api_key": n2.api_key}),
                                   (n1, n2, {"token": viewer})):
            what = "GET /api/actors on %s with %s" % (asker.node_name, "its API key" if "api_key" in cred else "a viewer token")
            r = asker.request("GET", "/api/actors?limit=10000", timeout=15, **cred)
            self.assertEqual(r.status, 200, "%s: %r" % (what, r))
            d = r.data
            self.assertEqual(d.get("unreachable"), [], "%s: unreachable %s" % (what, d.get("unreachable")))
            self.assertIn(other.node_name, d.get("nodes", []), what)
            theirs = [a for a in d["actors"] if a.get("node") == other.node_name]
            self.assertTrue(theirs, "%s: no actor of %s" % (what, other.node_name))
            one = theirs[0]
            detail = asker.request("GET", "/api/actors/%s/%s" % (one["node"], one["id"]), timeout=15, **cred)
            self.assertEqual(detail.status, 200, "%s, then %s's actor %s: %r" % (what, other.node_name, one["id"], detail))


class H3NoSecretOnlyOnLoopback(ClusterCase):
    def refused(self, node):
        node.start(wait=False)
        self.nodes.append(node)

        def outcome():
            if not node.alive():
                return "exited"
            if hubnode.request(node.port, "GET", "/readyz", timeout=1).status == 200:
                return "ready"
            return None
        got = wait_for(outcome, 30, interval=0.1)
        return got, node.log_text()

    def test_h3_no_secret_off_loopback_refuses_to_start(self):
        node = ClusterNode("open-wide", hubnode.free_port(), cluster_host="0.0.0.0")
        got, log = self.refused(node)
        self.assertEqual(got, "exited", "a cluster node without a secret listening on 0.0.0.0 started:\n" + log[-2000:])
        self.assertNotEqual(node.exit_code if node.exit_code is not None else node.proc.poll(), 0)
        self.assertIn("secret", log.lower())

    def test_h3_no_secret_in_production_refuses_to_start(self):
        node = ClusterNode("prod-open", hubnode.free_port(), env={"HIVE_ENV": "production"})
        with open(node.config_path, "a") as f:
            f.write('[server]\ndata_dir = "./data"\n[database]\nurl = "sqlite://./data/hive.db"\n[logging]\nfile = ""\n')
        got, log = self.refused(node)
        self.assertEqual(got, "exited", "a production cluster node without a secret started:\n" + log[-2000:])
        self.assertIn("secret", log.lower())

    def test_h3_no_secret_on_loopback_in_development_starts(self):
        # Control: what the rules still allow.
        node = ClusterNode("dev-loopback", hubnode.free_port())
        got, log = self.refused(node)
        self.assertEqual(got, "ready", log[-2000:])


if __name__ == "__main__":
    hubnode.run_tests()
