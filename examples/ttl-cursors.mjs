// Coming from a TTL presence client (docs/guides/ttl-client.md): cursors that live while their
// owner sends heartbeats, with a schema as `validate`: zod by default, Effect Schema with
// PRESENCED_SCHEMA=effect. Entries whose data the schema rejects are not shown; an entry whose TTL
// runs out leaves with reason "expired"; a dropped connection that comes back resumes (the entry
// never left).
//
// Run against a server (`make run` writes the secret into presenced-data/; or PRESENCED_SECRET):
//   node examples/ttl-cursors.mjs
//   PRESENCED_SCHEMA=effect node examples/ttl-cursors.mjs
// It prints what a viewer sees and exits 0 when all of it happened.
import assert from "node:assert/strict";
import { PresenceClient } from "@presenced/client";
import { Schema } from "effect";
import { z } from "zod";
import { serverUrl, tokenFor, until } from "./lib/env.mjs";

// The same cursor, as a zod schema and as an Effect Schema; either decoder is a `validate`.
const ZodCursor = z.object({ x: z.number(), y: z.number() });
const EffectCursor = Schema.Struct({ x: Schema.Number, y: Schema.Number });
const schema = process.env.PRESENCED_SCHEMA ?? "zod";
const validate = schema === "effect" ? Schema.decodeUnknownSync(EffectCursor) : (data) => ZodCursor.parse(data);

const channel = process.env.PRESENCED_CHANNEL ?? "pr:cursors";
const opened = [];
function connect(clientId, opts = {}) {
  // Entries are by user, so each client here is another user: tokens minted with the secret.
  const client = new PresenceClient({ url: serverUrl, token: tokenFor(clientId, { distinct: true }), ...opts });
  opened.push(client);
  return client;
}

// The viewer: client.presence(name, {validate}) ~ client.presence("pr:cursors", Cursor).
const viewer = connect("viewer");
const cursors = viewer.presence(channel, { validate });
let latest = new Map();
cursors.onChange((entries) => {
  latest = entries;
  const shown = [...entries].map(([id, e]) => `${id}@${e.data.x},${e.data.y}`).join(" ");
  console.log(`cursors (${schema}): ${shown || "(none)"}`);
});
const leaves = [];
await viewer.channel(channel).presence.subscribe(["leave"], (e) => leaves.push(e));

// Ada moves her cursor: heartbeat(data, ttlMs) enters or refreshes her entry.
const ada = connect("ada", { remainPresentForMs: 5000, reconnectBaseMs: 50 });
const adaCursor = ada.presence(channel, { validate });
await adaCursor.heartbeat({ x: 120, y: 340 }, 5000);
await until(() => latest.get(ada.info.clientId)?.data.x === 120, "Ada's cursor");
await adaCursor.heartbeat({ x: 130, y: 350 }, 5000);
await until(() => latest.get(ada.info.clientId)?.data.x === 130, "Ada's cursor moved");

// Data the schema rejects is not shown (the member is there, its entry is not).
const bot = connect("bot");
await bot.presence(channel).heartbeat({ x: "left", y: null }, 5000);
await until(() => viewer.channel(channel).presence.members().length === 2, "the bot's member");
assert.equal(cursors.value().size, 1, "the invalid cursor is left out");

// Ada's network drops; her client reconnects and resumes: her entry never left.
const before = ada.info.connectionId;
ada.dropConnection();
await until(() => ada.state === "connected" && ada.info.resumed, "Ada's resume");
assert.equal(ada.info.connectionId, before);
assert.equal(cursors.value().get(ada.info.clientId).data.x, 130);

// Grace stops sending heartbeats: value() drops her entry when it is due, and the server ends
// it with reason "expired".
const grace = connect("grace");
await grace.presence(channel, { validate }).heartbeat({ x: 1, y: 2 }, 600);
await until(() => latest.has(grace.info.clientId), "Grace's cursor");
await until(() => !latest.has(grace.info.clientId), "Grace's cursor to expire", 5000);
const expired = await until(() => leaves.find((e) => e.member.clientId === grace.info.clientId), "the expired leave");
assert.equal(expired.reason, "expired");

// leave() removes an entry at once.
await adaCursor.leave();
await until(() => !latest.has(ada.info.clientId), "Ada's leave");
assert.equal(leaves.find((e) => e.member.clientId === ada.info.clientId).reason, "left");
assert.deepEqual(leaves.map((e) => e.reason), ["expired", "left"]); // no leave for Ada's drop
console.log(`ok: ${schema} schema, resume kept the entry, expiry reason ${expired.reason}`);

for (const c of opened) await c.close();
