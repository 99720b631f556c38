// Test helpers: start the real presenced binary on a free port, mint tokens, wait for conditions.
import { spawn } from "node:child_process";
import { createHmac } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
export const BINARY = process.env.PRESENCED_BIN ?? resolve(here, "../../../build/asan/src/server/presenced");

export async function startServer(settings = {}) {
  const dataDir = mkdtempSync(join(tmpdir(), "presenced-js-"));
  const env = { ...process.env, PRESENCED_LISTEN: "127.0.0.1:0", PRESENCED_DATA_DIR: dataDir, PRESENCED_LOG_LEVEL: "warn" };
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
  const secret = readFileSync(join(dataDir, "jwt-secret"), "utf8").trim();
  const apiKey = readFileSync(join(dataDir, "api-key"), "utf8").trim();
  return {
    port,
    apiKey,
    url: `ws://127.0.0.1:${port}`,
    secret,
    token(clientId, channels, roles) {
      const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
      const claims = { sub: clientId, exp: Math.floor(Date.now() / 1000) + 600 };
      if (channels) claims.channels = channels;
      if (roles) claims.roles = roles;
      const body = b64({ alg: "HS256", typ: "JWT" }) + "." + b64(claims);
      return body + "." + createHmac("sha256", secret).update(body).digest("base64url");
    },
    async stop() {
      proc.kill("SIGTERM");
      await new Promise((r) => (proc.exitCode !== null ? r() : proc.on("exit", r)));
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Resolves as soon as `predicate()` is truthy; rejects after `timeoutMs`. */
export async function waitFor(predicate, timeoutMs = 8000, what = "condition") {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = predicate();
    if (v) return v;
    if (Date.now() > end) throw new Error("timed out waiting for " + what);
    await new Promise((r) => setTimeout(r, 10));
  }
}

let counter = 0;
export function unique(prefix = "ch") {
  return `${prefix}-${process.pid}-${++counter}`;
}
