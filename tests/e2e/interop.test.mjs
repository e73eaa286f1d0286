// Interop: an independent Connect implementation (connect-es on Node, with
// code from protoc-gen-es) calls the Rust Workers of the running local mesh,
// in binary and JSON, over POST and GET, and sees the same error codes.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { createClient, ConnectError, Code } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { Agent } from "node:http";
import { startMesh } from "./helpers.mjs";

const root = fileURLToPath(new URL("../..", import.meta.url));
let mesh;
let catalogPb;
let ordersPb;

before(async () => {
  // Generate from the current contracts, so the test always matches them.
  execFileSync("node_modules/.bin/buf", ["generate", "--template", "tests/interop/buf.gen.yaml"], {
    cwd: root,
    env: { ...process.env, PATH: `${root}/node_modules/.bin:${process.env.PATH}` },
    stdio: "inherit",
  });
  catalogPb = await import("../interop/gen/shop/v1/catalog_pb.js");
  ordersPb = await import("../interop/gen/shop/v1/orders_pb.js");
  mesh = await startMesh({ persistTo: false, ephemeralPorts: true });
});
after(async () => {
  await mesh?.dispose();
});

/** An HTTP agent that records the method of every request connect-node sends. */
class RecordingAgent extends Agent {
  methods = [];
  addRequest(request, options) {
    this.methods.push(request.method);
    return super.addRequest(request, options);
  }
}

/** A client plus the HTTP methods its calls went out with. */
function client(service, baseUrl, { binary, get }) {
  const agent = new RecordingAgent();
  const methods = agent.methods;
  const transport = createConnectTransport({
    baseUrl,
    httpVersion: "1.1",
    useBinaryFormat: binary,
    useHttpGet: get,
    nodeOptions: { agent },
  });
  return { client: createClient(service, transport), methods };
}

for (const binary of [true, false]) {
  for (const get of [false, true]) {
    const name = `${binary ? "binary" : "JSON"} over ${get ? "GET" : "POST"}`;
    test(`catalog.GetProduct, ${name}`, async () => {
      const { client: catalog, methods } = client(catalogPb.CatalogService, mesh.urls.catalog, { binary, get });
      const res = await catalog.getProduct({ sku: "SKU-0001" });
      assert.equal(res.product.name, "Trail runner shoe");
      assert.equal(res.product.price.currencyCode, "EUR");
      assert.equal(res.product.price.units, 89n);
      assert.equal(res.product.price.nanos, 990000000);
      assert.deepEqual(methods, [get ? "GET" : "POST"]);
    });

    test(`errors keep their Connect code, ${name}`, async () => {
      const { client: catalog } = client(catalogPb.CatalogService, mesh.urls.catalog, { binary, get });
      await assert.rejects(catalog.getProduct({ sku: "NOPE" }), (e) => {
        assert.ok(e instanceof ConnectError);
        assert.equal(e.code, Code.NotFound);
        assert.match(e.rawMessage, /NOPE/);
        return true;
      });
      await assert.rejects(catalog.getProduct({ sku: "" }), (e) => e.code === Code.InvalidArgument);
    });
  }
}

test("orders.CreateOrder (IDEMPOTENT, so POST) prices through catalog, binary", async () => {
  const { client: orders, methods } = client(ordersPb.OrderService, mesh.urls.orders, { binary: true, get: true });
  const res = await orders.createOrder({
    customerId: "interop",
    requestId: "interop-1",
    items: [{ sku: "SKU-0005", quantity: 3 }],
  });
  assert.equal(res.order.total.units, 72n);
  assert.equal(res.order.items[0].quantity, 3);
  assert.equal(res.order.status, ordersPb.OrderStatus.CONFIRMED);
  assert.deepEqual(methods, ["POST"], "only NO_SIDE_EFFECTS methods may use GET");

  const again = await orders.getOrder({ orderId: res.order.orderId });
  assert.equal(again.order.orderId, res.order.orderId);
  assert.deepEqual(methods, ["POST", "GET"]);
});

test("a connect-es timeout travels as Connect-Timeout-Ms and is accepted", async () => {
  const { client: catalog } = client(catalogPb.CatalogService, mesh.urls.catalog, { binary: true, get: false });
  // A generous deadline travels as Connect-Timeout-Ms and the call succeeds.
  const ok = await catalog.getProduct({ sku: "SKU-0002" }, { timeoutMs: 5_000 });
  assert.equal(ok.product.sku, "SKU-0002");
});
