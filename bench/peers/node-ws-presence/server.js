// BENCHMARK PEER: not part of presenced.
//
// A typical hand-written Node.js presence server on `ws`, the kind many teams write first: one
// Map of channels to members, every join, update and leave broadcast to the channel as JSON, a
// 30 s TTL swept every second. It is here only so the benchmark suite can measure presenced side
// by side with it (bench/README.md). URL: ws://HOST:PORT/?channel=C&u=USER
'use strict';
const { WebSocketServer } = require('ws');

const port = Number(process.env.PORT || 9001);
const host = process.env.HOST || '127.0.0.1';
const channels = new Map(); // channel -> Map<user, {ws, state, seen}>
const wss = new WebSocketServer({ host, port });

function broadcast(members, msg) {
  const text = JSON.stringify(msg);
  for (const m of members.values()) m.ws.send(text);
}

wss.on('connection', (ws, req) => {
  const url = new URL(req.url, 'http://x');
  const ch = url.searchParams.get('channel') || 'default';
  const u = url.searchParams.get('u') || String(Math.random());
  if (!channels.has(ch)) channels.set(ch, new Map());
  const members = channels.get(ch);
  members.set(u, { ws, state: null, seen: Date.now() });
  ws.send(JSON.stringify({ t: 'snapshot', members: [...members].map(([k, m]) => ({ u: k, state: m.state })) }));
  for (const [k, m] of members) if (k !== u) m.ws.send(JSON.stringify({ t: 'join', u }));
  ws.on('message', (raw) => {
    let msg;
    try { msg = JSON.parse(raw); } catch { return; }
    const me = members.get(u);
    if (!me) return;
    me.state = msg.state;
    me.seen = Date.now();
    broadcast(members, { t: 'update', u, state: me.state });
  });
  ws.on('close', () => {
    members.delete(u);
    broadcast(members, { t: 'leave', u });
    if (members.size === 0) channels.delete(ch);
  });
});

setInterval(() => {
  const now = Date.now();
  for (const [ch, members] of channels) {
    for (const [u, m] of members) {
      if (now - m.seen > 30000 && m.state !== null) {
        members.delete(u);
        broadcast(members, { t: 'leave', u });
      }
    }
    if (members.size === 0) channels.delete(ch);
  }
}, 1000);

wss.on('listening', () => console.log(`node-ws-presence listening on ${host}:${port}`));
