// The presenced dashboard: live plots of the server's /metrics, who is online (the home view),
// channels with their occupancy, who is in a channel (grouped by user, with devices and live
// status), a user's page (status, devices, channels, activity), and a live event feed.
//
// REST, with the API key, for lists and details (polled). Everything live goes over one WebSocket
// connection of the JS client as an observer (the API key in its first frame: it is nobody, not
// online, not in `who`): the open channel's presence subscription and status watches of the
// users in view.
// /metrics (no key) is scraped every METRICS_MS for the plots (plots.js). When the server cannot
// be reached (a fetch fails, or the WebSocket is down) a "disconnected" banner shows and every
// number on the page is blanked or greyed until it is back.
//
// The page's query string may shorten the intervals (tests do): ?pollMs=N&metricsMs=N.
import { PresenceClient } from "./presenced-client.js";
import { VirtualList, syncChildren } from "./virtual-list.js";
import { MetricsHistory, PLOTS, Plot, readScrape } from "./plots.js";

const query = new URLSearchParams(location.search);
/** A positive number from the query string (at least `min`), else `fallback`. */
function setting(name, fallback, min) {
  const v = Number(query.get(name));
  return query.has(name) && Number.isFinite(v) && v >= min ? v : fallback;
}

const KEY_STORAGE = "presenced.apiKey";
const POLL_MS = setting("pollMs", 2000, 50); // REST lists and details
const METRICS_MS = setting("metricsMs", 2000, 50); // /metrics for the plots
const FEED_MAX = 500; // lines kept in the event feed
const ROW_HEIGHT = 36; // px, one user per row (style.css agrees)
const DEVICES_PER_ROW = 3;
const WATCH_EVERY_MS = 100; // how often the set of watched users follows the scroll position
const USER_CHANNELS_MAX = 100; // channels checked for the user page (one request each)
const USER_CHANNELS_PARALLEL = 8;

const selfId = "dashboard-" + [...crypto.getRandomValues(new Uint8Array(6))].map((b) => b.toString(16).padStart(2, "0")).join("");
let apiKey = null;
let client = null;
let view = null; // the open HomeView, ChannelView or UserView
let session = 0; // bumped by start/stop so a stale poll loop ends
const channelRows = new Map(); // channel name -> {tr, members, clients}
// Whether the server answers: REST (the last fetch reached it) and the WebSocket (not dropped).
const health = { rest: true, socket: true, offline: false };
let history = null; // MetricsHistory while started
let plots = []; // Plot, in PLOTS order

// ----- Small helpers -----------------------------------------------------------------------------

const $ = (testid) => document.querySelector(`[data-testid="${testid}"]`);
const enc = encodeURIComponent;
const channelHref = (name) => "#/channel/" + enc(name);
const userHref = (id) => "#/user/" + enc(id);
const byString = (a, b) => (a < b ? -1 : a > b ? 1 : 0);

/** An element with attributes (null/false ones left out) and children (strings become text). */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v !== null && v !== undefined && v !== false) el.setAttribute(k, v === true ? "" : String(v));
  }
  el.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return el;
}

function setText(el, text) {
  text = String(text);
  if (el.textContent !== text) el.textContent = text;
}

function short(data, max = 40) {
  const s = data === null || data === undefined ? "" : JSON.stringify(data);
  return s.length > max ? s.slice(0, max - 1) + "…" : s;
}

function ago(t) {
  if (t === null || t === undefined) return "never";
  const s = Math.max(0, Math.round((Date.now() - t) / 1000));
  const rel = s < 60 ? `${s} s` : s < 3600 ? `${Math.floor(s / 60)} min` : s < 86400 ? `${Math.floor(s / 3600)} h` : `${Math.floor(s / 86400)} d`;
  return `${new Date(t).toLocaleString()} (${rel} ago)`;
}

/** Runs `fn(item)` on at most `limit` items at a time. */
async function inBatches(items, limit, fn) {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

function binarySearch(sorted, id) {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid] < id) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

// ----- REST ---------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, code, message) {
    super(`${message} (${status} ${code})`);
    this.status = status;
    this.code = code;
  }
}

/**
 * fetch(), noting whether the server could be reached (a rejection is a network failure); only
 * while started (the key form reports its own failures).
 */
async function reach(path, init) {
  const mine = session;
  const note = (up) => apiKey !== null && mine === session && setReachable("rest", up);
  try {
    const res = await fetch(path, init);
    note(true);
    return res;
  } catch (err) {
    note(false);
    throw err;
  }
}

async function api(path, { method = "GET", body, key = apiKey } = {}) {
  const headers = { Authorization: "Bearer " + key };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await reach(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {
    // not JSON: reported below when it is an error
  }
  if (!res.ok) throw new ApiError(res.status, json?.error?.code ?? "http_error", json?.error?.message ?? res.statusText);
  return json;
}

// ----- Key, start and stop ------------------------------------------------------------------------

function showKeyForm(message = "") {
  $("main").hidden = true;
  $("forget-key").hidden = true;
  $("key-form").hidden = false;
  $("key-error").textContent = message;
  $("key-input").value = "";
  $("key-input").focus();
}

$("key-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const key = $("key-input").value.trim();
  $("key-submit").disabled = true;
  try {
    await api("/v1/channels", { key });
  } catch (err) {
    // Only a refusal or an unreachable server stops us; another error shows in the channel list.
    if (err.status === 401 || !(err instanceof ApiError)) {
      $("key-error").textContent = err.status === 401 ? "The server refused this key." : "Cannot reach the server: " + err.message;
      return;
    }
  } finally {
    $("key-submit").disabled = false;
  }
  localStorage.setItem(KEY_STORAGE, key);
  start(key);
});

$("forget-key").addEventListener("click", () => stop(""));

function start(key) {
  apiKey = key;
  const mine = ++session;
  $("key-form").hidden = true;
  $("main").hidden = false;
  $("forget-key").hidden = false;
  Object.assign(health, { rest: true, socket: true, offline: false });
  showOffline();
  startPlots(mine);
  client = new PresenceClient({ url: location.origin.replace(/^http/, "ws"), apiKey, device: "dashboard" });
  client.on("state", (state) => {
    showConnection(state);
    // "disconnected": it was connected and lost the socket (it reconnects by itself).
    if (state === "disconnected") setReachable("socket", false);
    else if (state === "connected") setReachable("socket", true);
  });
  client.on("error", (err) => showConnection(client.state, err));
  client.on("status", (s) => s.clientId !== selfId && feedStatus(s));
  showConnection(client.state);
  addEventListener("hashchange", route);
  route();
  const poll = async () => {
    await refreshChannels().catch(() => {});
    await refreshSessions().catch(() => {});
    await view?.poll().catch(() => {});
    if (session === mine) setTimeout(poll, POLL_MS);
  };
  void poll();
}

function stop(message) {
  session++;
  localStorage.removeItem(KEY_STORAGE);
  apiKey = null;
  removeEventListener("hashchange", route);
  view?.close();
  view = null;
  void client?.close();
  client = null;
  channelRows.clear();
  $("channel-list").replaceChildren();
  $("channels-empty").hidden = true;
  $("event-feed").replaceChildren();
  feed.pending = [];
  $("feed-empty").hidden = false;
  history = null;
  plots = [];
  $("plots").replaceChildren();
  Object.assign(health, { rest: true, socket: true, offline: false });
  showOffline();
  showConnection("closed");
  showKeyForm(message);
}

function showConnection(state, err) {
  const el = $("connection-state");
  el.dataset.state = state;
  const label = { connecting: "connecting…", connected: "live", disconnected: "reconnecting…", closed: "not connected" };
  el.textContent = label[state] ?? state;
  if (err) el.title = err.message;
  else if (state === "connected") el.title = "";
}

// ----- Disconnected: banner, and no stale number shown as current ---------------------------------

function setReachable(which, up) {
  health[which] = up;
  const offline = !health.rest || !health.socket;
  if (offline === health.offline) return;
  health.offline = offline;
  showOffline();
}

function showOffline() {
  const offline = health.offline;
  $("disconnected-banner").hidden = !offline;
  document.body.toggleAttribute("data-offline", offline);
  if (offline) {
    // What the page shows was true when the server was last reached: blank the numbers now.
    for (const r of channelRows.values()) {
      setText(r.members, "—");
      setText(r.clients, "—");
    }
    drawPlots();
  }
  view?.reachable(!offline);
}

// ----- Plots of /metrics (scraped every METRICS_MS, drawn once per scrape) ------------------------

function startPlots(mine) {
  history = new MetricsHistory(METRICS_MS);
  plots = PLOTS.map((def) => new Plot(def));
  $("plots").replaceChildren(...plots.map((p) => p.root));
  drawPlots();
  const scrape = async () => {
    let result = null;
    try {
      const res = await reach("/metrics", { cache: "no-store" });
      if (res.ok) result = readScrape(await res.text());
    } catch {
      // unreachable: a gap in every line (reach() noted it)
    }
    if (session !== mine) return;
    history.add(Date.now(), result);
    drawPlots();
    setTimeout(scrape, METRICS_MS);
  };
  void scrape();
}

function drawPlots() {
  if (!history) return;
  const now = Date.now();
  const stale = health.offline || history.latest()?.ok === false;
  for (const p of plots) p.draw(history, now, stale);
}

// ----- Channel list (polled) ----------------------------------------------------------------------

async function refreshChannels() {
  let channels;
  try {
    ({ channels } = await api("/v1/channels"));
  } catch (err) {
    if (err.status === 401) return stop("The server refused the saved key.");
    $("channels-error").textContent = "Channel list unavailable: " + err.message;
    return;
  }
  $("channels-error").textContent = "";
  $("channels-empty").hidden = channels.length > 0;
  const seen = new Set();
  const rows = channels.sort((a, b) => byString(a.channel, b.channel)).map((c) => {
    seen.add(c.channel);
    return channelRow(c);
  });
  for (const name of channelRows.keys()) if (!seen.has(name)) channelRows.delete(name);
  syncChildren($("channel-list"), rows);
  markSelected();
}

function channelRow({ channel, members, clients }) {
  let r = channelRows.get(channel);
  if (!r) {
    r = {
      members: h("td", { class: "num", "data-testid": "channel-members" }),
      clients: h("td", { class: "num", "data-testid": "channel-clients" }),
    };
    r.tr = h("tr", { "data-testid": "channel-row", "data-channel": channel }, h("td", {}, h("a", { href: channelHref(channel) }, channel)), r.members, r.clients);
    channelRows.set(channel, r);
  }
  setText(r.members, members);
  setText(r.clients, clients);
  return r.tr;
}

// ----- Agent sessions (polled) ---------------------------------------------------------------------

async function refreshSessions() {
  let sessions;
  try {
    ({ sessions } = await api("/v1/sessions"));
  } catch (err) {
    $("sessions-error").textContent = "Session list unavailable: " + err.message;
    return;
  }
  $("sessions-error").textContent = "";
  $("sessions-empty").hidden = sessions.length > 0;
  const rows = sessions.map((s) =>
    h(
      "tr",
      { "data-testid": "session-row", "data-conversation": s.conversationId, "data-state": s.state },
      h("td", {}, h("a", { href: channelHref("conversation:" + s.conversationId), title: s.agentId }, s.conversationId)),
      h("td", { class: "state-" + s.state, "data-testid": "session-state" }, s.state),
      h("td", { "data-testid": "session-worker" }, s.workerConnectionId ?? "none"),
      h("td", { title: new Date(s.lastActivityAt).toISOString() }, ago(s.lastActivityAt)),
    ),
  );
  syncChildren($("session-list"), rows);
}

function markSelected() {
  for (const [name, r] of channelRows) r.tr.classList.toggle("selected", view?.kind === "channel" && view.name === name);
}

// ----- Routes: #/ (who is online), #/channel/NAME, #/user/ID --------------------------------------

function route() {
  const m = location.hash.match(/^#\/(channel|user)\/(.+)$/);
  let kind = "home";
  let name = null;
  if (m) {
    try {
      [kind, name] = [m[1], decodeURIComponent(m[2])];
    } catch {
      [kind, name] = ["home", null]; // a malformed escape: home
    }
  }
  if (view && view.kind === kind && view.name === name) return;
  view?.close();
  view = kind === "channel" ? new ChannelView(name) : kind === "user" ? new UserView(name) : new HomeView();
  for (const k of ["home", "channel", "user"]) $(k + "-view").hidden = k !== kind;
  view.reachable(!health.offline);
  void view.open();
  markSelected();
}

// ----- Home: who is online (polled) -----------------------------------------------------------------

/** The users online (GET /v1/who: not offline), with status and text; a row opens the user. */
class HomeView {
  kind = "home";
  name = null;

  constructor() {
    this.closed = false;
    this.users = new Map(); // clientId -> STATUS
    this.order = []; // clientIds, sorted
    this.loaded = false;
    this.up = true;
    $("who-error").textContent = "";
    this.list = new VirtualList($("who-list"), {
      rowHeight: ROW_HEIGHT,
      rowKey: (i) => this.order[i],
      renderRow: (i) => this.row(this.order[i]),
    });
    this.render();
  }

  open() {
    return this.poll().catch(() => {});
  }

  close() {
    this.closed = true;
    this.list.destroy();
  }

  async poll() {
    if (!this.up) return; // the banner says why; the next poll after recovery fills the list
    let users;
    try {
      ({ users } = await api("/v1/who"));
    } catch (err) {
      if (!this.closed && err instanceof ApiError) $("who-error").textContent = "Who is online unavailable: " + err.message;
      return;
    }
    if (this.closed) return;
    $("who-error").textContent = "";
    const next = new Map();
    for (const u of users) if (u.clientId !== selfId) next.set(u.clientId, u);
    for (const [id, u] of next) {
      const old = this.users.get(id);
      if (old && (old.status !== u.status || old.text !== u.text || old.activeDevice !== u.activeDevice)) this.list.invalidate(id);
    }
    this.users = next;
    this.order = [...next.keys()].sort(byString);
    this.loaded = true;
    this.render();
  }

  reachable(up) {
    this.up = up;
    if (!up) {
      // Who was online then is not who is online now: clear it until the server answers again.
      this.users = new Map();
      this.order = [];
      this.loaded = false;
      this.list.invalidateAll();
    }
    this.render();
  }

  render() {
    const n = this.order.length;
    $("who-list").hidden = n === 0; // who-empty says why, instead of an empty box
    this.list.setCount(n);
    setText($("who-count"), !this.up ? "—" : this.loaded ? `${n} ${n === 1 ? "user" : "users"} online` : "…");
    const empty = $("who-empty");
    empty.hidden = n > 0;
    setText(empty, !this.up ? "Not known while the server is unreachable." : this.loaded ? "No users online." : "Loading…");
  }

  row(id) {
    const s = this.users.get(id);
    return h(
      "a",
      { class: "row who-row", "data-testid": "who-row", "data-client-id": id, href: userHref(id) },
      h("span", { class: "status " + s.status, "data-testid": "who-status" }, s.status),
      h("span", { class: "user", title: id }, id),
      h("span", { class: "status-text wide", "data-testid": "who-text", title: s.text ?? "" }, s.text ?? ""),
      h("span", { class: "active-device", "data-testid": "who-device", title: "the most recently active device" }, s.activeDevice ?? ""),
    );
  }
}

// ----- Channel view -------------------------------------------------------------------------------

/**
 * The members of one channel grouped by user, kept from the subscription's snapshot and events.
 * Only the rows in view are drawn (VirtualList), and only the users in view are watched for
 * status (a connection may watch 1,000 users), so a channel of 10,000 members stays cheap.
 */
class ChannelView {
  kind = "channel";

  constructor(name) {
    this.name = name;
    this.users = new Map(); // clientId -> Map(connectionId -> Member)
    this.order = []; // clientIds, sorted
    this.shown = this.order; // order, after the filter
    this.members = 0;
    this.filter = "";
    this.refilter = false;
    this.statuses = new Map(); // clientId -> STATUS, for the users watched now
    this.watches = new Map(); // clientId -> Promise of the function that stops the watch
    // Device names of the members' connections (the `devices` op), for the users watched now.
    this.deviceNames = new Map(); // connectionId -> device
    this.deviceLoads = new Map(); // clientId -> {again}: a devices read under way
    this.up = true;
    this.range = [0, 0];
    this.unsubscribe = null; // set while live
    this.subscribing = false;
    this.closed = false;
    this.frame = 0;
    this.watchTimer = 0;
    this.onStatus = (s) => {
      this.statuses.set(s.clientId, s);
      this.list.invalidate(s.clientId);
    };
    setText($("channel-name"), name);
    $("channel-error").textContent = "";
    this.filterInput = $("member-filter");
    this.filterInput.value = "";
    this.onFilter = () => {
      this.filter = this.filterInput.value.trim().toLowerCase();
      this.refilter = true;
      this.list.container.scrollTop = 0;
      this.render();
    };
    this.filterInput.addEventListener("input", this.onFilter);
    this.list = new VirtualList($("member-list"), {
      rowHeight: ROW_HEIGHT,
      rowKey: (i) => this.shown[i],
      renderRow: (i) => this.row(this.shown[i]),
      onRange: (first, last) => this.inView(first, last),
    });
    this.render();
  }

  async open() {
    const presence = client.channel(this.name).presence;
    // Until the connection is up, show what REST has (subscribe waits for the connection).
    if (client.state !== "connected") void this.loadSnapshot().catch(() => {});
    this.subscribing = true;
    try {
      const stop = await presence.subscribe((e) => this.onEvent(e));
      if (this.closed) return void stop().catch(() => {});
      this.unsubscribe = stop;
      $("channel-error").textContent = "";
      this.reset(presence.members());
    } catch (err) {
      $("channel-error").textContent = `Not live (${err.message}): refreshed every ${POLL_MS / 1000} s.`;
      await this.loadSnapshot().catch(() => {});
    } finally {
      this.subscribing = false;
    }
  }

  /** Called every POLL_MS: without a subscription, a REST snapshot, and another try at going live. */
  async poll() {
    if (this.closed || this.unsubscribe || this.subscribing) return;
    if (client.state === "connected") return this.open();
    await this.loadSnapshot();
  }

  async loadSnapshot() {
    const r = await api(`/v1/channels/${enc(this.name)}/presence`);
    if (!this.closed && !this.unsubscribe) this.reset(r.members);
  }

  close() {
    this.closed = true;
    cancelAnimationFrame(this.frame);
    clearTimeout(this.watchTimer);
    this.filterInput.removeEventListener("input", this.onFilter);
    this.list.destroy();
    for (const stop of this.watches.values()) stop.then((f) => f()).catch(() => {});
    this.unsubscribe?.().catch(() => {});
  }

  reset(members) {
    this.users.clear();
    for (const m of members) {
      let devices = this.users.get(m.clientId);
      if (!devices) this.users.set(m.clientId, (devices = new Map()));
      devices.set(m.connectionId, m);
    }
    this.members = members.length;
    this.order = [...this.users.keys()].sort(byString);
    this.refilter = true;
    this.list.invalidateAll();
    this.schedule();
  }

  onEvent(e) {
    if (this.closed) return;
    feedPresence(e);
    const m = e.member;
    let devices = this.users.get(m.clientId);
    if (e.action === "leave") {
      if (!devices?.delete(m.connectionId)) return;
      this.members--;
      if (devices.size === 0) {
        this.users.delete(m.clientId);
        this.order.splice(binarySearch(this.order, m.clientId), 1);
        this.refilter = true;
      }
    } else {
      if (!devices) {
        this.users.set(m.clientId, (devices = new Map()));
        this.order.splice(binarySearch(this.order, m.clientId), 0, m.clientId);
        this.refilter = true;
      }
      if (!devices.has(m.connectionId)) this.members++;
      devices.set(m.connectionId, m);
      // A connection of a user in view not seen before: read the user's devices again.
      if (!this.deviceNames.has(m.connectionId) && this.watches.has(m.clientId)) void this.loadDevices(m.clientId);
    }
    this.list.invalidate(m.clientId);
    this.schedule();
  }

  schedule() {
    if (!this.frame) {
      this.frame = requestAnimationFrame(() => {
        this.frame = 0;
        this.render();
      });
    }
  }

  render() {
    if (this.refilter) {
      this.refilter = false;
      const f = this.filter;
      this.shown = f ? this.order.filter((id) => id.toLowerCase().includes(f)) : this.order;
    }
    this.list.setCount(this.shown.length);
    const users = this.order.length;
    const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
    setText($("channel-counts"), !this.up ? "—" : `${plural(users, "user")}, ${plural(this.members, "member")}` + (this.filter ? `, ${this.shown.length} shown` : ""));
    const empty = $("members-empty");
    empty.hidden = this.shown.length > 0 || !this.up;
    setText(empty, users === 0 ? "No one is in this channel." : "No user matches the filter.");
  }

  /** The server went away (up false) or came back: the counts blank, the list greys (CSS). */
  reachable(up) {
    if (this.up === up) return;
    this.up = up;
    this.render();
  }

  row(id) {
    const devices = [...(this.users.get(id)?.values() ?? [])];
    const s = this.statuses.get(id);
    const more = devices.length - DEVICES_PER_ROW;
    return h(
      "div",
      { class: "row", "data-testid": "member-row", "data-client-id": id },
      h("span", { class: "status " + (s?.status ?? "unknown"), "data-testid": "member-status" }, s?.status ?? "…"),
      h("a", { class: "user", href: userHref(id), title: id }, id),
      h("span", { class: "status-text", "data-testid": "member-text", title: s?.text ?? "" }, s?.text ?? ""),
      h("span", { class: "count" }, devices.length === 1 ? "1 device" : `${devices.length} devices`),
      h("span", { class: "devices" }, devices.slice(0, DEVICES_PER_ROW).map((m) => deviceChip(m, this.deviceNames.get(m.connectionId))), more > 0 ? h("span", { class: "more" }, `+${more}`) : null),
    );
  }

  // The rows in view changed: the watched set follows, at most every WATCH_EVERY_MS.
  inView(first, last) {
    this.range = [first, last];
    if (!this.watchTimer) {
      this.watchTimer = setTimeout(() => {
        this.watchTimer = 0;
        void this.watchInView();
      }, WATCH_EVERY_MS);
    }
  }

  async watchInView() {
    if (this.closed || !this.unsubscribe) return;
    const want = new Set(this.shown.slice(...this.range));
    for (const [id, stop] of this.watches) {
      if (want.has(id)) continue;
      this.watches.delete(id);
      this.statuses.delete(id);
      for (const c of this.users.get(id)?.keys() ?? []) this.deviceNames.delete(c);
      stop.then((f) => f()).catch(() => {});
    }
    const added = [...want].filter((id) => !this.watches.has(id));
    if (!added.length) return;
    for (const id of added) this.watches.set(id, client.status.watch([id], this.onStatus));
    for (const id of added) void this.loadDevices(id);
    try {
      await Promise.all(added.map((id) => this.watches.get(id)));
      // Asked after the watch, on the same connection: pushes that follow are newer.
      for (const s of await client.status.get(added)) {
        if (this.closed || !this.watches.has(s.clientId)) continue;
        this.statuses.set(s.clientId, s);
        this.list.invalidate(s.clientId);
      }
    } catch (err) {
      for (const id of added) this.watches.delete(id);
      $("channel-error").textContent = "Status watch failed: " + err.message;
    }
  }

  /**
   * Reads the device name of each connection of user `id` (the `devices` op). One read per user at
   * a time: asked again meanwhile, it reads once more when the first is done.
   */
  loadDevices(id) {
    const running = this.deviceLoads.get(id);
    if (running) {
      running.again = true;
      return;
    }
    const load = { again: false };
    this.deviceLoads.set(id, load);
    void (async () => {
      try {
        const devices = await client.devices(id);
        if (this.closed || !this.watches.has(id)) return;
        for (const d of devices) this.deviceNames.set(d.connectionId, d.device);
        this.list.invalidate(id);
      } catch {
        // the chips keep their connection ids; the next enter or scroll asks again
      } finally {
        this.deviceLoads.delete(id);
        if (load.again && !this.closed && this.watches.has(id)) this.loadDevices(id);
      }
    })();
  }
}

/** A member's chip: the device's name (its connection id until known, and in the tooltip). */
function deviceChip(m, device) {
  const data = m.data === null || m.data === undefined ? "" : "\n" + JSON.stringify(m.data, null, 2);
  return h(
    "span",
    { class: "device", "data-testid": "member-device", "data-connection-id": m.connectionId, "data-device": device ?? null, title: `connection ${m.connectionId}${data}` },
    h("span", { class: device ? "device-name" : "device-name unknown" }, device ?? m.connectionId),
    m.data === null || m.data === undefined ? null : h("code", {}, short(m.data)),
  );
}

// ----- User view ----------------------------------------------------------------------------------

/**
 * One user: status (watched live), devices and recent activity (refreshed on a push and polled),
 * and the channels the user is present in (polled). No route lists a user's channels, so those are
 * found by asking each channel for the user's members (GET .../presence?clientId=), for the first
 * USER_CHANNELS_MAX channels by name only.
 */
class UserView {
  kind = "user";

  constructor(id) {
    this.name = id;
    this.closed = false;
    this.pushes = 0; // a REST status read that started before a push is older than it
    this.unwatch = null;
    this.deviceNames = new Map(); // connectionId -> device, from the last devices read
    this.channelsBusy = false;
    this.channelsError = "";
    this.up = true;
    this.onStatus = (s) => {
      this.pushes++;
      this.showStatus(s);
      void this.pollDetails().catch(() => {});
    };
    setText($("user-id"), id);
    for (const k of ["user-text", "user-last-seen", "user-active-device", "user-error", "user-channels-note"]) $(k).textContent = "";
    this.clearStatus();
    $("user-devices").replaceChildren();
    $("user-activity").replaceChildren();
    $("user-channels").replaceChildren();
    for (const k of ["user-devices-empty", "user-activity-empty", "user-channels-empty"]) $(k).hidden = true;
  }

  async open() {
    void this.poll().catch(() => {});
    try {
      this.unwatch = client.status.watch([this.name], this.onStatus);
      await this.unwatch;
      const [s] = await client.status.get([this.name]);
      if (!this.closed && s) this.showStatus(s);
    } catch (err) {
      this.unwatch = null;
      $("user-error").textContent = "Not live: " + err.message;
    }
  }

  close() {
    this.closed = true;
    this.unwatch?.then((f) => f()).catch(() => {});
  }

  poll() {
    void this.pollChannels();
    return this.pollDetails();
  }

  reachable(up) {
    if (this.up === up) return;
    this.up = up;
    if (!up) {
      this.pushes++; // a read under way now must not put the old status back
      this.clearStatus();
    }
  }

  clearStatus() {
    setText($("user-status"), "…");
    $("user-status").className = "status unknown";
    for (const k of ["user-text", "user-last-seen", "user-active-device"]) $(k).textContent = "";
  }

  async pollDetails() {
    const pushes = this.pushes;
    const base = `/v1/users/${enc(this.name)}`;
    const [status, devices, activity] = await Promise.allSettled([
      api(base + "/status"),
      api(base + "/devices"),
      api(base + "/activity?limit=50"),
    ]);
    if (this.closed) return;
    const errors = [];
    if (status.status === "fulfilled") {
      if (this.pushes === pushes) this.showStatus(status.value);
    } else errors.push("status: " + status.reason.message);
    if (devices.status === "fulfilled") this.showDevices(devices.value.devices);
    else errors.push("devices: " + devices.reason.message);
    if (activity.status === "fulfilled") this.showActivity(activity.value.activities);
    else errors.push("activity: " + activity.reason.message);
    if (this.channelsError) errors.push(this.channelsError);
    if (this.unwatch || errors.length) $("user-error").textContent = errors.join("; ");
  }

  /** The channels the user has members in, among the first USER_CHANNELS_MAX (one read at a time). */
  async pollChannels() {
    if (this.channelsBusy || this.closed) return;
    this.channelsBusy = true;
    try {
      const { channels, next } = await api(`/v1/channels?limit=${USER_CHANNELS_MAX}`);
      const found = [];
      let failed = 0;
      await inBatches(channels, USER_CHANNELS_PARALLEL, async (c) => {
        try {
          const r = await api(`/v1/channels/${enc(c.channel)}/presence?clientId=${enc(this.name)}`);
          if (r.members.length) found.push({ channel: c.channel, members: r.members });
        } catch {
          failed++;
        }
      });
      if (this.closed) return;
      this.channelsError = failed ? `channels: ${failed} of ${channels.length} could not be read` : "";
      this.showChannels(found.sort((a, b) => byString(a.channel, b.channel)), next !== undefined && next !== null);
    } catch (err) {
      this.channelsError = "channels: " + err.message;
    } finally {
      this.channelsBusy = false;
    }
  }

  showChannels(found, more) {
    const rows = found.map(({ channel, members }) => {
      const names = members.map((m) => this.deviceNames.get(m.connectionId) ?? m.connectionId);
      const latest = Math.max(...members.map((m) => m.timestamp));
      return h(
        "tr",
        { "data-testid": "user-channel", "data-channel": channel },
        h("td", {}, h("a", { href: channelHref(channel) }, channel)),
        h("td", { "data-testid": "user-channel-devices", title: members.map((m) => m.connectionId).join("\n") }, names.join(", ")),
        h("td", {}, ago(latest)),
      );
    });
    $("user-channels").replaceChildren(...rows);
    $("user-channels-empty").hidden = found.length > 0;
    setText($("user-channels-note"), more ? `Only the first ${USER_CHANNELS_MAX} channels (by name) were checked.` : "");
  }

  showStatus(s) {
    const el = $("user-status");
    setText(el, s.status);
    el.className = "status " + s.status;
    setText($("user-text"), s.text ?? "");
    setText($("user-last-seen"), ago(s.lastSeen));
    setText($("user-active-device"), s.activeDevice ?? "");
  }

  showDevices(devices) {
    for (const d of devices) this.deviceNames.set(d.connectionId, d.device);
    // Not while an operator is choosing a device's status: the rows would be rebuilt under the select.
    if ($("user-devices").contains(document.activeElement) && document.activeElement.tagName === "SELECT") return;
    $("user-devices-empty").hidden = devices.length > 0;
    const rows = devices.map((d) =>
      h(
        "tr",
        { "data-testid": "device-row", "data-connection-id": d.connectionId },
        h("td", {}, d.device),
        h("td", {}, h("code", {}, d.connectionId)),
        h(
          "td",
          {},
          h("span", { class: "status " + d.status, "data-testid": "device-status" }, d.status),
          d.manual ? h("span", { class: "badge", "data-testid": "device-manual", title: "set for this device by hand" }, "set") : null,
        ),
        h("td", {}, ago(d.lastSeen)),
        h("td", {}, d.active ? "yes" : ""),
        h("td", {}, this.deviceControl(d)),
      ),
    );
    $("user-devices").replaceChildren(...rows);
  }

  /**
   * A select that sets the device's own status (REST PUT .../devices/{connectionId}/status):
   * "automatic" is `online` (the device follows its idle time); away, dnd and offline hold.
   */
  deviceControl(d) {
    const choices = [
      ["online", "automatic"],
      ["away", "away"],
      ["dnd", "dnd"],
      ["offline", "offline (hidden)"],
    ];
    const current = d.manual ? d.status : "online";
    const select = h(
      "select",
      { "data-testid": "device-set", "aria-label": `status of ${d.device}` },
      choices.map(([value, label]) => {
        const o = h("option", { value }, label);
        o.selected = value === current;
        return o;
      }),
    );
    select.addEventListener("change", async () => {
      select.disabled = true;
      try {
        await api(`/v1/users/${enc(this.name)}/devices/${enc(d.connectionId)}/status`, { method: "PUT", body: { status: select.value } });
        $("user-error").textContent = "";
      } catch (err) {
        $("user-error").textContent = `device ${d.device}: ${err.message}`;
      }
      select.blur(); // the rows may now be rebuilt (showDevices)
      if (!this.closed) await this.pollDetails().catch(() => {});
    });
    return select;
  }

  showActivity(activities) {
    $("user-activity-empty").hidden = activities.length > 0;
    const rows = activities.map((a) =>
      h(
        "tr",
        { "data-testid": "activity-row" },
        h("td", {}, new Date(a.timestamp).toLocaleTimeString()),
        h("td", {}, a.kind),
        h("td", {}, a.channel === null ? "" : h("a", { href: channelHref(a.channel) }, a.channel)),
        h("td", {}, h("code", {}, short(a.data, 80))),
      ),
    );
    $("user-activity").replaceChildren(...rows);
  }
}

// ----- Event feed (newest first, FEED_MAX lines, drawn once per frame) ----------------------------

const feed = { pending: [], frame: 0 };

function feedAdd(kind, parts) {
  feed.pending.push({ kind, parts, at: Date.now() });
  if (feed.pending.length > 2 * FEED_MAX) feed.pending.splice(0, feed.pending.length - FEED_MAX);
  if (!feed.frame) feed.frame = requestAnimationFrame(flushFeed);
}

function flushFeed() {
  feed.frame = 0;
  const items = feed.pending.slice(-FEED_MAX).reverse();
  feed.pending = [];
  const list = $("event-feed");
  if (!items.length) return;
  $("feed-empty").hidden = true;
  list.prepend(...items.map(({ kind, parts, at }) => h("li", { "data-testid": "event", "data-kind": kind }, h("time", {}, new Date(at).toLocaleTimeString()), " ", ...parts)));
  while (list.childElementCount > FEED_MAX) list.lastElementChild.remove();
}

function feedPresence(e) {
  const m = e.member;
  feedAdd("presence", [
    h("b", {}, e.action),
    ` ${e.channel} `,
    h("a", { href: userHref(m.clientId) }, m.clientId),
    ` ${m.connectionId}`,
    e.reason ? ` (${e.reason})` : "",
    m.data === null || m.data === undefined ? "" : " " + short(m.data),
  ]);
}

function feedStatus(s) {
  feedAdd("status", [h("b", {}, "status"), " ", h("a", { href: userHref(s.clientId) }, s.clientId), `: ${s.previous} → ${s.status}`, s.text ? ` “${s.text}”` : ""]);
}

// ----- Boot ---------------------------------------------------------------------------------------

const saved = localStorage.getItem(KEY_STORAGE);
if (saved) start(saved);
else showKeyForm();
