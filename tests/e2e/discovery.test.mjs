// Service discovery end to end: orders calls catalog by the registry's answers
// (self-registration, drain, version weights) and keeps working when the
// registry does not.
//
// Which catalog Worker served a call is counted by the Worker itself: a fault
// rule with a 1 ms delay on every GetProduct counts each call it sees in its
// `injected` counter (fault rules live in the serving Worker's isolate).

import { test } from "node:test";
import assert from "node:assert/strict";
import { startMesh, callJson, until, sleep } from "./helpers.mjs";

const CATALOG = "shop.v1.CatalogService";

const registryOf = (mesh) => (method, msg) => callJson(mesh.urls.registry, `/workmesh.v1.Registry/${method}`, msg);

function order(requestId, items = 1) {
  return {
    customerId: "discovery",
    requestId,
    items: Array.from({ length: items }, (_, i) => ({ sku: `SKU-000${(i % 5) + 1}`, quantity: 1 })),
  };
}

async function createOrder(mesh, requestId, items = 1) {
  const res = await callJson(mesh.urls.orders, "/shop.v1.OrderService/CreateOrder", order(requestId, items));
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res;
}

/** Starts counting GetProduct calls in both catalog Workers (resets the counts). */
async function countCatalogCalls(mesh) {
  const rule = { service: CATALOG, method: "GetProduct", delayMs: 1, delayPercent: 100 };
  for (const worker of ["catalog", "catalog-canary"]) {
    const set = await callJson(mesh.urls[worker], "/workmesh.v1.Faults/SetFaults", { rules: [rule] });
    assert.equal(set.status, 200, JSON.stringify(set.body));
  }
}

/** GetProduct calls each catalog Worker served since `countCatalogCalls`. */
async function catalogCalls(mesh) {
  const counts = {};
  for (const [worker, version] of [["catalog", "v1"], ["catalog-canary", "v2"]]) {
    const got = await callJson(mesh.urls[worker], "/workmesh.v1.Faults/GetFaults", {});
    counts[version] = Number(got.body.rules?.[0]?.injected ?? 0);
  }
  return counts;
}

test("Workers register themselves after serving a call", async (t) => {
  // The runner registers nobody; the Workers get their instance ids as vars.
  const mesh = await startMesh({
    persistTo: false,
    ephemeralPorts: true,
    vars: { catalog: { WORKMESH_INSTANCE: "catalog-v1-1" }, orders: { WORKMESH_INSTANCE: "orders-v1-1" } },
  });
  t.after(() => mesh.dispose());
  const registry = registryOf(mesh);
  assert.deepEqual(mesh.registered, [], "the runner registered nobody");

  // The runner's readiness probe (a Health/Check) was each Worker's first
  // request, so they may have registered already; a call makes sure.
  await createOrder(mesh, "self-1");
  await until("catalog and orders are registered", async () => {
    const listed = (await registry("List", {})).body.instances ?? [];
    const ids = listed.map((i) => `${i.instanceId}:${i.service}:${i.version}:${i.binding}`).sort();
    return (
      JSON.stringify(ids) ===
        JSON.stringify(["catalog-v1-1:shop.v1.CatalogService:v1:CATALOG", "orders-v1-1:shop.v1.OrderService:v1:ORDERS"]) || ids
    );
  });
  // Once per isolate: more calls leave one record each, registered once.
  const before = (await registry("List", {})).body.instances.map((i) => i.registeredAtMs);
  await createOrder(mesh, "self-2");
  await sleep(200);
  const after = (await registry("List", {})).body.instances.map((i) => i.registeredAtMs);
  assert.deepEqual(after, before);
});

test("with WORKMESH_REGISTRY_TOKEN, Workers that hold the token register; others fall back", async (t) => {
  const TOKEN = "mesh-registry-token";
  const mesh = await startMesh({
    persistTo: false,
    ephemeralPorts: true,
    vars: {
      registry: { WORKMESH_REGISTRY_TOKEN: TOKEN },
      catalog: { WORKMESH_INSTANCE: "catalog-v1-1", WORKMESH_REGISTRY_TOKEN: TOKEN },
      // orders has no token: the registry refuses it, its calls use the static binding.
      orders: { WORKMESH_INSTANCE: "orders-v1-1" },
    },
  });
  t.after(() => mesh.dispose());
  await createOrder(mesh, "token-1");
  await createOrder(mesh, "token-2");
  const list = () =>
    callJson(mesh.urls.registry, "/workmesh.v1.Registry/List", {}, { authorization: `Bearer ${TOKEN}` });
  await until("catalog registered with its token", async () => {
    const ids = ((await list()).body.instances ?? []).map((i) => i.instanceId);
    return ids.includes("catalog-v1-1") || ids;
  });
  await sleep(300);
  const ids = ((await list()).body.instances ?? []).map((i) => i.instanceId);
  assert.ok(!ids.includes("orders-v1-1"), `orders could not register without the token: ${ids}`);
  const refused = await callJson(mesh.urls.registry, "/workmesh.v1.Registry/List", {});
  assert.equal(refused.status, 401);
});

test("drained instances get no new calls", async (t) => {
  const mesh = await startMesh({ persistTo: false, ephemeralPorts: true, register: true });
  t.after(() => mesh.dispose());
  const registry = registryOf(mesh);
  assert.deepEqual([...mesh.registered].sort(), ["catalog-v1-1", "catalog-v2-1", "orders-v1-1"]);
  await countCatalogCalls(mesh);

  // No weights: both versions take calls.
  for (let i = 0; i < 4; i++) await createOrder(mesh, `both-${i}`, 10);
  const both = await catalogCalls(mesh);
  assert.ok(both.v1 > 0 && both.v2 > 0, `both versions served: ${JSON.stringify(both)}`);

  const drained = await registry("Drain", { instanceId: "catalog-v2-1" });
  assert.equal(drained.body.instance.draining, true);
  // orders' answer is fresh for 5 s; the first call after that is still routed
  // by the stale answer and refreshes it in the background.
  await sleep(5_100);
  await createOrder(mesh, "refresh");
  await sleep(300);

  await countCatalogCalls(mesh);
  for (let i = 0; i < 10; i++) await createOrder(mesh, `drained-${i}`, 5);
  assert.deepEqual(await catalogCalls(mesh), { v1: 50, v2: 0 });
});

test("version weights 90/10 split 10,000 real calls within 3 points", async (t) => {
  const mesh = await startMesh({ persistTo: false, ephemeralPorts: true, register: true });
  t.after(() => mesh.dispose());
  const registry = registryOf(mesh);
  const set = await registry("SetWeights", { service: CATALOG, versionWeights: { v1: 90, v2: 10 } });
  assert.equal(set.status, 200, JSON.stringify(set.body));
  await countCatalogCalls(mesh);

  // 10,000 GetProduct calls (100 orders of 100 items), each routed on its
  // own. At p = 0.1 the standard deviation of the v2 share is 0.3 points, so
  // ±3 points is 10 sigma: only a wrong split fails this.
  const orders = 100;
  const items = 100;
  for (let i = 0; i < orders; i++) await createOrder(mesh, `split-${i}`, items);
  const counts = await catalogCalls(mesh);
  const total = counts.v1 + counts.v2;
  assert.equal(total, orders * items, JSON.stringify(counts));
  const v2Share = (100 * counts.v2) / total;
  assert.ok(Math.abs(v2Share - 10) <= 3, `v2 took ${v2Share.toFixed(2)}% (${JSON.stringify(counts)})`);
});

test("orders keeps working when the registry fails every call, cold and warm", async (t) => {
  const mesh = await startMesh({ persistTo: false, ephemeralPorts: true, register: true });
  t.after(() => mesh.dispose());
  const faults = await callJson(mesh.urls.registry, "/workmesh.v1.Faults/SetFaults", {
    rules: [{ service: "workmesh.v1.Registry", abortCode: "unavailable", abortPercent: 100 }],
  });
  assert.equal(faults.status, 200, JSON.stringify(faults.body));

  // Cold: the inline Resolve fails, the static binding serves.
  await createOrder(mesh, "down-cold", 3);
  // Warm: no more inline Resolves; calls keep going out.
  for (let i = 0; i < 5; i++) await createOrder(mesh, `down-warm-${i}`, 3);
  const rules = (await callJson(mesh.urls.registry, "/workmesh.v1.Faults/GetFaults", {})).body.rules;
  assert.ok(Number(rules[0].injected) >= 1, "orders did try the registry");
});

test("a registry that hangs costs a cold call at most the resolve timeout", async (t) => {
  const mesh = await startMesh({ persistTo: false, ephemeralPorts: true, register: true });
  t.after(() => mesh.dispose());
  await callJson(mesh.urls.registry, "/workmesh.v1.Faults/SetFaults", {
    rules: [{ service: "workmesh.v1.Registry", delayMs: 5000, delayPercent: 100 }],
  });
  const start = Date.now();
  await createOrder(mesh, "hang-cold", 2);
  const cold = Date.now() - start;
  assert.ok(cold < 2000, `cold call took ${cold} ms with a hanging registry`);
  const warmStart = Date.now();
  for (let i = 0; i < 5; i++) await createOrder(mesh, `hang-warm-${i}`, 2);
  const warm = (Date.now() - warmStart) / 5;
  assert.ok(warm < 500, `warm calls took ${warm} ms each with a hanging registry`);
});

test("without a REGISTRY binding, calls go to the static binding", async (t) => {
  const mesh = await startMesh({ persistTo: false, ephemeralPorts: true, services: { orders: { REGISTRY: null } } });
  t.after(() => mesh.dispose());
  await countCatalogCalls(mesh);
  for (let i = 0; i < 3; i++) await createOrder(mesh, `static-${i}`, 2);
  assert.deepEqual(await catalogCalls(mesh), { v1: 6, v2: 0 });
});

test("a cold call that is cancelled does not make the next calls wait for its Resolve", async (t) => {
  const mesh = await startMesh({ persistTo: false, ephemeralPorts: true, register: true });
  t.after(() => mesh.dispose());
  await callJson(mesh.urls.registry, "/workmesh.v1.Faults/SetFaults", {
    rules: [{ service: "workmesh.v1.Registry", delayMs: 5000, delayPercent: 100 }],
  });
  // The first call starts the isolate's inline Resolve, then its client goes away.
  const aborted = new AbortController();
  const first = fetch(new URL("/shop.v1.OrderService/CreateOrder", mesh.urls.orders), {
    method: "POST",
    headers: { "content-type": "application/json", "connect-protocol-version": "1" },
    body: JSON.stringify(order("cancelled-cold", 2)),
    signal: aborted.signal,
  }).catch(() => null);
  await sleep(50);
  aborted.abort();
  await first;
  // Later calls wait for that Resolve on their own timers, at most the
  // resolve timeout, then route by the static binding.
  for (let i = 0; i < 3; i++) {
    const start = Date.now();
    await createOrder(mesh, `after-cancel-${i}`, 2);
    const took = Date.now() - start;
    assert.ok(took < 2000, `call ${i} after a cancelled cold call took ${took} ms`);
  }
});

test("sibling calls abandoned after a not_found are not reported as instance failures", async (t) => {
  const mesh = await startMesh({ persistTo: false, ephemeralPorts: true, register: true });
  t.after(() => mesh.dispose());
  const registry = registryOf(mesh);
  // Half the lookups are slow, so the unknown SKU's fast not_found makes
  // CreateOrder drop its slow sibling calls (try_join_all) before they answer.
  const slow = { service: CATALOG, method: "GetProduct", delayMs: 300, delayPercent: 50 };
  for (const worker of ["catalog", "catalog-canary"]) {
    const set = await callJson(mesh.urls[worker], "/workmesh.v1.Faults/SetFaults", { rules: [slow] });
    assert.equal(set.status, 200, JSON.stringify(set.body));
  }
  for (let i = 0; i < 5; i++) {
    const body = order(`unknown-${i}`, 9);
    body.items.push({ sku: "NO-SUCH-SKU", quantity: 1 });
    const res = await callJson(mesh.urls.orders, "/shop.v1.OrderService/CreateOrder", body);
    assert.notEqual(res.status, 200, JSON.stringify(res.body));
  }
  // Reports go at most every 2 s, after a response.
  await sleep(2_100);
  await createOrder(mesh, "report-trigger", 1);
  let catalogs;
  await until("orders reported its calls to catalog", async () => {
    catalogs = ((await registry("List", { service: CATALOG })).body.instances ?? []).filter((i) =>
      i.instanceId.startsWith("catalog-"),
    );
    const successes = catalogs.reduce((n, i) => n + Number(i.reportedSuccesses ?? 0), 0);
    return successes > 0 || catalogs;
  });
  for (const instance of catalogs) {
    assert.equal(Number(instance.reportedFailures ?? 0), 0, JSON.stringify(instance));
    assert.ok(!Number(instance.ejectedUntilMs ?? 0), JSON.stringify(instance));
  }
});

test("when every discovered instance's breaker is open, calls go back to the static binding", async (t) => {
  const mesh = await startMesh({ persistTo: false, ephemeralPorts: true, register: true });
  t.after(() => mesh.dispose());
  const registry = registryOf(mesh);
  // The registry sends all of catalog's traffic to an instance nobody answers at.
  const dead = { service: CATALOG, instanceId: "catalog-dead", version: "v3", url: "http://127.0.0.1:9" };
  const reg = await registry("Register", { instance: dead });
  assert.equal(reg.status, 200, JSON.stringify(reg.body));
  const set = await registry("SetWeights", { service: CATALOG, versionWeights: { v3: 100 } });
  assert.equal(set.status, 200, JSON.stringify(set.body));

  // The first calls fail until the dead instance's breaker opens (5 failures)...
  let failed = 0;
  await until(
    "orders recovers through the static binding",
    async () => {
      const res = await callJson(mesh.urls.orders, "/shop.v1.OrderService/CreateOrder", order(`dead-${failed}`));
      if (res.status === 200) return true;
      failed++;
      return res.body;
    },
    10_000,
  );
  assert.ok(failed >= 1, "the dead instance was tried first");
  // ...then the static binding (catalog v1) serves while the breaker is open.
  await countCatalogCalls(mesh);
  for (let i = 0; i < 3; i++) await createOrder(mesh, `static-again-${i}`, 2);
  assert.deepEqual(await catalogCalls(mesh), { v1: 6, v2: 0 });
});
