// An agent worker: runs one toy agent per conversation that presenced assigns to it. The agent
// greets the conversation (as an activity record), answers each message a member writes into the
// conversation channel's presence data ({"say": "..."}), and ends when presenced stops the session
// (stopped, idle, abandoned) or hands it to another worker.
//
// Run against a server:
//   PRESENCED_TOKEN=$(presenced token worker-1 --roles worker) node examples/agent-worker.mjs
// then, from any client, `session.ensure` a conversation (or `presencectl sessions start c1`).
// EXIT_AFTER_SESSIONS=N makes it close and exit 0 once N sessions have stopped (the examples' test
// runs it so); EXIT_AFTER_MS=N after N ms. Otherwise it serves until SIGINT/SIGTERM.
import { PresenceClient } from "@presenced/client";

const client = new PresenceClient({
  url: process.env.PRESENCED_URL ?? "ws://127.0.0.1:7070",
  token: process.env.PRESENCED_TOKEN,
  device: "agent-worker",
});
const capacity = Number(process.env.CAPACITY ?? 10);
const running = new Map(); // conversationId -> stop function
const exitAfterSessions = Number(process.env.EXIT_AFTER_SESSIONS ?? 0);
let sessionsDone = 0;

async function runAgent(assignment) {
  const { conversationId, agentId } = assignment.session;
  const channel = client.channel("conversation:" + conversationId).presence;
  const seen = new Set();
  const unsubscribe = await channel.subscribe(["enter", "update"], (e) => {
    if (e.member.clientId === agentId) return;
    const say = e.member.data && e.member.data.say;
    if (typeof say !== "string" || seen.has(e.serial)) return;
    seen.add(e.serial);
    console.log(`[${conversationId}] ${e.member.clientId}: ${say}`);
    // Writing in the conversation channel is activity: the session does not idle meanwhile.
    void client.activity
      .record("agent.reply", { channel: "conversation:" + conversationId, data: { to: e.member.clientId, text: "echo: " + say } })
      .catch(() => {});
  });
  await assignment.ready(); // presenced enters the agent as a member of the conversation now
  console.log(`[${conversationId}] running as ${agentId} (request ${JSON.stringify(assignment.request)})`);
  await client.activity.record("agent.greeting", { channel: "conversation:" + conversationId, data: { text: "hello!" } });
  running.set(conversationId, unsubscribe);
  const reason = await assignment.stopped;
  running.delete(conversationId);
  await unsubscribe().catch(() => {});
  console.log(`[${conversationId}] stopped: ${reason}`);
  if (exitAfterSessions && ++sessionsDone >= exitAfterSessions) {
    await client.close();
    process.exit(0);
  }
}

await client.sessions.serve({ capacity }, (assignment) => {
  runAgent(assignment).catch(async (e) => {
    console.error(`[${assignment.session.conversationId}] failed: ${e.message}`);
    await assignment.fail(String(e.message)).catch(() => {});
  });
});
console.log(`serving agent sessions (capacity ${capacity})`);

for (const sig of ["SIGINT", "SIGTERM"]) {
  process.on(sig, async () => {
    await client.close(); // a clean close: presenced hands the sessions to other workers at once
    process.exit(0);
  });
}
if (process.env.EXIT_AFTER_MS) {
  setTimeout(async () => {
    await client.close();
    process.exit(0);
  }, Number(process.env.EXIT_AFTER_MS));
}
