// The gateway end to end: Connect calls from outside the mesh, forwarded
// undecoded to orders and catalog over service bindings, in JSON and proto,
// POST and GET; errors the services answer pass through, failures before any
// answer reach callers only as a generic message; an optional bearer token
// closes the edge.

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

const ORDERS = "shop.v1.OrderService";
const CATALOG = "shop.v1.CatalogService";
const gateway = (path, msg, headers) => callJson(mesh.urls.gateway, path, msg, headers);

// A minimal protobuf writer and reader: enough for these messages, so the
// test needs no generated code (and checks the gateway never re-encodes).
const utf8 = new TextEncoder();
function varint(n) {
  const out = [];
  let v = BigInt(n);
  do {
    let byte = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) byte |= 0x80;
    out.push(byte);
  } while (v > 0n);
  return out;
}
const field = (tag, wire) => varint((tag << 3) | wire);
const str = (tag, s) => {
  const bytes = utf8.encode(s);
  return [...field(tag, 2), ...varint(bytes.length), ...bytes];
};
const msg = (tag, bytes) => [...field(tag, 2), ...varint(bytes.length), ...bytes];
const uint = (tag, n) => [...field(tag, 0), ...varint(n)];

/** Decodes one message level into {tag: [values]} (length-delimited as bytes, varints as BigInt). */
function decode(bytes) {
  const out = {};
  let i = 0;
  const readVarint = () => {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      const b = bytes[i++];
      result |= BigInt(b & 0x7f) << shift;
      if (!(b & 0x80)) return result;
      shift += 7n;
    }
  };
  while (i < bytes.length) {
    const key = Number(readVarint());
    const [tag, wire] = [key >> 3, key & 7];
    let value;
    if (wire === 0) value = readVarint();
    else if (wire === 2) {
      const len = Number(readVarint());
      value = bytes.subarray(i, i + len);
      i += len;
    } else throw new Error(`wire type ${wire} not handled`);
    (out[tag] ??= []).push(value);
  }
  return out;
}
const text = (bytes) => new TextDecoder().decode(bytes);

async function callProto(path, body, headers = {}) {
  const res = await fetch(new URL(path, mesh.urls.gateway), {
    method: "POST",
    headers: { "content-type": "application/proto", "connect-protocol-version": "1", ...headers },
    body: new Uint8Array(body),
  });
  return { status: res.status, headers: res.headers, body: new Uint8Array(await res.arrayBuffer()) };
}

let requests = 0;
const order = () => ({
  customerId: "gw-cust",
  requestId: `gw-req-${++requests}`,
  items: [
    { sku: "SKU-0001", quantity: 2 },
    { sku: "SKU-0003", quantity: 1 },
  ],
});

test("CreateOrder through the gateway in JSON", async () => {
  const res = await gateway(`/${ORDERS}/CreateOrder`, order());
  assert.equal(res.status, 200, JSON.stringify(res.body));
  assert.equal(res.headers.get("content-type"), "application/json");
  assert.equal(res.body.order.customerId, "gw-cust");
  assert.equal(res.body.order.items.length, 2);
  assert.equal(res.body.order.status, "ORDER_STATUS_CONFIRMED");
  // Orders answers GetOrder for it: the call really reached orders' D1.
  const got = await callJson(mesh.urls.orders, `/${ORDERS}/GetOrder`, { orderId: res.body.order.orderId });
  assert.equal(got.status, 200);
  assert.deepEqual(got.body.order, res.body.order);
});

test("CreateOrder through the gateway in proto", async () => {
  const body = [
    ...str(1, "gw-proto-cust"),
    ...msg(2, [...str(1, "SKU-0002"), ...uint(2, 3)]),
    ...str(3, `gw-proto-req-${++requests}`),
  ];
  const res = await callProto(`/${ORDERS}/CreateOrder`, body);
  assert.equal(res.status, 200, text(res.body));
  assert.equal(res.headers.get("content-type"), "application/proto");
  const orderMsg = decode(decode(res.body)[1][0]);
  assert.equal(text(orderMsg[2][0]), "gw-proto-cust");
  const item = decode(orderMsg[3][0]);
  assert.equal(text(item[1][0]), "SKU-0002");
  assert.equal(item[2][0], 3n);
  assert.equal(orderMsg[5][0], 2n, "ORDER_STATUS_CONFIRMED");
});

test("GetProduct and ListProducts through the gateway, JSON and proto", async () => {
  const json = await gateway(`/${CATALOG}/GetProduct`, { sku: "SKU-0001" });
  assert.equal(json.status, 200, JSON.stringify(json.body));
  assert.equal(json.body.product.name, "Trail runner shoe");

  const proto = await callProto(`/${CATALOG}/GetProduct`, str(1, "SKU-0003"));
  assert.equal(proto.status, 200);
  const product = decode(decode(proto.body)[1][0]);
  assert.equal(text(product[1][0]), "SKU-0003");
  assert.equal(text(product[2][0]), "Headlamp");

  const list = await gateway(`/${CATALOG}/ListProducts`, { pageSize: 2 });
  assert.equal(list.status, 200);
  assert.deepEqual(list.body.products.map((p) => p.sku), ["SKU-0001", "SKU-0002"]);
  const listProto = await callProto(`/${CATALOG}/ListProducts`, uint(1, 3));
  assert.equal(listProto.status, 200);
  assert.equal(decode(listProto.body)[1].length, 3);
});

test("GET works for GetProduct, and is refused for CreateOrder", async () => {
  const res = await getJson(mesh.urls.gateway, `/${CATALOG}/GetProduct`, { sku: "SKU-0003" });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  assert.equal(res.body.product.name, "Headlamp");
  const refused = await getJson(mesh.urls.gateway, `/${ORDERS}/CreateOrder`, order());
  assert.equal(refused.status, 405);
  assert.equal(refused.headers.get("allow"), "POST");
});

test("unknown methods and services are unimplemented at the gateway", async () => {
  for (const path of [`/${CATALOG}/DeleteEverything`, "/shop.v1.PaymentService/Pay", "/nope"]) {
    const res = await gateway(path, {});
    assert.equal(res.status, 404, path);
    assert.equal(res.body.code, "unimplemented", path);
  }
});

test("upstream errors pass through with their code", async () => {
  const missing = await gateway(`/${CATALOG}/GetProduct`, { sku: "NOPE" });
  assert.equal(missing.status, 404);
  assert.equal(missing.body.code, "not_found");
  assert.match(missing.body.message, /NOPE/);
  const noOrder = await gateway(`/${ORDERS}/GetOrder`, { orderId: "no-such-order" });
  assert.equal(noOrder.body.code, "not_found");
  const bad = await gateway(`/${ORDERS}/CreateOrder`, { customerId: "x", requestId: "y", items: [{ sku: "NOPE", quantity: 1 }] });
  assert.equal(bad.status, 400);
  assert.equal(bad.body.code, "invalid_argument");
  assert.match(bad.body.message, /unknown sku/);
});

test("an unavailable answered by catalog passes through with its own message", async () => {
  // A mesh of its own: the gateway's breaker has seen nothing, so the one
  // call's failed attempts (3 at most) cannot trip it, and the answer is
  // catalog's rather than the breaker's.
  const fresh = await startMesh({ persistTo: false, ephemeralPorts: true });
  try {
    const faults = await callJson(fresh.urls.catalog, "/workmesh.v1.Faults/SetFaults", {
      rules: [{ service: CATALOG, method: "GetProduct", abortCode: "unavailable", abortPercent: 100 }],
    });
    assert.equal(faults.status, 200, JSON.stringify(faults.body));
    const res = await callJson(fresh.urls.gateway, `/${CATALOG}/GetProduct`, { sku: "SKU-0001" });
    assert.equal(res.status, 503, JSON.stringify(res.body));
    assert.equal(res.body.code, "unavailable");
    assert.equal(res.body.message, `fault injected on ${CATALOG}/GetProduct`);
    const seen = await callJson(fresh.urls.catalog, "/workmesh.v1.Faults/GetFaults", {});
    assert.ok(Number(seen.body.rules[0].injected) >= 1, "catalog answered the failure itself");
  } finally {
    await fresh.dispose();
  }
});

test("a failed fetch reaches the caller as unavailable without internal names or URLs", async () => {
  // The registry routes catalog to a URL nothing listens on: the gateway's
  // fetch fails before any upstream answers.
  const isolated = await startMesh({ persistTo: false, ephemeralPorts: true });
  try {
    const unreachable = "http://127.0.0.1:9";
    const reg = await callJson(isolated.urls.registry, "/workmesh.v1.Registry/Register", {
      instance: { service: CATALOG, instanceId: "catalog-unreachable", version: "v1", url: unreachable, weight: 100 },
    });
    assert.equal(reg.status, 200, JSON.stringify(reg.body));
    const res = await callJson(isolated.urls.gateway, `/${CATALOG}/GetProduct`, { sku: "SKU-0001" });
    assert.equal(res.status, 503, JSON.stringify(res.body));
    assert.equal(res.body.code, "unavailable");
    assert.equal(res.body.message, "the upstream service is unavailable");
    assert.equal(res.body.details, undefined);
    const leaked = JSON.stringify(res.body) + JSON.stringify([...res.headers]);
    for (const internal of ["127.0.0.1", "fetch", "CATALOG", "breaker"]) {
      assert.ok(!leaked.includes(internal), `${internal} leaked: ${leaked}`);
    }
  } finally {
    await isolated.dispose();
  }
});

test("Connect-Timeout-Ms is honoured at the edge", async () => {
  // Slow catalog down, then call with a budget shorter than the delay.
  const faults = await callJson(mesh.urls.catalog, "/workmesh.v1.Faults/SetFaults", {
    rules: [{ service: CATALOG, method: "GetProduct", delayMs: 500, delayPercent: 100 }],
  });
  assert.equal(faults.status, 200, JSON.stringify(faults.body));
  try {
    const started = Date.now();
    const res = await gateway(`/${CATALOG}/GetProduct`, { sku: "SKU-0001" }, { "connect-timeout-ms": "150" });
    assert.equal(res.body.code, "deadline_exceeded", JSON.stringify(res.body));
    assert.ok(Date.now() - started < 450, "the gateway gave up at its deadline");
    // Catalog saw what was left of the budget, not more.
    const seen = await callJson(mesh.urls.catalog, "/workmesh.v1.Faults/GetFaults", {});
    const forwarded = Number(seen.body.rules[0].lastTimeoutMs);
    assert.ok(forwarded > 0 && forwarded <= 150, `catalog saw Connect-Timeout-Ms ${forwarded}`);
  } finally {
    await callJson(mesh.urls.catalog, "/workmesh.v1.Faults/SetFaults", { rules: [] });
  }
});

test("with WORKMESH_GATEWAY_TOKEN set, calls need the bearer token", async () => {
  const closed = await startMesh({
    persistTo: false,
    ephemeralPorts: true,
    vars: { gateway: { WORKMESH_GATEWAY_TOKEN: "e2e-secret" } },
  });
  try {
    const path = `/${CATALOG}/GetProduct`;
    const none = await callJson(closed.urls.gateway, path, { sku: "SKU-0001" });
    assert.equal(none.status, 401);
    assert.equal(none.body.code, "unauthenticated");
    const wrong = await callJson(closed.urls.gateway, path, { sku: "SKU-0001" }, { authorization: "Bearer nope" });
    assert.equal(wrong.body.code, "unauthenticated");
    const right = await callJson(closed.urls.gateway, path, { sku: "SKU-0001" }, { authorization: "Bearer e2e-secret" });
    assert.equal(right.status, 200, JSON.stringify(right.body));
    assert.equal(right.body.product.sku, "SKU-0001");
    // Health stays open for probes.
    const health = await callJson(closed.urls.gateway, "/workmesh.v1.Health/Check", {});
    assert.equal(health.status, 200);
  } finally {
    await closed.dispose();
  }
});
