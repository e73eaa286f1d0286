// Distributed tracing end to end: orders → catalog over a service binding,
// both exporting OTLP to the console Worker after their responses, and the
// console's API showing one connected trace.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startMesh, callJson, eventually, consoleJson } from "./helpers.mjs";

let mesh;
before(async () => {
  mesh = await startMesh({ persistTo: false, ephemeralPorts: true });
});
after(async () => {
  await mesh?.dispose();
});

const ORDERS = "shop.v1.OrderService";
const CATALOG = "shop.v1.CatalogService";
let requests = 0;

const createOrder = (headers = {}) =>
  callJson(
    mesh.urls.orders,
    `/${ORDERS}/CreateOrder`,
    { customerId: "trace-cust", requestId: `trace-req-${++requests}`, items: [{ sku: "SKU-0001", quantity: 1 }] },
    headers,
  );

async function traceIds() {
  const { traces } = await consoleJson(mesh, `/api/traces?service=${ORDERS}&limit=500`);
  return new Set(traces.map((t) => t.traceId));
}

/** The spans of the first CreateOrder trace not in `known`, once all three hops are in. */
async function newOrderTrace(known) {
  return eventually("the CreateOrder trace", async () => {
    const { traces } = await consoleJson(mesh, `/api/traces?service=${ORDERS}&limit=500`);
    const fresh = traces.find((t) => !known.has(t.traceId) && t.rootName === `${ORDERS}/CreateOrder`);
    if (!fresh || fresh.spanCount < 3) return undefined;
    const trace = await consoleJson(mesh, `/api/traces/${fresh.traceId}`);
    return hasBothHops(trace) ? trace : undefined;
  });
}

/** Both Workers' exports are in (each also exports D1 spans, so a count is not enough). */
const hasBothHops = (trace) =>
  [ORDERS, CATALOG].every((service) => trace.spans.some((s) => s.service === service && s.kind === "SERVER"));

/** Asserts orders SERVER → orders CLIENT → catalog SERVER, all in one trace. */
function assertOrderTrace(trace) {
  const { spans } = trace;
  assert.equal(new Set(spans.map((s) => s.traceId)).size, 1, "one trace id");
  assert.equal(spans[0].traceId, trace.traceId);

  const server = spans.find((s) => s.service === ORDERS && s.kind === "SERVER");
  assert.ok(server, JSON.stringify(spans));
  assert.equal(server.name, `${ORDERS}/CreateOrder`);
  assert.equal(server.attributes["rpc.service"], ORDERS);
  assert.equal(server.attributes["rpc.method"], "CreateOrder");
  assert.equal(server.attributes["rpc.system"], "connect_rpc");

  // The RPC CLIENT span (orders' D1 queries are CLIENT spans too).
  const client = spans.find((s) => s.service === ORDERS && s.kind === "CLIENT" && s.attributes["rpc.system"]);
  assert.ok(client, "orders has a CLIENT span");
  // The handler prices items inside `tracing::info_span!("price_items")`.
  const pricing = spans.find((s) => s.service === ORDERS && s.name === "price_items");
  assert.ok(pricing, "orders' tracing span is exported");
  assert.equal(pricing.parentSpanId, server.spanId, "the handler's span is a child of the SERVER span");
  assert.equal(client.parentSpanId, pricing.spanId, "the CLIENT span is a child of the handler's span");
  assert.equal(client.name, `${CATALOG}/GetProduct`);
  assert.equal(client.attributes["rpc.service"], CATALOG);
  assert.equal(client.attributes["rpc.method"], "GetProduct");
  assert.equal(client.attributes["server.address"], "CATALOG");

  const callee = spans.find((s) => s.service === CATALOG && s.kind === "SERVER");
  assert.ok(callee, "catalog exported its SERVER span");
  assert.equal(callee.parentSpanId, client.spanId, "catalog's SERVER span is a child of orders' CLIENT span");
  assert.equal(callee.attributes["rpc.method"], "GetProduct");
  for (const span of spans) {
    assert.ok(BigInt(span.endTimeUnixNano) >= BigInt(span.startTimeUnixNano), span.name);
    assert.equal(span.status.code, 0, `${span.name} succeeded`);
  }
  return { server, client, callee };
}

test("CreateOrder makes one trace: orders SERVER → CLIENT → catalog SERVER", async () => {
  const known = await traceIds();
  const res = await createOrder();
  assert.equal(res.status, 200, JSON.stringify(res.body));
  const trace = await newOrderTrace(known);
  const { server } = assertOrderTrace(trace);
  assert.equal(server.parentSpanId, null, "no traceparent: orders starts the trace");

  // The list and the HTML views show it.
  const { traces } = await consoleJson(mesh, `/api/traces?service=${CATALOG}`);
  const listed = traces.find((t) => t.traceId === trace.traceId);
  assert.equal(listed.rootService, ORDERS);
  assert.equal(listed.error, false);
  const list = await (await fetch(mesh.urls.console)).text();
  assert.match(list, new RegExp(`/trace/${trace.traceId}`));
  const waterfall = await fetch(new URL(`/trace/${trace.traceId}`, mesh.urls.console));
  assert.equal(waterfall.status, 200);
  assert.match(await waterfall.text(), /shop\.v1\.CatalogService\/GetProduct/);
});

test("a caller's traceparent is joined", async () => {
  const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
  const parent = "00f067aa0ba902b7";
  const res = await createOrder({ traceparent: `00-${traceId}-${parent}-01` });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  const trace = await eventually("the joined trace", async () => {
    const res = await fetch(new URL(`/api/traces/${traceId}`, mesh.urls.console));
    if (res.status !== 200) return undefined;
    const trace = await res.json();
    return hasBothHops(trace) ? trace : undefined;
  });
  const { server } = assertOrderTrace(trace);
  assert.equal(server.parentSpanId, parent);
});

test("a malformed traceparent still succeeds and starts a fresh trace", async () => {
  const known = await traceIds();
  const bad = "00-not-a-trace-id-at-all-01";
  const res = await createOrder({ traceparent: bad, tracestate: "=,=" });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  const trace = await newOrderTrace(known);
  const { server } = assertOrderTrace(trace);
  assert.equal(server.parentSpanId, null);
  assert.match(trace.traceId, /^[0-9a-f]{32}$/);
});

test("a failed call is marked as an error with its Connect code", async () => {
  const known = await traceIds();
  const res = await callJson(mesh.urls.orders, `/${ORDERS}/GetOrder`, { orderId: "no-such-order" });
  assert.equal(res.status, 404);
  const trace = await eventually("the GetOrder trace", async () => {
    const { traces } = await consoleJson(mesh, `/api/traces?service=${ORDERS}&limit=500`);
    const fresh = traces.find((t) => !known.has(t.traceId) && t.rootName === `${ORDERS}/GetOrder`);
    return fresh && consoleJson(mesh, `/api/traces/${fresh.traceId}`);
  });
  const span = trace.spans.find((s) => s.kind === "SERVER");
  assert.equal(span.attributes["rpc.connect_rpc.error_code"], "not_found");
  // not_found is the caller's error, not the server's: status stays unset.
  assert.equal(span.status.code, 0);
});

test("the console refuses what is not OTLP", async () => {
  const text = await fetch(new URL("/v1/traces", mesh.urls.console), {
    method: "POST",
    headers: { "content-type": "text/plain" },
    body: "{}",
  });
  assert.equal(text.status, 415);
  const garbage = await fetch(new URL("/v1/traces", mesh.urls.console), {
    method: "POST",
    headers: { "content-type": "application/x-protobuf" },
    body: new Uint8Array([0xff, 0xff, 0xff, 0x01]),
  });
  assert.equal(garbage.status, 400);
  const badId = await fetch(new URL("/api/traces/xyz", mesh.urls.console));
  assert.equal(badId.status, 400);
});
