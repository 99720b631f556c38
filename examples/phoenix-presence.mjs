// Coming from Phoenix / Sagents.Presence (docs/guides/phoenix.md): track, update, list and untrack
// on a topic, mapped onto a presenced channel. The tracked process of Phoenix is a connection here:
// it is cleaned up when it closes (at once) or drops (after its remainPresentForMs).
//
// Run against a server (`make run` writes the secret into presenced-data/):
//   node examples/phoenix-presence.mjs
//   PRESENCED_URL=ws://host:7070 PRESENCED_SECRET=... node examples/phoenix-presence.mjs
// It prints what a LiveView subscribed to the topic sees and exits 0 when all of it happened.
import assert from "node:assert/strict";
import { PresenceClient } from "@presenced/client";
import { serverUrl, tokenFor, until } from "./lib/env.mjs";

const topic = "conversation:" + (process.env.PRESENCED_TOPIC ?? "123");
const opened = [];
function connect(clientId, opts = {}) {
  const client = new PresenceClient({ url: serverUrl, token: tokenFor(clientId), ...opts });
  opened.push(client);
  return client;
}

// Phoenix.Presence.list/1 returns %{key => %{metas: [meta, ...]}}, one meta per tracked process.
// Here: one member per connection, grouped by clientId; the connectionId plays phx_ref.
function list(members) {
  const out = {};
  for (const m of members) (out[m.clientId] ??= { metas: [] }).metas.push({ ...m.data, phx_ref: m.connectionId });
  return out;
}

// For UI code written against presence_diff: each event as the %{joins, leaves} Phoenix would send.
// An update is a join and a leave of the same key whose new meta names the old one (phx_ref_prev);
// here it is one `update` event, so only this adapter needs the previous meta.
const metas = new Map(); // connectionId -> the meta last sent for it
function toPresenceDiff(e) {
  const key = e.member.clientId;
  const meta = { ...e.member.data, phx_ref: `${e.member.connectionId}.${e.serial}` };
  const prev = metas.get(e.member.connectionId);
  if (e.action === "leave") {
    metas.delete(e.member.connectionId);
    return { joins: {}, leaves: { [key]: { metas: [prev ?? meta] } } };
  }
  metas.set(e.member.connectionId, meta);
  if (e.action === "enter") return { joins: { [key]: { metas: [meta] } }, leaves: {} };
  return { joins: { [key]: { metas: [{ ...meta, phx_ref_prev: prev.phx_ref }] } }, leaves: { [key]: { metas: [prev] } } };
}

// A LiveView of the topic: subscribed, it gets every change once, in order, with its serial.
const view = connect("viewer", { device: "liveview" });
const room = view.channel(topic).presence;
const events = [];
const diffs = [];
await room.subscribe((e) => {
  events.push(e);
  diffs.push(toPresenceDiff(e));
  const reason = e.reason ? ` (${e.reason})` : "";
  console.log(`#${e.serial} ${e.action} ${e.member.clientId}${reason} ${JSON.stringify(e.member.data)}`);
});

// Sagents.Presence.track(MyApp.Presence, topic, "user-1", %{name: "Alice", joined_at: ...})
const alice = connect("user-1", { device: "liveview" });
const aliceHere = alice.channel(topic).presence;
await aliceHere.enter({ name: "Alice", joined_at: Math.floor(Date.now() / 1000) });

// Sagents.Presence.update(MyApp.Presence, topic, "user-1", %{status: "typing"}): merges, and
// subscribers get one `update` event (Phoenix: one presence_diff with phx_ref_prev).
const updated = await aliceHere.update({ status: "typing" }, { merge: true });
assert.equal(updated.data.name, "Alice");
assert.equal(updated.data.status, "typing");

// Sagents.Presence.list(MyApp.Presence, topic)
await until(() => events.length === 2, "the enter and the update");
console.log("as presence_diff:", JSON.stringify(diffs[1]));
const [newMeta] = diffs[1].joins[alice.info.clientId].metas;
assert.equal(newMeta.phx_ref_prev, diffs[1].leaves[alice.info.clientId].metas[0].phx_ref);
const listed = list(await room.get());
console.log("list:", JSON.stringify(listed));
assert.equal(listed[alice.info.clientId].metas.length, 1);
assert.equal(listed[alice.info.clientId].metas[0].status, "typing");
assert.deepEqual(room.members()[0].data, updated.data); // the view's local copy agrees

// Sagents.Presence.untrack(MyApp.Presence, topic, "user-1")
await aliceHere.leave();

// The tracked process ends. A clean close (a tab closed) leaves at once ...
const tab = connect("user-2", { device: "tab" });
await tab.channel(topic).presence.enter({ name: "Bob" });
await tab.close();
// ... an abrupt drop (a phone losing its network) after remainPresentForMs, unless it comes back
// within it (then it resumes: no leave, no join). This one stays away (its reconnect is a minute off).
const phone = connect("user-3", { device: "phone", remainPresentForMs: 300, reconnectBaseMs: 60000, reconnectMaxMs: 60000 });
await phone.channel(topic).presence.enter({ name: "Carol" });
phone.dropConnection();

await until(() => events.length === 7, "seven events", 8000);
assert.deepEqual(
  events.map((e) => e.action + (e.reason ? ":" + e.reason : "")),
  ["enter", "update", "leave:left", "enter", "leave:disconnected", "enter", "leave:timeout"],
);
// Ordered and gapless: each event's serial is the previous one's plus one.
for (let i = 1; i < events.length; i++) assert.equal(events[i].serial, events[i - 1].serial + 1);
assert.deepEqual(room.members(), []);
console.log(`ok: ${events.length} events in order, serials ${events[0].serial}..${events.at(-1).serial}`);

for (const c of opened) await c.close();
