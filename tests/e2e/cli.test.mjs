// `cargo workmesh call`: JSON in, JSON out, schema from proto/, errors as
// Connect errors with a non-zero exit.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startMesh, workmesh } from "./helpers.mjs";

let mesh;
before(async () => {
  mesh = await startMesh({ persistTo: false, ephemeralPorts: true });
});
after(async () => {
  await mesh?.dispose();
});

test("call sends binary protobuf built from JSON and prints the answer as JSON", () => {
  const res = workmesh("call", "shop.v1.CatalogService/GetProduct", '{"sku":"SKU-0004"}', "--url", mesh.urls.catalog);
  assert.equal(res.code, 0, res.stderr);
  assert.deepEqual(JSON.parse(res.stdout).product.price, { currencyCode: "EUR", units: "119" });
});

test("call --json goes through orders to catalog", () => {
  const order = '{"customerId":"cli","requestId":"cli-1","items":[{"sku":"SKU-0002","quantity":2}]}';
  const res = workmesh("call", "shop.v1.OrderService/CreateOrder", order, "--json", "--url", mesh.urls.orders);
  assert.equal(res.code, 0, res.stderr);
  assert.deepEqual(JSON.parse(res.stdout).order.total, { currencyCode: "EUR", units: "29" });
});

test("call reports Connect errors and schema mistakes with a non-zero exit", () => {
  const missing = workmesh("call", "shop.v1.CatalogService/GetProduct", '{"sku":"nope"}', "--url", mesh.urls.catalog);
  assert.equal(missing.code, 1);
  assert.equal(JSON.parse(missing.stderr.split("\n")[0]).code, "not_found");

  const badField = workmesh("call", "shop.v1.CatalogService/GetProduct", '{"skew":"x"}', "--url", mesh.urls.catalog);
  assert.equal(badField.code, 1);
  assert.match(badField.stderr, /not a valid shop\.v1\.GetProductRequest.*\n?.*skew/s);
  assert.doesNotMatch(badField.stderr, /Stack backtrace/);

  const unknown = workmesh("call", "shop.v1.Nothing/Get", "{}");
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /shop\.v1\.CatalogService/, "lists the services the contracts define");
});
