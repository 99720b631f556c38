"""Operators' features through the real binary: the token in the first frame (`auth`), token
refresh, admin REST (disconnect, revoke, server-side members), and browser origins (Origin, CORS).
"""
import asyncio
import json
import socket
import base64
import os
import unittest
import urllib.request

import websockets

from harness import TIMEOUT, Client, Server, read_head, wait_until


async def open_ws(server, query="", headers=None):
    url = "ws://127.0.0.1:%d/v1/ws%s" % (server.port, ("?" + query) if query else "")
    return await websockets.connect(url, max_size=None, ping_interval=None, open_timeout=TIMEOUT,
                                    extra_headers=headers or {})


async def closed_with(ws, timeout=TIMEOUT):
    """Reads until the server closes; returns (code, reason)."""
    try:
        while True:
            await asyncio.wait_for(ws.recv(), timeout)
    except websockets.ConnectionClosed as e:
        return e.code, e.reason


async def first_frame_client(server, client_id, channels=None, token=None, **params):
    """A Client that sends its token as the first frame instead of in the URL."""
    token = token or server.token(client_id, channels)
    query = "&".join("%s=%s" % kv for kv in params.items())
    ws = await open_ws(server, query)
    await ws.send(json.dumps({"op": "auth", "token": token}))
    c = Client(ws)
    c.connected = await c.next("connected")
    return c


def raw_upgrade(server, headers="", host="x"):
    """The status line and headers of an upgrade sent with extra `headers`, and what followed."""
    s = socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT)
    key = base64.b64encode(os.urandom(16)).decode()
    token = server.token("alice")
    s.sendall(("GET /v1/ws?token=%s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n%s\r\n"
               % (token, host, key, headers)).encode())
    head, _, rest = read_head(s).partition(b"\r\n\r\n")
    s.close()
    return head.decode(), rest


class FirstFrameAuthTest(unittest.IsolatedAsyncioTestCase):
    async def asyncSetUp(self):
        self.server = Server()

    async def asyncTearDown(self):
        self.server.kill()

    async def test_token_in_the_first_frame_then_connected(self):
        c = await first_frame_client(self.server, "alice", device="laptop")
        self.assertEqual(c.connected["clientId"], "alice")
        r = await c.ok("enter", channel="room", data={"x": 1})
        self.assertEqual(r["member"]["clientId"], "alice")
        await c.close()

    async def test_a_bad_token_first_closes_with_4003(self):
        ws = await open_ws(self.server)
        await ws.send(json.dumps({"op": "auth", "token": "not.a.token"}))
        self.assertEqual(await closed_with(ws), (4003, "authentication failed"))

    async def test_another_frame_first_closes_with_4003(self):
        ws = await open_ws(self.server)
        await ws.send(json.dumps({"op": "enter", "id": 1, "channel": "room"}))
        self.assertEqual(await closed_with(ws), (4003, "authentication failed"))

    async def test_no_frame_within_5_s_closes_with_4003(self):
        ws = await open_ws(self.server)
        loop = asyncio.get_running_loop()
        start = loop.time()
        self.assertEqual(await closed_with(ws, timeout=TIMEOUT), (4003, "authentication failed"))
        self.assertGreaterEqual(loop.time() - start, 4.5)

    async def test_auth_again_replaces_the_channel_patterns(self):
        c = await Client.connect(self.server, "alice", channels=["a:*"])
        r = await c.request("enter", channel="b:1")
        self.assertEqual(r["error"]["code"], "forbidden")
        r = await c.ok("auth", token=self.server.token("alice", ["b:*"]))
        self.assertGreater(r["expiresAt"], 0)
        await c.ok("enter", channel="b:1")
        r = await c.request("enter", channel="a:1")
        self.assertEqual(r["error"]["code"], "forbidden")
        r = await c.request("auth", token=self.server.token("bob"))
        self.assertEqual(r["error"]["code"], "forbidden")
        r = await c.request("auth", token="garbage")
        self.assertEqual(r["error"]["code"], "unauthorized")
        await c.close()


class AdminRestTest(unittest.IsolatedAsyncioTestCase):
    async def asyncSetUp(self):
        self.server = Server()

    async def asyncTearDown(self):
        self.server.kill()

    async def test_delete_connection_closes_4002_and_members_leave_disconnected(self):
        watcher = await Client.connect(self.server, "watcher")
        await watcher.ok("subscribe", channel="room")
        alice = await Client.connect(self.server, "alice")
        await alice.ok("enter", channel="room")
        await watcher.presence("room")
        cid = alice.connected["connectionId"]
        status, body = self.server.http("DELETE", "/v1/connections/" + cid)
        self.assertEqual(status, 204, body)
        self.assertEqual(await closed_with(alice.ws), (4002, "disconnected by the server"))
        leave = await watcher.presence("room")
        self.assertEqual((leave["action"], leave["reason"]), ("leave", "disconnected"))
        status, body = self.server.http("DELETE", "/v1/connections/" + cid)
        self.assertEqual((status, body["error"]["code"]), (404, "not_found"))
        await watcher.close()

    async def test_delete_user_connections(self):
        a1 = await Client.connect(self.server, "alice", device="phone")
        a2 = await Client.connect(self.server, "alice", device="laptop")
        bob = await Client.connect(self.server, "bob")
        status, body = self.server.http("DELETE", "/v1/users/alice/connections")
        self.assertEqual((status, body), (200, {"closed": 2}))
        self.assertEqual((await closed_with(a1.ws))[0], 4002)
        self.assertEqual((await closed_with(a2.ws))[0], 4002)
        await bob.ok("ping")
        status, body = self.server.http("DELETE", "/v1/users/alice/connections")
        self.assertEqual((status, body), (200, {"closed": 0}))
        await bob.close()

    async def test_revoke_refuses_older_tokens_and_closes_4004(self):
        old = self.server.token("alice")
        alice = await Client.connect(self.server, "alice", token=old)
        status, body = self.server.http("POST", "/v1/users/alice/revoke")
        self.assertEqual(status, 200, body)
        self.assertEqual(body["closed"], 1)
        self.assertEqual(await closed_with(alice.ws), (4004, "token revoked"))
        # The old token is refused, in the URL and in the first frame.
        ws = await open_ws(self.server, "token=" + old)
        self.assertEqual((await closed_with(ws))[0], 4004)
        ws = await open_ws(self.server)
        await ws.send(json.dumps({"op": "auth", "token": old}))
        self.assertEqual((await closed_with(ws))[0], 4004)
        # A token minted after the revocation works.
        status, minted = self.server.http("POST", "/v1/tokens", {"clientId": "alice"})
        self.assertEqual(status, 200)
        fresh = await Client.connect(self.server, "alice", token=minted["token"])
        await fresh.ok("ping")
        # Other users are untouched.
        bob = await Client.connect(self.server, "bob")
        await bob.ok("ping")
        await fresh.close()
        await bob.close()

    async def test_a_revocation_survives_a_restart(self):
        old = self.server.token("alice")
        status, _ = self.server.http("POST", "/v1/users/alice/revoke")
        self.assertEqual(status, 200)
        self.assertEqual(self.server.terminate(), 0)
        self.server = Server(data_dir=self.server.data_dir)
        ws = await open_ws(self.server, "token=" + old)
        self.assertEqual((await closed_with(ws))[0], 4004)

    async def test_server_side_member(self):
        watcher = await Client.connect(self.server, "watcher")
        await watcher.ok("subscribe", channel="room")
        path = "/v1/channels/room/presence/bot"
        status, body = self.server.http("PUT", path, {"data": {"v": 1}, "ttlMs": 60000})
        self.assertEqual(status, 200, body)
        self.assertTrue(body["created"])
        self.assertEqual((body["member"]["clientId"], body["member"]["data"]), ("bot", {"v": 1}))
        enter = await watcher.presence("room")
        self.assertEqual(enter["action"], "enter")
        status, body = self.server.http("PUT", path, {"data": {"v": 2}, "ttlMs": 60000})
        self.assertEqual((status, body["created"]), (200, False))
        update = await watcher.presence("room")
        self.assertEqual((update["action"], update["member"]["data"]), ("update", {"v": 2}))
        status, body = self.server.http("GET", "/v1/channels/room/presence")
        self.assertEqual([m["clientId"] for m in body["members"]], ["bot"])
        # Not a socket: the user's connections are not the server's member.
        status, body = self.server.http("DELETE", "/v1/users/bot/connections")
        self.assertEqual(body, {"closed": 0})
        status, _ = self.server.http("DELETE", path)
        self.assertEqual(status, 204)
        leave = await watcher.presence("room")
        self.assertEqual((leave["action"], leave["reason"]), ("leave", "left"))
        status, body = self.server.http("DELETE", path)
        self.assertEqual((status, body["error"]["code"]), (404, "not_found"))
        await watcher.close()

    async def test_server_side_member_expires_unless_renewed(self):
        watcher = await Client.connect(self.server, "watcher")
        await watcher.ok("subscribe", channel="room")
        path = "/v1/channels/room/presence/bot"
        status, _ = self.server.http("PUT", path, {"ttlMs": 1000})
        self.assertEqual(status, 200)
        await watcher.presence("room")
        leave = await watcher.presence("room", timeout=TIMEOUT)
        self.assertEqual((leave["action"], leave["reason"]), ("leave", "expired"))
        # Its connection ended with it: the next PUT creates a new member.
        wait_until(lambda: self.server.http("GET", "/v1/users/bot/devices")[1]["devices"] == [])
        status, body = self.server.http("PUT", path, {"ttlMs": 1000})
        self.assertTrue(body["created"])
        await watcher.close()

    async def test_server_side_member_needs_a_ttl(self):
        path = "/v1/channels/room/presence/bot"
        for body in ({}, {"ttlMs": 10}, {"ttlMs": "1000"}, {"ttlMs": 86400001}):
            status, reply = self.server.http("PUT", path, body)
            self.assertEqual((status, reply["error"]["code"]), (400, "bad_request"), body)
        status, _ = self.server.http("PUT", path, {"ttlMs": 1000}, key="wrong")
        self.assertEqual(status, 401)


class OriginsTest(unittest.IsolatedAsyncioTestCase):
    async def asyncSetUp(self):
        self.server = Server(allowed_origins="https://app.example.com, https://admin.example.com")

    async def asyncTearDown(self):
        self.server.kill()

    async def test_upgrade_from_another_origin_is_403(self):
        head, rest = raw_upgrade(self.server, "Origin: https://evil.example.com\r\n")
        self.assertTrue(head.startswith("HTTP/1.1 403"), head)
        self.assertEqual(json.loads(rest)["error"]["code"], "forbidden")
        head, _ = raw_upgrade(self.server, "Origin: https://app.example.com\r\n")
        self.assertTrue(head.startswith("HTTP/1.1 101"), head)
        head, _ = raw_upgrade(self.server)  # no Origin: not a browser
        self.assertTrue(head.startswith("HTTP/1.1 101"), head)

    async def test_the_servers_own_origin_is_allowed(self):
        # The dashboard, served by the server itself: Origin names the Host it was sent to.
        host = "127.0.0.1:%d" % self.server.port
        head, _ = raw_upgrade(self.server, "Origin: http://%s\r\n" % host, host=host)
        self.assertTrue(head.startswith("HTTP/1.1 101"), head)

    def request(self, method, path, origin, headers=None):
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.server.port, path),
                                     method=method)
        req.add_header("Origin", origin)
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=TIMEOUT) as resp:
                return resp.status, resp.headers
        except urllib.error.HTTPError as e:
            return e.code, e.headers

    async def test_cors_preflight_and_headers(self):
        status, headers = self.request("OPTIONS", "/v1/who", "https://app.example.com",
                                       {"Access-Control-Request-Method": "GET",
                                        "Access-Control-Request-Headers": "authorization"})
        self.assertEqual(status, 204)
        self.assertEqual(headers["Access-Control-Allow-Origin"], "https://app.example.com")
        self.assertIn("Authorization", headers["Access-Control-Allow-Headers"])
        self.assertIn("DELETE", headers["Access-Control-Allow-Methods"])
        status, headers = self.request("GET", "/v1/who", "https://admin.example.com",
                                       {"Authorization": "Bearer " + self.server.api_key})
        self.assertEqual(status, 200)
        self.assertEqual(headers["Access-Control-Allow-Origin"], "https://admin.example.com")
        self.assertEqual(headers["Vary"], "Origin")
        status, headers = self.request("GET", "/v1/who", "https://evil.example.com",
                                       {"Authorization": "Bearer " + self.server.api_key})
        self.assertEqual(status, 403)
        self.assertIsNone(headers["Access-Control-Allow-Origin"])


class DocsAndMetricsTest(unittest.IsolatedAsyncioTestCase):
    async def asyncSetUp(self):
        self.server = Server()

    async def asyncTearDown(self):
        self.server.kill()

    async def test_openapi_json_is_the_document_and_needs_no_key(self):
        import yaml  # Debian's python3-yaml, as the build uses
        status, doc = self.server.http("GET", "/v1/openapi.json", key=False)
        self.assertEqual(status, 200)
        here = os.path.dirname(os.path.abspath(__file__))
        with open(os.path.join(here, "..", "..", "docs", "openapi.yaml")) as f:
            self.assertEqual(doc, yaml.safe_load(f))
        self.assertTrue(doc["openapi"].startswith("3.1"))

    async def test_latency_histograms_by_op_and_of_fan_out(self):
        watcher = await Client.connect(self.server, "watcher")
        await watcher.ok("subscribe", channel="room")
        alice = await Client.connect(self.server, "alice")
        await alice.ok("enter", channel="room")
        await watcher.presence("room")
        await alice.ok("history", channel="room")
        self.server.http("GET", "/v1/who")
        status, text = self.server.http("GET", "/metrics", key=False)
        self.assertEqual(status, 200)
        def count(series):
            for line in text.splitlines():
                if line.startswith(series + " "):
                    return float(line.split()[-1])
            return None
        self.assertGreaterEqual(count('presenced_request_duration_seconds_count{op="enter"}'), 1)
        self.assertGreaterEqual(count('presenced_request_duration_seconds_count{op="history"}'), 1)
        self.assertGreaterEqual(count('presenced_request_duration_seconds_count{op="who"}'), 1)
        self.assertIn('presenced_request_duration_seconds_bucket{op="enter",le="+Inf"}', text)
        self.assertGreaterEqual(count("presenced_fanout_latency_seconds_count"), 1)
        self.assertIn('presenced_fanout_latency_seconds_bucket{le="0.001"}', text)
        await alice.close()
        await watcher.close()


class AnyOriginTest(unittest.TestCase):
    def test_without_a_list_any_origin_connects_and_no_cors_headers(self):
        server = Server()
        try:
            head, _ = raw_upgrade(server, "Origin: https://anything.example\r\n")
            self.assertTrue(head.startswith("HTTP/1.1 101"), head)
            req = urllib.request.Request("http://127.0.0.1:%d/v1/healthz" % server.port)
            req.add_header("Origin", "https://anything.example")
            with urllib.request.urlopen(req, timeout=TIMEOUT) as resp:
                self.assertIsNone(resp.headers["Access-Control-Allow-Origin"])
        finally:
            server.kill()


if __name__ == "__main__":
    unittest.main()
