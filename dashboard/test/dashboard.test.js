// Browser tests of the dashboard: Debian's Chromium (playwright-core) on the page the real
// presenced binary serves, with members driven by the JS client over WebSocket. Waits are for
// conditions (waitForFunction), never fixed sleeps.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { API_KEY, inBatches, launchBrowser, screenshotPath, startServer } from "./helpers.js";

const MEMBERS = Number(process.env.DASHBOARD_MEMBERS ?? 10000);
const WAIT_MS = 10000;

let server;
let browser;

before(async () => {
  // Room for MEMBERS connections besides the pages' own (DASHBOARD_MEMBERS=10000 works too).
  server = await startServer({ max_connections: MEMBERS + 1000 });
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

const tid = (id) => `[data-testid="${id}"]`;
const memberRow = (clientId) => `${tid("member-row")}[data-client-id="${clientId}"]`;
const channelRow = (name) => `${tid("channel-row")}[data-channel="${name}"]`;

/**
 * A fresh browser context (its own localStorage) on the dashboard at `hash`; with `key`, the key
 * is entered. Errors in the page fail the test (except those matching `allow`).
 */
async function openPage(t, { key = API_KEY, hash = "", allow = null } = {}) {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const page = await context.newPage();
  const problems = [];
  page.on("pageerror", (e) => problems.push("pageerror: " + e.message));
  page.on("console", (m) => {
    if (m.type() === "error" && !(allow && allow.test(m.text()))) problems.push("console: " + m.text());
  });
  t.after(() => context.close());
  await page.goto(server.http + "/" + hash);
  if (key) {
    await page.getByTestId("key-input").fill(key);
    await page.getByTestId("key-submit").click();
    await page.getByTestId("main").waitFor();
  }
  return { page, problems };
}

/** Waits until the element at `selector` has text `expected` (or contains it). */
async function waitText(page, selector, expected, { contains = false, timeout = WAIT_MS } = {}) {
  try {
    await page.waitForFunction(
      ([sel, exp, part]) => {
        const text = document.querySelector(sel)?.textContent;
        return text !== undefined && (part ? text.includes(exp) : text === exp);
      },
      [selector, expected, contains],
      { timeout },
    );
  } catch (e) {
    const actual = await page.evaluate((sel) => document.querySelector(sel)?.textContent ?? "(no such element)", selector);
    throw new Error(`${selector}: wanted ${contains ? "text containing" : "text"} ${JSON.stringify(expected)}, have ${JSON.stringify(actual)}`, { cause: e });
  }
}

/** Waits until some line of the event feed contains `text`. */
function waitFeed(page, text) {
  return page.waitForFunction(
    (t) => [...document.querySelectorAll('[data-testid="event"]')].some((li) => li.textContent.includes(t)),
    text,
    { timeout: WAIT_MS },
  );
}

const waitLive = (page) => page.locator(`${tid("connection-state")}[data-state="connected"]`).waitFor({ timeout: WAIT_MS });

test("GET / and /dashboard/FILE serve the embedded files, without a key", async () => {
  const index = await fetch(server.http + "/");
  assert.equal(index.status, 200);
  assert.match(index.headers.get("content-type"), /^text\/html/);
  assert.equal(await index.text(), readFileSync(new URL("../web/index.html", import.meta.url), "utf8"));
  for (const file of ["app.js", "virtual-list.js", "presenced-client.js"]) {
    const res = await fetch(server.http + "/dashboard/" + file);
    assert.equal(res.status, 200, file);
    assert.match(res.headers.get("content-type"), /^text\/javascript/, file);
    // The binary embeds the files of the tree it was built from.
    assert.equal(await res.text(), readFileSync(new URL("../web/" + file, import.meta.url), "utf8"), file);
  }
  const css = await fetch(server.http + "/dashboard/style.css");
  assert.match(css.headers.get("content-type"), /^text\/css/);
  assert.equal((await fetch(server.http + "/dashboard/missing.js")).status, 404);
  assert.equal((await fetch(server.http + "/dashboard/")).status, 404);
});

test("the API key: a wrong one is refused, the right one is remembered until forgotten", async (t) => {
  const { page, problems } = await openPage(t, { key: null, allow: /401/ });
  await page.getByTestId("key-input").fill("not-the-key");
  await page.getByTestId("key-submit").click();
  await waitText(page, tid("key-error"), "refused", { contains: true });
  assert.equal(await page.evaluate(() => localStorage.getItem("presenced.apiKey")), null);

  await page.getByTestId("key-input").fill(API_KEY);
  await page.getByTestId("key-submit").click();
  await waitLive(page);
  assert.equal(await page.evaluate(() => localStorage.getItem("presenced.apiKey")), API_KEY);

  await page.reload();
  await waitLive(page);
  assert.equal(await page.getByTestId("key-form").isHidden(), true, "no key asked after a reload");

  await page.getByTestId("forget-key").click();
  await page.getByTestId("key-form").waitFor();
  assert.equal(await page.getByTestId("main").isHidden(), true);
  assert.equal(await page.evaluate(() => localStorage.getItem("presenced.apiKey")), null);
  assert.deepEqual(problems, []);
});

test("channels and members follow presence live: enter, second device, status, leave", async (t) => {
  const room = "room-live";
  const alice = await server.connect("alice", "laptop");
  await alice.channel(room).presence.enter({ mood: "happy" });
  const { page, problems } = await openPage(t);
  await waitLive(page);

  // The channel list: the channel appears with its occupancy, and follows it without a reload.
  await waitText(page, `${channelRow(room)} ${tid("channel-members")}`, "1");
  await waitText(page, `${channelRow(room)} ${tid("channel-clients")}`, "1");
  const bob = await server.connect("bob", "phone");
  await bob.channel(room).presence.enter();
  await waitText(page, `${channelRow(room)} ${tid("channel-members")}`, "2");
  await waitText(page, `${channelRow(room)} ${tid("channel-clients")}`, "2");

  // The channel view: one row per user, with devices and status.
  await page.click(`${channelRow(room)} a`);
  assert.equal(new URL(page.url()).hash, "#/channel/room-live");
  await waitText(page, tid("channel-counts"), "2 users, 2 members");
  await waitText(page, `${memberRow("alice")} ${tid("member-device")}`, alice.info.connectionId, { contains: true });
  await waitText(page, `${memberRow("alice")} ${tid("member-device")}`, '{"mood":"happy"}', { contains: true });
  await waitText(page, `${memberRow("alice")} ${tid("member-status")}`, "online");

  // A second device of alice: same row, two devices.
  const alicePhone = await server.connect("alice", "phone");
  await alicePhone.channel(room).presence.enter({ mood: "mobile" });
  await waitText(page, tid("channel-counts"), "2 users, 3 members");
  assert.equal(await page.locator(`${memberRow("alice")} ${tid("member-device")}`).count(), 2);
  await waitFeed(page, `enter ${room} alice ${alicePhone.info.connectionId}`);

  // A status set over REST reaches the page through the status watch.
  const put = await server.rest("PUT", "/v1/users/alice/status", { status: "dnd", text: "focus" });
  assert.equal(put.status, 200);
  await waitText(page, `${memberRow("alice")} ${tid("member-status")}`, "dnd");
  await waitText(page, `${memberRow("alice")} ${tid("member-text")}`, "focus");
  await waitFeed(page, "status alice: online → dnd");

  // Leaving: bob's row goes; alice's phone closes and alice keeps one device.
  await bob.channel(room).presence.leave();
  await page.locator(memberRow("bob")).waitFor({ state: "detached", timeout: WAIT_MS });
  await waitFeed(page, `leave ${room} bob ${bob.info.connectionId} (left)`);
  await alicePhone.close();
  await waitText(page, tid("channel-counts"), "1 user, 1 member");
  assert.equal(await page.locator(`${memberRow("alice")} ${tid("member-device")}`).count(), 1);
  await waitText(page, `${channelRow(room)} ${tid("channel-members")}`, "1");

  await server.rest("PUT", "/v1/users/alice/status", { status: "online", text: null });
  await waitText(page, `${memberRow("alice")} ${tid("member-status")}`, "online");
  assert.deepEqual(problems, []);
});

test("agent sessions are listed with their state and worker, and leave the list when stopped", async (t) => {
  const { page, problems } = await openPage(t);
  await page.locator(tid("sessions-empty")).waitFor({ state: "visible", timeout: WAIT_MS });
  const conv = "dash-conv-" + process.pid;
  const put = await server.rest("PUT", "/v1/sessions/" + conv, { request: { q: 1 } });
  assert.equal(put.status, 201);
  const row = `${tid("session-row")}[data-conversation="${conv}"]`;
  await page.locator(row).waitFor({ timeout: WAIT_MS });
  assert.equal(await page.locator(`${row} ${tid("session-state")}`).textContent(), "starting");
  assert.equal(await page.locator(`${row} ${tid("session-worker")}`).textContent(), "none");
  assert.equal(await page.locator(tid("sessions-empty")).isHidden(), true);
  const del = await server.rest("DELETE", "/v1/sessions/" + conv);
  assert.equal(del.status, 204);
  await page.locator(row).waitFor({ state: "detached", timeout: WAIT_MS });
  assert.deepEqual(problems, []);
});

test("the user page shows status, devices and activity, and follows status pushes", async (t) => {
  const carol = await server.connect("carol", "tablet");
  await carol.channel("room-user").presence.enter();
  await carol.activity.record("typing", { channel: "room-user", data: { field: "message" } });
  assert.equal((await server.rest("PUT", "/v1/users/carol/status", { status: "away", text: "lunch" })).status, 200);

  const { page, problems } = await openPage(t, { hash: "#/user/carol" });
  await waitLive(page);
  await waitText(page, tid("user-id"), "carol");
  await waitText(page, tid("user-status"), "away");
  await waitText(page, tid("user-text"), "lunch");
  await waitText(page, tid("user-active-device"), "tablet");
  await waitText(page, tid("user-last-seen"), "ago", { contains: true });
  await waitText(page, `${tid("device-row")}[data-connection-id="${carol.info.connectionId}"]`, "tablet", { contains: true });
  await waitText(page, tid("activity-row"), "typing", { contains: true });

  // Live: a status change, and a new device (picked up by the next refresh).
  await server.rest("PUT", "/v1/users/carol/status", { status: "dnd", text: "deep work" });
  await waitText(page, tid("user-status"), "dnd");
  await waitText(page, tid("user-text"), "deep work");
  const phone = await server.connect("carol", "phone");
  await page.locator(`${tid("device-row")}[data-connection-id="${phone.info.connectionId}"]`).waitFor({ timeout: WAIT_MS });
  await waitFeed(page, "status carol: away → dnd");
  await page.screenshot({ path: screenshotPath("user-page.png") });
  assert.deepEqual(problems, []);
});

test("the virtual list keeps 10,000 synthetic rows cheap", async (t) => {
  const { page, problems } = await openPage(t);
  const r = await page.evaluate(async () => {
    const { VirtualList } = await import("/dashboard/virtual-list.js");
    const box = document.createElement("div");
    box.style.cssText = "position:fixed;top:0;left:0;width:300px;height:400px;overflow:auto;background:#fff";
    document.body.append(box);
    let drawn = 0;
    const t0 = performance.now();
    const list = new VirtualList(box, {
      rowHeight: 20,
      renderRow: (i) => {
        drawn++;
        const el = document.createElement("div");
        el.className = "synthetic";
        el.style.height = "20px";
        el.textContent = "row " + i;
        return el;
      },
    });
    list.setCount(10000);
    const firstMs = performance.now() - t0;
    const rows = () => [...box.querySelectorAll(".synthetic")].map((e) => e.textContent);
    const first = rows();
    const height = box.scrollHeight;
    // Scroll through the whole list a page at a time, rendering each position.
    let worstStepMs = 0;
    for (let top = 0; top <= height; top += 400) {
      const s = performance.now();
      box.scrollTop = top;
      list.render();
      worstStepMs = Math.max(worstStepMs, performance.now() - s);
    }
    const last = rows();
    // Rendering again without a change draws nothing; an invalidated row is drawn once.
    let before = drawn;
    list.render();
    const redrawnUnchanged = drawn - before;
    before = drawn;
    list.invalidate(9995);
    list.render();
    const redrawnInvalidated = drawn - before;
    list.destroy();
    box.remove();
    return { firstMs, worstStepMs, first, last, height, redrawnUnchanged, redrawnInvalidated };
  });
  t.diagnostic(`virtual list, 10,000 rows: first render ${r.firstMs.toFixed(1)} ms, worst scroll step ${r.worstStepMs.toFixed(1)} ms`);
  assert.equal(r.height, 200000);
  assert.equal(r.first[0], "row 0");
  assert.ok(r.first.length <= 20 + 8 + 1, `rows in the DOM at the top: ${r.first.length}`);
  assert.equal(r.last.at(-1), "row 9999");
  assert.ok(r.last.length <= 20 + 2 * 8 + 1, `rows in the DOM at the bottom: ${r.last.length}`);
  assert.equal(r.redrawnUnchanged, 0);
  assert.equal(r.redrawnInvalidated, 1);
  assert.ok(r.firstMs < 100, `first render took ${r.firstMs} ms`);
  assert.ok(r.worstStepMs < 100, `a scroll step took ${r.worstStepMs} ms`);
  assert.deepEqual(problems, []);
});

test(`a channel of ${MEMBERS} members stays responsive: live enters, filter, scroll, snapshot`, async (t) => {
  const ch = "big";
  const { page, problems } = await openPage(t, { hash: "#/channel/big" });
  await waitLive(page);
  await waitText(page, tid("channel-counts"), "0 users, 0 members");
  // Watch the page's main thread while members arrive: the longest task it ran.
  await page.evaluate(() => {
    window.__longestTask = 0;
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) window.__longestTask = Math.max(window.__longestTask, e.duration);
    }).observe({ type: "longtask" });
  });

  // MEMBERS members: the first 2·D from D users with two devices each, the rest one device each.
  const twoDevices = Math.floor(MEMBERS / 5);
  const users = MEMBERS - twoDevices;
  const pad = (n) => String(n).padStart(5, "0");
  const members = Array.from({ length: MEMBERS }, (_, k) => (k < 2 * twoDevices ? { id: `u${pad(k >> 1)}`, device: k % 2 ? "phone" : "laptop" } : { id: `u${pad(k - twoDevices)}`, device: "laptop" }));
  const t0 = Date.now();
  await inBatches(members, 100, async (m, k) => {
    const c = await server.connect(m.id, m.device);
    await c.channel(ch).presence.enter({ n: k });
  });
  const enteredMs = Date.now() - t0;
  await waitText(page, tid("channel-counts"), `${users} users, ${MEMBERS} members`, { timeout: 60000 });
  const liveMs = Date.now() - t0;
  const longestTask = await page.evaluate(() => window.__longestTask);
  const inDom = await page.locator(tid("member-row")).count();
  assert.ok(inDom > 0 && inDom <= 60, `member rows in the DOM: ${inDom}`);

  // The users in view get their status (watched), the others are not watched.
  await waitText(page, `${memberRow("u00000")} ${tid("member-status")}`, "online");

  // Filter: from a keystroke to the rows drawn, measured in the page.
  const filterMs = await page.evaluate(async () => {
    const input = document.querySelector('[data-testid="member-filter"]');
    const t = performance.now();
    input.value = "u01234";
    input.dispatchEvent(new Event("input"));
    await new Promise((r) => requestAnimationFrame(() => setTimeout(r)));
    return performance.now() - t;
  });
  await waitText(page, tid("channel-counts"), `${users} users, ${MEMBERS} members, 1 shown`);
  assert.equal(await page.locator(tid("member-row")).count(), 1);
  await page.locator(memberRow("u01234")).waitFor();

  // Clear the filter and scroll to the end: the last user is drawn.
  const last = `u${pad(users - 1)}`;
  const scrollMs = await page.evaluate(async () => {
    const input = document.querySelector('[data-testid="member-filter"]');
    input.value = "";
    input.dispatchEvent(new Event("input"));
    const list = document.querySelector('[data-testid="member-list"]');
    const t = performance.now();
    list.scrollTop = list.scrollHeight;
    await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(() => setTimeout(r))));
    return performance.now() - t;
  });
  await page.locator(memberRow(last)).waitFor({ timeout: WAIT_MS });
  await waitText(page, `${memberRow(last)} ${tid("member-status")}`, "online");

  // The channel list's occupancy (polled) catches up.
  await waitText(page, `${channelRow(ch)} ${tid("channel-members")}`, String(MEMBERS));

  // Back to users with two devices; one of them in view changes status, which shows live.
  const focusIndex = Math.min(505, users - 1);
  const focus = `u${pad(focusIndex)}`;
  await page.evaluate((top) => {
    document.querySelector('[data-testid="member-list"]').scrollTop = top;
  }, (focusIndex - 5) * 36);
  await waitText(page, `${memberRow(focus)} ${tid("member-status")}`, "online");
  await server.rest("PUT", `/v1/users/${focus}/status`, { status: "away", text: "in a meeting" });
  await waitText(page, `${memberRow(focus)} ${tid("member-status")}`, "away");
  await waitText(page, `${memberRow(focus)} ${tid("member-text")}`, "in a meeting");
  assert.equal(await page.locator(`${memberRow(focus)} ${tid("member-device")}`).count(), focusIndex < twoDevices ? 2 : 1);
  await page.waitForFunction(
    () => {
      const box = document.querySelector('[data-testid="member-list"]').getBoundingClientRect();
      const visible = [...document.querySelectorAll('[data-testid="member-status"]')].filter((e) => {
        const r = e.getBoundingClientRect();
        return r.top >= box.top && r.bottom <= box.bottom;
      });
      return visible.length > 0 && visible.every((e) => e.textContent !== "…");
    },
    null,
    { timeout: WAIT_MS },
  );
  await page.screenshot({ path: screenshotPath(`channel-${MEMBERS}-members.png`) });

  // A fresh page on the full channel: the snapshot path.
  const t1 = Date.now();
  await page.reload();
  await waitText(page, tid("channel-counts"), `${users} users, ${MEMBERS} members`, { timeout: 30000 });
  const snapshotMs = Date.now() - t1;

  t.diagnostic(
    `${MEMBERS} members (${users} users): entered in ${enteredMs} ms, all shown live after ${liveMs} ms, ` +
      `longest main-thread task ${longestTask.toFixed(0)} ms, filter ${filterMs.toFixed(1)} ms, ` +
      `scroll to the end ${scrollMs.toFixed(1)} ms, reload to full list ${snapshotMs} ms, ${inDom} rows in the DOM`,
  );
  assert.ok(filterMs < 500, `filtering took ${filterMs} ms`);
  assert.ok(scrollMs < 500, `scrolling took ${scrollMs} ms`);
  assert.ok(longestTask < 1000, `the page was blocked for ${longestTask} ms`);
  assert.deepEqual(problems, []);
});
