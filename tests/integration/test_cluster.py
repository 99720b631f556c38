"""Cluster mode (protocol-ext section 2) through the real server and a real redis-server: the
settings, the node's lease, /v1/healthz while Redis is down, and fencing (4001)."""
import asyncio
import json
import os
import shutil
import signal
import tempfile
import time
import unittest

import websockets
import websockets.exceptions

from harness import Client, RedisServer, Server, TIMEOUT, run_failing, wait_until

LEASE_MS = 600


async def change(client, op, **fields):
    """Sends a change until it is acknowledged (a node refuses changes while its Redis connection
    is being re-established); returns the data it carried. Dict data carries the attempt's number,
    so a refused attempt that was applied after all is told from the retry."""
    deadline = time.monotonic() + TIMEOUT
    data = fields.get("data")
    for attempt in range(1000):
        if isinstance(data, dict):
            fields["data"] = dict(data, attempt=attempt)
        r = await client.request(op, **fields)
        if r["ok"]:
            return fields.get("data")
        if "unavailable" not in r["error"]["message"] or time.monotonic() > deadline:
            raise AssertionError(r)
        await asyncio.sleep(0.05)  # a retry's pause, as a client's backoff


def healthz(server):
    try:
        return server.http("GET", "/v1/healthz", key=False)
    except OSError:
        return None, None


class ClusterNodeTest(unittest.IsolatedAsyncioTestCase):
    def setUp(self):
        self.redis = RedisServer().start()
        self.addCleanup(self.redis.stop)  # also when the rest of setUp fails
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


class TwoNodesTest(unittest.IsolatedAsyncioTestCase):
    """Two nodes on one Redis answer as one server (the log replicates every change)."""

    def setUp(self):
        self.redis = RedisServer(durable=getattr(self, "durable_redis", False)).start()
        self.addCleanup(self.redis.stop)  # also when the rest of setUp fails
        self.a = Server(redis_url=self.redis.url, node_id="a", node_lease_ms=LEASE_MS)
        # The nodes share the token secret and the API key (their files, copied).
        shared = tempfile.mkdtemp(prefix="presenced-test-")
        for name in ("jwt-secret", "api-key"):
            shutil.copy(os.path.join(self.a.data_dir, name), shared)
        self.b = Server(data_dir=shared, redis_url=self.redis.url, node_id="b",
                        node_lease_ms=LEASE_MS)
        for s in (self.a, self.b):
            wait_until(lambda s=s: healthz(s)[0] == 200)

    def tearDown(self):
        self.a.kill()
        self.b.kill()
        self.redis.stop()

    async def test_presence_on_one_node_is_seen_on_the_other_in_one_order(self):
        watcher_b = await Client.connect(self.b, "watcher-b")
        watcher_a = await Client.connect(self.a, "watcher-a")
        sub_b = await watcher_b.ok("subscribe", channel="room")
        sub_a = await watcher_a.ok("subscribe", channel="room")
        self.assertEqual(sub_a["serial"], sub_b["serial"])
        ann = await Client.connect(self.a, "ann")
        bob = await Client.connect(self.b, "bob")
        await ann.ok("enter", channel="room", data={"n": 1})
        await bob.ok("enter", channel="room", data={"n": 2})
        await ann.ok("update", channel="room", data={"n": 3})
        await bob.ok("leave", channel="room")
        seen = []
        for w in (watcher_a, watcher_b):
            events = [await w.presence("room") for _ in range(4)]
            seen.append([(e["serial"], e["action"], e["member"]["clientId"]) for e in events])
        self.assertEqual(seen[0], seen[1])
        self.assertEqual([a for _, a, _ in seen[0]], ["enter", "enter", "update", "leave"])
        serials = [s for s, _, _ in seen[0]]
        self.assertEqual(serials, list(range(serials[0], serials[0] + 4)))  # gapless
        # Reads answer for the whole cluster, on either node.
        got_b = await watcher_b.ok("get", channel="room")
        got_a = await watcher_a.ok("get", channel="room")
        self.assertEqual([m["clientId"] for m in got_b["members"]], ["ann"])
        self.assertEqual(got_a["members"], got_b["members"])
        self.assertEqual(got_a["serial"], got_b["serial"])
        who = await watcher_b.ok("who", channel="room")
        self.assertEqual([u["clientId"] for u in who["users"]], ["ann"])
        # A clean close on one node is a leave everywhere.
        await ann.close()
        e = await watcher_b.presence("room")
        self.assertEqual((e["action"], e["reason"], e["member"]["clientId"]),
                         ("leave", "disconnected", "ann"))
        self.assertEqual((await watcher_a.presence("room"))["serial"], e["serial"])

    async def test_both_nodes_name_the_clusters_epoch(self):
        a = await Client.connect(self.a, "x")
        b = await Client.connect(self.b, "y")
        self.assertEqual(a.connected["epoch"], self.redis.cli("GET", "{presenced}:epoch"))
        self.assertEqual(b.connected["epoch"], a.connected["epoch"])

    async def test_while_redis_is_down_reads_are_answered_and_changes_refused(self):
        ann = await Client.connect(self.a, "ann")
        await ann.ok("enter", channel="room", data=1)
        watcher = await Client.connect(self.b, "w")
        self.assertEqual(len((await watcher.ok("get", channel="room"))["members"]), 1)
        self.redis.stop()
        wait_until(lambda: healthz(self.b)[0] == 503)
        got = await watcher.ok("get", channel="room")  # what b holds
        self.assertEqual([m["clientId"] for m in got["members"]], ["ann"])
        r = await watcher.request("enter", channel="room", data=2)
        self.assertFalse(r["ok"])
        self.assertIn("unavailable", r["error"]["message"])

    async def test_redis_that_lost_its_data_gives_every_subscription_a_sync_in_the_new_epoch(self):
        ann = await Client.connect(self.a, "ann", remainPresentForMs=0)
        await ann.ok("enter", channel="room", data=1)
        watchers = [await Client.connect(n, "w-" + n_id) for n, n_id in ((self.a, "a"),
                                                                           (self.b, "b"))]
        for w in watchers:
            await w.ok("subscribe", channel="room")
        old_epoch = watchers[0].connected["epoch"]
        self.redis.stop()
        self.redis.start()  # empty: no persistence
        syncs = [await w.next("sync", timeout=LEASE_MS / 1000 + 3) for w in watchers]
        new_epoch = self.redis.cli("GET", "{presenced}:epoch")
        for sync in syncs:
            self.assertEqual((sync["channel"], sync["epoch"]), ("room", new_epoch))
            self.assertNotEqual(sync["epoch"], old_epoch)
            self.assertEqual([m["clientId"] for m in sync["members"]], ["ann"])
        self.assertEqual(syncs[0]["serial"], syncs[1]["serial"])
        for s in (self.a, self.b):
            wait_until(lambda s=s: healthz(s) == (200, {"ok": True, "redis": "up"}))
        # No false leave, and the nodes go on as one (the log started over).
        await ann.ok("update", channel="room", data=2)
        for w in watchers:
            e = await w.presence("room")
            self.assertEqual((e["action"], e["serial"]), ("update", syncs[0]["serial"] + 1))
        late = await Client.connect(self.b, "late")
        self.assertEqual(late.connected["epoch"], new_epoch)
        # The state was saved at the change, so a node that joins now starts from it.
        wait_until(lambda: self.redis.cli("HGET", "{presenced}:snap", "id") != "")
        for s in (self.a, self.b):
            self.assertIn("presenced_cluster_log_gaps_total 0\n",
                          s.http("GET", "/metrics", key=False)[1])

    async def test_redis_connections_killed_mid_stream_lose_and_repeat_no_event(self):
        watchers = [await Client.connect(n, "w" + str(i)) for i, n in enumerate((self.a, self.b))]
        subs = [await w.ok("subscribe", channel="s") for w in watchers]
        writers = [await Client.connect(n, "p" + str(i)) for i, n in enumerate((self.a, self.b))]
        for k, w in enumerate(writers):
            await w.ok("enter", channel="s", data={"writer": k})
        acked = []
        for i in range(40):
            if i == 20:  # every node's connections: the log's readers, the leases, the stores
                self.redis.cli("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
            acked.append(await change(writers[i % 2], "update", channel="s", data={"i": i}))
        seen = []
        for w in watchers:
            events = []
            while not events or events[-1]["member"]["data"] != acked[-1]:
                events.append(await w.presence("s"))
            seen.append(events)
        self.assertEqual(seen[0], seen[1])  # one order for every subscriber
        serials = [e["serial"] for e in seen[0]]
        self.assertEqual(serials, list(range(subs[0]["serial"] + 1,
                                             subs[0]["serial"] + 1 + len(serials))))
        datas = [json.dumps(e["member"]["data"], sort_keys=True) for e in seen[0]]
        self.assertEqual(len(datas), len(set(datas)))  # no event twice
        for a in acked:
            self.assertIn(json.dumps(a, sort_keys=True), datas)  # none acknowledged is lost
        for s in (self.a, self.b):
            self.assertIn("presenced_cluster_log_gaps_total 0\n",
                          s.http("GET", "/metrics", key=False)[1])

    async def test_a_node_paused_past_its_lease_is_reaped_then_fenced(self):
        watcher = await Client.connect(self.b, "w")
        await watcher.ok("subscribe", channel="p")
        m = await Client.connect(self.a, "paused", remainPresentForMs=0)
        await m.ok("enter", channel="p", data=1)
        await watcher.presence("p")
        os.kill(self.a.proc.pid, signal.SIGSTOP)
        try:
            e = await watcher.presence("p", timeout=LEASE_MS / 1000 + 3)
            self.assertEqual((e["action"], e["reason"], e["member"]["clientId"]),
                             ("leave", "timeout", "paused"))
        finally:
            os.kill(self.a.proc.pid, signal.SIGCONT)
        # Back, it finds its lease gone: its connections close with 4001, and it serves again.
        with self.assertRaises(websockets.exceptions.ConnectionClosed) as closed:
            await m.next("never", timeout=TIMEOUT)
        self.assertEqual(closed.exception.rcvd.code, 4001)
        wait_until(lambda: healthz(self.a)[0] == 200)
        again = await Client.connect(self.a, "paused")
        await again.ok("enter", channel="p", data=2)
        e = await watcher.presence("p")
        self.assertEqual((e["action"], e["member"]["clientId"]), ("enter", "paused"))

    async def test_an_abrupt_drop_times_out_on_every_node_after_its_grace(self):
        watcher = await Client.connect(self.b, "w")
        await watcher.ok("subscribe", channel="g")
        m = await Client.connect(self.a, "gone", remainPresentForMs=300)
        await m.ok("enter", channel="g", data=1)
        await watcher.presence("g")
        m.drop()
        e = await watcher.presence("g")
        self.assertEqual((e["action"], e["reason"], e["member"]["clientId"]),
                         ("leave", "timeout", "gone"))

    async def test_a_node_stopped_with_sigterm_has_its_members_leave_at_once(self):
        watcher = await Client.connect(self.b, "w")
        await watcher.ok("subscribe", channel="t")
        m = await Client.connect(self.a, "stopping", remainPresentForMs=60000)
        await m.ok("enter", channel="t", data=1)
        await watcher.presence("t")
        self.assertEqual(self.a.terminate(), 0)
        e = await watcher.presence("t")
        self.assertEqual((e["action"], e["reason"], e["member"]["clientId"]),
                         ("leave", "disconnected", "stopping"))

    async def test_a_killed_nodes_members_leave_within_its_lease(self):
        watcher = await Client.connect(self.b, "w")
        await watcher.ok("subscribe", channel="k")
        m = await Client.connect(self.a, "on-a", remainPresentForMs=0)
        await m.ok("enter", channel="k", data=1)
        await watcher.presence("k")
        killed = time.monotonic()
        self.a.kill()  # SIGKILL: no leave of its own
        e = await watcher.presence("k", timeout=LEASE_MS / 1000 + 3)
        ghost = time.monotonic() - killed
        self.assertEqual((e["action"], e["reason"], e["member"]["clientId"]),
                         ("leave", "timeout", "on-a"))
        self.assertLess(ghost, LEASE_MS / 1000 + 1.5)  # the contract's bound
        self.assertEqual(self.redis.cli("ZSCORE", "{presenced}:nodes", "a"), "")

    async def test_a_restarted_node_reaps_its_previous_incarnation_at_once(self):
        watcher = await Client.connect(self.b, "w")
        await watcher.ok("subscribe", channel="rs")
        m = await Client.connect(self.a, "on-a", remainPresentForMs=0)
        await m.ok("enter", channel="rs", data=1)
        await watcher.presence("rs")
        self.a.kill()
        # Started again at once with the same name (before its lease could expire).
        self.a = Server(data_dir=self.a.data_dir, redis_url=self.redis.url, node_id="a",
                        node_lease_ms=60000)
        e = await watcher.presence("rs")
        self.assertEqual((e["action"], e["member"]["clientId"]), ("leave", "on-a"))

    async def test_status_and_rest_answer_for_the_cluster(self):
        carol = await Client.connect(self.a, "carol")
        await carol.ok("status.set", status="dnd", text="focus")
        watcher = await Client.connect(self.b, "dave")
        got = await watcher.ok("status.get", clientIds=["carol"])
        self.assertEqual(got["statuses"][0]["status"], "dnd")
        devices = await watcher.ok("devices", clientId="carol")
        self.assertEqual(len(devices["devices"]), 1)
        # A REST change on b reaches a's connection.
        status, body = self.b.http("PUT", "/v1/users/carol/status", {"status": "away"})
        self.assertEqual(status, 200, body)
        push = await carol.next("status", where=lambda f: f["status"] != "dnd")
        self.assertEqual((push["clientId"], push["status"]), ("carol", "away"))

    async def test_a_connection_resumes_on_the_other_node(self):
        w = await Client.connect(self.a, "w")
        await w.ok("subscribe", channel="r")
        m = await Client.connect(self.a, "mover", remainPresentForMs=5000)
        await m.ok("enter", channel="r", data=1)
        await w.presence("r")
        m.drop()
        again = await Client.connect(self.b, "mover", resume=m.connected["connectionKey"],
                                     remainPresentForMs=5000)
        self.assertTrue(again.connected["resumed"])
        await again.ok("update", channel="r", data=2)
        e = await w.presence("r")
        self.assertEqual((e["action"], e["member"]["data"]), ("update", 2))  # no leave first


class SharedStoreTest(unittest.IsolatedAsyncioTestCase):
    """In cluster mode the store is the cluster's Redis (storage=redis by default): history,
    statuses set by hand, lastSeen and activity are the same on every node, each written once."""

    setUp = TwoNodesTest.setUp
    tearDown = TwoNodesTest.tearDown

    async def test_history_is_the_clusters_and_each_event_is_stored_once(self):
        ann = await Client.connect(self.a, "ann")
        bob = await Client.connect(self.b, "bob")
        watcher = await Client.connect(self.b, "watcher")
        await watcher.ok("subscribe", channel="room")
        await ann.ok("enter", channel="room", data={"n": 1})
        await bob.ok("enter", channel="room", data={"n": 2})
        await ann.ok("update", channel="room", data={"n": 3})
        await bob.ok("leave", channel="room")
        live = [await watcher.presence("room") for _ in range(4)]
        # The last event may still be on its way to Redis when the watcher has it.
        wait_until(lambda: self.redis.cli("XLEN", "{c:room}:history") == "4")
        for node, client in ((self.a, ann), (self.b, watcher)):
            page = await client.ok("history", channel="room", direction="forwards")
            self.assertEqual(page["events"], live)  # once each, as they were sent, in order
            status, body = node.http("GET", "/v1/channels/room/history?direction=forwards")
            self.assertEqual(status, 200, body)
            self.assertEqual(body["events"], live)
        page = await watcher.ok("history", channel="room", limit=3)
        self.assertEqual(page["events"], live[:0:-1])
        rest = await watcher.ok("history", channel="room", cursor=page["next"])
        self.assertEqual(rest["events"], live[:1])

    async def test_status_and_activity_are_stored_once_in_redis(self):
        carol = await Client.connect(self.a, "carol")
        await carol.ok("status.set", status="dnd", text="focus")
        # On Redis before the reply (as on disk in single-node mode).
        user = self.redis.cli("HGETALL", "{u:carol}:user").split()
        fields = dict(zip(user[::2], user[1::2]))
        self.assertEqual((fields["manual"], fields["text"]), ("dnd", "focus"))
        self.assertGreater(int(fields["last_seen"]), 0)
        await carol.ok("activity", kind="typing", channel="room")
        dave = await Client.connect(self.b, "dave")
        wait_until(lambda: self.redis.cli("LLEN", "{u:carol}:activity") == "1")
        got = await dave.ok("activity.get", clientId="carol")
        self.assertEqual([(a["kind"], a["channel"]) for a in got["activities"]],
                         [("typing", "room")])

    async def test_what_redis_remembers_of_a_user_is_restored_on_every_node(self):
        # erin's status was stored before (and the engines never held her): the node she connects
        # to reads it, and every node restores it from her connection's log entry.
        self.redis.cli("HSET", "{u:erin}:user", "manual", "away", "text", "lunch",
                       "last_seen", "1700000000000")
        erin = await Client.connect(self.b, "erin")
        watcher = await Client.connect(self.a, "watcher")
        for c in (erin, watcher):
            got = await c.ok("status.get", clientIds=["erin"])
            self.assertEqual((got["statuses"][0]["status"], got["statuses"][0]["text"]),
                             ("away", "lunch"))


class DurableRedisTest(unittest.IsolatedAsyncioTestCase):
    """A Redis that restarts with its data (AOF, fsync always): the same epoch, nothing lost."""

    durable_redis = True
    setUp = TwoNodesTest.setUp
    tearDown = TwoNodesTest.tearDown

    async def test_a_redis_restart_that_kept_its_data_loses_and_resets_nothing(self):
        ann = await Client.connect(self.a, "ann", remainPresentForMs=0)
        await ann.ok("enter", channel="room", data=1)
        carol = await Client.connect(self.b, "carol")
        await carol.ok("status.set", status="dnd", text="focus")
        watchers = [await Client.connect(n, "w" + str(i)) for i, n in enumerate((self.a, self.b))]
        subs = [await w.ok("subscribe", channel="room") for w in watchers]
        epoch = watchers[0].connected["epoch"]
        self.redis.stop()  # SIGKILL: what was acknowledged is in the AOF
        self.redis.start()
        await change(ann, "update", channel="room", data=2)
        for w, sub in zip(watchers, subs):
            e = await w.presence("room")  # no leave, no sync first
            self.assertEqual((e["action"], e["serial"]), ("update", sub["serial"] + 1))
            self.assertFalse([f for f in w.buffer if f.get("type") == "sync"])
        late = await Client.connect(self.b, "late")
        self.assertEqual(late.connected["epoch"], epoch)
        got = await late.ok("status.get", clientIds=["carol"])
        self.assertEqual(got["statuses"][0]["status"], "dnd")
        wait_until(lambda: self.redis.cli("XLEN", "{c:room}:history") == "2")
        page = await late.ok("history", channel="room", direction="forwards")
        self.assertEqual([e["action"] for e in page["events"]], ["enter", "update"])


    async def test_a_redis_outage_longer_than_a_lease_reaps_and_fences_nobody(self):
        ann = await Client.connect(self.a, "ann", remainPresentForMs=0)
        bob = await Client.connect(self.b, "bob", remainPresentForMs=0)
        await ann.ok("enter", channel="room", data=1)
        await bob.ok("enter", channel="room", data=1)
        watchers = [await Client.connect(n, "w" + str(i)) for i, n in enumerate((self.a, self.b))]
        subs = [await w.ok("subscribe", channel="room") for w in watchers]
        self.redis.stop()
        for s in (self.a, self.b):
            wait_until(lambda s=s: healthz(s)[0] == 503)
        time.sleep(2 * LEASE_MS / 1000)  # the outage itself: every lease's deadline passes
        self.redis.start()
        for s in (self.a, self.b):
            wait_until(lambda s=s: healthz(s) == (200, {"ok": True, "redis": "up"}))
        await change(bob, "update", channel="room", data=2)
        for w, sub in zip(watchers, subs):
            e = await w.presence("room")  # no leave for anyone first
            self.assertEqual((e["action"], e["member"]["clientId"], e["serial"]),
                             ("update", "bob", sub["serial"] + 1))
        log = self.redis.cli("XRANGE", "{presenced}:log", "-", "+")
        self.assertNotIn('"reap"', log)
        for s in (self.a, self.b):
            self.assertIn("presenced_node_fenced_total 0\n", s.http("GET", "/metrics", key=False)[1])
        await ann.ok("ping")


class SnapshotJoinTest(unittest.IsolatedAsyncioTestCase):
    """A node that joins after the log was trimmed starts from the cluster's snapshot
    (cluster_snapshot_entries) and the entries after it, and then acts as the other node."""

    def setUp(self):
        self.redis = RedisServer().start()
        self.addCleanup(self.redis.stop)
        self.a = Server(redis_url=self.redis.url, node_id="a", node_lease_ms=LEASE_MS,
                        cluster_snapshot_entries=4)
        self.b = None
        wait_until(lambda: healthz(self.a)[0] == 200)

    def tearDown(self):
        self.a.kill()
        if self.b:
            self.b.kill()
        self.redis.stop()

    def start_b(self):
        shared = tempfile.mkdtemp(prefix="presenced-test-")
        for name in ("jwt-secret", "api-key"):
            shutil.copy(os.path.join(self.a.data_dir, name), shared)
        self.b = Server(data_dir=shared, redis_url=self.redis.url, node_id="b",
                        node_lease_ms=LEASE_MS, cluster_snapshot_entries=4)
        wait_until(lambda: healthz(self.b)[0] == 200)

    async def test_a_node_joining_after_the_log_was_trimmed_starts_from_the_snapshot(self):
        ann = await Client.connect(self.a, "ann")
        await ann.ok("enter", channel="room", data={"n": 1})
        await ann.ok("status.set", status="dnd", text="deep work")
        watcher = await Client.connect(self.a, "watcher")
        await watcher.ok("subscribe", channel="room")
        bob = await Client.connect(self.a, "bob")
        await bob.ok("enter", channel="room", data={"n": 2})
        await bob.ok("update", channel="room", data={"n": 3})
        self.assertEqual([(await watcher.presence("room"))["action"] for _ in range(2)],
                         ["enter", "update"])
        wait_until(lambda: self.redis.cli("HGET", "{presenced}:snap", "id") != "")
        snap_id = self.redis.cli("HGET", "{presenced}:snap", "id")
        number = int(self.redis.cli("HGET", "{presenced}:snap", "number"))
        self.assertEqual(number % 4, 0)
        # Nothing of the log before the snapshot is left: b can only have it from there.
        self.redis.cli("XTRIM", "{presenced}:log", "MINID", snap_id)
        first = self.redis.cli("XRANGE", "{presenced}:log", "-", "+", "COUNT", "1")
        self.assertIn(snap_id.split("-")[0], first)
        expected = await watcher.ok("get", channel="room")

        self.start_b()
        wait_until(lambda: "presenced_cluster_snapshots_loaded_total 1\n" in
                   self.b.http("GET", "/metrics", key=False)[1])
        on_b = await Client.connect(self.b, "late")
        got = await on_b.ok("get", channel="room")
        self.assertEqual(got["members"], expected["members"])
        self.assertEqual(got["serial"], expected["serial"])
        status = await on_b.ok("status.get", clientIds=["ann"])
        self.assertEqual((status["statuses"][0]["status"], status["statuses"][0]["text"]),
                         ("dnd", "deep work"))
        # From then on b acts with a: one order, gapless serials, answers for a's connections.
        sub = await on_b.ok("subscribe", channel="room")
        self.assertEqual(sub["serial"], expected["serial"])
        await bob.ok("leave", channel="room")
        e_b = await on_b.presence("room")
        e_a = await watcher.presence("room")
        self.assertEqual(e_a, e_b)
        self.assertEqual((e_b["action"], e_b["member"]["clientId"], e_b["serial"]),
                         ("leave", "bob", expected["serial"] + 1))
        await on_b.ok("enter", channel="room", data={"n": 4})
        e_a = await watcher.presence("room")
        self.assertEqual((e_a["action"], e_a["member"]["clientId"]), ("enter", "late"))
        self.assertEqual(await on_b.presence("room"), e_a)
        status, text = self.b.http("GET", "/metrics", key=False)
        self.assertIn("presenced_cluster_log_gaps_total 0\n", text)


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
