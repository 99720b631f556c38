// createPresenceService (@presenced/client/service) against the real server: every method of the
// status-service design with its field names, the options (honoured, or a warning naming the
// server setting), errors carrying the server's code and HTTP status, and the events for every
// user, also across a resumed and a new observer connection.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:net";
import { PresenceClient, PresenceError } from "@presenced/client";
import { createPresenceService, PresenceServiceError } from "@presenced/client/service";
import { startServer, unique, waitFor } from "./helpers.js";

let server;
let httpUrl;
const clients = [];
const services = [];

before(async () => {
  server = await startServer({ heartbeat_ms: 300, remain_present_for_ms: 2000, away_after_ms: 60000, offline_after_ms: 120000 });
  httpUrl = `http://127.0.0.1:${server.port}`;
});
after(async () => {
  for (const c of clients) await c.close().catch(() => {});
  for (const s of services) await s.close().catch(() => {});
  await server.stop();
});

function service(opts = {}) {
  const s = createPresenceService({ url: httpUrl, apiKey: server.apiKey, ...opts });
  services.push(s);
  return s;
}

async function device(clientId, name) {
  const c = new PresenceClient({ url: server.url, token: server.token(clientId), device: name, reconnectBaseMs: 50 });
  clients.push(c);
  await c.waitForConnected();
  return c;
}

/** Calls `body` with console.warn captured; resolves with the warnings. */
async function warningsOf(body) {
  const original = console.warn;
  const seen = [];
  console.warn = (...args) => seen.push(args.join(" "));
  try {
    await body();
  } finally {
    console.warn = original;
  }
  return seen;
}

async function rejects(promise, code, httpStatus) {
  await assert.rejects(promise, (e) => {
    assert.ok(e instanceof PresenceServiceError, String(e));
    assert.ok(e instanceof PresenceError);
    assert.equal(e.code, code, e.message);
    assert.equal(e.httpStatus, httpStatus, e.message);
    return true;
  });
}

/** Records every event of `presence` as a line: "statusChange u a->b", "online u", "offline u". */
function recordEvents(presence) {
  const seen = [];
  presence.on("statusChange", (userId, from, to, status) => {
    assert.equal(status.userId, userId);
    assert.equal(status.status, to);
    seen.push(`statusChange ${userId} ${from}->${to}`);
  });
  presence.on("online", (userId) => seen.push(`online ${userId}`));
  presence.on("offline", (userId) => seen.push(`offline ${userId}`));
  return seen;
}

const about = (seen, userId) => seen.filter((l) => l.split(" ")[1] === userId);

test("options: url and apiKey (or PRESENCED_URL, PRESENCED_API_KEY), heartbeatIntervalMs is the observer's heartbeatMs; the design's server options warn once, naming the setting", async () => {
  let first;
  const warnings = await warningsOf(async () => {
    first = service({ heartbeatIntervalMs: 5000, awayAfterMs: 300000, offlineAfterMs: 3600000, storage: "redis", redisUrl: "redis://127.0.0.1:6379", retries: 3 });
    service({ awayAfterMs: 1, offlineAfterMs: 2, storage: "memory", redisUrl: "redis://x", retries: 4 }); // each warned already
    service({ redisUrl: undefined }); // as `redisUrl: process.env.REDIS_URL` without the variable: nothing to ignore
  });
  assert.equal(warnings.length, 5, warnings.join("\n"));
  for (const [option, setting] of [
    ["awayAfterMs", "PRESENCED_AWAY_AFTER_MS"],
    ["offlineAfterMs", "PRESENCED_OFFLINE_AFTER_MS"],
    ["storage", "PRESENCED_STORAGE"],
    ["redisUrl", "PRESENCED_REDIS_URL"],
  ]) {
    assert.ok(warnings.some((w) => w.includes(`option ${option} is a server setting`) && w.includes(setting)), `${option}: ${warnings.join("\n")}`);
  }
  assert.ok(warnings.some((w) => /option retries is unknown/.test(w)));
  await first.ready();
  assert.equal(first.client.info.heartbeatMs, 5000);
  assert.equal(first.client.info.clientId, "presenced:observer");

  // From the environment, and a ws:// address is taken as its http base.
  const saved = { url: process.env.PRESENCED_URL, key: process.env.PRESENCED_API_KEY };
  try {
    process.env.PRESENCED_URL = server.url;
    process.env.PRESENCED_API_KEY = server.apiKey;
    const fromEnv = createPresenceService();
    services.push(fromEnv);
    assert.equal((await fromEnv.getStatus("nobody-" + process.pid)).status, "offline");
    delete process.env.PRESENCED_URL;
    assert.throws(() => createPresenceService({ apiKey: "k" }), (e) => e instanceof PresenceServiceError && e.code === "bad_request" && /url/.test(e.message));
    delete process.env.PRESENCED_API_KEY;
    assert.throws(() => createPresenceService({ url: httpUrl }), (e) => e instanceof PresenceServiceError && e.code === "bad_request" && /apiKey/.test(e.message));
  } finally {
    for (const [k, v] of [["PRESENCED_URL", saved.url], ["PRESENCED_API_KEY", saved.key]]) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
  for (const url of ["ftp://x", "not a url"]) {
    assert.throws(() => createPresenceService({ url, apiKey: "k" }), (e) => e instanceof PresenceServiceError && e.code === "bad_request", url);
  }
  assert.throws(() => createPresenceService({ url: httpUrl, apiKey: "k", heartbeatIntervalMs: -1 }), (e) => e instanceof PresenceServiceError && e.code === "bad_request");
});

test("getStatus, getStatuses, setStatus, setCustomStatus, clearCustomStatus: the design's fields beside ours", async () => {
  const presence = service();
  const alice = unique("alice");
  const never = unique("never");
  await device(alice, "laptop");
  const s = await presence.getStatus(alice);
  assert.equal(s.userId, alice);
  assert.equal(s.clientId, alice);
  assert.equal(s.status, "online");
  assert.equal(s.customStatus, null);
  assert.equal(s.activeDevice, "laptop");
  assert.equal(typeof s.lastSeen, "number");

  let r = await presence.setCustomStatus(alice, "Trading BTC");
  assert.equal(r.customStatus, "Trading BTC");
  assert.equal(r.text, "Trading BTC");
  assert.equal((await presence.getStatus(alice)).customStatus, "Trading BTC");
  r = await presence.clearCustomStatus(alice);
  assert.equal(r.customStatus, null);
  assert.equal((await presence.getStatus(alice)).customStatus, null);

  for (const status of ["away", "dnd", "offline", "online"]) {
    assert.equal((await presence.setStatus(alice, status)).status, status);
    assert.equal((await presence.getStatus(alice)).status, status);
  }
  // Setting a status does not make a user without a connection online.
  assert.equal((await presence.setStatus(never, "online")).status, "offline");

  const many = await presence.getStatuses([never, alice, "nobody-" + process.pid]);
  assert.deepEqual(many.map((x) => [x.userId, x.status]), [[never, "offline"], [alice, "online"], ["nobody-" + process.pid, "offline"]]);
  assert.equal(many[2].lastSeen, null);
  assert.deepEqual(await presence.getStatuses([]), []);
  // More than one status.get's worth (200), still in the order asked.
  const ids = Array.from({ length: 450 }, (_, i) => (i === 321 ? alice : `u${i}-${process.pid}`));
  const all = await presence.getStatuses(ids);
  assert.deepEqual(all.map((x) => x.userId), ids);
  assert.equal(all[321].status, "online");
  // Long ids: several requests by size (16 KiB each), still in order.
  const longIds = Array.from({ length: 100 }, (_, i) => `${String(i).padStart(3, "0")}-${"l".repeat(240)}`);
  assert.deepEqual((await presence.getStatuses(longIds)).map((x) => x.userId), longIds);
});

test("recordActivity on a user's behalf and getActivity (limit, since): type/channelId beside kind/channel; lastSeen follows", async () => {
  const presence = service();
  const bob = unique("bob");
  assert.equal((await presence.getStatus(bob)).lastSeen, null);
  let first;
  const warnings = await warningsOf(async () => {
    first = await presence.recordActivity(bob, { type: "message", channelId: "telegram-123", timestamp: 1 });
    await presence.recordActivity(bob, { type: "message", timestamp: 2 }); // warned already
  });
  assert.equal(warnings.length, 1);
  assert.match(warnings[0], /timestamp is ignored/);
  assert.equal(first.type, "message");
  assert.equal(first.kind, "message");
  assert.equal(first.channelId, "telegram-123");
  assert.equal(first.channel, "telegram-123");
  assert.equal(first.connectionId, null);
  assert.ok(first.timestamp > 1000, "the server's time, not the one given");
  const second = await presence.recordActivity(bob, { type: "reaction", data: { emoji: "+1" } });
  assert.equal(second.channelId, null);
  assert.deepEqual(second.data, { emoji: "+1" });
  assert.equal((await presence.getStatus(bob)).lastSeen, second.timestamp);

  const list = await presence.getActivity(bob);
  assert.deepEqual(list.map((a) => a.type), ["reaction", "message", "message"]);
  assert.deepEqual(list[2], first);
  assert.deepEqual((await presence.getActivity(bob, { limit: 1 })).map((a) => a.type), ["reaction"]);
  const since = await presence.getActivity(bob, { since: second.timestamp });
  assert.ok(since.length >= 1 && since.every((a) => a.timestamp >= second.timestamp));
  assert.equal(since[0].type, "reaction");
  assert.deepEqual(await presence.getActivity(bob, { since: second.timestamp + 60000 }), []);
});

test("getDevices and setDeviceStatus: the phone on dnd while the laptop is online, the laptop away; getStatus and getDevices follow", async () => {
  const presence = service();
  const carol = unique("carol");
  await device(carol, "laptop");
  const phoneClient = await device(carol, "phone");
  const devices = await presence.getDevices(carol);
  assert.deepEqual(devices.map((d) => d.name).sort(), ["laptop", "phone"]);
  for (const d of devices) {
    assert.equal(d.id, d.connectionId);
    assert.equal(d.name, d.device);
    assert.equal(d.isActive, d.active);
    assert.equal(d.status, "online");
    assert.equal(d.manual, false);
    assert.equal(typeof d.lastSeen, "number");
  }
  const phone = devices.find((d) => d.name === "phone");
  const laptop = devices.find((d) => d.name === "laptop");
  assert.equal(phone.id, phoneClient.info.connectionId);

  const r = await presence.setDeviceStatus(carol, phone.id, "dnd");
  assert.equal(r.device.id, phone.id);
  assert.equal(r.device.status, "dnd");
  assert.equal(r.device.manual, true);
  assert.equal(r.status.status, "online"); // the laptop is online
  const after1 = await presence.getDevices(carol);
  assert.deepEqual(after1.find((d) => d.id === phone.id).status, "dnd");
  assert.equal(after1.find((d) => d.id === phone.id).manual, true);
  assert.equal((await presence.getStatus(carol)).status, "online");

  assert.equal((await presence.setDeviceStatus(carol, laptop.id, "away")).status.status, "dnd"); // dnd over away
  assert.equal((await presence.getStatus(carol)).status, "dnd");
  assert.equal((await presence.setDeviceStatus(carol, phone.id, "offline")).status.status, "away"); // the phone appears offline
  assert.equal((await presence.getStatus(carol)).status, "away");
  assert.equal((await presence.getStatus(carol)).activeDevice, "laptop");
  const back = await presence.setDeviceStatus(carol, phone.id, "online"); // automatic again: online while active
  assert.equal(back.device.manual, false);
  assert.equal(back.status.status, "online");
  await presence.setDeviceStatus(carol, laptop.id, "online");
  assert.equal((await presence.getStatus(carol)).status, "online");
  assert.ok((await presence.getDevices(carol)).every((d) => d.status === "online" && !d.manual));

  await rejects(presence.setDeviceStatus(carol, "no-such-connection", "dnd"), "not_found", 404);
  await rejects(presence.setDeviceStatus(carol, phone.id, "busy"), "bad_request", 400);
});

test("getOnlineUsers: everyone not offline, or those in a channel; name is the userId", async () => {
  const presence = service();
  const ch = unique("telegram");
  const [inRoom, elsewhere, hidden] = [unique("dora"), unique("eve"), unique("fay")];
  const d = await device(inRoom, "laptop");
  await d.channel(ch).presence.enter({ name: "Dora" });
  await device(elsewhere, "phone");
  await device(hidden, "laptop");
  await presence.setStatus(hidden, "offline"); // appears offline
  await presence.setStatus(elsewhere, "dnd");

  const online = await presence.getOnlineUsers();
  const byId = new Map(online.map((u) => [u.userId, u]));
  assert.equal(byId.get(inRoom).status, "online");
  assert.equal(byId.get(inRoom).name, inRoom);
  assert.equal(byId.get(elsewhere).status, "dnd");
  assert.ok(!byId.has(hidden));
  const inChannel = await presence.getOnlineUsers({ channelId: ch });
  assert.deepEqual(inChannel.map((u) => u.userId), [inRoom]);
  assert.deepEqual(await presence.getOnlineUsers({ channelId: unique("empty") }), []);
});

test("sync pushes the status to every device and reports synced/total/lastSync; getSyncStatus reports without pushing", async () => {
  const presence = service();
  const gil = unique("gil");
  const laptop = await device(gil, "laptop");
  const phone = await device(gil, "phone");
  const pushes = [];
  for (const c of [laptop, phone]) c.on("status", (p) => pushes.push(p));

  const report = await presence.sync(gil);
  assert.equal(report.total, 2);
  assert.equal(report.synced, 2);
  assert.equal(typeof report.lastSync, "number");
  assert.equal(report.status.userId, gil);
  assert.equal(report.status.status, "online");
  assert.deepEqual(report.perDevice.map((d) => d.name).sort(), ["laptop", "phone"]);
  for (const d of report.perDevice) {
    assert.equal(d.synced, true);
    assert.equal(d.inSync, true);
    assert.equal(d.id, d.connectionId);
    assert.equal(d.lastSync, d.lastSyncedAt);
  }
  // Each device got the current status again (previous equal to status).
  await waitFor(() => pushes.filter((p) => p.previous === "online" && p.status === "online").length === 2, 8000, "a sync push on both devices");

  const count = pushes.length;
  const again = await presence.getSyncStatus(gil);
  assert.equal(again.synced, 2);
  assert.equal(again.total, 2);
  assert.equal(again.lastSync, report.lastSync);
  await laptop.request("ping"); // a reply after any push getSyncStatus would have caused
  await phone.request("ping");
  assert.equal(pushes.length, count, "getSyncStatus pushes nothing");

  const nobody = await presence.getSyncStatus(unique("nobody"));
  assert.deepEqual([nobody.synced, nobody.total, nobody.lastSync, nobody.perDevice], [0, 0, null, []]);
});

test("errors carry the server's code and HTTP status (and the facade's own codes)", async () => {
  const presence = service();
  const long = "x".repeat(5000);
  await rejects(presence.setStatus(unique("h"), "busy"), "bad_request", 400);
  await rejects(presence.getStatus(long), "too_large", 413);
  await rejects(presence.getActivity(unique("h"), { limit: 0 }), "bad_request", 400);
  await rejects(presence.getStatus(""), "bad_request", null);
  // getStatuses asks over the observer connection: no HTTP status.
  await rejects(presence.getStatuses(["a", ""]), "bad_request", null);
  await rejects(presence.getStatuses(["x".repeat(20000)]), "too_large", null);

  const wrongKey = createPresenceService({ url: httpUrl, apiKey: "wrong" });
  await rejects(wrongKey.getStatus("a"), "unauthorized", 401);
  await wrongKey.close();

  // A port nobody listens on.
  const port = await new Promise((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });
  const unreachable = createPresenceService({ url: `http://127.0.0.1:${port}`, apiKey: "k" });
  await rejects(unreachable.getStatus("a"), "disconnected", null);
  await unreachable.close();

  await presence.close();
  await rejects(presence.getStatus("a"), "closed", null);
  await rejects(presence.getStatuses(["a"]), "closed", null);
  assert.equal(presence.client.state, "closed");
});

test("events: online, statusChange and offline for any user (not for a custom status alone); off stops a listener", async () => {
  const presence = service();
  const seen = recordEvents(presence);
  const dropped = [];
  const drop = (userId) => dropped.push(userId);
  presence.on("online", drop);
  await presence.ready();
  const ivy = unique("ivy");

  const c = await device(ivy, "laptop");
  await waitFor(() => about(seen, ivy).length === 2, 8000, "online");
  await presence.setCustomStatus(ivy, "Trading BTC"); // a text change: no statusChange
  presence.off("online", drop);
  await presence.setStatus(ivy, "dnd");
  await presence.setStatus(ivy, "away");
  await c.close();
  await waitFor(() => about(seen, ivy).length === 6, 8000, "offline");
  assert.deepEqual(about(seen, ivy), [
    `statusChange ${ivy} offline->online`,
    `online ${ivy}`,
    `statusChange ${ivy} online->dnd`,
    `statusChange ${ivy} dnd->away`,
    `statusChange ${ivy} away->offline`,
    `offline ${ivy}`,
  ]);
  assert.deepEqual(dropped, [ivy]);
  // The listeners get the status too.
  const statuses = [];
  presence.on("online", (userId, status) => statuses.push(status));
  const again = await device(ivy, "phone");
  await waitFor(() => statuses.length === 1, 8000, "online again");
  assert.equal(statuses[0].customStatus, "Trading BTC");
  assert.equal(statuses[0].activeDevice, "phone");
  await again.close();
});

test("events across observer reconnects: a resumed connection and a new one each report what changed meanwhile, once", async () => {
  const presence = service();
  const seen = recordEvents(presence);
  await presence.ready();
  const [jo, kim, lee] = [unique("jo"), unique("kim"), unique("lee")];
  const joDevice = await device(jo, "laptop");
  const kimDevice = await device(kim, "laptop");
  await waitFor(() => about(seen, jo).length === 2 && about(seen, kim).length === 2, 8000, "both online");

  // While the observer is away, each user changes: the requests leave at once, long before the
  // observer's reconnect (its first backoff is at least 125 ms).
  const duringTheGap = (act) => {
    const stop = presence.client.on("state", (s) => {
      if (s !== "disconnected") return;
      stop();
      act();
    });
  };

  // 1. An abrupt drop: the observer resumes (the server kept its watch).
  const before1 = presence.client.info.connectionId;
  duringTheGap(() => void joDevice.status.set("dnd"));
  presence.client.dropConnection();
  await waitFor(() => about(seen, jo).length === 3, 8000, "jo's dnd after the resume");
  await waitFor(() => presence.client.state === "connected", 8000, "reconnected");
  assert.equal(presence.client.info.resumed, true);
  assert.equal(presence.client.info.connectionId, before1);

  // 2. The server ends the observer's connection (4002): it gets a new one and watches again.
  duringTheGap(() => {
    void joDevice.status.set("away");
    void kimDevice.close();
  });
  const res = await fetch(`${httpUrl}/v1/connections/${before1}`, { method: "DELETE", headers: { authorization: "Bearer " + server.apiKey } });
  assert.equal(res.status, 204);
  await waitFor(() => about(seen, jo).length === 4 && about(seen, kim).length === 4, 8000, "the changes missed while disconnected");
  await presence.ready();
  assert.equal(presence.client.info.resumed, false);
  assert.notEqual(presence.client.info.connectionId, before1);

  // Events flow on the new connection.
  await device(lee, "phone");
  await waitFor(() => about(seen, lee).length === 2, 8000, "lee online");
  await presence.setStatus(jo, "online");
  await waitFor(() => about(seen, jo).length === 5, 8000, "jo online again");

  assert.deepEqual(about(seen, jo), [
    `statusChange ${jo} offline->online`,
    `online ${jo}`,
    `statusChange ${jo} online->dnd`,
    `statusChange ${jo} dnd->away`,
    `statusChange ${jo} away->online`,
  ]);
  assert.deepEqual(about(seen, kim), [`statusChange ${kim} offline->online`, `online ${kim}`, `statusChange ${kim} online->offline`, `offline ${kim}`]);
  assert.deepEqual(about(seen, lee), [`statusChange ${lee} offline->online`, `online ${lee}`]);
});
