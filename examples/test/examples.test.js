// Every example in examples/ runs against a freshly started real presenced (PRESENCED_BIN) as a
// child process, with the environment it documents, and must exit 0 and print what it saw.
// The examples import "@presenced/client": node_modules/@presenced/client links to ../clients/js
// (a `file:` dependency in ../package.json), built by test/ensure-client.mjs before these run.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { PresenceClient } from "@presenced/client";
import { startServer, unique, waitFor } from "../../clients/js/test/helpers.js";

const examplesDir = join(dirname(fileURLToPath(import.meta.url)), "..");

/** Starts examples/`name` with `env` (and nothing of ours named PRESENCED_*); `done` resolves on exit. */
function runExample(name, env, { cwd = examplesDir, timeoutMs = 20000 } = {}) {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("PRESENCED_")));
  const proc = spawn(process.execPath, [join(examplesDir, name)], { cwd, env: { ...base, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  const run = { proc, stdout: "", stderr: "" };
  proc.stdout.on("data", (c) => (run.stdout += c));
  proc.stderr.on("data", (c) => (run.stderr += c));
  const timer = setTimeout(() => proc.kill("SIGKILL"), timeoutMs);
  run.done = new Promise((resolve) =>
    proc.on("exit", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout: run.stdout, stderr: run.stderr });
    }),
  );
  return run;
}

function assertExitedOk(r) {
  assert.equal(r.code, 0, `exit ${r.code} ${r.signal ?? ""}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`);
}

/** Runs `body(server)` against a fresh server, and stops it. */
async function withServer(settings, body) {
  const server = await startServer(settings);
  try {
    return await body(server);
  } finally {
    await server.stop();
  }
}

const cases = {
  "who-is-here.mjs": () =>
    withServer({}, async (server) => {
      // Bob is already in the quick start's channel "room", which the example uses by default.
      const bob = new PresenceClient({ url: server.url, token: server.token("bob"), device: "phone" });
      try {
        await bob.channel("room").presence.enter({ name: "Bob" });
        const r = await runExample("who-is-here.mjs", { PRESENCED_URL: server.url, PRESENCED_TOKEN: server.token("example-user"), EXIT_AFTER_MS: "300" }).done;
        assertExitedOk(r);
        assert.match(r.stdout, /example-user online on 1 device\(s\), active: laptop/);
        assert.match(r.stdout, /bob online on 1 device\(s\), active: phone/);
      } finally {
        await bob.close();
      }
    }),

  "agent-worker.mjs": () =>
    withServer({}, async (server) => {
      const conv = unique("conv");
      const run = runExample("agent-worker.mjs", {
        PRESENCED_URL: server.url,
        PRESENCED_TOKEN: server.token("worker-1", undefined, ["worker"]),
        EXIT_AFTER_SESSIONS: "1",
      });
      const user = new PresenceClient({ url: server.url, token: server.token("ada") });
      try {
        await waitFor(() => run.stdout.includes("serving agent sessions"), 8000, "the worker to serve");
        const ch = user.channel("conversation:" + conv).presence;
        await ch.subscribe(() => {}); // keeps the local member set
        await ch.enter({ name: "Ada" });
        const events = [];
        user.on("session", (e) => events.push(e));
        await user.sessions.ensure(conv, { request: { topic: "demo" } });
        await waitFor(() => events.some((e) => e.action === "running"), 8000, "running");
        await waitFor(() => ch.members().some((m) => m.clientId === "agent-" + conv), 8000, "the agent member");
        await ch.update({ name: "Ada", say: "hi agent" });
        await waitFor(() => run.stdout.includes("ada: hi agent"), 8000, "the agent to hear");
        assert.deepEqual(await user.activity.list(), []); // the agent records under its worker, not the user
        await user.sessions.stop(conv);
        const r = await run.done; // EXIT_AFTER_SESSIONS=1: it exits once the session stopped
        assertExitedOk(r);
        assert.match(r.stdout, new RegExp(`\\[${conv}\\] running as agent-${conv} \\(request \\{"topic":"demo"\\}\\)`));
        assert.match(r.stdout, new RegExp(`\\[${conv}\\] stopped: stopped`));
      } finally {
        run.proc.kill("SIGTERM");
        await user.close();
      }
    }),

  "phoenix-presence.mjs": () =>
    withServer({}, async (server) => {
      const r = await runExample("phoenix-presence.mjs", { PRESENCED_URL: server.url, PRESENCED_SECRET: server.secret }).done;
      assertExitedOk(r);
      assert.match(r.stdout, /#2 update user-1 \{"name":"Alice","joined_at":\d+,"status":"typing"\}/);
      assert.match(r.stdout, /"phx_ref_prev"/);
      assert.match(r.stdout, /leave user-2 \(disconnected\)/);
      assert.match(r.stdout, /leave user-3 \(timeout\)/);
      assert.match(r.stdout, /ok: 7 events in order, serials 1\.\.7/);
    }),

  "ttl-cursors.mjs": () =>
    withServer({}, async (server) => {
      for (const schema of ["zod", "effect"]) {
        const r = await runExample("ttl-cursors.mjs", { PRESENCED_URL: server.url, PRESENCED_SECRET: server.secret, PRESENCED_SCHEMA: schema, PRESENCED_CHANNEL: unique("pr:cursors") }).done;
        assertExitedOk(r);
        assert.match(r.stdout, new RegExp(`cursors \\(${schema}\\): ada@130,350 grace@1,2`));
        assert.match(r.stdout, new RegExp(`ok: ${schema} schema, resume kept the entry, expiry reason expired`));
        assert.doesNotMatch(r.stdout, /bot@/); // its data failed the schema
      }
      // Its users must be distinct: without the secret it says so and fails.
      const r = await runExample("ttl-cursors.mjs", { PRESENCED_URL: server.url, PRESENCED_TOKEN: server.token("x") }, { cwd: tmpdir() }).done;
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /set PRESENCED_SECRET/);
    }),

  "status-service.mjs": () =>
    withServer({}, async (server) => {
      // The backend needs only the API key (it mints the devices' tokens over REST), and takes the
      // server's http:// base.
      const env = { PRESENCED_URL: `http://127.0.0.1:${server.port}`, PRESENCED_API_KEY: server.apiKey };
      const r = await runExample("status-service.mjs", env).done;
      assertExitedOk(r);
      assert.match(r.stdout, /^Status: online, Custom: null, Last seen: \d{4}-\d\d-\d\dT[\d:.]+Z, Device: (laptop|phone)$/m);
      assert.match(r.stdout, /^getStatuses: alice=online user-2=offline user-3=offline$/m);
      assert.match(r.stdout, /^Custom: Trading BTC$/m);
      assert.match(r.stdout, /^message in telegram-123$/m);
      assert.match(r.stdout, /^setDeviceStatus: phone dnd \(manual: true\), alice online$/m);
      assert.match(r.stdout, /^setDeviceStatus: laptop away, alice dnd$/m);
      assert.match(r.stdout, /^online in telegram-123: alice: online$/m);
      assert.match(r.stdout, /^Devices synced: 2\/2$/m);
      assert.match(r.stdout, /^event: alice went offline$/m);
      assert.match(r.stdout, /^ok: every call of the status service, 9 events$/m);
      // The design's server-side options: one warning each, naming the setting.
      assert.match(r.stderr, /option awayAfterMs is a server setting .*PRESENCED_AWAY_AFTER_MS/);
      assert.match(r.stderr, /option storage is a server setting .*PRESENCED_STORAGE/);
      assert.doesNotMatch(r.stderr, /redisUrl/);
      // Without the key it says what to set and fails.
      const bare = await runExample("status-service.mjs", { PRESENCED_URL: env.PRESENCED_URL }, { cwd: tmpdir() }).done;
      assert.notEqual(bare.code, 0);
      assert.match(bare.stderr, /set PRESENCED_API_KEY/);
    }),
};

test("every example in examples/ has a case here", () => {
  const examples = readdirSync(examplesDir).filter((f) => f.endsWith(".mjs")).sort();
  assert.deepEqual(examples, Object.keys(cases).sort());
});

for (const [name, run] of Object.entries(cases)) test(`examples/${name} runs against a real server`, run);
