"""Integration tests of presencectl (src/ctl): the real CLI binary against the real server
(docs/operations.md, "presencectl"). The CLI runs as an asyncio subprocess, so WebSocket clients
of the same test keep being served while it runs."""
import asyncio
import json
import os
import re
import socket
import tempfile
import unittest

from harness import Client, Server, TIMEOUT, wait_until
from test_server import ServerTest, unique

CTL = os.environ.get("PRESENCECTL_BIN", "build/asan/src/ctl/presencectl")


def clean_env(**extra):
    """The test's environment without settings that would change what presencectl talks to."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PRESENCED_URL", "PRESENCED_API_KEY", "NO_COLOR")}
    env.update(extra)
    return env


class CtlTest(ServerTest):
    settings = {}  # the server's defaults

    def argv(self, args, key=True, url=None, server=None):
        server = server or self.server
        argv = [CTL, "--url", url or "http://127.0.0.1:%d" % server.port]
        if key:
            argv += ["--api-key", server.api_key if key is True else key]
        return argv + list(args)

    async def ctl(self, *args, key=True, url=None, env=None):
        """Runs presencectl to the end; returns (exit code, stdout, stderr)."""
        proc = await asyncio.create_subprocess_exec(
            *self.argv(args, key, url), stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=env or clean_env())
        out, err = await asyncio.wait_for(proc.communicate(), TIMEOUT)
        return proc.returncode, out.decode(), err.decode()

    async def ok(self, *args, **kw):
        """Runs presencectl, asserts exit 0 and returns stdout."""
        code, out, err = await self.ctl(*args, **kw)
        self.assertEqual(code, 0, "presencectl %s\nstdout: %s\nstderr: %s" % (args, out, err))
        return out

    async def ok_json(self, *args, **kw):
        return json.loads(await self.ok("--json", *args, **kw))


class QueryTest(CtlTest):
    async def test_presence_occupancy_channels_and_history(self):
        ch = unique()
        alice, bob = unique("alice"), unique("bob")
        a = await self.connect(alice)
        b = await self.connect(bob)
        await a.ok("enter", channel=ch, data={"x": 1})
        await b.ok("enter", channel=ch)

        out = await self.ok("presence", ch)
        self.assertEqual(out.split()[0], "CLIENT")
        self.assertIn(alice, out)
        self.assertIn(a.connected["connectionId"], out)
        self.assertIn('{"x":1}', out)
        body = await self.ok_json("presence", ch)
        self.assertEqual(sorted(m["clientId"] for m in body["members"]), sorted([alice, bob]))
        self.assertEqual(body["epoch"], self.server.epoch)

        self.assertEqual(await self.ok_json("occupancy", ch), {"members": 2, "clients": 2})
        out = await self.ok("occupancy", ch)
        self.assertEqual(out.splitlines()[1].split(), [ch, "2", "2"])

        body = await self.ok_json("channels")
        self.assertIn({"channel": ch, "members": 2, "clients": 2}, body["channels"])
        out = await self.ok("channels")
        self.assertIn([ch, "2", "2"], [line.split() for line in out.splitlines()])

        await a.ok("update", channel=ch, data={"x": 2})
        await a.ok("leave", channel=ch)
        body = await self.ok_json("history", ch, "--direction", "forwards")
        mine = [e for e in body["events"] if e["member"]["clientId"] == alice]
        self.assertEqual([e["action"] for e in mine], ["enter", "update", "leave"])
        body = await self.ok_json("history", ch, "--limit", "1")
        self.assertEqual(len(body["events"]), 1)
        self.assertEqual(body["events"][0]["action"], "leave")  # backwards is the default
        code, out, err = await self.ctl("history", ch, "--limit", "1")
        self.assertEqual((code, len(out.splitlines())), (0, 2))  # header and the leave
        cursor = err.split("more: --cursor ")[1].split()[0]
        body = await self.ok_json("history", ch, "--limit", "1", "--cursor", cursor)
        self.assertEqual(body["events"][0]["action"], "update")
        out = await self.ok("history", ch)
        self.assertEqual(out.split()[0], "TIME")
        self.assertIn("leave (left)", out)
        self.assertIn("update", out)

    async def test_who_devices_and_activity(self):
        uid, ch = unique("eve"), unique()
        laptop = await self.connect(uid, device="laptop")
        phone = await self.connect(uid, device="phone")
        await laptop.ok("enter", channel=ch)
        await phone.ok("activity", kind="message", channel=ch, data={"n": 1})
        await phone.ok("status.set", status="dnd", text="Focus")

        out = await self.ok("who")
        row = [line.split() for line in out.splitlines() if line.startswith(uid)]
        self.assertEqual(row[0][:4], [uid, "dnd", "Focus", "phone"])
        body = await self.ok_json("who", "--channel", ch)
        self.assertEqual([u["clientId"] for u in body["users"]], [uid])
        body = await self.ok_json("who", "--channel", unique())
        self.assertEqual(body["users"], [])

        body = await self.ok_json("devices", uid)
        self.assertEqual(sorted(d["device"] for d in body["devices"]), ["laptop", "phone"])
        out = await self.ok("devices", uid)
        self.assertIn(laptop.connected["connectionId"], out)
        self.assertIn("phone", out)

        body = await self.ok_json("activity", uid, "--limit", "5")
        self.assertEqual(body["activities"][0]["kind"], "message")
        self.assertEqual(body["activities"][0]["channel"], ch)
        out = await self.ok("activity", uid)
        self.assertIn("message", out)
        self.assertIn('{"n":1}', out)

    async def test_names_are_encoded_and_output_is_escaped(self):
        ch = "room/a b?#%" + unique("")
        uid = unique("mallory")
        m = await self.connect(uid)
        await m.ok("enter", channel=ch, data="\x1b[2J")
        body = await self.ok_json("presence", ch)
        self.assertEqual(body["members"][0]["clientId"], uid)
        out = await self.ok("presence", ch)
        self.assertNotIn("\x1b", out)  # JSON escapes it; the table never prints a raw escape

    async def test_nothing_to_show_prints_nothing_on_stdout(self):
        code, out, err = await self.ctl("presence", unique())
        self.assertEqual((code, out), (0, ""))
        self.assertIn("no members", err)

    async def test_url_and_key_from_environment_or_file(self):
        env = clean_env(PRESENCED_URL="http://127.0.0.1:%d" % self.server.port,
                        PRESENCED_API_KEY=self.server.api_key)
        proc = await asyncio.create_subprocess_exec(CTL, "--json", "occupancy", "x",
                                                    stdout=asyncio.subprocess.PIPE, env=env)
        out, _ = await asyncio.wait_for(proc.communicate(), TIMEOUT)
        self.assertEqual((proc.returncode, json.loads(out)), (0, {"members": 0, "clients": 0}))
        with tempfile.NamedTemporaryFile("w", suffix=".key") as f:
            f.write(self.server.api_key + "\n")
            f.flush()
            body = await self.ok_json("--api-key-file", f.name, "occupancy", "x", key=False)
            self.assertEqual(body, {"members": 0, "clients": 0})


class ActionTest(CtlTest):
    async def test_status_set_and_get(self):
        uid, other = unique("rest"), unique("nobody")
        await self.connect(uid)  # a user with no connection is shown offline, whatever was set
        out = await self.ok("status", "set", uid, "dnd", "--text", "In a meeting")
        self.assertEqual(out.splitlines()[1].split()[:2], [uid, "dnd"])
        self.assertIn("In a meeting", out)
        _, body = self.server.http("GET", "/v1/users/%s/status" % uid)
        self.assertEqual(body["text"], "In a meeting")

        out = await self.ok("--json", "status", "get", uid, other)
        first, second = [json.loads(line) for line in out.splitlines()]
        self.assertEqual((first["clientId"], first["status"], first["text"]),
                         (uid, "dnd", "In a meeting"))
        self.assertEqual(second, {"clientId": other, "status": "offline", "text": None,
                                  "lastSeen": None, "activeDevice": None})
        out = await self.ok("status", "get", uid, other)
        self.assertEqual([line.split()[0] for line in out.splitlines()], ["CLIENT", uid, other])
        self.assertIn("never", out)

        body = await self.ok_json("status", "set", uid, "away", "--clear-text")
        self.assertIsNone(body["text"])
        body = await self.ok_json("status", "set", uid, "online", "--text", "back")
        self.assertEqual(body["text"], "back")
        body = await self.ok_json("status", "set", uid, "dnd")  # text untouched
        self.assertEqual(body["text"], "back")

    async def test_minted_token_connects_a_websocket(self):
        uid = unique("tok")
        token = (await self.ok("token", uid, "--channels", "room-*", "--ttl-ms", "60000")).strip()
        c = await self.connect(None, token=token)
        self.assertEqual(c.connected["clientId"], uid)
        await c.ok("enter", channel="room-1")
        r = await c.request("enter", channel="lobby")
        self.assertEqual(r["error"]["code"], "forbidden")
        body = await self.ok_json("token", uid)
        self.assertTrue(body["token"])
        self.assertIsInstance(body["expiresAt"], int)

    async def test_agent_sessions_list_get_start_stop(self):
        conv = unique("conv")
        self.assertEqual((await self.ctl("sessions", "list"))[1], "")  # nothing on stdout
        body = await self.ok_json("sessions", "start", conv, "--request", '{"prompt":"hi"}',
                                  "--inactivity-ms", "60000")
        self.assertEqual((body["conversationId"], body["state"], body["inactivityTimeoutMs"]),
                         (conv, "starting", 60000))
        out = await self.ok("sessions", "list")
        self.assertEqual(out.splitlines()[0].split()[:3], ["CONVERSATION", "AGENT", "STATE"])
        self.assertEqual(out.splitlines()[1].split()[:4], [conv, "agent-" + conv, "starting", "-"])
        body = await self.ok_json("sessions", "get", conv)
        self.assertEqual(body["agentId"], "agent-" + conv)
        out = await self.ok("sessions", "stop", conv)
        self.assertIn("stopped", out)
        code, _, err = await self.ctl("sessions", "get", conv)
        self.assertEqual(code, 1)
        self.assertIn("not_found", err)
        code, _, err = await self.ctl("sessions", "start", conv, "--request", "{nope")
        self.assertEqual(code, 2)

    async def test_chat_command(self):
        uid = unique("cmd")
        out = await self.ok("command", "/presence help", "--as", uid)
        self.assertIn("/presence", out)
        body = await self.ok_json("command", "/presence help", "--as", uid)
        self.assertIsInstance(body["text"], str)
        self.assertIn("data", body)


class ExitCodeTest(CtlTest):
    async def test_wrong_or_missing_key_is_4(self):
        code, out, err = await self.ctl("channels", key="wrong-key")
        self.assertEqual((code, out), (4, ""))
        self.assertTrue(err.startswith("error: unauthorized: "), err)
        code, _, err = await self.ctl("who", key=False)
        self.assertEqual(code, 4)
        self.assertIn("PRESENCED_API_KEY", err)

    async def test_nothing_listening_is_3(self):
        # A bound socket that does not listen: connecting to it is refused, and no other test can
        # take the port meanwhile.
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        url = "http://127.0.0.1:%d" % s.getsockname()[1]
        try:
            for args in (["channels"], ["--json", "who"], ["watch", "--channel", "c"]):
                code, out, err = await self.ctl(*args, url=url)
                self.assertEqual((code, out), (3, ""), args)
                self.assertTrue(err.startswith("error: cannot connect to " + url), err)
        finally:
            s.close()

    async def test_server_error_is_1(self):
        code, out, err = await self.ctl("status", "set", unique("u"), "zzz")
        self.assertEqual((code, out), (1, ""))
        self.assertTrue(err.startswith("error: bad_request: "), err)
        code, _, err = await self.ctl("--json", "token", "u", "--ttl-ms", "1")
        self.assertEqual(code, 1)
        self.assertIn("bad_request", err)
        code, _, err = await self.ctl("presence", "c" * 300)
        self.assertEqual(code, 1)
        self.assertTrue(err.startswith("error: too_large: "), err)

    async def test_usage_errors_are_2(self):
        for args in ([], ["nope"], ["history"], ["history", "c", "--direction", "sideways"],
                     ["activity", "u", "--limit", "0"], ["status"], ["status", "set", "u"],
                     ["status", "set", "u", "dnd", "--text", "x", "--clear-text"],
                     ["command", "/presence help"], ["watch"], ["--url", "ftp://x", "channels"],
                     ["--api-key", "k", "--api-key-file", "/etc/hostname", "who"]):
            code, out, _ = await self.ctl(*args, key=False)
            self.assertEqual((code, out), (2, ""), args)

    async def test_an_unknown_subcommand_gets_a_suggestion(self):
        code, out, err = await self.ctl("wh0", key=False)
        self.assertEqual((code, out), (2, ""))
        self.assertIn("unknown subcommand wh0 (did you mean who?)", err)
        code, _, err = await self.ctl("--json", "zzzzzzzz", key=False)
        self.assertEqual(code, 2)
        self.assertIn("unknown subcommand zzzzzzzz", err)
        self.assertNotIn("did you mean", err)

    async def test_version_names_the_commit_and_build(self):
        code, out, _ = await self.ctl("--version", key=False)
        self.assertEqual(code, 0)
        self.assertRegex(out, r"^presencectl \d+\.\d+\.\d+ \(commit \w+, \w+ build\)")

    async def test_help_lists_the_exit_codes(self):
        code, out, _ = await self.ctl("--help", key=False)
        self.assertEqual(code, 0)
        self.assertIn("Exit codes", out)
        for line in ("0  ok", "1  the server replied with an error", "2  usage error",
                     "3  cannot connect", "4  unauthorized"):
            self.assertIn(line, out)


class WatchTest(CtlTest):
    async def start_watch(self, *args, server=None):
        """Starts `presencectl watch ARGS` and returns it once its subscriptions are confirmed."""
        proc = await asyncio.create_subprocess_exec(
            *self.argv(["watch"] + list(args), server=server), stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=clean_env())
        self.addCleanup(lambda: proc.returncode is None and proc.kill())
        while True:
            line = (await asyncio.wait_for(proc.stderr.readline(), TIMEOUT)).decode()
            if not line:
                await proc.wait()
                self.fail("watch ended (%s) before it was ready" % proc.returncode)
            if line.startswith("watching "):
                return proc

    async def finish(self, proc):
        """Waits for the watch to exit; returns (exit code, stdout lines)."""
        out, err = await asyncio.wait_for(proc.communicate(), TIMEOUT)
        return proc.returncode, out.decode().splitlines(), err.decode()

    async def test_json_lines_for_an_enter_and_a_leave(self):
        ch, uid = unique(), unique("walker")
        proc = await self.start_watch("--channel", ch, "--count", "2", "--json")
        c = await Client.connect(self.server, uid)
        await c.ok("enter", channel=ch, data={"x": 1})
        await c.close()
        code, lines, err = await self.finish(proc)
        self.assertEqual(code, 0, err)
        events = [json.loads(line) for line in lines]
        self.assertEqual([(e["type"], e["action"]) for e in events],
                         [("presence", "enter"), ("presence", "leave")])
        self.assertEqual(events[0]["member"]["data"], {"x": 1})
        self.assertEqual(events[1]["reason"], "disconnected")
        self.assertTrue(all(e["channel"] == ch and e["member"]["clientId"] == uid for e in events))

    async def test_human_lines_for_status_and_presence(self):
        ch, uid = unique(), unique("bob")
        proc = await self.start_watch("--channel", ch, "--user", uid, "--count", "2", "--no-color")
        c = await self.connect(uid)  # coming online is a status push
        await c.ok("enter", channel=ch, data={"x": 1})
        code, lines, err = await self.finish(proc)
        self.assertEqual(code, 0, err)
        # The server may deliver the status push after the enter event: compare as a set.
        self.assertEqual(len(lines), 2, lines)
        status = r"^\d\d:\d\d:\d\d\.\d{3} status %s online \(was offline\)$" % uid
        enter = r"^\d\d:\d\d:\d\d\.\d{3} enter  %s  %s \(conn %s\) \{\"x\":1\}$" % (
            ch, uid, c.connected["connectionId"])
        self.assertEqual(sorted(bool(re.match(status, line)) for line in lines), [False, True], lines)
        self.assertEqual(sorted(bool(re.match(enter, line)) for line in lines), [False, True], lines)

    async def test_sigterm_closes_cleanly_and_exits_0(self):
        watcher = unique("ops")
        proc = await self.start_watch("--channel", unique(), "--as", watcher)
        _, body = self.server.http("GET", "/v1/users/%s/status" % watcher)
        self.assertEqual(body["status"], "online")
        proc.terminate()
        code, lines, err = await self.finish(proc)
        self.assertEqual((code, lines), (0, []), err)
        # A clean close, not an abrupt drop (which would keep it online for the grace period, 15 s
        # by default, longer than wait_until's bound).
        wait_until(lambda: self.server.http("GET", "/v1/users/%s/status" % watcher)[1]["status"]
                   == "offline")

    async def test_by_default_the_watcher_is_an_observer_nobody_sees(self):
        ch = unique()
        proc = await self.start_watch("--channel", ch, "--count", "1", "--json")
        _, who = self.server.http("GET", "/v1/who")
        self.assertEqual([u["clientId"] for u in who["users"]], [])
        _, metrics = self.server.http("GET", "/metrics", key=False)
        self.assertIn("\npresenced_users 0\n", metrics)
        self.assertIn("\npresenced_connections 1\n", metrics)
        c = await Client.connect(self.server, unique("walker"))
        await c.ok("enter", channel=ch)
        code, lines, err = await self.finish(proc)
        self.assertEqual(code, 0, err)
        _, occupancy = self.server.http("GET", "/v1/channels/%s/occupancy" % ch)
        self.assertEqual(occupancy, {"members": 1, "clients": 1})
        await c.close()

    async def test_server_shutdown_ends_the_watch_with_3(self):
        server = Server()
        self.addCleanup(server.kill)
        proc = await self.start_watch("--user", "bob", server=server)
        self.assertEqual(server.terminate(), 0)
        code, lines, err = await self.finish(proc)
        self.assertEqual((code, lines), (3, []), err)
        self.assertTrue(err.startswith("error: the server closed the connection (1001"), err)

    async def test_refused_subscription_is_1(self):
        code, _, err = await self.ctl("watch", "--channel", "c" * 300, "--count", "1")
        self.assertEqual(code, 1, err)
        self.assertIn("too_large", err)


if __name__ == "__main__":
    unittest.main()
