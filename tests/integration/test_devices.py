"""Integration tests (#18) through the real binary: the client's heartbeat interval (heartbeatMs on
the upgrade, clamped into the server's bounds, and the liveness that follows it), per-device status
over WebSocket, chat commands and REST, observers watching every user, and a backend's activity
and sync routes."""
import asyncio
import json
import time
import unittest

import websockets

from harness import Client, RawClient, TIMEOUT
from test_server import ServerTest, unique


class HeartbeatTest(ServerTest):
    # The server's own interval is long, so a connection that asks for nothing is not dropped while
    # one that asked for the minimum is.
    settings = dict(heartbeat_ms=20000, min_heartbeat_ms=200, max_heartbeat_ms=60000,
                    remain_present_for_ms=0)

    async def test_the_effective_interval_is_in_connected(self):
        for asked, effective in [(None, 20000), (500, 500), (0, 200), (50, 200), (999999, 60000)]:
            params = {} if asked is None else {"heartbeatMs": asked}
            c = await self.connect(**params)
            self.assertEqual(c.connected["heartbeatMs"], effective, asked)

    async def test_a_bad_value_is_refused_before_the_upgrade(self):
        token = self.server.token(unique("bad"))
        for bad in ["-1", "abc", "1.5", "", "99999999999999999999999"]:
            with self.assertRaises(websockets.exceptions.InvalidStatusCode, msg=bad) as e:
                await websockets.connect(self.server.url(token, heartbeatMs=bad),
                                         open_timeout=TIMEOUT)
            self.assertEqual(e.exception.status_code, 400, bad)

    async def test_liveness_follows_the_connections_own_interval(self):
        ch = unique()
        w = await self.connect()
        await w.ok("subscribe", channel=ch, actions=["leave"])
        # Both never answer a ping; only the one on a 200 ms interval is silent for two of its
        # intervals before the other's first ping is even due (20 s).
        short = RawClient(self.server, self.server.token(unique("short")), heartbeatMs=200)
        slow_id = unique("slow")
        slow = RawClient(self.server, self.server.token(slow_id))
        for raw in (short, slow):
            opcode, payload = raw.read_frame()
            self.assertEqual(json.loads(payload)["type"], "connected")
            raw.send_frame(json.dumps({"op": "enter", "id": 1, "channel": ch}))
        t0 = time.monotonic()
        e = await w.presence(ch)
        self.assertEqual((e["reason"], e["member"]["clientId"] != slow_id), ("timeout", True))
        self.assertGreater(time.monotonic() - t0, 0.3)
        status, body = self.server.http("GET", "/v1/channels/%s/presence" % ch)
        self.assertEqual([m["clientId"] for m in body["members"]], [slow_id])
        short.close()
        slow.close()


class DeviceStatusTest(ServerTest):
    async def observer(self):
        ws = await websockets.connect("ws://127.0.0.1:%d/v1/ws" % self.server.port,
                                      extra_headers={"Authorization": "Bearer " + self.server.api_key},
                                      max_size=None, ping_interval=None, open_timeout=TIMEOUT)
        c = Client(ws)
        c.connected = await c.next("connected")
        self.assertEqual(c.connected["clientId"], "presenced:observer")
        self.addAsyncCleanup(self._close, c)
        return c

    async def test_a_dnd_phone_and_an_online_laptop(self):
        me = unique("dev")
        laptop = await self.connect(me, device="laptop")
        phone = await self.connect(me, device="phone")
        friend = await self.connect(unique("friend"))
        await friend.ok("status.watch", clientIds=[me])
        r = await phone.ok("device.status.set", status="dnd")
        self.assertEqual((r["device"]["device"], r["device"]["status"], r["device"]["manual"]),
                         ("phone", "dnd", True))
        self.assertEqual(r["status"]["status"], "online")  # the laptop is online
        # Both devices hear which device changed, though the user's status did not.
        for c in (laptop, phone):
            push = await c.next("status", where=lambda f: "device" in f)
            self.assertEqual((push["previous"], push["status"]), ("online", "online"))
            self.assertEqual(push["device"]["connectionId"], phone.connected["connectionId"])
        # The laptop goes away by hand: now the phone's dnd is the most available.
        r = await laptop.ok("device.status.set", status="away")
        self.assertEqual(r["status"]["status"], "dnd")
        push = await friend.next("status")
        self.assertEqual((push["previous"], push["status"]), ("online", "dnd"))
        self.assertNotIn("device", push)
        devices = (await friend.ok("devices", clientId=me))["devices"]
        self.assertEqual(sorted((d["device"], d["status"], d["manual"]) for d in devices),
                         [("laptop", "away", True), ("phone", "dnd", True)])
        # A user-level status set by hand wins over every device.
        await laptop.ok("status.set", status="online")  # automatic: still dnd from devices
        await phone.ok("status.set", status="away")
        got = await friend.ok("status.get", clientIds=[me])
        self.assertEqual(got["statuses"][0]["status"], "away")
        await phone.ok("status.set", status="online")
        # Another live connection of the same user may be set; an unknown one is not_found.
        r = await phone.ok("device.status.set", status="online",
                           connectionId=laptop.connected["connectionId"])
        self.assertEqual((r["device"]["device"], r["device"]["manual"], r["status"]["status"]),
                         ("laptop", False, "online"))
        bad = await phone.request("device.status.set", status="online", connectionId="nope")
        self.assertEqual(bad["error"]["code"], "not_found")
        other = await friend.request("device.status.set", status="dnd",
                                     connectionId=phone.connected["connectionId"])
        self.assertEqual(other["error"]["code"], "not_found")  # not the friend's connection
        bad = await phone.request("device.status.set", status="busy")
        self.assertEqual(bad["error"]["code"], "bad_request")

    async def test_a_device_set_offline_is_hidden_from_others(self):
        me = unique("hide")
        laptop = await self.connect(me, device="laptop")
        phone = await self.connect(me, device="phone")
        friend = await self.connect(unique("friend"))
        await phone.ok("activity", kind="tap")  # the phone is the active device
        await phone.ok("device.status.set", status="offline")
        mine = (await phone.ok("devices"))["devices"]
        self.assertEqual(sorted((d["device"], d["status"]) for d in mine),
                         [("laptop", "online"), ("phone", "offline")])
        theirs = (await friend.ok("devices", clientId=me))["devices"]
        self.assertEqual([d["device"] for d in theirs], ["laptop"])
        status = (await friend.ok("status.get", clientIds=[me]))["statuses"][0]
        self.assertEqual((status["status"], status["activeDevice"]), ("online", "laptop"))
        # With the laptop set offline too, every device is offline: so is the user.
        r = await laptop.ok("device.status.set", status="offline")
        self.assertEqual(r["status"]["status"], "offline")
        who = (await friend.ok("who"))["users"]
        self.assertNotIn(me, [u["clientId"] for u in who])

    async def test_commands_show_and_set_device_status(self):
        me = unique("cmd")
        a = await self.connect(me, device="desk")
        b = await self.connect(me, device="pocket")
        r = await a.ok("command", text="/presence device dnd")
        self.assertEqual((r["data"]["device"]["device"], r["data"]["device"]["status"]), ("desk", "dnd"))
        r = await a.ok("command", text="/presence device away %s" % b.connected["connectionId"])
        self.assertEqual(r["data"]["device"]["device"], "pocket")
        r = await a.ok("command", text="/presence devices")
        self.assertIn("(set)", r["text"])
        self.assertIn("dnd", r["text"])
        self.assertEqual(sorted(d["status"] for d in r["data"]["devices"]), ["away", "dnd"])
        r = await a.ok("command", text="/presence device sleepy")
        self.assertEqual(r["data"]["error"]["code"], "bad_command")

    async def test_rest_sets_a_devices_status(self):
        me = unique("rest")
        phone = await self.connect(me, device="phone")
        cid = phone.connected["connectionId"]
        status, body = self.server.http("PUT", "/v1/users/%s/devices/%s/status" % (me, cid),
                                        {"status": "dnd"})
        self.assertEqual(status, 200, body)
        self.assertEqual((body["device"]["status"], body["device"]["manual"], body["status"]["status"]),
                         ("dnd", True, "dnd"))
        push = await phone.next("status", where=lambda f: "device" in f)
        self.assertEqual((push["previous"], push["status"]), ("online", "dnd"))
        status, body = self.server.http("GET", "/v1/users/%s/devices" % me)
        self.assertEqual((body["devices"][0]["status"], body["devices"][0]["manual"]), ("dnd", True))
        for path, payload, code in [
                ("/v1/users/%s/devices/nope/status" % me, {"status": "dnd"}, 404),
                ("/v1/users/%s/devices/%s/status" % (unique("other"), cid), {"status": "dnd"}, 404),
                ("/v1/users/%s/devices/%s/status" % (me, cid), {"status": "busy"}, 400),
                ("/v1/users/%s/devices/%s/status" % (me, cid), {}, 400)]:
            status, body = self.server.http("PUT", path, payload)
            self.assertEqual(status, code, (path, payload, body))
        status, _ = self.server.http("PUT", "/v1/users/%s/devices/%s/status" % (me, cid),
                                     {"status": "online"}, key=False)
        self.assertEqual(status, 401)
        status, body = self.server.http("GET", "/v1/users/%s/status" % me)
        self.assertEqual(body["status"], "dnd")  # the refused calls changed nothing

    async def test_an_observer_watches_every_user(self):
        obs = await self.observer()
        early = unique("early")
        e = await self.connect(early)
        r = await obs.ok("status.watch", all=True)
        self.assertIn(early, [s["clientId"] for s in r["statuses"]])
        late = unique("late")
        l = await self.connect(late)
        push = await obs.next("status", where=lambda f: f["clientId"] == late)
        self.assertEqual((push["previous"], push["status"]), ("offline", "online"))
        await e.ok("status.set", status="dnd")
        push = await obs.next("status", where=lambda f: f["clientId"] == early)
        self.assertEqual(push["status"], "dnd")
        # A user's connection may not watch everyone.
        bad = await l.request("status.watch", all=True)
        self.assertEqual(bad["error"]["code"], "forbidden")
        await obs.ok("status.unwatch", all=True)
        await e.ok("status.set", status="online")
        await e.close()
        # A later push to the observer would be one of these; it is not.
        marker = unique("marker")
        await obs.ok("status.watch", clientIds=[marker])
        m = await self.connect(marker)
        push = await obs.next("status")
        self.assertEqual(push["clientId"], marker)
        await m.close()

    async def test_a_resumed_watcher_gets_the_status_changes_it_missed(self):
        target = unique("target")
        t = await self.connect(target)
        me = unique("watcher")
        w = await self.connect(me, remainPresentForMs=2000)
        await w.ok("status.watch", clientIds=[target])
        w.drop()
        # Until the server has noticed the drop, a push would go to the old socket: wait until
        # the sync report shows the device in its grace period (counted, not in sync).
        deadline = time.monotonic() + TIMEOUT
        while True:
            # In a thread: the loop keeps answering the other connections' pings meanwhile.
            status, report = await asyncio.to_thread(self.server.http, "GET", "/v1/users/%s/sync" % me)
            if report["inSync"] == 0 or time.monotonic() > deadline:
                break
        self.assertEqual((report["devices"], report["inSync"]), (1, 0))
        await t.ok("status.set", status="dnd", text="focus")
        await t.close()  # offline on all devices
        r = await self.connect(me, resume=w.connected["connectionKey"], remainPresentForMs=2000)
        self.assertTrue(r.connected["resumed"])
        push = await r.next("status")
        self.assertEqual((push["clientId"], push["status"], push["previous"]), (target, "offline", "dnd"))
        self.assertTrue(await r.quiet(0.2))  # once, with the current status only
        status, report = self.server.http("GET", "/v1/users/%s/sync" % me)
        self.assertEqual(report["inSync"], 1)

    async def test_a_backends_activity_and_sync(self):
        me = unique("act")
        a = await self.connect(me, device="laptop")
        before = (await a.ok("status.get", clientIds=[me]))["statuses"][0]["lastSeen"]
        status, body = self.server.http("POST", "/v1/users/%s/activity" % me,
                                        {"kind": "email.sent", "data": {"to": 3}})
        self.assertEqual(status, 200, body)
        act = body["activity"]
        self.assertEqual((act["kind"], act["channel"], act["data"], act["connectionId"]),
                         ("email.sent", None, {"to": 3}, None))
        self.assertGreaterEqual(act["timestamp"], before)
        # It moves lastSeen (the REST calls are not the device's activity).
        status, body = self.server.http("GET", "/v1/users/%s/status" % me)
        self.assertEqual(body["lastSeen"], act["timestamp"])
        status, body = self.server.http("GET", "/v1/users/%s/activity?limit=5" % me)
        self.assertEqual(body["activities"][0]["kind"], "email.sent")
        got = (await a.ok("activity.get"))["activities"][0]
        self.assertIsNone(got["connectionId"])
        # A user never connected: recorded, and still offline.
        ghost = unique("ghost")
        status, body = self.server.http("POST", "/v1/users/%s/activity" % ghost, {"kind": "x"})
        self.assertEqual(status, 200)
        stamp = body["activity"]["timestamp"]
        status, body = self.server.http("GET", "/v1/users/%s/status" % ghost)
        self.assertEqual((body["status"], body["lastSeen"]), ("offline", stamp))
        for bad in [{}, {"kind": ""}, {"kind": 5}]:
            status, body = self.server.http("POST", "/v1/users/%s/activity" % me, bad)
            self.assertEqual(status, 400, bad)
        # GET sync reports without pushing; POST pushes the current status to each live device.
        status, report = self.server.http("GET", "/v1/users/%s/sync" % me)
        self.assertEqual((status, report["devices"], report["status"]["clientId"]), (200, 1, me))
        self.assertTrue(await a.quiet(0.2))
        status, report = self.server.http("POST", "/v1/users/%s/sync" % me)
        self.assertEqual((report["devices"], report["inSync"]), (1, 1))
        self.assertEqual(report["perDevice"][0]["device"], "laptop")
        push = await a.next("status")
        self.assertEqual(push["previous"], push["status"])
        self.assertEqual(report["lastSyncedAt"], report["perDevice"][0]["lastSyncedAt"])


if __name__ == "__main__":
    unittest.main()
