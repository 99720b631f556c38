"""Integration tests: `/presence` chat commands (WebSocket op `command`, REST POST /v1/commands)
and the REST routes beyond the core contract (channels, who, devices, activity, tokens)."""
import asyncio
import unittest

from harness import Client, TIMEOUT
from test_server import ServerTest, unique


class CommandTest(ServerTest):
    async def command(self, client, text):
        r = await client.ok("command", text=text)
        self.assertIsInstance(r["text"], str)
        return r

    async def test_own_status_and_status_changes(self):
        me = unique("cmd")
        a = await self.connect(me, device="laptop")
        r = await self.command(a, "/presence")
        self.assertEqual(r["data"]["clientId"], me)
        self.assertEqual(r["data"]["status"], "online")
        self.assertIn("%s is online" % me, r["text"])
        self.assertIn("active on laptop", r["text"])

        r = await self.command(a, "/presence away")
        self.assertEqual(r["data"]["status"], "away")
        self.assertEqual(r["text"], "Status set to away.")
        push = await a.next("status")
        self.assertEqual((push["status"], push["previous"]), ("away", "online"))

        r = await self.command(a, '/presence status "deep work"')
        self.assertEqual(r["data"]["text"], "deep work")
        self.assertEqual(r["text"], 'Status text set to "deep work".')
        r = await self.command(a, "/presence status clear")
        self.assertIsNone(r["data"]["text"])
        self.assertEqual(r["text"], "Status text cleared.")

        r = await self.command(a, "/presence offline")
        self.assertEqual(r["text"], "You now appear offline.")
        r = await self.command(a, "/presence online")
        self.assertEqual(r["data"]["status"], "online")
        self.assertIn("automatic", r["text"])
        # The same change is what status.get reports.
        got = await a.ok("status.get", clientIds=[me])
        self.assertEqual(got["statuses"][0]["status"], "online")

    async def test_who_lists_users_of_a_channel(self):
        ch = unique()
        a = await self.connect(unique("ann"))
        b = await self.connect(unique("bob"))
        await a.ok("enter", channel=ch)
        await b.ok("enter", channel=ch)
        await self.command(b, "/presence dnd")
        r = await self.command(a, "/presence who %s" % ch)
        self.assertEqual(r["data"]["channel"], ch)
        ids = sorted(u["clientId"] for u in r["data"]["users"])
        self.assertEqual(ids, sorted([a.connected["clientId"], b.connected["clientId"]]))
        self.assertTrue(r["text"].startswith("2 online in %s: " % ch), r["text"])
        self.assertIn("%s (dnd)" % b.connected["clientId"], r["text"])
        empty = await self.command(a, "/presence who %s" % unique())
        self.assertEqual(empty["data"]["users"], [])
        self.assertTrue(empty["text"].startswith("Nobody is online in "))

    async def test_devices_activity_and_sync(self):
        me = unique("multi")
        laptop = await self.connect(me, device="laptop")
        phone = await self.connect(me, device="phone", remainPresentForMs=2000)
        r = await self.command(laptop, "/presence devices")
        self.assertEqual(sorted(d["device"] for d in r["data"]["devices"]), ["laptop", "phone"])
        self.assertTrue(r["text"].startswith("2 devices: "), r["text"])

        await laptop.ok("activity", kind="typing", channel="room-9")
        r = await self.command(laptop, "/presence activity")
        self.assertEqual(r["data"]["activities"][0]["kind"], "typing")
        self.assertIn("typing in room-9", r["text"])

        r = await self.command(phone, "/presence sync")
        self.assertEqual((r["data"]["devices"], r["data"]["inSync"]), (2, 2))
        self.assertIsInstance(r["data"]["lastSyncedAt"], int)
        self.assertTrue(r["text"].startswith("Synced online to 2 of 2 devices"), r["text"])
        for device in (laptop, phone):  # every device got the status pushed
            push = await device.next("status")
            self.assertEqual((push["status"], push["previous"]), ("online", "online"))

        # A device in its grace period is counted but not in sync.
        phone.drop()
        # Nothing is pushed when a device enters its grace period: ask until the server has
        # noticed the drop (bounded).
        deadline = asyncio.get_running_loop().time() + TIMEOUT
        while True:
            r = await self.command(laptop, "/presence sync")
            if r["data"]["inSync"] == 1 or asyncio.get_running_loop().time() > deadline:
                break
        self.assertEqual((r["data"]["devices"], r["data"]["inSync"]), (2, 1))
        self.assertIn("phone is reconnecting", r["text"])

    async def test_help_and_bad_commands_get_a_helpful_reply(self):
        a = await self.connect()
        r = await self.command(a, "/presence help")
        self.assertIn("/presence who [channel]", r["text"])
        self.assertEqual(len(r["data"]["commands"]), 9)
        self.assertIn("/presence device online|away|dnd|offline [connectionId]", r["text"])
        for text, problem in [("/presence dance", "unknown command /presence dance"),
                              ('/presence status "open', "closing quote"),
                              ("hello", "is not a presence command"),
                              ("/presence sync now", "takes no arguments")]:
            r = await self.command(a, text)
            self.assertEqual(r["data"]["error"]["code"], "bad_command")
            self.assertIn(problem, r["data"]["error"]["message"])
            self.assertIn("Presence commands:", r["text"])
        bad = await a.request("command", text=5)
        self.assertEqual(bad["error"]["code"], "bad_request")
        too_long = await a.request("command", text='/presence status "%s"' % ("x" * 5000))
        self.assertTrue(too_long["ok"])
        self.assertEqual(too_long["data"]["error"]["code"], "too_large")


class RestMoreTest(ServerTest):
    def post(self, path, body, **kw):
        return self.server.http("POST", path, body, **kw)

    async def test_commands_over_rest_act_for_the_given_user(self):
        me = unique("bot")
        a = await self.connect(me, device="desk")
        status, body = self.post("/v1/commands", {"clientId": me, "text": "/presence away"})
        self.assertEqual(status, 200)
        self.assertEqual((body["text"], body["data"]["status"]), ("Status set to away.", "away"))
        push = await a.next("status")
        self.assertEqual(push["status"], "away")
        status, body = self.post("/v1/commands", {"clientId": me, "text": "/presence devices"})
        self.assertEqual(body["data"]["devices"][0]["device"], "desk")
        status, body = self.post("/v1/commands", {"clientId": me, "text": "/presence nope"})
        self.assertEqual(status, 200)
        self.assertEqual(body["data"]["error"]["code"], "bad_command")
        for bad in [{"text": "/presence"}, {"clientId": me}, {"clientId": "", "text": "/presence"}]:
            status, body = self.post("/v1/commands", bad)
            self.assertEqual((status, body["error"]["code"]), (400, "bad_request"))
        status, body = self.post("/v1/commands", {"clientId": me, "text": "/presence"}, key=False)
        self.assertEqual(status, 401)
        status, body = self.server.http("GET", "/v1/commands")
        self.assertEqual(status, 405)

    async def test_channels_who_devices_activity(self):
        ch = unique("list")
        me = unique("lister")
        a = await self.connect(me, device="tablet")
        await a.ok("enter", channel=ch)
        await a.ok("activity", kind="viewed", channel=ch)
        status, body = self.server.http("GET", "/v1/channels?limit=10000")
        self.assertEqual(status, 200)
        mine = [c for c in body["channels"] if c["channel"] == ch]
        self.assertEqual(mine, [{"channel": ch, "members": 1, "clients": 1}])
        names = [c["channel"] for c in body["channels"]]
        self.assertEqual(names, sorted(names))
        status, body = self.server.http("GET", "/v1/who?channel=%s" % ch)
        self.assertEqual([u["clientId"] for u in body["users"]], [me])
        status, body = self.server.http("GET", "/v1/users/%s/devices" % me)
        self.assertEqual(body["devices"][0]["device"], "tablet")
        status, body = self.server.http("GET", "/v1/users/%s/activity?limit=5" % me)
        self.assertEqual(body["activities"][0]["kind"], "viewed")
        status, body = self.server.http("GET", "/v1/users/%s/activity?limit=0" % me)
        self.assertEqual(status, 400)

    async def test_channel_list_pages(self):
        prefix = unique("page")
        clients = []
        for i in range(3):
            c = await self.connect()
            await c.ok("enter", channel="%s-%d" % (prefix, i))
            clients.append(c)
        after = prefix
        seen = []
        while True:
            status, body = self.server.http("GET", "/v1/channels?limit=1&after=%s" % after)
            self.assertEqual(status, 200)
            page = [c["channel"] for c in body["channels"]]
            seen += [c for c in page if c.startswith(prefix)]
            if "next" not in body or not page[0].startswith(prefix):
                break
            after = body["next"]
        self.assertEqual(seen, ["%s-%d" % (prefix, i) for i in range(3)])

    async def test_tokens_are_minted_for_websocket_use(self):
        status, body = self.post("/v1/tokens", {"clientId": "minted", "channels": ["ok-*"],
                                                "ttlMs": 60000})
        self.assertEqual(status, 200)
        self.assertGreater(body["expiresAt"], 0)
        c = await Client.connect(self.server, "minted", token=body["token"])
        self.addAsyncCleanup(self._close, c)
        self.assertEqual(c.connected["clientId"], "minted")
        await c.ok("enter", channel="ok-1")
        denied = await c.request("enter", channel="other")
        self.assertEqual(denied["error"]["code"], "forbidden")
        for bad in [{"clientId": "x", "ttlMs": 10}, {"clientId": "x", "channels": "a"}, {}]:
            status, body = self.post("/v1/tokens", bad)
            self.assertEqual(status, 400, bad)
        status, body = self.post("/v1/tokens", {"clientId": "x"}, key="wrong")
        self.assertEqual(status, 401)


if __name__ == "__main__":
    unittest.main()
