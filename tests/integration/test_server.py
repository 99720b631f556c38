"""Integration tests: the real presenced binary over WebSocket and HTTP (docs/protocol.md)."""
import asyncio
import json
import socket
import struct
import time
import unittest
import uuid

import websockets
import websockets.exceptions

from harness import Client, RawClient, Server, TIMEOUT, make_token


def unique(prefix="ch"):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:8])


class ServerTest(unittest.IsolatedAsyncioTestCase):
    settings = dict(heartbeat_ms=300, remain_present_for_ms=400, max_remain_present_for_ms=2000)

    @classmethod
    def setUpClass(cls):
        cls.server = Server(**cls.settings)

    @classmethod
    def tearDownClass(cls):
        cls.server.kill()

    async def connect(self, client_id=None, **kw):
        c = await Client.connect(self.server, client_id or unique("user"), **kw)
        self.addAsyncCleanup(self._close, c)
        return c

    @staticmethod
    async def _close(c):
        try:
            await c.close()
        except Exception:
            pass


class ConnectionTest(ServerTest):
    async def test_connected_frame_has_every_contract_field(self):
        c = await self.connect("alice", device="laptop", remainPresentForMs=1000)
        f = c.connected
        self.assertEqual(f["clientId"], "alice")
        self.assertEqual(f["heartbeatMs"], 300)
        self.assertEqual(f["remainPresentForMs"], 1000)
        self.assertFalse(f["resumed"])
        self.assertEqual(f["epoch"], self.server.epoch)
        self.assertEqual(len(f["connectionKey"]), 32)
        self.assertTrue(f["connectionId"])

    async def test_remain_present_for_is_clamped_to_the_server_maximum(self):
        c = await self.connect(remainPresentForMs=999999)
        self.assertEqual(c.connected["remainPresentForMs"], 2000)
        d = await self.connect()
        self.assertEqual(d.connected["remainPresentForMs"], 400)

    async def test_bad_tokens_are_refused_with_401_before_the_upgrade(self):
        secret = self.server.secret
        now = int(time.time())
        bad = [
            "",
            "garbage",
            make_token("wrong-secret", {"sub": "eve", "exp": now + 60}),
            make_token(secret, {"sub": "eve", "exp": now - 1}),  # expired
            make_token(secret, {"exp": now + 60}),  # no sub
            make_token(secret, {"sub": "eve"}),  # no exp
            make_token(secret, {"sub": "eve", "exp": now + 60, "channels": "all"}),
            make_token(secret, {"sub": "eve", "exp": now + 60}, alg="none"),
        ]
        for token in bad:
            with self.assertRaises(websockets.exceptions.InvalidStatusCode, msg=token) as e:
                await websockets.connect(self.server.url(token), open_timeout=TIMEOUT)
            self.assertEqual(e.exception.status_code, 401, token)
        # A hand-made token with the right secret works: the contract, not our minting, is the rule.
        good = make_token(secret, {"sub": "eve", "exp": now + 60, "channels": ["a*"]})
        c = await self.connect(token=good)
        self.assertEqual(c.connected["clientId"], "eve")
        # The refusal body says why, as JSON.
        s = socket.create_connection(("127.0.0.1", self.server.port))
        s.sendall(b"GET /v1/ws?token=bad HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        response = b""
        while b"}}" not in response:
            chunk = s.recv(4096)
            if not chunk:
                break
            response += chunk
        s.close()
        self.assertIn(b"401", response.split(b"\r\n")[0])
        body = json.loads(response.split(b"\r\n\r\n", 1)[1])
        self.assertEqual(body["error"]["code"], "unauthorized")

    async def test_ping_op(self):
        c = await self.connect()
        r = await c.request("ping")
        self.assertTrue(r["ok"])


class ChannelTest(ServerTest):
    async def test_enter_update_leave_get_and_events(self):
        ch = unique()
        watcher = await self.connect()
        sub = await watcher.ok("subscribe", channel=ch)
        self.assertEqual(sub["members"], [])
        self.assertEqual(sub["epoch"], self.server.epoch)
        a = await self.connect("alice")
        r = await a.ok("enter", channel=ch, data={"x": 1})
        self.assertEqual(r["member"]["data"], {"x": 1})
        self.assertIsNone(r["member"]["expiresAt"])
        e = await watcher.presence(ch)
        self.assertEqual((e["action"], e["member"]["clientId"], e["serial"]), ("enter", "alice", sub["serial"] + 1))
        self.assertNotIn("reason", e)
        await a.ok("update", channel=ch, data={"y": 2}, merge=True)
        e = await watcher.presence(ch)
        self.assertEqual(e["action"], "update")
        self.assertEqual(e["member"]["data"], {"x": 1, "y": 2})
        g = await a.ok("get", channel=ch)
        self.assertEqual(len(g["members"]), 1)
        self.assertEqual(g["serial"], e["serial"])
        await a.ok("leave", channel=ch, data={"why": "lunch"})
        e = await watcher.presence(ch)
        self.assertEqual((e["action"], e["reason"], e["member"]["data"]), ("leave", "left", {"why": "lunch"}))
        self.assertEqual((await a.ok("get", channel=ch))["members"], [])

    async def test_update_and_leave_without_entering_are_not_present(self):
        a = await self.connect()
        for op, extra in [("update", {"data": 1}), ("leave", {})]:
            r = await a.request(op, channel=unique(), **extra)
            self.assertFalse(r["ok"])
            self.assertEqual(r["error"]["code"], "not_present")

    async def test_multi_device_members_and_occupancy(self):
        ch = unique()
        laptop = await self.connect("bob", device="laptop")
        phone = await self.connect("bob", device="phone")
        carol = await self.connect("carol")
        for c in (laptop, phone, carol):
            await c.ok("enter", channel=ch)
        occ = await carol.ok("occupancy", channel=ch)
        self.assertEqual((occ["members"], occ["clients"]), (3, 2))
        g = await carol.ok("get", channel=ch, clientId="bob")
        self.assertEqual(len(g["members"]), 2)
        g = await carol.ok("get", channel=ch, connectionId=phone.connected["connectionId"])
        self.assertEqual(len(g["members"]), 1)
        await laptop.close()
        occ = await carol.ok("occupancy", channel=ch)
        self.assertEqual((occ["members"], occ["clients"]), (2, 2))

    async def test_ttl_member_expires(self):
        ch = unique()
        w = await self.connect()
        await w.ok("subscribe", channel=ch, actions=["leave"])
        a = await self.connect()
        r = await a.ok("enter", channel=ch, ttlMs=300)
        self.assertIsNotNone(r["member"]["expiresAt"])
        e = await w.presence(ch)
        self.assertEqual((e["action"], e["reason"]), ("leave", "expired"))
        self.assertEqual((await w.ok("get", channel=ch))["members"], [])

    async def test_subscribe_since_returns_missed_events_and_resyncs_otherwise(self):
        ch = unique()
        a = await self.connect()
        s1 = await a.ok("subscribe", channel=ch)
        await a.ok("enter", channel=ch, data=1)
        await a.ok("update", channel=ch, data=2)
        again = await a.ok("subscribe", channel=ch, since=s1["serial"], epoch=self.server.epoch)
        self.assertNotIn("members", again)
        self.assertEqual([e["action"] for e in again["events"]], ["enter", "update"])
        other = await a.ok("subscribe", channel=ch, since=s1["serial"], epoch="another-run")
        self.assertIn("members", other)
        self.assertTrue(other["resynced"])

    async def test_action_filter(self):
        ch = unique()
        w = await self.connect()
        await w.ok("subscribe", channel=ch, actions=["leave"])
        a = await self.connect()
        await a.ok("enter", channel=ch)
        await a.ok("leave", channel=ch)
        e = await w.presence(ch)
        self.assertEqual(e["action"], "leave")
        await w.ok("unsubscribe", channel=ch)
        await a.ok("enter", channel=ch)
        await a.ok("leave", channel=ch)
        self.assertTrue(await w.quiet())

    async def test_history_op_and_rest(self):
        ch = unique()
        a = await self.connect()
        await a.ok("enter", channel=ch, data=1)
        await a.ok("update", channel=ch, data=2)
        await a.ok("leave", channel=ch)
        h = await a.ok("history", channel=ch)
        self.assertEqual([e["action"] for e in h["events"]], ["leave", "update", "enter"])
        h = await a.ok("history", channel=ch, direction="forwards", limit=2)
        self.assertEqual([e["action"] for e in h["events"]], ["enter", "update"])
        for bad in [dict(limit=0), dict(direction="sideways"), dict(start="x")]:
            r = await a.request("history", channel=ch, **bad)
            self.assertEqual(r["error"]["code"], "bad_request", bad)
        status, body = self.server.http("GET", "/v1/channels/%s/history?limit=1&direction=forwards" % ch)
        self.assertEqual(status, 200)
        self.assertEqual(body["events"][0]["action"], "enter")

    async def test_forbidden_channels(self):
        a = await self.connect(channels=["team-*"])
        r = await a.request("enter", channel="other")
        self.assertEqual(r["error"]["code"], "forbidden")
        await a.ok("enter", channel="team-1")
        for op in ["subscribe", "get", "occupancy", "history", "leave"]:
            r = await a.request(op, channel="secret")
            self.assertEqual(r["error"]["code"], "forbidden", op)

    async def test_bad_frames_get_errors_and_change_nothing(self):
        ch = unique()
        a = await self.connect()
        await a.ok("enter", channel=ch, data="keep")
        cases = [
            ("not json", None),
            ("[1,2]", None),
            (json.dumps({"op": "enter", "channel": ch}), None),  # no id
            (json.dumps({"op": "fly", "id": 5}), 5),
            (json.dumps({"op": "enter", "id": 6}), 6),
            (json.dumps({"op": "enter", "id": 7, "channel": 3}), 7),
            (json.dumps({"op": "update", "id": 8, "channel": ch}), 8),
            (json.dumps({"op": "enter", "id": 9, "channel": ch, "ttlMs": "soon"}), 9),
            (json.dumps({"op": "enter", "id": 10, "channel": ch, "ttlMs": 0}), 10),
            (json.dumps({"op": "subscribe", "id": 11, "channel": ch, "actions": ["jump"]}), 11),
            (json.dumps({"op": "status.set", "id": 12, "status": "sleeping"}), 12),
            (json.dumps({"op": "enter", "id": 13, "channel": ""}), 13),
        ]
        for text, rid in cases:
            await a.send_raw(text)
            r = await a.next("reply")
            self.assertFalse(r["ok"], text)
            self.assertEqual(r["id"], rid, text)
            self.assertEqual(r["error"]["code"], "bad_request", text)
        g = await a.ok("get", channel=ch)
        self.assertEqual([m["data"] for m in g["members"]], ["keep"])

    async def test_oversize_data_and_names(self):
        a = await self.connect()
        r = await a.request("enter", channel=unique(), data="x" * 20000)
        self.assertEqual(r["error"]["code"], "too_large")
        r = await a.request("enter", channel="c" * 300)
        self.assertEqual(r["error"]["code"], "too_large")
        await a.ok("ping")


class LifecycleTest(ServerTest):
    async def test_clean_close_leaves_at_once_with_disconnected(self):
        ch = unique()
        w = await self.connect()
        await w.ok("subscribe", channel=ch, actions=["leave"])
        a = await self.connect()
        await a.ok("enter", channel=ch)
        await a.close()
        e = await w.presence(ch)
        self.assertEqual(e["reason"], "disconnected")  # not "timeout": no grace period applied

    async def test_abrupt_drop_keeps_the_member_for_the_grace_then_times_out(self):
        ch = unique()
        w = await self.connect()
        await w.ok("subscribe", channel=ch, actions=["leave"])
        a = await self.connect()
        await a.ok("enter", channel=ch)
        a.drop()
        # Still present during the grace period (400 ms)...
        g = await w.ok("get", channel=ch)
        self.assertEqual(len(g["members"]), 1)
        e = await w.presence(ch)
        self.assertEqual(e["reason"], "timeout")

    async def test_resume_within_grace_makes_no_noise_and_delivers_what_was_missed(self):
        ch = unique()
        w = await self.connect()
        await w.ok("subscribe", channel=ch)
        a = await self.connect("mover", remainPresentForMs=2000)
        await a.ok("subscribe", channel=ch)
        await a.ok("enter", channel=ch)
        await w.presence(ch)
        a.drop()
        b = await self.connect()
        await b.ok("enter", channel=ch, data="while-away")
        await w.presence(ch)
        r = await self.connect("mover", resume=a.connected["connectionKey"], remainPresentForMs=2000)
        self.assertTrue(r.connected["resumed"])
        self.assertEqual(r.connected["connectionId"], a.connected["connectionId"])
        self.assertNotEqual(r.connected["connectionKey"], a.connected["connectionKey"])
        missed = await r.presence(ch)
        self.assertEqual(missed["member"]["data"], "while-away")
        self.assertTrue(await w.quiet())  # no leave, no enter for the mover
        g = await r.ok("get", channel=ch)
        self.assertEqual(len(g["members"]), 2)
        # The old key works once.
        again = await self.connect("mover", resume=a.connected["connectionKey"])
        self.assertFalse(again.connected["resumed"])

    async def test_batch_1_packs_a_resumed_connections_catch_up_but_never_connected(self):
        ch = unique()
        a = await self.connect("batcher", remainPresentForMs=2000, batch=1)
        await a.ok("subscribe", channel=ch)
        a.drop()
        b = await self.connect()
        await b.ok("enter", channel=ch, data=1)
        await b.ok("update", channel=ch, data=2)
        r = await self.connect("batcher", resume=a.connected["connectionKey"], batch=1,
                               remainPresentForMs=2000)
        self.assertTrue(r.connected["resumed"])  # `connected` came as a frame of its own
        f = await r.next()
        self.assertEqual(f["type"], "batch")
        self.assertEqual([(m["type"], m["action"], m["member"]["data"]) for m in f["messages"]],
                         [("presence", "enter", 1), ("presence", "update", 2)])

    async def test_resume_while_the_old_socket_is_alive_closes_the_old_one(self):
        a = await self.connect("twin")
        b = await self.connect("twin", resume=a.connected["connectionKey"])
        self.assertTrue(b.connected["resumed"])
        with self.assertRaises(websockets.exceptions.ConnectionClosed) as e:
            await a.next("never", timeout=TIMEOUT)
        self.assertEqual(e.exception.rcvd.code, 4000)
        await b.ok("ping")

    async def test_silent_client_is_dropped_after_two_heartbeats(self):
        ch = unique()
        w = await self.connect()
        await w.ok("subscribe", channel=ch, actions=["leave"])
        raw = RawClient(self.server, self.server.token(unique("silent")), remainPresentForMs=0)
        opcode, payload = raw.read_frame()
        self.assertEqual(json.loads(payload)["type"], "connected")
        raw.send_frame(json.dumps({"op": "enter", "id": 1, "channel": ch}))
        t0 = time.monotonic()
        # It never answers pings: after two heartbeat intervals (600 ms) it is dropped as abrupt.
        e = await w.presence(ch)
        self.assertEqual(e["reason"], "timeout")
        self.assertGreater(time.monotonic() - t0, 0.5)
        raw.close()

    async def test_close_codes_are_echoed_only_when_valid(self):
        for sent, expected in [(1000, 1000), (4001, 4001), (1005, 1002), (999, 1002), (5000, 1002)]:
            raw = RawClient(self.server, self.server.token(unique("closer")))
            raw.read_frame()
            raw.send_frame(struct.pack("!H", sent), opcode=8)

            def close_reply():
                while True:
                    opcode, payload = raw.read_frame()
                    if opcode == 8:
                        return struct.unpack("!H", payload[:2])[0]
            code = await asyncio.get_running_loop().run_in_executor(None, close_reply)
            self.assertEqual(code, expected, sent)
            raw.close()

    async def test_pong_keeps_a_connection_alive(self):
        c = await self.connect()
        raw = RawClient(self.server, self.server.token(unique("ponger")))
        raw.read_frame()

        def answer_pings_for_four_intervals():
            end = time.monotonic() + 1.2
            while time.monotonic() < end:
                opcode, payload = raw.read_frame()
                if opcode == 9:
                    raw.send_frame(payload, opcode=10)
            raw.send_frame(json.dumps({"op": "ping", "id": 1}))
            while True:
                opcode, payload = raw.read_frame()
                if opcode == 1:
                    return json.loads(payload)

        # Blocking socket work runs off the event loop, so `c` keeps answering its own pings.
        reply = await asyncio.get_running_loop().run_in_executor(None, answer_pings_for_four_intervals)
        self.assertTrue(reply["ok"])
        raw.close()
        await c.ok("ping")


class StatusTest(ServerTest):
    settings = dict(ServerTest.settings, away_after_ms=500, offline_after_ms=800)

    async def test_status_sync_across_devices_and_watchers(self):
        uid = unique("dora")
        laptop = await self.connect(uid, device="laptop")
        phone = await self.connect(uid, device="phone")
        friend = await self.connect()
        w = await friend.ok("status.watch", clientIds=[uid])
        self.assertEqual(w["statuses"][0]["status"], "online")
        r = await phone.ok("status.set", status="dnd", text="Focus")
        self.assertEqual(r["status"]["status"], "dnd")
        for c in (laptop, phone, friend):
            p = await c.next("status", where=lambda f: f["clientId"] == uid and f["status"] == "dnd")
            self.assertEqual(p["previous"], "online")
            self.assertEqual(p["text"], "Focus")
        g = await friend.ok("status.get", clientIds=[uid, "nobody-" + uid])
        self.assertEqual(g["statuses"][0]["status"], "dnd")
        self.assertEqual(g["statuses"][1], {"clientId": "nobody-" + uid, "status": "offline", "text": None,
                                            "lastSeen": None, "activeDevice": None})
        await phone.ok("status.set", text=None)
        p = await friend.next("status", where=lambda f: f["clientId"] == uid and f["text"] is None)
        await friend.ok("status.unwatch", clientIds=[uid])

    async def test_auto_away_and_offline_on_all_devices(self):
        uid = unique("idle")
        a = await self.connect(uid)
        friend = await self.connect()
        await friend.ok("status.watch", clientIds=[uid])
        p = await friend.next("status", where=lambda f: f["clientId"] == uid and f["status"] == "away")
        self.assertEqual(p["previous"], "online")
        await a.ok("activity", kind="typing")
        p = await friend.next("status", where=lambda f: f["clientId"] == uid and f["status"] == "online")
        await a.close()
        p = await friend.next("status", where=lambda f: f["clientId"] == uid and f["status"] == "offline")
        self.assertIsNone(p["activeDevice"])
        self.assertIsNotNone(p["lastSeen"])

    async def test_devices_who_and_activity(self):
        uid = unique("eve")
        ch = unique()
        laptop = await self.connect(uid, device="laptop")
        phone = await self.connect(uid, device="phone")
        await laptop.ok("enter", channel=ch)
        await phone.ok("activity", kind="message", channel=ch, data={"n": 1})
        d = await laptop.ok("devices")
        self.assertEqual(sorted(x["device"] for x in d["devices"]), ["laptop", "phone"])
        self.assertEqual(sum(1 for x in d["devices"] if x["active"]), 1)
        who = await phone.ok("who", channel=ch)
        self.assertEqual([u["clientId"] for u in who["users"]], [uid])
        acts = await laptop.ok("activity.get")
        self.assertEqual(acts["activities"][0]["kind"], "message")
        self.assertEqual(acts["activities"][0]["channel"], ch)
        self.assertEqual(acts["activities"][0]["connectionId"], phone.connected["connectionId"])
        r = await laptop.request("activity.get", limit=0)
        self.assertEqual(r["error"]["code"], "bad_request")
        await laptop.ok("status.set", status="offline")
        other = await self.connect()
        self.assertEqual((await other.ok("devices", clientId=uid))["devices"], [])
        self.assertEqual((await other.ok("who", channel=ch))["users"], [])

    async def test_rest_status(self):
        uid = unique("rest")
        status, body = self.server.http("PUT", "/v1/users/%s/status" % uid, {"status": "dnd", "text": "Busy"})
        self.assertEqual(status, 200)
        self.assertEqual(body["text"], "Busy")
        status, body = self.server.http("GET", "/v1/users/%s/status" % uid)
        self.assertEqual((status, body["status"], body["text"]), (200, "offline", "Busy"))
        c = await self.connect(uid)
        status, body = self.server.http("GET", "/v1/users/%s/status" % uid)
        self.assertEqual(body["status"], "dnd")
        status, body = self.server.http("PUT", "/v1/users/%s/status" % uid, {"status": "zzz"})
        self.assertEqual((status, body["error"]["code"]), (400, "bad_request"))
        status, body = self.server.http("PUT", "/v1/users/%s/status" % uid, raw_body=b"{nope")
        self.assertEqual(status, 400)
        await c.ok("ping")


class RestTest(ServerTest):
    async def test_metrics_have_the_process_series_and_build_info(self):
        status, text = self.server.http("GET", "/metrics", key=False)
        self.assertEqual(status, 200)
        values = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                values[name] = float(value)
        self.assertGreater(values["process_resident_memory_bytes"], 1 << 20)
        self.assertGreaterEqual(values["process_cpu_seconds_total"], 0)
        self.assertGreater(values["process_open_fds"], 3)
        self.assertGreaterEqual(values["process_max_fds"], values["process_open_fds"])
        info = [n for n in values if n.startswith("presenced_build_info{")]
        self.assertEqual(len(info), 1)
        self.assertRegex(info[0], r'^presenced_build_info\{version="\d+\.\d+\.\d+",commit="\w+"\}$')
        self.assertEqual(values[info[0]], 1)

    async def test_presence_and_occupancy_endpoints(self):
        ch = unique()
        a = await self.connect("rita")
        await a.ok("enter", channel=ch, data={"k": 1})
        status, body = self.server.http("GET", "/v1/channels/%s/presence" % ch)
        self.assertEqual(status, 200)
        self.assertEqual(body["members"][0]["clientId"], "rita")
        self.assertEqual(body["epoch"], self.server.epoch)
        status, body = self.server.http("GET", "/v1/channels/%s/occupancy" % ch)
        self.assertEqual(body, {"members": 1, "clients": 1})

    def test_auth_routes_methods_and_limits(self):
        self.assertEqual(self.server.http("GET", "/v1/healthz", key=False), (200, {"ok": True}))
        status, text = self.server.http("GET", "/metrics", key=False)
        self.assertEqual(status, 200)
        for name in ["presenced_connections", "presenced_channels", "presenced_members",
                     "presenced_events_total", "presenced_deliveries_total", "presenced_queue_drops_total",
                     "presenced_rate_limited_total",
                     "# TYPE presenced_request_duration_seconds histogram",
                     "presenced_fanout_latency_seconds_bucket"]:
            self.assertIn(name, text)
        status, body = self.server.http("GET", "/v1/channels/x/presence", key=False)
        self.assertEqual((status, body["error"]["code"]), (401, "unauthorized"))
        status, body = self.server.http("GET", "/v1/channels/x/presence", key="wrong")
        self.assertEqual(status, 401)
        status, body = self.server.http("GET", "/v1/nothing")
        self.assertEqual((status, body["error"]["code"]), (404, "not_found"))
        status, body = self.server.http("POST", "/v1/channels/x/presence", {})
        self.assertEqual(status, 405)
        status, body = self.server.http("PUT", "/v1/users/u/status", raw_body=b"x" * 70000)
        self.assertEqual((status, body["error"]["code"]), (413, "too_large"))
        status, body = self.server.http("GET", "/v1/channels/%s/presence" % ("c" * 300))
        self.assertEqual(status, 413)


class LimitTest(ServerTest):
    settings = dict(ServerTest.settings, max_frame_bytes=4096, max_data_bytes=1024, rate_per_second=5,
                    rate_burst=5, max_connections=40, max_outbound_bytes=65536, handshake_timeout_ms=300)

    async def test_oversize_frame_closes_with_1009(self):
        a = await self.connect()
        await a.send_raw(json.dumps({"op": "ping", "id": 1, "pad": "x" * 5000}))
        with self.assertRaises(websockets.exceptions.ConnectionClosed) as e:
            await a.next("never")
        self.assertEqual(e.exception.rcvd.code, 1009)

    async def test_rate_limit_replies_and_keeps_the_connection(self):
        a = await self.connect()
        codes = []
        for i in range(8):
            r = await a.request("ping")
            codes.append(r["ok"] or r["error"]["code"])
        self.assertEqual(codes[:5], [True] * 5)
        self.assertIn("rate_limited", codes[5:])
        status, text = self.server.http("GET", "/metrics", key=False)
        self.assertNotIn("presenced_rate_limited_total 0\n", text)

    async def test_max_connections_refuses_with_503(self):
        socks = []
        try:
            for _ in range(40):
                socks.append(socket.create_connection(("127.0.0.1", self.server.port)))
            s = socket.create_connection(("127.0.0.1", self.server.port))
            s.settimeout(TIMEOUT)
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            self.assertIn(b"503", data.split(b"\r\n")[0])
            head, body = data.split(b"\r\n\r\n", 1)
            length = int([l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")][0].split(b":")[1])
            self.assertEqual(length, len(body))
            self.assertEqual(json.loads(body)["error"]["code"], "limit_exceeded")
            s.close()
        finally:
            for s in socks:
                s.close()

    async def test_handshake_timeout_closes_idle_sockets(self):
        s = socket.create_connection(("127.0.0.1", self.server.port))
        s.settimeout(TIMEOUT)
        t0 = time.monotonic()
        self.assertEqual(s.recv(10), b"")  # closed by the server, not by us
        self.assertLess(time.monotonic() - t0, TIMEOUT / 2)
        s.close()


class SlowConsumerTest(ServerTest):
    # A long heartbeat, so the silent reader is dropped for its queue, not for its silence.
    settings = dict(ServerTest.settings, heartbeat_ms=10000, max_outbound_bytes=1 << 20,
                    rate_per_second=100000, rate_burst=100000)

    async def test_a_slow_subscriber_gets_a_sync_instead_of_growing_memory(self):
        ch = unique()
        raw = RawClient(self.server, self.server.token(unique("slow")), rcvbuf=4096, remainPresentForMs=0)
        raw.read_frame()
        raw.send_frame(json.dumps({"op": "enter", "id": 1, "channel": ch}))
        raw.send_frame(json.dumps({"op": "subscribe", "id": 2, "channel": ch}))
        # It stops reading; a writer floods the channel far beyond kernel buffers and the
        # outbound bound (1 MiB).
        writer = await self.connect(unique("writer"))
        await writer.ok("enter", channel=ch)
        for batch in range(60):  # pipelined, and the writer reads its replies
            for i in range(20):
                await writer.send_raw(json.dumps({"op": "update", "id": 1000 + 20 * batch + i,
                                                  "channel": ch, "data": "y" * 15000}))
            for i in range(20):
                await writer.next("reply")
        await writer.ok("update", channel=ch, data="last")
        last_serial = (await writer.ok("get", channel=ch))["serial"]
        # protocol-ext section 1: not dropped, its events are; nothing is sent until it drains.
        _, text = self.server.http("GET", "/metrics", key=False)
        self.assertIn("presenced_queue_drops_total 0\n", text)
        self.assertIn("presenced_sync_conflations_total 0\n", text)

        def read_until_sync():
            serials, replies = [], []
            while True:
                opcode, payload = raw.read_frame()
                if opcode != 1:
                    continue
                m = json.loads(payload)
                if m["type"] == "presence":
                    serials.append(m["serial"])
                elif m["type"] == "reply":
                    replies.append(m["id"])
                elif m["type"] == "sync":
                    return serials, replies, m
        loop = asyncio.get_running_loop()
        serials, replies, sync = await loop.run_in_executor(None, read_until_sync)
        self.assertEqual(replies, [1, 2])  # replies are never dropped
        self.assertEqual(serials, sorted(serials))
        self.assertEqual(sync["channel"], ch)
        # The state once it drained: the writer's last data, at the last serial.
        self.assertEqual(sync["serial"], last_serial)
        data = {m["clientId"].split("-")[0]: m.get("data") for m in sync["members"]}
        self.assertEqual(data["writer"], "last")
        self.assertGreater(sync["serial"], serials[-1] if serials else 0)
        # Still connected, and the next event follows the sync's serial.
        raw.send_frame(json.dumps({"op": "ping", "id": 3}))
        await writer.ok("update", channel=ch, data="after")
        def next_event():
            while True:
                opcode, payload = raw.read_frame()
                if opcode == 1 and json.loads(payload)["type"] == "presence":
                    return json.loads(payload)
        e = await loop.run_in_executor(None, next_event)
        self.assertEqual(e["serial"], sync["serial"] + 1)
        _, text = self.server.http("GET", "/metrics", key=False)
        self.assertIn("presenced_sync_conflations_total 1\n", text)
        self.assertIn("presenced_queue_drops_total 0\n", text)
        raw.close()

    async def test_a_single_large_reply_does_not_drop_a_healthy_client(self):
        ch = unique()
        now = int(time.time())
        members = []
        for i in range(75):  # 75 x 15 kB of data: a snapshot over the 1 MiB outbound bound
            token = make_token(self.server.secret, {"sub": "m%d" % i, "exp": now + 600})
            m = await self.connect(token=token)
            await m.ok("enter", channel=ch, data="z" * 15000)
            members.append(m)
        reader = await self.connect()
        r = await reader.ok("subscribe", channel=ch)
        self.assertEqual(len(r["members"]), 75)
        await reader.ok("ping")


class ShutdownTest(unittest.IsolatedAsyncioTestCase):
    async def test_sigterm_leaves_members_closes_with_1001_and_exits_0(self):
        server = Server(heartbeat_ms=300, remain_present_for_ms=5000)
        try:
            ch = unique()
            w = await Client.connect(server, "watcher")
            await w.ok("subscribe", channel=ch, actions=["leave"])
            a = await Client.connect(server, "a")
            await a.ok("enter", channel=ch)
            b = await Client.connect(server, "b")
            await b.ok("enter", channel=ch)
            b.drop()  # in its grace period: still leaves at shutdown
            code = await asyncio.get_running_loop().run_in_executor(None, server.terminate)
            self.assertEqual(code, 0)
            reasons = []
            with self.assertRaises(websockets.exceptions.ConnectionClosed) as e:
                while True:
                    reasons.append((await w.presence(ch))["reason"])
            self.assertEqual(sorted(reasons), ["disconnected", "disconnected"])
            self.assertEqual(e.exception.rcvd.code, 1001)
        finally:
            server.kill()


if __name__ == "__main__":
    unittest.main()
