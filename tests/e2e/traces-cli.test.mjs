// `cargo workmesh traces`: the console's traces in the terminal — the list,
// and one trace as an indented waterfall.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startMesh, callJson, workmesh, consoleJson } from "./helpers.mjs";

let mesh;
before(async () => {
  mesh = await startMesh({ persistTo: false, ephemeralPorts: true });
});
after(async () => {
  await mesh?.dispose();
});

const ORDERS = "shop.v1.OrderService";
const CATALOG = "shop.v1.CatalogService";

/** Polls the console until the CreateOrder trace has all three spans (exports run after responses). */
async function orderTrace(known, timeoutMs = 20_000) {
  const start = Date.now();
  while (Date.now() - start < timeoutMs) {
    const { traces } = await consoleJson(mesh, `/api/traces?service=${ORDERS}&limit=500`);
    const fresh = traces.find((t) => !known.has(t.traceId) && t.rootName === `${ORDERS}/CreateOrder`);
    // Orders, catalog and the order-events consumer export separately: wait
    // for the consumer's spans, the last to arrive.
    if (fresh && fresh.spanCount >= 3) {
      const { spans } = await consoleJson(mesh, `/api/traces/${fresh.traceId}`);
      const complete = [CATALOG, ORDERS].every((service) => spans.some((s) => s.service === service && s.kind === "SERVER"));
      if (complete && spans.some((s) => s.kind === "CONSUMER")) return { ...fresh, spanCount: spans.length };
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`the CreateOrder trace did not appear within ${timeoutMs} ms`);
}

const indent = (line) => line.length - line.trimStart().length;

test("traces lists a CreateOrder trace and shows it as a waterfall", async () => {
  const { traces: before } = await consoleJson(mesh, `/api/traces?service=${ORDERS}&limit=500`);
  const known = new Set(before.map((t) => t.traceId));
  const res = await callJson(mesh.urls.orders, `/${ORDERS}/CreateOrder`, {
    customerId: "traces-cli",
    requestId: "traces-cli-1",
    items: [{ sku: "SKU-0001", quantity: 1 }],
  });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  const trace = await orderTrace(known);

  const list = workmesh("traces", "--url", mesh.urls.console);
  assert.equal(list.code, 0, list.stderr);
  const row = list.stdout.split("\n").find((line) => line.startsWith(trace.traceId));
  assert.ok(row, list.stdout);
  assert.match(row, new RegExp(`${ORDERS}/CreateOrder\\s+${ORDERS}\\s`));
  assert.match(row, new RegExp(`\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d\\.\\d{3}\\s+\\d+\\.\\d{3} ms\\s+${trace.spanCount}\\b`));
  assert.doesNotMatch(row, /✗/);

  // --service filters: catalog is in the trace, an unknown service has none.
  const filtered = workmesh("traces", "--service", CATALOG, "--limit", "500", "--url", mesh.urls.console);
  assert.equal(filtered.code, 0, filtered.stderr);
  assert.match(filtered.stdout, new RegExp(trace.traceId));
  const none = workmesh("traces", "--service", "no.such.Service", "--url", mesh.urls.console);
  assert.equal(none.code, 0, none.stderr);
  assert.doesNotMatch(none.stdout, new RegExp(trace.traceId));

  const shown = workmesh("traces", trace.traceId, "--url", mesh.urls.console);
  assert.equal(shown.code, 0, shown.stderr);
  const lines = shown.stdout.split("\n").filter(Boolean);
  const find = (re) => {
    const index = lines.findIndex((line) => re.test(line));
    assert.notEqual(index, -1, `${re} in:\n${shown.stdout}`);
    return index;
  };
  const server = find(new RegExp(`^${ORDERS}  ${ORDERS}/CreateOrder  SERVER\\s`));
  const client = find(new RegExp(`^\\s+${ORDERS}  ${CATALOG}/GetProduct  CLIENT\\s`));
  const callee = find(new RegExp(`^\\s+${CATALOG}  ${CATALOG}/GetProduct  SERVER\\s`));
  assert.ok(server < client && client < callee, "tree order");
  assert.ok(indent(lines[server]) < indent(lines[client]), "the CLIENT span is indented under the SERVER span");
  assert.ok(indent(lines[client]) < indent(lines[callee]), "catalog's SERVER span is indented under the CLIENT span");
  for (const line of lines) {
    assert.match(line, /\d+\.\d{3} ms  \|[█ ]{40}\|$/, line);
    assert.match(line, /█/, line);
  }
});

test("traces reports an unknown or malformed trace id with a non-zero exit", () => {
  const missing = workmesh("traces", "0".repeat(31) + "1", "--url", mesh.urls.console);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /has no trace 0{31}1/);
  const malformed = workmesh("traces", "xyz", "--url", mesh.urls.console);
  assert.equal(malformed.code, 1);
  assert.match(malformed.stderr, /32 hex digits/);
});
