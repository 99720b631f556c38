"""Test harness: starts the real presenced binary on a free loopback port and drives it over
WebSocket (the `websockets` library, plus a raw-socket client for misbehaving peers) and HTTP.

Waits end as soon as the expected frame arrives; the timeouts below are upper bounds, never sleeps.
"""
import asyncio
import base64
import hashlib
import hmac
import json
import os
import signal
import socket
import struct
import subprocess
import tempfile
import urllib.error
import urllib.request

import websockets

BINARY = os.environ.get("PRESENCED_BIN", "build/asan/src/server/presenced")
TIMEOUT = 10.0


def make_token(secret, claims, alg="HS256"):
    """An HS256 JWT built by hand, to test tokens the server must refuse."""
    def b64(data):
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    head = b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    if alg == "none":
        return head + "." + body + "."
    sig = hmac.new(secret.encode(), (head + "." + body).encode(), hashlib.sha256).digest()
    return head + "." + body + "." + b64(sig)


class Server:
    """One presenced process with its own data directory. With `ssl_context` (a client context
    that trusts the server's certificate; the server's own tls_cert and tls_key are settings) it
    is reached over https and wss."""

    def __init__(self, data_dir=None, ssl_context=None, **settings):
        self.ssl = ssl_context
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="presenced-test-")
        env = dict(os.environ)
        env.update({
            "PRESENCED_LISTEN": "127.0.0.1:0",
            "PRESENCED_DATA_DIR": self.data_dir,
            "PRESENCED_LOG_LEVEL": "warn",
            # Two I/O threads (a strand per socket) unless the test run asks for another count.
            "PRESENCED_IO_THREADS": os.environ.get("PRESENCED_IO_THREADS", "2"),
        })
        for key, value in settings.items():
            env["PRESENCED_" + key.upper()] = str(value)
        self.proc = subprocess.Popen([BINARY], env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if "listening on" not in line:
            self.proc.kill()
            raise RuntimeError("presenced did not start: " + line + self.proc.stderr.read())
        hostport = line.split()[3]
        self.port = int(hostport.rsplit(":", 1)[1])
        self.epoch = line.strip().split("epoch=")[1]
        with open(os.path.join(self.data_dir, "api-key")) as f:
            self.api_key = f.read().strip()
        with open(os.path.join(self.data_dir, "jwt-secret")) as f:
            self.secret = f.read().strip()

    def token(self, client_id, channels=None, ttl=3600, roles=None):
        args = [BINARY, "token", client_id, "--ttl-ms", str(ttl * 1000), "--data-dir",
                self.data_dir]
        if channels is not None:
            args += ["--channels", ",".join(channels)]
        if roles:
            args += ["--roles", ",".join(roles)]
        return subprocess.check_output(args, text=True).strip()

    def url(self, token, **params):
        q = "token=" + token
        for k, v in params.items():
            q += "&%s=%s" % (k, v)
        return "%s://127.0.0.1:%d/v1/ws?%s" % ("wss" if self.ssl else "ws", self.port, q)

    def http(self, method, path, body=None, key=True, raw_body=None):
        """Returns (status, parsed JSON or text)."""
        data = raw_body if raw_body is not None else (json.dumps(body).encode() if body is not None else None)
        scheme = "https" if self.ssl else "http"
        req = urllib.request.Request("%s://127.0.0.1:%d%s" % (scheme, self.port, path), data=data,
                                     method=method)
        if key:
            req.add_header("Authorization", "Bearer " + (self.api_key if key is True else key))
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=TIMEOUT, context=self.ssl) as resp:
                status, text, ctype = resp.status, resp.read().decode(), resp.headers.get("Content-Type", "")
        except urllib.error.HTTPError as e:
            status, text, ctype = e.code, e.read().decode(), e.headers.get("Content-Type", "")
        return status, (json.loads(text) if "json" in ctype else text)

    def terminate(self):
        """SIGTERM; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=TIMEOUT)
        finally:
            self.proc.stdout.close()
            self.proc.stderr.close()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()
        self.proc.stderr.close()


def run_failing(data_dir, **settings):
    """Starts presenced expecting it to refuse to start; returns (exit code, stderr)."""
    env = dict(os.environ)
    env.update({"PRESENCED_LISTEN": "127.0.0.1:0", "PRESENCED_DATA_DIR": data_dir,
                "PRESENCED_LOG_LEVEL": "warn"})
    for key, value in settings.items():
        env["PRESENCED_" + key.upper()] = str(value)
    p = subprocess.run([BINARY], env=env, capture_output=True, text=True, timeout=TIMEOUT)
    return p.returncode, p.stderr


def read_head(sock):
    """Reads from `sock` until an HTTP response head is complete (or the peer closes); returns
    every byte read, which may include the start of the body or of WebSocket frames."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def wait_until(predicate, timeout=TIMEOUT, interval=0.02):
    """Polls `predicate` until it is true (returns as soon as it is); fails after `timeout`."""
    import time
    end = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError("condition not met within %.1fs" % timeout)
        time.sleep(interval)


class Client:
    """A protocol client: request() waits for the reply with its id; frames() buffers the rest."""

    def __init__(self, ws):
        self.ws = ws
        self.next_id = 0
        self.buffer = []
        self.connected = None

    @classmethod
    async def connect(cls, server, client_id, channels=None, token=None, roles=None, **params):
        token = token or server.token(client_id, channels, roles=roles)
        ws = await websockets.connect(server.url(token, **params), max_size=None, max_queue=None,
                                      ping_interval=None, open_timeout=TIMEOUT, ssl=server.ssl)
        c = cls(ws)
        c.connected = await c.next("connected")
        return c

    async def _recv(self, timeout):
        return json.loads(await asyncio.wait_for(self.ws.recv(), timeout))

    async def next(self, type_=None, timeout=TIMEOUT, where=None):
        """The next frame of `type_` (and matching `where`), from the buffer or the socket."""
        def matches(f):
            return (type_ is None or f.get("type") == type_) and (where is None or where(f))
        for i, f in enumerate(self.buffer):
            if matches(f):
                return self.buffer.pop(i)
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while True:
            f = await self._recv(max(0.01, end - loop.time()))
            if matches(f):
                return f
            self.buffer.append(f)

    async def presence(self, channel=None, timeout=TIMEOUT):
        return await self.next("presence", timeout, lambda f: channel is None or f["channel"] == channel)

    async def request(self, op, **fields):
        self.next_id += 1
        rid = self.next_id
        await self.ws.send(json.dumps(dict(op=op, id=rid, **fields)))
        return await self.next("reply", where=lambda f: f.get("id") == rid)

    async def ok(self, op, **fields):
        r = await self.request(op, **fields)
        assert r["ok"], r
        return r

    async def send_raw(self, text):
        await self.ws.send(text)

    async def quiet(self, timeout=0.3):
        """Asserts no frame arrives within `timeout` (used only to prove an absence)."""
        try:
            f = await self._recv(timeout)
        except asyncio.TimeoutError:
            return True
        self.buffer.append(f)
        return False

    def drop(self):
        """Ends the TCP connection without a close frame (an abrupt drop)."""
        self.ws.transport.abort()

    async def close(self):
        await self.ws.close()


class RawClient:
    """A bare-socket WebSocket client that does nothing unless told (no pongs, no reads)."""

    def __init__(self, server, token, rcvbuf=None, **params):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)  # before connecting
        self.sock.settimeout(TIMEOUT)
        self.sock.connect(("127.0.0.1", server.port))
        q = "token=" + token + "".join("&%s=%s" % kv for kv in params.items())
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(("GET /v1/ws?%s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                           "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (q, key)).encode())
        self.pending = b""
        head = self._read_until(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head

    def _read_until(self, marker):
        while marker not in self.pending:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("closed")
            self.pending += chunk
        head, _, self.pending = self.pending.partition(marker)
        return head

    def send_frame(self, payload, opcode=1, fin=True):
        if isinstance(payload, str):
            payload = payload.encode()
        header = bytes([(0x80 if fin else 0) | opcode])
        n = len(payload)
        if n < 126:
            header += bytes([0x80 | n])
        elif n < 65536:
            header += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            header += bytes([0x80 | 127]) + struct.pack("!Q", n)
        mask = os.urandom(4)
        body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + body)

    def read_frame(self):
        """(opcode, payload) of the next server frame."""
        while len(self.pending) < 2:
            self._fill()
        b0, b1 = self.pending[0], self.pending[1]
        n, off = b1 & 0x7F, 2
        if n == 126:
            self._need(4)
            n, off = struct.unpack("!H", self.pending[2:4])[0], 4
        elif n == 127:
            self._need(10)
            n, off = struct.unpack("!Q", self.pending[2:10])[0], 10
        self._need(off + n)
        payload = self.pending[off:off + n]
        self.pending = self.pending[off + n:]
        return b0 & 0x0F, payload

    def _need(self, n):
        while len(self.pending) < n:
            self._fill()

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("closed")
        self.pending += chunk

    def close(self):
        self.sock.close()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class RedisServer:
    """A redis-server of the test's own (Debian's), on a free port, no persistence (or, with
    `durable`, an AOF fsynced at every write in a directory of its own, so a kill keeps every
    acknowledged write). start() and stop() may be repeated: the port (and the AOF) stay."""

    def __init__(self, durable=False):
        self.port = free_port()
        self.proc = None
        self.dir = tempfile.mkdtemp(prefix="presenced-redis-") if durable else None

    @property
    def url(self):
        return "redis://127.0.0.1:%d" % self.port

    def start(self):
        persistence = (["--dir", self.dir, "--appendonly", "yes", "--appendfsync", "always"]
                       if self.dir else ["--appendonly", "no"])
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             *persistence], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: self.cli("PING") == "PONG")
        return self

    def pause(self):
        """SIGSTOP: the sockets stay open and nothing answers (as a host cut off without a reset)."""
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def cli(self, *args):
        """One command through redis-cli; its output, stripped ("" when it could not connect)."""
        p = subprocess.run(["redis-cli", "-p", str(self.port), *args], capture_output=True,
                           text=True, timeout=TIMEOUT)
        return p.stdout.strip() if p.returncode == 0 and "Could not connect" not in p.stdout \
            else ""
