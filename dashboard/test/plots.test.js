// The arithmetic behind the dashboard's plots (web/plots.js), in Node without a browser: the
// Prometheus text parser, counter resets, histogram bucket deltas and the p99 of each interval.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  MetricsHistory,
  Ring,
  bucketIncrease,
  counterIncrease,
  histogramQuantile,
  niceMax,
  parseMetrics,
  readScrape,
} from "../web/plots.js";

const histogram = (name, buckets, sum) => {
  const lines = [`# TYPE ${name} histogram`];
  for (const [le, c] of buckets) lines.push(`${name}_bucket{le="${le}"} ${c}`);
  lines.push(`${name}_sum ${sum}`, `${name}_count ${buckets.at(-1)[1]}`);
  return lines.join("\n");
};

function scrapeText({ connections = 3, members = 5, events = 100, deliveries = 400, fanout = null } = {}) {
  return [
    "# HELP presenced_connections Open WebSocket sessions.",
    "# TYPE presenced_connections gauge",
    `presenced_connections ${connections}`,
    `presenced_members ${members}`,
    `presenced_events_total ${events}`,
    `presenced_deliveries_total ${deliveries}`,
    'presenced_disconnects_total{reason="client_closed"} 7',
    'presenced_build_info{version="0.1.0",commit="abc"} 1',
    fanout ? histogram("presenced_fanout_latency_seconds", fanout, 0.5) : "",
    "",
  ].join("\n");
}

test("parseMetrics reads names, labels (with escapes) and special values", () => {
  const f = parseMetrics(
    [
      "# HELP x_total A counter.",
      "x_total 12",
      'y{a="1",b="two \\"quoted\\""} 3.5 1700000000000',
      'h_bucket{le="+Inf"} 9',
      "z NaN",
      "w +Inf",
      "not a metric line",
      "",
    ].join("\n"),
  );
  assert.deepEqual(f.get("x_total"), [{ labels: {}, value: 12 }]);
  assert.deepEqual(f.get("y"), [{ labels: { a: "1", b: 'two "quoted"' }, value: 3.5 }]);
  assert.deepEqual(f.get("h_bucket"), [{ labels: { le: "+Inf" }, value: 9 }]);
  assert.ok(Number.isNaN(f.get("z")[0].value));
  assert.equal(f.get("w")[0].value, Infinity);
  assert.equal(f.has("not"), false);
});

test("readScrape: the plotted metrics, and null for a histogram the server does not export", () => {
  const s = readScrape(scrapeText());
  assert.deepEqual(s, { connections: 3, members: 5, events: 100, deliveries: 400, fanout: null });
  const withFanout = readScrape(scrapeText({ fanout: [["0.001", 4], ["0.01", 9], ["+Inf", 10]] }));
  assert.deepEqual(withFanout.fanout, [[0.001, 4], [0.01, 9], [Infinity, 10]]);
});

test("histogramQuantile follows PromQL's histogram_quantile", () => {
  // 100 observations: 50 up to 1 ms, 40 more up to 10 ms, 9 more up to 100 ms, 1 beyond.
  const b = [[0.001, 50], [0.01, 90], [0.1, 99], [Infinity, 100]];
  assert.equal(histogramQuantile(0.5, b), 0.001);
  assert.ok(Math.abs(histogramQuantile(0.7, b) - (0.001 + 0.009 * (20 / 40))) < 1e-12);
  assert.equal(histogramQuantile(0.99, b), 0.1);
  // The rank falls in the +Inf bucket: the highest finite bound.
  assert.equal(histogramQuantile(0.999, b), 0.1);
  // The first bucket starts at 0.
  assert.ok(Math.abs(histogramQuantile(0.25, b) - 0.0005) < 1e-12);
  assert.equal(histogramQuantile(0.99, [[0.001, 0], [Infinity, 0]]), null);
  assert.equal(histogramQuantile(0.99, null), null);
});

test("counters and histograms: a decrease is a reset", () => {
  assert.equal(counterIncrease(10, 15), 5);
  assert.equal(counterIncrease(10, 4), 4);
  const prev = [[0.001, 5], [0.01, 8], [Infinity, 8]];
  assert.deepEqual(bucketIncrease(prev, [[0.001, 6], [0.01, 12], [Infinity, 13]]), [[0.001, 1], [0.01, 4], [Infinity, 5]]);
  const afterRestart = [[0.001, 1], [0.01, 2], [Infinity, 2]];
  assert.deepEqual(bucketIncrease(prev, afterRestart), afterRestart);
});

test("MetricsHistory: gauges, rates per second, p99 per interval, gaps, resets", () => {
  const h = new MetricsHistory(1000, 60000);
  const fan = (a, b, c) => [["0.001", a], ["0.01", b], ["+Inf", c]];
  h.add(0, readScrape(scrapeText({ events: 100, deliveries: 400, fanout: fan(10, 10, 10) })));
  h.add(2000, readScrape(scrapeText({ connections: 4, events: 120, deliveries: 500, fanout: fan(10, 110, 110) })));
  h.add(4000, null); // the server did not answer
  h.add(6000, readScrape(scrapeText({ connections: 1, events: 5, deliveries: 5, fanout: fan(0, 0, 0) })));
  h.add(8000, readScrape(scrapeText({ connections: 1, events: 2, deliveries: 25, fanout: fan(0, 0, 0) })));

  const values = (key) => h.series(key, 8000).map((p) => p.v);
  assert.deepEqual(values("connections"), [3, 4, null, 1, 1]);
  // No rate for the first scrape, nor for the first after a gap; 120 -> 2 is a reset (+2 in 2 s).
  assert.deepEqual(values("events"), [null, 10, null, null, 1]);
  assert.deepEqual(values("deliveries"), [null, 50, null, null, 10]);
  // 100 fan-outs in (1 ms, 10 ms] during the second interval: p99 near 10 ms, in ms.
  const p99 = values("p99");
  assert.ok(Math.abs(p99[1] - (1 + 9 * (99 / 100))) < 1e-9, String(p99[1]));
  assert.deepEqual([p99[0], p99[2], p99[3], p99[4]], [null, null, null, null], "no fan-out, no p99");
  assert.equal(h.fanoutSeen, true);
  assert.equal(h.latest().values.connections, 1);

  // The window: points older than 60 s are not drawn.
  assert.deepEqual(h.series("connections", 65000).map((p) => p.t), [6000, 8000]);
});

test("the ring keeps the last `capacity` entries, oldest first", () => {
  const r = new Ring(3);
  for (let i = 1; i <= 5; i++) r.push(i);
  assert.deepEqual([...r], [3, 4, 5]);
  assert.equal(r.last(), 5);
  const h = new MetricsHistory(2000);
  assert.equal(h.ring.items.length, 15 * 60 / 2 + 2, "15 minutes of scrapes every 2 s");
});

test("niceMax rounds the y axis up to 1, 2 or 5 times a power of ten", () => {
  assert.equal(niceMax(0, 1), 1);
  assert.equal(niceMax(3, 1), 5);
  assert.equal(niceMax(5, 1), 5);
  assert.equal(niceMax(12, 1), 20);
  assert.equal(niceMax(0.03, 0.01), 0.05);
  assert.equal(niceMax(740, 1), 1000);
});
