// Live plots of the server's own /metrics (Prometheus text), plain SVG: connections, members,
// events/s, deliveries/s and fan-out p99 over the last 15 minutes. The page scrapes /metrics every
// few seconds (app.js), MetricsHistory keeps what each scrape gives in a ring, and every Plot is
// drawn again once per scrape. The parsing and the arithmetic here need no DOM (unit-tested in
// Node: dashboard/test/plots.test.js).

export const WINDOW_MS = 15 * 60 * 1000;
const MAX_DRAWN_POINTS = 600; // more samples than this in the window: the max of each slice is drawn
const VIEW_W = 300; // the SVG's own coordinates; it is stretched to its box (non-scaling stroke)
const VIEW_H = 60;

// ----- Prometheus text -----------------------------------------------------------------------------

/**
 * The samples of a Prometheus text exposition: name -> [{labels, value}]. Comments, blank lines and
 * lines that do not parse are skipped; values "+Inf", "-Inf" and "NaN" are numbers too.
 */
export function parseMetrics(text) {
  const out = new Map();
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!line || line[0] === "#") continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = {};
    if (m[3]) {
      for (const l of m[3].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"/g)) {
        labels[l[1]] = l[2].replace(/\\(.)/g, (_, c) => (c === "n" ? "\n" : c));
      }
    }
    const value = parseValue(m[4]);
    if (Number.isNaN(value) && m[4] !== "NaN") continue;
    let list = out.get(m[1]);
    if (!list) out.set(m[1], (list = []));
    list.push({ labels, value });
  }
  return out;
}

function parseValue(s) {
  if (s === "+Inf" || s === "Inf") return Infinity;
  if (s === "-Inf") return -Infinity;
  return Number(s);
}

/** The sum of a family's samples (all label sets), or null when the family is absent. */
function total(families, name) {
  const list = families.get(name);
  if (!list) return null;
  return list.reduce((s, x) => s + x.value, 0);
}

/**
 * A histogram's cumulative buckets, [[le, count]] by le ascending (the +Inf bucket last), summed
 * over any other labels; null when the histogram is absent.
 */
export function histogramBuckets(families, name) {
  const list = families.get(name + "_bucket");
  if (!list) return null;
  const byLe = new Map();
  for (const { labels, value } of list) {
    if (labels.le === undefined) continue;
    const le = parseValue(labels.le);
    if (Number.isNaN(le)) continue;
    byLe.set(le, (byLe.get(le) ?? 0) + value);
  }
  if (!byLe.size) return null;
  return [...byLe].sort((a, b) => a[0] - b[0]);
}

/**
 * The q-quantile of cumulative buckets (as PromQL's histogram_quantile): linear within the bucket
 * the rank falls in, the first bucket starting at 0, and the highest finite bound when the rank
 * falls in the +Inf bucket. Null when the buckets hold no observation.
 */
export function histogramQuantile(q, buckets) {
  if (!buckets?.length) return null;
  const count = buckets.at(-1)[1];
  if (!(count > 0)) return null;
  const rank = q * count;
  let lower = 0;
  let below = 0;
  for (let i = 0; i < buckets.length; i++) {
    const [le, c] = buckets[i];
    if (c >= rank) {
      if (le === Infinity) return i === 0 ? null : buckets[i - 1][0];
      if (i === 0 && le <= 0) return le;
      return c === below ? le : lower + (le - lower) * ((rank - below) / (c - below));
    }
    lower = le;
    below = c;
  }
  return lower;
}

/** How much a counter grew from `prev` to `cur`; a decrease is a reset (the counter restarted at 0). */
export function counterIncrease(prev, cur) {
  return cur >= prev ? cur - prev : cur;
}

/**
 * The observations between two scrapes of a histogram, as cumulative buckets: the difference of
 * each bucket, or `cur` itself when any bucket went down (a reset). Bounds missing from either side
 * are left out.
 */
export function bucketIncrease(prev, cur) {
  if (!prev) return cur;
  const before = new Map(prev);
  let reset = false;
  const out = [];
  for (const [le, c] of cur) {
    const b = before.get(le);
    if (b === undefined) continue;
    if (c < b) reset = true;
    out.push([le, c - b]);
  }
  if (reset || !out.length) return cur;
  // Cumulative counts never go down with le; a scrape taken mid-update might say otherwise.
  for (let i = 1; i < out.length; i++) out[i][1] = Math.max(out[i][1], out[i - 1][1]);
  return out;
}

/** What one scrape says, for the plots. Fields are null when the server does not export them. */
export function readScrape(text) {
  const f = parseMetrics(text);
  return {
    connections: total(f, "presenced_connections"),
    members: total(f, "presenced_members"),
    events: total(f, "presenced_events_total"),
    deliveries: total(f, "presenced_deliveries_total"),
    fanout: histogramBuckets(f, "presenced_fanout_latency_seconds"),
  };
}

// ----- History ---------------------------------------------------------------------------------------

/** A fixed-size ring: push() overwrites the oldest entry once full. */
export class Ring {
  constructor(capacity) {
    this.items = new Array(Math.max(1, capacity));
    this.start = 0;
    this.size = 0;
  }

  push(x) {
    const cap = this.items.length;
    if (this.size < cap) this.items[(this.start + this.size++) % cap] = x;
    else {
      this.items[this.start] = x;
      this.start = (this.start + 1) % cap;
    }
  }

  at(i) {
    return i < 0 || i >= this.size ? undefined : this.items[(this.start + i) % this.items.length];
  }

  last() {
    return this.at(this.size - 1);
  }

  *[Symbol.iterator]() {
    for (let i = 0; i < this.size; i++) yield this.at(i);
  }
}

/**
 * The last WINDOW_MS of scrapes, each reduced to one point per plot: {t, values: {connections,
 * members, events (per second), deliveries (per second), p99 (ms)}}. A failed scrape is a point
 * of nulls (a gap in every line); a rate needs the scrape right before it, so the first after a
 * gap has none. `fanoutSeen` says whether the last good scrape had the fan-out histogram.
 */
export class MetricsHistory {
  constructor(intervalMs, windowMs = WINDOW_MS) {
    this.windowMs = windowMs;
    this.ring = new Ring(Math.ceil(windowMs / Math.max(1, intervalMs)) + 2);
    this.prev = null; // {t, scrape} of the last good scrape, null after a failure
    this.fanoutSeen = false;
  }

  /** One scrape at time `t` (ms): its readScrape() result, or null when it failed. */
  add(t, scrape) {
    const v = { connections: null, members: null, events: null, deliveries: null, p99: null };
    if (scrape) {
      v.connections = scrape.connections;
      v.members = scrape.members;
      const p = this.prev;
      const dt = p ? (t - p.t) / 1000 : 0;
      if (p && dt > 0) {
        if (p.scrape.events !== null && scrape.events !== null) v.events = counterIncrease(p.scrape.events, scrape.events) / dt;
        if (p.scrape.deliveries !== null && scrape.deliveries !== null) v.deliveries = counterIncrease(p.scrape.deliveries, scrape.deliveries) / dt;
        if (p.scrape.fanout && scrape.fanout) {
          const q = histogramQuantile(0.99, bucketIncrease(p.scrape.fanout, scrape.fanout));
          v.p99 = q === null ? null : q * 1000;
        }
      }
      this.fanoutSeen = scrape.fanout !== null;
      this.prev = { t, scrape };
    } else {
      this.prev = null;
    }
    this.ring.push({ t, ok: scrape !== null, values: v });
  }

  /** The points of one series within the window ending at `now`: [{t, v}] (v null: a gap). */
  series(key, now) {
    const from = now - this.windowMs;
    const out = [];
    for (const p of this.ring) if (p.t >= from) out.push({ t: p.t, v: p.values[key] });
    return out;
  }

  /** The latest scrape's point, or undefined before the first. */
  latest() {
    return this.ring.last();
  }
}

// ----- Number formats ---------------------------------------------------------------------------------

function compact(v) {
  const a = Math.abs(v);
  if (a >= 1e9) return (v / 1e9).toFixed(a >= 1e10 ? 0 : 1) + "G";
  if (a >= 1e6) return (v / 1e6).toFixed(a >= 1e7 ? 0 : 1) + "M";
  if (a >= 1e4) return (v / 1e3).toFixed(a >= 1e5 ? 0 : 1) + "k";
  if (Number.isInteger(v)) return String(v);
  if (a >= 100) return v.toFixed(0);
  if (a >= 10) return v.toFixed(1);
  return v.toFixed(a >= 1 ? 1 : 2);
}

function millis(ms) {
  if (ms >= 1000) return compact(ms / 1000) + " s";
  if (ms >= 1 || ms === 0) return compact(ms) + " ms";
  return compact(ms * 1000) + " µs";
}

/** The smallest of 1, 2, 5 × 10^k that is at least v (at least `floor`). */
export function niceMax(v, floor) {
  const x = Math.max(v, floor);
  const p = 10 ** Math.floor(Math.log10(x));
  for (const m of [1, 2, 5, 10]) if (m * p >= x * (1 - 1e-9)) return m * p;
  return 10 * p;
}

/** The plots, in the order shown. `floor`: the least y-axis maximum (the unit's scale). */
export const PLOTS = [
  { key: "connections", title: "connections", format: compact, floor: 1, empty: "no data yet" },
  { key: "members", title: "members", format: compact, floor: 1, empty: "no data yet" },
  { key: "events", title: "events/s", format: (v) => compact(v) + "/s", floor: 1, empty: "no data yet" },
  { key: "deliveries", title: "deliveries/s", format: (v) => compact(v) + "/s", floor: 1, empty: "no data yet" },
  { key: "p99", title: "fan-out p99", format: millis, floor: 1, empty: "no fan-out data yet", needsFanout: true },
];

// ----- Drawing -------------------------------------------------------------------------------------------

const SVG = "http://www.w3.org/2000/svg";

function el(tag, attrs, ...children) {
  const e = tag === "svg" || tag === "path" || tag === "line" ? document.createElementNS(SVG, tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  e.append(...children);
  return e;
}

/** At most `max` points: each slice of the time range keeps its largest value (peaks stay). */
function thin(points, from, windowMs, max) {
  if (points.length <= max) return points;
  const out = [];
  let slot = -1;
  for (const p of points) {
    const s = Math.floor(((p.t - from) / windowMs) * max);
    const last = out.at(-1);
    if (s !== slot || !last) {
      out.push({ ...p });
      slot = s;
    } else if (p.v === null) {
      if (last.v !== null) out.push({ ...p }); // keep the gap
    } else if (last.v === null) {
      out.push({ ...p });
    } else if (p.v > last.v) {
      last.v = p.v;
    }
  }
  return out;
}

/**
 * One plot: a title, the current value, the y-axis maximum, a line over the last 15 minutes, and a
 * sentence instead of the line while there is nothing to draw. data-state on the figure is
 * "empty", "live" or "stale" (the server is unreachable: the value is blanked, the line greyed).
 */
export class Plot {
  constructor(def) {
    this.def = def;
    this.value = el("span", { class: "plot-value", "data-testid": "plot-value" }, "—");
    this.ymax = el("span", { class: "plot-ymax", "data-testid": "plot-ymax" }, "");
    this.line = el("path", { class: "plot-line", "data-testid": "plot-line", d: "", "vector-effect": "non-scaling-stroke" });
    this.fill = el("path", { class: "plot-fill", d: "" });
    this.svg = el(
      "svg",
      { viewBox: `0 0 ${VIEW_W} ${VIEW_H}`, preserveAspectRatio: "none", "data-testid": "plot-svg", "data-points": "0", "aria-hidden": "true" },
      el("line", { class: "plot-grid", x1: 0, x2: VIEW_W, y1: 0.5, y2: 0.5, "vector-effect": "non-scaling-stroke" }),
      el("line", { class: "plot-grid", x1: 0, x2: VIEW_W, y1: VIEW_H - 0.5, y2: VIEW_H - 0.5, "vector-effect": "non-scaling-stroke" }),
      this.fill,
      this.line,
    );
    this.empty = el("p", { class: "plot-empty", "data-testid": "plot-empty" }, def.empty);
    this.root = el(
      "figure",
      { class: "plot", "data-testid": "plot", "data-metric": def.key, "data-state": "empty" },
      el("figcaption", {}, el("span", { class: "plot-title" }, def.title), this.value),
      el("div", { class: "plot-area" }, this.ymax, this.svg, this.empty),
      el("div", { class: "plot-axis" }, el("span", {}, "15 min"), el("span", {}, "now")),
    );
  }

  /** Draws the window ending at `now` from `history`; `stale`: the last scrape failed. */
  draw(history, now, stale) {
    const { def } = this;
    const from = now - history.windowMs;
    const points = thin(history.series(def.key, now), from, history.windowMs, MAX_DRAWN_POINTS);
    const drawn = points.filter((p) => p.v !== null && Number.isFinite(p.v));
    const absent = def.needsFanout && !history.fanoutSeen && !drawn.length;
    let max = 0;
    for (const p of drawn) max = Math.max(max, p.v);
    const top = niceMax(max, def.floor);
    const x = (t) => (((t - from) / history.windowMs) * VIEW_W).toFixed(1);
    const y = (v) => (VIEW_H - (v / top) * (VIEW_H - 2) - 1).toFixed(1);
    let d = "";
    let fill = "";
    let run = [];
    const flush = () => {
      if (!run.length) return;
      d += run.map((p, i) => `${i ? "L" : "M"}${x(p.t)} ${y(p.v)}`).join("") + (run.length === 1 ? "h0" : "");
      fill += `M${x(run[0].t)} ${VIEW_H}` + run.map((p) => `L${x(p.t)} ${y(p.v)}`).join("") + `L${x(run.at(-1).t)} ${VIEW_H}Z`;
      run = [];
    };
    for (const p of points) {
      if (p.v === null || !Number.isFinite(p.v)) flush();
      else run.push(p);
    }
    flush();
    this.line.setAttribute("d", d);
    this.fill.setAttribute("d", fill);
    this.svg.setAttribute("data-points", String(drawn.length));
    this.ymax.textContent = drawn.length ? def.format(top) : "";
    this.empty.textContent = absent ? def.empty : stale && !drawn.length ? "no data: the server is unreachable" : def.empty;
    this.empty.hidden = drawn.length > 0;
    this.root.dataset.max = String(max);

    const current = history.latest()?.values[def.key];
    const state = stale ? "stale" : drawn.length ? "live" : "empty";
    this.root.dataset.state = state;
    if (!stale && current !== null && current !== undefined && Number.isFinite(current)) {
      this.value.textContent = def.format(current);
      this.root.dataset.value = String(current);
      this.value.title = "";
    } else {
      this.value.textContent = "—";
      delete this.root.dataset.value;
      this.value.title = stale ? "the server is unreachable" : def.needsFanout ? "no fan-out in the last interval" : "";
    }
  }
}
