import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";
import { PresenceClient, PresenceError } from "../dist/index.js";
import { startServer, unique, waitFor } from "./helpers.js";

let server;
const clients = [];

before(async () => {
  server = await startServer({ heartbeat_ms: 300, remain_present_for_ms: 2000, away_after_ms: 60000, offline_after_ms: 120000 });
});
after(async () => {
  for (const c of clients) await c.close().catch(() => {});
  await server.stop();
});

function connect(clientId, opts = {}) {
  const c = new PresenceClient({ url: server.url, token: server.token(clientId, opts.channels), reconnectBaseMs: 50, ...opts });
  clients.push(c);
  return c;
}

test("channel presence: enter, update, merge, leave, get, occupancy, history, local set", async () => {
  const ch = unique();
  const alice = connect("alice", { device: "laptop" });
  const watcher = connect("watcher");
  const events = [];
  const stop = await watcher.channel(ch).presence.subscribe((e) => events.push(e));
  await alice.waitForConnected();
  const m = await alice.channel(ch).presence.enter({ mood: "happy" });
  assert.equal(m.clientId, "alice");
  await alice.channel(ch).presence.update({ typing: true }, { merge: true });
  await waitFor(() => events.length === 2, 8000, "two events");
  assert.deepEqual(events.map((e) => e.action), ["enter", "update"]);
  assert.deepEqual(watcher.channel(ch).presence.members()[0].data, { mood: "happy", typing: true });
  const got = await watcher.channel(ch).presence.get({ clientId: "alice" });
  assert.equal(got.length, 1);
  assert.deepEqual(await watcher.channel(ch).presence.occupancy(), { members: 1, clients: 1 });
  await alice.channel(ch).presence.leave({ bye: true });
  await waitFor(() => events.length === 3);
  assert.equal(events[2].reason, "left");
  assert.equal(watcher.channel(ch).presence.members().length, 0);
  const page = await watcher.channel(ch).presence.history({ direction: "forwards", limit: 2 });
  assert.deepEqual(page.events.map((e) => e.action), ["enter", "update"]);
  assert.ok(page.next !== undefined);
  // Serials are strictly increasing and gapless for the subscriber.
  for (let i = 1; i < events.length; i++) assert.equal(events[i].serial, events[i - 1].serial + 1);
  await stop();
});

test("action filters and several listeners", async () => {
  const ch = unique();
  const a = connect(unique("u"));
  const w = connect(unique("w"));
  const leaves = [];
  const all = [];
  await w.channel(ch).presence.subscribe(["leave"], (e) => leaves.push(e));
  await w.channel(ch).presence.subscribe((e) => all.push(e));
  await a.channel(ch).presence.enter(1);
  await a.channel(ch).presence.leave();
  await waitFor(() => all.length === 2 && leaves.length === 1);
  assert.equal(leaves[0].action, "leave");
});

test("errors reject with the protocol's code", async () => {
  const a = connect("erin", { channels: ["team-*"] });
  await assert.rejects(a.channel("team-x").presence.update(1), (e) => e instanceof PresenceError && e.code === "not_present");
  await assert.rejects(a.channel("secret").presence.enter(1), (e) => e.code === "forbidden");
  await assert.rejects(a.request("nope"), (e) => e.code === "bad_request");
});

test("multi-device: one user, two members, status synced to both devices", async () => {
  const ch = unique();
  const uid = unique("dana");
  const laptop = connect(uid, { device: "laptop" });
  const phone = connect(uid, { device: "phone" });
  await laptop.channel(ch).presence.enter("l");
  await phone.channel(ch).presence.enter("p");
  assert.deepEqual(await laptop.channel(ch).presence.occupancy(), { members: 2, clients: 1 });
  const seen = [];
  laptop.on("statusChange", (id, from, to) => seen.push([id, from, to]));
  const s = await phone.status.set("dnd", "Focus");
  assert.equal(s.status, "dnd");
  await waitFor(() => seen.length === 1, 8000, "status push on the other device");
  assert.deepEqual(seen[0], [uid, "online", "dnd"]);
  const devices = await laptop.devices();
  assert.deepEqual(devices.map((d) => d.device).sort(), ["laptop", "phone"]);
});

test("per-device status: phone dnd while the laptop is online, laptop away by hand, pushes with device, devices()", async () => {
  const uid = unique("dev");
  const laptop = connect(uid, { device: "laptop" });
  const phone = connect(uid, { device: "phone" });
  const watcher = connect(unique("w"));
  const laptopPushes = [];
  const phoneChanges = [];
  const watched = [];
  laptop.on("status", (p) => laptopPushes.push(p));
  phone.on("statusChange", (id, from, to) => phoneChanges.push([id, from, to]));
  await Promise.all([laptop.waitForConnected(), phone.waitForConnected()]);
  await watcher.status.watch([uid], (p) => watched.push(p));
  const phoneId = phone.info.connectionId;
  const laptopId = laptop.info.connectionId;

  // The phone on dnd while the laptop is online: the user stays online.
  const r = await phone.setDeviceStatus("dnd");
  assert.deepEqual([r.device.connectionId, r.device.device, r.device.status, r.device.manual], [phoneId, "phone", "dnd", true]);
  assert.equal(r.status.clientId, uid);
  assert.equal(r.status.status, "online");
  // The user's other connection hears of it, with the device, though the user's status did not change.
  const pushed = await waitFor(() => laptopPushes.find((p) => p.device?.connectionId === phoneId), 8000, "the device push");
  assert.deepEqual([pushed.previous, pushed.status, pushed.device.status, pushed.device.manual], ["online", "online", "dnd", true]);
  const devices = await laptop.devices();
  const byName = Object.fromEntries(devices.map((d) => [d.device, d]));
  assert.deepEqual([byName.phone.status, byName.phone.manual], ["dnd", true]);
  assert.deepEqual([byName.laptop.status, byName.laptop.manual], ["online", false]);

  // The laptop goes away by hand: no device online, so dnd (the phone's) wins over away.
  const changesBefore = phoneChanges.length; // (coming online may have been one, by connect order)
  const r2 = await laptop.setDeviceStatus("away");
  assert.deepEqual([r2.device.status, r2.device.manual, r2.status.status], ["away", true, "dnd"]);
  await waitFor(() => phoneChanges.some((c) => c[2] === "dnd"), 8000, "the phone hears the user is dnd");
  assert.deepEqual(phoneChanges.slice(changesBefore), [[uid, "online", "dnd"]]);
  // A watcher gets the usual push, without the device, only when the user's status changed.
  await waitFor(() => watched.some((p) => p.status === "dnd"), 8000, "the watcher's push");
  assert.ok(watched.every((p) => p.device === undefined), JSON.stringify(watched));
  assert.deepEqual(watched.map((p) => [p.previous, p.status]), [["online", "dnd"]]);

  // Another device of the same user, by its connectionId: online returns it to automatic.
  const r3 = await laptop.setDeviceStatus("online", phoneId);
  assert.deepEqual([r3.device.connectionId, r3.device.status, r3.device.manual, r3.status.status], [phoneId, "online", false, "online"]);
  await assert.rejects(laptop.setDeviceStatus("away", "no-such-connection"), (e) => e instanceof PresenceError && e.code === "not_found");
  await assert.rejects(laptop.setDeviceStatus("busy"), (e) => e instanceof PresenceError && e.code === "bad_request");

  // A device set offline by hand is hidden from others, shown to the user.
  await laptop.setDeviceStatus("offline");
  const own = await phone.devices();
  assert.deepEqual(own.find((d) => d.connectionId === laptopId).status, "offline");
  assert.equal(own.find((d) => d.connectionId === laptopId).manual, true);
  const seen = await watcher.devices(uid);
  assert.deepEqual(seen.map((d) => d.connectionId), [phoneId]);
});

test("status, watch, online/offline, activity, who", async () => {
  const ch = unique();
  const uid = unique("fay");
  const observer = connect(unique("obs"));
  const pushes = [];
  const online = [];
  const offline = [];
  observer.on("online", (id) => online.push(id));
  observer.on("offline", (id) => offline.push(id));
  const unwatch = await observer.status.watch([uid], (p) => pushes.push(p));
  const fay = connect(uid);
  await fay.channel(ch).presence.enter();
  await waitFor(() => online.includes(uid), 8000, "online");
  await fay.activity.record("message", { channel: ch, data: { n: 1 } });
  const acts = await observer.activity.list({ clientId: uid });
  assert.equal(acts[0].kind, "message");
  assert.deepEqual((await observer.who(ch)).map((u) => u.clientId), [uid]);
  assert.equal((await observer.status.get([uid]))[0].status, "online");
  await fay.close();
  await waitFor(() => offline.includes(uid), 8000, "offline");
  assert.ok(pushes.length >= 2);
  await unwatch();
});

test("a quick reconnect resumes: no leave/enter, missed events delivered once", async () => {
  const ch = unique();
  const mover = connect(unique("mover"), { remainPresentForMs: 5000 });
  const other = connect(unique("other"));
  const watcherEvents = [];
  await other.channel(ch).presence.subscribe((e) => watcherEvents.push(e));
  const moverEvents = [];
  await mover.channel(ch).presence.subscribe((e) => moverEvents.push(e));
  await mover.channel(ch).presence.enter("here");
  await waitFor(() => watcherEvents.length === 1 && moverEvents.length === 1);
  const before = mover.info.connectionId;
  mover.dropConnection();
  await waitFor(() => mover.state !== "connected", 8000, "drop noticed");
  await other.channel(ch).presence.enter("while-away");
  await mover.waitForConnected();
  assert.equal(mover.info.resumed, true);
  assert.equal(mover.info.connectionId, before);
  await waitFor(() => moverEvents.length === 2, 8000, "missed event");
  assert.equal(moverEvents[1].member.data, "while-away");
  assert.deepEqual(watcherEvents.map((e) => e.action), ["enter", "enter"]); // no leave for the mover
  const serials = moverEvents.map((e) => e.serial);
  assert.equal(new Set(serials).size, serials.length);
});

test("after the grace period: re-enters and catches up without duplicates", async () => {
  const ch = unique();
  const uid = unique("late");
  const late = connect(uid, { remainPresentForMs: 200, reconnectBaseMs: 1500, reconnectMaxMs: 1500 });
  const other = connect(unique("peer"));
  const seen = [];
  await late.channel(ch).presence.subscribe((e) => seen.push(e));
  const watcher = [];
  await other.channel(ch).presence.subscribe((e) => watcher.push(e));
  await late.channel(ch).presence.enter({ v: 1 });
  await waitFor(() => watcher.length === 1);
  late.dropConnection();
  // The server gives up after 200 ms (leave, timeout); the client comes back later, fresh.
  await waitFor(() => watcher.some((e) => e.action === "leave" && e.reason === "timeout"), 8000, "timeout leave");
  await waitFor(() => late.state === "connected" && late.info.resumed === false, 10000, "fresh connection");
  await waitFor(() => watcher.filter((e) => e.action === "enter").length === 2, 8000, "re-enter");
  assert.deepEqual(watcher[2].member.data, { v: 1 });
  await waitFor(() => seen.length === 3, 8000, "catch-up");
  assert.deepEqual(seen.map((e) => e.action), ["enter", "leave", "enter"]);
  const serials = seen.map((e) => e.serial);
  assert.equal(new Set(serials).size, 3);
  assert.equal(late.channel(ch).presence.members().length, 1);
});

test("authCallback supplies a fresh token on every connect without losing presence", async () => {
  const ch = unique();
  const uid = unique("cb");
  let calls = 0;
  const c = new PresenceClient({ url: server.url, authCallback: async () => (calls++, server.token(uid)), remainPresentForMs: 5000, reconnectBaseMs: 50 });
  clients.push(c);
  await c.channel(ch).presence.enter("x");
  c.dropConnection();
  await waitFor(() => calls === 2 && c.state === "connected", 8000, "reconnect with a new token");
  assert.equal(c.info.resumed, true);
  assert.equal((await c.channel(ch).presence.get()).length, 1);
});

test("TTL presence: value() drops expired entries, onChange fires, validate applies", async () => {
  const ch = unique();
  const a = connect(unique("hb"));
  const b = connect(unique("viewer"));
  const pa = a.presence(ch);
  const pb = b.presence(ch, { validate: (d) => {
    if (typeof d !== "object" || d === null || typeof d.cursor !== "number") throw new Error("invalid");
    return { cursor: d.cursor * 2 };
  } });
  const changes = [];
  pb.onChange((v) => changes.push(v));
  await pa.heartbeat({ cursor: 21 }, 400);
  await waitFor(() => pb.value().size === 1, 8000, "entry");
  const [entry] = pb.value().values();
  assert.deepEqual(entry.data, { cursor: 42 });
  assert.ok(entry.expiresAtMs > Date.now());
  assert.equal(pb.value(entry.expiresAtMs).size, 0); // expired locally, whatever the server says
  await waitFor(() => changes.length > 0 && changes[changes.length - 1].size === 0, 8000, "expiry");
  await pa.heartbeat({ bad: true }, 5000);
  await waitFor(() => b.channel(ch).presence.members().length === 1);
  assert.equal(pb.value().size, 0); // invalid data is not shown
  await pa.leave();
});

test("a bad URL is reported as an error event, never thrown", async () => {
  const errors = [];
  const c = new PresenceClient({ url: "not a url", token: "x", reconnectBaseMs: 10000 });
  c.on("error", (e) => errors.push(e));
  await waitFor(() => errors.length === 1, 8000, "error event");
  assert.equal(errors[0].code, "internal");
  await c.close();
});

test("batched and unbatched clients see the same burst, in order (batch=1 is the default)", async () => {
  const ch = unique();
  const writer = connect(unique("writer"));
  const batched = connect(unique("batched"));
  const plain = connect(unique("plain"), { batch: false });
  const got = { batched: [], plain: [] };
  await batched.channel(ch).presence.subscribe((e) => got.batched.push(e));
  await plain.channel(ch).presence.subscribe((e) => got.plain.push(e));
  await writer.channel(ch).presence.enter(0);
  // Pipelined: the server handles many in one round, so the batched client gets them packed.
  await Promise.all(Array.from({ length: 50 }, (_, i) => writer.channel(ch).presence.update(i + 1)));
  await waitFor(() => got.batched.length === 51 && got.plain.length === 51, 8000, "the burst");
  assert.deepEqual(got.batched.map((e) => e.serial), got.plain.map((e) => e.serial));
  for (let i = 1; i < 51; i++) assert.equal(got.batched[i].serial, got.batched[i - 1].serial + 1);
  assert.deepEqual(batched.channel(ch).presence.members()[0].data, 50);
  assert.deepEqual(plain.channel(ch).presence.members()[0].data, 50);
});

test("agent sessions: ensure, a worker's assignment, ready, events, stop", async () => {
  const conv = unique("conv");
  const worker = new PresenceClient({ url: server.url, token: server.token(unique("worker"), undefined, ["worker"]), reconnectBaseMs: 50 });
  clients.push(worker);
  const assigned = [];
  await worker.sessions.serve({ capacity: 2 }, async (a) => {
    assigned.push(a);
    await a.ready();
  });
  const user = connect(unique("user"));
  await user.channel("conversation:" + conv).presence.enter({ name: "Ada" });
  const events = [];
  user.on("session", (e) => events.push(e));
  const first = await user.sessions.ensure(conv, { request: { prompt: "hello" } });
  assert.equal(first.created, true);
  assert.equal(first.session.agentId, "agent-" + conv);
  await waitFor(() => events.some((e) => e.action === "running"), 8000, "running");
  assert.equal(assigned.length, 1);
  assert.deepEqual(assigned[0].request, { prompt: "hello" });
  const again = await user.sessions.start(conv);
  assert.equal(again.created, false);
  const got = await user.sessions.get(conv);
  assert.equal(got.state, "running");
  assert.equal(got.workerConnectionId, worker.info.connectionId);
  const members = await user.channel("conversation:" + conv).presence.get();
  assert.ok(members.some((m) => m.clientId === "agent-" + conv && m.data.agent === true));
  assert.equal(await user.sessions.stop(conv), true);
  assert.equal(await assigned[0].stopped, "stopped");
  await waitFor(() => events.some((e) => e.action === "stopped"), 8000, "stopped");
  assert.equal(events.find((e) => e.action === "stopped").reason, "stopped");
  assert.equal(await user.sessions.get(conv), null);
  assert.equal(await user.sessions.stop(conv), false);
  // Only workers serve.
  await assert.rejects(user.sessions.serve({}, () => {}), (e) => e instanceof PresenceError && e.code === "forbidden");
});

test("the token travels in the first frame, not the URL; refreshToken replaces the patterns", async () => {
  const urls = [];
  const { default: WS } = await import("ws");
  class Recording extends WS {
    constructor(url) {
      urls.push(url);
      super(url);
    }
  }
  const ch = unique("a");
  const c = connect("refresher", { channels: [ch], WebSocket: Recording });
  await c.waitForConnected();
  assert.equal(c.info.clientId, "refresher");
  assert.ok(urls.length >= 1 && urls.every((u) => !u.includes("token=")), urls.join(" "));
  const other = unique("b");
  await assert.rejects(c.channel(other).presence.enter(), (e) => e instanceof PresenceError && e.code === "forbidden");
  const expiresAt = await c.refreshToken(server.token("refresher", [other]));
  assert.ok(expiresAt > Date.now());
  await c.channel(other).presence.enter();
  // tokenInUrl keeps the old way.
  const old = connect("url-user", { tokenInUrl: true, WebSocket: Recording });
  await old.waitForConnected();
  assert.ok(urls[urls.length - 1].includes("token="));
});

test("an observer (apiKey) subscribes and is told of changes, but is nobody", async () => {
  const ch = unique();
  const observer = new PresenceClient({ url: server.url, apiKey: server.apiKey, reconnectBaseMs: 50 });
  clients.push(observer);
  await observer.waitForConnected();
  assert.equal(observer.info.clientId, "presenced:observer");
  const events = [];
  await observer.channel(ch).presence.subscribe((e) => events.push(e));
  const alice = connect(unique("alice"));
  await alice.channel(ch).presence.enter({ hi: 1 });
  await waitFor(() => events.length === 1, 8000, "the enter");
  await assert.rejects(observer.channel(ch).presence.enter(), (e) => e instanceof PresenceError && e.code === "forbidden");
  const users = await observer.who();
  assert.ok(users.every((u) => u.clientId !== "presenced:observer"), JSON.stringify(users));
});

// A connection that never answers the server's pings (and sends nothing after entering): silent.
class SilentSocket extends WebSocket {
  constructor(url) {
    super(url, { autoPong: false });
  }
}

test("heartbeatMs: sent on the upgrade, the effective value in info, clamped into the server's bounds", async () => {
  const hb = await startServer({ heartbeat_ms: 60000, min_heartbeat_ms: 500, max_heartbeat_ms: 30000 });
  const urls = [];
  class Recording extends WebSocket {
    constructor(url) {
      urls.push(url);
      super(url);
    }
  }
  const opened = [];
  const open = (opts) => {
    const c = new PresenceClient({ url: hb.url, token: hb.token(unique("hb")), WebSocket: Recording, ...opts });
    opened.push(c);
    return c.waitForConnected();
  };
  try {
    assert.equal((await open({ heartbeatMs: 2000 })).heartbeatMs, 2000);
    assert.equal(new URL(urls.at(-1)).searchParams.get("heartbeatMs"), "2000");
    assert.equal((await open({ heartbeatMs: 10 })).heartbeatMs, 500); // the minimum
    assert.equal((await open({ heartbeatMs: 0 })).heartbeatMs, 500);
    assert.equal((await open({ heartbeatMs: 10_000_000 })).heartbeatMs, 30000); // the maximum
    assert.equal((await open({})).heartbeatMs, 60000); // the server's own
    assert.equal(new URL(urls.at(-1)).searchParams.has("heartbeatMs"), false);
    for (const bad of [-1, 1.5, Number.NaN]) {
      assert.throws(() => new PresenceClient({ url: hb.url, token: "t", heartbeatMs: bad }), (e) => e instanceof PresenceError && e.code === "bad_request");
    }
  } finally {
    for (const c of opened) await c.close();
    await hb.stop();
  }
});

test("heartbeatMs: liveness uses the client's interval (a silent short-interval client is dropped within two of them)", async () => {
  // The server's own interval is a minute: a silent connection on it would stay two minutes.
  const hb = await startServer({ heartbeat_ms: 60000, min_heartbeat_ms: 500 });
  const ch = unique();
  const opened = [];
  const make = (clientId, opts) => {
    const c = new PresenceClient({ url: hb.url, token: hb.token(clientId), reconnectBaseMs: 60000, ...opts });
    opened.push(c);
    return c;
  };
  try {
    const watcher = make("watcher", {});
    const events = [];
    await watcher.channel(ch).presence.subscribe((e) => events.push({ at: Date.now(), ...e }));
    // Both silent; only "short" asked for a short interval.
    const long = make("long", { WebSocket: SilentSocket, remainPresentForMs: 0 });
    await long.channel(ch).presence.enter("long");
    const short = make("short", { WebSocket: SilentSocket, remainPresentForMs: 0, heartbeatMs: 500 });
    assert.equal((await short.waitForConnected()).heartbeatMs, 500);
    const start = Date.now(); // before the last frame "short" sends
    await short.channel(ch).presence.enter("short");
    const leave = await waitFor(() => events.find((e) => e.action === "leave" && e.member.clientId === "short"), 8000, "the silent client's leave");
    assert.equal(leave.reason, "timeout");
    const elapsed = leave.at - start;
    // Two 500 ms intervals of silence, grace 0; never before the first interval has passed twice
    // (allowing the timer wheel's tick), and long before the server's one-minute interval.
    assert.ok(elapsed >= 900 && elapsed < 5000, "dropped after " + elapsed + " ms");
    assert.deepEqual(watcher.channel(ch).presence.members().map((m) => m.clientId), ["long"]);
  } finally {
    for (const c of opened) await c.close();
    await hb.stop();
  }
});
