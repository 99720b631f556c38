#!/usr/bin/env python3
"""Writes the hand-made seed inputs of fuzz/corpus/<target>/ (python3 fuzz/seeds.py).

Each seed is a small, meaningful input in the target's own format (see the comment at the top of
each target). Regression inputs (inputs that once crashed a target, kept after the fix) are not
written here: they are committed as found, named regress-*.
"""
import base64
import hashlib
import hmac
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
SECRET = b"fuzz-secret"  # dispatcher_fixture.h kSecret, jwt.cc kSecret
API_KEY = "fuzz-api-key"
MASK = b"\x37\xfa\x21\x3d"


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogateescape")  # "\udcXX" is the raw byte XX
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def token(claims, alg="HS256", header=None):
    head = b64(json.dumps(header or {"alg": alg, "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    sig = hmac.new(SECRET, (head + "." + body).encode(), hashlib.sha256).digest()
    return head + "." + body + "." + b64(sig)


# ----- ws_reader: [limit index][split count][2 bytes per split][client frames] -----------------
# limit indexes into kLimits: 0 1 2 125 126 127 128 1000 4096 65535 65536 1M
def frame(opcode, payload, fin=True, masked=True, rsv=0, length=None):
    if isinstance(payload, str):
        payload = payload.encode()
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | rsv | opcode
    m = 0x80 if masked else 0
    if n < 126:
        head = bytes([b0, m | n])
    elif n < 65536:
        head = bytes([b0, m | 126]) + struct.pack(">H", n)
    else:
        head = bytes([b0, m | 127]) + struct.pack(">Q", n)
    if not masked:
        return head + payload
    return head + MASK + bytes(c ^ MASK[i % 4] for i, c in enumerate(payload))


def ws(name, stream, limit=7, cuts=()):
    write("ws_reader", name,
          bytes([limit, len(cuts)]) + b"".join(struct.pack(">H", c) for c in cuts) + stream)


ws("text", frame(1, '{"op":"ping","id":1}'))
ws("text-split", frame(1, '{"op":"ping","id":1}'), cuts=(1, 2, 5, 7))
ws("binary", frame(2, b"\x00\x01\xff"))
ws("fragmented", frame(1, "hel", fin=False) + frame(0, "lo"), cuts=(3, 9))
ws("fragmented-ping-inside", frame(1, "a", fin=False) + frame(9, "p") + frame(0, "b"))
ws("ping-pong", frame(9, "ping!") + frame(10, ""))
ws("close", frame(8, struct.pack(">H", 1000) + b"bye"))
ws("close-1-byte", frame(8, b"\x03"))
ws("close-bad-code", frame(8, struct.pack(">H", 1005)))
ws("len16", frame(1, "x" * 300), limit=8, cuts=(2, 4, 8))
ws("len64", frame(1, b"", length=70000) + b"y" * 16, limit=11)  # the rest never comes
ws("len64-huge", frame(1, b"", length=1 << 62), limit=11)
ws("len64-top-bit", frame(1, b"", length=1 << 63), limit=11)
ws("over-limit", frame(1, "z" * 126), limit=3)
ws("over-limit-fragments", frame(1, "a" * 100, fin=False) + frame(0, "b" * 100), limit=3)
ws("unmasked", frame(1, "hi", masked=False))
ws("reserved-bits", frame(1, "hi", rsv=0x40))
ws("unknown-opcode", frame(3, "hi"))
ws("control-fragmented", frame(9, "p", fin=False))
ws("control-too-long", frame(9, "p" * 126))
ws("continuation-first", frame(0, "x"))
ws("text-inside-fragmented", frame(1, "a", fin=False) + frame(1, "b"))
ws("utf8-valid", frame(1, "h\u00e9llo \u20ac \U0001f600"))
ws("utf8-split-codepoint", frame(1, b"\xe2\x82", fin=False) + frame(0, b"\xac"))
ws("utf8-invalid", frame(1, b"\xff\xfe"))
ws("utf8-overlong", frame(1, b"\xc0\xaf"))
ws("utf8-surrogate", frame(1, b"\xed\xa0\x80"))
ws("close-reason-invalid-utf8", frame(8, struct.pack(">H", 1000) + b"\xff"))
ws("many", b"".join(frame(1, str(i)) for i in range(20)), cuts=(1, 50, 51, 120))
ws("empty-limit-0", frame(1, ""), limit=0)

# ----- http_request: [body limit index][read size, 0 = all][request bytes] ------------------------
# body limit indexes into kBodyLimits: 0 1 64 4096 65536
AUTH = "Authorization: Bearer " + API_KEY + "\r\n"


def http(name, text, limit=3, read=0):
    write("http_request", name, bytes([limit, read]) + text.encode("utf-8", "surrogateescape"))


def req(method, target, body=None, headers="", auth=True):
    h = "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s%s" % (method, target, AUTH if auth else "",
                                                       headers)
    if body is not None:
        h += "Content-Type: application/json\r\nContent-Length: %d\r\n" % len(body.encode())
    return h + "\r\n" + (body or "")


GOOD = token({"sub": "bob", "exp": 4102444800, "channels": ["room*", "lobby"]})
UPGRADE = ("Upgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n")
http("healthz", req("GET", "/v1/healthz", auth=False))
http("dashboard", req("GET", "/", auth=False))
http("metrics", req("GET", "/metrics", auth=False))
http("presence", req("GET", "/v1/channels/room/presence?clientId=alice"))
http("presence-no-key", req("GET", "/v1/channels/room/presence", auth=False))
http("occupancy", req("GET", "/v1/channels/room/occupancy"), read=7)
http("history", req("GET", "/v1/channels/room/history?limit=2&direction=forwards&cursor=1"))
http("history-bad", req("GET", "/v1/channels/room/history?limit=0&direction=up"))
http("channels", req("GET", "/v1/channels?limit=1&after=a"))
http("who", req("GET", "/v1/who?channel=room"))
http("status-get", req("GET", "/v1/users/alice/status"))
http("status-put", req("PUT", "/v1/users/alice/status", '{"status":"dnd","text":"focus"}'))
http("status-put-bad", req("PUT", "/v1/users/alice/status", '{"status":"asleep","text":7}'))
http("devices", req("GET", "/v1/users/alice/devices"))
http("activity", req("GET", "/v1/users/alice/activity?limit=2&since=0"))
http("commands", req("POST", "/v1/commands", '{"clientId":"alice","text":"/presence who room"}'))
http("commands-status", req("POST", "/v1/commands",
                            '{"clientId":"carol","text":"/presence status \\"on a call\\""}'))
http("tokens", req("POST", "/v1/tokens", '{"clientId":"bob","channels":["room-*"],"ttlMs":60000}'))
http("percent-segment", req("GET", "/v1/users/%E2%82%AC/status"))
http("percent-invalid-utf8", req("GET", "/v1/users/%FF%FE/status"))
http("percent-channel", req("GET", "/v1/channels/%C0%AF/presence"))
http("wrong-method", req("DELETE", "/v1/channels/room/presence"))
http("no-route", req("GET", "/v2/nothing"))
http("pipelined", req("GET", "/v1/healthz", auth=False) + req("GET", "/v1/who"), read=13)
http("chunked", "POST /v1/commands HTTP/1.1\r\nHost: x\r\n" + AUTH +
     "Transfer-Encoding: chunked\r\n\r\n"
     "10\r\n{\"clientId\":\"al\r\n1a\r\nice\",\"text\":\"/presence\"}\r\n0\r\n\r\n")
http("body-too-large", req("POST", "/v1/commands", '{"clientId":"alice","text":"x"}'), limit=1)
http("close", req("GET", "/v1/healthz", headers="Connection: close\r\n", auth=False))
http("upgrade", req("GET", "/v1/ws?token=" + GOOD + "&device=phone&remainPresentForMs=0",
                    headers=UPGRADE, auth=False))
http("upgrade-resume", req("GET", "/v1/ws?token=" + GOOD + "&resume=00ff&device=%E2%82%AC",
                           headers=UPGRADE, auth=False), read=32)
http("upgrade-device-invalid-utf8", req("GET", "/v1/ws?token=" + GOOD + "&device=%FF",
                                        headers=UPGRADE, auth=False))
http("upgrade-bad-token", req("GET", "/v1/ws?token=abc.def.ghi", headers=UPGRADE, auth=False))
http("upgrade-no-upgrade", req("GET", "/v1/ws?token=" + GOOD, auth=False))
http("upgrade-bad-version", req("GET", "/v1/ws?token=" + GOOD, auth=False,
                                headers=UPGRADE.replace("13", "8")))
http("upgrade-remain-bad", req("GET", "/v1/ws?token=" + GOOD + "&remainPresentForMs=-5",
                               headers=UPGRADE, auth=False))
http("header-garbage", "GET / HTTP/1.1\r\nHost x\r\n\r\n")
http("huge-header", req("GET", "/v1/who", headers="X-Pad: " + "a" * 17000 + "\r\n"))

# ----- ws_requests: a script (see ws_requests.cc) ------------------------------------------------
def script(name, *lines):
    write("ws_requests", name, "\n".join(lines) + "\n")


script("enter-get",
       "open alice - &device=laptop",
       '0 {"op":"enter","id":1,"channel":"room","data":{"mood":"happy"},"ttlMs":60000}',
       '0 {"op":"get","id":2,"channel":"room","clientId":"alice"}',
       '0 {"op":"update","id":3,"channel":"room","data":{"typing":true},"merge":true}',
       '0 {"op":"occupancy","id":4,"channel":"room"}',
       '0 {"op":"leave","id":5,"channel":"room","data":"bye"}')
script("sessions",
       "open worker-1 - &remainPresentForMs=1000",
       '0 {"op":"session.serve","id":1,"capacity":2}',
       "open alice",
       '1 {"op":"enter","id":1,"channel":"conversation:c1","data":1}',
       '1 {"op":"session.ensure","id":2,"conversationId":"c1","request":{"q":[1,2]},'
       '"inactivityTimeoutMs":5000,"abandonAfterMs":2000}',
       '0 {"op":"session.ready","id":2,"conversationId":"c1"}',
       '1 {"op":"session.start","id":3,"conversationId":"c2"}',
       '0 {"op":"session.fail","id":3,"conversationId":"c2","error":"no"}',
       '1 {"op":"session.touch","id":4,"conversationId":"c1"}',
       '1 {"op":"session.get","id":5,"conversationId":"c1"}',
       "close 0 abrupt",
       "tick 1500",
       '1 {"op":"leave","id":6,"channel":"conversation:c1"}',
       "tick 3000",
       "rest PUT /v1/sessions/c3 {}",
       "rest GET /v1/sessions",
       "rest DELETE /v1/sessions/c3",
       '1 {"op":"session.stop","id":7,"conversationId":"c1"}')
script("subscribe",
       "open alice",
       "open bob room*,lobby &device=phone",
       '1 {"op":"subscribe","id":1,"channel":"room","actions":["enter","leave"]}',
       '0 {"op":"enter","id":2,"channel":"room"}',
       '1 {"op":"subscribe","id":3,"channel":"room","since":0,"epoch":"fuzzepoch"}',
       '1 {"op":"subscribe","id":4,"channel":"other"}',
       '1 {"op":"unsubscribe","id":5,"channel":"room"}',
       '0 {"op":"history","id":6,"channel":"room","limit":2,"direction":"forwards"}',
       '0 {"op":"history","id":7,"channel":"room","cursor":1,"start":0,"end":9999999999999}')
script("status",
       "open alice - &device=laptop",
       "open bob",
       '1 {"op":"status.watch","id":1,"clientIds":["alice","nobody"]}',
       '0 {"op":"status.set","id":2,"status":"dnd","text":"focus"}',
       '1 {"op":"status.get","id":3,"clientIds":["alice","bob","ghost"]}',
       "tick 300001",
       '0 {"op":"status.set","id":4,"status":"online","text":null}',
       '1 {"op":"status.unwatch","id":5,"clientIds":["alice"]}',
       '0 {"op":"status.set","id":6,"status":"offline"}')
script("batch",
       "open alice - &batch=1&device=laptop",
       "open bob - &batch=true",
       '0 {"op":"subscribe","id":1,"channel":"room"}',
       '0 {"op":"enter","id":2,"channel":"room","data":1}',
       '1 {"op":"enter","id":3,"channel":"room"}',
       '0 {"op":"status.watch","id":4,"clientIds":["bob"]}',
       '1 {"op":"status.set","id":5,"status":"away"}',
       "open carol - &batch=2")
script("activity-devices-who",
       "open alice - &device=laptop",
       "open alice - &device=phone",
       '0 {"op":"activity","id":1,"kind":"typing","channel":"room","data":{"n":1}}',
       '1 {"op":"activity.get","id":2,"limit":5,"since":0}',
       '1 {"op":"activity.get","id":3,"clientId":"bob"}',
       '0 {"op":"devices","id":4}',
       '0 {"op":"enter","id":5,"channel":"room"}',
       '1 {"op":"who","id":6,"channel":"room"}',
       '1 {"op":"who","id":7}')
script("commands",
       "open alice - &device=laptop",
       '0 {"op":"command","id":1,"text":"/presence"}',
       '0 {"op":"command","id":2,"text":"/presence who room"}',
       '0 {"op":"command","id":3,"text":"/presence status \\"out to lunch\\""}',
       '0 {"op":"command","id":4,"text":"/presence away"}',
       '0 {"op":"command","id":5,"text":"/presence devices"}',
       '0 {"op":"command","id":6,"text":"/presence sync"}',
       '0 {"op":"command","id":7,"text":"/presence activity"}',
       '0 {"op":"command","id":8,"text":"/presence dance"}',
       '0 {"op":"command","id":9,"text":"/presence help"}')
script("resume",
       "open alice - &device=laptop&remainPresentForMs=60000",
       '0 {"op":"enter","id":1,"channel":"room"}',
       "open bob",
       '1 {"op":"subscribe","id":2,"channel":"room"}',
       "close 0 abrupt",
       '1 {"op":"enter","id":3,"channel":"room"}',
       "open alice - &resume=$0",
       "open alice - &resume=$0",
       '2 {"op":"get","id":4,"channel":"room"}',
       "tick 60001")
script("grace-timeout-ttl",
       "open alice - &remainPresentForMs=1000",
       '0 {"op":"enter","id":1,"channel":"room","ttlMs":500}',
       '0 {"op":"enter","id":2,"channel":"lobby"}',
       "open bob",
       '1 {"op":"subscribe","id":3,"channel":"lobby"}',
       "tick 501",
       "close 0 abrupt",
       "tick 1001",
       '1 {"op":"get","id":4,"channel":"lobby"}')
script("forbidden",
       "open bob room-*",
       '0 {"op":"enter","id":1,"channel":"room-1"}',
       '0 {"op":"enter","id":2,"channel":"lobby"}',
       '0 {"op":"who","id":3,"channel":"lobby"}',
       '0 {"op":"activity","id":4,"kind":"k","channel":"lobby"}')
script("bad-requests",
       "open alice",
       "0 not json",
       "0 []",
       '0 {"op":"enter"}',
       '0 {"op":"enter","id":"7"}',
       '0 {"op":"enter","id":1.5}',
       '0 {"op":7,"id":1}',
       '0 {"op":"nope","id":2}',
       '0 {"op":"enter","id":3,"channel":""}',
       '0 {"op":"enter","id":4,"channel":"' + "c" * 70 + '"}',
       '0 {"op":"enter","id":5,"channel":"room","ttlMs":0}',
       '0 {"op":"enter","id":6,"channel":"room","data":' + "[" * 65 + "]" * 65 + "}",
       '0 {"op":"subscribe","id":7,"channel":"room","actions":[]}',
       '0 {"op":"subscribe","id":8,"channel":"room","since":-1}',
       '0 {"op":"history","id":9,"channel":"room","limit":0}',
       '0 {"op":"status.set","id":10,"status":"asleep"}',
       '0 {"op":"status.get","id":11,"clientIds":"alice"}',
       '0 {"op":"update","id":12,"channel":"room"}',
       '0 {"op":"enter","id":9223372036854775807,"channel":"\\ud800"}',
       '0 {"op":"enter","id":13,"channel":"\\u00e9\\u0000"}',
       '0 {"op":"enter","id":14,"channel":"room","data":"\udce9"}')
script("limits",
       "open alice",
       *['0 {"op":"enter","id":%d,"channel":"c%d"}' % (i, i) for i in range(10)],
       *['0 {"op":"status.watch","id":%d,"clientIds":["u%d"]}' % (100 + i, i) for i in range(10)])
script("rest-with-state",
       "open alice - &device=laptop",
       '0 {"op":"enter","id":1,"channel":"room","data":{"a":1}}',
       "rest GET /v1/channels/room/presence",
       "rest GET /v1/channels/room/history?limit=1",
       "rest GET /v1/channels?limit=1",
       "rest GET /v1/who",
       "rest PUT /v1/users/alice/status {\"status\":\"away\",\"text\":\"brb\"}",
       "rest GET /v1/users/alice/devices",
       "rest POST /v1/commands {\"clientId\":\"alice\",\"text\":\"/presence sync\"}",
       "rest POST /v1/tokens {\"clientId\":\"alice\",\"ttlMs\":1000}",
       "rest GET /metrics")
script("shutdown",
       "open alice",
       '0 {"op":"enter","id":1,"channel":"room"}',
       "shutdown",
       "open bob",
       '0 {"op":"ping","id":2}')
script("gen", "gen " + "".join(chr(c) for c in range(32, 127)) * 2)

# ----- jwt: [mode][payload] (jwt.cc) ---------------------------------------------------------------
def jwt(name, mode, payload):
    if isinstance(payload, str):
        payload = payload.encode()
    write("jwt", name, bytes([mode]) + payload)


jwt("raw-valid", 0, token({"sub": "alice", "exp": 4102444800}))
jwt("raw-channels", 0, token({"sub": "alice", "exp": 4102444800, "channels": ["a*", "b"]}))
jwt("raw-none", 0, b64(b'{"alg":"none"}') + "." + b64(b'{"sub":"a","exp":4102444800}') + ".")
jwt("raw-garbage", 0, "a.b.c")
jwt("signed-header", 1, b'{"alg":"HS256","typ":"JWT"}\x00{"sub":"x","exp":4102444800}')
jwt("signed-hs512", 1, b'{"alg":"HS512"}\x00{"sub":"x","exp":4102444800}')
jwt("claims", 2, '{"sub":"alice","exp":4102444800,"channels":["room-*"]}')
jwt("claims-expired", 2, '{"sub":"alice","exp":1}')
jwt("claims-exp-string", 2, '{"sub":"alice","exp":"4102444800"}')
jwt("claims-exp-double", 2, '{"sub":"alice","exp":4102444800.5}')
jwt("claims-exp-huge", 2, '{"sub":"alice","exp":1e300}')
jwt("claims-exp-uint64", 2, '{"sub":"alice","exp":18446744073709551615}')
jwt("claims-sub-number", 2, '{"sub":42,"exp":4102444800}')
jwt("claims-sub-empty", 2, '{"sub":"","exp":4102444800}')
jwt("claims-channels-bad", 2, '{"sub":"a","exp":4102444800,"channels":[1,"b"]}')
jwt("claims-channels-object", 2, '{"sub":"a","exp":4102444800,"channels":{"a":1}}')
jwt("claims-not-object", 2, '[1,2,3]')
jwt("mint", 3, b"alice\x00room-*\x00lobby")
jwt("mint-no-channels", 3, b"bob")
jwt("mint-empty-channels", 3, b"carol\x00")
jwt("mint-unicode", 3, "\u00e9\u20ac\x00\U0001f600*".encode())

# ----- glob: pattern \0 text ---------------------------------------------------------------------
for name, pattern, text in [
    ("literal", "room", "room"), ("prefix", "room-*", "room-42"), ("suffix", "*-eu", "room-eu"),
    ("middle", "a*b*c", "axxbyyc"), ("star", "*", ""), ("stars", "***", "abc"),
    ("no-match", "a*b", "aaaa"), ("backtrack", "*a*a*a*a*a*b", "a" * 200),
    ("utf8", "\u20ac*", "\u20ac1"), ("empty-pattern", "", "x"),
]:
    write("glob", name, pattern.encode() + b"\x00" + text.encode())
write("glob", "long-pattern", b"*a" * 2000 + b"b\x00" + b"a" * 256)

# ----- command: one line -------------------------------------------------------------------------
for i, line in enumerate([
    "/presence", "/presence who", "/presence who room-1", "/presence who a b",
    "/presence activity", "/presence online", "/presence away", "/presence DND",
    "/presence offline", "/presence status \"out to lunch\"", "/presence status clear",
    "/presence status \"\"", "/presence status \"a \\\"quoted\\\" \\\\ text\"",
    "/presence status \u201ctypographic\u201d", "/presence status unquoted rest of line",
    "/presence status \"unclosed", "/presence status \"a\" trailing", "/presence devices",
    "/presence sync", "/presence help", "/presence help me", "/presence dance", "hello",
    "", "   /PRESENCE   who   ", "/presence status \u201cunclosed",
]):
    write("command", "line-%02d" % i, line)

# ----- config: [mode][...] (config.cc) ------------------------------------------------------------
write("config", "toml-example", b"\x00" + b'listen = "0.0.0.0:7070"\ndata_dir = "/var/lib/p"\n'
      b"heartbeat_ms = 10000\nremain_present_for_ms = 20000\n")
write("config", "toml-all-types", b"\x00" + b'rate_per_second = 2500.5\nrate_burst = 1234567.0\n'
      b'storage = "memory"\nmax_frame_bytes = 1_000\nio_threads = 0x2\n')
write("config", "toml-bad-type", b"\x00heartbeat_ms = [1, 2]\n")
write("config", "toml-table", b"\x00[server]\nlisten = \"x\"\n")
write("config", "toml-unknown", b"\x00no_such_key = 1\n")
write("config", "toml-syntax", b"\x00listen = \n")
write("config", "toml-reconcile", b"\x00remain_present_for_ms = 90000\nmax_remain_present_for_ms"
      b" = 1000\naway_after_ms = 50\noffline_after_ms = 10\n")
# toml++ 3.3.0's whitespace table reaches __builtin_unreachable (upstream #190, #295): the fuzz
# target must parse with the server's shared library, never a header-only copy of the parser.
write("config", "toml-unicode-190", b'\x00s = """\\\n\xc2\xa7"""\n')
write("config", "toml-unicode-295", b"\x00\xcc\xaa")
for i, value in enumerate([b"500", b"-1", b"9223372036854775807", b"1e300", b"0x10", b"",
                           b"127.0.0.1:0", b"[::1]:7070", b"memory", b"nan", b"inf"]):
    write("config", "setting-%02d" % i, bytes([1, i * 3]) + value)
