// Coming from the status service (docs/guides/status-service.md): the design's
// createPresenceService and each of its calls, in the design's order, on a presenced server. The
// backend needs only the server's API key; the user's two devices (a laptop and a phone, which in
// a real app are the user's browser and mobile app) connect with tokens the backend minted.
//
// Run against a server (`make run` writes the API key into presenced-data/):
//   node examples/status-service.mjs
//   PRESENCED_URL=http://host:7070 PRESENCED_API_KEY=... node examples/status-service.mjs
// It prints what the service sees and exits 0 when all of it happened.
import assert from "node:assert/strict";
import { PresenceClient } from "@presenced/client";
import { createPresenceService } from "@presenced/client/service";
import { apiKey, httpUrl, serverUrl, until } from "./lib/env.mjs";

const userId = process.env.PRESENCED_USER ?? "alice";
const channelId = "telegram-123";
const key = apiKey();
const wsUrl = serverUrl.replace(/^http/, "ws"); // the devices' WebSocket address

// createPresenceService({ heartbeatIntervalMs, awayAfterMs, storage, redisUrl }) with the server
// and its key added. awayAfterMs and storage are the server's settings: each is ignored with a
// warning on stderr naming the PRESENCED_* setting to use; redisUrl is undefined here (no warning).
const presence = createPresenceService({
  url: httpUrl,
  apiKey: key,
  heartbeatIntervalMs: 30000,
  awayAfterMs: 300000,
  storage: "memory",
  redisUrl: process.env.REDIS_URL,
});

// Event handlers: for every user, from the observer connection's watch.
const events = [];
presence.on("statusChange", (user, oldStatus, newStatus) => {
  events.push(`${user}: ${oldStatus} -> ${newStatus}`);
  console.log(`event: ${user}: ${oldStatus} -> ${newStatus}`);
});
presence.on("online", (user) => {
  events.push(`${user} online`);
  console.log(`event: ${user} is now online`);
});
presence.on("offline", (user) => {
  events.push(`${user} offline`);
  console.log(`event: ${user} went offline`);
});
await presence.ready();

// The user's devices. POST /v1/tokens mints a WebSocket token with the API key.
async function tokenFor(clientId) {
  const res = await fetch(`${httpUrl}/v1/tokens`, {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: JSON.stringify({ clientId }),
  });
  assert.equal(res.status, 200, await res.clone().text());
  return (await res.json()).token;
}
const laptop = new PresenceClient({ url: wsUrl, token: await tokenFor(userId), device: "laptop" });
await laptop.waitForConnected();
await laptop.channel(channelId).presence.enter({ name: "Alice" });
const phone = new PresenceClient({ url: wsUrl, token: await tokenFor(userId), device: "phone" });
await phone.waitForConnected();
await until(() => events.includes(`${userId} online`), "the online event");

// Get Status
const status = await presence.getStatus(userId);
console.log(`Status: ${status.status}, Custom: ${status.customStatus}, Last seen: ${new Date(status.lastSeen).toISOString()}, Device: ${status.activeDevice}`);
assert.equal(status.status, "online");
const statuses = await presence.getStatuses([userId, "user-2", "user-3"]);
console.log("getStatuses:", statuses.map((s) => `${s.userId}=${s.status}`).join(" "));

// Set Status (by hand; "online" returns to automatic), custom status
await presence.setStatus(userId, "away");
await presence.setStatus(userId, "dnd");
await presence.setStatus(userId, "online");
await presence.setCustomStatus(userId, "Trading BTC");
console.log(`Custom: ${(await presence.getStatus(userId)).customStatus}`);
await presence.clearCustomStatus(userId);
assert.equal((await presence.getStatus(userId)).customStatus, null);
await until(() => events.includes(`${userId}: dnd -> online`), "the status changes");

// Activity Tracking (the server stamps the time)
await presence.recordActivity(userId, { type: "message", channelId });
const activity = await presence.getActivity(userId, { limit: 10, since: Date.now() - 3600000 });
for (const event of activity) console.log(`${event.type} in ${event.channelId}`);
assert.equal(activity[0].type, "message");

// Device Presence: the phone on do-not-disturb while the laptop is online
const devices = await presence.getDevices(userId);
for (const device of devices) console.log(`device ${device.name}: ${device.status}${device.isActive ? ", active" : ""}`);
const phoneDevice = devices.find((d) => d.name === "phone");
const changed = await presence.setDeviceStatus(userId, phoneDevice.id, "dnd");
console.log(`setDeviceStatus: phone ${changed.device.status} (manual: ${changed.device.manual}), ${userId} ${changed.status.status}`);
assert.equal(changed.status.status, "online"); // the laptop is online
const laptopDevice = devices.find((d) => d.name === "laptop");
const both = await presence.setDeviceStatus(userId, laptopDevice.id, "away");
console.log(`setDeviceStatus: laptop ${both.device.status}, ${userId} ${both.status.status}`);
assert.equal(both.status.status, "dnd"); // no device online: dnd over away
await presence.setDeviceStatus(userId, laptopDevice.id, "online");
await presence.setDeviceStatus(userId, phoneDevice.id, "online");

// Who's Online, per channel
const online = await presence.getOnlineUsers({ channelId });
for (const user of online) console.log(`online in ${channelId}: ${user.name}: ${user.status}`);
assert.deepEqual(online.map((u) => u.userId), [userId]);

// Sync Across Devices
await presence.sync(userId);
const syncStatus = await presence.getSyncStatus(userId);
console.log(`Devices synced: ${syncStatus.synced}/${syncStatus.total}`);
assert.equal(syncStatus.synced, 2);

// The user leaves: both devices close.
await phone.close();
await laptop.close();
await until(() => events.includes(`${userId} offline`), "the offline event");
await presence.close();
assert.deepEqual(events, [
  `${userId}: offline -> online`,
  `${userId} online`,
  `${userId}: online -> away`,
  `${userId}: away -> dnd`,
  `${userId}: dnd -> online`,
  `${userId}: online -> dnd`,
  `${userId}: dnd -> online`,
  `${userId}: online -> offline`,
  `${userId} offline`,
]);
console.log(`ok: every call of the status service, ${events.length} events`);
