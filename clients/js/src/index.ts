// @presenced/client: the JavaScript/TypeScript client for presenced (docs/protocol.md).
//
// One PresenceClient is one connection (one device). It reconnects by itself with jittered
// backoff, resumes within the server's grace period (no leave/enter noise), and after a longer
// outage re-enters every channel it had entered and re-subscribes from the last serial it saw, so
// listeners see every change exactly once and in order.

export type Action = "enter" | "update" | "leave";
export type LeaveReason = "left" | "disconnected" | "timeout" | "expired";
export type StatusValue = "online" | "away" | "dnd" | "offline";
export type ConnectionState = "connecting" | "connected" | "disconnected" | "closed";

export interface Member<T = unknown> {
  clientId: string;
  connectionId: string;
  data: T;
  timestamp: number;
  expiresAt: number | null;
}

export interface PresenceEvent<T = unknown> {
  type: "presence";
  channel: string;
  action: Action;
  member: Member<T>;
  serial: number;
  reason?: LeaveReason;
}

export interface UserStatus {
  clientId: string;
  status: StatusValue;
  text: string | null;
  lastSeen: number | null;
  activeDevice: string | null;
}

export interface StatusPush extends UserStatus {
  type: "status";
  previous: StatusValue;
}

export interface Device {
  connectionId: string;
  device: string;
  status: StatusValue;
  lastSeen: number;
  active: boolean;
}

export interface Activity {
  kind: string;
  channel: string | null;
  data: unknown;
  timestamp: number;
  connectionId: string;
}

export interface HistoryOptions {
  start?: number;
  end?: number;
  limit?: number;
  direction?: "backwards" | "forwards";
  cursor?: number;
}

export interface HistoryPage {
  events: PresenceEvent[];
  next?: number;
}

/** A request the server refused, or one that could not complete. `code` is the protocol's. */
// ----- Agent sessions (protocol-ext §3) ---------------------------------------------------------

export type SessionState = "starting" | "running";
export type SessionStopReason = "stopped" | "idle" | "abandoned" | "failed" | "worker_lost";

/** One agent session per conversation, cluster-wide (SESSION on the wire). */
export interface AgentSession {
  conversationId: string;
  agentId: string;
  state: SessionState;
  workerConnectionId: string | null;
  startedAt: number;
  lastActivityAt: number;
  inactivityTimeoutMs: number;
  abandonAfterMs: number;
}

export interface SessionEvent {
  action: "started" | "running" | "reassigned" | "stopped";
  session: AgentSession;
  reason?: SessionStopReason;
  /** What the worker's `fail` said, on `stopped` with reason `failed`. */
  error?: string;
}

export interface SessionStartOptions {
  /** Any JSON, handed verbatim to the worker that runs the agent. */
  request?: unknown;
  inactivityTimeoutMs?: number;
  abandonAfterMs?: number;
}

/** A session assigned to this worker (`client.sessions.serve`). */
export interface SessionAssignment {
  session: AgentSession;
  request: unknown;
  /** The agent is running: the server enters it in `conversation:{id}`. */
  ready(): Promise<void>;
  /** The agent could not start: the session stops with reason `failed`. */
  fail(error?: string): Promise<void>;
  /** Activity that keeps the session from idling. */
  touch(): Promise<void>;
  /** Resolves when the server stops this session (or hands it away). */
  readonly stopped: Promise<SessionStopReason>;
}

export class PresenceError extends Error {
  constructor(
    public readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "PresenceError";
  }
}

/** The subset of the WebSocket API the client uses (browser WebSocket and `ws` both fit). */
interface SocketLike {
  readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  terminate?: () => void;
}
type SocketFactory = new (url: string) => SocketLike;

export interface ClientOptions {
  /** Server address, e.g. "ws://127.0.0.1:7070" (the path /v1/ws is added when absent). */
  url: string;
  /** A token, or a callback that returns a fresh one before every (re)connect. */
  token?: string;
  authCallback?: () => Promise<string> | string;
  device?: string;
  remainPresentForMs?: number;
  /** WebSocket constructor; defaults to the global one, else the `ws` package (Node). */
  WebSocket?: SocketFactory;
  /** Reconnect backoff: first delay and cap, in ms (jittered by ±50 %). */
  reconnectBaseMs?: number;
  reconnectMaxMs?: number;
  /** How long a request waits for its reply. */
  requestTimeoutMs?: number;
  /**
   * Let the server pack several messages into one frame (`batch=1`, protocol-ext §1): fewer
   * frames in large rooms. Default true; the client unpacks them transparently.
   */
  batch?: boolean;
  /**
   * Put the token in the URL (`?token=`) instead of sending it as the first frame
   * (`{"op":"auth","token":...}`). Default false: URLs end up in proxy logs and browser history.
   */
  tokenInUrl?: boolean;
  /**
   * Connect as an observer with the server's API key instead of a token (operators' tools: a
   * dashboard, a monitor). An observer subscribes and reads any channel and watches any user, but
   * is nobody: it is not online, not in `who`, and may not enter or set a status. Never give the
   * API key to a browser you do not control.
   */
  apiKey?: string;
}

export interface ConnectedInfo {
  connectionId: string;
  clientId: string;
  epoch: string;
  resumed: boolean;
  heartbeatMs: number;
  remainPresentForMs: number;
}

type Listener<A extends unknown[]> = (...args: A) => void;

interface ClientEvents {
  state: [ConnectionState];
  connected: [ConnectedInfo];
  statusChange: [string, StatusValue, StatusValue];
  online: [string];
  offline: [string];
  status: [StatusPush];
  /** Agent session events of conversations this client `ensure`d. */
  session: [SessionEvent];
  error: [PresenceError];
}

interface Pending {
  resolve: (reply: Record<string, unknown>) => void;
  reject: (err: PresenceError) => void;
  timer: ReturnType<typeof setTimeout>;
}

function jitter(ms: number): number {
  return Math.round(ms * (0.5 + Math.random()));
}

export class PresenceClient {
  state: ConnectionState = "connecting";
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
   */
  readonly sessions = {
    start: (conversationId: string, opts: SessionStartOptions = {}): Promise<{ session: AgentSession; created: boolean }> =>
      this.request("session.start", { conversationId, ...opts }).then((r) => ({
        session: r.session as AgentSession,
        created: r.created as boolean,
      })),
    ensure: async (conversationId: string, opts: SessionStartOptions = {}): Promise<{ session: AgentSession; created: boolean }> => {
      const r = await this.request("session.ensure", { conversationId, ...opts });
      this.ensured.add(conversationId);
      return { session: r.session as AgentSession, created: r.created as boolean };
    },
    get: (conversationId: string): Promise<AgentSession | null> =>
      this.request("session.get", { conversationId }).then((r) => (r.session as AgentSession | null) ?? null),
    stop: (conversationId: string): Promise<boolean> =>
      this.request("session.stop", { conversationId }).then((r) => r.stopped as boolean),
    /** Serves sessions: `onAssign` is called with each session assigned to this worker. */
    serve: async (opts: { capacity?: number }, onAssign: (a: SessionAssignment) => void | Promise<void>): Promise<void> => {
      this.serving = { capacity: opts.capacity, onAssign };
      await this.request("session.serve", opts.capacity === undefined ? {} : { capacity: opts.capacity });
    },
  };

  readonly status = {
    set: (status?: StatusValue, text?: string | null): Promise<UserStatus> => {
      const fields: Record<string, unknown> = {};
      if (status !== undefined) fields.status = status;
      if (text !== undefined) fields.text = text;
      return this.request("status.set", fields).then((r) => r.status as UserStatus);
    },
    get: (clientIds: string[]): Promise<UserStatus[]> =>
      this.request("status.get", { clientIds }).then((r) => r.statuses as UserStatus[]),
    /** Calls `listener` with every status push of these users; returns a function that stops. */
    watch: async (clientIds: string[], listener: (s: StatusPush) => void): Promise<() => Promise<void>> => {
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

  readonly activity = {
    record: (kind: string, opts: { channel?: string; data?: unknown } = {}): Promise<void> =>
      this.request("activity", { kind, ...opts }).then(() => undefined),
    list: (opts: { clientId?: string; limit?: number; since?: number } = {}): Promise<Activity[]> =>
      this.request("activity.get", { ...opts }).then((r) => r.activities as Activity[]),
  };

  constructor(options: ClientOptions) {
    if (!options.token && !options.authCallback && !options.apiKey) {
      throw new PresenceError("bad_request", "a token, an authCallback or an apiKey is required");
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

  on<K extends keyof ClientEvents>(event: K, fn: Listener<ClientEvents[K]>): () => void {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, (set = new Set()));
    set.add(fn as unknown as Listener<never[]>);
    return () => this.off(event, fn);
  }

  off<K extends keyof ClientEvents>(event: K, fn: Listener<ClientEvents[K]>): void {
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

  /** Resolves when connected (at once if connected now). */
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

  /** Closes cleanly: members leave at once (reason disconnected). No reconnect. */
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

  /** For tests and chaos drills: cut the socket without a close frame (an abrupt drop). */
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
   */
  async refreshToken(token?: string): Promise<number> {
    const fresh = token ?? (this.opts.authCallback ? await this.opts.authCallback() : this.opts.token!);
    const r = await this.request("auth", { token: fresh });
    if (token !== undefined && !this.opts.authCallback) this.opts.token = token;
    return r.expiresAt as number;
  }

  /** Sends one protocol request and resolves with its reply (the raw object). */
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

  channel(name: string): Channel {
    let ch = this.channels.get(name);
    if (!ch) this.channels.set(name, (ch = new Channel(this, name)));
    return ch;
  }

  /** Heartbeat-style presence with TTLs (entries expire unless refreshed). */
  presence<T = unknown>(name: string, opts: { validate?: (data: unknown) => T } = {}): TtlPresence<T> {
    return new TtlPresence<T>(this.channel(name), opts.validate);
  }

  devices(clientId?: string): Promise<Device[]> {
    return this.request("devices", clientId ? { clientId } : {}).then((r) => r.devices as Device[]);
  }

  who(channel?: string): Promise<UserStatus[]> {
    return this.request("who", channel ? { channel } : {}).then((r) => r.users as UserStatus[]);
  }
}

export class Channel {
  readonly presence: ChannelPresence;
  constructor(
    readonly client: PresenceClient,
    readonly name: string,
  ) {
    this.presence = new ChannelPresence(this);
  }
}

type EventListener = (e: PresenceEvent) => void;

/** Presence in one channel, kept locally in serial order while subscribed. */
export class ChannelPresence {
  private readonly set = new Map<string, Member>(); // by connectionId
  private serial: number | null = null;
  private epoch: string | null = null;
  private buffered: PresenceEvent[] = [];
  private readonly listeners = new Set<{ actions: Set<Action>; fn: EventListener }>();
  private subscribed: Promise<void> | null = null;
  private entered: { data: unknown; ttlMs?: number } | null = null;

  constructor(private readonly channel: Channel) {}

  private get client(): PresenceClient {
    return this.channel.client;
  }

  async enter(data?: unknown, opts: { ttlMs?: number } = {}): Promise<Member> {
    const r = await this.client.request("enter", { channel: this.channel.name, data, ...opts });
    this.entered = { data: data ?? null, ttlMs: opts.ttlMs };
    return r.member as Member;
  }

  async update(data: unknown, opts: { merge?: boolean; ttlMs?: number } = {}): Promise<Member> {
    const r = await this.client.request("update", { channel: this.channel.name, data, ...opts });
    const m = r.member as Member;
    if (this.entered) this.entered = { data: m.data, ttlMs: opts.ttlMs ?? this.entered.ttlMs };
    return m;
  }

  async leave(data?: unknown): Promise<void> {
    this.entered = null;
    await this.client.request("leave", data === undefined ? { channel: this.channel.name } : { channel: this.channel.name, data });
  }

  async get(filter: { clientId?: string; connectionId?: string } = {}): Promise<Member[]> {
    const r = await this.client.request("get", { channel: this.channel.name, ...filter });
    return r.members as Member[];
  }

  async history(opts: HistoryOptions = {}): Promise<HistoryPage> {
    const r = await this.client.request("history", { channel: this.channel.name, ...opts });
    return { events: r.events as PresenceEvent[], ...(r.next !== undefined ? { next: r.next as number } : {}) };
  }

  async occupancy(): Promise<{ members: number; clients: number }> {
    const r = await this.client.request("occupancy", { channel: this.channel.name });
    return { members: r.members as number, clients: r.clients as number };
  }

  /** The local presence set (empty until the first subscription has its snapshot). */
  members(): Member[] {
    return [...this.set.values()];
  }

  /**
   * Calls `listener` for each event (optionally only `actions`), in serial order, once each.
   * Resolves when the snapshot is in; returns a function that unsubscribes.
   */
  async subscribe(actionsOrListener: Action[] | EventListener, maybeListener?: EventListener): Promise<() => Promise<void>> {
    const actions = Array.isArray(actionsOrListener) ? actionsOrListener : ["enter", "update", "leave"];
    const fn = (Array.isArray(actionsOrListener) ? maybeListener : actionsOrListener) as EventListener;
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

  /** After a new (not resumed) connection: enter again, and catch up from the last serial. */
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

  /** A full snapshot: replaces the set; with `diff`, listeners hear the changes it implies. */
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

export interface TtlEntry<T> {
  data: T;
  expiresAtMs: number;
}

/** Heartbeat-style presence: entries live until their TTL unless refreshed. */
export class TtlPresence<T = unknown> {
  private readonly changeListeners = new Set<(value: Map<string, TtlEntry<T>>) => void>();
  private unsubscribe: Promise<() => Promise<void>> | null = null;
  private expiryTimer: ReturnType<typeof setTimeout> | null = null;

  constructor(
    private readonly channel: Channel,
    private readonly validate?: (data: unknown) => T,
  ) {}

  /** Enters or refreshes this connection's entry for `ttlMs`. */
  heartbeat(data: T, ttlMs: number): Promise<Member> {
    return this.channel.presence.enter(data, { ttlMs });
  }

  leave(): Promise<void> {
    return this.channel.presence.leave();
  }

  /** Live entries by clientId (expired ones are left out even before the server's leave). */
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

  /** Calls `fn` with value() on every change; returns a function that stops. */
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
