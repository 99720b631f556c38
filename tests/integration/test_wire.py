"""Integration tests of the wire itself: RFC 6455 framing, UTF-8, close handshake, opening
handshake, HTTP errors, the connection cap and outbound bounds, against the real binary over raw
sockets (docs/protocol.md, "Connecting" and "Close codes").

Every wait ends on a condition (a frame, EOF, a status) with a deadline; nothing sleeps.
"""
import asyncio
import json
import os
import select
import socket
import struct
import time
import unittest
import uuid

from harness import TIMEOUT, read_head, wait_until
from test_server import ServerTest


def unique(prefix="ch"):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:8])


def frame(payload, opcode=1, fin=True, rsv=0, mask=None, length_form=None):
    """A client frame. `mask` None = random; `length_form` forces the 16- or 64-bit length."""
    if isinstance(payload, str):
        payload = payload.encode()
    n = len(payload)
    head = bytes([(0x80 if fin else 0) | rsv | opcode])
    form = length_form or (7 if n < 126 else 16 if n < 65536 else 64)
    if form == 7:
        head += bytes([0x80 | n])
    elif form == 16:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    key = os.urandom(4) if mask is None else mask
    if key == b"\0\0\0\0":
        return head + key + payload
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def close_frame(code=None, reason=b""):
    return frame((b"" if code is None else struct.pack("!H", code)) + reason, opcode=8)


class Wire:
    """A raw WebSocket client socket with a fast frame parser (it may read hundreds of thousands
    of frames). Nothing is sent or read unless the test says so."""

    def __init__(self, server, token=None, rcvbuf=None, handshake=None, **params):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)  # before connecting
        self.sock.settimeout(TIMEOUT)
        self.sock.connect(("127.0.0.1", server.port))
        self.buf = bytearray()
        self.pos = 0
        if handshake is None:
            token = token or server.token(unique("wire"))
            q = "token=" + token + "".join("&%s=%s" % kv for kv in params.items())
            handshake = ("GET /v1/ws?%s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                         "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                         "Sec-WebSocket-Version: 13\r\n\r\n" % q).encode()
            self.sock.sendall(handshake)
            status = self.read_head().split(b"\r\n")[0]
            assert status.startswith(b"HTTP/1.1 101"), status
            opcode, payload = self.read_frame()
            self.connected = json.loads(payload)
            assert self.connected["type"] == "connected", self.connected

    def _fill(self):
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise EOFError("closed")
        if self.pos > (1 << 20):
            del self.buf[:self.pos]
            self.pos = 0
        self.buf += chunk

    def _need(self, n):
        while len(self.buf) - self.pos < n:
            self._fill()

    def read_head(self):
        while self.buf.find(b"\r\n\r\n", self.pos) < 0:
            self._fill()
        end = self.buf.find(b"\r\n\r\n", self.pos)
        head = bytes(self.buf[self.pos:end])
        self.pos = end + 4
        return head

    def read_frame(self):
        """(opcode, payload) of the next server frame; EOFError when the socket closed first."""
        self._need(2)
        b0, b1 = self.buf[self.pos], self.buf[self.pos + 1]
        assert b1 & 0x80 == 0, "server frames are not masked"
        n, off = b1 & 0x7F, 2
        if n == 126:
            self._need(4)
            n, off = struct.unpack_from("!H", self.buf, self.pos + 2)[0], 4
        elif n == 127:
            self._need(10)
            n, off = struct.unpack_from("!Q", self.buf, self.pos + 2)[0], 10
        self._need(off + n)
        payload = bytes(self.buf[self.pos + off:self.pos + off + n])
        self.pos += off + n
        return b0 & 0x0F, payload

    def read_until(self, opcodes):
        """Frames up to and including the first whose opcode is in `opcodes`."""
        frames = []
        while True:
            f = self.read_frame()
            frames.append(f)
            if f[0] in opcodes:
                return frames

    def close_code(self):
        """The status code of the next close frame (data frames before it are skipped)."""
        opcode, payload = self.read_until({8})[-1]
        return struct.unpack("!H", payload[:2])[0] if payload else None

    def read_eof(self):
        """True when the server closes the TCP connection (after any bytes still coming)."""
        try:
            while True:
                if not self.sock.recv(1 << 16):
                    return True
        except ConnectionResetError:
            return False

    def send(self, data):
        self.sock.sendall(data)

    def request(self, op, rid, **fields):
        self.send(frame(json.dumps(dict(op=op, id=rid, **fields))))
        while True:
            opcode, payload = self.read_frame()
            if opcode == 1:
                msg = json.loads(payload)
                if msg.get("type") == "reply" and msg.get("id") == rid:
                    return msg

    def close(self):
        self.sock.close()


def exchange(port, data, shut_write=False):
    """Sends raw bytes to the server and returns everything it answers until it closes."""
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(TIMEOUT)
    try:
        if data:
            s.sendall(data)
        if shut_write:
            s.shutdown(socket.SHUT_WR)
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return out
            out += chunk
    finally:
        s.close()


def parse_response(raw):
    """(status, {lower-case header: value}, body parsed as JSON when it is JSON)."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    if "json" in headers.get("content-type", ""):
        body = json.loads(body)
    return status, headers, body


def off_loop(fn, *args, **kwargs):
    """Runs blocking socket work off the event loop (so websockets clients keep answering)."""
    return asyncio.get_running_loop().run_in_executor(None, lambda: fn(*args, **kwargs))


class WireTest(ServerTest):
    settings = dict(heartbeat_ms=1000, remain_present_for_ms=400, max_remain_present_for_ms=2000,
                    handshake_timeout_ms=2000)

    def wire(self, **kw):
        w = Wire(self.server, **kw)
        self.addCleanup(w.close)
        return w

    def metric(self, name):
        _, text = self.server.http("GET", "/metrics", key=False)
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        raise AssertionError(name + " missing")


# ----- RFC 6455 §8.1: UTF-8 of text messages, §5.6: data types ---------------------------------

class Utf8Test(WireTest):
    def assert_closes_with(self, code, *frames):
        w = self.wire()
        for f in frames:
            w.send(f)
        self.assertEqual(w.close_code(), code)
        self.assertTrue(w.read_eof())

    def test_invalid_utf8_in_a_text_message_closes_with_1007(self):
        # Today's bug: handed to the JSON parser, answered bad_request, connection kept.
        for bad in [b'{"op":"ping","id":1,"x":"\xff"}', b'{"op":"ping","id":1,"x":"\xed\xa0\x80"}',
                    b'{"op":"ping","id":1,"x":"\xc0\xaf"}']:
            self.assert_closes_with(1007, frame(bad))

    def test_invalid_sequence_split_across_fragments_closes_with_1007(self):
        self.assert_closes_with(1007, frame(b'{"op":"ping","id":1,"x":"\xe2', fin=False),
                                frame(b'("}', opcode=0))

    def test_sequence_truncated_at_the_end_of_the_message_closes_with_1007(self):
        self.assert_closes_with(1007, frame(b'{"op":"ping","id":1}\xe2\x82', fin=False),
                                frame(b"", opcode=0))

    def test_valid_sequence_split_across_fragments_with_a_ping_between_is_one_message(self):
        w = self.wire()
        w.send(frame(b'{"op":"ping","id":7,"x":"\xe2', fin=False) + frame(b"p", opcode=9) +
               frame(b"\x82", opcode=0, fin=False) + frame(b'\xac"}', opcode=0))
        frames = w.read_until({1})
        self.assertIn((10, b"p"), frames)  # the ping is answered between the fragments
        self.assertEqual(json.loads(frames[-1][1])["id"], 7)
        self.assertTrue(w.request("ping", 8)["ok"])

    def test_binary_message_is_read_as_a_request(self):
        # The contract closes for no bad frame but an oversize one; the JSON parser checks the
        # UTF-8 of every string in a binary message.
        w = self.wire()
        w.send(frame(b'{"op":"ping","id":5}', opcode=2))
        self.assertTrue(w.request("ping", 6)["ok"])
        w.send(frame(b'{"op":"ping","id":9,"x":"\xff"}', opcode=2))
        self.assertEqual(w.request("ping", 10)["id"], 10)  # still open after a bad_request


# ----- RFC 6455 §5.5.1, §7.4: close frames --------------------------------------------------------

class CloseTest(WireTest):
    def close_reply(self, data):
        w = self.wire()
        w.send(data)
        code = w.close_code()
        self.assertTrue(w.read_eof(), "the server ends the TCP connection after the handshake")
        return code

    def test_codes_a_peer_may_send_are_echoed(self):
        # 1012-1014 are registered (IANA); today they are answered with 1002.
        for code in [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000,
                     3999, 4000, 4999]:
            self.assertEqual(self.close_reply(close_frame(code, b"bye")), code, code)
        self.assertEqual(self.close_reply(close_frame()), 1000)  # no code: answered with 1000

    def test_reserved_and_unassigned_codes_are_a_protocol_error(self):
        for code in [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535]:
            self.assertEqual(self.close_reply(close_frame(code)), 1002, code)
        self.assertEqual(self.close_reply(frame(b"\x03", opcode=8)), 1002)  # 1-byte payload

    def test_reason_that_is_not_utf8_is_answered_with_1007(self):
        # Today: echoed with a normal 1000.
        self.assertEqual(self.close_reply(close_frame(1000, b"\xce\xba\xe1\xbd\xb9\xed\xa0\x80")),
                         1007)
        self.assertEqual(self.close_reply(close_frame(1000, "ciao é".encode())), 1000)

    def test_frames_after_the_close_are_not_answered(self):
        w = self.wire()
        w.send(close_frame(1000) + frame(b"after", opcode=9) +
               frame('{"op":"ping","id":1}'))
        frames = w.read_until({8})
        self.assertNotIn(10, [op for op, _ in frames])
        with self.assertRaises(EOFError):
            w.read_frame()  # nothing after the close frame: no pong, no reply

    async def test_close_from_the_client_leaves_with_disconnected(self):
        ch = unique()
        watcher = await self.connect()
        await watcher.ok("subscribe", channel=ch, actions=["leave"])
        w = self.wire()
        self.assertTrue((await off_loop(w.request, "enter", 1, channel=ch))["ok"])
        w.send(close_frame(4001, b"done"))
        self.assertEqual(await off_loop(w.close_code), 4001)
        self.assertEqual((await watcher.presence(ch))["reason"], "disconnected")


# ----- RFC 6455 §5: framing (Autobahn 1, 2, 3, 4, 5, 9) -------------------------------------------

class FramingTest(WireTest):
    settings = dict(WireTest.settings, max_frame_bytes=4096)

    def test_protocol_violations_close_with_1002(self):
        cases = {
            "reserved bit 1": frame("{}", rsv=0x40),
            "reserved bit 3 on a ping": frame("", opcode=9, rsv=0x10),
            "reserved opcode 3": frame("", opcode=3),
            "reserved opcode 0xB": frame("", opcode=0xB),
            "unmasked": bytes([0x81, 2]) + b"{}",
            "fragmented ping": frame("", opcode=9, fin=False),
            "ping of 126 bytes": frame(b"p" * 126, opcode=9),
            "continuation first": frame("{}", opcode=0),
            "text inside a fragmented text": frame("{", fin=False) + frame("}"),
            # Today accepted: the length must be encoded in the fewest bytes (§5.2).
            "16-bit length for 2 bytes": frame("{}", length_form=16),
            "64-bit length for 200 bytes": frame(b" " * 200, length_form=64),
        }
        for name, data in cases.items():
            w = self.wire()
            w.send(data)
            self.assertEqual(w.close_code(), 1002, name)
            self.assertTrue(w.read_eof(), name)
            w.close()

    def test_message_over_the_limit_closes_with_1009_from_its_header(self):
        w = self.wire()
        # Only the header of a 1 MiB frame: refused before the payload is sent.
        w.send(frame(b"x" * (1 << 20))[:14])
        self.assertEqual(w.close_code(), 1009)
        w = self.wire()
        w.send(frame(b"x" * 3000, fin=False) + frame(b"y" * 3000, opcode=0))
        self.assertEqual(w.close_code(), 1009)

    def test_ping_payloads_are_echoed_and_unsolicited_pongs_ignored(self):
        w = self.wire()
        for payload in [b"", b"a", bytes(range(125)), "ü".encode() * 62]:
            w.send(frame(payload, opcode=9))
            frames = w.read_until({10})
            self.assertEqual(frames[-1], (10, payload))
        w.send(frame(b"unsolicited", opcode=10))
        self.assertTrue(w.request("ping", 1)["ok"])

    def test_messages_in_many_fragments_and_byte_by_byte(self):
        w = self.wire()
        text = json.dumps({"op": "ping", "id": 3, "pad": "é" * 500}, ensure_ascii=False).encode()
        parts = [text[i:i + 7] for i in range(0, len(text), 7)]
        data = b"".join(frame(p, opcode=1 if i == 0 else 0, fin=i == len(parts) - 1)
                        for i, p in enumerate(parts))
        for i in range(len(data)):
            w.send(data[i:i + 1])
        opcode, payload = w.read_until({1})[-1]
        self.assertEqual(json.loads(payload)["id"], 3)


# ----- RFC 6455 §4.2.1, §4.4: the opening handshake ----------------------------------------------

class HandshakeTest(WireTest):
    def upgrade(self, key="dGhlIHNhbXBsZSBub25jZQ==", version="13", method="GET", http="HTTP/1.1",
                host="Host: x\r\n", upgrade="websocket", connection="Upgrade", extra=""):
        token = self.server.token(unique("hs"))
        lines = "%s /v1/ws?token=%s %s\r\n%s" % (method, token, http, host)
        if upgrade is not None:
            lines += "Upgrade: %s\r\n" % upgrade
        if connection is not None:
            lines += "Connection: %s\r\n" % connection
        if key is not None:
            lines += "Sec-WebSocket-Key: %s\r\n" % key
        if version is not None:
            lines += "Sec-WebSocket-Version: %s\r\n" % version
        raw = (lines + extra + "\r\n").encode()
        s = socket.create_connection(("127.0.0.1", self.server.port))
        s.settimeout(TIMEOUT)
        s.sendall(raw)
        data = read_head(s)
        head = data.split(b"\r\n\r\n")[0]
        if head.startswith(b"HTTP/1.1 101"):
            s.close()
            return parse_response(data)
        while True:  # an error: the server closes after the body
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        s.close()
        return parse_response(data)

    def test_a_key_that_is_not_16_bytes_of_base64_is_refused_with_400(self):
        # Today "abc" and the others are upgraded.
        for key in ["abc", "", "dGhlIHNhbXBsZSBub25j", "dGhlIHNhbXBsZSBub25jZSE=",
                    "dGhlIHNhbXBsZSBub25jZR==", "!!!!!!!!!!!!!!!!!!!!!!==", None]:
            status, headers, body = self.upgrade(key=key)
            self.assertEqual(status, 400, key)
            self.assertEqual(body["error"]["code"], "bad_request", key)
        status, _, _ = self.upgrade(extra="Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\n")
        self.assertEqual(status, 400)  # two keys

    def test_a_wrong_or_missing_version_gets_426_with_the_supported_version(self):
        # Today: 400 without Sec-WebSocket-Version.
        for version in ["8", "12", "14", "", None]:
            status, headers, body = self.upgrade(version=version)
            self.assertEqual(status, 426, version)
            self.assertEqual(headers.get("sec-websocket-version"), "13", version)
            self.assertEqual(headers.get("upgrade"), "websocket", version)
            self.assertEqual(body["error"]["code"], "bad_request", version)

    def test_upgrade_and_connection_tokens(self):
        for kw in [dict(upgrade=None), dict(connection=None), dict(upgrade="h2c"),
                   dict(connection="keep-alive"), dict(http="HTTP/1.0")]:
            status, headers, body = self.upgrade(**kw)
            self.assertEqual(status, 426, kw)
            self.assertEqual(headers.get("upgrade"), "websocket", kw)
            self.assertIn("upgrade", headers.get("connection", "").lower(), kw)
        status, headers, _ = self.upgrade(method="POST")
        self.assertEqual((status, headers.get("allow")), (405, "GET"))
        status, _, body = self.upgrade(host="")
        self.assertEqual((status, body["error"]["code"]), (400, "bad_request"))
        # Tokens are case-insensitive and may come in a list (§4.2.1 items 3 and 4).
        status, headers, _ = self.upgrade(upgrade="WebSocket", connection="keep-alive, upgrade")
        self.assertEqual(status, 101)
        self.assertEqual(headers["sec-websocket-accept"], "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")


# ----- HTTP errors -----------------------------------------------------------------------------

class HttpErrorTest(WireTest):
    settings = dict(WireTest.settings, max_http_body_bytes=1024)

    def assert_error(self, raw, status, code, **kw):
        got, headers, body = parse_response(exchange(self.server.port, raw, **kw))
        self.assertEqual(got, status, raw[:60])
        self.assertEqual(body["error"]["code"], code, raw[:60])
        self.assertEqual(headers.get("connection"), "close")
        self.assertIn("content-length", headers)

    def test_malformed_requests_get_400(self):
        # Today: closed without a word.
        for raw in [b"GARBAGE\r\n\r\n", b"GET / HTTX/1.1\r\n\r\n",
                    b"GET /v1/healthz HTTP/1.1\r\nNo colon\r\n\r\n",
                    b"GET /v1/healthz HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
                    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(40)]:  # TLS hello
            self.assert_error(raw, 400, "bad_request")

    def test_header_fields_over_16k_get_431(self):
        raw = b"GET /v1/healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n"
        self.assert_error(raw, 431, "too_large")

    def test_413_arrives_even_when_the_body_was_sent(self):
        # The body is refused from the header alone and never read. Today the socket is closed at
        # once: the unread bytes make the kernel reset the connection, and the client sending its
        # body (more than the socket buffers hold) gets the reset instead of the 413.
        body = b"x" * (16 << 20)
        raw = b"PUT /v1/users/u/status HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body)
        raw += body
        self.assert_error(raw, 413, "too_large")

    def test_truncated_request_then_eof_gets_400(self):
        self.assert_error(b"GET /v1/healthz HTTP/1.1\r\nHo", 400, "bad_request", shut_write=True)

    def test_eof_or_timeout_with_nothing_received_just_closes(self):
        self.assertEqual(exchange(self.server.port, b"", shut_write=True), b"")
        t0 = time.monotonic()
        self.assertEqual(exchange(self.server.port, b""), b"")  # handshake timeout (2 s)
        self.assertLess(time.monotonic() - t0, TIMEOUT / 2)

    def test_a_bad_request_after_a_good_one_on_a_kept_alive_connection(self):
        raw = b"GET /v1/healthz HTTP/1.1\r\nHost: x\r\n\r\nBAD REQUEST LINE\r\n\r\n"
        out = exchange(self.server.port, raw)
        first, second = out.split(b"HTTP/1.1 ")[1:]
        self.assertTrue(first.startswith(b"200"))
        self.assertTrue(second.startswith(b"400"))


# ----- The connection cap and /v1/healthz ---------------------------------------------------------

class ConnectionCapHealthzTest(WireTest):
    settings = dict(WireTest.settings, max_connections=3, handshake_timeout_ms=5000)

    async def test_healthz_reports_the_process_at_the_connection_cap(self):
        clients = [await self.connect() for _ in range(3)]
        # Today: 503, as for any socket over the cap.
        status, body = await off_loop(self.server.http, "GET", "/v1/healthz", None, False)
        self.assertEqual((status, body), (200, {"ok": True}))
        status, body = await off_loop(self.server.http, "GET", "/v1/channels/x/presence")
        self.assertEqual((status, body["error"]["code"]), (503, "limit_exceeded"))
        # A socket that sends nothing is told why within about a second, then closed.
        t0 = time.monotonic()
        status, _, body = parse_response(await off_loop(exchange, self.server.port, b""))
        self.assertEqual((status, body["error"]["code"]), (503, "limit_exceeded"))
        self.assertLess(time.monotonic() - t0, 3)
        for c in clients:
            await c.ok("ping")


class ConnectionCapFloodTest(WireTest):
    settings = dict(WireTest.settings, max_connections=3, handshake_timeout_ms=5000)

    async def test_over_cap_sockets_do_not_accumulate(self):
        clients = [await self.connect() for _ in range(3)]
        socks = []
        try:
            for _ in range(80):  # more than the 32 that may still send a request
                socks.append(socket.create_connection(("127.0.0.1", self.server.port)))

            def all_refused():
                for s in socks:
                    s.settimeout(TIMEOUT)
                    data = b""
                    while True:
                        chunk = s.recv(4096)
                        if not chunk:
                            break
                        data += chunk
                    assert data.startswith(b"HTTP/1.1 503"), data[:40]
                return True
            t0 = time.monotonic()
            self.assertTrue(await off_loop(all_refused))
            self.assertLess(time.monotonic() - t0, 5)
        finally:
            for s in socks:
                s.close()
        # Once the refused sockets are gone, over-cap sockets may send their request again.
        await off_loop(wait_until, lambda: self.server.http("GET", "/v1/healthz", key=False)[0] == 200)
        for c in clients:
            await c.ok("ping")


# ----- Outbound bounds: pings, backpressure, slow consumers ---------------------------------------

class PingFloodTest(WireTest):
    settings = dict(WireTest.settings, heartbeat_ms=10000)

    def test_ping_flood_without_reading_keeps_only_the_newest_pong(self):
        # Today every ping queues its pong: a client that never reads grows the server's memory
        # (1.5M pings of 125 bytes: ~100 MB).
        n = 200000
        w = self.wire(rcvbuf=4096)
        filler = b"p" * 117
        pings = b"".join(frame(b"%08d" % i + filler, opcode=9, mask=b"\0\0\0\0") for i in range(n))
        w.send(pings)
        w.send(frame('{"op":"ping","id":1}'))
        frames = w.read_until({1})
        pongs = [p for op, p in frames if op == 10]
        self.assertLess(len(pongs), n // 4)  # what the kernel buffers held, and the newest
        self.assertEqual(pongs[-1], b"%08d" % (n - 1) + filler)
        self.assertTrue(w.request("ping", 2)["ok"])

    def test_each_ping_of_a_reading_client_gets_its_pong(self):
        w = self.wire()
        for i in range(200):
            w.send(frame(b"%d" % i, opcode=9))
            self.assertEqual(w.read_until({10})[-1], (10, b"%d" % i))


class BackpressureTest(WireTest):
    # 3 members with 1 MiB of data each: one `get` reply of about 3 MiB, far over the outbound
    # bound (64 KiB), accepted because nothing else is queued.
    settings = dict(WireTest.settings, heartbeat_ms=4000, max_outbound_bytes=65536,
                    max_frame_bytes=2 << 20, max_data_bytes=1 << 20, rate_per_second=100000,
                    rate_burst=100000, handshake_timeout_ms=5000)

    async def big_channel(self):
        ch = unique()
        for _ in range(3):
            m = await self.connect()
            await m.ok("enter", channel=ch, data="d" * 1000000)
        return ch

    def flood_until_blocked(self, w, limit=64 << 20):
        """Sends pings until the server stops reading; returns the unsent rest of the last chunk
        (to be sent before anything else, so the stream holds whole frames)."""
        chunk = b"".join(frame(b"x" * 100, opcode=9, mask=b"\0\0\0\0") for _ in range(500))
        sent = 0
        rest = b""
        w.sock.setblocking(False)
        try:
            while sent < limit:
                try:
                    n = w.sock.send(rest or chunk)
                    sent += n
                    rest = (rest or chunk)[n:]
                except BlockingIOError:
                    _, writable, _ = select.select([], [w.sock], [], 1.0)
                    if not writable:
                        return rest  # nothing could be sent for a second: the server stopped reading
        finally:
            w.sock.settimeout(TIMEOUT)
        raise AssertionError("the server kept reading %d bytes of pings" % sent)

    async def test_reading_stops_while_output_is_over_the_bound_and_resumes_when_it_drains(self):
        ch = await self.big_channel()
        w = self.wire(rcvbuf=4096)
        w.send(frame(json.dumps({"op": "get", "id": 1, "channel": ch})))
        # Today the server reads on (and queues a pong per ping) however much output waits.
        rest = await off_loop(self.flood_until_blocked, w)
        # Not dropped as silent, though its pongs could not be read: it was the server not reading.
        def drain():
            while True:
                opcode, payload = w.read_frame()
                if opcode == 1 and json.loads(payload).get("id") == 1:
                    return json.loads(payload)
        reply = await off_loop(drain)
        self.assertEqual(len(reply["members"]), 3)
        w.send(rest)
        self.assertTrue((await off_loop(w.request, "ping", 2))["ok"])

    async def test_output_that_does_not_drain_in_two_heartbeats_closes_with_4008(self):
        ch = await self.big_channel()
        watcher = await self.connect()
        await watcher.ok("subscribe", channel=ch, actions=["leave"])
        w = self.wire(rcvbuf=4096, remainPresentForMs=0)
        self.assertTrue((await off_loop(w.request, "enter", 1, channel=ch))["ok"])
        w.send(frame(json.dumps({"op": "get", "id": 2, "channel": ch})))
        t0 = time.monotonic()
        e = await watcher.presence(ch, timeout=20)  # dropped as abrupt: reason timeout
        self.assertEqual((e["member"]["connectionId"], e["reason"]),
                         (w.connected["connectionId"], "timeout"))
        self.assertGreater(time.monotonic() - t0, 7)  # two heartbeat intervals
        # Today the socket is cut without a close frame. Now: the frame in flight, then 4008.
        frames = await off_loop(w.read_until, {8})
        data = [json.loads(p) for op, p in frames if op == 1]
        self.assertEqual(data[-1]["id"], 2)
        self.assertEqual(struct.unpack("!H", frames[-1][1][:2])[0], 4008)
        self.assertTrue(await off_loop(w.read_eof))


class SlowConsumerCloseTest(WireTest):
    # Members of 1 MB each against a 1 MiB bound. Events beyond the bound are conflated (dropped,
    # owed a `sync`), so what takes the subscriber over it are the replies it asks for, which are
    # never dropped: once the kernel buffers are full, its `get` replies make it a slow consumer.
    settings = dict(WireTest.settings, heartbeat_ms=1500, max_outbound_bytes=1 << 20,
                    max_frame_bytes=2 << 20, max_data_bytes=1 << 20, handshake_timeout_ms=8000)

    async def overflow(self):
        """A subscriber that does not read, made a slow consumer; returns once the server dropped
        it."""
        ch = unique()
        watcher = await self.connect()
        await watcher.ok("subscribe", channel=ch, actions=["leave"])
        writer = await self.connect(unique("writer"))

        def slow_consumer():
            w = self.wire(rcvbuf=4096, remainPresentForMs=0)
            self.assertTrue(w.request("enter", 1, channel=ch)["ok"])
            self.assertTrue(w.request("subscribe", 2, channel=ch)["ok"])
            return w
        slow = await off_loop(slow_consumer)
        # Kernel buffers take a few MB before the server's own queue grows. Meanwhile the slow
        # consumer pings and asks for the channel (without reading), so it is dropped for its
        # queue, never for silence.
        await writer.ok("enter", channel=ch, data="a" * 1000000)
        for i in range(10):
            slow.send(frame(b"", opcode=9) +
                      frame(json.dumps({"op": "get", "id": 100 + i, "channel": ch})))
            await writer.ok("update", channel=ch, data=str(i) * 1000000)
        e = await watcher.presence(ch)
        self.assertEqual((e["member"]["connectionId"], e["reason"]),
                         (slow.connected["connectionId"], "timeout"))
        return slow

    def heartbeats(self, n):
        """Waits for `n` pings of the server's heartbeat on another connection (answering them)."""
        ref = self.wire()
        for _ in range(n):
            opcode, payload = ref.read_until({9})[-1]
            ref.send(frame(payload, opcode=10))

    async def test_a_slow_consumer_that_resumes_reading_gets_its_4008(self):
        w = await self.overflow()
        # It reads again after more than two heartbeat intervals of silence. Today the closing
        # session still applies the silence rule and cuts the socket without its close frame.
        await off_loop(self.heartbeats, 3)
        # What the kernel held and the frame in flight, then the close frame.
        frames = await off_loop(w.read_until, {8})
        self.assertEqual(struct.unpack("!H", frames[-1][1][:2])[0], 4008)
        self.assertTrue(all(op in (1, 9, 10) for op, _ in frames[:-1]))
        for op, payload in frames[:-1]:
            if op == 1:
                json.loads(payload)  # whole messages only: nothing was cut
        self.assertTrue(await off_loop(w.read_eof))

    async def test_a_slow_consumer_that_sends_while_closing_gets_its_4008(self):
        w = await self.overflow()
        # It still sends (pings, requests) before it reads again. Today the closing session stops
        # reading, and closing a socket with unread bytes resets it: no close frame either.
        for i in range(3):
            w.send(frame(b"still here", opcode=9) + frame('{"op":"ping","id":%d}' % (10 + i)))
        frames = await off_loop(w.read_until, {8})
        self.assertEqual(struct.unpack("!H", frames[-1][1][:2])[0], 4008)
        self.assertTrue(await off_loop(w.read_eof))


class SlowConsumerTimeoutTest(WireTest):
    settings = dict(SlowConsumerCloseTest.settings, handshake_timeout_ms=2000)
    overflow = SlowConsumerCloseTest.overflow

    async def test_a_slow_consumer_that_never_reads_is_closed_within_the_close_timeout(self):
        before = self.metric("presenced_connections")
        await self.overflow()  # + watcher and writer
        t0 = time.monotonic()
        await off_loop(wait_until, lambda: self.metric("presenced_connections") <= before + 2)
        self.assertLess(time.monotonic() - t0, 2 + 2)  # the close timeout (2 s) and a margin


# ----- Why a connection closed: presenced_disconnects_total{reason=...} -------------------------

class DisconnectReasonTest(WireTest):
    settings = dict(WireTest.settings, heartbeat_ms=300, max_frame_bytes=4096)

    def disconnects(self):
        _, text = self.server.http("GET", "/metrics", key=False)
        out = {}
        for line in text.splitlines():
            if line.startswith('presenced_disconnects_total{reason="'):
                reason = line.split('"')[1]
                out[reason] = float(line.split()[1])
        return out

    def assert_counted(self, reason, end, also=()):
        """`end()` ends one connection; the counter of `reason` then rises by exactly one (and
        those in `also` as the test says), no other."""
        before = self.disconnects()
        end()
        wait_until(lambda: self.disconnects().get(reason, 0) >= before.get(reason, 0) + 1)
        after = self.disconnects()
        self.assertEqual(after[reason], before.get(reason, 0) + 1, reason)
        for other, n in after.items():
            if other != reason and other not in also:
                self.assertEqual(n, before.get(other, 0), "%s counted for %s" % (other, reason))

    def test_every_cause_is_counted_under_its_reason(self):
        def by_close_frame():
            w = self.wire()
            w.send(close_frame(1000))
            self.assertEqual(w.close_code(), 1000)

        def by_reserved_bit():
            w = self.wire()
            w.send(frame('{"op":"ping","id":1}', rsv=0x40))
            self.assertEqual(w.close_code(), 1002)

        def by_invalid_utf8():
            w = self.wire()
            w.send(frame(b'{"op":"ping","id":1,"x":"\xff"}'))
            self.assertEqual(w.close_code(), 1007)

        def by_oversize_message():
            w = self.wire()
            w.send(frame("x" * 5000))
            self.assertEqual(w.close_code(), 1009)

        def by_silence():
            w = self.wire()  # answers no ping: dropped after two heartbeat intervals
            w.read_eof()

        def by_lost_connection():
            w = self.wire()
            self.assertTrue(w.request("ping", 1)["ok"])
            w.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            w.close()  # a reset, no close frame

        def by_the_service():
            w = self.wire()  # resumed elsewhere: the old socket is closed with 4000
            key = w.connected["connectionKey"]
            other = self.wire(token=self.server.token(w.connected["clientId"]), resume=key)
            self.assertTrue(other.connected["resumed"])
            self.assertEqual(w.close_code(), 4000)
            other.send(close_frame(1000))  # a client_closed too
            self.assertEqual(other.close_code(), 1000)

        for reason, end in [("client_closed", by_close_frame), ("protocol_error", by_reserved_bit),
                            ("invalid_utf8", by_invalid_utf8),
                            ("message_too_large", by_oversize_message),
                            ("heartbeat_timeout", by_silence),
                            ("connection_lost", by_lost_connection),
                            ("superseded", by_the_service)]:
            with self.subTest(reason=reason):
                self.assert_counted(reason, end,
                                    also=("client_closed",) if reason == "superseded" else ())


# ----- Requests pipelined after the upgrade request ----------------------------------------------

class PipelinedUpgradeTest(WireTest):
    def test_requests_sent_with_the_upgrade_are_answered_after_connected_in_order(self):
        # The first connection of a user the server does not hold: its stored state is read off
        # the loop, and what the client sent meanwhile waits for the `connected` frame.
        token = self.server.token(unique("pipelined"))
        upgrade = ("GET /v1/ws?token=%s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                   "Sec-WebSocket-Version: 13\r\n\r\n" % token).encode()
        w = self.wire(handshake=upgrade)
        w.send(upgrade + b"".join(frame('{"op":"ping","id":%d}' % i) for i in range(1, 6)))
        self.assertTrue(w.read_head().startswith(b"HTTP/1.1 101"))
        messages = [json.loads(w.read_frame()[1]) for _ in range(6)]
        self.assertEqual(messages[0]["type"], "connected")
        self.assertEqual([m["id"] for m in messages[1:]], [1, 2, 3, 4, 5])
        self.assertTrue(all(m["ok"] for m in messages[1:]))


if __name__ == "__main__":
    unittest.main()
