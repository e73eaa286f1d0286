// The registry Durable Object (SQLite storage) through its Worker.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { startMesh, callJson, tempStateDir } from "./helpers.mjs";

const instance = (id, version = "v1") => ({
  service: "shop.v1.CatalogService",
  instanceId: id,
  version,
  binding: "CATALOG",
  zone: "local",
  metadata: { owner: "shop-team" },
});

test("register, resolve, drain and deregister instances", async (t) => {
  const mesh = await startMesh({ persistTo: false, ephemeralPorts: true });
  t.after(() => mesh.dispose());
  const registry = (method, msg) => callJson(mesh.urls.registry, `/workmesh.v1.Registry/${method}`, msg);

  const reg = await registry("Register", { instance: instance("catalog-a") });
  assert.equal(reg.status, 200, JSON.stringify(reg.body));
  assert.equal(reg.body.instance.health, "HEALTH_STATE_HEALTHY");
  assert.equal(reg.body.instance.weight, 100);
  assert.ok(Number(reg.body.heartbeatIntervalMs) > 0);
  await registry("Register", { instance: instance("catalog-b", "v2") });

  const resolved = await registry("Resolve", { service: "shop.v1.CatalogService" });
  assert.equal(resolved.status, 200);
  assert.deepEqual(resolved.body.instances.map((i) => i.instanceId).sort(), ["catalog-a", "catalog-b"]);
  assert.equal(resolved.body.instances[0].metadata.owner, "shop-team");

  const again = await registry("Resolve", { service: "shop.v1.CatalogService", knownVersionToken: resolved.body.versionToken });
  assert.equal(again.body.notModified, true);
  assert.equal(again.body.instances ?? undefined, undefined);

  const drained = await registry("Drain", { instanceId: "catalog-b" });
  assert.equal(drained.body.instance.draining, true);
  const afterDrain = await registry("Resolve", { service: "shop.v1.CatalogService", knownVersionToken: resolved.body.versionToken });
  assert.notEqual(afterDrain.body.notModified, true);
  assert.deepEqual(afterDrain.body.instances.map((i) => i.instanceId), ["catalog-a"]);

  const removed = await registry("Deregister", { instanceId: "catalog-a" });
  assert.equal(removed.body.removed, true);
  const listed = await registry("List", {});
  assert.deepEqual(listed.body.instances.map((i) => i.instanceId), ["catalog-b"]);
});

test("registry rejects invalid input and unknown services", async (t) => {
  const mesh = await startMesh({ persistTo: false, ephemeralPorts: true });
  t.after(() => mesh.dispose());
  const registry = (method, msg) => callJson(mesh.urls.registry, `/workmesh.v1.Registry/${method}`, msg);

  const noEndpoint = await registry("Register", { instance: { service: "x", instanceId: "y" } });
  assert.equal(noEndpoint.status, 400);
  assert.equal(noEndpoint.body.code, "invalid_argument");
  assert.match(noEndpoint.body.message, /endpoint/);

  const unknown = await registry("Resolve", { service: "nobody.v1.Nothing" });
  assert.equal(unknown.status, 404);
  assert.equal(unknown.body.code, "not_found");
});

test("registry and D1 state survive a restart of the local mesh", async () => {
  const state = tempStateDir();
  try {
    let mesh = await startMesh({ persistTo: state, ephemeralPorts: true });
    await callJson(mesh.urls.registry, "/workmesh.v1.Registry/Register", { instance: instance("catalog-persist") });
    const created = await callJson(mesh.urls.orders, "/shop.v1.OrderService/CreateOrder", {
      customerId: "persist",
      requestId: "p-1",
      items: [{ sku: "SKU-0002", quantity: 3 }],
    });
    assert.equal(created.status, 200, JSON.stringify(created.body));
    await mesh.dispose();

    mesh = await startMesh({ persistTo: state, ephemeralPorts: true });
    try {
      const listed = await callJson(mesh.urls.registry, "/workmesh.v1.Registry/List", {});
      assert.deepEqual(listed.body.instances.map((i) => i.instanceId), ["catalog-persist"]);
      const order = await callJson(mesh.urls.orders, "/shop.v1.OrderService/GetOrder", { orderId: created.body.order.orderId });
      assert.equal(order.status, 200);
      // Migrations ran once: the second start applied none.
      assert.deepEqual(mesh.migrations, []);
    } finally {
      await mesh.dispose();
    }
  } finally {
    rmSync(state, { recursive: true, force: true });
  }
});
