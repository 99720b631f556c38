// @presenced/client: the JavaScript/TypeScript client for presenced (docs/protocol.md).
//
// One PresenceClient is one connection (one device). It reconnects by itself with jittered
// backoff, resumes within the server's grace period (no leave/enter noise), and after a longer
// outage re-enters every channel it had entered and re-subscribes from the last serial it saw, so
// listeners see every change exactly once and in order.
//
// Every exported name carries a TSDoc comment with an example: `npm run docs` builds the API
// reference from them (typedoc, with undocumented members as errors).

/**
 * @packageDocumentation
 * The JavaScript/TypeScript client for presenced: channel presence, TTL presence, user and
 * per-device status, agent sessions, reconnect and resume.
 *
 * @example
 * ```ts
 * import { PresenceClient } from "@presenced/client";
 *
 * const client = new PresenceClient({ url: "ws://127.0.0.1:7070", token, device: "laptop" });
 * const room = client.channel("room").presence;
 * await room.subscribe((e) => console.log(e.action, e.member.clientId));
 * await room.enter({ name: "Alice" });
 * ```
 */

/**
 * What happened to a member: it entered, changed its data, or left.
 *
 * @example
 * ```ts
 * const actions: Action[] = ["enter", "leave"]; // subscribe to joins and leaves only
 * await client.channel("room").presence.subscribe(actions, (e) => console.log(e.action));
 * ```
 */
export type Action = "enter" | "update" | "leave";

/**
 * Why a member left: `left` (it called `leave`), `disconnected` (its connection closed cleanly),
 * `timeout` (its connection dropped and did not come back within `remainPresentForMs`), or
 * `expired` (its TTL ran out without a heartbeat).
 *
 * @example
 * ```ts
 * room.subscribe(["leave"], (e) => {
 *   if (e.reason === "expired") console.log(e.member.clientId, "stopped sending heartbeats");
 * });
 * ```
 */
export type LeaveReason = "left" | "disconnected" | "timeout" | "expired";

/**
 * A user's or a device's status.
 *
 * @example
 * ```ts
 * const s: StatusValue = "dnd";
 * await client.status.set(s, "Focus time");
 * ```
 */
export type StatusValue = "online" | "away" | "dnd" | "offline";

/**
 * The client's connection state (`client.state`, and the `state` event).
 *
 * @example
 * ```ts
 * client.on("state", (s: ConnectionState) => console.log("connection", s));
 * ```
 */
export type ConnectionState = "connecting" | "connected" | "disconnected" | "closed";

/**
 * One member of a channel: one connection of one client that entered it.
 *
 * @example
 * ```ts
 * const members: Member<{ name: string }>[] = await client.channel("room").presence.get();
 * for (const m of members) console.log(m.clientId, m.connectionId, m.data.name);
 * ```
 */
export interface Member<T = unknown> {
  /** The user (the token's `sub`). */
  clientId: string;
  /** The connection (device) that entered; one user may be a member several times. */
  connectionId: string;
  /** The member's data, as given to `enter` or `update`. */
  data: T;
  /** Time of the member's last change (ms since the epoch). */
  timestamp: number;
  /** When a TTL member expires unless refreshed (ms since the epoch); null without a TTL. */
  expiresAt: number | null;
}

/**
 * One change of a channel's presence, with its serial (strictly increasing per channel).
 *
 * @example
 * ```ts
 * await room.subscribe((e: PresenceEvent) => console.log(e.serial, e.action, e.member.clientId, e.reason ?? ""));
 * ```
 */
export interface PresenceEvent<T = unknown> {
  /** Always `"presence"`. */
  type: "presence";
  /** The channel's name. */
  channel: string;
  /** Enter, update or leave. */
  action: Action;
  /** The member after the change (on a leave: as it was). */
  member: Member<T>;
  /** The channel's serial of this event: gapless and increasing for a subscriber. */
  serial: number;
  /** On a leave: why the member left. */
  reason?: LeaveReason;
}

/**
 * A user's status, as the server derives it from the user's devices and manual status.
 *
 * @example
 * ```ts
 * const [s]: UserStatus[] = await client.status.get(["alice"]);
 * console.log(s.status, s.text, s.lastSeen, s.activeDevice);
 * ```
 */
export interface UserStatus {
  /** The user. */
  clientId: string;
  /** The user's status: set by hand, else derived from the devices (docs/protocol.md). */
  status: StatusValue;
  /** The custom status text, or null. */
  text: string | null;
  /** The user's last activity (ms since the epoch), or null when never seen. */
  lastSeen: number | null;
  /** The `device` name of the most recently active connection (the active device), or null when offline. */
  activeDevice: string | null;
}

/**
 * A status push: sent to watchers of a user when the user's status changes, and to all the
 * user's own connections; after a device's status was set it carries that `device` (and then
 * reaches the user's connections even when the user's status did not change).
 *
 * @example
 * ```ts
 * client.on("status", (p: StatusPush) => {
 *   if (p.device) console.log(`device ${p.device.device} is now ${p.device.status}`);
 *   console.log(`${p.clientId}: ${p.previous} -> ${p.status}`);
 * });
 * ```
 */
export interface StatusPush extends UserStatus {
  /** Always `"status"`. */
  type: "status";
  /** The user's status before this push (equal to `status` when only a device changed). */
  previous: StatusValue;
  /** The device whose status was set, on pushes to the user's own connections after `setDeviceStatus`. */
  device?: Device;
}

/**
 * One live connection (device) of a user, with its own status.
 *
 * @example
 * ```ts
 * for (const d of await client.devices()) {
 *   console.log(d.device, d.status, d.manual ? "(set)" : "", d.active ? "active" : "");
 * }
 * ```
 */
export interface Device {
  /** The connection's id. */
  connectionId: string;
  /** The device name given on connect (`device` option), `"unknown"` by default. */
  device: string;
  /** The device's effective status: set by hand, else from its idle time. */
  status: StatusValue;
  /** True when the status was set by hand (`setDeviceStatus`), false when automatic. */
  manual: boolean;
  /** The device's last activity (ms since the epoch). */
  lastSeen: number;
  /** True for the user's active device (the one used last). */
  active: boolean;
}

/**
 * What `setDeviceStatus` resolves with: the device after the change and the user's status.
 *
 * @example
 * ```ts
 * const { device, status }: DeviceStatusResult = await phone.setDeviceStatus("dnd");
 * console.log(device.status, device.manual, status.status);
 * ```
 */
export interface DeviceStatusResult {
  /** The device whose status was set. */
  device: Device;
  /** The user's status that follows from all the user's devices (and a manual user status). */
  status: UserStatus;
}

/**
 * One activity record of a user (`client.activity.record`).
 *
 * @example
 * ```ts
 * const [last]: Activity[] = await client.activity.list({ limit: 1 });
 * console.log(last.kind, last.channel, last.data, new Date(last.timestamp));
 * ```
 */
export interface Activity {
  /** What the user did, e.g. `"message"`. */
  kind: string;
  /** The channel it happened in, or null. */
  channel: string | null;
  /** Any JSON given with the record. */
  data: unknown;
  /** When it was recorded (ms since the epoch, the server's clock). */
  timestamp: number;
  /** The connection that recorded it (null for a record made over REST on a user's behalf). */
  connectionId: string | null;
}

/**
 * Which page of a channel's history to read (`ChannelPresence.history`).
 *
 * @example
 * ```ts
 * const page = await room.history({ direction: "forwards", limit: 50, start: Date.now() - 3600_000 });
 * ```
 */
export interface HistoryOptions {
  /** Earliest event time (ms since the epoch). */
  start?: number;
  /** Latest event time (ms since the epoch). */
  end?: number;
  /** Events per page. */
  limit?: number;
  /** Newest first (`backwards`, the default) or oldest first. */
  direction?: "backwards" | "forwards";
  /** The `next` of the previous page. */
  cursor?: number;
}

/**
 * One page of history; `next` is the cursor of the following page, absent on the last.
 *
 * @example
 * ```ts
 * let page: HistoryPage = await room.history({ limit: 100 });
 * while (page.next !== undefined) page = await room.history({ limit: 100, cursor: page.next });
 * ```
 */
export interface HistoryPage {
  /** The events of this page, in the requested direction. */
  events: PresenceEvent[];
  /** Cursor for the next page; absent when there is none. */
  next?: number;
}

// ----- Agent sessions (protocol-ext §3) ---------------------------------------------------------

/**
 * An agent session's state: `starting` (assigned to a worker, not ready yet) or `running`.
 *
 * @example
 * ```ts
 * const s = await client.sessions.get("c1");
 * if (s?.state === "running") console.log("the agent is up");
 * ```
 */
export type SessionState = "starting" | "running";

/**
 * Why an agent session stopped.
 *
 * @example
 * ```ts
 * const reason: SessionStopReason = await assignment.stopped;
 * ```
 */
export type SessionStopReason = "stopped" | "idle" | "abandoned" | "failed" | "worker_lost";

/**
 * One agent session per conversation, cluster-wide (SESSION on the wire).
 *
 * @example
 * ```ts
 * const { session }: { session: AgentSession } = await client.sessions.ensure("c1");
 * console.log(session.agentId, session.state, session.workerConnectionId);
 * ```
 */
export interface AgentSession {
  /** The conversation the session belongs to. */
  conversationId: string;
  /** The agent's clientId, `agent-{conversationId}`. */
  agentId: string;
  /** Starting or running. */
  state: SessionState;
  /** The worker connection running it, or null while unassigned. */
  workerConnectionId: string | null;
  /** When the session started (ms since the epoch). */
  startedAt: number;
  /** The conversation's last activity (ms since the epoch). */
  lastActivityAt: number;
  /** Idle time after which the session stops (reason `idle`). */
  inactivityTimeoutMs: number;
  /** Time without any member after which the session stops (reason `abandoned`). */
  abandonAfterMs: number;
}

/**
 * A change of an agent session (`client.on("session")`, for conversations this client ensured).
 *
 * @example
 * ```ts
 * client.on("session", (e: SessionEvent) => console.log(e.action, e.session.conversationId, e.reason ?? ""));
 * ```
 */
export interface SessionEvent {
  /** What happened to the session. */
  action: "started" | "running" | "reassigned" | "stopped";
  /** The session after the change. */
  session: AgentSession;
  /** On `stopped`: why. */
  reason?: SessionStopReason;
  /** What the worker's `fail` said, on `stopped` with reason `failed`. */
  error?: string;
}

/**
 * What `sessions.start` and `sessions.ensure` resolve with.
 *
 * @example
 * ```ts
 * const { session, created }: SessionResult = await client.sessions.start("c1");
 * if (!created) console.log("already running on", session.workerConnectionId);
 * ```
 */
export interface SessionResult {
  /** The conversation's session (new or the one that existed). */
  session: AgentSession;
  /** False when the session existed already. */
  created: boolean;
}

/**
 * Options of `sessions.start` and `sessions.ensure`.
 *
 * @example
 * ```ts
 * await client.sessions.ensure("c1", { request: { prompt: "hi" }, inactivityTimeoutMs: 600_000 });
 * ```
 */
export interface SessionStartOptions {
  /** Any JSON, handed verbatim to the worker that runs the agent. */
  request?: unknown;
  /** Idle time after which the session stops (the server's default when absent). */
  inactivityTimeoutMs?: number;
  /** Time without members after which the session stops (the server's default when absent). */
  abandonAfterMs?: number;
}

/**
 * A session assigned to this worker (`client.sessions.serve`).
 *
 * @example
 * ```ts
 * await worker.sessions.serve({ capacity: 4 }, async (a: SessionAssignment) => {
 *   await a.ready();
 *   console.log("stopped:", await a.stopped);
 * });
 * ```
 */
export interface SessionAssignment {
  /** The session assigned. */
  session: AgentSession;
  /** The `request` given to `start`/`ensure` (null when none). */
  request: unknown;
  /**
   * The agent is running: the server enters it in `conversation:{id}`.
   *
   * @example
   * ```ts
   * await assignment.ready();
   * ```
   */
  ready(): Promise<void>;
  /**
   * The agent could not start: the session stops with reason `failed`.
   *
   * @example
   * ```ts
   * await assignment.fail("model unavailable");
   * ```
   */
  fail(error?: string): Promise<void>;
  /**
   * Activity that keeps the session from idling.
   *
   * @example
   * ```ts
   * await assignment.touch();
   * ```
   */
  touch(): Promise<void>;
  /** Resolves when the server stops this session (or hands it away). */
  readonly stopped: Promise<SessionStopReason>;
}

/**
 * A request the server refused, or one that could not complete. `code` is the protocol's
 * (`not_present`, `forbidden`, `not_found`, `rate_limited`, ...) or the client's own (`timeout`,
 * `disconnected`, `closed`).
 *
 * @example
 * ```ts
 * try {
 *   await room.update({ typing: true });
 * } catch (e) {
 *   if (e instanceof PresenceError && e.code === "not_present") await room.enter({ typing: true });
 * }
 * ```
 */
export class PresenceError extends Error {
  /**
   * @param code - the protocol's error code
   * @param message - a human-readable explanation
   * @example
   * ```ts
   * throw new PresenceError("bad_request", "a token is required");
   * ```
   */
  constructor(
    /**
     * The protocol's error code (or `timeout`, `disconnected`, `closed`).
     *
     * @example
     * ```ts
     * await room.update(1).catch((e: PresenceError) => console.log(e.code)); // "not_present"
     * ```
     */
    public readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "PresenceError";
  }
}

/**
 * The subset of the WebSocket API the client uses (browser WebSocket and `ws` both fit).
 *
 * @example
 * ```ts
 * const socket: SocketLike = new WebSocket("ws://127.0.0.1:7070/v1/ws");
 * ```
 */
export interface SocketLike {
  /** 0 connecting, 1 open, 2 closing, 3 closed. */
  readyState: number;
  /**
   * Sends a text frame.
   *
   * @example
   * ```ts
   * socket.send(JSON.stringify({ op: "ping", id: 1 }));
   * ```
   */
  send(data: string): void;
  /**
   * Closes with a close frame.
   *
   * @example
   * ```ts
   * socket.close(1000, "bye");
   * ```
   */
  close(code?: number, reason?: string): void;
  /** Called when open. */
  onopen: ((ev: unknown) => void) | null;
  /** Called when closed, with the close code. */
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  /** Called on an error (a close follows). */
  onerror: ((ev: unknown) => void) | null;
  /** Called with each message. */
  onmessage: ((ev: { data: unknown }) => void) | null;
  /** Cuts the connection without a close frame (`ws` only; used by `dropConnection`). */
  terminate?: () => void;
}

/**
 * A WebSocket constructor (`ClientOptions.WebSocket`).
 *
 * @example
 * ```ts
 * import WebSocket from "ws";
 * const client = new PresenceClient({ url, token, WebSocket: WebSocket as unknown as SocketFactory });
 * ```
 */
export type SocketFactory = new (url: string) => SocketLike;

/**
 * How to connect: the server, the credentials, and the connection's parameters.
 *
 * @example
 * ```ts
 * const options: ClientOptions = {
 *   url: "ws://127.0.0.1:7070",
 *   authCallback: () => fetch("/presence-token").then((r) => r.text()),
 *   device: "laptop",
 *   heartbeatMs: 5000,
 * };
 * const client = new PresenceClient(options);
 * ```
 */
export interface ClientOptions {
  /**
   * Server address, e.g. "ws://127.0.0.1:7070" (the path /v1/ws is added when absent).
   *
   * @example
   * ```ts
   * new PresenceClient({ url: "wss://presence.example.com", token });
   * ```
   */
  url: string;
  /**
   * A client token (a JWT signed with the server's secret; `presenced token alice` mints one).
   *
   * @example
   * ```ts
   * new PresenceClient({ url, token: process.env.PRESENCED_TOKEN });
   * ```
   */
  token?: string;
  /**
   * A callback that returns a fresh token before every (re)connect (instead of `token`).
   *
   * @example
   * ```ts
   * new PresenceClient({ url, authCallback: async () => (await fetch("/token")).text() });
   * ```
   */
  authCallback?: () => Promise<string> | string;
  /**
   * This connection's device name, shown in `devices` (default `"unknown"`).
   *
   * @example
   * ```ts
   * new PresenceClient({ url, token, device: "phone" });
   * ```
   */
  device?: string;
  /**
   * How long the server keeps this connection's members after an abrupt drop, so that a quick
   * reconnect resumes without leave/enter (clamped by the server; 0 = leave at once).
   *
   * @example
   * ```ts
   * new PresenceClient({ url, token, remainPresentForMs: 30_000 });
   * ```
   */
  remainPresentForMs?: number;
  /**
   * The heartbeat interval this connection asks for (`heartbeatMs` on the upgrade): the server
   * pings every `heartbeatMs` and treats the connection as dropped after two silent intervals, so
   * a short interval notices a dead device sooner. The server clamps it into its bounds
   * (`PRESENCED_MIN_HEARTBEAT_MS`, default 1000, to `PRESENCED_MAX_HEARTBEAT_MS`, default
   * 120000); absent = the server's `PRESENCED_HEARTBEAT_MS`. The effective value is
   * `client.info.heartbeatMs`. A non-negative integer, else the constructor throws `bad_request`.
   *
   * @example
   * ```ts
   * const client = new PresenceClient({ url, token, heartbeatMs: 5000 });
   * const { heartbeatMs } = await client.waitForConnected(); // 5000, or the server's bound
   * ```
   */
  heartbeatMs?: number;
  /**
   * WebSocket constructor; defaults to the global one, else the `ws` package (Node).
   *
   * @example
   * ```ts
   * import WebSocket from "ws";
   * new PresenceClient({ url, token, WebSocket: WebSocket as unknown as SocketFactory });
   * ```
   */
  WebSocket?: SocketFactory;
  /**
   * Reconnect backoff: the first delay in ms (doubling per attempt, jittered by ±50 %). Default 250.
   *
   * @example
   * ```ts
   * new PresenceClient({ url, token, reconnectBaseMs: 100, reconnectMaxMs: 5000 });
   * ```
   */
  reconnectBaseMs?: number;
  /**
   * Reconnect backoff: the longest delay in ms. Default 10000.
   *
   * @example
   * ```ts
   * new PresenceClient({ url, token, reconnectMaxMs: 30_000 });
   * ```
   */
  reconnectMaxMs?: number;
  /**
   * How long a request waits for its reply before it rejects with `timeout`. Default 10000.
   *
   * @example
   * ```ts
   * new PresenceClient({ url, token, requestTimeoutMs: 3000 });
   * ```
   */
  requestTimeoutMs?: number;
  /**
   * Let the server pack several messages into one frame (`batch=1`, protocol-ext §1): fewer
   * frames in large rooms. Default true; the client unpacks them transparently.
   *
   * @example
   * ```ts
   * new PresenceClient({ url, token, batch: false });
   * ```
   */
  batch?: boolean;
  /**
   * Put the token in the URL (`?token=`) instead of sending it as the first frame
   * (`{"op":"auth","token":...}`). Default false: URLs end up in proxy logs and browser history.
   *
   * @example
   * ```ts
   * new PresenceClient({ url, token, tokenInUrl: true });
   * ```
   */
  tokenInUrl?: boolean;
  /**
   * Connect as an observer with the server's API key instead of a token (operators' tools: a
   * dashboard, a monitor). An observer subscribes and reads any channel and watches any user, but
   * is nobody: it is not online, not in `who`, and may not enter or set a status. Never give the
   * API key to a browser you do not control.
   *
   * @example
   * ```ts
   * const observer = new PresenceClient({ url, apiKey: process.env.PRESENCED_API_KEY });
   * ```
   */
  apiKey?: string;
}

/**
 * The server's `connected` frame: who this connection is and its effective parameters.
 *
 * @example
 * ```ts
 * const info: ConnectedInfo = await client.waitForConnected();
 * console.log(info.connectionId, info.resumed, info.heartbeatMs);
 * ```
 */
export interface ConnectedInfo {
  /** This connection's id (kept across a resume). */
  connectionId: string;
  /** The user (the token's `sub`; `presenced:observer` for an observer). */
  clientId: string;
  /** The server run's id; it changes on every restart. */
  epoch: string;
  /** True when this connection resumed the previous one (same connectionId, nothing lost). */
  resumed: boolean;
  /** The effective heartbeat interval (the `heartbeatMs` option clamped, or the server's). */
  heartbeatMs: number;
  /** The effective grace period after an abrupt drop. */
  remainPresentForMs: number;
}

/**
 * The client's events and their listeners' arguments (`client.on(name, listener)`).
 *
 * @example
 * ```ts
 * client.on("statusChange", (clientId, from, to) => console.log(clientId, from, "->", to));
 * client.on("error", (e) => console.error(e.code, e.message));
 * ```
 */
export interface ClientEvents {
  /** The connection state changed. */
  state: [ConnectionState];
  /** Connected (or resumed), with the server's `connected` frame. */
  connected: [ConnectedInfo];
  /** A watched user's (or this user's) status changed: clientId, previous, now. */
  statusChange: [string, StatusValue, StatusValue];
  /** A watched user came online (from offline). */
  online: [string];
  /** A watched user went offline. */
  offline: [string];
  /** Every status push, including device-only pushes (with `device`). */
  status: [StatusPush];
  /** Agent session events of conversations this client `ensure`d. */
  session: [SessionEvent];
  /** Something failed outside a request (authentication, a reconnect, a listener of `serve`). */
  error: [PresenceError];
}

/**
 * Agent sessions (protocol-ext §3), `client.sessions`: one per conversation, cluster-wide.
 * `start` and `ensure` are idempotent (`created` is false when one exists).
 *
 * @example
 * ```ts
 * const { session, created } = await client.sessions.ensure("c1", { request: { topic: "demo" } });
 * ```
 */
export interface SessionsApi {
  /**
   * Starts the conversation's session unless one exists.
   *
   * @example
   * ```ts
   * const { created } = await client.sessions.start("c1");
   * ```
   */
  start(conversationId: string, opts?: SessionStartOptions): Promise<SessionResult>;
  /**
   * Like `start`, and delivers the conversation's session events to `on("session")` (also after
   * a reconnect, while the session lives).
   *
   * @example
   * ```ts
   * client.on("session", (e) => console.log(e.action));
   * await client.sessions.ensure("c1");
   * ```
   */
  ensure(conversationId: string, opts?: SessionStartOptions): Promise<SessionResult>;
  /**
   * The conversation's session, or null.
   *
   * @example
   * ```ts
   * const session = await client.sessions.get("c1");
   * ```
   */
  get(conversationId: string): Promise<AgentSession | null>;
  /**
   * Stops the session; resolves with false when there was none.
   *
   * @example
   * ```ts
   * await client.sessions.stop("c1");
   * ```
   */
  stop(conversationId: string): Promise<boolean>;
  /**
   * Serves sessions (a token with `"roles":["worker"]`): `onAssign` is called with each session
   * assigned to this worker.
   *
   * @example
   * ```ts
   * await worker.sessions.serve({ capacity: 10 }, async (a) => {
   *   await a.ready();
   * });
   * ```
   */
  serve(opts: { capacity?: number }, onAssign: (a: SessionAssignment) => void | Promise<void>): Promise<void>;
}

/**
 * The user's status, `client.status`: set this user's, read and watch anyone's.
 *
 * @example
 * ```ts
 * await client.status.set("away", "Lunch");
 * const stop = await client.status.watch(["bob"], (p) => console.log(p.status));
 * ```
 */
export interface StatusApi {
  /**
   * Sets this user's status by hand (a user-level status wins over the devices' statuses;
   * `online` returns to automatic) and/or its custom text (null clears it).
   *
   * @example
   * ```ts
   * await client.status.set("dnd", "In a meeting");
   * await client.status.set(undefined, null); // clear the text, keep the status
   * ```
   */
  set(status?: StatusValue, text?: string | null): Promise<UserStatus>;
  /**
   * The statuses of these users.
   *
   * @example
   * ```ts
   * const [alice, bob] = await client.status.get(["alice", "bob"]);
   * ```
   */
  get(clientIds: string[]): Promise<UserStatus[]>;
  /**
   * Calls `listener` with every status push of these users; resolves with a function that stops.
   *
   * @example
   * ```ts
   * const stop = await client.status.watch(["bob"], (p) => console.log(p.previous, "->", p.status));
   * await stop();
   * ```
   */
  watch(clientIds: string[], listener: (s: StatusPush) => void): Promise<() => Promise<void>>;
}

/**
 * Activity records, `client.activity`: what users did, which moves their `lastSeen`.
 *
 * @example
 * ```ts
 * await client.activity.record("message", { channel: "room", data: { length: 12 } });
 * ```
 */
export interface ActivityApi {
  /**
   * Records an activity of this user (it counts as activity for status and `lastSeen`).
   *
   * @example
   * ```ts
   * await client.activity.record("typing", { channel: "room" });
   * ```
   */
  record(kind: string, opts?: { channel?: string; data?: unknown }): Promise<void>;
  /**
   * This user's (or `clientId`'s) recent activity, newest first.
   *
   * @example
   * ```ts
   * const recent = await client.activity.list({ clientId: "bob", limit: 10 });
   * ```
   */
  list(opts?: { clientId?: string; limit?: number; since?: number }): Promise<Activity[]>;
}

type Listener<A extends unknown[]> = (...args: A) => void;

interface Pending {
  resolve: (reply: Record<string, unknown>) => void;
  reject: (err: PresenceError) => void;
  timer: ReturnType<typeof setTimeout>;
}

function jitter(ms: number): number {
  return Math.round(ms * (0.5 + Math.random()));
}

/**
 * One connection (one device) to presenced. It connects at once, reconnects by itself with
 * jittered backoff, resumes within the grace period (no leave/enter for anyone), and after a
 * longer outage re-enters the channels it had entered, re-subscribes from the last serial it saw
 * and re-watches its users, so listeners see every change once, in order.
 *
 * @example
 * ```ts
 * const client = new PresenceClient({ url: "ws://127.0.0.1:7070", token, device: "laptop" });
 * const room = client.channel("room").presence;
 * await room.subscribe(() => console.log(room.members().map((m) => m.clientId)));
 * await room.enter({ name: "Alice" });
 * await client.setDeviceStatus("dnd"); // this device on do-not-disturb
 * await client.close();
 * ```
 */
export class PresenceClient {
  /**
   * The connection's state now (the `state` event tells each change).
   *
   * @example
   * ```ts
   * if (client.state === "connected") console.log("live");
   * ```
   */
  state: ConnectionState = "connecting";
  /**
   * The last `connected` frame (null before the first connect).
   *
   * @example
   * ```ts
   * await client.waitForConnected();
   * console.log(client.info!.connectionId, client.info!.heartbeatMs);
   * ```
   */
  info: ConnectedInfo | null = null;

  private readonly opts: Required<
    Pick<ClientOptions, "reconnectBaseMs" | "reconnectMaxMs" | "requestTimeoutMs">
  > &
    ClientOptions;
  private socket: SocketLike | null = null;
  private connectionKey: string | null = null;
  private nextId = 0;
  private readonly pending = new Map<number, Pending>();
  private readonly listeners = new Map<keyof ClientEvents, Set<Listener<never[]>>>();
  private readonly channels = new Map<string, Channel>();
  private readonly watched = new Map<string, Set<(s: StatusPush) => void>>();
  private attempts = 0;
  private closing = false;
  private reconnectTimer: ReturnType<typeof setTimeout> | null = null;
  private connectedWaiters: Array<{ resolve: (i: ConnectedInfo) => void; reject: (e: PresenceError) => void }> = [];
  // Agent sessions: conversations ensured (re-ensured on a new connection while their session
  // lives), and this worker's serving and assignments.
  private readonly ensured = new Set<string>();
  private serving: { capacity?: number; onAssign: (a: SessionAssignment) => void | Promise<void> } | null = null;
  private readonly assignments = new Map<string, (reason: SessionStopReason) => void>();

  /**
   * Agent sessions (protocol-ext §3): one per conversation, cluster-wide. `start` and `ensure` are
   * idempotent (`created` is false when one exists); `ensure` also delivers the conversation's
   * session events to `on("session")`. A token with `"roles":["worker"]` may `serve`.
   *
   * @example
   * ```ts
   * client.on("session", (e) => console.log(e.action));
   * await client.sessions.ensure("c1", { request: { prompt: "hello" } });
   * ```
   */
  readonly sessions: SessionsApi = {
    start: (conversationId, opts = {}) =>
      this.request("session.start", { conversationId, ...opts }).then((r) => ({
        session: r.session as AgentSession,
        created: r.created as boolean,
      })),
    ensure: async (conversationId, opts = {}) => {
      const r = await this.request("session.ensure", { conversationId, ...opts });
      this.ensured.add(conversationId);
      return { session: r.session as AgentSession, created: r.created as boolean };
    },
    get: (conversationId) =>
      this.request("session.get", { conversationId }).then((r) => (r.session as AgentSession | null) ?? null),
    stop: (conversationId) => this.request("session.stop", { conversationId }).then((r) => r.stopped as boolean),
    serve: async (opts, onAssign) => {
      this.serving = { capacity: opts.capacity, onAssign };
      await this.request("session.serve", opts.capacity === undefined ? {} : { capacity: opts.capacity });
    },
  };

  /**
   * The user's status: `set` this user's, `get` and `watch` anyone's. For one device's status
   * see {@link PresenceClient.setDeviceStatus}.
   *
   * @example
   * ```ts
   * await client.status.set("away", "Back at 2");
   * const [bob] = await client.status.get(["bob"]);
   * ```
   */
  readonly status: StatusApi = {
    set: (status, text) => {
      const fields: Record<string, unknown> = {};
      if (status !== undefined) fields.status = status;
      if (text !== undefined) fields.text = text;
      return this.request("status.set", fields).then((r) => r.status as UserStatus);
    },
    get: (clientIds) => this.request("status.get", { clientIds }).then((r) => r.statuses as UserStatus[]),
    watch: async (clientIds, listener) => {
      for (const id of clientIds) {
        let set = this.watched.get(id);
        if (!set) this.watched.set(id, (set = new Set()));
        set.add(listener);
      }
      await this.request("status.watch", { clientIds });
      return async () => {
        const stop: string[] = [];
        for (const id of clientIds) {
          const set = this.watched.get(id);
          set?.delete(listener);
          if (set && set.size === 0) {
            this.watched.delete(id);
            stop.push(id);
          }
        }
        if (stop.length) await this.request("status.unwatch", { clientIds: stop });
      };
    },
  };

  /**
   * Activity records: `record` this user's, `list` this user's or another's.
   *
   * @example
   * ```ts
   * await client.activity.record("message", { channel: "room" });
   * const recent = await client.activity.list({ limit: 5 });
   * ```
   */
  readonly activity: ActivityApi = {
    record: (kind, opts = {}) => this.request("activity", { kind, ...opts }).then(() => undefined),
    list: (opts = {}) => this.request("activity.get", { ...opts }).then((r) => r.activities as Activity[]),
  };

  /**
   * Starts connecting at once (no `await` needed: requests wait for the connection).
   *
   * @throws PresenceError `bad_request` without a token, an authCallback or an apiKey, or with a
   *   `heartbeatMs` that is not a non-negative integer.
   * @example
   * ```ts
   * const client = new PresenceClient({ url: "ws://127.0.0.1:7070", token, heartbeatMs: 5000 });
   * ```
   */
  constructor(options: ClientOptions) {
    if (!options.token && !options.authCallback && !options.apiKey) {
      throw new PresenceError("bad_request", "a token, an authCallback or an apiKey is required");
    }
    const hb = options.heartbeatMs;
    if (hb !== undefined && !(Number.isInteger(hb) && hb >= 0)) {
      throw new PresenceError("bad_request", "heartbeatMs must be a non-negative integer");
    }
    this.opts = {
      reconnectBaseMs: 250,
      reconnectMaxMs: 10000,
      requestTimeoutMs: 10000,
      batch: true,
      ...options,
    };
    void this.open().catch((e) => this.onOpenFailed(e));
  }

  private onOpenFailed(e: unknown): void {
    this.emit("error", new PresenceError("internal", "cannot open a connection: " + String(e)));
    this.scheduleReconnect();
  }

  // ----- Events --------------------------------------------------------------------------------

  /**
   * Calls `fn` on each `event` (see {@link ClientEvents}); returns a function that stops.
   *
   * @example
   * ```ts
   * const stop = client.on("offline", (clientId) => console.log(clientId, "went offline"));
   * stop();
   * ```
   */
  on<K extends keyof ClientEvents>(event: K, fn: (...args: ClientEvents[K]) => void): () => void {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, (set = new Set()));
    set.add(fn as unknown as Listener<never[]>);
    return () => this.off(event, fn);
  }

  /**
   * Removes a listener added with `on`.
   *
   * @example
   * ```ts
   * const log = (s: ConnectionState) => console.log(s);
   * client.on("state", log);
   * client.off("state", log);
   * ```
   */
  off<K extends keyof ClientEvents>(event: K, fn: (...args: ClientEvents[K]) => void): void {
    this.listeners.get(event)?.delete(fn as unknown as Listener<never[]>);
  }

  private emit<K extends keyof ClientEvents>(event: K, ...args: ClientEvents[K]): void {
    for (const fn of this.listeners.get(event) ?? []) {
      try {
        (fn as unknown as Listener<ClientEvents[K]>)(...args);
      } catch {
        // A throwing listener must not break the client.
      }
    }
  }

  // ----- Connection ----------------------------------------------------------------------------

  /**
   * Resolves with the connection's info when connected (at once if connected now); rejects after
   * `timeoutMs`, or when the client is closed.
   *
   * @example
   * ```ts
   * const { connectionId, heartbeatMs } = await client.waitForConnected(5000);
   * ```
   */
  waitForConnected(timeoutMs = 10000): Promise<ConnectedInfo> {
    if (this.state === "connected" && this.info) return Promise.resolve(this.info);
    if (this.state === "closed") return Promise.reject(new PresenceError("closed", "client is closed"));
    return new Promise((resolve, reject) => {
      const waiter = { resolve, reject };
      this.connectedWaiters.push(waiter);
      const timer = setTimeout(() => {
        this.connectedWaiters = this.connectedWaiters.filter((w) => w !== waiter);
        reject(new PresenceError("timeout", "not connected within " + timeoutMs + " ms"));
      }, timeoutMs);
      waiter.resolve = (i) => {
        clearTimeout(timer);
        resolve(i);
      };
    });
  }

  /**
   * Closes cleanly: this connection's members leave at once (reason `disconnected`). No reconnect.
   *
   * @example
   * ```ts
   * process.on("SIGTERM", () => void client.close().then(() => process.exit(0)));
   * ```
   */
  async close(): Promise<void> {
    this.closing = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    const socket = this.socket;
    this.setState("closed");
    this.failPending("closed", "client closed");
    for (const w of this.connectedWaiters) w.reject(new PresenceError("closed", "client closed"));
    this.connectedWaiters = [];
    if (socket && socket.readyState <= 1) {
      await new Promise<void>((resolve) => {
        socket.onclose = () => resolve();
        socket.close(1000, "bye");
        setTimeout(resolve, 2000);
      });
    }
  }

  /**
   * For tests and chaos drills: cuts the socket without a close frame (an abrupt drop); the
   * client reconnects and resumes.
   *
   * @example
   * ```ts
   * client.dropConnection();
   * const { resumed } = await client.waitForConnected(); // true within remainPresentForMs
   * ```
   */
  dropConnection(): void {
    const s = this.socket;
    if (!s) return;
    if (s.terminate) {
      s.terminate();
    } else {
      s.close(4999, "drop");
    }
  }

  private setState(s: ConnectionState): void {
    if (this.state === s) return;
    this.state = s;
    this.emit("state", s);
  }

  private async socketFactory(): Promise<SocketFactory> {
    if (this.opts.WebSocket) return this.opts.WebSocket;
    const g = (globalThis as { WebSocket?: SocketFactory }).WebSocket;
    if (g) return g;
    const mod = (await import("ws")) as unknown as { default: SocketFactory };
    return mod.default;
  }

  private async open(): Promise<void> {
    if (this.closing) return;
    this.setState(this.info ? "disconnected" : "connecting");
    let token = "";
    try {
      if (!this.opts.apiKey) token = this.opts.token ?? (await this.opts.authCallback!());
    } catch (e) {
      this.emit("error", new PresenceError("unauthorized", "authCallback failed: " + String(e)));
      return this.scheduleReconnect();
    }
    const base = this.opts.url.replace(/\/+$/, "");
    const url = new URL(base.endsWith("/v1/ws") ? base : base + "/v1/ws");
    if (this.opts.tokenInUrl && !this.opts.apiKey) url.searchParams.set("token", token);
    if (this.opts.device) url.searchParams.set("device", this.opts.device);
    if (this.opts.remainPresentForMs !== undefined) {
      url.searchParams.set("remainPresentForMs", String(this.opts.remainPresentForMs));
    }
    if (this.opts.heartbeatMs !== undefined) url.searchParams.set("heartbeatMs", String(this.opts.heartbeatMs));
    if (this.connectionKey) url.searchParams.set("resume", this.connectionKey);
    if (this.opts.batch) url.searchParams.set("batch", "1");
    const Ctor = await this.socketFactory();
    if (this.closing) return;
    const socket = new Ctor(url.toString());
    this.socket = socket;
    if (this.opts.apiKey) {
      socket.onopen = () => socket.send(JSON.stringify({ op: "auth", apiKey: this.opts.apiKey }));
    } else if (!this.opts.tokenInUrl) {
      // The token as the first frame; the server answers with `connected` (or closes, 4003).
      socket.onopen = () => socket.send(JSON.stringify({ op: "auth", token }));
    }
    socket.onmessage = (ev) => this.onMessage(typeof ev.data === "string" ? ev.data : String(ev.data));
    socket.onerror = () => {
      // onclose follows; reconnect happens there.
    };
    socket.onclose = (ev) => {
      if (this.socket !== socket) return;
      this.socket = null;
      this.failPending("disconnected", "connection lost before the reply (" + ev.code + ")");
      if (ev.code === 4003 || ev.code === 4004) {
        this.emit(
          "error",
          new PresenceError("unauthorized", (ev.code === 4004 ? "token revoked" : "authentication failed") + " (" + ev.code + ")"),
        );
      }
      if (this.closing) return;
      this.setState("disconnected");
      this.scheduleReconnect();
    };
  }

  private scheduleReconnect(): void {
    if (this.closing) return;
    const delay = Math.min(this.opts.reconnectMaxMs, this.opts.reconnectBaseMs * 2 ** this.attempts);
    this.attempts++;
    this.reconnectTimer = setTimeout(() => void this.open().catch((e) => this.onOpenFailed(e)), jitter(delay));
  }

  private failPending(code: string, message: string): void {
    for (const [, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new PresenceError(code, message));
    }
    this.pending.clear();
  }

  private onMessage(text: string): void {
    let frame: Record<string, unknown>;
    try {
      frame = JSON.parse(text);
    } catch {
      return;
    }
    if (frame.type === "batch" && Array.isArray(frame.messages)) {
      for (const m of frame.messages as Record<string, unknown>[]) this.onFrame(m);
      return;
    }
    this.onFrame(frame);
  }

  // One server message (a frame's, or one of a batch's, in order). A `sync` may come at any time:
  // after a resume that missed too much, or when this client read too slowly (the server then
  // replaces the events it could not take by the channel's state).
  private onFrame(frame: Record<string, unknown>): void {
    switch (frame.type) {
      case "connected":
        return void this.onConnected(frame as unknown as ConnectedInfo & { connectionKey: string });
      case "reply": {
        const p = this.pending.get(frame.id as number);
        if (!p) return;
        this.pending.delete(frame.id as number);
        clearTimeout(p.timer);
        if (frame.ok) {
          p.resolve(frame);
        } else {
          const e = frame.error as { code: string; message: string };
          p.reject(new PresenceError(e.code, e.message));
        }
        return;
      }
      case "presence": {
        const e = frame as unknown as PresenceEvent;
        this.channels.get(e.channel)?.presence.onEvent(e);
        return;
      }
      case "sync": {
        const ch = this.channels.get(frame.channel as string);
        ch?.presence.onSnapshot(frame.members as Member[], frame.serial as number, true);
        return;
      }
      case "status":
        return this.onStatus(frame as unknown as StatusPush);
      case "session": {
        const e = frame as unknown as SessionEvent & { type?: string };
        delete e.type;
        if (e.action === "stopped") this.ensured.delete(e.session.conversationId);
        return this.emit("session", e);
      }
      case "session.assign":
        return this.onAssign(frame.session as AgentSession, frame.request);
      case "session.stop": {
        const id = frame.conversationId as string;
        const done = this.assignments.get(id);
        this.assignments.delete(id);
        done?.(frame.reason as SessionStopReason);
        return;
      }
    }
  }

  private async onConnected(frame: ConnectedInfo & { connectionKey: string }): Promise<void> {
    const previous = this.info;
    this.connectionKey = frame.connectionKey;
    this.info = {
      connectionId: frame.connectionId,
      clientId: frame.clientId,
      epoch: frame.epoch,
      resumed: frame.resumed,
      heartbeatMs: frame.heartbeatMs,
      remainPresentForMs: frame.remainPresentForMs,
    };
    this.attempts = 0;
    this.setState("connected");
    this.emit("connected", this.info);
    const waiters = this.connectedWaiters;
    this.connectedWaiters = [];
    for (const w of waiters) w.resolve(this.info);
    if (frame.resumed || !previous) return;
    // A new connection after a longer outage (or a server restart): put back what we had.
    try {
      for (const ch of this.channels.values()) await ch.presence.restore(previous.epoch);
      if (this.watched.size) await this.request("status.watch", { clientIds: [...this.watched.keys()] });
      // A new connection is a new worker: the old one's sessions were handed over (or stopped).
      for (const done of this.assignments.values()) done("worker_lost");
      this.assignments.clear();
      if (this.serving) await this.request("session.serve", this.serving.capacity === undefined ? {} : { capacity: this.serving.capacity });
      for (const id of [...this.ensured]) {
        const r = await this.request("session.get", { conversationId: id });
        if (r.session) await this.request("session.ensure", { conversationId: id });
        else this.ensured.delete(id);
      }
    } catch (e) {
      if (e instanceof PresenceError) this.emit("error", e);
    }
  }

  private onAssign(session: AgentSession, request: unknown): void {
    const id = session.conversationId;
    if (!this.serving) return;
    if (this.assignments.has(id)) return; // sent again after a resume: already being handled
    let resolveStopped!: (r: SessionStopReason) => void;
    const stopped = new Promise<SessionStopReason>((r) => (resolveStopped = r));
    this.assignments.set(id, resolveStopped);
    const a: SessionAssignment = {
      session,
      request: request ?? null,
      ready: () => this.request("session.ready", { conversationId: id }).then(() => undefined),
      fail: (error?: string) => {
        this.assignments.delete(id);
        resolveStopped("failed");
        return this.request("session.fail", error === undefined ? { conversationId: id } : { conversationId: id, error }).then(() => undefined);
      },
      touch: () => this.request("session.touch", { conversationId: id }).then(() => undefined),
      stopped,
    };
    try {
      void Promise.resolve(this.serving.onAssign(a)).catch((e) => this.emit("error", new PresenceError("internal", "onAssign failed: " + String(e))));
    } catch (e) {
      this.emit("error", new PresenceError("internal", "onAssign failed: " + String(e)));
    }
  }

  private onStatus(push: StatusPush): void {
    this.emit("status", push);
    if (push.previous !== push.status) this.emit("statusChange", push.clientId, push.previous, push.status);
    if (push.previous === "offline" && push.status !== "offline") this.emit("online", push.clientId);
    if (push.previous !== "offline" && push.status === "offline") this.emit("offline", push.clientId);
    for (const fn of this.watched.get(push.clientId) ?? []) {
      try {
        fn(push);
      } catch {
        // ignore listener errors
      }
    }
  }

  /**
   * Replaces this connection's token before it expires (`auth`): the new token's channel
   * patterns apply from now on, and later reconnects use it. Resolves with its expiry (ms).
   * Without an argument it asks `authCallback` (or sends the `token` option again).
   *
   * @example
   * ```ts
   * const expiresAt = await client.refreshToken(await fetchToken());
   * setTimeout(() => void client.refreshToken(), expiresAt - Date.now() - 60_000);
   * ```
   */
  async refreshToken(token?: string): Promise<number> {
    const fresh = token ?? (this.opts.authCallback ? await this.opts.authCallback() : this.opts.token!);
    const r = await this.request("auth", { token: fresh });
    if (token !== undefined && !this.opts.authCallback) this.opts.token = token;
    return r.expiresAt as number;
  }

  /**
   * Sends one protocol request (docs/protocol.md) and resolves with its reply (the raw object);
   * rejects with a {@link PresenceError} carrying the protocol's code. Waits for the connection.
   *
   * @example
   * ```ts
   * const reply = await client.request("ping");
   * console.log(reply.ok); // true
   * ```
   */
  async request(op: string, fields: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
    if (this.state !== "connected") await this.waitForConnected(this.opts.requestTimeoutMs);
    const socket = this.socket;
    if (!socket) throw new PresenceError("disconnected", "not connected");
    const id = ++this.nextId;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new PresenceError("timeout", op + " got no reply in " + this.opts.requestTimeoutMs + " ms"));
      }, this.opts.requestTimeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      try {
        socket.send(JSON.stringify({ ...fields, op, id }));
      } catch (e) {
        this.pending.delete(id);
        clearTimeout(timer);
        reject(new PresenceError("disconnected", "cannot send: " + String(e)));
      }
    });
  }

  // ----- Channels, users -----------------------------------------------------------------------

  /**
   * The channel named `name` (one object per name and client).
   *
   * @example
   * ```ts
   * const room = client.channel("room").presence;
   * await room.enter({ name: "Alice" });
   * ```
   */
  channel(name: string): Channel {
    let ch = this.channels.get(name);
    if (!ch) this.channels.set(name, (ch = new Channel(this, name)));
    return ch;
  }

  /**
   * Heartbeat-style presence with TTLs in channel `name` (entries expire unless refreshed).
   * `validate` parses each member's data (a zod or Effect Schema decoder fits); entries whose
   * data it rejects (throws) are left out.
   *
   * @example
   * ```ts
   * const cursors = client.presence<{ x: number; y: number }>("cursors", { validate: (d) => Cursor.parse(d) });
   * await cursors.heartbeat({ x: 1, y: 2 }, 5000);
   * ```
   */
  presence<T = unknown>(name: string, opts: { validate?: (data: unknown) => T } = {}): TtlPresence<T> {
    return new TtlPresence<T>(this.channel(name), opts.validate);
  }

  /**
   * The live connections (devices) of this user, or of `clientId`, each with its status and
   * whether it was set by hand. Another user's list leaves out the devices set `offline`.
   *
   * @example
   * ```ts
   * for (const d of await client.devices()) console.log(d.device, d.status, d.manual);
   * ```
   */
  devices(clientId?: string): Promise<Device[]> {
    return this.request("devices", clientId ? { clientId } : {}).then((r) => r.devices as Device[]);
  }

  /**
   * Sets one device's status (`device.status.set`): this connection's, or another live connection
   * of the same user (`connectionId`; else `not_found`). `away`, `dnd` and `offline` are set by
   * hand (`offline`: this device appears offline); `online` returns the device to automatic
   * (online, then away and offline as it idles). The user's status follows from all devices (any
   * online device makes the user online, else dnd, else away), unless the user set one by hand
   * with `status.set`. Every connection of the user gets a status push with `device`.
   *
   * @example
   * ```ts
   * const phone = new PresenceClient({ url, token, device: "phone" });
   * const { device, status } = await phone.setDeviceStatus("dnd");
   * // device.status === "dnd", device.manual === true; status.status is "online" while the laptop is
   * await phone.setDeviceStatus("online"); // back to automatic
   * ```
   */
  setDeviceStatus(status: StatusValue, connectionId?: string): Promise<DeviceStatusResult> {
    const fields: Record<string, unknown> = { status };
    if (connectionId !== undefined) fields.connectionId = connectionId;
    return this.request("device.status.set", fields).then((r) => ({ device: r.device as Device, status: r.status as UserStatus }));
  }

  /**
   * The users who are not offline (in `channel`, or anywhere), with their statuses.
   *
   * @example
   * ```ts
   * const here = await client.who("room");
   * console.log(here.map((u) => `${u.clientId} ${u.status}`));
   * ```
   */
  who(channel?: string): Promise<UserStatus[]> {
    return this.request("who", channel ? { channel } : {}).then((r) => r.users as UserStatus[]);
  }
}

/**
 * A channel of one client (`client.channel(name)`): its presence lives in `presence`.
 *
 * @example
 * ```ts
 * const room: Channel = client.channel("room");
 * await room.presence.enter({ name: "Alice" });
 * ```
 */
export class Channel {
  /**
   * This channel's presence: enter, update, leave, get, subscribe, history.
   *
   * @example
   * ```ts
   * const members = await client.channel("room").presence.get();
   * ```
   */
  readonly presence: ChannelPresence;
  /** @internal Use `client.channel(name)`. */
  constructor(
    /**
     * The client this channel belongs to.
     *
     * @example
     * ```ts
     * client.channel("room").client === client; // true
     * ```
     */
    readonly client: PresenceClient,
    /**
     * The channel's name.
     *
     * @example
     * ```ts
     * client.channel("room").name; // "room"
     * ```
     */
    readonly name: string,
  ) {
    this.presence = new ChannelPresence(this);
  }
}

/**
 * A listener of channel events (`ChannelPresence.subscribe`).
 *
 * @example
 * ```ts
 * const log: PresenceEventListener = (e) => console.log(e.serial, e.action, e.member.clientId);
 * await client.channel("room").presence.subscribe(log);
 * ```
 */
export type PresenceEventListener = (e: PresenceEvent) => void;

/**
 * A channel's occupancy (`ChannelPresence.occupancy`).
 *
 * @example
 * ```ts
 * const { members, clients }: Occupancy = await room.occupancy();
 * ```
 */
export interface Occupancy {
  /** Members: one per connection that entered. */
  members: number;
  /** Distinct clientIds among them. */
  clients: number;
}

/**
 * Presence in one channel (`client.channel(name).presence`): this connection's membership
 * (`enter`, `update`, `leave`), reads (`get`, `occupancy`, `history`), and a local set kept in
 * serial order while subscribed (`subscribe`, `members`).
 *
 * @example
 * ```ts
 * const room = client.channel("room").presence;
 * const stop = await room.subscribe((e) => console.log(e.serial, e.action, e.member.clientId));
 * await room.enter({ name: "Alice" });
 * await room.update({ typing: true }, { merge: true }); // data is now { name: "Alice", typing: true }
 * await room.leave();
 * await stop();
 * ```
 */
export class ChannelPresence {
  private readonly set = new Map<string, Member>(); // by connectionId
  private serial: number | null = null;
  private epoch: string | null = null;
  private buffered: PresenceEvent[] = [];
  private readonly listeners = new Set<{ actions: Set<Action>; fn: PresenceEventListener }>();
  private subscribed: Promise<void> | null = null;
  private entered: { data: unknown; ttlMs?: number } | null = null;

  /** @internal Use `client.channel(name).presence`. */
  constructor(private readonly channel: Channel) {}

  private get client(): PresenceClient {
    return this.channel.client;
  }

  /**
   * Enters the channel as this connection with `data` (entering again replaces the data). With
   * `ttlMs` the member expires unless refreshed (see {@link TtlPresence}).
   *
   * @example
   * ```ts
   * const me = await room.enter({ name: "Alice" });
   * console.log(me.connectionId);
   * ```
   */
  async enter(data?: unknown, opts: { ttlMs?: number } = {}): Promise<Member> {
    const r = await this.client.request("enter", { channel: this.channel.name, data, ...opts });
    this.entered = { data: data ?? null, ttlMs: opts.ttlMs };
    return r.member as Member;
  }

  /**
   * Changes this connection's data: replaced, or with `merge` shallow-merged into the old object.
   * Others see one `update` event (not a leave and an enter). `not_present` when not entered.
   *
   * @example
   * ```ts
   * await room.update({ typing: true }, { merge: true });
   * ```
   */
  async update(data: unknown, opts: { merge?: boolean; ttlMs?: number } = {}): Promise<Member> {
    const r = await this.client.request("update", { channel: this.channel.name, data, ...opts });
    const m = r.member as Member;
    if (this.entered) this.entered = { data: m.data, ttlMs: opts.ttlMs ?? this.entered.ttlMs };
    return m;
  }

  /**
   * Leaves the channel (others see a leave with reason `left`; `data`, when given, is the
   * member's data in that event).
   *
   * @example
   * ```ts
   * await room.leave({ bye: true });
   * ```
   */
  async leave(data?: unknown): Promise<void> {
    this.entered = null;
    await this.client.request("leave", data === undefined ? { channel: this.channel.name } : { channel: this.channel.name, data });
  }

  /**
   * The channel's members now, from the server (optionally one client's or one connection's).
   *
   * @example
   * ```ts
   * const alices = await room.get({ clientId: "alice" });
   * ```
   */
  async get(filter: { clientId?: string; connectionId?: string } = {}): Promise<Member[]> {
    const r = await this.client.request("get", { channel: this.channel.name, ...filter });
    return r.members as Member[];
  }

  /**
   * A page of the channel's past events (see {@link HistoryOptions}).
   *
   * @example
   * ```ts
   * const { events, next } = await room.history({ direction: "forwards", limit: 100 });
   * ```
   */
  async history(opts: HistoryOptions = {}): Promise<HistoryPage> {
    const r = await this.client.request("history", { channel: this.channel.name, ...opts });
    return { events: r.events as PresenceEvent[], ...(r.next !== undefined ? { next: r.next as number } : {}) };
  }

  /**
   * How many members (connections) and distinct clients are in the channel.
   *
   * @example
   * ```ts
   * const { members, clients } = await room.occupancy();
   * ```
   */
  async occupancy(): Promise<Occupancy> {
    const r = await this.client.request("occupancy", { channel: this.channel.name });
    return { members: r.members as number, clients: r.clients as number };
  }

  /**
   * The local presence set (empty until the first subscription has its snapshot).
   *
   * @example
   * ```ts
   * await room.subscribe(() => render(room.members()));
   * ```
   */
  members(): Member[] {
    return [...this.set.values()];
  }

  /**
   * Calls `listener` for each event (optionally only `actions`), in serial order, once each.
   * Resolves when the snapshot is in; returns a function that unsubscribes.
   *
   * @example
   * ```ts
   * const stop = await room.subscribe(["enter", "leave"], (e) => console.log(e.action, e.member.clientId));
   * await stop();
   * ```
   */
  async subscribe(actionsOrListener: Action[] | PresenceEventListener, maybeListener?: PresenceEventListener): Promise<() => Promise<void>> {
    const actions = Array.isArray(actionsOrListener) ? actionsOrListener : ["enter", "update", "leave"];
    const fn = (Array.isArray(actionsOrListener) ? maybeListener : actionsOrListener) as PresenceEventListener;
    const entry = { actions: new Set<Action>(actions as Action[]), fn };
    this.listeners.add(entry);
    if (!this.subscribed) {
      this.subscribed = this.serverSubscribe().catch((e) => {
        this.subscribed = null;
        throw e;
      });
    }
    try {
      await this.subscribed;
    } catch (e) {
      this.listeners.delete(entry);
      throw e;
    }
    return async () => {
      this.listeners.delete(entry);
      if (this.listeners.size === 0 && this.subscribed) {
        this.subscribed = null;
        this.serial = null;
        this.set.clear();
        await this.client.request("unsubscribe", { channel: this.channel.name });
      }
    };
  }

  // Subscribes for all actions (filters apply locally, so serials stay gapless here).
  private async serverSubscribe(since?: number, epoch?: string): Promise<void> {
    const fields: Record<string, unknown> = { channel: this.channel.name };
    if (since !== undefined && epoch) Object.assign(fields, { since, epoch });
    const r = await this.client.request("subscribe", fields);
    this.epoch = r.epoch as string;
    if (r.events) {
      for (const e of r.events as PresenceEvent[]) this.apply(e);
      this.serial = Math.max(this.serial ?? 0, r.serial as number);
      this.drain();
    } else {
      this.onSnapshot(r.members as Member[], r.serial as number, since !== undefined);
    }
  }

  /** @internal After a new (not resumed) connection: enter again, and catch up from the last serial. */
  async restore(previousEpoch: string): Promise<void> {
    if (this.entered) {
      await this.client.request("enter", {
        channel: this.channel.name,
        data: this.entered.data,
        ...(this.entered.ttlMs ? { ttlMs: this.entered.ttlMs } : {}),
      });
    }
    if (this.subscribed) {
      const since = this.serial ?? undefined;
      this.serial = null; // buffer live events until the catch-up is applied
      await this.serverSubscribe(since, this.epoch ?? previousEpoch);
    }
  }

  /** @internal A full snapshot: replaces the set; with `diff`, listeners hear the changes it implies. */
  onSnapshot(members: Member[], serial: number, diff: boolean): void {
    const next = new Map(members.map((m) => [m.connectionId, m]));
    if (diff) {
      for (const [id, old] of this.set) {
        if (!next.has(id)) this.notify({ type: "presence", channel: this.channel.name, action: "leave", member: old, serial, reason: "left" });
      }
      for (const [id, m] of next) {
        const old = this.set.get(id);
        if (!old) {
          this.notify({ type: "presence", channel: this.channel.name, action: "enter", member: m, serial });
        } else if (JSON.stringify(old.data) !== JSON.stringify(m.data)) {
          this.notify({ type: "presence", channel: this.channel.name, action: "update", member: m, serial });
        }
      }
    }
    this.set.clear();
    for (const [id, m] of next) this.set.set(id, m);
    this.serial = serial;
    this.drain();
  }

  /** @internal One event from the server. */
  onEvent(e: PresenceEvent): void {
    if (!this.subscribed && this.listeners.size === 0) return;
    if (this.serial === null) {
      this.buffered.push(e); // before the snapshot
      return;
    }
    this.apply(e);
  }

  private drain(): void {
    const events = this.buffered.sort((a, b) => a.serial - b.serial);
    this.buffered = [];
    for (const e of events) this.apply(e);
  }

  private apply(e: PresenceEvent): void {
    if (this.serial !== null && e.serial <= this.serial) return; // already in the snapshot or seen
    this.serial = e.serial;
    if (e.action === "leave") {
      this.set.delete(e.member.connectionId);
    } else {
      this.set.set(e.member.connectionId, e.member);
    }
    this.notify(e);
  }

  private notify(e: PresenceEvent): void {
    for (const l of this.listeners) {
      if (!l.actions.has(e.action)) continue;
      try {
        l.fn(e);
      } catch {
        // A throwing listener must not break the others.
      }
    }
  }
}

/**
 * One live entry of {@link TtlPresence.value}.
 *
 * @example
 * ```ts
 * for (const [clientId, entry] of cursors.value()) console.log(clientId, entry.data, entry.expiresAtMs - Date.now());
 * ```
 */
export interface TtlEntry<T> {
  /** The entry's data (after `validate`). */
  data: T;
  /** When it expires unless refreshed (ms since the epoch). */
  expiresAtMs: number;
}

/**
 * Heartbeat-style presence (`client.presence(name, {validate})`): entries live until their TTL
 * unless refreshed; `value()` holds the live ones by clientId. The server ends an entry whose TTL
 * ran out (a leave with reason `expired`), and a dropped connection's entries stay through a
 * resume.
 *
 * @example
 * ```ts
 * const room = client.presence("room-123");
 * await room.heartbeat({ status: "online" }, 30_000);
 * room.onChange((entries) => console.log([...entries.keys()]));
 * setInterval(() => void room.heartbeat({ status: "online" }, 30_000), 10_000);
 * ```
 */
export class TtlPresence<T = unknown> {
  private readonly changeListeners = new Set<(value: Map<string, TtlEntry<T>>) => void>();
  private unsubscribe: Promise<() => Promise<void>> | null = null;
  private expiryTimer: ReturnType<typeof setTimeout> | null = null;

  /** @internal Use `client.presence(name, {validate})`. */
  constructor(
    private readonly channel: Channel,
    private readonly validate?: (data: unknown) => T,
  ) {}

  /**
   * Enters or refreshes this connection's entry with `data` for `ttlMs`.
   *
   * @example
   * ```ts
   * await cursors.heartbeat({ x: 120, y: 340 }, 5000);
   * ```
   */
  heartbeat(data: T, ttlMs: number): Promise<Member> {
    return this.channel.presence.enter(data, { ttlMs });
  }

  /**
   * Removes this connection's entry at once.
   *
   * @example
   * ```ts
   * await cursors.leave();
   * ```
   */
  leave(): Promise<void> {
    return this.channel.presence.leave();
  }

  /**
   * Live entries by clientId (expired ones are left out even before the server's leave; entries
   * whose data `validate` rejects too). Filled while `onChange` has a listener.
   *
   * @example
   * ```ts
   * const live = cursors.value();
   * console.log(live.size, "cursors");
   * ```
   */
  value(now = Date.now()): Map<string, TtlEntry<T>> {
    const out = new Map<string, TtlEntry<T>>();
    for (const m of this.channel.presence.members()) {
      const expires = m.expiresAt ?? Number.POSITIVE_INFINITY;
      if (expires <= now) continue;
      let data: T;
      try {
        data = this.validate ? this.validate(m.data) : (m.data as T);
      } catch {
        continue; // invalid data is not shown
      }
      const prev = out.get(m.clientId);
      if (!prev || prev.expiresAtMs < expires) out.set(m.clientId, { data, expiresAtMs: expires });
    }
    return out;
  }

  /**
   * Calls `fn` with `value()` on every change (and when an entry expires locally); returns a
   * function that stops.
   *
   * @example
   * ```ts
   * const stop = cursors.onChange((entries) => {
   *   for (const [clientId, e] of entries) renderCursor(clientId, e.data.x, e.data.y);
   * });
   * ```
   */
  onChange(fn: (value: Map<string, TtlEntry<T>>) => void): () => void {
    this.changeListeners.add(fn);
    if (!this.unsubscribe) {
      this.unsubscribe = this.channel.presence.subscribe(() => this.changed());
      this.unsubscribe.then(() => this.changed()).catch(() => undefined);
    }
    return () => {
      this.changeListeners.delete(fn);
      if (this.changeListeners.size === 0 && this.unsubscribe) {
        const u = this.unsubscribe;
        this.unsubscribe = null;
        if (this.expiryTimer) clearTimeout(this.expiryTimer);
        void u.then((stop) => stop()).catch(() => undefined);
      }
    };
  }

  private changed(): void {
    const v = this.value();
    for (const fn of this.changeListeners) fn(v);
    // Tell listeners when the next entry expires locally, before the server's leave arrives.
    if (this.expiryTimer) clearTimeout(this.expiryTimer);
    let next = Number.POSITIVE_INFINITY;
    for (const e of v.values()) next = Math.min(next, e.expiresAtMs);
    if (Number.isFinite(next)) {
      this.expiryTimer = setTimeout(() => this.changed(), Math.max(0, next - Date.now()) + 1);
    }
  }
}
