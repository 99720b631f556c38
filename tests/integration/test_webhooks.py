"""Webhooks (protocol-ext section 4) through the real server: a local HTTP(S) receiver that checks
every Standard Webhooks signature and can fail on purpose; order per endpoint, retries with a
stable id, the durable outbox across kill -9, https, and one delivery per cluster."""
import asyncio
import base64
import hashlib
import hmac
import http.server
import json
import os
import shutil
import ssl
import subprocess
import tempfile
import threading
import time
import unittest

from harness import Client, RedisServer, Server, TIMEOUT, wait_until

SECRET = "a-webhook-secret-of-32-bytes-!!!"
LEASE_MS = 600


class Receiver:
    """An HTTP(S) server on a free port recording each POST; `fail` answers 500 to the next N, and
    `hang` holds the next N answers past the server's 5 s timeout... or less, as set."""

    def __init__(self, tls_context=None):
        self.events = []     # verified bodies, in arrival order
        self.tries = []      # (webhook-id, arrival time) of every try, answered or not
        self.bad = []        # requests whose signature did not verify
        self.fail = 0
        self.lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                wid = self.headers["webhook-id"]
                ts = self.headers["webhook-timestamp"]
                sig = self.headers["webhook-signature"]
                expected = "v1," + base64.b64encode(hmac.new(
                    SECRET.encode(), ("%s.%s." % (wid, ts)).encode() + body,
                    hashlib.sha256).digest()).decode()
                with outer.lock:
                    outer.tries.append((wid, time.monotonic()))
                    if sig != expected or abs(int(ts) - time.time()) > 60:
                        outer.bad.append((wid, ts, sig))
                    failing = outer.fail > 0
                    if failing:
                        outer.fail -= 1
                    else:
                        event = json.loads(body)
                        assert event["id"] == wid
                        outer.events.append(event)
                self.send_response(500 if failing else 204)
                self.end_headers()

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls_context is not None:
            self.httpd.socket = tls_context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, scheme="http"):
        return "%s://127.0.0.1:%d/hook" % (scheme, self.port)

    def of(self, type_):
        with self.lock:
            return [e for e in self.events if e["type"] == type_]

    def types(self):
        with self.lock:
            return [e["type"] for e in self.events]

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class WebhookTest(unittest.IsolatedAsyncioTestCase):
    def setUp(self):
        self.receiver = Receiver()
        self.addCleanup(self.receiver.stop)

    def start(self, **settings):
        settings.setdefault("webhook_url", self.receiver.url())
        settings.setdefault("webhook_secret", SECRET)
        s = Server(**settings)
        self.addCleanup(s.kill)
        return s

    async def test_lifecycle_events_are_signed_and_in_order(self):
        s = self.start(webhook_events="channel.occupied,channel.vacated,member.entered,"
                                      "member.left,user.online,user.offline")
        alice = await Client.connect(s, "alice")
        await alice.ok("enter", channel="room", data={"n": 1})
        await alice.ok("leave", channel="room")
        await alice.close()
        wait_until(lambda: "user.offline" in self.receiver.types())
        self.assertEqual(self.receiver.types(), ["user.online", "channel.occupied", "member.entered",
                                                 "member.left", "channel.vacated", "user.offline"])
        self.assertEqual(self.receiver.bad, [])
        ev = self.receiver.events
        self.assertEqual(ev[0]["data"], {"clientId": "alice"})
        self.assertEqual(ev[1]["data"], {"channel": "room"})
        self.assertEqual(ev[2]["data"]["member"]["data"], {"n": 1})
        self.assertEqual(ev[3]["data"]["reason"], "left")
        ids = [e["id"] for e in ev]
        self.assertEqual(len(set(ids)), len(ids))
        self.assertTrue(all(isinstance(e["timestamp"], int) for e in ev))

    async def test_the_default_types_leave_out_members_and_sessions_are_included(self):
        s = self.start()
        alice = await Client.connect(s, "alice")
        await alice.ok("enter", channel="conversation:c1")
        status, _ = s.http("PUT", "/v1/sessions/c1", {})
        self.assertEqual(status, 201)
        status, _ = s.http("DELETE", "/v1/sessions/c1")
        wait_until(lambda: "session.stopped" in self.receiver.types())
        self.assertEqual(self.receiver.types(), ["user.online", "channel.occupied",
                                                 "session.started", "session.stopped"])
        stopped = self.receiver.of("session.stopped")[0]
        self.assertEqual(stopped["data"]["reason"], "stopped")
        self.assertEqual(stopped["data"]["session"]["conversationId"], "c1")

    async def test_a_failing_endpoint_is_retried_with_the_same_id_and_order_is_kept(self):
        s = self.start()
        self.receiver.fail = 2
        alice = await Client.connect(s, "alice")
        await alice.ok("enter", channel="room")
        wait_until(lambda: len(self.receiver.events) >= 2, timeout=20)
        self.assertEqual(self.receiver.types(), ["user.online", "channel.occupied"])
        first = self.receiver.events[0]["id"]
        tries = [t for t in self.receiver.tries if t[0] == first]
        self.assertEqual(len(tries), 3)  # two 500s, then delivered
        gaps = [b[1] - a[1] for a, b in zip(tries, tries[1:])]
        self.assertGreaterEqual(gaps[0], 0.9)   # 1 s
        self.assertGreaterEqual(gaps[1], 1.9)   # then 2 s
        # The second event waited for the first: it was tried once, after the first got through.
        second = self.receiver.events[1]["id"]
        self.assertEqual(len([t for t in self.receiver.tries if t[0] == second]), 1)
        status, metrics = s.http("GET", "/metrics", key=False)
        self.assertIn('presenced_webhook_deliveries_total{result="error"} 2', metrics)
        self.assertIn('presenced_webhook_deliveries_total{result="ok"} 2', metrics)

    async def test_undelivered_events_survive_kill_9(self):
        s = self.start()
        self.receiver.fail = 1000
        alice = await Client.connect(s, "alice")
        await alice.ok("enter", channel="room")
        wait_until(lambda: len(self.receiver.tries) >= 1)
        # Both events queued, and every write committed: the outbox is on disk.
        def on_disk():
            m = s.http("GET", "/metrics", key=False)[1]
            return "presenced_webhook_queue_depth 2" in m and "presenced_storage_pending 0" in m
        wait_until(on_disk)
        first_id = self.receiver.tries[0][0]
        s.kill()
        self.receiver.fail = 0
        s2 = self.start(data_dir=s.data_dir)
        wait_until(lambda: len(self.receiver.events) >= 2, timeout=15)
        self.assertEqual(self.receiver.events[0]["id"], first_id)
        self.assertEqual(self.receiver.types()[:2], ["user.online", "channel.occupied"])
        # Delivered, they leave the outbox (in memory and on disk).
        wait_until(lambda: "presenced_webhook_queue_depth 0" in
                   s2.http("GET", "/metrics", key=False)[1])

    async def test_https_endpoints_with_a_trusted_certificate(self):
        d = tempfile.mkdtemp(prefix="presenced-tls-")
        cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                        "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1",
                        "-addext", "subjectAltName=IP:127.0.0.1"],
                       check=True, capture_output=True)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        tls = Receiver(ctx)
        self.addCleanup(tls.stop)
        s = self.start(webhook_url=tls.url("https"), webhook_ca_file=cert)
        alice = await Client.connect(s, "alice")
        wait_until(lambda: tls.types() == ["user.online"])
        self.assertEqual(tls.bad, [])
        # Without trusting it, the handshake fails and nothing is delivered.
        untrusted = Receiver(ctx)
        self.addCleanup(untrusted.stop)
        s2 = self.start(webhook_url=untrusted.url("https"))
        bob = await Client.connect(s2, "bob")
        wait_until(lambda: 'presenced_webhook_deliveries_total{result="error"} 1' in
                   s2.http("GET", "/metrics", key=False)[1])
        self.assertEqual(untrusted.events, [])
        await alice.close()
        await bob.close()

    def test_bad_settings_are_refused(self):
        from harness import run_failing
        d = tempfile.mkdtemp(prefix="presenced-test-")
        code, err = run_failing(d, webhook_url=self.receiver.url(), webhook_secret="short")
        self.assertEqual(code, 2)
        self.assertIn("webhook_secret", err)
        code, err = run_failing(d, webhook_url="ftp://x", webhook_secret=SECRET)
        self.assertEqual(code, 2)
        code, err = run_failing(d, webhook_url=self.receiver.url(), webhook_secret=SECRET,
                                webhook_events="user.online,bogus")
        self.assertEqual(code, 2)
        self.assertIn("bogus", err)


class ClusterWebhookTest(unittest.IsolatedAsyncioTestCase):
    """Two nodes on one Redis: each event is delivered once by the cluster, and another node takes
    over the delivery when the delivering node dies."""

    def setUp(self):
        self.receiver = Receiver()
        self.addCleanup(self.receiver.stop)
        self.redis = RedisServer().start()
        self.addCleanup(self.redis.stop)
        common = dict(redis_url=self.redis.url, node_lease_ms=LEASE_MS,
                      webhook_url=self.receiver.url(), webhook_secret=SECRET)
        self.a = Server(node_id="a", **common)
        self.addCleanup(self.a.kill)
        shared = tempfile.mkdtemp(prefix="presenced-test-")
        for name in ("jwt-secret", "api-key"):
            shutil.copy(os.path.join(self.a.data_dir, name), shared)
        self.b = Server(data_dir=shared, node_id="b", **common)
        self.addCleanup(self.b.kill)
        for s in (self.a, self.b):
            wait_until(lambda s=s: s.http("GET", "/v1/healthz", key=False)[0] == 200)

    async def test_each_event_is_sent_once_by_the_cluster_and_delivery_survives_a_node(self):
        alice = await Client.connect(self.a, "alice")
        bob = await Client.connect(self.b, "bob")
        await alice.ok("enter", channel="room")
        await bob.ok("enter", channel="room")
        await alice.ok("leave", channel="room")
        await bob.ok("leave", channel="room")
        wait_until(lambda: self.receiver.types().count("channel.vacated") == 1)
        self.assertEqual(self.receiver.types(), ["user.online", "user.online", "channel.occupied",
                                                 "channel.vacated"])
        # Whichever node delivers dies; the other takes over at the reap and delivers the rest.
        self.receiver.fail = 1000
        await bob.ok("enter", channel="room2")
        wait_until(lambda: len(self.receiver.tries) >= 5)
        deliverer = self.a if self._delivers(self.a) else self.b
        self.assertFalse(self._delivers(self.b if deliverer is self.a else self.a))
        survivor = self.b if deliverer is self.a else self.a
        deliverer.kill()
        self.receiver.fail = 0
        # The survivor delivers once the dead node is reaped. (A try the dead node had in flight
        # may still reach the receiver after the kill: at least once, with the same id.)
        wait_until(lambda: self._delivered_ok(survivor) >= 1, timeout=20)
        self.assertIn("channel.occupied", self.receiver.types()[4:])
        ids = [e["id"] for e in self.receiver.events]
        head = [e["id"] for e in self.receiver.events[4:]]
        self.assertEqual(len(set(ids[:4])), 4)
        self.assertEqual(len(set(head)), 1)  # only the one event, perhaps twice
        self.assertFalse(set(head) & set(ids[:4]))

    def _delivered_ok(self, server):
        status, metrics = server.http("GET", "/metrics", key=False)
        for line in metrics.splitlines():
            if line.startswith('presenced_webhook_deliveries_total{result="ok"}'):
                return int(line.split()[-1])
        return 0

    def _delivers(self, server):
        status, metrics = server.http("GET", "/metrics", key=False)
        for line in metrics.splitlines():
            if line.startswith('presenced_webhook_deliveries_total{result="ok"}') or \
               line.startswith('presenced_webhook_deliveries_total{result="error"}'):
                if int(line.split()[-1]) > 0:
                    return True
        return False


if __name__ == "__main__":
    unittest.main()
