// docs/openapi.yaml: a valid OpenAPI 3.1 document (@readme/openapi-parser, which checks the
// document against the official 3.1 schema, resolves every $ref, and checks path parameters and
// operationIds), whose Schema Objects are valid JSON Schema 2020-12 (Ajv, strict: the 3.1 schema
// does not look inside them) and whose examples fit them, with an operationId, a summary and a
// success response on every operation, and with exactly the routes of the server's REST route
// table (src/protocol/rest_routes.cc) plus the routes served without a key. Broken copies of the
// document must be refused, so the checks themselves are checked.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { compileErrors, parse, validate } from '@readme/openapi-parser';
import Ajv2020 from 'ajv/dist/2020.js';

const root = (p) => fileURLToPath(new URL(`../../${p}`, import.meta.url));
const DOC = root('docs/openapi.yaml');
const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];
// Served on the I/O thread or by the network layer (src/server/service.cc, src/net/http_session.cc),
// without the API key: not in the REST route table.
const KEYLESS = ['/', '/dashboard/{file}', '/metrics', '/v1/healthz', '/v1/openapi.json', '/v1/ws'];

const loadDoc = async () => parse(DOC); // the parser reads YAML itself (duplicate keys refused)

function operations(doc) {
  const out = [];
  for (const [path, item] of Object.entries(doc.paths ?? {})) {
    for (const method of METHODS) {
      if (item[method]) out.push({ path, method, op: item[method] });
    }
  }
  return out;
}

// ----- The checks -------------------------------------------------------------------------------

async function specProblems(doc) {
  const result = await validate(structuredClone(doc));
  return result.valid ? [] : [compileErrors(result)];
}

// Every Schema Object of the document (components and inline ones), keyed by where it is.
function schemaObjects(doc) {
  const found = [];
  for (const [name, s] of Object.entries(doc.components?.schemas ?? {})) {
    found.push({ where: `#/components/schemas/${name}`, schema: s });
  }
  const fromParams = (params, where) =>
    (params ?? []).forEach((p, i) => p.schema && found.push({ where: `${where}/parameters/${i}`, schema: p.schema }));
  const fromContent = (content, where) =>
    Object.entries(content ?? {}).forEach(
      ([type, media]) => media.schema && found.push({ where: `${where}/content/${type}`, schema: media.schema }),
    );
  const fromHeaders = (headers, where) =>
    Object.entries(headers ?? {}).forEach(
      ([h, header]) => header.schema && found.push({ where: `${where}/headers/${h}`, schema: header.schema }),
    );
  for (const [name, p] of Object.entries(doc.components?.parameters ?? {})) {
    if (p.schema) found.push({ where: `#/components/parameters/${name}`, schema: p.schema });
  }
  for (const [name, r] of Object.entries(doc.components?.responses ?? {})) {
    fromContent(r.content, `#/components/responses/${name}`);
    fromHeaders(r.headers, `#/components/responses/${name}`);
  }
  for (const [path, item] of Object.entries(doc.paths ?? {})) {
    fromParams(item.parameters, `${path}`);
    for (const method of METHODS) {
      const op = item[method];
      if (!op) continue;
      const where = `${method.toUpperCase()} ${path}`;
      fromParams(op.parameters, where);
      fromContent(op.requestBody?.content, `${where}/requestBody`);
      for (const [status, r] of Object.entries(op.responses ?? {})) {
        fromContent(r.content, `${where}/responses/${status}`);
        fromHeaders(r.headers, `${where}/responses/${status}`);
      }
    }
  }
  return found;
}

// Compiles every Schema Object with Ajv (JSON Schema 2020-12, strict: unknown keywords, bad
// types and unresolvable $refs are errors) and validates each schema's `examples` against it.
function schemaProblems(doc) {
  const ajv = new Ajv2020({ strict: true, strictTypes: false, strictRequired: false, allErrors: true });
  // OpenAPI's own Schema Object keywords and formats (OpenAPI 3.1 §4.8.24, the format registry).
  ajv.addVocabulary(['discriminator', 'xml', 'externalDocs', 'example']);
  ajv.addFormat('int32', { type: 'number', validate: (n) => Number.isInteger(n) && n >= -(2 ** 31) && n < 2 ** 31 });
  ajv.addFormat('int64', { type: 'number', validate: (n) => Number.isInteger(n) });
  const id = 'urn:presenced:openapi';
  const objects = schemaObjects(doc);
  const rewrite = (v) => {
    if (Array.isArray(v)) return v.map(rewrite);
    if (v === null || typeof v !== 'object') return v;
    const out = {};
    for (const [k, x] of Object.entries(v)) {
      out[k] = k === '$ref' && typeof x === 'string' ? x.replace(/^#\/components\/schemas\//, '#/$defs/') : rewrite(x);
    }
    return out;
  };
  const defs = {};
  objects.forEach((o, i) => {
    o.key = o.where.startsWith('#/components/schemas/') ? o.where.slice('#/components/schemas/'.length) : `inline-${i}`;
    defs[o.key] = rewrite(o.schema);
  });
  const problems = [];
  // OpenAPI 3.0's `nullable` is no keyword in 3.1 (Ajv would still honour it): `type: [T, 'null']`.
  const walk = (v, where) => {
    if (v === null || typeof v !== 'object') return;
    if (!Array.isArray(v) && typeof v.nullable === 'boolean') problems.push(`${where}: nullable is OpenAPI 3.0; use type: [T, 'null']`);
    for (const [k, x] of Object.entries(v)) walk(x, `${where}/${k}`);
  };
  objects.forEach((o) => walk(o.schema, o.where));
  try {
    ajv.addSchema({ $id: id, $defs: defs });
  } catch (e) {
    let why = e.message;
    for (const o of objects) why = why.split(`$defs/${o.key}/`).join(`${o.where} `);
    return [...problems, `the schemas are not valid JSON Schema 2020-12: ${why}`];
  }
  for (const o of objects) {
    const pointer = o.key.replace(/~/g, '~0').replace(/\//g, '~1');
    let check;
    try {
      check = ajv.getSchema(`${id}#/$defs/${encodeURIComponent(pointer)}`);
      if (!check) throw new Error('not found');
    } catch (e) {
      problems.push(`${o.where}: ${e.message}`);
      continue;
    }
    for (const [i, example] of (o.schema.examples ?? []).entries()) {
      if (!check(example)) problems.push(`${o.where} examples[${i}]: ${ajv.errorsText(check.errors)}`);
    }
  }
  return problems;
}

function operationProblems(doc) {
  const problems = [];
  const ids = new Map();
  for (const { path, method, op } of operations(doc)) {
    const where = `${method.toUpperCase()} ${path}`;
    if (typeof op.operationId !== 'string' || op.operationId === '') problems.push(`${where}: no operationId`);
    else if (ids.has(op.operationId)) problems.push(`${where}: operationId ${op.operationId} is also ${ids.get(op.operationId)}'s`);
    else ids.set(op.operationId, where);
    if (typeof op.summary !== 'string' || op.summary.trim() === '') problems.push(`${where}: no summary`);
    const statuses = Object.keys(op.responses ?? {});
    if (!statuses.some((s) => /^2\d\d$/.test(s) || s === '101')) {
      problems.push(`${where}: no 2xx or 101 response (has ${statuses.join(', ') || 'none'})`);
    }
  }
  return problems;
}

async function allProblems(doc) {
  return [...(await specProblems(doc)), ...schemaProblems(doc), ...operationProblems(doc)];
}

// ----- The server's route table ---------------------------------------------------------------

// kRoutes of src/protocol/rest_routes.cc: [{method, path, op}], path as OpenAPI writes it.
function restRoutes() {
  const src = readFileSync(root('src/protocol/rest_routes.cc'), 'utf8').replace(/\/\/[^\n]*/g, '');
  const names = {};
  for (const m of src.matchAll(/constexpr std::string_view (k\w+) = "(\{\w+\})";/g)) names[m[1]] = m[2];
  const table = src.match(/kRoutes = \{\{([\s\S]*?)\n\}\};/);
  assert.ok(table, 'kRoutes not found in rest_routes.cc');
  const routes = [];
  for (const m of table[1].matchAll(/\{\s*"([A-Z]+)",\s*\{([^}]*)\},\s*"([^"]+)"/g)) {
    const segments = m[2].split(',').map((s) => s.trim()).map((s) => {
      if (s.startsWith('"')) return JSON.parse(s);
      assert.ok(names[s], `unknown path constant ${s} in kRoutes`);
      return names[s];
    });
    routes.push({ method: m[1].toLowerCase(), path: `/${segments.join('/')}`, op: m[3] });
  }
  const declared = Number(src.match(/std::array<Route, (\d+)> kRoutes/)?.[1]);
  assert.equal(routes.length, declared, `read ${routes.length} of the ${declared} routes of kRoutes`);
  return routes;
}

// The ops of src/protocol/ops.cc that are REST only (kRestOnly).
function restOnlyOps() {
  const src = readFileSync(root('src/protocol/ops.cc'), 'utf8');
  const out = new Set();
  for (const m of src.matchAll(/(?:Sync|Async)<([^>]*)>\("([^"]+)"\)/g)) {
    if (/\bkRestOnly\b/.test(m[1])) out.add(m[2]);
  }
  assert.ok(out.size > 0, 'no kRestOnly op found in ops.cc');
  return out;
}

// ----- Tests ------------------------------------------------------------------------------------

test('docs/openapi.yaml is a valid OpenAPI 3.1 document', async () => {
  const doc = await loadDoc();
  assert.match(doc.openapi, /^3\.1\.\d+$/);
  const problems = await specProblems(doc);
  assert.deepEqual(problems, [], problems.join('\n'));
});

test('its Schema Objects are valid JSON Schema 2020-12 and their examples fit them', async () => {
  const doc = await loadDoc();
  assert.ok(schemaObjects(doc).length > 40, 'expected the shared shapes and the inline schemas');
  for (const name of ['Member', 'PresenceEvent', 'Status', 'Device', 'Activity', 'Session', 'Error']) {
    assert.ok(doc.components.schemas[name], `components.schemas.${name} is missing`);
  }
  const problems = schemaProblems(doc);
  assert.deepEqual(problems, [], problems.join('\n'));
});

test('every operation has an operationId, a summary and a 2xx or 101 response', async () => {
  const doc = await loadDoc();
  assert.ok(operations(doc).length >= 26);
  const problems = operationProblems(doc);
  assert.deepEqual(problems, [], problems.join('\n'));
});

test('the paths are the REST route table plus the routes served without a key', async () => {
  const doc = await loadDoc();
  const restOnly = restOnlyOps();
  const routes = restRoutes();
  const problems = [];
  for (const r of routes) {
    const op = doc.paths[r.path]?.[r.method];
    if (!op) {
      problems.push(`${r.method.toUpperCase()} ${r.path} (${r.op}) is not documented`);
      continue;
    }
    if (op['x-presenced-op'] !== r.op) {
      problems.push(`${r.method.toUpperCase()} ${r.path}: x-presenced-op is ${op['x-presenced-op']}, the route's op is ${r.op}`);
    }
    if ((op['x-presenced-rest-only'] === true) !== restOnly.has(r.op)) {
      problems.push(`${r.method.toUpperCase()} ${r.path}: x-presenced-rest-only must be ${restOnly.has(r.op)}`);
    }
    if (op.security !== undefined) problems.push(`${r.method.toUpperCase()} ${r.path} needs the API key: no security override`);
    for (const code of ['401', '403']) {
      if (!op.responses[code]) problems.push(`${r.method.toUpperCase()} ${r.path}: no ${code} response`);
    }
    if (r.method !== 'get' && !op.responses['503']) {
      problems.push(`${r.method.toUpperCase()} ${r.path}: a change, so 503 in cluster mode`);
    }
  }
  for (const { path, method, op } of operations(doc)) {
    if (routes.some((r) => r.path === path && r.method === method)) continue;
    if (!KEYLESS.includes(path) || method !== 'get') {
      problems.push(`${method.toUpperCase()} ${path} is documented but is no route of the server`);
    } else if (!Array.isArray(op.security) || op.security.length !== 0) {
      problems.push(`GET ${path} needs no key: security must be []`);
    } else if (op['x-presenced-op'] !== undefined) {
      problems.push(`GET ${path} runs no op: no x-presenced-op`);
    }
  }
  for (const path of KEYLESS) {
    if (!doc.paths[path]?.get) problems.push(`GET ${path} is not documented`);
  }
  assert.deepEqual(doc.security, [{ apiKey: [] }]);
  assert.equal(doc.components.securitySchemes.apiKey.scheme, 'bearer');
  assert.deepEqual(problems, [], problems.join('\n'));
});

test('the WebSocket upgrade is documented as 101 and 426', async () => {
  const doc = await loadDoc();
  const ws = doc.paths['/v1/ws'].get;
  assert.ok(ws.responses['101'] && ws.responses['426']);
  assert.ok(doc.paths['/metrics'].get.responses['200'].content['text/plain; version=0.0.4']);
});

test('a broken copy of the document is refused', async (t) => {
  const good = await loadDoc();
  const broken = async (name, change) => {
    const doc = structuredClone(good);
    change(doc);
    const problems = await allProblems(doc);
    assert.ok(problems.length > 0, `${name}: the broken copy passed`);
    return problems.join('\n');
  };
  await t.test('a $ref to a missing schema', async () => {
    const why = await broken('missing $ref', (d) => {
      d.paths['/v1/who'].get.responses['200'].content['application/json'].schema.properties.users.items.$ref =
        '#/components/schemas/NoSuchSchema';
    });
    assert.match(why, /NoSuchSchema/);
  });
  await t.test('a field the OpenAPI schema does not have', async () => {
    await broken('unknown field', (d) => {
      d.paths['/v1/who'].get.responsez = d.paths['/v1/who'].get.responses;
    });
  });
  await t.test('a path parameter that is not declared', async () => {
    const why = await broken('undeclared path parameter', (d) => {
      delete d.paths['/v1/channels/{channel}/occupancy'].parameters;
    });
    assert.match(why, /channel/);
  });
  await t.test('a duplicated operationId', async () => {
    const why = await broken('duplicated operationId', (d) => {
      d.paths['/v1/who'].get.operationId = 'listChannels';
    });
    assert.match(why, /listChannels/);
  });
  await t.test('a Schema Object that is not JSON Schema', async () => {
    const why = await broken('bad type', (d) => {
      d.components.schemas.Member.properties.clientId.type = 'strng';
    });
    assert.match(why, /Member/);
  });
  await t.test("OpenAPI 3.0's nullable", async () => {
    const why = await broken('nullable', (d) => {
      d.components.schemas.Member.properties.expiresAt.nullable = true;
    });
    assert.match(why, /nullable/);
  });
  await t.test('an example that does not fit its schema', async () => {
    const why = await broken('bad example', (d) => {
      d.components.schemas.Status.examples = [{ clientId: 'a', status: 'busy' }];
    });
    assert.match(why, /Status examples/);
  });
  await t.test('an operation without a summary or a success response', async () => {
    const why = await broken('no 2xx', (d) => {
      delete d.paths['/v1/who'].get.summary;
      delete d.paths['/v1/who'].get.responses['200'];
    });
    assert.match(why, /GET \/v1\/who: no summary/);
    assert.match(why, /GET \/v1\/who: no 2xx or 101 response/);
  });
});
