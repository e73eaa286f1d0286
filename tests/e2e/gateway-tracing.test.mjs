// One trace across three hops: a CreateOrder through the gateway is
// gateway SERVER → gateway CLIENT → orders SERVER → orders CLIENT → catalog
// SERVER, with D1 spans under orders' and catalog's SERVER spans and the
// orders handler's own `tracing` span, all in the console.

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

const GATEWAY = "gateway";
const ORDERS = "shop.v1.OrderService";
const CATALOG = "shop.v1.CatalogService";

const one = (spans, what, predicate) => {
  const found = spans.filter(predicate);
  assert.equal(found.length, 1, `${what}: ${JSON.stringify(spans.map((s) => [s.service, s.kind, s.name]))}`);
  return found[0];
};

test("CreateOrder through the gateway is one trace across gateway, orders and catalog, with D1 spans", async () => {
  const { traces: before } = await consoleJson(mesh, `/api/traces?service=${GATEWAY}&limit=500`);
  const known = new Set(before.map((t) => t.traceId));
  const res = await callJson(mesh.urls.gateway, `/${ORDERS}/CreateOrder`, {
    customerId: "three-hops",
    requestId: `three-hops-${Date.now()}`,
    items: [{ sku: "SKU-0002", quantity: 1 }],
  });
  assert.equal(res.status, 200, JSON.stringify(res.body));

  const trace = await eventually("the three-hop trace", async () => {
    const { traces } = await consoleJson(mesh, `/api/traces?service=${GATEWAY}&limit=500`);
    const fresh = traces.find((t) => !known.has(t.traceId));
    if (!fresh) return undefined;
    const trace = await consoleJson(mesh, `/api/traces/${fresh.traceId}`);
    const services = new Set(trace.spans.filter((s) => s.kind === "SERVER").map((s) => s.service));
    const d1 = trace.spans.filter((s) => s.attributes["db.system"]).map((s) => s.service);
    return services.size === 3 && d1.includes(CATALOG) && d1.includes(ORDERS) ? trace : undefined;
  });
  const { spans } = trace;
  assert.equal(new Set(spans.map((s) => s.traceId)).size, 1, "one trace id");
  const rpc = (s) => s.attributes["rpc.system"] === "connect_rpc";

  const gwServer = one(spans, "gateway SERVER", (s) => s.service === GATEWAY && s.kind === "SERVER");
  assert.equal(gwServer.parentSpanId, null, "the gateway starts the trace");
  assert.equal(gwServer.name, `${ORDERS}/CreateOrder`);
  const gwClient = one(spans, "gateway CLIENT", (s) => s.service === GATEWAY && s.kind === "CLIENT");
  assert.equal(gwClient.parentSpanId, gwServer.spanId);
  assert.equal(gwClient.name, `${ORDERS}/CreateOrder`);
  assert.equal(gwClient.attributes["server.address"], "ORDERS");

  const ordersServer = one(spans, "orders SERVER", (s) => s.service === ORDERS && s.kind === "SERVER");
  assert.equal(ordersServer.parentSpanId, gwClient.spanId);
  const ordersClient = one(spans, "orders RPC CLIENT", (s) => s.service === ORDERS && s.kind === "CLIENT" && rpc(s));
  assert.equal(ordersClient.name, `${CATALOG}/GetProduct`);
  const catalogServer = one(spans, "catalog SERVER", (s) => s.service === CATALOG && s.kind === "SERVER");
  assert.equal(catalogServer.parentSpanId, ordersClient.spanId);
  // Orders' handler wraps its catalog calls in `tracing::info_span!("price_items")`:
  // through the tracing bridge it is an INTERNAL span between orders' SERVER and CLIENT spans.
  const priceItems = one(spans, "price_items", (s) => s.name === "price_items");
  assert.equal(priceItems.service, ORDERS);
  assert.equal(priceItems.kind, "INTERNAL");
  assert.equal(priceItems.parentSpanId, ordersServer.spanId);
  assert.equal(Number(priceItems.attributes.items), 1);
  assert.equal(ordersClient.parentSpanId, priceItems.spanId);
  // …and its `tracing::info!` is an event on orders' SERVER span.
  const events = typeof ordersServer.events === "string" ? JSON.parse(ordersServer.events) : ordersServer.events;
  const priced = events.find((e) => e.name === "order priced");
  assert.ok(priced, JSON.stringify(events));
  assert.equal(priced.attributes.currency, "EUR");
  assert.equal(priced.attributes.level, "INFO");

  // D1: catalog's lookup, orders' idempotency lookup and its insert batch.
  const d1 = spans.filter((s) => s.attributes["db.system"] === "cloudflare_d1");
  const catalogSelect = one(d1, "catalog SELECT", (s) => s.service === CATALOG);
  assert.equal(catalogSelect.kind, "CLIENT");
  assert.equal(catalogSelect.parentSpanId, catalogServer.spanId);
  assert.equal(catalogSelect.name, "SELECT products");
  assert.equal(catalogSelect.attributes["db.operation.name"], "SELECT");
  assert.equal(catalogSelect.attributes["db.collection.name"], "products");
  assert.match(catalogSelect.attributes["db.query.text"], /WHERE sku = \?1/);
  assert.doesNotMatch(catalogSelect.attributes["db.query.text"], /SKU-0002/, "no bound values");
  assert.equal(Number(catalogSelect.attributes["db.response.returned_rows"]), 1);

  // (The order-events consumer's queries, if already in, hang under its CONSUMER span: see below.)
  const consumers = new Set(spans.filter((s) => s.kind === "CONSUMER").map((s) => s.spanId));
  const ordersD1 = d1.filter((s) => s.service === ORDERS && !consumers.has(s.parentSpanId));
  for (const span of ordersD1) {
    assert.equal(span.parentSpanId, ordersServer.spanId, span.name);
  }
  const lookup = ordersD1.find((s) => s.name === "SELECT orders");
  assert.ok(lookup, JSON.stringify(ordersD1.map((s) => s.name)));
  assert.equal(Number(lookup.attributes["db.response.returned_rows"]), 0);
  const insert = ordersD1.find((s) => s.name === "BATCH INSERT");
  assert.ok(insert, JSON.stringify(ordersD1.map((s) => s.name)));
  assert.equal(Number(insert.attributes["db.operation.batch.size"]), 2);
  assert.ok(Number(insert.attributes["db.response.rows_written"]) >= 2);

  for (const span of spans) {
    assert.ok(BigInt(span.endTimeUnixNano) >= BigInt(span.startTimeUnixNano), span.name);
    assert.equal(span.status.code, 0, `${span.name} succeeded`);
  }
});

test("the order-events queue carries the trace: the consumer continues CreateOrder's trace", async () => {
  const { traces: before } = await consoleJson(mesh, `/api/traces?service=${GATEWAY}&limit=500`);
  const known = new Set(before.map((t) => t.traceId));
  const res = await callJson(mesh.urls.gateway, `/${ORDERS}/CreateOrder`, {
    customerId: "queue-trace",
    requestId: `queue-trace-${Date.now()}`,
    items: [{ sku: "SKU-0004", quantity: 1 }],
  });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  const orderId = res.body.order.orderId;

  const trace = await eventually(
    "the consumer's spans in the CreateOrder trace",
    async () => {
      const { traces } = await consoleJson(mesh, `/api/traces?service=${GATEWAY}&limit=500`);
      const fresh = traces.find((t) => !known.has(t.traceId));
      if (!fresh) return undefined;
      const trace = await consoleJson(mesh, `/api/traces/${fresh.traceId}`);
      const consumer = trace.spans.find((s) => s.kind === "CONSUMER");
      const consumerD1 = consumer && trace.spans.find((s) => s.parentSpanId === consumer.spanId);
      return consumerD1 ? trace : undefined;
    },
    20_000,
  );
  const { spans } = trace;
  const ordersServer = one(spans, "orders SERVER", (s) => s.service === ORDERS && s.kind === "SERVER");
  const producer = one(spans, "PRODUCER", (s) => s.kind === "PRODUCER");
  assert.equal(producer.service, ORDERS);
  assert.equal(producer.name, "send order-events");
  assert.equal(producer.parentSpanId, ordersServer.spanId);
  assert.equal(producer.attributes["messaging.system"], "cloudflare_queues");
  assert.equal(producer.attributes["messaging.destination.name"], "order-events");

  const consumer = one(spans, "CONSUMER", (s) => s.kind === "CONSUMER");
  assert.equal(consumer.service, ORDERS);
  assert.equal(consumer.name, "process order-events");
  assert.equal(consumer.parentSpanId, producer.spanId, "the consumer continues from the producer span");
  assert.equal(consumer.attributes["messaging.operation.type"], "process");
  assert.ok(consumer.attributes["messaging.message.id"]);
  assert.equal(consumer.status.code, 0);
  const lookup = one(spans, "the consumer's order lookup", (s) => s.parentSpanId === consumer.spanId && s.name === "SELECT orders");
  assert.equal(Number(lookup.attributes["db.response.returned_rows"]), 1);
  const events = typeof consumer.events === "string" ? JSON.parse(consumer.events) : consumer.events;
  const sent = events.find((e) => e.name === "order confirmation sent");
  assert.ok(sent, JSON.stringify(events));
  assert.equal(sent.attributes.order_id, orderId);
});
