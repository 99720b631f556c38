// Test helpers: start the real presenced binary on a free port (as clients/js/test/helpers.js
// does), connect members with the JS client the dashboard serves, launch Debian's Chromium.
import { spawn } from "node:child_process";
import { createHmac } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import WebSocket from "ws";
import { chromium } from "playwright-core";
import { PresenceClient } from "../web/presenced-client.js";

const here = dirname(fileURLToPath(import.meta.url));
export const BINARY = process.env.PRESENCED_BIN ?? resolve(here, "../../build/asan/src/server/presenced");
export const CHROMIUM = process.env.CHROMIUM_BIN ?? "/usr/bin/chromium";
export const OUTPUT_DIR = process.env.TEST_OUTPUT_DIR ?? resolve(here, "../../build/dashboard-screenshots");
export const API_KEY = "dashboard-test-api-key";
const SECRET = "dashboard-test-jwt-secret-0123456789abcdef";

/**
 * Starts presenced on a free port (or on `settings.listen`, e.g. the port of a server that was
 * killed, to bring it back); other settings become PRESENCED_* variables.
 */
export async function startServer(settings = {}) {
  const dataDir = mkdtempSync(join(tmpdir(), "presenced-dashboard-"));
  const env = {
    ...process.env,
    PRESENCED_LISTEN: "127.0.0.1:0",
    PRESENCED_DATA_DIR: dataDir,
    PRESENCED_LOG_LEVEL: "warn",
    PRESENCED_API_KEY: API_KEY,
    PRESENCED_JWT_SECRET: SECRET,
  };
  for (const [k, v] of Object.entries(settings)) env["PRESENCED_" + k.toUpperCase()] = String(v);
  const proc = spawn(BINARY, [], { env, stdio: ["ignore", "pipe", "inherit"] });
  const line = await new Promise((resolveLine, reject) => {
    let buf = "";
    proc.stdout.on("data", (chunk) => {
      buf += chunk;
      const nl = buf.indexOf("\n");
      if (nl >= 0) resolveLine(buf.slice(0, nl));
    });
    proc.on("exit", (code) => reject(new Error("presenced exited with " + code)));
  });
  const port = Number(line.split(" ")[3].split(":").pop());
  const http = `http://127.0.0.1:${port}`;
  const clients = [];
  const exited = () => proc.exitCode !== null || proc.signalCode !== null;
  return {
    port,
    http,
    url: `ws://127.0.0.1:${port}`,
    token(clientId) {
      const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
      const body = b64({ alg: "HS256", typ: "JWT" }) + "." + b64({ sub: clientId, exp: Math.floor(Date.now() / 1000) + 600 });
      return body + "." + createHmac("sha256", SECRET).update(body).digest("base64url");
    },
    /** A connected JS client (one device of `clientId`), closed by stop(). */
    async connect(clientId, device = "laptop") {
      const c = new PresenceClient({ url: this.url, token: this.token(clientId), device, WebSocket });
      clients.push(c);
      await c.waitForConnected();
      return c;
    },
    /** REST with the API key; resolves with {status, body}. */
    async rest(method, path, body) {
      const res = await fetch(http + path, {
        method,
        headers: { Authorization: "Bearer " + API_KEY, "Content-Type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await res.text();
      return { status: res.status, body: text ? JSON.parse(text) : null };
    },
    /** Ends the process now (SIGKILL: no clean close of anything); the clients stay, reconnecting. */
    async kill(signal = "SIGKILL") {
      if (exited()) return;
      proc.kill(signal);
      await new Promise((r) => (exited() ? r() : proc.on("exit", r)));
    },
    async stop() {
      await Promise.all(clients.map((c) => c.close().catch(() => {})));
      if (!exited()) proc.kill("SIGTERM");
      await new Promise((r) => (exited() ? r() : proc.on("exit", r)));
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Debian's Chromium, headless; nothing is downloaded. */
export function launchBrowser() {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

export function screenshotPath(name) {
  mkdirSync(OUTPUT_DIR, { recursive: true });
  return join(OUTPUT_DIR, name);
}

/** Runs `fn(item, index)` on at most `limit` items at a time. */
export async function inBatches(items, limit, fn) {
  for (let i = 0; i < items.length; i += limit) {
    await Promise.all(items.slice(i, i + limit).map((item, j) => fn(item, i + j)));
  }
}
