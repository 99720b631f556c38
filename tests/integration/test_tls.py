"""TLS on the listen port (docs/operations.md, "TLS"): the real binary with a self-signed
certificate made by the openssl CLI, reached over https and wss; plain HTTP refused; the settings
checked at start; the certificate reloaded on SIGHUP."""
import http.client
import os
import re
import select
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import unittest
import urllib.error
import urllib.request

from harness import Client, Server, TIMEOUT, run_failing
from test_server import unique


def make_certificate(directory, name):
    """A self-signed certificate for localhost and 127.0.0.1 (subject O=`name`); (cert, key)."""
    cert, key = os.path.join(directory, name + ".crt"), os.path.join(directory, name + ".key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                    "-out", cert, "-days", "1", "-subj", "/CN=localhost/O=" + name,
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True)
    return cert, key


def client_context(*certs):
    """A client context that verifies the server against `certs` (and its name)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    for cert in certs:
        ctx.load_verify_locations(cert)
    return ctx


def der(cert_file):
    with open(cert_file) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


def peer_certificate(server):
    """The certificate a new TLS connection to `server` is shown (DER)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as raw:
        with server.ssl.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            return s.getpeercert(binary_form=True)


class ServerLog:
    """Reads a server's stderr (its log) as it is written, without blocking the test on it."""

    def __init__(self, server):
        self.fd = server.proc.stderr.fileno()
        self.text = ""

    def wait_for(self, pattern, timeout=TIMEOUT):
        """Returns the first match of `pattern` in the log from here on; fails after `timeout`."""
        start = len(self.text)
        end = time.monotonic() + timeout
        while True:
            m = re.compile(pattern).search(self.text, start)
            if m:
                return m
            remaining = end - time.monotonic()
            if remaining <= 0:
                raise AssertionError("no %r in the log:\n%s" % (pattern, self.text))
            ready, _, _ = select.select([self.fd], [], [], remaining)
            if ready:
                chunk = os.read(self.fd, 65536).decode(errors="replace")
                if not chunk:
                    raise AssertionError("the server exited; log:\n" + self.text)
                self.text += chunk


class TlsTest(unittest.IsolatedAsyncioTestCase):
    """Everything served over plain HTTP is served alike over TLS."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="presenced-tls-")
        cls.cert, cls.key = make_certificate(cls.dir, "server")
        cls.server = Server(ssl_context=client_context(cls.cert), tls_cert=cls.cert,
                            tls_key=cls.key, heartbeat_ms=300)

    @classmethod
    def tearDownClass(cls):
        cls.server.kill()
        shutil.rmtree(cls.dir, ignore_errors=True)

    def test_healthz_over_https_with_the_configured_certificate(self):
        self.assertEqual(self.server.http("GET", "/v1/healthz", key=False), (200, {"ok": True}))
        self.assertEqual(peer_certificate(self.server), der(self.cert))

    def test_rest_metrics_and_the_dashboard(self):
        status, body = self.server.http("GET", "/v1/channels/%s/occupancy" % unique())
        self.assertEqual((status, body), (200, {"members": 0, "clients": 0}))
        status, body = self.server.http("GET", "/v1/channels/x/presence", key="wrong")
        self.assertEqual((status, body["error"]["code"]), (401, "unauthorized"))
        status, text = self.server.http("GET", "/metrics", key=False)
        self.assertEqual(status, 200)
        self.assertIn("presenced_connections", text)
        status, page = self.server.http("GET", "/", key=False)
        self.assertEqual(status, 200)
        self.assertIn("<html", page.lower())

    async def test_wss_connects_enters_and_is_seen_over_rest(self):
        ch = unique()
        c = await Client.connect(self.server, "alice", device="laptop")
        self.addAsyncCleanup(c.close)
        self.assertEqual(c.connected["clientId"], "alice")
        self.assertEqual(c.connected["epoch"], self.server.epoch)
        r = await c.ok("enter", channel=ch, data={"k": 1})
        self.assertTrue(r["ok"])
        status, body = self.server.http("GET", "/v1/channels/%s/presence" % ch)
        self.assertEqual(status, 200)
        self.assertEqual([m["clientId"] for m in body["members"]], ["alice"])

    def test_plain_http_fails_the_handshake(self):
        with socket.create_connection(("127.0.0.1", self.server.port), timeout=TIMEOUT) as s:
            s.sendall(b"GET /v1/healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            data = b""
            try:
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
            except ConnectionResetError:
                pass
        self.assertNotIn(b"HTTP/1.1", data)  # at most a TLS alert, then the end
        with self.assertRaises((urllib.error.URLError, http.client.HTTPException, OSError)):
            urllib.request.urlopen("http://127.0.0.1:%d/v1/healthz" % self.server.port,
                                   timeout=TIMEOUT)

    def test_a_client_that_does_not_trust_the_certificate_fails(self):
        other_dir = tempfile.mkdtemp(prefix="presenced-tls-other-")
        self.addCleanup(shutil.rmtree, other_dir, ignore_errors=True)
        other, _ = make_certificate(other_dir, "other")
        with socket.create_connection(("127.0.0.1", self.server.port), timeout=TIMEOUT) as raw:
            with self.assertRaises(ssl.SSLCertVerificationError):
                client_context(other).wrap_socket(raw, server_hostname="127.0.0.1")
        # The server is unharmed.
        self.assertEqual(self.server.http("GET", "/v1/healthz", key=False)[0], 200)


class TlsSettingsTest(unittest.TestCase):
    """The certificate and key come together, and must be usable at start (exit 2 otherwise)."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="presenced-tls-settings-")
        cls.cert, cls.key = make_certificate(cls.dir, "server")
        cls.other_cert, cls.other_key = make_certificate(cls.dir, "other")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def run_failing(self, **settings):
        return run_failing(tempfile.mkdtemp(prefix="presenced-tls-data-"), **settings)

    def test_a_certificate_without_its_key_exits_2(self):
        code, err = self.run_failing(tls_cert=self.cert)
        self.assertEqual(code, 2, err)
        self.assertIn("tls_key is not set", err)
        code, err = self.run_failing(tls_key=self.key)
        self.assertEqual(code, 2, err)
        self.assertIn("tls_cert is not set", err)

    def test_unusable_files_exit_2_naming_the_file(self):
        missing = os.path.join(self.dir, "missing.crt")
        code, err = self.run_failing(tls_cert=missing, tls_key=self.key)
        self.assertEqual(code, 2, err)
        self.assertIn("cannot read TLS certificate " + missing, err)
        garbage = os.path.join(self.dir, "garbage.key")
        with open(garbage, "w") as f:
            f.write("not a key\n")
        code, err = self.run_failing(tls_cert=self.cert, tls_key=garbage)
        self.assertEqual(code, 2, err)
        self.assertIn("TLS key " + garbage + ": not an unencrypted PEM private key", err)
        code, err = self.run_failing(tls_cert=self.cert, tls_key=self.other_key)
        self.assertEqual(code, 2, err)
        self.assertIn("TLS key %s is not the key of the certificate %s" % (self.other_key,
                                                                          self.cert), err)


class TlsReloadTest(unittest.IsolatedAsyncioTestCase):
    """SIGHUP: new connections get the certificate now in the files, open ones stay; a file that
    cannot be used keeps the certificate in use."""

    async def test_sighup_reloads_the_certificate_for_new_connections(self):
        d = tempfile.mkdtemp(prefix="presenced-tls-reload-")
        self.addCleanup(shutil.rmtree, d, ignore_errors=True)
        first, first_key = make_certificate(d, "first")
        second, second_key = make_certificate(d, "second")
        live, live_key = os.path.join(d, "live.crt"), os.path.join(d, "live.key")
        shutil.copy(first, live)
        shutil.copy(first_key, live_key)
        server = Server(ssl_context=client_context(first, second), tls_cert=live,
                        tls_key=live_key, log_level="info")
        self.addCleanup(server.kill)
        log = ServerLog(server)
        log.wait_for(r"level=info event=tls cert=%s key=%s" % (re.escape(live),
                                                                 re.escape(live_key)))
        self.assertEqual(peer_certificate(server), der(first))
        alice = await Client.connect(server, "alice")
        self.addAsyncCleanup(alice.close)
        await alice.ok("enter", channel=unique())

        # A renewed certificate: new connections see it, the open one carries on.
        shutil.copy(second, live)
        shutil.copy(second_key, live_key)
        server.proc.send_signal(signal.SIGHUP)
        log.wait_for(r"level=info event=tls_reloaded note=\"TLS certificate reloaded from %s" %
                     re.escape(live))
        self.assertEqual(peer_certificate(server), der(second))
        await alice.ok("enter", channel=unique())
        bob = await Client.connect(server, "bob")
        self.addAsyncCleanup(bob.close)
        await bob.ok("enter", channel=unique())

        # A file that cannot be used: logged, and the certificate in use stays.
        with open(live, "w") as f:
            f.write("-----BEGIN CERTIFICATE-----\ntruncated\n")
        server.proc.send_signal(signal.SIGHUP)
        log.wait_for(r"level=error event=tls_reload_failed reason=\"TLS certificate %s" %
                     re.escape(live))
        self.assertEqual(peer_certificate(server), der(second))
        self.assertEqual(server.http("GET", "/v1/healthz", key=False), (200, {"ok": True}))
        await alice.ok("enter", channel=unique())
        self.assertIsNone(server.proc.poll())

    async def test_sighup_without_tls_is_logged_and_harmless(self):
        server = Server(log_level="info")
        self.addCleanup(server.kill)
        log = ServerLog(server)
        server.proc.send_signal(signal.SIGHUP)
        log.wait_for(r"event=sighup note=\"TLS is off: nothing to reload\"")
        self.assertEqual(server.http("GET", "/v1/healthz", key=False), (200, {"ok": True}))


if __name__ == "__main__":
    unittest.main()
