"""Cluster mode (protocol-ext section 2) through the real server and a real redis-server: the
settings, the node's lease, /v1/healthz while Redis is down, and fencing (4001)."""
import asyncio
import os
import tempfile
import unittest

import websockets
import websockets.exceptions

from harness import Client, RedisServer, Server, TIMEOUT, run_failing, wait_until

LEASE_MS = 600


def healthz(server):
    try:
        return server.http("GET", "/v1/healthz", key=False)
    except OSError:
        return None, None


class ClusterNodeTest(unittest.IsolatedAsyncioTestCase):
    def setUp(self):
        self.redis = RedisServer().start()
        self.server = Server(redis_url=self.redis.url, node_id="n1", node_lease_ms=LEASE_MS)

    def tearDown(self):
        self.server.kill()
        self.redis.stop()

    def test_the_node_holds_a_lease_and_healthz_says_redis_is_up(self):
        wait_until(lambda: healthz(self.server) == (200, {"ok": True, "redis": "up"}))
        self.assertTrue(self.redis.cli("ZSCORE", "{presenced}:nodes", "n1"))
        self.assertTrue(self.redis.cli("GET", "{presenced}:epoch"))
        status, text = self.server.http("GET", "/metrics", key=False)
        self.assertIn("presenced_redis_up 1\n", text)

    def test_redis_down_is_a_503_until_it_is_back(self):
        wait_until(lambda: healthz(self.server)[0] == 200)
        self.redis.stop()
        wait_until(lambda: healthz(self.server) == (503, {"ok": False, "redis": "down"}))
        status, text = self.server.http("GET", "/metrics", key=False)
        self.assertIn("presenced_redis_up 0\n", text)
        self.redis.start()
        wait_until(lambda: healthz(self.server) == (200, {"ok": True, "redis": "up"}),
                   timeout=LEASE_MS / 1000 + 2)
        self.assertTrue(self.redis.cli("ZSCORE", "{presenced}:nodes", "n1"))

    def test_a_redis_that_stops_answering_is_a_503_too(self):
        wait_until(lambda: healthz(self.server)[0] == 200)
        self.redis.pause()
        wait_until(lambda: healthz(self.server) == (503, {"ok": False, "redis": "down"}))
        self.redis.resume()
        wait_until(lambda: healthz(self.server) == (200, {"ok": True, "redis": "up"}))

    async def test_a_lease_lost_while_redis_serves_closes_every_connection_with_4001(self):
        wait_until(lambda: healthz(self.server)[0] == 200)
        c = await Client.connect(self.server, "fenced-user")
        await c.ok("ping")
        # Its deadline passed while Redis served (the node's own renewals keep Redis busy).
        seconds, micros = self.redis.cli("TIME").split()
        now_ms = int(seconds) * 1000 + int(micros) // 1000
        self.redis.cli("SET", "{presenced}:served", str(now_ms - 100))
        self.redis.cli("ZADD", "{presenced}:nodes", str(now_ms - 1), "n1")
        with self.assertRaises(websockets.exceptions.ConnectionClosed) as e:
            await c.next("never", timeout=TIMEOUT)
        self.assertEqual(e.exception.rcvd.code, 4001)
        # It registered again, as a new incarnation, and serves new connections.
        wait_until(lambda: "presenced_node_fenced_total 1\n" in
                   self.server.http("GET", "/metrics", key=False)[1])
        wait_until(lambda: healthz(self.server)[0] == 200)
        d = await Client.connect(self.server, "after-fence")
        await d.ok("ping")
        await d.close()

    def test_sigterm_removes_the_lease_at_once(self):
        wait_until(lambda: self.redis.cli("ZSCORE", "{presenced}:nodes", "n1") != "")
        self.assertEqual(self.server.terminate(), 0)
        self.assertEqual(self.redis.cli("ZSCORE", "{presenced}:nodes", "n1"), "")
        self.assertEqual(self.redis.cli("HEXISTS", "{presenced}:inc", "n1"), "0")


class ClusterSettingsTest(unittest.TestCase):
    def test_settings_that_cannot_work_are_refused_at_start(self):
        for settings, text in [
            ({"redis_url": "http://127.0.0.1:6379"}, "redis_url"),
            ({"redis_url": "redis://127.0.0.1:0"}, "redis_url"),
            ({"storage": "redis"}, "redis needs redis_url"),
            ({"redis_url": "redis://127.0.0.1:1", "node_id": "has space"}, "node_id"),
            ({"node_lease_ms": "10"}, "node_lease_ms"),
        ]:
            code, err = run_failing(tempfile.mkdtemp(prefix="presenced-test-"), **settings)
            self.assertEqual(code, 2, settings)
            self.assertIn(text, err, settings)

    def test_without_redis_healthz_says_nothing_of_it(self):
        s = Server()
        try:
            self.assertEqual(healthz(s), (200, {"ok": True}))
        finally:
            s.kill()


if __name__ == "__main__":
    unittest.main()
