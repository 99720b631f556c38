// Before the examples' tests (npm's pretest): the examples import "@presenced/client", which
// resolves through node_modules/@presenced/client, a link to ../clients/js (a `file:` dependency).
// That package must be built: on a clean clone, or when ctest runs this before the JS client's
// own test, install its locked dependencies and build it; rebuild when a source is newer than dist.
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const client = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "clients", "js");
const built = join(client, "dist", "index.js");
const npm = (...args) => execFileSync("npm", ["--prefix", client, ...args], { stdio: "inherit" });

if (!existsSync(join(client, "node_modules", "ws")) || !existsSync(join(client, "node_modules", "typescript"))) {
  npm("ci", "--no-audit", "--no-fund", "--loglevel=error");
}
const newest = Math.max(...readdirSync(join(client, "src")).map((f) => statSync(join(client, "src", f)).mtimeMs));
if (!existsSync(built) || statSync(built).mtimeMs < newest) npm("run", "build");
