// @presenced/client/service: createPresenceService, the status-service design's API
// (../shared/seeds/status-service.txt) for Node backends, on top of presenced.
//
// Reads and writes go over the REST API (fetch, with the API key). One observer WebSocket
// connection (a PresenceClient with the API key: nobody, never online itself) carries the events:
// while a listener is on it watches every user (`status.watch` with `all:true`), and after a new
// connection it watches again and tells listeners what changed meanwhile, so no change is lost to
// a reconnect. `getStatuses` asks the same connection (`status.get`: one request for many users).
// The design's field names are mapped onto ours (customStatus = text, userId = clientId, ...) and
// ours are kept beside them.

/**
 * @packageDocumentation
 * `createPresenceService`: the status-service design's API (getStatus, setStatus,
 * setDeviceStatus, recordActivity, sync, on('statusChange'), ...) for Node backends, backed by
 * presenced's REST API and one observer WebSocket. Import it from `@presenced/client/service`.
 *
 * @example
 * ```ts
 * import { createPresenceService } from "@presenced/client/service";
 *
 * const presence = createPresenceService({ url: "http://127.0.0.1:7070", apiKey: process.env.PRESENCED_API_KEY });
 * presence.on("online", (userId) => console.log(userId, "is now online"));
 * const status = await presence.getStatus("alice");
 * console.log(status.status, status.customStatus, status.activeDevice);
 * ```
 */

import { PresenceClient, PresenceError } from "./index.js";
import type { Activity, Device, StatusPush, StatusValue, UserStatus } from "./index.js";

/**
 * Options of {@link createPresenceService}. `url` and `apiKey` are new (the design's service lived
 * in the process; presenced is a server); `heartbeatIntervalMs` is honoured; the design's other
 * options are the server's settings, so each is ignored with a warning naming the setting.
 *
 * @example
 * ```ts
 * const options: PresenceServiceOptions = {
 *   url: "http://127.0.0.1:7070",
 *   apiKey: process.env.PRESENCED_API_KEY,
 *   heartbeatIntervalMs: 30000,
 * };
 * const presence = createPresenceService(options);
 * ```
 */
export interface PresenceServiceOptions {
  /**
   * The server's HTTP base, e.g. `http://127.0.0.1:7070` (`https://` with TLS; a `ws://` or
   * `wss://` address is accepted too). Default: the `PRESENCED_URL` environment variable.
   *
   * @example
   * ```ts
   * createPresenceService({ url: "https://presence.example.com", apiKey });
   * ```
   */
  url?: string;
  /**
   * The server's API key (`PRESENCED_API_KEY`, or the `api-key` file in its data directory): the
   * REST calls send it as `Authorization: Bearer`, and the observer connection authenticates with
   * it. Default: the `PRESENCED_API_KEY` environment variable. Keep it on the backend.
   *
   * @example
   * ```ts
   * createPresenceService({ url, apiKey: readFileSync("presenced-data/api-key", "utf8").trim() });
   * ```
   */
  apiKey?: string;
  /**
   * The heartbeat interval of the observer connection (its `heartbeatMs`): the server pings it
   * that often and counts two silent intervals as a drop, so a short one notices a dead link (and
   * reconnects, catching up on the events) sooner. Clamped by the server into
   * `PRESENCED_MIN_HEARTBEAT_MS`..`PRESENCED_MAX_HEARTBEAT_MS`. Users' devices choose their own
   * (`PresenceClient`'s `heartbeatMs`).
   *
   * @example
   * ```ts
   * createPresenceService({ url, apiKey, heartbeatIntervalMs: 30000 });
   * ```
   */
  heartbeatIntervalMs?: number;
  /**
   * How long a call waits for the server before it rejects with code `timeout`. Default 10000.
   *
   * @example
   * ```ts
   * createPresenceService({ url, apiKey, requestTimeoutMs: 3000 });
   * ```
   */
  requestTimeoutMs?: number;
  /**
   * A server setting: ignored here, with a warning. Set `PRESENCED_AWAY_AFTER_MS` on the server
   * (idle time before a device is automatically away; default 300000).
   *
   * @example
   * ```ts
   * // PRESENCED_AWAY_AFTER_MS=300000 presenced    (instead of:)
   * createPresenceService({ url, apiKey, awayAfterMs: 300000 }); // warns once
   * ```
   */
  awayAfterMs?: number;
  /**
   * A server setting: ignored here, with a warning. Set `PRESENCED_OFFLINE_AFTER_MS` on the server
   * (idle time before a device is automatically offline; default 3600000).
   *
   * @example
   * ```ts
   * // PRESENCED_OFFLINE_AFTER_MS=3600000 presenced    (instead of:)
   * createPresenceService({ url, apiKey, offlineAfterMs: 3600000 }); // warns once
   * ```
   */
  offlineAfterMs?: number;
  /**
   * A server setting: ignored here, with a warning. Storage is the server's: `PRESENCED_STORAGE`
   * (`sqlite`, the durable default, `memory`, or `redis` in cluster mode).
   *
   * @example
   * ```ts
   * // PRESENCED_STORAGE=memory presenced    (instead of:)
   * createPresenceService({ url, apiKey, storage: "memory" }); // warns once
   * ```
   */
  storage?: string;
  /**
   * A server setting: ignored here, with a warning. Set `PRESENCED_REDIS_URL` on the server (it
   * then runs as a cluster node on that Redis).
   *
   * @example
   * ```ts
   * // PRESENCED_REDIS_URL=redis://127.0.0.1:6379 presenced    (instead of:)
   * createPresenceService({ url, apiKey, redisUrl: process.env.REDIS_URL }); // warns once when set
   * ```
   */
  redisUrl?: string;
}

/**
 * A user's status, with the design's names (`userId`, `customStatus`) and presenced's
 * (`clientId`, `text`).
 *
 * @example
 * ```ts
 * const s: ServiceStatus = await presence.getStatus("alice");
 * console.log(s.status, s.customStatus, s.lastSeen, s.activeDevice);
 * ```
 */
export interface ServiceStatus {
  /** The user (presenced's clientId, the token's `sub`). */
  userId: string;
  /** `online`, `away`, `dnd` or `offline`. */
  status: StatusValue;
  /** The custom status message, or null. */
  customStatus: string | null;
  /** The user's last activity (ms since the epoch), or null when never seen. */
  lastSeen: number | null;
  /** The device name of the connection used last (`laptop`, `phone`, ...), or null when offline. */
  activeDevice: string | null;
  /** The same as `userId` (presenced's name). */
  clientId: string;
  /** The same as `customStatus` (presenced's name). */
  text: string | null;
}

/**
 * One user of {@link PresenceService.getOnlineUsers}. presenced has no display names: `name` is
 * the userId.
 *
 * @example
 * ```ts
 * for (const user of await presence.getOnlineUsers()) console.log(`${user.name}: ${user.status}`);
 * ```
 */
export interface OnlineUser extends ServiceStatus {
  /** The userId (presenced keeps no display names; a member's channel data may hold one). */
  name: string;
}

/**
 * One live connection (device) of a user, with the design's names (`id`, `name`, `isActive`)
 * and presenced's (`connectionId`, `device`, `active`).
 *
 * @example
 * ```ts
 * for (const d of await presence.getDevices("alice")) {
 *   console.log(`${d.id}: ${d.name}`, d.status, d.manual ? "(set)" : "", d.isActive ? "active" : "");
 * }
 * ```
 */
export interface ServiceDevice {
  /** The connection's id: the `deviceId` of {@link PresenceService.setDeviceStatus}. */
  id: string;
  /** The device name the connection gave (`device` when connecting; `unknown` by default). */
  name: string;
  /** The device's effective status: set by hand, else from its idle time. */
  status: StatusValue;
  /** True when the device's status was set by hand (`setDeviceStatus`), false when automatic. */
  manual: boolean;
  /** The device's last activity (ms since the epoch). */
  lastSeen: number;
  /** True for the user's active device (the one used last). */
  isActive: boolean;
  /** The same as `id` (presenced's name). */
  connectionId: string;
  /** The same as `name` (presenced's name). */
  device: string;
  /** The same as `isActive` (presenced's name). */
  active: boolean;
}

/**
 * What {@link PresenceService.setDeviceStatus} resolves with.
 *
 * @example
 * ```ts
 * const { device, status }: DeviceStatusChange = await presence.setDeviceStatus("alice", phoneId, "dnd");
 * console.log(device.status, device.manual, status.status);
 * ```
 */
export interface DeviceStatusChange {
  /** The device after the change. */
  device: ServiceDevice;
  /** The user's status that follows from all the user's devices (a status set by hand wins). */
  status: ServiceStatus;
}

/**
 * An activity to record for a user ({@link PresenceService.recordActivity}).
 *
 * @example
 * ```ts
 * const activity: ActivityInput = { type: "message", channelId: "telegram-123", data: { chars: 12 } };
 * await presence.recordActivity("alice", activity);
 * ```
 */
export interface ActivityInput {
  /** What the user did, e.g. `message` (presenced's `kind`). */
  type: string;
  /** Where it happened (presenced's `channel`); optional. */
  channelId?: string;
  /** Any JSON to keep with the record. */
  data?: unknown;
  /** Ignored (with a warning once): the server stamps each record with its own clock. */
  timestamp?: number;
}

/**
 * One activity record, with the design's names (`type`, `channelId`) and presenced's (`kind`,
 * `channel`).
 *
 * @example
 * ```ts
 * for (const event of await presence.getActivity("alice", { limit: 10 })) {
 *   console.log(`${event.type} at ${event.timestamp}`, event.channelId);
 * }
 * ```
 */
export interface ServiceActivity {
  /** What the user did (the same as `kind`). */
  type: string;
  /** Where it happened, or null (the same as `channel`). */
  channelId: string | null;
  /** When it was recorded (ms since the epoch, the server's clock). */
  timestamp: number;
  /** The JSON recorded with it (null when none). */
  data: unknown;
  /** The connection that recorded it; null for a record made by a backend (`recordActivity`). */
  connectionId: string | null;
  /** presenced's name of `type`. */
  kind: string;
  /** presenced's name of `channelId`. */
  channel: string | null;
}

/**
 * One device of a {@link SyncStatus}.
 *
 * @example
 * ```ts
 * const { perDevice } = await presence.getSyncStatus("alice");
 * for (const d of perDevice) console.log(d.name, d.synced ? "in sync" : "behind", d.lastSync);
 * ```
 */
export interface SyncDevice {
  /** The connection's id. */
  id: string;
  /** The device name. */
  name: string;
  /** True when the device is live and a status push with the current status reached it. */
  synced: boolean;
  /** When the device last got a status push (ms since the epoch), or null. */
  lastSync: number | null;
  /** The same as `id` (presenced's name). */
  connectionId: string;
  /** The same as `name` (presenced's name). */
  device: string;
  /** The same as `synced` (presenced's name). */
  inSync: boolean;
  /** The same as `lastSync` (presenced's name). */
  lastSyncedAt: number | null;
}

/**
 * A user's sync report ({@link PresenceService.sync}, {@link PresenceService.getSyncStatus}):
 * `synced` of `total` devices have the current status; a device in its grace period after a drop
 * is counted but not in sync.
 *
 * @example
 * ```ts
 * const syncStatus: SyncStatus = await presence.getSyncStatus("alice");
 * console.log(`Devices synced: ${syncStatus.synced}/${syncStatus.total}`, `Last sync: ${syncStatus.lastSync}`);
 * ```
 */
export interface SyncStatus {
  /** Devices that have the current status. */
  synced: number;
  /** The user's devices (live, or in their grace period). */
  total: number;
  /** The latest time a status push reached one of the devices (ms since the epoch), or null. */
  lastSync: number | null;
  /** The user's status. */
  status: ServiceStatus;
  /** Each device. */
  perDevice: SyncDevice[];
}

/**
 * The events of {@link PresenceService.on} and their listeners' arguments. Each listener gets
 * the design's arguments first, then the user's status after the change.
 *
 * @example
 * ```ts
 * presence.on("statusChange", (userId, oldStatus, newStatus) => console.log(`${userId}: ${oldStatus} -> ${newStatus}`));
 * presence.on("online", (userId) => console.log(`${userId} is now online`));
 * presence.on("offline", (userId) => console.log(`${userId} went offline`));
 * ```
 */
export interface ServiceEvents {
  /** A user's status changed (not on a custom-status change alone). */
  statusChange: [userId: string, oldStatus: StatusValue, newStatus: StatusValue, status: ServiceStatus];
  /** A user came online (from offline to any other status). */
  online: [userId: string, status: ServiceStatus];
  /** A user went offline (no live device left, or appearing offline). */
  offline: [userId: string, status: ServiceStatus];
}

/**
 * A call the server refused, or one that could not complete. `code` is the server's error code
 * (`bad_request`, `not_found`, `too_large`, `unauthorized`, ...) or the facade's own (`timeout`,
 * `disconnected`: the server could not be reached, `closed`: after `close()`); `httpStatus` is the
 * REST response's status (null when there was no HTTP response, or for `getStatuses`, which asks
 * over the observer connection).
 *
 * @example
 * ```ts
 * try {
 *   await presence.setDeviceStatus("alice", "no-such-connection", "dnd");
 * } catch (e) {
 *   if (e instanceof PresenceServiceError && e.code === "not_found") console.log(e.httpStatus); // 404
 * }
 * ```
 */
export class PresenceServiceError extends PresenceError {
  /**
   * @param code - the server's error code, or `timeout`, `disconnected`, `closed`
   * @param message - the server's explanation
   * @param httpStatus - the HTTP status of the REST response, or null
   * @example
   * ```ts
   * throw new PresenceServiceError("not_found", "no live connection c1 of alice", 404);
   * ```
   */
  constructor(
    code: string,
    message: string,
    /**
     * The HTTP status of the REST response (400, 401, 404, 413, ...), or null when there was none.
     *
     * @example
     * ```ts
     * await presence.getStatus("x".repeat(10000)).catch((e: PresenceServiceError) => console.log(e.httpStatus)); // 413
     * ```
     */
    public readonly httpStatus: number | null,
  ) {
    super(code, message);
    this.name = "PresenceServiceError";
  }
}

// The design's options that are the server's settings, each with the setting to use instead.
const SERVER_SETTINGS: Record<string, string> = {
  awayAfterMs: "PRESENCED_AWAY_AFTER_MS (--away-after-ms)",
  offlineAfterMs: "PRESENCED_OFFLINE_AFTER_MS (--offline-after-ms)",
  storage: "PRESENCED_STORAGE (sqlite, memory or redis)",
  redisUrl: "PRESENCED_REDIS_URL (cluster mode)",
};
const HONOURED = new Set(["url", "apiKey", "heartbeatIntervalMs", "requestTimeoutMs"]);
// Each warning once per process, as Node's own deprecation warnings.
const warned = new Set<string>();

function warnOnce(key: string, message: string): void {
  if (warned.has(key)) return;
  warned.add(key);
  console.warn("presenced: " + message);
}

function env(name: string): string | undefined {
  return (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.[name];
}

function toStatus(s: UserStatus): ServiceStatus {
  return {
    userId: s.clientId,
    status: s.status,
    customStatus: s.text,
    lastSeen: s.lastSeen,
    activeDevice: s.activeDevice,
    clientId: s.clientId,
    text: s.text,
  };
}

function toDevice(d: Device): ServiceDevice {
  return {
    id: d.connectionId,
    name: d.device,
    status: d.status,
    manual: d.manual,
    lastSeen: d.lastSeen,
    isActive: d.active,
    connectionId: d.connectionId,
    device: d.device,
    active: d.active,
  };
}

function toActivity(a: Activity): ServiceActivity {
  return {
    type: a.kind,
    channelId: a.channel,
    timestamp: a.timestamp,
    data: a.data,
    connectionId: a.connectionId,
    kind: a.kind,
    channel: a.channel,
  };
}

interface SyncReport {
  status: UserStatus;
  devices: number;
  inSync: number;
  lastSyncedAt: number | null;
  perDevice: { connectionId: string; device: string; inSync: boolean; lastSyncedAt: number | null }[];
}

function toSync(r: SyncReport): SyncStatus {
  return {
    synced: r.inSync,
    total: r.devices,
    lastSync: r.lastSyncedAt,
    status: toStatus(r.status),
    perDevice: r.perDevice.map((d) => ({
      id: d.connectionId,
      name: d.device,
      synced: d.inSync,
      lastSync: d.lastSyncedAt,
      connectionId: d.connectionId,
      device: d.device,
      inSync: d.inSync,
      lastSyncedAt: d.lastSyncedAt,
    })),
  };
}

function userPath(userId: string, rest: string): string {
  if (typeof userId !== "string" || userId === "") {
    throw new PresenceServiceError("bad_request", "userId must be a non-empty string", null);
  }
  return "/v1/users/" + encodeURIComponent(userId) + rest;
}

// status.get takes any number of ids, but a frame is at most PRESENCED_MAX_FRAME_BYTES (64 KiB by
// default, and a frame over it closes the connection): ask for at most this many ids, of at most
// this many bytes, at a time.
const STATUS_GET_IDS = 200;
const STATUS_GET_BYTES = 16384;

const utf8 = new TextEncoder();

function statusGetChunks(userIds: string[]): string[][] {
  const chunks: string[][] = [];
  let chunk: string[] = [];
  let bytes = 0;
  for (const id of userIds) {
    if (typeof id !== "string" || id === "") {
      throw new PresenceServiceError("bad_request", "userIds must be non-empty strings", null);
    }
    const size = utf8.encode(JSON.stringify(id)).length + 1;
    if (size > STATUS_GET_BYTES) throw new PresenceServiceError("too_large", `a userId of ${size} bytes is over the limit`, null);
    if (chunk.length === STATUS_GET_IDS || bytes + size > STATUS_GET_BYTES) {
      chunks.push(chunk);
      chunk = [];
      bytes = 0;
    }
    chunk.push(id);
    bytes += size;
  }
  if (chunk.length) chunks.push(chunk);
  return chunks;
}

type Listener = (...args: never[]) => void;

/**
 * The status-service design's presence service, backed by presenced: made by
 * {@link createPresenceService}. Every method but `on`/`off` returns a promise and rejects with
 * a {@link PresenceServiceError}.
 *
 * @example
 * ```ts
 * const presence = createPresenceService({ url: "http://127.0.0.1:7070", apiKey });
 * await presence.setCustomStatus("alice", "Trading BTC");
 * const devices = await presence.getDevices("alice");
 * await presence.setDeviceStatus("alice", devices[0].id, "dnd");
 * await presence.close();
 * ```
 */
export class PresenceService {
  /**
   * The observer connection (a {@link PresenceClient} with the API key) that carries the events,
   * for what the facade does not wrap, e.g. channel subscriptions.
   *
   * @example
   * ```ts
   * const room = presence.client.channel("room").presence;
   * await room.subscribe((e) => console.log(e.action, e.member.clientId));
   * ```
   */
  readonly client: PresenceClient;

  private readonly base: string;
  private readonly apiKey: string;
  private readonly timeoutMs: number;
  private readonly listeners = new Map<keyof ServiceEvents, Set<Listener>>();
  // Users not offline as the watch last told us: what a new connection's watch reply is compared
  // with, so that changes missed while disconnected reach the listeners too. (A resumed connection
  // is also sent the pushes it missed; comparing still finds those written to the old socket
  // before the server noticed the drop, and those of a server restart.)
  private readonly known = new Map<string, ServiceStatus>();
  private watching = false;
  private watchRequest: Promise<void> | null = null;
  private closed = false;

  /** @internal Use {@link createPresenceService}. */
  constructor(options: PresenceServiceOptions = {}) {
    for (const [key, value] of Object.entries(options)) {
      if (value === undefined || HONOURED.has(key)) continue;
      const setting = SERVER_SETTINGS[key];
      if (setting) {
        warnOnce(key, `createPresenceService option ${key} is a server setting and is ignored here; set ${setting} on the server`);
      } else {
        warnOnce(key, `createPresenceService option ${key} is unknown and is ignored`);
      }
    }
    const url = options.url ?? env("PRESENCED_URL");
    const apiKey = options.apiKey ?? env("PRESENCED_API_KEY");
    if (!url) throw new PresenceServiceError("bad_request", "createPresenceService needs url (or PRESENCED_URL): the server's http base", null);
    if (!apiKey) throw new PresenceServiceError("bad_request", "createPresenceService needs apiKey (or PRESENCED_API_KEY): the server's API key", null);
    let parsed: URL | null = null;
    try {
      parsed = new URL(url.replace(/^ws/i, "http"));
    } catch {
      // reported below
    }
    if (!parsed || (parsed.protocol !== "http:" && parsed.protocol !== "https:")) {
      throw new PresenceServiceError("bad_request", "url must be http(s)://host:port, not " + url, null);
    }
    // A path is kept (a server behind a proxy under a prefix); the routes go after it.
    this.base = parsed.origin + parsed.pathname.replace(/\/+$/, "");
    this.apiKey = apiKey;
    this.timeoutMs = options.requestTimeoutMs ?? 10000;
    this.client = new PresenceClient({
      url: this.base.replace(/^http/, "ws"),
      apiKey,
      requestTimeoutMs: this.timeoutMs,
      ...(options.heartbeatIntervalMs !== undefined ? { heartbeatMs: options.heartbeatIntervalMs } : {}),
    });
    // A new connection has no watch (a resumed one keeps it, and asking again is harmless): watch
    // again, and compare to tell listeners what happened meanwhile.
    this.client.on("connected", () => {
      if (this.watching) this.watchAll();
    });
    this.client.on("status", (push) => this.onPush(push));
  }

  // ----- Status ---------------------------------------------------------------------------------

  /**
   * A user's status (`GET /v1/users/{userId}/status`); a user never seen is `offline` with
   * `lastSeen` null.
   *
   * @example
   * ```ts
   * const status = await presence.getStatus("alice");
   * console.log(`Status: ${status.status}`, `Custom: ${status.customStatus}`, `Last seen: ${status.lastSeen}`);
   * ```
   */
  async getStatus(userId: string): Promise<ServiceStatus> {
    return toStatus(await this.rest<UserStatus>("GET", userPath(userId, "/status")));
  }

  /**
   * Several users' statuses, in the order asked (`status.get` over the observer connection: one
   * request for up to 200 users, or 16 KiB of userIds).
   *
   * @example
   * ```ts
   * const statuses = await presence.getStatuses(["user-1", "user-2", "user-3"]);
   * ```
   */
  async getStatuses(userIds: string[]): Promise<ServiceStatus[]> {
    this.checkOpen();
    const out: ServiceStatus[] = [];
    for (const clientIds of statusGetChunks(userIds)) {
      let reply: Record<string, unknown>;
      try {
        reply = await this.client.request("status.get", { clientIds });
      } catch (e) {
        throw this.fromClientError(e);
      }
      for (const s of reply.statuses as UserStatus[]) out.push(toStatus(s));
    }
    return out;
  }

  /**
   * Sets a user's status by hand (`PUT /v1/users/{userId}/status`): `away`, `dnd` and `offline`
   * (appear offline) hold while the user is connected, whatever the idle time; `online` returns
   * to automatic (online while a device is active, then away and offline as they idle). A user
   * without a live connection is offline whatever is set; the setting applies when they connect.
   *
   * @example
   * ```ts
   * await presence.setStatus("alice", "dnd");
   * await presence.setStatus("alice", "online"); // back to automatic
   * ```
   */
  async setStatus(userId: string, status: StatusValue): Promise<ServiceStatus> {
    return toStatus(await this.rest<UserStatus>("PUT", userPath(userId, "/status"), { status }));
  }

  /**
   * Sets a user's custom status message (the status `text`, at most 1,024 bytes), shared by all
   * the user's devices.
   *
   * @example
   * ```ts
   * await presence.setCustomStatus("alice", "Trading BTC");
   * ```
   */
  async setCustomStatus(userId: string, customStatus: string): Promise<ServiceStatus> {
    return toStatus(await this.rest<UserStatus>("PUT", userPath(userId, "/status"), { text: customStatus }));
  }

  /**
   * Clears a user's custom status message.
   *
   * @example
   * ```ts
   * await presence.clearCustomStatus("alice");
   * ```
   */
  async clearCustomStatus(userId: string): Promise<ServiceStatus> {
    return toStatus(await this.rest<UserStatus>("PUT", userPath(userId, "/status"), { text: null }));
  }

  /**
   * The users who are online, away or on dnd (`GET /v1/who`), or only those with a member in
   * the channel `channelId`. Users who appear offline are left out.
   *
   * @example
   * ```ts
   * const online = await presence.getOnlineUsers({ channelId: "telegram-123" });
   * for (const user of online) console.log(`${user.name}: ${user.status}`);
   * ```
   */
  async getOnlineUsers(opts: { channelId?: string } = {}): Promise<OnlineUser[]> {
    const query = opts.channelId !== undefined ? "?channel=" + encodeURIComponent(opts.channelId) : "";
    const r = await this.rest<{ users: UserStatus[] }>("GET", "/v1/who" + query);
    return r.users.map((s) => ({ ...toStatus(s), name: s.clientId }));
  }

  // ----- Activity -------------------------------------------------------------------------------

  /**
   * Records an activity on behalf of a user (`POST /v1/users/{userId}/activity`). It moves the
   * user's `lastSeen`, and is listed by `getActivity`; it is not any device's activity, so it
   * does not bring an idle device back from away. The server stamps the time.
   *
   * @example
   * ```ts
   * await presence.recordActivity("alice", { type: "message", channelId: "telegram-123" });
   * ```
   */
  async recordActivity(userId: string, activity: ActivityInput): Promise<ServiceActivity> {
    if (activity.timestamp !== undefined) {
      warnOnce("activity.timestamp", "recordActivity: timestamp is ignored; the server stamps each record with its own clock");
    }
    const body: Record<string, unknown> = { kind: activity.type };
    if (activity.channelId !== undefined) body.channel = activity.channelId;
    if (activity.data !== undefined) body.data = activity.data;
    const r = await this.rest<{ activity: Activity }>("POST", userPath(userId, "/activity"), body);
    return toActivity(r.activity);
  }

  /**
   * A user's recent activity, newest first (`GET /v1/users/{userId}/activity`): at most `limit`
   * records (default 50, at most 1000), those at or after `since` (ms since the epoch).
   *
   * @example
   * ```ts
   * const activity = await presence.getActivity("alice", { limit: 10, since: Date.now() - 3600000 });
   * ```
   */
  async getActivity(userId: string, opts: { limit?: number; since?: number } = {}): Promise<ServiceActivity[]> {
    const q = new URLSearchParams();
    if (opts.limit !== undefined) q.set("limit", String(opts.limit));
    if (opts.since !== undefined) q.set("since", String(opts.since));
    const query = q.toString() ? "?" + q.toString() : "";
    const r = await this.rest<{ activities: Activity[] }>("GET", userPath(userId, "/activity" + query));
    return r.activities.map(toActivity);
  }

  // ----- Devices --------------------------------------------------------------------------------

  /**
   * A user's live devices (connections), each with its own status (`GET
   * /v1/users/{userId}/devices`, as the user sees them: devices set offline are listed too).
   *
   * @example
   * ```ts
   * for (const device of await presence.getDevices("alice")) console.log(`${device.id}: ${device.name}`, device.status);
   * ```
   */
  async getDevices(userId: string): Promise<ServiceDevice[]> {
    const r = await this.rest<{ devices: Device[] }>("GET", userPath(userId, "/devices"));
    return r.devices.map(toDevice);
  }

  /**
   * Sets one device's status (`PUT /v1/users/{userId}/devices/{deviceId}/status`; `deviceId` is
   * a device's `id` from `getDevices`): `away`, `dnd` or `offline` by hand, `online` back to
   * automatic. The user's status follows from all devices (any online device makes the user
   * online, else dnd, else away) unless the user's status was set by hand with `setStatus`.
   * Rejects with `not_found` (404) when `deviceId` is not a live connection of the user.
   *
   * @example
   * ```ts
   * const [phone] = (await presence.getDevices("alice")).filter((d) => d.name === "phone");
   * const { device, status } = await presence.setDeviceStatus("alice", phone.id, "dnd");
   * ```
   */
  async setDeviceStatus(userId: string, deviceId: string, status: StatusValue): Promise<DeviceStatusChange> {
    const path = userPath(userId, "/devices/" + encodeURIComponent(deviceId) + "/status");
    const r = await this.rest<{ device: Device; status: UserStatus }>("PUT", path, { status });
    return { device: toDevice(r.device), status: toStatus(r.status) };
  }

  // ----- Sync -----------------------------------------------------------------------------------

  /**
   * Pushes the user's current status to each of the user's live devices, then reports
   * (`POST /v1/users/{userId}/sync`, as `/presence sync`).
   *
   * @example
   * ```ts
   * const { synced, total } = await presence.sync("alice");
   * ```
   */
  async sync(userId: string): Promise<SyncStatus> {
    return toSync(await this.rest<SyncReport>("POST", userPath(userId, "/sync")));
  }

  /**
   * The user's sync report without pushing anything (`GET /v1/users/{userId}/sync`).
   *
   * @example
   * ```ts
   * const syncStatus = await presence.getSyncStatus("alice");
   * console.log(`Devices synced: ${syncStatus.synced}/${syncStatus.total}`, `Last sync: ${syncStatus.lastSync}`);
   * ```
   */
  async getSyncStatus(userId: string): Promise<SyncStatus> {
    return toSync(await this.rest<SyncReport>("GET", userPath(userId, "/sync")));
  }

  // ----- Events ---------------------------------------------------------------------------------

  /**
   * Calls `fn` on each `event` of any user; returns a function that stops. While a listener is
   * on, the observer connection watches every user (`status.watch` with `all:true`); after a
   * reconnect it watches again and reports the changes it missed. Use {@link PresenceService.ready}
   * to wait until the watch is in place.
   *
   * @example
   * ```ts
   * presence.on("statusChange", (userId, oldStatus, newStatus) => console.log(`${userId}: ${oldStatus} -> ${newStatus}`));
   * const stop = presence.on("offline", (userId) => console.log(`${userId} went offline`));
   * stop();
   * ```
   */
  on<K extends keyof ServiceEvents>(event: K, fn: (...args: ServiceEvents[K]) => void): () => void {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, (set = new Set()));
    set.add(fn as unknown as Listener);
    if (!this.watching && !this.closed) {
      this.watching = true;
      // Not connected yet: the `connected` handler watches.
      if (this.client.state === "connected") this.watchAll();
    }
    return () => this.off(event, fn);
  }

  /**
   * Removes a listener added with `on`; when none is left, the watch stops (`status.unwatch`).
   *
   * @example
   * ```ts
   * const log = (userId: string) => console.log(userId, "online");
   * presence.on("online", log);
   * presence.off("online", log);
   * ```
   */
  off<K extends keyof ServiceEvents>(event: K, fn: (...args: ServiceEvents[K]) => void): void {
    this.listeners.get(event)?.delete(fn as unknown as Listener);
    const any = [...this.listeners.values()].some((s) => s.size > 0);
    if (any || !this.watching) return;
    this.watching = false;
    this.watchRequest = null;
    this.known.clear();
    if (this.client.state === "connected") void this.client.request("status.unwatch", { all: true }).catch(() => undefined);
  }

  /**
   * Resolves once the observer connection is up and, while a listener is on, watching every
   * user: changes after that reach the listeners. Rejects with `timeout` after `timeoutMs`.
   *
   * @example
   * ```ts
   * presence.on("online", (userId) => console.log(userId, "online"));
   * await presence.ready(); // from here on, no user's change is missed
   * ```
   */
  async ready(timeoutMs = this.timeoutMs): Promise<void> {
    this.checkOpen();
    const end = Date.now() + timeoutMs;
    for (;;) {
      try {
        await this.client.waitForConnected(Math.max(1, end - Date.now()));
        if (this.watching && this.watchRequest) await this.watchRequest;
        return;
      } catch (e) {
        // The connection dropped before the watch was in place: the next one watches again.
        const dropped = e instanceof PresenceError && e.code === "disconnected";
        if (!dropped || this.closed || Date.now() >= end) throw this.fromClientError(e);
      }
    }
  }

  /**
   * Closes the observer connection; later calls reject with `closed`.
   *
   * @example
   * ```ts
   * process.on("SIGTERM", () => void presence.close());
   * ```
   */
  async close(): Promise<void> {
    this.closed = true;
    this.watching = false;
    await this.client.close();
  }

  // ----- Internals ------------------------------------------------------------------------------

  private watchAll(): void {
    // The first watch of this service only learns the state; a later one (a new connection after
    // a drop, a server restart) reports what changed since the last state known.
    const diff = this.watchRequest !== null;
    const request = this.client.request("status.watch", { all: true }).then((r) => {
      if (this.watchRequest === request) this.onSnapshot(r.statuses as UserStatus[], diff);
    });
    this.watchRequest = request;
    request.catch(() => undefined); // retried on the next connection; ready() reports it
  }

  private onSnapshot(statuses: UserStatus[], diff: boolean): void {
    const now = new Map(statuses.map((s) => [s.clientId, toStatus(s)]));
    if (diff) {
      for (const [id, was] of this.known) {
        if (!now.has(id)) this.changed(was.status, { ...was, status: "offline", activeDevice: null });
      }
      for (const [id, s] of now) this.changed(this.known.get(id)?.status ?? "offline", s);
    }
    this.known.clear();
    for (const [id, s] of now) this.known.set(id, s);
  }

  private onPush(push: StatusPush): void {
    if (!this.watching) return;
    const s = toStatus(push);
    if (s.status === "offline") this.known.delete(s.userId);
    else this.known.set(s.userId, s);
    this.changed(push.previous, s);
  }

  private changed(previous: StatusValue, s: ServiceStatus): void {
    if (previous === s.status) return;
    this.emit("statusChange", s.userId, previous, s.status, s);
    if (previous === "offline") this.emit("online", s.userId, s);
    if (s.status === "offline") this.emit("offline", s.userId, s);
  }

  private emit<K extends keyof ServiceEvents>(event: K, ...args: ServiceEvents[K]): void {
    for (const fn of [...(this.listeners.get(event) ?? [])]) {
      try {
        (fn as unknown as (...a: ServiceEvents[K]) => void)(...args);
      } catch {
        // A throwing listener must not break the others.
      }
    }
  }

  private checkOpen(): void {
    if (this.closed) throw new PresenceServiceError("closed", "the presence service is closed", null);
  }

  private fromClientError(e: unknown): PresenceServiceError {
    if (e instanceof PresenceServiceError) return e;
    if (e instanceof PresenceError) return new PresenceServiceError(e.code, e.message, null);
    return new PresenceServiceError("internal", String(e), null);
  }

  private async rest<T>(method: string, path: string, body?: unknown): Promise<T> {
    this.checkOpen();
    let res: Response;
    try {
      res = await fetch(this.base + path, {
        method,
        headers: { authorization: "Bearer " + this.apiKey, ...(body !== undefined ? { "content-type": "application/json" } : {}) },
        body: body !== undefined ? JSON.stringify(body) : undefined,
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (e) {
      const timedOut = (e as { name?: string }).name === "TimeoutError";
      throw new PresenceServiceError(
        timedOut ? "timeout" : "disconnected",
        `${method} ${path}: ${timedOut ? "no answer in " + this.timeoutMs + " ms" : "cannot reach " + this.base + " (" + String((e as { cause?: unknown }).cause ?? e) + ")"}`,
        null,
      );
    }
    const text = await res.text();
    let json: unknown = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      // not JSON: reported below when the status is an error
    }
    if (!res.ok) {
      const err = (json as { error?: { code?: string; message?: string } } | null)?.error;
      throw new PresenceServiceError(err?.code ?? "internal", err?.message ?? `${method} ${path}: HTTP ${res.status}`, res.status);
    }
    return json as T;
  }
}

/**
 * Makes the status-service design's presence service, backed by a presenced server: `url` and
 * `apiKey` say which (default: the `PRESENCED_URL` and `PRESENCED_API_KEY` environment
 * variables), `heartbeatIntervalMs` is the observer connection's heartbeat, and the design's
 * server-side options (`awayAfterMs`, `offlineAfterMs`, `storage`, `redisUrl`) are ignored with
 * a warning (once each) naming the server setting to use instead.
 *
 * @throws PresenceServiceError `bad_request` without a url or an API key, or with a url that is
 *   not http(s), or a `heartbeatIntervalMs` that is not a non-negative integer.
 * @example
 * ```ts
 * import { createPresenceService } from "@presenced/client/service";
 *
 * const presence = createPresenceService({
 *   url: "http://127.0.0.1:7070",
 *   apiKey: process.env.PRESENCED_API_KEY,
 *   heartbeatIntervalMs: 30000,
 * });
 * await presence.setStatus("alice", "away");
 * ```
 */
export function createPresenceService(options: PresenceServiceOptions = {}): PresenceService {
  try {
    return new PresenceService(options);
  } catch (e) {
    if (e instanceof PresenceServiceError || !(e instanceof PresenceError)) throw e;
    throw new PresenceServiceError(e.code, e.message, null);
  }
}
