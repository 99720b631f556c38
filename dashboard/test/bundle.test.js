// dashboard/web/presenced-client.js is a committed copy of the JS client's build
// (dashboard/update-bundle.sh). This fails when it is stale: compiling the client now, with its own
// tsconfig and TypeScript version (in memory; nothing is written), must give the same file.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import ts from "typescript";

const clientDir = fileURLToPath(new URL("../../clients/js/", import.meta.url));
const copy = fileURLToPath(new URL("../web/presenced-client.js", import.meta.url));

test("dashboard/web/presenced-client.js is the current build of clients/js", () => {
  const pkg = JSON.parse(readFileSync(clientDir + "package.json", "utf8"));
  assert.equal(ts.version, pkg.devDependencies.typescript, "dashboard/test must use the TypeScript version clients/js builds with");
  const config = ts.readConfigFile(clientDir + "tsconfig.json", ts.sys.readFile);
  const { options, fileNames } = ts.parseJsonConfigFileContent(config.config, ts.sys, clientDir);
  // Type errors (e.g. clients/js/node_modules not installed) do not change the emitted JavaScript.
  const emitted = new Map();
  ts.createProgram(fileNames, options).emit(undefined, (name, text) => emitted.set(name, text));
  const built = emitted.get(clientDir + "dist/index.js");
  assert.ok(built, "the client's build emits dist/index.js");
  assert.ok(readFileSync(copy, "utf8") === built, "dashboard/web/presenced-client.js is stale: run dashboard/update-bundle.sh");
});
