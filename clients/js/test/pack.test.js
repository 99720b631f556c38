// The client as users install it: `npm pack` builds it (prepack) and the tarball holds the built
// module, its types, the README and the package metadata, and nothing of the tests or the sources.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

test("npm pack makes a tarball of the built client", () => {
  const dir = mkdtempSync(join(tmpdir(), "presenced-pack-"));
  try {
    const out = execFileSync("npm", ["pack", "--json", "--pack-destination", dir], { cwd: root, encoding: "utf8" });
    const [info] = JSON.parse(out.slice(out.indexOf("[")));
    assert.equal(info.name, "@presenced/client");
    const files = info.files.map((f) => f.path).sort();
    for (const f of ["package.json", "README.md", "dist/index.js", "dist/index.d.ts", "dist/service.js", "dist/service.d.ts"]) {
      assert.ok(files.includes(f), f + " in " + files.join(", "));
    }
    assert.ok(files.every((f) => !f.startsWith("test/") && !f.startsWith("src/") && !f.startsWith("node_modules/")), files.join(", "));
    const listed = execFileSync("tar", ["-tzf", join(dir, info.filename)], { encoding: "utf8" });
    assert.match(listed, /package\/dist\/index\.js/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
