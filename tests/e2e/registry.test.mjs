// The registry Durable Object (SQLite storage) through its Worker.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { createServer } from "node:http";
import { startMesh, callJson, tempStateDir, until } from "./helpers.mjs";

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

test("active health checks mark a failing instance unhealthy and bring it back", async (t) => {
  const mesh = await startMesh({
    persistTo: false,
    ephemeralPorts: true,
    vars: { registry: { WORKMESH_HEALTH_INTERVAL_MS: "150", WORKMESH_HEALTH_TIMEOUT_MS: "500" } },
  });
  t.after(() => mesh.dispose());
  const registry = (method, msg) => callJson(mesh.urls.registry, `/workmesh.v1.Registry/${method}`, msg);
  const setCatalogFaults = (rules) => callJson(mesh.urls.catalog, "/workmesh.v1.Faults/SetFaults", { rules });
  const health = async () => (await registry("List", { service: "shop.v1.CatalogService" })).body.instances[0].health;
  const resolvedIds = async () =>
    ((await registry("Resolve", { service: "shop.v1.CatalogService" })).body.instances ?? []).map((i) => i.instanceId);
  const eventually = async (what, predicate, timeoutMs = 4000) => {
    const deadline = Date.now() + timeoutMs;
    let last;
    while (Date.now() < deadline) {
      last = await predicate();
      if (last === true) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.fail(`${what} within ${timeoutMs} ms (last: ${JSON.stringify(last)})`);
  };

  const reg = await registry("Register", { instance: instance("catalog-probed") });
  assert.equal(reg.status, 200, JSON.stringify(reg.body));
  const before = await registry("Resolve", { service: "shop.v1.CatalogService" });
  assert.deepEqual(before.body.instances.map((i) => i.instanceId), ["catalog-probed"]);

  // Several rounds of passing probes keep it healthy.
  await new Promise((r) => setTimeout(r, 600));
  assert.equal(await health(), "HEALTH_STATE_HEALTHY");

  const set = await setCatalogFaults([{ service: "workmesh.v1.Health", abortCode: "unavailable", abortPercent: 100 }]);
  assert.equal(set.status, 200, JSON.stringify(set.body));
  await until("List shows it unhealthy", async () => (await health()) === "HEALTH_STATE_UNHEALTHY" || (await health()));
  assert.deepEqual(await resolvedIds(), []);
  const down = await registry("Resolve", { service: "shop.v1.CatalogService", knownVersionToken: before.body.versionToken });
  assert.notEqual(down.body.notModified, true, "the version token changed when health flipped");
  // The probes went through catalog's fault rule: it counted them.
  const rules = (await callJson(mesh.urls.catalog, "/workmesh.v1.Faults/GetFaults", {})).body.rules;
  assert.ok(Number(rules[0].injected) >= 3, `catalog failed ${rules[0].injected} health checks`);

  await setCatalogFaults([]);
  await until("List shows it healthy again", async () => (await health()) === "HEALTH_STATE_HEALTHY" || (await health()));
  assert.deepEqual(await resolvedIds(), ["catalog-probed"]);
});

test("active health checks probe URL endpoints with fetch", async (t) => {
  // A tiny instance outside the mesh: answers Health/Check in Connect JSON,
  // serving or 503 as the test says.
  let serving = true;
  const probes = [];
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (chunk) => (body += chunk));
    req.on("end", () => {
      probes.push({ method: req.method, url: req.url, contentType: req.headers["content-type"], body });
      if (req.method !== "POST" || req.url !== "/workmesh.v1.Health/Check") {
        res.writeHead(404, { "content-type": "application/json" }).end(JSON.stringify({ code: "not_found" }));
      } else if (serving) {
        res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ status: "SERVING_STATUS_SERVING" }));
      } else {
        res.writeHead(503, { "content-type": "application/json" }).end(JSON.stringify({ code: "unavailable", message: "down" }));
      }
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(() => new Promise((resolve) => server.close(resolve)));
  const url = `http://127.0.0.1:${server.address().port}`;

  const mesh = await startMesh({
    persistTo: false,
    ephemeralPorts: true,
    vars: { registry: { WORKMESH_HEALTH_INTERVAL_MS: "150", WORKMESH_HEALTH_TIMEOUT_MS: "500" } },
  });
  t.after(() => mesh.dispose());
  const registry = (method, msg) => callJson(mesh.urls.registry, `/workmesh.v1.Registry/${method}`, msg);
  const service = "test.v1.UrlService";
  const health = async () => (await registry("List", { service })).body.instances[0].health;
  const resolvedIds = async () => ((await registry("Resolve", { service })).body.instances ?? []).map((i) => i.instanceId);

  const reg = await registry("Register", { instance: { service, instanceId: "url-1", url } });
  assert.equal(reg.status, 200, JSON.stringify(reg.body));
  await until("the registry probed the URL", async () => probes.length >= 2 || probes.length);
  assert.deepEqual(
    { method: probes[0].method, url: probes[0].url, contentType: probes[0].contentType, body: probes[0].body },
    { method: "POST", url: "/workmesh.v1.Health/Check", contentType: "application/json", body: "{}" },
  );
  assert.equal(await health(), "HEALTH_STATE_HEALTHY");

  serving = false;
  await until("List shows it unhealthy", async () => (await health()) === "HEALTH_STATE_UNHEALTHY" || (await health()));
  assert.deepEqual(await resolvedIds(), []);

  serving = true;
  await until("List shows it healthy again", async () => (await health()) === "HEALTH_STATE_HEALTHY" || (await health()));
  assert.deepEqual(await resolvedIds(), ["url-1"]);
});

test("instances that stop heartbeating leave Resolve after the heartbeat TTL", async (t) => {
  const TTL = 1500;
  const mesh = await startMesh({
    persistTo: false,
    ephemeralPorts: true,
    vars: { registry: { WORKMESH_HEARTBEAT_TTL_MS: String(TTL) } },
  });
  t.after(() => mesh.dispose());
  const registry = (method, msg) => callJson(mesh.urls.registry, `/workmesh.v1.Registry/${method}`, msg);
  const service = "shop.v1.CatalogService";
  const resolvedIds = async () => ((await registry("Resolve", { service })).body.instances ?? []).map((i) => i.instanceId).sort();

  const reg = await registry("Register", { instance: instance("beating") });
  assert.equal(reg.body.heartbeatIntervalMs, TTL / 3, "three heartbeats per TTL");
  // Fire and forget; one still in flight when the mesh stops may fail.
  const beat = setInterval(() => registry("Heartbeat", { instanceId: "beating" }).catch(() => {}), 200);
  t.after(() => clearInterval(beat));
  // The registry stamps the registration after this moment, so it cannot
  // expire before TTL ms from here.
  const registeredAfter = Date.now();
  await registry("Register", { instance: instance("silent") });
  assert.deepEqual(await resolvedIds(), ["beating", "silent"]);

  await until("the silent instance leaves Resolve", async () => {
    const ids = await resolvedIds();
    return ids.length === 1 || ids;
  }, 3 * TTL);
  const elapsed = Date.now() - registeredAfter;
  assert.ok(elapsed >= TTL - 20, `expired after ${elapsed} ms, before the ${TTL} ms TTL`);
  assert.deepEqual(await resolvedIds(), ["beating"]);
  // It is still known (not purged yet): List shows it, and a heartbeat brings it back.
  const listed = (await registry("List", { service })).body.instances.map((i) => i.instanceId).sort();
  assert.deepEqual(listed, ["beating", "silent"]);
  const hb = await registry("Heartbeat", { instanceId: "silent" });
  assert.equal(hb.body.known, true);
  assert.deepEqual(await resolvedIds(), ["beating", "silent"]);
  clearInterval(beat);
});

test("a gzip-accepting client gets a large answer compressed exactly once", async (t) => {
  // Answers of 1 KiB or more are gzipped by the router; workerd must not
  // compress them again (fetch undoes one layer, so the JSON parses only if
  // there was exactly one).
  const mesh = await startMesh({ persistTo: false, ephemeralPorts: true });
  t.after(() => mesh.dispose());
  const registry = (method, msg, headers) => callJson(mesh.urls.registry, `/workmesh.v1.Registry/${method}`, msg, headers);
  for (let i = 0; i < 12; i++) {
    const reg = await registry("Register", { instance: instance(`catalog-${i}`) });
    assert.equal(reg.status, 200, JSON.stringify(reg.body));
  }
  const listed = await registry("List", {}, { "accept-encoding": "gzip" });
  assert.equal(listed.status, 200);
  assert.equal(listed.headers.get("content-encoding"), "gzip");
  assert.equal(listed.body.instances?.length, 12, String(listed.body).slice(0, 80));
});

test("with WORKMESH_REGISTRY_TOKEN set, calls need the bearer token; health checks do not", async (t) => {
  const mesh = await startMesh({
    persistTo: false,
    ephemeralPorts: true,
    vars: { registry: { WORKMESH_REGISTRY_TOKEN: "t" } },
  });
  t.after(() => mesh.dispose());
  const registry = (method, msg, headers) =>
    callJson(mesh.urls.registry, `/workmesh.v1.Registry/${method}`, msg, headers);

  const bare = await registry("Register", { instance: instance("catalog-a") });
  assert.equal(bare.status, 401, JSON.stringify(bare.body));
  assert.equal(bare.body.code, "unauthenticated");
  assert.match(bare.body.message, /Bearer/);
  const wrong = await registry("ReportOutcomes", { reportId: "r-1", outcomes: [] }, { authorization: "Bearer u" });
  assert.equal(wrong.status, 401);
  assert.equal(wrong.body.code, "unauthenticated");
  const listBare = await registry("List", {});
  assert.equal(listBare.status, 401);

  const auth = { authorization: "Bearer t" };
  const reg = await registry("Register", { instance: instance("catalog-a") }, auth);
  assert.equal(reg.status, 200, JSON.stringify(reg.body));
  const listed = await registry("List", {}, auth);
  assert.equal(listed.status, 200);
  assert.ok(listed.body.instances.some((i) => i.instanceId === "catalog-a"));

  const health = await callJson(mesh.urls.registry, "/workmesh.v1.Health/Check", {});
  assert.equal(health.status, 200, JSON.stringify(health.body));
});

test("without WORKMESH_REGISTRY_TOKEN the registry is open", async (t) => {
  const mesh = await startMesh({ persistTo: false, ephemeralPorts: true });
  t.after(() => mesh.dispose());
  const listed = await callJson(mesh.urls.registry, "/workmesh.v1.Registry/List", {});
  assert.equal(listed.status, 200, JSON.stringify(listed.body));
});
