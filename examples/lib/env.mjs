// What the examples share: the server to use and the tokens to connect with, from the environment.
//
//   PRESENCED_URL     the server (default ws://127.0.0.1:7070, where `make run` listens)
//   PRESENCED_SECRET  the server's token secret: each example user gets a token minted with it
//                     (default: the file PRESENCED_SECRET_FILE, else presenced-data/jwt-secret,
//                     which the server writes on first start)
//   PRESENCED_TOKEN   without a secret: one token that every client of the example uses (then
//                     all of them are the same user, on several connections)
//   PRESENCED_API_KEY the server's API key, for the examples that act as a backend (REST, an
//                     observer): default the file PRESENCED_API_KEY_FILE, else presenced-data/api-key
import { createHmac } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";

export const serverUrl = process.env.PRESENCED_URL ?? "ws://127.0.0.1:7070";
/** The same server's HTTP base (for REST): PRESENCED_URL with ws(s):// read as http(s)://. */
export const httpUrl = new URL(serverUrl.replace(/^ws/, "http")).origin;

/** The server's API key (PRESENCED_API_KEY, else the file the server writes on first start). */
export function apiKey() {
  if (process.env.PRESENCED_API_KEY) return process.env.PRESENCED_API_KEY;
  const file = process.env.PRESENCED_API_KEY_FILE ?? "presenced-data/api-key";
  if (existsSync(file)) return readFileSync(file, "utf8").trim();
  throw new Error("set PRESENCED_API_KEY (the server's api-key)");
}

function secret() {
  if (process.env.PRESENCED_SECRET) return process.env.PRESENCED_SECRET;
  const file = process.env.PRESENCED_SECRET_FILE ?? "presenced-data/jwt-secret";
  return existsSync(file) ? readFileSync(file, "utf8").trim() : null;
}

/**
 * A token for `clientId` (HS256 with the server's secret, valid for an hour), or PRESENCED_TOKEN
 * (unless `distinct`: an example whose clients must be different users needs the secret).
 */
export function tokenFor(clientId, { roles, distinct = false } = {}) {
  const key = secret();
  if (!key) {
    if (process.env.PRESENCED_TOKEN && !distinct) return process.env.PRESENCED_TOKEN;
    throw new Error(`set PRESENCED_SECRET (the server's jwt-secret)${distinct ? "" : " or PRESENCED_TOKEN"}`);
  }
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const claims = { sub: clientId, exp: Math.floor(Date.now() / 1000) + 3600, ...(roles ? { roles } : {}) };
  const body = b64({ alg: "HS256", typ: "JWT" }) + "." + b64(claims);
  return body + "." + createHmac("sha256", key).update(body).digest("base64url");
}

/** Resolves with `predicate()`'s value once it is truthy (polled); rejects after `timeoutMs`. */
export async function until(predicate, what, timeoutMs = 5000) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = predicate();
    if (v) return v;
    if (Date.now() > end) throw new Error("timed out waiting for " + what);
    await new Promise((r) => setTimeout(r, 10));
  }
}
