// The shop slice end to end: catalog in D1, orders calling catalog over a
// service binding, every Worker in one workerd, called over loopback.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startMesh, callJson, getJson } from "./helpers.mjs";

let mesh;
before(async () => {
  mesh = await startMesh({ persistTo: false, ephemeralPorts: true });
});
after(async () => {
  await mesh?.dispose();
});

const catalog = (method, msg) => callJson(mesh.urls.catalog, `/shop.v1.CatalogService/${method}`, msg);
const orders = (method, msg, headers) => callJson(mesh.urls.orders, `/shop.v1.OrderService/${method}`, msg, headers);

test("every Worker answers workmesh.v1.Health/Check", async () => {
  for (const [name, url] of Object.entries(mesh.urls)) {
    const res = await callJson(url, "/workmesh.v1.Health/Check", {});
    assert.equal(res.status, 200, `${name}: ${JSON.stringify(res.body)}`);
    assert.equal(res.body.status, "SERVING_STATUS_SERVING", name);
  }
});

test("catalog serves a product from D1 in proto3 JSON", async () => {
  const res = await catalog("GetProduct", { sku: "SKU-0001" });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("content-type"), "application/json");
  assert.deepEqual(res.body.product, {
    sku: "SKU-0001",
    name: "Trail runner shoe",
    description: "Lightweight shoe for rough ground",
    price: { currencyCode: "EUR", units: "89", nanos: 990000000 },
  });
});

test("a NO_SIDE_EFFECTS method answers GET", async () => {
  const res = await getJson(mesh.urls.catalog, "/shop.v1.CatalogService/GetProduct", { sku: "SKU-0003" });
  assert.equal(res.status, 200);
  assert.equal(res.body.product.name, "Headlamp");
});

test("catalog pages through products with a page token", async () => {
  const first = await catalog("ListProducts", { pageSize: 2 });
  assert.equal(first.status, 200);
  assert.deepEqual(first.body.products.map((p) => p.sku), ["SKU-0001", "SKU-0002"]);
  const second = await catalog("ListProducts", { pageSize: 10, pageToken: first.body.nextPageToken });
  assert.deepEqual(second.body.products.map((p) => p.sku), ["SKU-0003", "SKU-0004", "SKU-0005"]);
  assert.equal(second.body.nextPageToken ?? "", "");
});

test("bad input gets the right Connect error, never a 500", async () => {
  const missing = await catalog("GetProduct", { sku: "NOPE" });
  assert.equal(missing.status, 404);
  assert.equal(missing.body.code, "not_found");
  assert.match(missing.body.message, /NOPE/);

  const empty = await catalog("GetProduct", {});
  assert.equal(empty.status, 400);
  assert.equal(empty.body.code, "invalid_argument");

  const garbage = await catalog("GetProduct", "{not json");
  assert.equal(garbage.status, 400);
  assert.equal(garbage.body.code, "invalid_argument");

  const unknown = await catalog("DeleteEverything", {});
  assert.equal(unknown.status, 404);
  assert.equal(unknown.body.code, "unimplemented");

  const res = await fetch(new URL("/shop.v1.CatalogService/GetProduct", mesh.urls.catalog), {
    method: "POST",
    headers: { "content-type": "text/plain" },
    body: "hi",
  });
  assert.equal(res.status, 415);
});

test("orders prices an order through catalog and stores it", async () => {
  const created = await orders("CreateOrder", {
    customerId: "cust-1",
    requestId: "req-1",
    items: [
      { sku: "SKU-0001", quantity: 2 },
      { sku: "SKU-0002", quantity: 1 },
    ],
  });
  assert.equal(created.status, 200, JSON.stringify(created.body));
  const order = created.body.order;
  // 2 × 89.99 + 14.50
  assert.deepEqual(order.total, { currencyCode: "EUR", units: "194", nanos: 480000000 });
  assert.equal(order.status, "ORDER_STATUS_CONFIRMED");
  assert.match(order.orderId, /^[0-9a-f-]{36}$/);

  const fetched = await orders("GetOrder", { orderId: order.orderId });
  assert.equal(fetched.status, 200);
  assert.deepEqual(fetched.body.order, order);

  const listed = await orders("ListOrders", { customerId: "cust-1" });
  assert.deepEqual(listed.body.orders.map((o) => o.orderId), [order.orderId]);
});

test("a repeated request_id returns the first order (CreateOrder is idempotent)", async () => {
  const request = { customerId: "cust-2", requestId: "req-same", items: [{ sku: "SKU-0003", quantity: 1 }] };
  const [a, b] = await Promise.all([orders("CreateOrder", request), orders("CreateOrder", request)]);
  assert.equal(a.status, 200, JSON.stringify(a.body));
  assert.equal(b.status, 200, JSON.stringify(b.body));
  assert.equal(a.body.order.orderId, b.body.order.orderId);
  const listed = await orders("ListOrders", { customerId: "cust-2" });
  assert.equal(listed.body.orders.length, 1);
});

test("orders rejects unknown products and bad orders with invalid_argument", async () => {
  const unknown = await orders("CreateOrder", {
    customerId: "cust-3",
    requestId: "r",
    items: [{ sku: "SKU-9999", quantity: 1 }],
  });
  assert.equal(unknown.status, 400);
  assert.equal(unknown.body.code, "invalid_argument");
  assert.match(unknown.body.message, /SKU-9999/);

  const noKey = await orders("CreateOrder", { customerId: "cust-3", items: [{ sku: "SKU-0001", quantity: 1 }] });
  assert.equal(noKey.body.code, "invalid_argument");
  assert.match(noKey.body.message, /request_id/);

  const zero = await orders("CreateOrder", { customerId: "c", requestId: "r", items: [{ sku: "SKU-0001", quantity: 0 }] });
  assert.equal(zero.body.code, "invalid_argument");

  const missing = await orders("GetOrder", { orderId: "no-such-order" });
  assert.equal(missing.status, 404);
  assert.equal(missing.body.code, "not_found");
});
