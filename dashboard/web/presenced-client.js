// @presenced/client: the JavaScript/TypeScript client for presenced (docs/protocol.md).
//
// One PresenceClient is one connection (one device). It reconnects by itself with jittered
// backoff, resumes within the server's grace period (no leave/enter noise), and after a longer
// outage re-enters every channel it had entered and re-subscribes from the last serial it saw, so
// listeners see every change exactly once and in order.
export class PresenceError extends Error {
    code;
    constructor(code, message) {
        super(message);
        this.code = code;
        this.name = "PresenceError";
    }
}
function jitter(ms) {
    return Math.round(ms * (0.5 + Math.random()));
}
export class PresenceClient {
    state = "connecting";
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
        /** Serves sessions: `onAssign` is called with each session assigned to this worker. */
        serve: async (opts, onAssign) => {
            this.serving = { capacity: opts.capacity, onAssign };
            await this.request("session.serve", opts.capacity === undefined ? {} : { capacity: opts.capacity });
        },
    };
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
        /** Calls `listener` with every status push of these users; returns a function that stops. */
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
    activity = {
        record: (kind, opts = {}) => this.request("activity", { kind, ...opts }).then(() => undefined),
        list: (opts = {}) => this.request("activity.get", { ...opts }).then((r) => r.activities),
    };
    constructor(options) {
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
    onOpenFailed(e) {
        this.emit("error", new PresenceError("internal", "cannot open a connection: " + String(e)));
        this.scheduleReconnect();
    }
    // ----- Events --------------------------------------------------------------------------------
    on(event, fn) {
        let set = this.listeners.get(event);
        if (!set)
            this.listeners.set(event, (set = new Set()));
        set.add(fn);
        return () => this.off(event, fn);
    }
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
    /** Resolves when connected (at once if connected now). */
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
    /** Closes cleanly: members leave at once (reason disconnected). No reconnect. */
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
    /** For tests and chaos drills: cut the socket without a close frame (an abrupt drop). */
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
     */
    async refreshToken(token) {
        const fresh = token ?? (this.opts.authCallback ? await this.opts.authCallback() : this.opts.token);
        const r = await this.request("auth", { token: fresh });
        if (token !== undefined && !this.opts.authCallback)
            this.opts.token = token;
        return r.expiresAt;
    }
    /** Sends one protocol request and resolves with its reply (the raw object). */
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
    channel(name) {
        let ch = this.channels.get(name);
        if (!ch)
            this.channels.set(name, (ch = new Channel(this, name)));
        return ch;
    }
    /** Heartbeat-style presence with TTLs (entries expire unless refreshed). */
    presence(name, opts = {}) {
        return new TtlPresence(this.channel(name), opts.validate);
    }
    devices(clientId) {
        return this.request("devices", clientId ? { clientId } : {}).then((r) => r.devices);
    }
    who(channel) {
        return this.request("who", channel ? { channel } : {}).then((r) => r.users);
    }
}
export class Channel {
    client;
    name;
    presence;
    constructor(client, name) {
        this.client = client;
        this.name = name;
        this.presence = new ChannelPresence(this);
    }
}
/** Presence in one channel, kept locally in serial order while subscribed. */
export class ChannelPresence {
    channel;
    set = new Map(); // by connectionId
    serial = null;
    epoch = null;
    buffered = [];
    listeners = new Set();
    subscribed = null;
    entered = null;
    constructor(channel) {
        this.channel = channel;
    }
    get client() {
        return this.channel.client;
    }
    async enter(data, opts = {}) {
        const r = await this.client.request("enter", { channel: this.channel.name, data, ...opts });
        this.entered = { data: data ?? null, ttlMs: opts.ttlMs };
        return r.member;
    }
    async update(data, opts = {}) {
        const r = await this.client.request("update", { channel: this.channel.name, data, ...opts });
        const m = r.member;
        if (this.entered)
            this.entered = { data: m.data, ttlMs: opts.ttlMs ?? this.entered.ttlMs };
        return m;
    }
    async leave(data) {
        this.entered = null;
        await this.client.request("leave", data === undefined ? { channel: this.channel.name } : { channel: this.channel.name, data });
    }
    async get(filter = {}) {
        const r = await this.client.request("get", { channel: this.channel.name, ...filter });
        return r.members;
    }
    async history(opts = {}) {
        const r = await this.client.request("history", { channel: this.channel.name, ...opts });
        return { events: r.events, ...(r.next !== undefined ? { next: r.next } : {}) };
    }
    async occupancy() {
        const r = await this.client.request("occupancy", { channel: this.channel.name });
        return { members: r.members, clients: r.clients };
    }
    /** The local presence set (empty until the first subscription has its snapshot). */
    members() {
        return [...this.set.values()];
    }
    /**
     * Calls `listener` for each event (optionally only `actions`), in serial order, once each.
     * Resolves when the snapshot is in; returns a function that unsubscribes.
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
    /** After a new (not resumed) connection: enter again, and catch up from the last serial. */
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
    /** A full snapshot: replaces the set; with `diff`, listeners hear the changes it implies. */
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
/** Heartbeat-style presence: entries live until their TTL unless refreshed. */
export class TtlPresence {
    channel;
    validate;
    changeListeners = new Set();
    unsubscribe = null;
    expiryTimer = null;
    constructor(channel, validate) {
        this.channel = channel;
        this.validate = validate;
    }
    /** Enters or refreshes this connection's entry for `ttlMs`. */
    heartbeat(data, ttlMs) {
        return this.channel.presence.enter(data, { ttlMs });
    }
    leave() {
        return this.channel.presence.leave();
    }
    /** Live entries by clientId (expired ones are left out even before the server's leave). */
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
    /** Calls `fn` with value() on every change; returns a function that stops. */
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
