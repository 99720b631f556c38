"""Regression tests for what a robustness probe found, tried as an attacker holding a valid token
would: each test failed (or crashed the server) before its fix. Wire-level (RFC 6455) findings are
in test_wire.py."""
import json
import os
import signal
import socket
import subprocess
import tempfile
import unittest

from harness import BINARY, Server, TIMEOUT, make_token, read_head, run_failing
from test_server import ServerTest, unique


def http_status(server, path, token=None):
    """The status line's code of a raw GET (for targets urllib would re-encode)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as s:
        head = "GET %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n" % (path, server.api_key)
        if token is not None:
            head += ("Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n")
        else:
            head += "Connection: close\r\n"
        s.sendall((head + "\r\n").encode())
        data = read_head(s)
        return int(data.split(b" ", 2)[1]), data


class ProbeTest(ServerTest):
    async def raw_request(self, client, text, rid):
        await client.send_raw(text)
        return await client.next("reply", where=lambda f: f.get("id") == rid)

    async def test_device_that_is_not_utf8_is_refused_at_the_upgrade(self):
        # It used to be accepted, and `/presence` by that user then aborted the process.
        token = self.server.token(unique("dev"))
        status, _ = http_status(self.server, "/v1/ws?token=%s&device=%%FF" % token, token=token)
        self.assertEqual(status, 400)
        status, _ = http_status(self.server, "/v1/ws?token=%s&device=ok%%C3%%A9" % token, token=token)
        self.assertEqual(status, 101)  # percent-encoded valid UTF-8 is fine
        me = unique("cmd")
        a = await self.connect(me, device="caf%C3%A9")
        r = await a.ok("command", text="/presence")
        self.assertIn("active on café", r["text"])
        status, body = self.server.http("POST", "/v1/commands", {"clientId": me, "text": "/presence"})
        self.assertEqual(status, 200)
        self.assertEqual(body["data"]["activeDevice"], "café")

    async def test_rest_paths_and_queries_must_be_utf8(self):
        for path in ("/v1/users/%FF/status", "/v1/channels/%FF/presence", "/v1/users/%C0%AF/devices",
                     "/v1/who?channel=%ED%A0%80", "/v1/channels/a/presence?clientId=%FF"):
            status, body = self.server.http("GET", path)
            self.assertEqual(status, 400, path)
            self.assertEqual(body["error"]["code"], "bad_request", path)
        status, body = self.server.http("GET", "/v1/users/%C3%A9/status")
        self.assertEqual((status, body["clientId"]), (200, "é"))

    async def test_chat_commands_are_checked_like_the_ops_they_stand_for(self):
        secret = unique("secret-hr")
        victim = await self.connect(unique("victim"))
        await victim.ok("enter", channel=secret)
        spy = await self.connect(unique("spy"), channels=["public-*"])
        r = await spy.request("who", channel=secret)
        self.assertEqual(r["error"]["code"], "forbidden")
        r = await spy.ok("command", text="/presence who %s" % secret)
        self.assertEqual(r["data"]["error"]["code"], "forbidden")
        self.assertNotIn(victim.connected["clientId"], json.dumps(r))
        # Within its patterns the command still answers.
        public = unique("public")
        await spy.ok("enter", channel=public)
        r = await spy.ok("command", text="/presence who %s" % public)
        self.assertEqual([u["clientId"] for u in r["data"]["users"]], [spy.connected["clientId"]])
        # `/presence activity` is activity.get for oneself: only what the token may see.
        me = unique("two-tokens")
        wide = await self.connect(me)
        await wide.ok("activity", kind="typing", channel=secret)
        await wide.ok("activity", kind="message", channel=public)
        narrow = await self.connect(me, channels=["public-*"])
        r = await narrow.ok("command", text="/presence activity")
        self.assertEqual([a["kind"] for a in r["data"]["activities"]], ["message"])
        self.assertNotIn(secret, r["text"])

    async def test_activity_of_others_is_filtered_by_patterns_and_hidden_while_offline(self):
        me = unique("actor")
        victim = await self.connect(me)
        secret, public = unique("secret"), unique("public")
        await victim.ok("activity", kind="typing", channel=secret, data={"draft": "raise"})
        await victim.ok("activity", kind="message", channel=public)
        await victim.ok("activity", kind="login")
        spy = await self.connect(unique("spy"), channels=["public-*"])
        got = await spy.ok("activity.get", clientId=me)
        self.assertEqual(sorted(a["kind"] for a in got["activities"]), ["login", "message"])
        self.assertNotIn("raise", json.dumps(got))
        own = await victim.ok("activity.get")
        self.assertEqual(len(own["activities"]), 3)
        await victim.ok("status.set", status="offline")
        got = await spy.ok("activity.get", clientId=me)
        self.assertEqual(got["activities"], [])
        everyone = await self.connect(unique("admin"))
        got = await everyone.ok("activity.get", clientId=me)
        self.assertEqual(got["activities"], [])  # hidden from every other user, not just the spy
        own = await victim.ok("activity.get")
        self.assertEqual(len(own["activities"]), 3)  # but not from themselves
        # After they disconnect (the engine forgets them later), the store says so too.
        await victim.close()
        got = await spy.ok("activity.get", clientId=me)
        self.assertEqual(got["activities"], [])

    async def test_numbers_that_are_not_finite_doubles_are_refused(self):
        a = await self.connect()
        ch = unique()
        r = await self.raw_request(a, '{"op":"enter","id":7,"channel":"%s","data":{"n":1e400}}' % ch, 7)
        self.assertEqual(r["error"]["code"], "bad_request")
        big = "9" * 5000
        r = await self.raw_request(a, '{"op":"enter","id":8,"channel":"%s","data":[%s]}' % (ch, big), 8)
        self.assertEqual(r["error"]["code"], "bad_request")
        r = await self.raw_request(a, '{"op":"enter","id":9,"channel":"%s","data":-1e400}' % ch, 9)
        self.assertEqual(r["error"]["code"], "bad_request")
        status, _ = self.server.http("PUT", "/v1/users/x/status", raw_body=b'{"status":"away","n":1e999}')
        self.assertEqual(status, 400)
        r = await self.raw_request(a, '{"op":"enter","id":10,"channel":"%s","data":{"n":1e300}}' % ch, 10)
        self.assertTrue(r["ok"], r)
        self.assertEqual(r["member"]["data"], {"n": 1e300})

    async def test_merge_keeps_data_nested_to_the_request_depth_limit(self):
        # The merge parsed stored data with a depth of 32 while requests allow 64: deeper data was
        # silently replaced by the patch.
        a = await self.connect()
        ch = unique()
        deep = "leaf"
        for _ in range(50):
            deep = {"d": deep}
        await a.ok("enter", channel=ch, data={"deep": deep, "x": 1})
        r = await a.ok("update", channel=ch, data={"x": 2}, merge=True)
        self.assertEqual(r["member"]["data"], {"deep": deep, "x": 2})
        too_deep = "leaf"
        for _ in range(70):
            too_deep = [too_deep]
        # Too deep to parse: the reply cannot name the id.
        await a.send_raw(json.dumps(dict(op="update", id=99, channel=ch, data=too_deep)))
        r = await a.next("reply")
        self.assertEqual((r["id"], r["error"]["code"]), (None, "bad_request"))

    async def test_names_are_bounded_and_not_empty(self):
        a = await self.connect()
        long_id = "u" * 300  # max_id_bytes is 256
        for op in ("activity.get", "devices"):
            r = await a.request(op, clientId=long_id)
            self.assertEqual(r["error"]["code"], "too_large", op)
        for route in ("status", "devices", "activity"):
            status, body = self.server.http("GET", "/v1/users/%s/%s" % (long_id, route))
            self.assertEqual(status, 413, route)
        for op in ("history", "occupancy", "get", "subscribe", "who"):
            r = await a.request(op, channel="")
            self.assertEqual(r["error"]["code"], "bad_request", op)
            r = await a.request(op, channel="c" * 300)  # max_channel_bytes is 256
            self.assertEqual(r["error"]["code"], "too_large", op)
        status, _ = self.server.http("GET", "/v1/channels/%s/history" % ("c" * 300))
        self.assertEqual(status, 413)
        status, _ = self.server.http("GET", "/v1/who?channel=")
        self.assertEqual(status, 400)

    async def test_watching_one_user_many_times_is_one_watch(self):
        a = await self.connect()
        target = unique("w")
        r = await a.ok("status.watch", clientIds=[target] * 4000)
        self.assertEqual([s["clientId"] for s in r["statuses"]], [target])
        b = await self.connect(target)
        push = await a.next("status", where=lambda f: f["clientId"] == target)
        self.assertEqual(push["status"], "online")
        await b.close()


class TokenTest(ServerTest):
    def upgrade_status(self, token):
        return http_status(self.server, "/v1/ws?token=%s" % token, token=token)[0]

    def test_algorithm_names_are_exact(self):
        claims = {"sub": unique("t"), "exp": 4102444800}
        self.assertEqual(self.upgrade_status(make_token(self.server.secret, claims)), 101)
        self.assertEqual(self.upgrade_status(make_token(self.server.secret, claims, alg="hs256")), 401)

    def test_not_before_and_huge_expiry(self):
        self.assertEqual(self.upgrade_status(make_token(
            self.server.secret, {"sub": unique("t"), "exp": 4102444800, "nbf": 4102444000})), 401)
        self.assertEqual(self.upgrade_status(make_token(
            self.server.secret, {"sub": unique("t"), "exp": 1e300})), 101)

    def test_standard_base64_signatures_are_refused(self):
        for i in range(200):
            token = make_token(self.server.secret, {"sub": "b64-%d" % i, "exp": 4102444800})
            sig = token.rsplit(".", 1)[1]
            if "-" in sig or "_" in sig:
                break
        self.assertEqual(self.upgrade_status(token), 101)
        head, sig = token.rsplit(".", 1)
        std = head + "." + sig.replace("-", "+").replace("_", "/")
        self.assertEqual(self.upgrade_status(std), 401)


class TokenToolTest(unittest.TestCase):
    """`presenced token` uses the secret the server would, and never makes a new one."""

    def run_token(self, *args, env=None):
        e = {k: v for k, v in os.environ.items() if not k.startswith("PRESENCED_")}
        e.update(env or {})
        return subprocess.run([BINARY, "token", "alice", *args], capture_output=True, text=True,
                              env=e, timeout=TIMEOUT)

    def test_without_a_secret_it_exits_2_and_creates_nothing(self):
        parent = tempfile.mkdtemp(prefix="presenced-token-")
        missing = os.path.join(parent, "nothing-here")
        p = self.run_token("--data-dir", missing)
        self.assertEqual(p.returncode, 2)
        self.assertIn("no token secret in " + missing, p.stderr)
        self.assertIn("--data-dir / --jwt-secret", p.stderr)
        self.assertFalse(os.path.exists(missing))
        self.assertEqual(p.stdout, "")

    def test_help_shows_types_units_ranges_and_defaults(self):
        p = subprocess.run([BINARY, "--help"], capture_output=True, text=True, timeout=TIMEOUT)
        self.assertEqual(p.returncode, 0)
        lines = {l.split()[0]: l for l in p.stdout.splitlines() if l.strip().startswith("--")}
        self.assertIn("--heartbeat-ms MS", lines["--heartbeat-ms"])
        self.assertIn("(milliseconds, 10 to 3600000; default 15000)", lines["--heartbeat-ms"])
        self.assertIn("BYTES", lines["--max-frame-bytes"])
        self.assertIn("default 65536", lines["--max-frame-bytes"])
        self.assertIn("default 127.0.0.1:7070", lines["--listen"])
        self.assertIn("NUMBER", lines["--rate-per-second"])
        self.assertNotIn(" TEXT ", lines["--io-threads"])

    def test_usage_errors_exit_2_and_version_exits_0(self):
        p = subprocess.run([BINARY, "--version"], capture_output=True, text=True, timeout=TIMEOUT)
        self.assertEqual(p.returncode, 0)
        self.assertRegex(p.stdout, r"^presenced \d+\.\d+\.\d+ \(commit \w+, \w+ build\)")
        p = subprocess.run([BINARY, "--no-such-flag"], capture_output=True, text=True,
                           timeout=TIMEOUT)
        self.assertEqual(p.returncode, 2)
        p = self.run_token("--ttl-ms", "0")
        self.assertEqual(p.returncode, 2)
        self.assertIn("1000 to 2592000000", p.stderr)
        self.assertLess(len(p.stderr), 300)  # a range, not 300 digits

    def test_it_says_where_the_secret_came_from_and_the_server_accepts_the_token(self):
        server = Server()
        try:
            p = self.run_token("--data-dir", server.data_dir)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIn("token secret from " + os.path.join(server.data_dir, "jwt-secret"),
                          p.stderr)
            status = http_status(server, "/v1/ws?token=" + p.stdout.strip(), token=p.stdout.strip())[0]
            self.assertEqual(status, 101)
            p = self.run_token(env={"PRESENCED_JWT_SECRET": server.secret})
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIn("token secret from PRESENCED_JWT_SECRET", p.stderr)
        finally:
            server.kill()


class LogTest(unittest.IsolatedAsyncioTestCase):
    """What an operator reads: refused upgrades at info, connects and disconnects at debug."""

    async def test_refused_upgrades_at_info_and_connects_at_debug(self):
        from harness import Client
        server = Server(log_level="debug")
        try:
            status = http_status(server, "/v1/ws?token=bad.token.here", token="bad.token.here")[0]
            self.assertEqual(status, 401)
            c = await Client.connect(server, "alice", device="laptop")
            await c.close()
            server.proc.send_signal(signal.SIGTERM)
            _, log = server.proc.communicate(timeout=TIMEOUT)
        finally:
            if server.proc.poll() is None:
                server.proc.kill()
        self.assertRegex(log, r"level=info event=upgrade_refused remote=127\.0\.0\.1:\d+ "
                              r"code=unauthorized reason=\"[^\"]+\"")
        self.assertRegex(log, r"level=debug event=connect session=\d+ client=alice device=laptop")
        self.assertRegex(log, r"level=debug event=connected session=\d+ who=alice/\w+")
        self.assertRegex(log, r"level=debug event=disconnected session=\d+ who=alice/\w+")


class SettingBoundsTest(unittest.TestCase):
    def test_out_of_range_settings_exit_2_with_a_message(self):
        for key in ("heartbeat_ms", "handshake_timeout_ms", "away_after_ms", "offline_after_ms"):
            code, err = run_failing(tempfile.mkdtemp(prefix="presenced-bounds-"),
                                    **{key: "9223372036854775807"})
            self.assertEqual(code, 2, key)
            self.assertIn(key, err)


if __name__ == "__main__":
    unittest.main()
