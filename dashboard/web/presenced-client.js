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
    code;
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
    code, message) {
        super(message);
        this.code = code;
        this.name = "PresenceError";
    }
}
function jitter(ms) {
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
    state = "connecting";
    /**
     * The last `connected` frame (null before the first connect).
     *
     * @example
     * ```ts
     * await client.waitForConnected();
     * console.log(client.info!.connectionId, client.info!.heartbeatMs);
     * ```
     */
    info = null;
    opts;
    socket = null;
    connectionKey = null;
    nextId = 0;
    pending = new Map();
    listeners = new Map();
    channels = new Map();
    watched = new Map();
    attempts = 0;
    closing = false;
    reconnectTimer = null;
    connectedWaiters = [];
    // Agent sessions: conversations ensured (re-ensured on a new connection while their session
    // lives), and this worker's serving and assignments.
    ensured = new Set();
    serving = null;
    assignments = new Map();
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
    sessions = {
        start: (conversationId, opts = {}) => this.request("session.start", { conversationId, ...opts }).then((r) => ({
            session: r.session,
            created: r.created,
        })),
        ensure: async (conversationId, opts = {}) => {
            const r = await this.request("session.ensure", { conversationId, ...opts });
            this.ensured.add(conversationId);
            return { session: r.session, created: r.created };
        },
        get: (conversationId) => this.request("session.get", { conversationId }).then((r) => r.session ?? null),
        stop: (conversationId) => this.request("session.stop", { conversationId }).then((r) => r.stopped),
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
    status = {
        set: (status, text) => {
            const fields = {};
            if (status !== undefined)
                fields.status = status;
            if (text !== undefined)
                fields.text = text;
            return this.request("status.set", fields).then((r) => r.status);
        },
        get: (clientIds) => this.request("status.get", { clientIds }).then((r) => r.statuses),
        watch: async (clientIds, listener) => {
            for (const id of clientIds) {
                let set = this.watched.get(id);
                if (!set)
                    this.watched.set(id, (set = new Set()));
                set.add(listener);
            }
            await this.request("status.watch", { clientIds });
            return async () => {
                const stop = [];
                for (const id of clientIds) {
                    const set = this.watched.get(id);
                    set?.delete(listener);
                    if (set && set.size === 0) {
                        this.watched.delete(id);
                        stop.push(id);
                    }
                }
                if (stop.length)
                    await this.request("status.unwatch", { clientIds: stop });
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
    activity = {
        record: (kind, opts = {}) => this.request("activity", { kind, ...opts }).then(() => undefined),
        list: (opts = {}) => this.request("activity.get", { ...opts }).then((r) => r.activities),
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
    constructor(options) {
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
    onOpenFailed(e) {
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
    on(event, fn) {
        let set = this.listeners.get(event);
        if (!set)
            this.listeners.set(event, (set = new Set()));
        set.add(fn);
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
    off(event, fn) {
        this.listeners.get(event)?.delete(fn);
    }
    emit(event, ...args) {
        for (const fn of this.listeners.get(event) ?? []) {
            try {
                fn(...args);
            }
            catch {
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
    waitForConnected(timeoutMs = 10000) {
        if (this.state === "connected" && this.info)
            return Promise.resolve(this.info);
        if (this.state === "closed")
            return Promise.reject(new PresenceError("closed", "client is closed"));
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
    async close() {
        this.closing = true;
        if (this.reconnectTimer)
            clearTimeout(this.reconnectTimer);
        const socket = this.socket;
        this.setState("closed");
        this.failPending("closed", "client closed");
        for (const w of this.connectedWaiters)
            w.reject(new PresenceError("closed", "client closed"));
        this.connectedWaiters = [];
        if (socket && socket.readyState <= 1) {
            await new Promise((resolve) => {
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
    dropConnection() {
        const s = this.socket;
        if (!s)
            return;
        if (s.terminate) {
            s.terminate();
        }
        else {
            s.close(4999, "drop");
        }
    }
    setState(s) {
        if (this.state === s)
            return;
        this.state = s;
        this.emit("state", s);
    }
    async socketFactory() {
        if (this.opts.WebSocket)
            return this.opts.WebSocket;
        const g = globalThis.WebSocket;
        if (g)
            return g;
        const mod = (await import("ws"));
        return mod.default;
    }
    async open() {
        if (this.closing)
            return;
        this.setState(this.info ? "disconnected" : "connecting");
        let token = "";
        try {
            if (!this.opts.apiKey)
                token = this.opts.token ?? (await this.opts.authCallback());
        }
        catch (e) {
            this.emit("error", new PresenceError("unauthorized", "authCallback failed: " + String(e)));
            return this.scheduleReconnect();
        }
        const base = this.opts.url.replace(/\/+$/, "");
        const url = new URL(base.endsWith("/v1/ws") ? base : base + "/v1/ws");
        if (this.opts.tokenInUrl && !this.opts.apiKey)
            url.searchParams.set("token", token);
        if (this.opts.device)
            url.searchParams.set("device", this.opts.device);
        if (this.opts.remainPresentForMs !== undefined) {
            url.searchParams.set("remainPresentForMs", String(this.opts.remainPresentForMs));
        }
        if (this.opts.heartbeatMs !== undefined)
            url.searchParams.set("heartbeatMs", String(this.opts.heartbeatMs));
        if (this.connectionKey)
            url.searchParams.set("resume", this.connectionKey);
        if (this.opts.batch)
            url.searchParams.set("batch", "1");
        const Ctor = await this.socketFactory();
        if (this.closing)
            return;
        const socket = new Ctor(url.toString());
        this.socket = socket;
        if (this.opts.apiKey) {
            socket.onopen = () => socket.send(JSON.stringify({ op: "auth", apiKey: this.opts.apiKey }));
        }
        else if (!this.opts.tokenInUrl) {
            // The token as the first frame; the server answers with `connected` (or closes, 4003).
            socket.onopen = () => socket.send(JSON.stringify({ op: "auth", token }));
        }
        socket.onmessage = (ev) => this.onMessage(typeof ev.data === "string" ? ev.data : String(ev.data));
        socket.onerror = () => {
            // onclose follows; reconnect happens there.
        };
        socket.onclose = (ev) => {
            if (this.socket !== socket)
                return;
            this.socket = null;
            this.failPending("disconnected", "connection lost before the reply (" + ev.code + ")");
            if (ev.code === 4003 || ev.code === 4004) {
                this.emit("error", new PresenceError("unauthorized", (ev.code === 4004 ? "token revoked" : "authentication failed") + " (" + ev.code + ")"));
            }
            if (this.closing)
                return;
            this.setState("disconnected");
            this.scheduleReconnect();
        };
    }
    scheduleReconnect() {
        if (this.closing)
            return;
        const delay = Math.min(this.opts.reconnectMaxMs, this.opts.reconnectBaseMs * 2 ** this.attempts);
        this.attempts++;
        this.reconnectTimer = setTimeout(() => void this.open().catch((e) => this.onOpenFailed(e)), jitter(delay));
    }
    failPending(code, message) {
        for (const [, p] of this.pending) {
            clearTimeout(p.timer);
            p.reject(new PresenceError(code, message));
        }
        this.pending.clear();
    }
    onMessage(text) {
        let frame;
        try {
            frame = JSON.parse(text);
        }
        catch {
            return;
        }
        if (frame.type === "batch" && Array.isArray(frame.messages)) {
            for (const m of frame.messages)
                this.onFrame(m);
            return;
        }
        this.onFrame(frame);
    }
    // One server message (a frame's, or one of a batch's, in order). A `sync` may come at any time:
    // after a resume that missed too much, or when this client read too slowly (the server then
    // replaces the events it could not take by the channel's state).
    onFrame(frame) {
        switch (frame.type) {
            case "connected":
                return void this.onConnected(frame);
            case "reply": {
                const p = this.pending.get(frame.id);
                if (!p)
                    return;
                this.pending.delete(frame.id);
                clearTimeout(p.timer);
                if (frame.ok) {
                    p.resolve(frame);
                }
                else {
                    const e = frame.error;
                    p.reject(new PresenceError(e.code, e.message));
                }
                return;
            }
            case "presence": {
                const e = frame;
                this.channels.get(e.channel)?.presence.onEvent(e);
                return;
            }
            case "sync": {
                const ch = this.channels.get(frame.channel);
                ch?.presence.onSnapshot(frame.members, frame.serial, true);
                return;
            }
            case "status":
                return this.onStatus(frame);
            case "session": {
                const e = frame;
                delete e.type;
                if (e.action === "stopped")
                    this.ensured.delete(e.session.conversationId);
                return this.emit("session", e);
            }
            case "session.assign":
                return this.onAssign(frame.session, frame.request);
            case "session.stop": {
                const id = frame.conversationId;
                const done = this.assignments.get(id);
                this.assignments.delete(id);
                done?.(frame.reason);
                return;
            }
        }
    }
    async onConnected(frame) {
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
        for (const w of waiters)
            w.resolve(this.info);
        if (frame.resumed || !previous)
            return;
        // A new connection after a longer outage (or a server restart): put back what we had.
        try {
            for (const ch of this.channels.values())
                await ch.presence.restore(previous.epoch);
            if (this.watched.size)
                await this.request("status.watch", { clientIds: [...this.watched.keys()] });
            // A new connection is a new worker: the old one's sessions were handed over (or stopped).
            for (const done of this.assignments.values())
                done("worker_lost");
            this.assignments.clear();
            if (this.serving)
                await this.request("session.serve", this.serving.capacity === undefined ? {} : { capacity: this.serving.capacity });
            for (const id of [...this.ensured]) {
                const r = await this.request("session.get", { conversationId: id });
                if (r.session)
                    await this.request("session.ensure", { conversationId: id });
                else
                    this.ensured.delete(id);
            }
        }
        catch (e) {
            if (e instanceof PresenceError)
                this.emit("error", e);
        }
    }
    onAssign(session, request) {
        const id = session.conversationId;
        if (!this.serving)
            return;
        if (this.assignments.has(id))
            return; // sent again after a resume: already being handled
        let resolveStopped;
        const stopped = new Promise((r) => (resolveStopped = r));
        this.assignments.set(id, resolveStopped);
        const a = {
            session,
            request: request ?? null,
            ready: () => this.request("session.ready", { conversationId: id }).then(() => undefined),
            fail: (error) => {
                this.assignments.delete(id);
                resolveStopped("failed");
                return this.request("session.fail", error === undefined ? { conversationId: id } : { conversationId: id, error }).then(() => undefined);
            },
            touch: () => this.request("session.touch", { conversationId: id }).then(() => undefined),
            stopped,
        };
        try {
            void Promise.resolve(this.serving.onAssign(a)).catch((e) => this.emit("error", new PresenceError("internal", "onAssign failed: " + String(e))));
        }
        catch (e) {
            this.emit("error", new PresenceError("internal", "onAssign failed: " + String(e)));
        }
    }
    onStatus(push) {
        this.emit("status", push);
        if (push.previous !== push.status)
            this.emit("statusChange", push.clientId, push.previous, push.status);
        if (push.previous === "offline" && push.status !== "offline")
            this.emit("online", push.clientId);
        if (push.previous !== "offline" && push.status === "offline")
            this.emit("offline", push.clientId);
        for (const fn of this.watched.get(push.clientId) ?? []) {
            try {
                fn(push);
            }
            catch {
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
    async refreshToken(token) {
        const fresh = token ?? (this.opts.authCallback ? await this.opts.authCallback() : this.opts.token);
        const r = await this.request("auth", { token: fresh });
        if (token !== undefined && !this.opts.authCallback)
            this.opts.token = token;
        return r.expiresAt;
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
    async request(op, fields = {}) {
        if (this.state !== "connected")
            await this.waitForConnected(this.opts.requestTimeoutMs);
        const socket = this.socket;
        if (!socket)
            throw new PresenceError("disconnected", "not connected");
        const id = ++this.nextId;
        return new Promise((resolve, reject) => {
            const timer = setTimeout(() => {
                this.pending.delete(id);
                reject(new PresenceError("timeout", op + " got no reply in " + this.opts.requestTimeoutMs + " ms"));
            }, this.opts.requestTimeoutMs);
            this.pending.set(id, { resolve, reject, timer });
            try {
                socket.send(JSON.stringify({ ...fields, op, id }));
            }
            catch (e) {
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
    channel(name) {
        let ch = this.channels.get(name);
        if (!ch)
            this.channels.set(name, (ch = new Channel(this, name)));
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
    presence(name, opts = {}) {
        return new TtlPresence(this.channel(name), opts.validate);
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
    devices(clientId) {
        return this.request("devices", clientId ? { clientId } : {}).then((r) => r.devices);
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
    setDeviceStatus(status, connectionId) {
        const fields = { status };
        if (connectionId !== undefined)
            fields.connectionId = connectionId;
        return this.request("device.status.set", fields).then((r) => ({ device: r.device, status: r.status }));
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
    who(channel) {
        return this.request("who", channel ? { channel } : {}).then((r) => r.users);
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
    client;
    name;
    /**
     * This channel's presence: enter, update, leave, get, subscribe, history.
     *
     * @example
     * ```ts
     * const members = await client.channel("room").presence.get();
     * ```
     */
    presence;
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
    client, 
    /**
     * The channel's name.
     *
     * @example
     * ```ts
     * client.channel("room").name; // "room"
     * ```
     */
    name) {
        this.client = client;
        this.name = name;
        this.presence = new ChannelPresence(this);
    }
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
    channel;
    set = new Map(); // by connectionId
    serial = null;
    epoch = null;
    buffered = [];
    listeners = new Set();
    subscribed = null;
    entered = null;
    /** @internal Use `client.channel(name).presence`. */
    constructor(channel) {
        this.channel = channel;
    }
    get client() {
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
    async enter(data, opts = {}) {
        const r = await this.client.request("enter", { channel: this.channel.name, data, ...opts });
        this.entered = { data: data ?? null, ttlMs: opts.ttlMs };
        return r.member;
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
    async update(data, opts = {}) {
        const r = await this.client.request("update", { channel: this.channel.name, data, ...opts });
        const m = r.member;
        if (this.entered)
            this.entered = { data: m.data, ttlMs: opts.ttlMs ?? this.entered.ttlMs };
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
    async leave(data) {
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
    async get(filter = {}) {
        const r = await this.client.request("get", { channel: this.channel.name, ...filter });
        return r.members;
    }
    /**
     * A page of the channel's past events (see {@link HistoryOptions}).
     *
     * @example
     * ```ts
     * const { events, next } = await room.history({ direction: "forwards", limit: 100 });
     * ```
     */
    async history(opts = {}) {
        const r = await this.client.request("history", { channel: this.channel.name, ...opts });
        return { events: r.events, ...(r.next !== undefined ? { next: r.next } : {}) };
    }
    /**
     * How many members (connections) and distinct clients are in the channel.
     *
     * @example
     * ```ts
     * const { members, clients } = await room.occupancy();
     * ```
     */
    async occupancy() {
        const r = await this.client.request("occupancy", { channel: this.channel.name });
        return { members: r.members, clients: r.clients };
    }
    /**
     * The local presence set (empty until the first subscription has its snapshot).
     *
     * @example
     * ```ts
     * await room.subscribe(() => render(room.members()));
     * ```
     */
    members() {
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
    async subscribe(actionsOrListener, maybeListener) {
        const actions = Array.isArray(actionsOrListener) ? actionsOrListener : ["enter", "update", "leave"];
        const fn = (Array.isArray(actionsOrListener) ? maybeListener : actionsOrListener);
        const entry = { actions: new Set(actions), fn };
        this.listeners.add(entry);
        if (!this.subscribed) {
            this.subscribed = this.serverSubscribe().catch((e) => {
                this.subscribed = null;
                throw e;
            });
        }
        try {
            await this.subscribed;
        }
        catch (e) {
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
    async serverSubscribe(since, epoch) {
        const fields = { channel: this.channel.name };
        if (since !== undefined && epoch)
            Object.assign(fields, { since, epoch });
        const r = await this.client.request("subscribe", fields);
        this.epoch = r.epoch;
        if (r.events) {
            for (const e of r.events)
                this.apply(e);
            this.serial = Math.max(this.serial ?? 0, r.serial);
            this.drain();
        }
        else {
            this.onSnapshot(r.members, r.serial, since !== undefined);
        }
    }
    /** @internal After a new (not resumed) connection: enter again, and catch up from the last serial. */
    async restore(previousEpoch) {
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
    onSnapshot(members, serial, diff) {
        const next = new Map(members.map((m) => [m.connectionId, m]));
        if (diff) {
            for (const [id, old] of this.set) {
                if (!next.has(id))
                    this.notify({ type: "presence", channel: this.channel.name, action: "leave", member: old, serial, reason: "left" });
            }
            for (const [id, m] of next) {
                const old = this.set.get(id);
                if (!old) {
                    this.notify({ type: "presence", channel: this.channel.name, action: "enter", member: m, serial });
                }
                else if (JSON.stringify(old.data) !== JSON.stringify(m.data)) {
                    this.notify({ type: "presence", channel: this.channel.name, action: "update", member: m, serial });
                }
            }
        }
        this.set.clear();
        for (const [id, m] of next)
            this.set.set(id, m);
        this.serial = serial;
        this.drain();
    }
    /** @internal One event from the server. */
    onEvent(e) {
        if (!this.subscribed && this.listeners.size === 0)
            return;
        if (this.serial === null) {
            this.buffered.push(e); // before the snapshot
            return;
        }
        this.apply(e);
    }
    drain() {
        const events = this.buffered.sort((a, b) => a.serial - b.serial);
        this.buffered = [];
        for (const e of events)
            this.apply(e);
    }
    apply(e) {
        if (this.serial !== null && e.serial <= this.serial)
            return; // already in the snapshot or seen
        this.serial = e.serial;
        if (e.action === "leave") {
            this.set.delete(e.member.connectionId);
        }
        else {
            this.set.set(e.member.connectionId, e.member);
        }
        this.notify(e);
    }
    notify(e) {
        for (const l of this.listeners) {
            if (!l.actions.has(e.action))
                continue;
            try {
                l.fn(e);
            }
            catch {
                // A throwing listener must not break the others.
            }
        }
    }
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
export class TtlPresence {
    channel;
    validate;
    changeListeners = new Set();
    unsubscribe = null;
    expiryTimer = null;
    /** @internal Use `client.presence(name, {validate})`. */
    constructor(channel, validate) {
        this.channel = channel;
        this.validate = validate;
    }
    /**
     * Enters or refreshes this connection's entry with `data` for `ttlMs`.
     *
     * @example
     * ```ts
     * await cursors.heartbeat({ x: 120, y: 340 }, 5000);
     * ```
     */
    heartbeat(data, ttlMs) {
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
    leave() {
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
    value(now = Date.now()) {
        const out = new Map();
        for (const m of this.channel.presence.members()) {
            const expires = m.expiresAt ?? Number.POSITIVE_INFINITY;
            if (expires <= now)
                continue;
            let data;
            try {
                data = this.validate ? this.validate(m.data) : m.data;
            }
            catch {
                continue; // invalid data is not shown
            }
            const prev = out.get(m.clientId);
            if (!prev || prev.expiresAtMs < expires)
                out.set(m.clientId, { data, expiresAtMs: expires });
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
    onChange(fn) {
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
                if (this.expiryTimer)
                    clearTimeout(this.expiryTimer);
                void u.then((stop) => stop()).catch(() => undefined);
            }
        };
    }
    changed() {
        const v = this.value();
        for (const fn of this.changeListeners)
            fn(v);
        // Tell listeners when the next entry expires locally, before the server's leave arrives.
        if (this.expiryTimer)
            clearTimeout(this.expiryTimer);
        let next = Number.POSITIVE_INFINITY;
        for (const e of v.values())
            next = Math.min(next, e.expiresAtMs);
        if (Number.isFinite(next)) {
            this.expiryTimer = setTimeout(() => this.changed(), Math.max(0, next - Date.now()) + 1);
        }
    }
}
