// The SDK reference: `npm run docs` (typedoc) builds the HTML API docs into docs-api/, with a page
// for PresenceClient that lists its methods (and one for the service entry point's PresenceService);
// every class, method and option has an example; and the settings make an undocumented export
// fail the build (so CI catches a missing doc).
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const out = join(root, "docs-api");

// typedoc's ReflectionKind values (typedoc/dist/lib/models/kind.js).
const Kind = { Class: 128, Interface: 256, Constructor: 512, Property: 1024, Method: 2048, TypeAlias: 2097152 };

function* walk(r, parent = null) {
  yield [r, parent];
  for (const c of r.children ?? []) yield* walk(c, r);
}

function hasExample(comment) {
  return (comment?.blockTags ?? []).some((t) => t.tag === "@example");
}

test("npm run docs writes a PresenceClient page listing its methods, every one with an example", () => {
  execFileSync("npm", ["run", "docs"], { cwd: root, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  const model = JSON.parse(readFileSync(join(out, "api.json"), "utf8"));
  const all = [...walk(model)];
  const client = all.map(([r]) => r).find((r) => r.kind === Kind.Class && r.name === "PresenceClient");
  assert.ok(client, "PresenceClient in the model");
  const methods = client.children.filter((c) => c.kind === Kind.Method).map((c) => c.name);
  for (const m of ["waitForConnected", "close", "on", "off", "request", "refreshToken", "channel", "presence", "devices", "setDeviceStatus", "who"]) {
    assert.ok(methods.includes(m), `${m} among ${methods.join(", ")}`);
  }
  // One entry point: classes/PresenceClient.html; several (with src/service.ts): classes/index.PresenceClient.html.
  const page = readdirSync(join(out, "classes")).find((f) => /(^|\.)PresenceClient\.html$/.test(f));
  assert.ok(page, "a page for PresenceClient");
  const html = readFileSync(join(out, "classes", page), "utf8");
  for (const m of methods) assert.match(html, new RegExp(`id="${m.toLowerCase()}"`), `the page lists ${m}`);
  assert.match(html, /setDeviceStatus/);
  assert.match(html, /heartbeatMs/);
  // An example on every class, interface, type, method and constructor, and on each option.
  const missing = [];
  for (const [r, parent] of all) {
    const needs =
      [Kind.Class, Kind.Interface, Kind.TypeAlias].includes(r.kind) ||
      (r.kind === Kind.Property && parent && (parent.kind === Kind.Class || ["ClientOptions", "PresenceServiceOptions"].includes(parent.name)));
    if (needs && !hasExample(r.comment)) missing.push(r.name);
    if ([Kind.Method, Kind.Constructor].includes(r.kind) && !(r.signatures ?? []).some((s) => hasExample(s.comment))) {
      missing.push((parent?.name ?? "") + "." + r.name);
    }
  }
  assert.deepEqual(missing, [], "without an @example: " + missing.join(", "));
});

test("the service entry point (@presenced/client/service): createPresenceService and a PresenceService page with the design's methods", () => {
  // The model written by the first test's `npm run docs`.
  const model = JSON.parse(readFileSync(join(out, "api.json"), "utf8"));
  const all = [...walk(model)].map(([r]) => r);
  const service = all.find((r) => r.kind === Kind.Class && r.name === "PresenceService");
  assert.ok(service, "PresenceService in the model");
  assert.ok(all.some((r) => r.name === "createPresenceService" && (r.signatures ?? []).some((s) => hasExample(s.comment))));
  const methods = service.children.filter((c) => c.kind === Kind.Method).map((c) => c.name);
  const design = ["getStatus", "getStatuses", "setStatus", "setCustomStatus", "clearCustomStatus", "recordActivity", "getActivity", "getDevices", "setDeviceStatus", "getOnlineUsers", "on", "off", "sync", "getSyncStatus", "close"];
  for (const m of design) assert.ok(methods.includes(m), `${m} among ${methods.join(", ")}`);
  const html = readFileSync(join(out, "classes", "service.PresenceService.html"), "utf8");
  for (const m of design) assert.match(html, new RegExp(`id="${m.toLowerCase()}"`), `the page lists ${m}`);
  assert.ok(existsSync(join(out, "functions", "service.createPresenceService.html")));
});

test("an undocumented export fails the docs build", () => {
  const dir = mkdtempSync(join(tmpdir(), "presenced-docs-"));
  try {
    writeFileSync(join(dir, "bad.ts"), "/** Documented. @example\n * ```ts\n * ok();\n * ```\n */\nexport function ok(): void {}\nexport function undocumented(): void {}\n");
    writeFileSync(join(dir, "tsconfig.json"), JSON.stringify({ compilerOptions: { strict: true, target: "ES2022" }, files: ["bad.ts"] }));
    // The package's own settings, pointed at this file.
    const base = JSON.stringify(new URL("../typedoc.config.mjs", import.meta.url).href);
    writeFileSync(
      join(dir, "typedoc.config.mjs"),
      `import base from ${base};\nexport default { ...base, entryPoints: ["bad.ts"], tsconfig: "tsconfig.json", readme: "none", out: "out", json: "out/api.json" };\n`,
    );
    const r = spawnSync("npx", ["typedoc", "--options", join(dir, "typedoc.config.mjs")], { cwd: root, encoding: "utf8" });
    assert.notEqual(r.status, 0, "typedoc should fail: " + r.stdout);
    assert.match(r.stdout + r.stderr, /undocumented.*does not have any documentation/);
    assert.ok(!existsSync(join(dir, "out", "index.html")), "no docs written on failure");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
