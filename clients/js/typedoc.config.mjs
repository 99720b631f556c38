// typedoc's settings for `npm run docs`: the API reference of @presenced/client as HTML in
// docs-api/ (and its JSON model in docs-api/api.json, which test/docs.test.js reads).
// Every warning is an error, and an exported class, method, property or type without a doc
// comment is a warning (validation.notDocumented), so a missing doc fails the build.
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
// src/service.ts (createPresenceService, for Node backends) is documented when it is there.
const entryPoints = ["src/index.ts", "src/service.ts"].filter((f) => existsSync(join(here, f)));

/** @type {Partial<import("typedoc").TypeDocOptions>} */
export default {
  name: "@presenced/client",
  entryPoints,
  tsconfig: "tsconfig.json",
  out: "docs-api",
  json: "docs-api/api.json",
  readme: "README.md",
  excludePrivate: true,
  excludeProtected: true,
  excludeInternal: true,
  excludeExternals: true,
  disableGit: true,
  disableSources: true,
  treatWarningsAsErrors: true,
  treatValidationWarningsAsErrors: true,
  validation: { notExported: true, invalidLink: true, rewrittenLink: true, notDocumented: true },
};
