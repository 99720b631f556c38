#!/usr/bin/python3
"""Soak test for presenced: bounded churn against the ASan build, checked against a shadow model.

A few hundred WebSocket connections (users with 1-3 devices each) connect, enter, update (plain
and merge, with and without TTL), leave, subscribe and unsubscribe, set and read status (by
WebSocket and REST), watch other users, read history, close cleanly, drop abruptly (TCP closed
without a close frame), resume within the grace period, take a live connection over with its key,
and abandon connections to time out. The generator keeps a shadow model of what the server must
hold: every member (channel, connectionId, data, expiry) and every user's status and text, derived
only from the replies the server gave to this generator's own sequential requests.

Every checkpoint quiesces the churn, waits (on conditions, with deadlines) until every abandoned
connection's grace period and every TTL has run out, then compares, for every channel and user:
the model, the REST view (presence, status, history, metrics) and what the subscribers and status
watchers built from their event streams. Meanwhile every event stream is checked as it arrives
(serials +1 per channel for a full subscriber, no enter for a present member, every leave with a
reason the generator caused, nothing after unsubscribe, status pushes chain `previous`).
The server's RSS is sampled every minute; the run fails on a sanitizer report, a crash, an exit
code other than 0 after SIGTERM, any model difference, or RSS still growing in the second half.

Usage: /usr/bin/python3 tests/soak/soak.py --minutes 2     (see tests/soak/README.md)
"""
import argparse
import asyncio
import collections
import hashlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

ACTIONS = ("enter", "update", "leave")
REASONS = ("left", "disconnected", "timeout", "expired")
STATUSES = ("online", "away", "dnd", "offline")
MEMBER_KEYS = {"clientId", "connectionId", "data", "timestamp", "expiresAt"}
STATUS_KEYS = {"clientId", "status", "text", "lastSeen", "activeDevice"}
REPLY_TIMEOUT = 30.0
TEXTS = ["lunch", "in a meeting", "héllo wörld", "日本語のテキスト", "emoji 😀🎉", 'say "hi"',
         "back\\slash", "tab\there", "line\nbreak", "</script>", "", "x" * 200, "zero\u200bwidth"]
STRINGS = ["a", "héllo", "日本", "😀", 'q"uote', "b\\s", "\t\n", "{not json}", "", "long" * 40]


def wall_ms():
    return int(time.time() * 1000)


def mono():
    return time.monotonic()


def random_value(depth=0):
    r = random.random()
    if r < 0.35:
        return random.randint(-10**6, 10**12)
    if r < 0.65:
        return random.choice(STRINGS)
    if r < 0.75:
        return random.choice([True, False])
    if r < 0.85 and depth < 2:
        return [random_value(depth + 1) for _ in range(random.randint(0, 3))]
    if r < 0.95 and depth < 2:
        return {"n%d" % i: random_value(depth + 1) for i in range(random.randint(0, 3))}
    return None


def random_object():
    return {"k%d" % random.randint(0, 7): random_value() for _ in range(random.randint(1, 4))}


def random_data():
    r = random.random()
    if r < 0.8:
        return random_object()
    if r < 0.87:
        return random.choice(STRINGS)
    if r < 0.92:
        return random.randint(0, 1000)
    if r < 0.96:
        return [random_value(1)]
    return None


def shallow_merge(current, patch):
    if isinstance(current, dict) and isinstance(patch, dict):
        out = dict(current)
        out.update(patch)
        return out
    return patch


def short(x, n=300):
    s = json.dumps(x, ensure_ascii=False, sort_keys=True) if not isinstance(x, str) else x
    return s if len(s) <= n else s[:n] + "..."


class SoakError(Exception):
    pass


class Sub:
    """One subscription of one connection and the channel replica it builds from its events."""

    def __init__(self, conn, ch, actions=None, log=False):
        self.conn, self.ch, self.actions = conn, ch, actions
        self.full = actions is None
        self.base = False      # the replica started from a snapshot (else only serials are checked)
        self.replica = {}      # connectionId -> member, from the snapshot and the events
        self.last = None       # serial of the last event applied (or of the snapshot)
        self.mode = "pending"  # pending / resync (buffering until the reply) / live / unsubscribing
        self.buffer = []
        self.broken = None     # first error; the replica is not trusted afterwards
        self.log = collections.deque(maxlen=400) if log else None  # raw events, for history checks
        self.events = 0

    def fail(self, msg, frame=None):
        soak = self.conn.soak
        soak.error("stream", "%s channel %s: %s%s" % (self.conn.label(), self.ch, msg,
                                                       (" frame=" + short(frame)) if frame else ""))
        self.broken = self.broken or msg

    def feed(self, f, from_reply=False):
        if self.broken:
            return
        s = f["serial"]
        if self.last is not None:
            if self.full and s != self.last + 1:
                self.fail("serial %d after %d (%s)" % (s, self.last, "gap" if s > self.last else
                                                       "repeat/backwards"), f)
                return
            if not self.full and s <= self.last:
                self.fail("serial %d not above %d" % (s, self.last), f)
                return
        self.last = s
        self.events += 1
        self.conn.soak.note_serial(self.ch, s)
        if self.log is not None:
            self.log.append(f)
        action, m = f["action"], f["member"]
        if not self.full:
            if action not in self.actions:
                self.fail("action %s outside the filter %s" % (action, self.actions), f)
            return
        if not self.base:
            return
        cid = m["connectionId"]
        if action == "enter":
            if cid in self.replica:
                self.fail("enter for a member already present", f)
                return
            self.replica[cid] = m
        elif action == "update":
            if cid not in self.replica:
                self.fail("update for a member not present", f)
                return
            self.replica[cid] = m
        else:
            if cid not in self.replica:
                self.fail("leave for a member not present", f)
                return
            del self.replica[cid]
            if self.log is not None:  # one stream per channel checks the reason against the model
                self.conn.soak.check_leave_reason(self.ch, m, f.get("reason"))

    def settle(self, reply, since=None):
        """Applies a subscribe reply (snapshot or events after `since`), then what was buffered."""
        if "events" in reply:
            if since is None:
                self.fail("events in a reply to a subscribe without since", reply)
                return
            evs = reply["events"]
            for e in evs:
                self.conn.soak.check_event_shape(e, self.conn)
            if self.full:
                got = [e["serial"] for e in evs]
                if got != list(range(since + 1, reply["serial"] + 1)):
                    self.fail("subscribe since=%d: reply serial %d with events %s (expected every serial "
                              "after since)" % (since, reply["serial"], got[:20]))
                    return
            # While resyncing nothing was applied, so `last` is still `since` (None: a new
            # subscription that asked for events after `since`; it has no snapshot to replicate).
            if self.last is None:
                self.last = since
            for e in evs:
                if e["serial"] > self.last:
                    self.feed(e)
            if self.last < reply["serial"]:
                self.last = reply["serial"]
            self.conn.soak.counts["resyncs_events"] += 1
        else:
            if "members" not in reply:
                self.fail("subscribe reply without members or events", reply)
                return
            for m in reply["members"]:
                self.conn.soak.check_member_shape(m, self.conn, "subscribe reply")
            self.replica = {m["connectionId"]: m for m in reply["members"]}
            self.base = True
            if self.last is not None and reply["serial"] < self.last:
                self.fail("snapshot serial %d below the %d already seen" % (reply["serial"], self.last))
            self.last = reply["serial"]
            if since is not None and not reply.get("resynced"):
                self.fail("snapshot for since=%d without resynced:true" % since, reply)
            if since is not None:
                self.conn.soak.counts["resyncs_snapshot"] += 1
        self.conn.soak.note_serial(self.ch, self.last)
        self.mode = "live"
        buffered, self.buffer = self.buffer, []
        for f in buffered:
            if f["type"] == "sync":
                if f["serial"] > self.last:
                    self.replica = {m["connectionId"]: m for m in f["members"]}
                    self.base = True
                    self.last = f["serial"]
            elif f["serial"] > self.last:
                self.feed(f)

    def on_frame(self, f):
        if self.mode in ("pending", "resync"):
            self.buffer.append(f)
        elif self.mode == "unsubscribing":
            pass
        elif f["type"] == "sync":
            self.fail("sync frame on a live subscription (not after a resume)", f)
        else:
            self.feed(f)


class Conn:
    """One connection (connectionId) of a user's device or a watcher; survives resumes."""

    def __init__(self, soak, client_id, device, user=None):
        self.soak, self.client_id, self.device, self.user = soak, client_id, device, user
        self.ws = None
        self.gen = 0
        self.closing_gens = set()  # sockets this side closed or aborted
        self.id = self.key = None
        self.grace_ms = None
        self.rp_param = None       # remainPresentForMs in the URL, or None for the default
        self.state = "new"         # live / dropped / doomed / closed
        self.deadline_ms = None    # doomed: when its grace period ends (wall ms)
        self.members = {}          # channel -> {"data", "expiresAt"}: the model of its members
        self.subs = {}             # channel -> Sub
        self.unsubscribed = set()
        self.watches = {}          # clientId -> [status, text], None while (re)watching, "-" unwatching
        self.unwatched = set()
        self.trail = collections.defaultdict(lambda: collections.deque(maxlen=8))  # clientId -> what it saw
        self.pending = {}
        self.next_id = 0
        self.raw = collections.deque(maxlen=40)
        self.sent = collections.deque(maxlen=20)

    def label(self):
        return "conn %s (%s/%s)" % (self.id, self.client_id, self.device)

    async def open(self, resume=None):
        params = {"token": self.soak.token(self.client_id), "device": self.device}
        if resume:
            params["resume"] = resume
        if self.rp_param is not None:
            params["remainPresentForMs"] = self.rp_param
        url = "ws://127.0.0.1:%d/v1/ws?%s" % (self.soak.port, urllib.parse.urlencode(params))
        ws = await websockets.connect(url, max_size=None, max_queue=None, ping_interval=None,
                                      open_timeout=REPLY_TIMEOUT, close_timeout=10)
        try:
            first = json.loads(await asyncio.wait_for(ws.recv(), REPLY_TIMEOUT))
        except Exception:
            ws.transport.abort()
            raise
        self.soak.counts["connects"] += 1
        if first.get("type") != "connected":
            ws.transport.abort()
            raise SoakError("first frame is not connected: " + short(first))
        expected = {"type", "connectionId", "connectionKey", "clientId", "heartbeatMs",
                    "remainPresentForMs", "resumed", "epoch"}
        if set(first) != expected:
            self.soak.error("wire", "connected frame keys %s" % sorted(first))
        want_rp = self.soak.cfg.grace_ms if self.rp_param is None else min(self.rp_param,
                                                                           self.soak.cfg.max_grace_ms)
        if (first.get("clientId") != self.client_id or first.get("epoch") != self.soak.epoch or
                first.get("heartbeatMs") != self.soak.cfg.heartbeat_ms or
                first.get("remainPresentForMs") != want_rp or
                not re.fullmatch(r"[0-9a-f]{32}", first.get("connectionKey", ""))):
            self.soak.error("wire", "connected frame %s (expected client %s, grace %d)" %
                            (short(first), self.client_id, want_rp))
        return ws, first

    def install(self, ws, first):
        self.gen += 1
        self.ws = ws
        self.id, self.key = first["connectionId"], first["connectionKey"]
        self.grace_ms = first["remainPresentForMs"]
        self.state = "live"
        self.soak.conns[self.id] = self
        self.soak.client_of[self.id] = self.client_id
        asyncio.ensure_future(self._read(ws, self.gen))

    async def _read(self, ws, gen):
        try:
            async for msg in ws:
                if gen != self.gen:
                    continue  # a socket taken over by a resume: its frames are not ours any more
                self.soak.counts["frames_in"] += 1
                self.raw.append((round(mono() - self.soak.t_start, 3), gen, msg[:160]))
                if self.soak.cfg.sabotage == "stream" and random.random() < 0.001 and '"presence"' in msg:
                    continue  # lose a frame: the stream checks must notice
                try:
                    f = json.loads(msg)
                except ValueError:
                    self.soak.error("wire", "%s: frame is not JSON: %s" % (self.label(), short(msg)))
                    continue
                self.on_frame(f)
        except websockets.ConnectionClosed:
            pass
        except Exception as e:  # a bug in this generator: report it, do not hide it
            self.soak.error("generator", "%s reader: %s\n%s" % (self.label(), e, traceback.format_exc()))
        finally:
            if gen == self.gen and gen not in self.closing_gens and self.state == "live":
                self.soak.error("server-close", "%s: the server ended the connection (code %s %r)" %
                                (self.label(), ws.close_code, ws.close_reason))
                self.state = "lost"
                for fut, _ in self.pending.values():
                    if not fut.done():
                        fut.set_exception(SoakError("connection closed by the server"))
                self.doom()
                if self.user:
                    self.user.lost(self)

    def doom(self):
        """Abrupt drop not resumed: its members stay for the grace period, then leave (timeout)."""
        for ch in self.members:
            self.soak.allow(ch, self.id, "timeout")
        self.state = "doomed"
        self.deadline_ms = wall_ms() + (self.grace_ms or 0)
        for sub in self.subs.values():
            sub.mode = "unsubscribing"

    def on_frame(self, f):
        t = f.get("type")
        if t == "reply":
            fut, hook = self.pending.pop(f.get("id"), (None, None))
            if fut is None:
                self.soak.error("wire", "%s: reply with unknown id: %s" % (self.label(), short(f)))
                return
            if hook is not None and f.get("ok"):
                # Applied here, in frame order: a frame after this reply must see its effect, even
                # before the waiting coroutine resumes.
                try:
                    hook(f)
                except Exception as e:
                    self.soak.error("generator", "%s reply hook: %s\n%s" % (self.label(), e,
                                                                          traceback.format_exc()))
            if not fut.done():
                fut.set_result(f)
        elif t == "presence":
            self.soak.check_event_shape(f, self)
            sub = self.subs.get(f.get("channel"))
            if sub is None:
                self.soak.error("stream", "%s: event for channel %s %s: %s" % (
                    self.label(), f.get("channel"),
                    "after its unsubscribe reply" if f.get("channel") in self.unsubscribed
                    else "never subscribed", short(f)))
                return
            sub.on_frame(f)
        elif t == "sync":
            self.soak.counts["sync_frames"] += 1
            sub = self.subs.get(f.get("channel"))
            if sub is None:
                self.soak.error("stream", "%s: sync for unsubscribed channel: %s" % (self.label(), short(f)))
                return
            sub.on_frame(f)
        elif t == "status":
            self.on_status(f)
        else:
            self.soak.error("wire", "%s: unknown frame %s" % (self.label(), short(f)))

    def on_status(self, f):
        soak = self.soak
        if set(f) != STATUS_KEYS | {"type", "previous"} or f["status"] not in STATUSES or \
                f["previous"] not in STATUSES:
            soak.error("wire", "%s: bad status push %s" % (self.label(), short(f)))
            return
        if (f["status"] == "offline") != (f["activeDevice"] is None):
            soak.error("wire", "%s: status push activeDevice vs status: %s" % (self.label(), short(f)))
        cid = f["clientId"]
        if cid == self.client_id:
            soak.counts["self_pushes"] += 1
            return
        soak.counts["watch_pushes"] += 1
        if cid not in self.watches:
            soak.error("stream", "%s: status push for %s %s" % (
                self.label(), cid, "after its unwatch reply" if cid in self.unwatched else "never watched"))
            return
        rep = self.watches[cid]
        self.trail[cid].append((round(mono() - soak.t_start, 3), "push", f["previous"], f["status"], f["text"],
                                "ignored" if rep is None or rep == "-" else ""))
        if rep is None or rep == "-":
            return  # a watch reply is on its way and supersedes this
        if f["previous"] != rep[0]:
            u = soak.user_by_id.get(cid)
            soak.error("stream", "%s: status push for %s has previous=%s but the last status it "
                       "sent was %s: %s; this watcher saw %s; the user did %s" % (
                           self.label(), cid, f["previous"], rep[0], short(f), list(self.trail[cid]),
                           list(u.trail) if u else None))
            if soak.cfg.verbose:
                print("[soak] frames read by %s:\n  %s\n[soak] requests sent: %s" % (
                    self.label(), "\n  ".join(map(str, self.raw)), list(self.sent)), flush=True)
        if f["status"] == rep[0] and f["text"] == rep[1]:
            soak.counts["redundant_pushes"] += 1
        self.watches[cid] = [f["status"], f["text"]]

    async def request(self, op, _hook=None, **fields):
        """Sends a request and waits for its reply; `_hook(reply)` runs as the reply is read."""
        self.next_id += 1
        rid = self.next_id
        fut = asyncio.get_running_loop().create_future()
        self.pending[rid] = (fut, _hook)
        t0 = wall_ms()
        start = mono()
        self.sent.append((round(mono() - self.soak.t_start, 3), self.gen, op, rid))
        await self.ws.send(json.dumps(dict(op=op, id=rid, **fields)))
        try:
            r = await asyncio.wait_for(fut, REPLY_TIMEOUT)
        except asyncio.TimeoutError:
            self.pending.pop(rid, None)
            raise SoakError("%s: no reply to %s within %ds" % (self.label(), op, REPLY_TIMEOUT))
        self.soak.note_op(op, mono() - start)
        if not r.get("ok"):
            self.soak.counts["error_reply_%s_%s" % (op, (r.get("error") or {}).get("code"))] += 1
        if set(r) - {"type", "id", "ok", "error"} and not r.get("ok"):
            self.soak.error("wire", "%s: error reply with extra keys: %s" % (self.label(), short(r)))
        return r, t0, wall_ms()

    async def ok(self, op, _hook=None, **fields):
        r, t0, t1 = await self.request(op, _hook, **fields)
        if not r.get("ok"):
            raise SoakError("%s: %s %s failed: %s" % (self.label(), op, short(fields, 200), short(r)))
        return r, t0, t1

    async def resync(self):
        """After a resume: subscribe again with since/epoch, watch again (the docs' recipe)."""
        for ch, sub in list(self.subs.items()):
            since = sub.last
            fields = {"channel": ch}
            if since is not None:
                fields.update(since=since, epoch=self.soak.epoch)
            if sub.actions:
                fields["actions"] = sub.actions
            r, _, _ = await self.ok("subscribe", lambda r, sub=sub, since=since: sub.settle(r, since=since),
                                    **fields)
            if r.get("epoch") != self.soak.epoch:
                self.soak.error("wire", "subscribe reply epoch %s" % r.get("epoch"))
            self.soak.counts["resubscribes"] += 1
        ids = [cid for cid, v in self.watches.items() if v != "-"]
        if ids:
            await self.ok("status.watch", lambda r: self.apply_watch_reply(ids, r), clientIds=ids)

    def apply_watch_reply(self, ids, r):
        st = r.get("statuses")
        if not isinstance(st, list) or [s.get("clientId") for s in st] != ids:
            self.soak.error("wire", "%s: status.watch reply %s for %s" % (self.label(), short(r), ids))
            return
        for s in st:
            self.watches[s["clientId"]] = [s["status"], s["text"]]
            self.trail[s["clientId"]].append((round(mono() - self.soak.t_start, 3), "reply", s["status"], s["text"]))

    async def close(self):
        self.closing_gens.add(self.gen)
        self.state = "closed"
        try:
            await asyncio.wait_for(self.ws.close(), 15)
        except Exception:
            self.ws.transport.abort()

    def abort(self):
        self.closing_gens.add(self.gen)
        self.ws.transport.abort()


class Device:
    def __init__(self, name):
        self.name, self.conn = name, None


class User:
    """A user and their devices; one task runs all of its operations one after another, so the
    model of its connections and status follows from its own replies."""

    def __init__(self, soak, idx):
        self.soak = soak
        self.id = "soak-u%03d" % idx
        self.devices = [Device(d) for d in ("laptop", "phone", "tablet")[:random.choice((1, 2, 2, 3))]]
        self.manual = None   # None = automatic, else away / dnd / offline set by hand
        self.text = None
        self.uncertain_until = 0.0  # monotonic: a closed/abandoned connection may still be on the server
        self.trail = collections.deque(maxlen=12)

    def note(self, *what):
        self.trail.append((round(mono() - self.soak.t_start, 3),) + what)

    def live_conns(self):
        return [d.conn for d in self.devices if d.conn is not None and d.conn.state == "live"]

    def expected_status(self, live):
        if not live:
            return "offline"
        return self.manual or "online"

    def lost(self, conn):
        for d in self.devices:
            if d.conn is conn:
                d.conn = None
        self.uncertain_until = mono() + (conn.grace_ms or 0) / 1000 + 5

    def check_status_view(self, v, where, live=True):
        soak = self.soak
        if not isinstance(v, dict) or set(v) != STATUS_KEYS:
            soak.error("wire", "%s: %s status view %s" % (self.id, where, short(v)))
            return
        want = self.expected_status(live)
        if v["clientId"] != self.id or v["status"] != want or v["text"] != self.text:
            soak.error("model", "%s: %s gave status %s text %r; model: %s text %r (manual %s)" % (
                self.id, where, v.get("status"), v.get("text"), want, self.text, self.manual))
        if (v["status"] == "offline") != (v["activeDevice"] is None):
            soak.error("wire", "%s: %s activeDevice %r with status %s" % (self.id, where, v["activeDevice"],
                                                                        v["status"]))
        if v["activeDevice"] is not None and v["activeDevice"] not in [d.name for d in self.devices]:
            soak.error("model", "%s: %s activeDevice %r is not one of its devices" % (self.id, where,
                                                                                    v["activeDevice"]))
        if not isinstance(v["lastSeen"], int):
            soak.error("model", "%s: %s lastSeen %r for a user that has connected" % (self.id, where,
                                                                                    v["lastSeen"]))

    async def connect(self, dev):
        c = Conn(self.soak, self.id, dev.name, self)
        r = random.random()
        if r < 0.05:
            c.rp_param = 0
        elif r < 0.15:
            c.rp_param = random.choice([random.randint(400, self.soak.cfg.grace_ms), self.soak.cfg.max_grace_ms * 3])
        ws, first = await c.open()
        if first["resumed"]:
            self.soak.error("wire", "%s: a connection without resume came back resumed" % self.id)
        c.install(ws, first)
        dev.conn = c
        self.note("connect", dev.name, len(self.live_conns()))

    async def step(self):
        soak = self.soak
        dev = random.choice(self.devices)
        if dev.conn is None:
            await self.connect(dev)
            return "connect"
        c = dev.conn
        op = soak.pick_op()
        await getattr(self, "op_" + op)(c, dev)
        return op

    # ---- channel operations -------------------------------------------------------------------

    def member_state(self, m, t0, t1):
        """present / absent / ambiguous for a modelled member with an optional expiry."""
        exp = m["expiresAt"]
        if exp is None or t1 < exp - 2:
            return "present"
        if t0 > exp + 2:
            return "absent"
        return "ambiguous"

    def check_member(self, m, c, ch, data, where):
        soak = self.soak
        soak.check_member_shape(m, c, where)
        if m["connectionId"] != c.id or m["clientId"] != self.id or m["data"] != data:
            soak.error("model", "%s %s on %s: member %s, expected data %s" % (c.label(), where, ch, short(m),
                                                                             short(data)))

    async def op_enter(self, c, dev):
        soak = self.soak
        ch = soak.pick_channel()
        if len(c.members) >= 8 and ch not in c.members:
            return await self.op_leave(c, dev)
        data = random_data()
        ttl = random.randint(1000, 6000) if random.random() < 0.12 else None
        fields = {"channel": ch, "data": data}
        if ttl:
            fields["ttlMs"] = ttl
            soak.allow(ch, c.id, "expired")
        r, t0, t1 = await c.ok("enter", **fields)
        m = r.get("member")
        self.check_member(m, c, ch, data, "enter")
        if ttl is None and m["expiresAt"] is not None or \
                ttl is not None and not (t0 + ttl - 5 <= (m["expiresAt"] or 0) <= t1 + ttl + 5):
            soak.error("model", "%s enter %s ttlMs=%s: expiresAt %s (sent %d, reply %d)" % (
                c.label(), ch, ttl, m["expiresAt"], t0, t1))
        if soak.cfg.sabotage == "model" and random.random() < 0.01:
            data = {"sabotaged": True}  # the checkpoints must find this
        c.members[ch] = {"data": data, "expiresAt": m["expiresAt"]}

    async def op_update(self, c, dev, merge=False):
        soak = self.soak
        if not c.members and random.random() < 0.9:
            return await self.op_enter(c, dev)
        if not c.members or random.random() < 0.03:
            ch = soak.pick_channel()
            if ch in c.members:
                return
            r, _, _ = await c.request("update", channel=ch, data=1)
            if r.get("ok") or r.get("error", {}).get("code") != "not_present":
                soak.error("model", "%s update on %s without membership: %s" % (c.label(), ch, short(r)))
            return
        ch = random.choice(list(c.members))
        cur = c.members[ch]
        if merge:
            patch = random_object() if random.random() < 0.9 else random_data()
            expected = shallow_merge(cur["data"], patch)
        else:
            patch = random_data()
            expected = patch
        fields = {"channel": ch, "data": patch}
        if merge:
            fields["merge"] = True
        ttl = random.randint(1000, 6000) if random.random() < 0.08 else None
        if ttl:
            fields["ttlMs"] = ttl
            soak.allow(ch, c.id, "expired")
        r, t0, t1 = await c.request("update", **fields)
        state = self.member_state(cur, t0, t1)
        if r.get("ok"):
            if state == "absent":
                soak.error("model", "%s update on %s succeeded %d ms after its expiry %d" % (
                    c.label(), ch, t0 - cur["expiresAt"], cur["expiresAt"]))
            m = r.get("member")
            self.check_member(m, c, ch, expected, "update merge=%s" % merge)
            if ttl is None and m["expiresAt"] != cur["expiresAt"] or \
                    ttl is not None and not (t0 + ttl - 5 <= (m["expiresAt"] or 0) <= t1 + ttl + 5):
                soak.error("model", "%s update %s ttlMs=%s: expiresAt %s, had %s" % (
                    c.label(), ch, ttl, m["expiresAt"], cur["expiresAt"]))
            c.members[ch] = {"data": expected, "expiresAt": m["expiresAt"]}
        elif r.get("error", {}).get("code") == "not_present" and state != "present":
            del c.members[ch]  # it expired
            soak.counts["raced_expiry"] += 1
        else:
            soak.error("model", "%s update on %s (model: member, %s): %s" % (c.label(), ch, state, short(r)))
            del c.members[ch]

    async def op_merge(self, c, dev):
        await self.op_update(c, dev, merge=True)

    async def op_leave(self, c, dev):
        soak = self.soak
        if not c.members and random.random() < 0.9:
            return await self.op_enter(c, dev)
        if not c.members or random.random() < 0.03:
            ch = soak.pick_channel()
            if ch in c.members:
                return
            r, _, _ = await c.request("leave", channel=ch)
            if r.get("ok") or r.get("error", {}).get("code") != "not_present":
                soak.error("model", "%s leave %s without membership: %s" % (c.label(), ch, short(r)))
            return
        ch = random.choice(list(c.members))
        cur = c.members[ch]
        if soak.cfg.sabotage != "reason":
            soak.allow(ch, c.id, "left")
        fields = {"channel": ch}
        if random.random() < 0.3:
            fields["data"] = {"bye": random.randint(0, 99)}
        r, t0, t1 = await c.request("leave", **fields)
        state = self.member_state(cur, t0, t1)
        if r.get("ok"):
            if state == "absent":
                soak.error("model", "%s leave on %s succeeded after its expiry" % (c.label(), ch))
        elif r.get("error", {}).get("code") == "not_present" and state != "present":
            soak.counts["raced_expiry"] += 1
        else:
            soak.error("model", "%s leave on %s (model: member, %s): %s" % (c.label(), ch, state, short(r)))
        del c.members[ch]

    async def op_get(self, c, dev):
        soak = self.soak
        ch = random.choice(list(c.members)) if c.members and random.random() < 0.7 else soak.pick_channel()
        by_user = random.random() < 0.4
        fields = {"channel": ch}
        if by_user:
            fields["clientId"] = self.id
        else:
            fields["connectionId"] = c.id
        floor = soak.max_serial.get(ch, 0)
        r, t0, t1 = await c.ok("get", **fields)
        if r.get("epoch") != soak.epoch or not isinstance(r.get("serial"), int) or r["serial"] < floor:
            soak.error("wire", "%s get %s: epoch/serial %s %s (floor %d)" % (c.label(), ch, r.get("epoch"),
                                                                            r.get("serial"), floor))
        got = {m["connectionId"]: m for m in r.get("members", [])}
        for m in got.values():
            soak.check_member_shape(m, c, "get")
        conns = self.live_conns() if by_user else [c]
        if by_user and mono() < self.uncertain_until:
            return
        want = {}
        for cc in conns:
            mm = cc.members.get(ch)
            if mm is None:
                continue
            st = self.member_state(mm, t0, t1)
            if st == "ambiguous":
                return
            if st == "present":
                want[cc.id] = mm["data"]
        have = {cid: m["data"] for cid, m in got.items()}
        if have != want:
            soak.error("model", "%s get %s %s: server %s, model %s" % (
                c.label(), ch, "clientId" if by_user else "connectionId", short(have), short(want)))

    async def op_subscribe(self, c, dev):
        soak = self.soak
        if len(c.subs) >= 3:
            return await self.op_unsubscribe(c, dev)
        ch = soak.pick_channel(uniform=True)
        if ch in c.subs:
            return
        actions = None
        if random.random() < 0.15:
            actions = random.sample(ACTIONS, random.randint(1, 2))
        sub = Sub(c, ch, actions)
        c.subs[ch] = sub
        c.unsubscribed.discard(ch)
        floor = soak.max_serial.get(ch, 0)
        fields = {"channel": ch}
        if actions:
            fields["actions"] = actions
        since = None
        if random.random() < 0.12 and floor > 0:
            # Around the ring's end (1,000 events) and before the channel was last recreated: the
            # reply holds every event after `since`, or a snapshot with resynced:true.
            since = max(0, floor - random.choice([random.randint(0, 50), random.randint(900, 1100),
                                                  random.randint(0, floor)]))
            bogus = random.random() < 0.2
            fields.update(since=since, epoch="not-this-epoch" if bogus else soak.epoch)
        try:
            r, _, _ = await c.ok("subscribe", lambda r: sub.settle(r, since=since), **fields)
        except Exception:
            c.subs.pop(ch, None)
            raise
        if r.get("epoch") != soak.epoch or r.get("serial", -1) < floor:
            soak.error("wire", "%s subscribe %s: serial %s below %d seen before, or epoch %s" % (
                c.label(), ch, r.get("serial"), floor, r.get("epoch")))
        if since is not None and fields["epoch"] != soak.epoch and "events" in r:
            soak.error("wire", "%s subscribe %s since=%d with another epoch returned events" % (
                c.label(), ch, since))
        if since is not None:
            soak.counts["subscribe_since_%s" % ("events" if "events" in r else "snapshot")] += 1

    async def op_unsubscribe(self, c, dev):
        if not c.subs:
            ch = self.soak.pick_channel()
            if ch in c.subs:
                return
            await c.ok("unsubscribe", channel=ch)
            return
        ch = random.choice(list(c.subs))
        c.subs[ch].mode = "unsubscribing"

        def done(r):
            del c.subs[ch]
            c.unsubscribed.add(ch)
        await c.ok("unsubscribe", done, channel=ch)

    async def op_history(self, c, dev):
        soak = self.soak
        ch = soak.pick_channel()
        direction = random.choice(["backwards", "forwards"])
        limit = random.randint(1, 50)
        r, _, _ = await c.ok("history", channel=ch, limit=limit, direction=direction)
        prev = soak.check_history(ch, r, limit, direction, c.label())
        if r.get("next") is not None and random.random() < 0.5 and prev is not None:
            r2, _, _ = await c.ok("history", channel=ch, limit=limit, direction=direction, cursor=r["next"])
            soak.check_history(ch, r2, limit, direction, c.label() + " page 2", after=prev)

    async def op_occupancy(self, c, dev):
        r, _, _ = await c.ok("occupancy", channel=self.soak.pick_channel())
        if not (isinstance(r.get("members"), int) and isinstance(r.get("clients"), int) and
                0 <= r["clients"] <= r["members"]):
            self.soak.error("wire", "occupancy reply %s" % short(r))

    async def op_ping(self, c, dev):
        await c.ok("ping")

    async def op_activity(self, c, dev):
        fields = {"kind": random.choice(["typing", "message", "view"])}
        if random.random() < 0.5:
            fields["channel"] = self.soak.pick_channel()
        if random.random() < 0.5:
            fields["data"] = random_object()
        await c.ok("activity", **fields)

    # ---- status ---------------------------------------------------------------------------------

    def pick_status_change(self):
        fields = {}
        r = random.random()
        if r < 0.75:
            fields["status"] = random.choice(STATUSES + ("online",))
        if r > 0.5:
            fields["text"] = random.choice(TEXTS + [None, None])
        return fields

    def apply_status_change(self, fields):
        self.note("status", short(fields, 60))
        if self.soak.cfg.sabotage == "status" and random.random() < 0.02:
            return  # the model misses a change: the status checks must notice
        if "status" in fields:
            self.manual = None if fields["status"] == "online" else fields["status"]
        if "text" in fields:
            self.text = fields["text"]

    async def op_status_set(self, c, dev):
        if random.random() < 0.02:
            r, _, _ = await c.request("status.set", text="y" * 1025)
            if r.get("ok") or r["error"]["code"] != "too_large":
                self.soak.error("wire", "status.set with 1025 bytes of text: %s" % short(r))
            return
        fields = self.pick_status_change()
        if not fields:
            return
        r, _, _ = await c.ok("status.set", **fields)
        self.apply_status_change(fields)
        self.check_status_view(r.get("status"), "status.set %s" % short(fields, 80))

    async def op_status_get(self, c, dev):
        nobody = "soak-nobody-%d" % random.randint(0, 10**6)
        r, _, _ = await c.ok("status.get", clientIds=[self.id, nobody])
        st = r.get("statuses", [])
        if len(st) != 2:
            self.soak.error("wire", "status.get reply %s" % short(r))
            return
        self.check_status_view(st[0], "status.get")
        if st[1] != {"clientId": nobody, "status": "offline", "text": None, "lastSeen": None,
                     "activeDevice": None}:
            self.soak.error("wire", "status.get of an unknown user: %s" % short(st[1]))

    async def op_rest_status(self, c, dev):
        soak = self.soak
        if random.random() < 0.5:
            fields = self.pick_status_change()
            if not fields:
                return
            code, body = await soak.http("PUT", "/v1/users/%s/status" % self.id, fields)
            if code != 200:
                soak.error("rest", "PUT status %s: %s %s" % (short(fields), code, short(body)))
                return
            self.apply_status_change(fields)
            self.check_status_view(body, "REST PUT %s" % short(fields, 80))
        else:
            code, body = await soak.http("GET", "/v1/users/%s/status" % self.id)
            if code != 200:
                soak.error("rest", "GET status: %s %s" % (code, short(body)))
                return
            self.check_status_view(body, "REST GET")

    async def op_watch(self, c, dev):
        soak = self.soak
        watched = [cid for cid, v in c.watches.items() if v != "-"]
        if len(watched) >= 8:
            return await self.op_unwatch(c, dev)
        ids = [u.id for u in random.sample(soak.users, 3) if u.id != self.id and u.id not in c.watches]
        if not ids:
            return
        for cid in ids:
            c.watches[cid] = None
            c.unwatched.discard(cid)
        await c.ok("status.watch", lambda r: c.apply_watch_reply(ids, r), clientIds=ids)

    async def op_unwatch(self, c, dev):
        watched = [cid for cid, v in c.watches.items() if v not in (None, "-")]
        if not watched:
            return
        ids = random.sample(watched, min(len(watched), random.randint(1, 3)))
        for cid in ids:
            c.watches[cid] = "-"
        def done(r):
            for cid in ids:
                del c.watches[cid]
                c.unwatched.add(cid)
        await c.ok("status.unwatch", done, clientIds=ids)

    async def op_devices(self, c, dev):
        r, t0, t1 = await c.ok("devices")
        if mono() < self.uncertain_until:
            return
        got = sorted(d["connectionId"] for d in r.get("devices", []))
        want = sorted(cc.id for cc in self.live_conns())
        if got != want:
            self.soak.error("model", "%s devices: server %s, model %s" % (c.label(), got, want))

    # ---- connection churn -----------------------------------------------------------------------

    async def op_close(self, c, dev):
        for ch in c.members:
            self.soak.allow(ch, c.id, "disconnected")
        dev.conn = None
        self.note("close", dev.name, len(self.live_conns()))
        await c.close()
        self.soak.counts["clean_closes"] += 1
        self.uncertain_until = mono() + 5

    async def op_abandon(self, c, dev):
        c.abort()
        c.doom()
        dev.conn = None
        self.note("abandon", dev.name, c.grace_ms, len(self.live_conns()))
        self.uncertain_until = mono() + c.grace_ms / 1000 + 5
        self.soak.counts["abandoned"] += 1

    async def op_drop_resume(self, c, dev):
        soak = self.soak
        if c.grace_ms < 400:
            return await self.op_abandon(c, dev)
        for ch in c.members:
            soak.allow(ch, c.id, "timeout")  # in case the resume comes too late
        for sub in c.subs.values():
            sub.mode = "resync"
        for cid in c.watches:
            if c.watches[cid] != "-":
                c.watches[cid] = None
        old_key = c.key
        c.state = "dropped"
        self.note("drop", dev.name)
        c.abort()
        t_abort = mono()
        await asyncio.sleep(random.uniform(0.02, c.grace_ms / 1000 * 0.3))
        try:
            ws, first = await c.open(resume=old_key)
        except Exception:
            c.doom()
            dev.conn = None
            raise
        elapsed_ms = (mono() - t_abort) * 1000
        if first["resumed"]:
            if first["connectionId"] != c.id or first["connectionKey"] == old_key:
                soak.error("wire", "%s resumed as %s with key %s (old key %s)" % (
                    c.label(), first["connectionId"], first["connectionKey"], old_key))
            c.install(ws, first)
            self.note("resumed", dev.name)
            soak.counts["resumes"] += 1
            await c.resync()
            if random.random() < 0.1:  # the old key works once
                ws2, f2 = await Conn(soak, self.id, dev.name).open(resume=old_key)
                if f2["resumed"]:
                    soak.error("model", "%s: the used key %s resumed again" % (c.label(), old_key))
                await ws2.close()
                self.uncertain_until = mono() + 5
        else:
            soak.counts["resume_refused"] += 1
            if elapsed_ms < c.grace_ms - 5:
                soak.error("model", "%s: resume refused %.0f ms after the drop (grace %d ms)" % (
                    c.label(), elapsed_ms, c.grace_ms))
            c.doom()
            n = Conn(soak, self.id, dev.name, self)
            n.rp_param = c.rp_param
            n.install(ws, first)
            dev.conn = n
            self.uncertain_until = mono() + c.grace_ms / 1000 + 5

    async def op_takeover(self, c, dev):
        """Resume while the old socket is alive: the old one is closed with 4000."""
        soak = self.soak
        for sub in c.subs.values():
            sub.mode = "resync"
        for cid in c.watches:
            if c.watches[cid] != "-":
                c.watches[cid] = None
        old_ws, old_key = c.ws, c.key
        c.closing_gens.add(c.gen)
        c.gen += 1  # frames still arriving on the old socket are ignored from here on
        ws, first = await c.open(resume=old_key)
        if not first["resumed"] or first["connectionId"] != c.id:
            soak.error("model", "%s: takeover with its live key gave %s" % (c.label(), short(first)))
            old_ws.transport.abort()
            if first["resumed"]:
                c.install(ws, first)
                return
            c.doom()
            n = Conn(soak, self.id, dev.name, self)
            n.install(ws, first)
            dev.conn = n
            return
        c.install(ws, first)
        soak.counts["takeovers"] += 1
        try:
            await asyncio.wait_for(old_ws.wait_closed(), 10)
        except asyncio.TimeoutError:
            pass
        if old_ws.close_code != 4000:
            soak.error("wire", "%s: old socket after takeover closed with %s, expected 4000" % (
                c.label(), old_ws.close_code))
            old_ws.transport.abort()
        await c.resync()


OP_WEIGHTS = {
    "enter": 14, "update": 8, "merge": 8, "leave": 8, "get": 6, "subscribe": 5, "unsubscribe": 2,
    "status_set": 5, "status_get": 3, "rest_status": 1, "watch": 2, "unwatch": 1, "history": 3,
    "occupancy": 1, "ping": 1, "activity": 1, "devices": 1,
    "close": 2, "drop_resume": 2.5, "abandon": 1, "takeover": 0.5,
}


class Soak:
    def __init__(self, cfg):
        self.cfg = cfg
        self.errors = []
        self.error_counts = collections.Counter()
        self.counts = collections.Counter()
        self.op_counts = collections.Counter()
        self.op_time = collections.Counter()
        self.ops = 0
        self.conns = {}         # connectionId -> Conn that may have members on the server
        self.client_of = {}     # connectionId -> clientId, every connection ever seen
        self.allowed = collections.defaultdict(set)  # (channel, connectionId) -> leave reasons
        self.max_serial = {}
        self.tokens = {}
        self.running = asyncio.Event()
        self.busy = 0
        self.stop = False
        self.minutes = []
        self.checkpoints = []
        self.max_lag = 0.0
        self.lag_minute = 0.0
        self.op_names = list(OP_WEIGHTS)
        self.op_w = [OP_WEIGHTS[k] for k in self.op_names]
        self.channels = ["soak-ch%02d" % i for i in range(cfg.channels)]
        # Zipf-like popularity; even channels have a dedicated watcher (never empty of
        # subscribers), odd ones may be destroyed when empty and created again.
        self.ch_w = [1.0 / (1 + i) ** 0.8 for i in range(cfg.channels)]
        self.watched_channels = self.channels[::2]

    # ---- reporting ------------------------------------------------------------------------------

    def error(self, kind, msg):
        self.error_counts[kind] += 1
        if len(self.errors) < 500:
            self.errors.append({"kind": kind, "at": round(mono() - self.t_start, 1), "message": msg})
        if self.error_counts[kind] <= 5 or self.cfg.verbose:
            print("[soak] ERROR %s: %s" % (kind, msg), flush=True)

    def note_op(self, op, dt):
        self.ops += 1
        self.op_counts[op] += 1
        self.op_time[op] += dt

    def note_serial(self, ch, s):
        if s is not None and s > self.max_serial.get(ch, 0):
            self.max_serial[ch] = s

    def allow(self, ch, cid, reason):
        self.allowed[(ch, cid)].add(reason)

    def check_leave_reason(self, ch, m, reason):
        ok = self.allowed.get((ch, m["connectionId"]), set())
        if reason not in ok:
            self.error("model", "leave of %s (%s) in %s with reason %r; this generator caused only %s" % (
                m["connectionId"], m["clientId"], ch, reason, sorted(ok) or "nothing"))
        self.counts["leave_" + str(reason)] += 1

    def check_member_shape(self, m, conn, where):
        if not isinstance(m, dict) or set(m) != MEMBER_KEYS or not isinstance(m["timestamp"], int) or \
                not (m["expiresAt"] is None or isinstance(m["expiresAt"], int)):
            self.error("wire", "%s: %s: bad member %s" % (conn.label(), where, short(m)))
            return
        known = self.client_of.get(m["connectionId"])
        if known is not None and known != m["clientId"]:
            self.error("model", "%s: %s: member %s has clientId %s, its connection belongs to %s" % (
                conn.label(), where, m["connectionId"], m["clientId"], known))

    def check_event_shape(self, f, conn):
        keys = {"type", "channel", "action", "member", "serial"}
        if f.get("action") == "leave":
            keys.add("reason")
        if set(f) != keys or f["action"] not in ACTIONS or not isinstance(f["serial"], int) or \
                (f["action"] == "leave" and f["reason"] not in REASONS):
            self.error("wire", "%s: bad presence event %s" % (conn.label(), short(f)))
            return
        self.check_member_shape(f["member"], conn, "event")

    def check_history(self, ch, r, limit, direction, where, after=None):
        evs = r.get("events")
        if not isinstance(evs, list) or len(evs) > limit:
            self.error("wire", "%s history %s: %s" % (where, ch, short(r)))
            return None
        prev = after
        for e in evs:
            if e.get("channel") != ch:
                self.error("wire", "%s history %s: event of another channel %s" % (where, ch, short(e)))
            keys = {"type", "channel", "action", "member", "serial"} | ({"reason"} if e.get("action") == "leave"
                                                                        else set())
            if set(e) != keys or (e.get("action") == "leave" and e.get("reason") not in REASONS):
                self.error("wire", "%s history %s: bad event %s" % (where, ch, short(e)))
            s = e.get("serial")
            if prev is not None and (s >= prev if direction == "backwards" else s <= prev):
                self.error("wire", "%s history %s %s: serial %s after %s" % (where, ch, direction, s, prev))
            prev = s
        self.counts["history_events_read"] += len(evs)
        return prev

    # ---- setup ----------------------------------------------------------------------------------

    def token(self, client_id):
        t = self.tokens.get(client_id)
        if t is None:
            t = make_token(self.secret, {"sub": client_id, "exp": int(time.time()) + 7 * 86400})
            self.tokens[client_id] = t
        return t

    def pick_channel(self, uniform=False):
        if uniform:
            return random.choice(self.channels)
        return random.choices(self.channels, self.ch_w)[0]

    def pick_op(self):
        return random.choices(self.op_names, self.op_w)[0]

    async def http(self, method, path, body=None):
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, self.server.http, method, path, body)

    async def metrics(self):
        code, text = await self.http("GET", "/metrics")
        out = {}
        for line in text.splitlines() if code == 200 else []:
            if line.startswith("#") or "{" in line:
                continue
            parts = line.split()
            if len(parts) == 2:
                try:
                    out[parts[0]] = float(parts[1])
                except ValueError:
                    pass
        return out

    def cpu_s(self):
        """(server, generator) CPU seconds so far."""
        server = None
        try:
            with open("/proc/%d/stat" % self.server.proc.pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            server = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            pass
        t = os.times()
        return server, t.user + t.system

    def memory(self):
        out = {}
        try:
            with open("/proc/%d/status" % self.server.proc.pid) as f:
                for line in f:
                    if line.startswith(("VmRSS:", "VmHWM:")):
                        out[line.split(":")[0]] = int(line.split()[1])  # kB
        except OSError:
            pass
        return out

    # ---- the run --------------------------------------------------------------------------------

    async def start_watchers(self):
        self.ch_watchers = {}
        for i, ch in enumerate(self.watched_channels):
            c = Conn(self, "soak-watch-%02d" % i, "watcher")
            ws, first = await c.open()
            c.install(ws, first)
            sub = Sub(c, ch, log=True)
            c.subs[ch] = sub
            await c.ok("subscribe", sub.settle, channel=ch)
            self.ch_watchers[ch] = c
        self.status_watchers = []
        groups = 3
        for g in range(groups):
            c = Conn(self, "soak-swatch-%d" % g, "watcher")
            ws, first = await c.open()
            c.install(ws, first)
            ids = [u.id for u in self.users[g::groups]]
            for cid in ids:
                c.watches[cid] = None
            await c.ok("status.watch", lambda r, c=c, ids=ids: c.apply_watch_reply(ids, r), clientIds=ids)
            self.status_watchers.append(c)

    async def ramp_up(self):
        sem = asyncio.Semaphore(16)

        async def one(u, d):
            async with sem:
                await u.connect(d)
        await asyncio.gather(*(one(u, d) for u in self.users for d in u.devices))

    async def worker(self, user):
        mean = len(self.users) / self.cfg.rate
        while not self.stop:
            await asyncio.sleep(random.expovariate(1.0 / mean))
            if not self.running.is_set():
                await self.running.wait()
                continue
            if self.stop:
                break
            self.busy += 1
            op = "?"
            try:
                op = await user.step()
            except (SoakError, websockets.ConnectionClosed, OSError, asyncio.TimeoutError) as e:
                if not self.stop:
                    self.error("op", "%s op %s: %s: %s" % (user.id, op, type(e).__name__, e))
            except Exception as e:
                self.error("generator", "%s op %s: %s\n%s" % (user.id, op, e, traceback.format_exc()))
            finally:
                self.busy -= 1

    async def lag_monitor(self):
        while not self.stop:
            t = mono()
            await asyncio.sleep(0.25)
            lag = mono() - t - 0.25
            self.max_lag = max(self.max_lag, lag)
            self.lag_minute = max(self.lag_minute, lag)

    async def crash_monitor(self):
        while not self.stop:
            if self.server.proc.poll() is not None:
                self.error("crash", "the server exited with %s during the run" % self.server.proc.returncode)
                self.stop = True
                self.crashed = True
                self.running.set()
                return
            await asyncio.sleep(0.5)

    async def reporter(self):
        minute = 0
        last_ops = 0
        last_cpu = self.cpu_s()
        while not self.stop:
            target = self.t_start + 60 * (minute + 1)
            while mono() < target and not self.stop:
                await asyncio.sleep(min(1.0, max(0.01, target - mono())))
            if self.stop:
                return
            minute += 1
            mem = self.memory()
            try:
                met = await self.metrics()
            except Exception:
                met = {}
            live = sum(1 for c in self.conns.values() if c.state == "live")
            cpu = self.cpu_s()
            cpu_server = round((cpu[0] - last_cpu[0]) / 60 * 100) if cpu[0] is not None and last_cpu[0] is not None \
                else None
            cpu_gen = round((cpu[1] - last_cpu[1]) / 60 * 100)
            last_cpu = cpu
            row = {
                "minute": minute, "ops": self.ops, "ops_per_s": round((self.ops - last_ops) / 60.0, 1),
                "connections": live, "server_connections": met.get("presenced_connections"),
                "server_members": met.get("presenced_members"),
                "events_total": met.get("presenced_events_total"),
                "rss_kb": mem.get("VmRSS"), "hwm_kb": mem.get("VmHWM"),
                "errors": len(self.errors), "max_loop_lag_s": round(self.lag_minute, 3),
                "server_cpu_pct": cpu_server, "generator_cpu_pct": cpu_gen,
            }
            self.lag_minute = 0.0
            last_ops = self.ops
            self.minutes.append(row)
            print("[soak] min %d/%d: ops %d (%.0f/s) conns %d (server %s) members %s events %s "
                  "RSS %.1f MiB HWM %.1f MiB cpu server %s%% generator %d%% errors %d lag %.2fs" % (
                      minute, self.cfg.minutes, row["ops"], row["ops_per_s"], live,
                      fmt(row["server_connections"]), fmt(row["server_members"]), fmt(row["events_total"]),
                      (row["rss_kb"] or 0) / 1024, (row["hwm_kb"] or 0) / 1024, fmt(cpu_server), cpu_gen,
                      row["errors"],
                      row["max_loop_lag_s"]), flush=True)

    async def quiesce(self):
        self.running.clear()
        end = mono() + 120
        while self.busy > 0:
            if mono() > end:
                self.error("checkpoint", "%d operations still running after 120 s" % self.busy)
                return False
            await asyncio.sleep(0.02)
        return True

    def model_channels(self, now):
        want = {ch: {} for ch in self.channels}
        for c in self.conns.values():
            if c.state != "live":
                continue
            for ch, m in c.members.items():
                if m["expiresAt"] is None or m["expiresAt"] > now:
                    want[ch][c.id] = (c.client_id, m["data"])
        return want

    async def compare(self, full):
        """Differences between the model, REST and the streams; [] when consistent."""
        diffs = []
        now = wall_ms()
        want = self.model_channels(now)
        sem = asyncio.Semaphore(6)

        async def get(path):
            async with sem:
                return await self.http("GET", path)

        pres = await asyncio.gather(*(get("/v1/channels/%s/presence" % ch) for ch in self.channels))
        rest = {}
        for ch, (code, body) in zip(self.channels, pres):
            if code != 200 or body.get("epoch") != self.epoch:
                diffs.append("REST presence %s: %s %s" % (ch, code, short(body)))
                continue
            rest[ch] = body
            got = {m["connectionId"]: (m["clientId"], m["data"]) for m in body["members"]}
            if got != want[ch]:
                missing = {k: v for k, v in want[ch].items() if k not in got}
                extra = {k: v for k, v in got.items() if k not in want[ch]}
                differ = {k: (got[k], want[ch][k]) for k in got if k in want[ch] and got[k] != want[ch][k]}
                diffs.append("channel %s: server lacks %s; server has extra %s; data differs "
                             "(server, model) %s" % (ch, short(missing, 500), short(extra, 500),
                                                     short(differ, 500)))
            for m in body["members"]:
                if m["expiresAt"] is not None:
                    diffs.append("channel %s: member with expiry after every TTL ran out: %s" % (ch, short(m)))
        # Subscribers: the dedicated watcher of each even channel, and every churn subscriber.
        for c in list(self.conns.values()):
            if c.state != "live":
                continue
            for ch, sub in c.subs.items():
                if sub.broken or sub.mode != "live" or ch not in rest:
                    continue
                if not sub.full:
                    if sub.last > rest[ch]["serial"]:
                        diffs.append("%s filtered sub %s at serial %d beyond the channel's %d" % (
                            c.label(), ch, sub.last, rest[ch]["serial"]))
                    continue
                body = rest[ch]
                rep = {m["connectionId"]: m for m in body["members"]}
                if sub.last != body["serial"] or (sub.base and sub.replica != rep):
                    diffs.append("%s subscriber of %s: replica at serial %s has %s; REST at serial %s has %s" % (
                        c.label(), ch, sub.last, short(sorted(sub.replica), 300), body["serial"],
                        short(sorted(rep), 300)))
        # Users' status: REST vs model vs every watcher's view.
        sts = await asyncio.gather(*(get("/v1/users/%s/status" % u.id) for u in self.users))
        rest_status = {}
        for u, (code, body) in zip(self.users, sts):
            if code != 200:
                diffs.append("REST status %s: %s %s" % (u.id, code, short(body)))
                continue
            rest_status[u.id] = body
            want_st = u.expected_status(u.live_conns())
            if body.get("status") != want_st or body.get("text") != u.text or \
                    (body.get("status") == "offline") != (body.get("activeDevice") is None):
                diffs.append("user %s: REST %s; model status %s text %r (manual %s, %d live devices)" % (
                    u.id, short(body), want_st, u.text, u.manual, len(u.live_conns())))
        for c in list(self.conns.values()):
            if c.state != "live":
                continue
            for cid, rep in c.watches.items():
                b = rest_status.get(cid)
                if b is None or rep in (None, "-"):
                    continue
                if rep != [b["status"], b["text"]]:
                    diffs.append("%s watching %s: last push says %s, REST %s %r" % (
                        c.label(), cid, rep, b["status"], b["text"]))
        # Server-wide counts.
        met = await self.metrics()
        live = [c for c in self.conns.values() if c.state == "live"]
        n_members = sum(len(v) for v in want.values())
        for name, value in (("presenced_engine_connections", len(live)),
                            ("presenced_connections", len(live)),
                            ("presenced_members", n_members),
                            ("presenced_storage_write_errors_total", 0),
                            ("presenced_storage_dropped_writes_total", 0),
                            ("presenced_queue_drops_total", 0)):
            if met.get(name) != value:
                diffs.append("metric %s = %s, expected %s" % (name, met.get(name), value))
        if full:
            # Durable history against what each dedicated watcher received.
            hist = await asyncio.gather(*(get("/v1/channels/%s/history?limit=100" % ch)
                                          for ch in self.watched_channels))
            for ch, (code, body) in zip(self.watched_channels, hist):
                sub = self.ch_watchers[ch].subs[ch]
                if code != 200:
                    diffs.append("REST history %s: %s" % (ch, code))
                    continue
                evs = body.get("events", [])
                logged = {e["serial"]: e for e in sub.log}
                if sub.log and (not evs or evs[0]["serial"] != sub.last):
                    diffs.append("history %s: newest serial %s, the watcher's last %s" % (
                        ch, evs[0]["serial"] if evs else None, sub.last))
                compared = 0
                for e in evs:
                    le = logged.get(e["serial"])
                    if le is None:
                        continue
                    compared += 1
                    if le != e:
                        diffs.append("history %s serial %d: stored %s, sent %s" % (ch, e["serial"], short(e),
                                                                                   short(le)))
                        break
                self.counts["history_compared"] += compared
        return diffs

    async def checkpoint(self, label, full=True):
        t0 = mono()
        ok = await self.quiesce()
        ops_at = self.ops
        # Every abandoned connection's grace and every TTL must run out before the model is exact.
        now = wall_ms()
        due = [c.deadline_ms for c in self.conns.values() if c.state == "doomed"]
        due += [m["expiresAt"] for c in self.conns.values() if c.state == "live"
                for m in c.members.values() if m["expiresAt"] is not None]
        wait_ms = max([0] + [d - now for d in due]) + 200
        await asyncio.sleep(wait_ms / 1000)
        # Settle the model: doomed connections are gone, expired members are gone.
        now = wall_ms()
        for cid in [cid for cid, c in self.conns.items() if c.state != "live"]:
            del self.conns[cid]
        for c in self.conns.values():
            for ch in [ch for ch, m in c.members.items() if m["expiresAt"] is not None and m["expiresAt"] <= now]:
                del c.members[ch]
        # Converge: the server's timers fire and events travel; poll until consistent or deadline.
        end = mono() + self.cfg.converge_s
        diffs = await self.compare(full=False)
        while diffs and mono() < end:
            await asyncio.sleep(0.5)
            diffs = await self.compare(full=False)
        if not diffs and full:
            diffs = await self.compare(full=True)
        waited = mono() - t0
        mem = self.memory()
        live = [c for c in self.conns.values() if c.state == "live"]
        members = sum(len(c.members) for c in live)
        subs = sum(len(c.subs) for c in live)
        row = {"label": label, "at_s": round(t0 - self.t_start, 1), "ops": ops_at, "quiesce_s": round(waited, 2),
               "connections": len(live), "members": members, "subscriptions": subs,
               "rss_kb": mem.get("VmRSS"), "hwm_kb": mem.get("VmHWM"), "differences": len(diffs),
               "details": diffs[:50]}
        self.checkpoints.append(row)
        print("[soak] checkpoint %s: %s after %.1fs (%d connections, %d members, %d subscriptions, "
              "%d channels, %d users; RSS %.1f MiB)" % (
                  label, "consistent" if not diffs else "%d DIFFERENCES" % len(diffs), waited, len(live),
                  members, subs, len(self.channels), len(self.users), (mem.get("VmRSS") or 0) / 1024),
              flush=True)
        for d in diffs[:20]:
            self.error("checkpoint", d)
        # Reasons allowed for members that are gone are no longer needed.
        present = {(ch, c.id) for c in live for ch in c.members}
        for k in [k for k in self.allowed if k not in present]:
            del self.allowed[k]
        if not self.stop:
            self.running.set()
        return ok and not diffs

    async def shutdown_clients(self):
        """Closes every connection cleanly; the watchers must see every member leave."""
        self.running.clear()
        users_conns = [d.conn for u in self.users for d in u.devices if d.conn is not None and d.conn.state == "live"]
        for c in users_conns:
            for ch in c.members:
                self.allow(ch, c.id, "disconnected")
        sem = asyncio.Semaphore(32)

        async def close(c):
            async with sem:
                await c.close()
        await asyncio.gather(*(close(c) for c in users_conns))
        end = mono() + self.cfg.converge_s
        while mono() < end:
            left = {ch: len(w.subs[ch].replica) for ch, w in self.ch_watchers.items() if w.subs[ch].replica}
            if not left:
                break
            await asyncio.sleep(0.2)
        if left:
            self.error("final", "after every client closed, the watchers still hold members: %s" % left)
        watchers = list(self.ch_watchers.values()) + self.status_watchers
        await asyncio.gather(*(close(c) for c in watchers))
        end = mono() + self.cfg.converge_s
        while True:
            met = await self.metrics()
            vals = {k: met.get(k) for k in ("presenced_connections", "presenced_engine_connections",
                                            "presenced_members", "presenced_channels")}
            if all(v == 0 for v in vals.values()):
                break
            if mono() > end:
                self.error("final", "after every client closed: %s" % vals)
                break
            await asyncio.sleep(0.2)
        self.final_metrics = met

    async def run(self):
        cfg = self.cfg
        self.t_start = mono()
        self.crashed = False
        self.users = [User(self, i) for i in range(cfg.users)]
        self.user_by_id = {u.id: u for u in self.users}
        tasks = [asyncio.ensure_future(self.lag_monitor()), asyncio.ensure_future(self.crash_monitor())]
        await self.start_watchers()
        await self.ramp_up()
        n = sum(len(u.devices) for u in self.users)
        print("[soak] %d users, %d devices, %d watchers connected in %.1fs; churn at %d ops/s for %d min" % (
            len(self.users), n, len(self.ch_watchers) + len(self.status_watchers), mono() - self.t_start,
            cfg.rate, cfg.minutes), flush=True)
        self.t_start = mono()  # minutes count from here
        self.mem_start = self.memory()
        tasks.append(asyncio.ensure_future(self.reporter()))
        workers = [asyncio.ensure_future(self.worker(u)) for u in self.users]
        self.running.set()
        end = self.t_start + cfg.minutes * 60
        next_cp = self.t_start + cfg.checkpoint_s
        k = 0
        while mono() < end and not self.stop:
            await asyncio.sleep(min(1.0, max(0.0, min(end, next_cp) - mono())))
            if mono() >= next_cp and mono() < end - 20 and not self.stop:
                k += 1
                await self.checkpoint("cp%d" % k)
                next_cp = mono() + cfg.checkpoint_s
        # The reporter's last minute line is due at `end`; give it a moment.
        await asyncio.sleep(1.5)
        if not self.stop:
            await self.checkpoint("final")
            self.stop = True
            self.running.set()
            await asyncio.gather(*workers, return_exceptions=True)
            await self.shutdown_clients()
        else:
            self.running.set()
            for w in workers:
                w.cancel()
        self.stop = True
        for t in tasks:
            t.cancel()


def git_head():
    try:
        return subprocess.run(["git", "-C", ROOT, "log", "-1", "--format=%h %s"], capture_output=True,
                              text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.TimeoutExpired):
        return None


def fmt(v):
    return "?" if v is None else "%d" % v


def drain(stream, path):
    with open(path, "w") as out:
        for line in stream:
            out.write(line)
            out.flush()


SANITIZER = re.compile(r"ERROR: (AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer)|runtime error:|"
                       r"SUMMARY: (Address|Leak|UndefinedBehavior)Sanitizer")


def rss_verdict(minutes, cfg):
    rows = [r for r in minutes if r.get("rss_kb")]
    if len(rows) < 2:
        return {"ok": True, "note": "fewer than two samples"}
    mid = rows[(len(rows) - 1) // 2]
    last = rows[-1]
    growth_kb = last["rss_kb"] - mid["rss_kb"]
    limit_kb = max(cfg.rss_growth_pct / 100.0 * mid["rss_kb"], cfg.rss_growth_mb * 1024)
    return {"ok": growth_kb <= limit_kb, "mid_minute": mid["minute"], "mid_rss_kb": mid["rss_kb"],
            "last_minute": last["minute"], "last_rss_kb": last["rss_kb"], "growth_kb": growth_kb,
            "limit_kb": int(limit_kb)}


def main():
    global websockets, make_token
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--minutes", type=float, default=float(os.environ.get("SOAK_MINUTES", 30)))
    p.add_argument("--build-dir", default=os.environ.get("SOAK_BUILD_DIR", "build/asan"),
                   help="the ASan build directory; its src/server/presenced is copied and run")
    p.add_argument("--binary", default=os.environ.get("SOAK_BINARY"),
                   help="a server binary to copy and run instead (also SOAK_BINARY)")
    p.add_argument("--users", type=int, default=int(os.environ.get("SOAK_USERS", 150)))
    p.add_argument("--channels", type=int, default=int(os.environ.get("SOAK_CHANNELS", 40)))
    p.add_argument("--rate", type=float, default=float(os.environ.get("SOAK_RATE", 400)),
                   help="target operations per second, all users together")
    p.add_argument("--checkpoint-s", type=float, default=None,
                   help="seconds of churn between checkpoints (default: 120, at most half the run)")
    p.add_argument("--heartbeat-ms", type=int, default=2000)
    p.add_argument("--grace-ms", type=int, default=2500, help="remain_present_for_ms")
    p.add_argument("--max-grace-ms", type=int, default=4000, help="max_remain_present_for_ms")
    p.add_argument("--history-per-channel", type=int, default=300,
                   help="history_max_per_channel: small, so the database (and SQLite's page cache, "
                        "up to 64 MiB) stops growing early in the run")
    p.add_argument("--activity-per-user", type=int, default=10, help="activity_max_per_user")
    p.add_argument("--converge-s", type=float, default=20.0)
    p.add_argument("--rss-growth-pct", type=float, default=10.0)
    p.add_argument("--rss-growth-mb", type=float, default=16.0)
    p.add_argument("--asan-options", default=os.environ.get(
        "SOAK_ASAN_OPTIONS", "quarantine_size_mb=64:detect_leaks=1:abort_on_error=1"))
    p.add_argument("--result", default=None, help="JSON result file (default build/soak/soak-TIME.json)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--keep", action="store_true", help="keep the work directory (always kept on failure)")
    p.add_argument("--verbose", action="store_true")
    p.add_argument("--sabotage", choices=["model", "reason", "stream", "status"], default=None,
                   help="corrupt the generator's own view on purpose, to show the checks catch it "
                        "(the run must then FAIL)")
    cfg = p.parse_args()
    if not cfg.binary:
        cfg.binary = os.path.join(cfg.build_dir if os.path.isabs(cfg.build_dir) else os.path.join(ROOT, cfg.build_dir),
                                  "src", "server", "presenced")
    if cfg.checkpoint_s is None:
        cfg.checkpoint_s = min(120.0, max(20.0, cfg.minutes * 60 / 2))
    cfg.seed = cfg.seed if cfg.seed is not None else random.randrange(2**31)
    random.seed(cfg.seed)

    # Neither the copy's path nor this script's arguments contain "presenced", so a colleague's
    # `pkill -f presenced` on the shared machine does not end a 30-minute run by accident.
    work = tempfile.mkdtemp(prefix="soakrun-")
    binary = os.path.join(work, "soak-server")
    shutil.copy2(cfg.binary, binary)  # others may rebuild the original while this runs
    with open(binary, "rb") as f:
        binary_sha256 = hashlib.sha256(f.read()).hexdigest()
    os.environ["PRESENCED_BIN"] = binary
    os.environ["ASAN_OPTIONS"] = cfg.asan_options
    os.environ["UBSAN_OPTIONS"] = "print_stacktrace=1:halt_on_error=1"
    sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
    import websockets as ws_mod
    import websockets.exceptions  # noqa: F401
    import harness
    websockets = ws_mod
    make_token = harness.make_token

    settings = dict(heartbeat_ms=cfg.heartbeat_ms, remain_present_for_ms=cfg.grace_ms,
                    max_remain_present_for_ms=cfg.max_grace_ms,
                    away_after_ms=7 * 86400 * 1000, offline_after_ms=14 * 86400 * 1000,
                    history_max_per_channel=cfg.history_per_channel,
                    activity_max_per_user=cfg.activity_per_user, retention_interval_ms=10000)
    print("[soak] binary %s (copied from %s), work dir %s, seed %d" % (binary, cfg.binary, work, cfg.seed),
          flush=True)
    os.makedirs(os.path.join(work, "data"))
    server = harness.Server(data_dir=os.path.join(work, "data"), **settings)
    out_path, err_path = os.path.join(work, "server.stdout"), os.path.join(work, "server.stderr")
    threads = [threading.Thread(target=drain, args=(server.proc.stdout, out_path), daemon=True),
               threading.Thread(target=drain, args=(server.proc.stderr, err_path), daemon=True)]
    for t in threads:
        t.start()
    soak = Soak(cfg)
    soak.server, soak.port, soak.epoch, soak.secret = server, server.port, server.epoch, server.secret
    started = time.time()
    interrupted = False

    def on_sigterm(signum, frame):
        raise KeyboardInterrupt("signal %d" % signum)
    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        asyncio.run(soak.run())
    except KeyboardInterrupt as e:
        interrupted = True
        soak.error("interrupted", "stopped by %s" % (e or "the user"))
    except Exception as e:
        soak.error("generator", "run: %s\n%s" % (e, traceback.format_exc()))
    # Graceful shutdown must exit 0 (LeakSanitizer runs at exit and would make it non-zero).
    rc = server.proc.poll()
    if rc is None:
        server.proc.send_signal(signal.SIGTERM)
        try:
            rc = server.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            rc = server.proc.wait()
            soak.error("shutdown", "no exit within 120 s of SIGTERM")
    for t in threads:
        t.join(timeout=10)
    if rc != 0:
        soak.error("shutdown", "server exit code %s (expected 0 after SIGTERM)" % rc)
    with open(err_path, errors="replace") as f:
        stderr = f.read()
    san = [line for line in stderr.splitlines() if SANITIZER.search(line)]
    if san:
        soak.error("sanitizer", "sanitizer report in the server's stderr: %s" % "; ".join(san[:5]))
    rss = rss_verdict(soak.minutes, cfg)
    if not rss["ok"]:
        soak.error("rss", "RSS grew %.1f MiB over the second half (minute %d: %.1f MiB -> minute %d: %.1f "
                   "MiB; limit %.1f MiB)" % (rss["growth_kb"] / 1024, rss["mid_minute"], rss["mid_rss_kb"] / 1024,
                                             rss["last_minute"], rss["last_rss_kb"] / 1024,
                                             rss["limit_kb"] / 1024))
    passed = not soak.errors and not interrupted
    duration = time.time() - started
    result = {
        "passed": passed, "command": " ".join(sys.argv), "seed": cfg.seed, "binary": cfg.binary,
        "binary_sha256": binary_sha256, "git_head": git_head(),
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "duration_s": round(duration, 1),
        "settings": {"minutes": cfg.minutes, "users": cfg.users, "channels": cfg.channels, "rate": cfg.rate,
                     "checkpoint_s": cfg.checkpoint_s, "heartbeat_ms": cfg.heartbeat_ms,
                     "grace_ms": cfg.grace_ms, "max_grace_ms": cfg.max_grace_ms,
                     "asan_options": cfg.asan_options, "server": settings},
        "devices": sum(len(u.devices) for u in soak.users) if hasattr(soak, "users") else None,
        "ops": soak.ops, "op_counts": dict(soak.op_counts),
        "op_mean_ms": {k: round(1000 * soak.op_time[k] / n, 2) for k, n in soak.op_counts.items()},
        "counts": dict(soak.counts), "max_loop_lag_s": round(soak.max_lag, 3),
        "minutes": soak.minutes, "checkpoints": soak.checkpoints, "rss": rss,
        "server_exit_code": rc, "sanitizer_lines": san[:50],
        "final_metrics": getattr(soak, "final_metrics", None),
        "errors": soak.errors, "error_counts": dict(soak.error_counts),
        "work_dir": work,
    }
    path = cfg.result or os.path.join(ROOT, "build", "soak", time.strftime("soak-%Y%m%d-%H%M%S.json",
                                                                            time.gmtime(started)))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(result, f, indent=1, ensure_ascii=False)
    print("[soak] %s: %.1f min, %d ops (%s), %d checkpoints, %d errors %s; server exit %s; RSS %s; "
          "result %s" % (
              "PASS" if passed else "FAIL", duration / 60, soak.ops,
              ", ".join("%s %d" % kv for kv in soak.op_counts.most_common(6)), len(soak.checkpoints),
              sum(soak.error_counts.values()), dict(soak.error_counts) if soak.errors else "", rc,
              "ok" if rss["ok"] else "GROWING", path), flush=True)
    if rss.get("mid_rss_kb"):
        print("[soak] RSS second half: minute %d %.1f MiB -> minute %d %.1f MiB (%+.1f MiB, limit %.1f MiB); "
              "HWM %.1f MiB" % (rss["mid_minute"], rss["mid_rss_kb"] / 1024, rss["last_minute"],
                                rss["last_rss_kb"] / 1024, rss["growth_kb"] / 1024, rss["limit_kb"] / 1024,
                                (soak.minutes[-1].get("hwm_kb") or 0) / 1024), flush=True)
    if passed and not cfg.keep:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print("[soak] server logs kept in %s" % work, flush=True)
    return 0 if passed else 1


websockets = None
make_token = None

if __name__ == "__main__":
    sys.exit(main())
