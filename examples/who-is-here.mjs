// Who is here, on which device, with what status: the @presenced/client README example.
// Run against a server: PRESENCED_TOKEN=$(presenced token alice) node examples/who-is-here.mjs
// (in the channel "room" of the README's quick start; PRESENCED_CHANNEL for another, and
// EXIT_AFTER_MS to stop after that long).
import { PresenceClient } from "@presenced/client";

const client = new PresenceClient({
  url: process.env.PRESENCED_URL ?? "ws://127.0.0.1:7070",
  token: process.env.PRESENCED_TOKEN,
  device: process.env.PRESENCED_DEVICE ?? "laptop",
});

const room = client.channel(process.env.PRESENCED_CHANNEL ?? "room").presence;

async function render() {
  const users = new Map();
  for (const m of room.members()) {
    if (!users.has(m.clientId)) users.set(m.clientId, []);
    users.get(m.clientId).push(m.connectionId);
  }
  if (users.size === 0) return;
  const statuses = await client.status.get([...users.keys()]);
  console.log("---");
  for (const s of statuses) {
    const text = s.text ? ` (${s.text})` : "";
    console.log(`${s.clientId} ${s.status}${text} on ${users.get(s.clientId).length} device(s), active: ${s.activeDevice}`);
  }
}

await room.subscribe(() => void render().catch(console.error));
await room.enter({ name: process.env.USER ?? "someone" });
client.on("statusChange", (user, from, to) => console.log(`${user}: ${from} -> ${to}`));
await render();
if (process.env.EXIT_AFTER_MS) {
  setTimeout(() => client.close().then(() => process.exit(0)), Number(process.env.EXIT_AFTER_MS));
}
