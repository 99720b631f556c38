"""Agent sessions (protocol-ext section 3) through the real server: workers and clients as
WebSocket connections, the REST routes, and two nodes on one redis-server for the one-session rule
and the hand-over when a worker's node dies."""
import asyncio
import os
import shutil
import tempfile
import unittest

from harness import Client, RedisServer, Server, TIMEOUT, wait_until

LEASE_MS = 600


async def worker(server, name="w", capacity=None, **params):
    w = await Client.connect(server, name, roles=["worker"], **params)
    fields = {} if capacity is None else {"capacity": capacity}
    await w.ok("session.serve", **fields)
    return w


async def session_event(client, action, conversation="c1", timeout=TIMEOUT):
    return await client.next("session", timeout, lambda f: f["action"] == action and
                             f["session"]["conversationId"] == conversation)


class SessionTest(unittest.IsolatedAsyncioTestCase):
    def setUp(self):
        self.server = Server()

    def tearDown(self):
        self.server.kill()

    async def test_only_workers_serve_and_the_token_must_allow_the_conversation(self):
        plain = await Client.connect(self.server, "u")
        r = await plain.request("session.serve")
        self.assertEqual(r["error"]["code"], "forbidden")
        narrow = await Client.connect(self.server, "n", channels=["conversation:mine"])
        r = await narrow.request("session.start", conversationId="other")
        self.assertEqual(r["error"]["code"], "forbidden")
        r = await narrow.request("session.start", conversationId="mine")
        self.assertTrue(r["ok"], r)
        for bad in ({}, {"conversationId": ""}, {"conversationId": 5},
                    {"conversationId": "x", "inactivityTimeoutMs": 0},
                    {"conversationId": "x", "abandonAfterMs": "soon"}):
            r = await plain.request("session.start", **bad)
            self.assertEqual(r["error"]["code"], "bad_request", bad)
        r = await plain.request("session.touch", conversationId="none")
        self.assertEqual(r["error"]["code"], "not_present")
        r = await plain.request("session.ready", conversationId="mine")
        self.assertEqual(r["error"]["code"], "not_present")  # not this connection's session
        w = await worker(self.server)
        r = await w.request("session.serve", capacity=-1)
        self.assertEqual(r["error"]["code"], "bad_request")

    async def test_start_is_idempotent_and_ready_enters_the_agent(self):
        w = await worker(self.server, capacity=5)
        user = await Client.connect(self.server, "alice")
        await user.ok("enter", channel="conversation:c1", data={"name": "Alice"})
        await user.ok("subscribe", channel="conversation:c1")
        r = await user.ok("session.ensure", conversationId="c1", request={"prompt": "hi"})
        self.assertTrue(r["created"])
        s = r["session"]
        self.assertEqual((s["conversationId"], s["agentId"], s["state"]), ("c1", "agent-c1", "starting"))
        self.assertEqual(s["workerConnectionId"], w.connected["connectionId"])
        self.assertEqual(s["inactivityTimeoutMs"], 1800000)
        assign = await w.next("session.assign")
        self.assertEqual(assign["request"], {"prompt": "hi"})
        self.assertEqual(assign["session"]["conversationId"], "c1")
        again = await user.ok("session.start", conversationId="c1", request={"prompt": "ignored"})
        self.assertFalse(again["created"])
        self.assertEqual(again["session"]["startedAt"], s["startedAt"])
        self.assertTrue(await w.quiet(0.2))  # no second assignment
        await w.ok("session.ready", conversationId="c1")
        running = await session_event(user, "running")
        self.assertEqual(running["session"]["state"], "running")
        self.assertNotIn("reason", running)
        enter = await user.presence("conversation:c1")
        self.assertEqual((enter["action"], enter["member"]["clientId"]), ("enter", "agent-c1"))
        self.assertEqual(enter["member"]["data"], {"agent": True, "state": "running"})
        got = await user.ok("session.get", conversationId="c1")
        self.assertEqual(got["session"]["state"], "running")
        none = await user.ok("session.get", conversationId="nope")
        self.assertIsNone(none["session"])
        who = await user.ok("who", channel="conversation:c1")
        self.assertIn("agent-c1", [u["clientId"] for u in who["users"]])

    async def test_stop_tells_worker_and_subscribers_and_the_agent_leaves(self):
        w = await worker(self.server)
        user = await Client.connect(self.server, "alice")
        await user.ok("enter", channel="conversation:c1")
        await user.ok("subscribe", channel="conversation:c1")
        await user.ok("session.ensure", conversationId="c1")
        await w.next("session.assign")
        await w.ok("session.ready", conversationId="c1")
        await user.presence("conversation:c1")  # the agent's enter
        r = await user.ok("session.stop", conversationId="c1")
        self.assertTrue(r["stopped"])
        stop = await w.next("session.stop")
        self.assertEqual(stop, {"type": "session.stop", "conversationId": "c1", "reason": "stopped"})
        stopped = await session_event(user, "stopped")
        self.assertEqual(stopped["reason"], "stopped")
        leave = await user.presence("conversation:c1")
        self.assertEqual((leave["action"], leave["member"]["clientId"], leave["reason"]),
                         ("leave", "agent-c1", "left"))
        r = await user.ok("session.stop", conversationId="c1")
        self.assertFalse(r["stopped"])

    async def test_idle_when_nobody_writes_in_the_conversation(self):
        w = await worker(self.server)
        user = await Client.connect(self.server, "alice")
        await user.ok("enter", channel="conversation:c1")
        r = await user.ok("session.ensure", conversationId="c1", inactivityTimeoutMs=1000)
        self.assertEqual(r["session"]["inactivityTimeoutMs"], 1000)
        await w.next("session.assign")
        await w.ok("session.ready", conversationId="c1")
        await session_event(user, "running")
        # Requests in the conversation channel keep it alive.
        for _ in range(2):
            await asyncio.sleep(0.3)  # the pace of a user writing, well within the timeout
            await user.ok("update", channel="conversation:c1", data={"typing": True})
        stopped = await session_event(user, "stopped")
        self.assertEqual(stopped["reason"], "idle")
        self.assertGreaterEqual(stopped["session"]["lastActivityAt"], r["session"]["startedAt"] + 500)
        self.assertEqual((await w.next("session.stop"))["reason"], "idle")

    async def test_abandoned_when_only_the_agent_is_left(self):
        w = await worker(self.server)
        user = await Client.connect(self.server, "alice")
        watcher = await Client.connect(self.server, "bob")
        await user.ok("enter", channel="conversation:c1")
        await watcher.ok("session.ensure", conversationId="c1", abandonAfterMs=300)
        await w.next("session.assign")
        await w.ok("session.ready", conversationId="c1")
        await session_event(watcher, "running")
        self.assertTrue(await watcher.quiet(0.5))  # alice is there: no stop
        await user.ok("leave", channel="conversation:c1")
        stopped = await session_event(watcher, "stopped")
        self.assertEqual(stopped["reason"], "abandoned")

    async def test_a_worker_that_fails_stops_the_session_as_failed(self):
        w = await worker(self.server)
        user = await Client.connect(self.server, "alice")
        await user.ok("enter", channel="conversation:c1")
        await user.ok("session.ensure", conversationId="c1")
        await w.next("session.assign")
        await w.ok("session.fail", conversationId="c1", error="no model")
        stopped = await session_event(user, "stopped")
        self.assertEqual((stopped["reason"], stopped["error"]), ("failed", "no model"))
        r = await user.ok("session.get", conversationId="c1")
        self.assertIsNone(r["session"])

    async def test_a_closed_workers_sessions_are_handed_over_and_the_agent_stays(self):
        w1 = await worker(self.server, "w1", capacity=5)
        w2 = await worker(self.server, "w2", capacity=1)
        user = await Client.connect(self.server, "alice")
        await user.ok("enter", channel="conversation:c1")
        await user.ok("subscribe", channel="conversation:c1")
        r = await user.ok("session.ensure", conversationId="c1")
        self.assertEqual(r["session"]["workerConnectionId"], w1.connected["connectionId"])
        await w1.next("session.assign")
        await w1.ok("session.ready", conversationId="c1")
        await session_event(user, "running")
        await user.presence("conversation:c1")  # the agent's enter
        await w1.close()
        re = await session_event(user, "reassigned")
        self.assertEqual(re["session"]["state"], "starting")
        self.assertEqual(re["session"]["workerConnectionId"], w2.connected["connectionId"])
        await w2.next("session.assign")
        await w2.ok("session.ready", conversationId="c1")
        running = await session_event(user, "running")
        self.assertEqual(running["session"]["workerConnectionId"], w2.connected["connectionId"])
        self.assertTrue(await user.quiet(0.2))  # no leave or second enter of the agent

    async def test_a_dropped_worker_with_no_other_loses_its_sessions_after_its_grace(self):
        w = await worker(self.server, remainPresentForMs=200)
        user = await Client.connect(self.server, "alice")
        await user.ok("enter", channel="conversation:c1")
        await user.ok("session.ensure", conversationId="c1")
        await w.next("session.assign")
        await w.ok("session.ready", conversationId="c1")
        await session_event(user, "running")
        w.drop()
        stopped = await session_event(user, "stopped")
        self.assertEqual(stopped["reason"], "worker_lost")
        self.assertIsNone(stopped["session"]["workerConnectionId"])

    async def test_a_worker_resumed_within_its_grace_keeps_its_sessions(self):
        w = await worker(self.server, remainPresentForMs=5000)
        user = await Client.connect(self.server, "alice")
        await user.ok("enter", channel="conversation:c1")
        await user.ok("session.ensure", conversationId="c1")
        await w.next("session.assign")
        key = w.connected["connectionKey"]
        w.drop()
        w2 = await Client.connect(self.server, "w", roles=["worker"], resume=key)
        self.assertTrue(w2.connected["resumed"])
        assign = await w2.next("session.assign")  # sent again: it was not ready yet
        self.assertEqual(assign["session"]["conversationId"], "c1")
        await w2.ok("session.ready", conversationId="c1")
        await session_event(user, "running")

    async def test_a_session_waits_for_a_worker_with_room(self):
        user = await Client.connect(self.server, "alice")
        await user.ok("enter", channel="conversation:c1")
        r = await user.ok("session.ensure", conversationId="c1")
        self.assertIsNone(r["session"]["workerConnectionId"])
        w = await worker(self.server, capacity=1)
        assign = await w.next("session.assign")
        self.assertEqual(assign["session"]["workerConnectionId"], w.connected["connectionId"])
        await user.ok("enter", channel="conversation:c2")
        r = await user.ok("session.start", conversationId="c2")
        self.assertIsNone(r["session"]["workerConnectionId"])  # the worker is full

    async def test_rest_routes(self):
        s = self.server
        status, body = s.http("PUT", "/v1/sessions/r1", {"request": {"k": 1}, "abandonAfterMs": 60000})
        self.assertEqual(status, 201, body)
        self.assertEqual((body["conversationId"], body["state"]), ("r1", "starting"))
        status, again = s.http("PUT", "/v1/sessions/r1", raw_body=b"")
        self.assertEqual(status, 200, again)
        self.assertEqual(again["startedAt"], body["startedAt"])
        status, got = s.http("GET", "/v1/sessions/r1")
        self.assertEqual((status, got["agentId"]), (200, "agent-r1"))
        status, err = s.http("GET", "/v1/sessions/none")
        self.assertEqual((status, err["error"]["code"]), (404, "not_found"))
        status, listed = s.http("GET", "/v1/sessions")
        self.assertEqual([x["conversationId"] for x in listed["sessions"]], ["r1"])
        status, _ = s.http("DELETE", "/v1/sessions/r1")
        self.assertEqual(status, 204)
        status, _ = s.http("DELETE", "/v1/sessions/r1")
        self.assertEqual(status, 204)
        status, listed = s.http("GET", "/v1/sessions")
        self.assertEqual(listed["sessions"], [])
        status, err = s.http("PUT", "/v1/sessions/r2", {"inactivityTimeoutMs": -5})
        self.assertEqual((status, err["error"]["code"]), (400, "bad_request"))
        status, _ = s.http("GET", "/v1/sessions", key=False)
        self.assertEqual(status, 401)


class ClusterSessionTest(unittest.IsolatedAsyncioTestCase):
    """Two nodes on one Redis: one session per conversation across them; a worker's node dying
    hands its sessions over to a worker on the other node."""

    def setUp(self):
        self.redis = RedisServer().start()
        self.addCleanup(self.redis.stop)
        self.a = Server(redis_url=self.redis.url, node_id="a", node_lease_ms=LEASE_MS)
        shared = tempfile.mkdtemp(prefix="presenced-test-")
        for name in ("jwt-secret", "api-key"):
            shutil.copy(os.path.join(self.a.data_dir, name), shared)
        self.b = Server(data_dir=shared, redis_url=self.redis.url, node_id="b",
                        node_lease_ms=LEASE_MS)
        for s in (self.a, self.b):
            wait_until(lambda s=s: s.http("GET", "/v1/healthz", key=False)[0] == 200)

    def tearDown(self):
        self.a.kill()
        self.b.kill()
        self.redis.stop()

    async def test_one_session_per_conversation_and_hand_over_when_a_node_dies(self):
        wb = await worker(self.b, "wb", capacity=10, remainPresentForMs=0)
        user = await Client.connect(self.a, "alice")
        await user.ok("enter", channel="conversation:c1")
        await user.ok("subscribe", channel="conversation:c1")
        # Both nodes at once: one creates it.
        other = await Client.connect(self.b, "bob")
        r1, r2 = await asyncio.gather(user.request("session.ensure", conversationId="c1"),
                                      other.request("session.ensure", conversationId="c1"))
        self.assertTrue(r1["ok"] and r2["ok"], (r1, r2))
        self.assertEqual(sorted([r1["created"], r2["created"]]), [False, True])
        self.assertEqual(r1["session"]["startedAt"], r2["session"]["startedAt"])
        await wb.next("session.assign")
        await wb.ok("session.ready", conversationId="c1")
        await session_event(user, "running")
        await session_event(other, "running")
        enter = await user.presence("conversation:c1")
        self.assertEqual(enter["member"]["clientId"], "agent-c1")
        status, listed = self.a.http("GET", "/v1/sessions")
        self.assertEqual(listed["sessions"][0]["workerConnectionId"], wb.connected["connectionId"])
        wa = await worker(self.a, "wa", capacity=1)
        self.b.kill()  # the worker's node dies: its lease ends, its connections are reaped
        re = await session_event(user, "reassigned")
        self.assertEqual(re["session"]["workerConnectionId"], wa.connected["connectionId"])
        await wa.next("session.assign")
        await wa.ok("session.ready", conversationId="c1")
        await session_event(user, "running")
        self.assertTrue(await user.quiet(0.2))  # the agent stayed present throughout
        r = await user.ok("session.get", conversationId="c1")
        self.assertEqual(r["session"]["state"], "running")

    async def test_a_session_created_on_a_node_that_dies_lives_on(self):
        status, body = self.b.http("PUT", "/v1/sessions/c9", {})
        self.assertEqual(status, 201, body)
        status, got = self.a.http("GET", "/v1/sessions/c9")
        self.assertEqual((status, got["startedAt"]), (200, body["startedAt"]))
        self.b.kill()
        w = await worker(self.a, "w")
        assign = await w.next("session.assign")
        self.assertEqual(assign["session"]["conversationId"], "c9")
        status, _ = self.a.http("DELETE", "/v1/sessions/c9")
        self.assertEqual(status, 204)
        self.assertEqual((await w.next("session.stop"))["reason"], "stopped")


if __name__ == "__main__":
    unittest.main()
