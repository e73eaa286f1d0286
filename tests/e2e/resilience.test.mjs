// The resilience stack inside a real Worker: orders calls catalog through
// `mesh_transport` (deadline, retry + budget, breaker, limit), and catalog's
// server-side fault injection (`workmesh.v1.Faults`, on in the local mesh)
// makes it misbehave on cue.

import { test } from "node:test";
import assert from "node:assert/strict";
import { startMesh, callJson } from "./helpers.mjs";

const order = (n) => ({ customerId: "chaos", requestId: `chaos-${n}-${Math.random()}`, items: [{ sku: "SKU-0001", quantity: 1 }] });

async function withMesh(body) {
  const mesh = await startMesh({ persistTo: false, ephemeralPorts: true });
  try {
    const call = (worker, path, msg, headers) => callJson(mesh.urls[worker], path, msg, headers);
    const setFaults = (rules) => call("catalog", "/workmesh.v1.Faults/SetFaults", { rules });
    const faults = async () => (await call("catalog", "/workmesh.v1.Faults/GetFaults", {})).body.rules ?? [];
    const createOrder = (n, headers) => call("orders", "/shop.v1.OrderService/CreateOrder", order(n), headers);
    await body({ call, setFaults, faults, createOrder });
  } finally {
    await mesh.dispose();
  }
}

test("an unavailable catalog is retried and the order still succeeds", () =>
  withMesh(async ({ setFaults, faults, createOrder }) => {
    const set = await setFaults([
      { service: "shop.v1.CatalogService", method: "GetProduct", abortCode: "unavailable", abortPercent: 100, maxInjections: 1 },
    ]);
    assert.equal(set.status, 200, JSON.stringify(set.body));
    const res = await createOrder(1);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const [rule] = await faults();
    assert.equal(Number(rule.injected), 1, "the first attempt failed; the retry succeeded");
  }));

test("a failing catalog opens orders' circuit breaker, which then fails fast, and recovers", () =>
  withMesh(async ({ setFaults, faults, createOrder }) => {
    await setFaults([{ service: "shop.v1.CatalogService", abortCode: "unavailable", abortPercent: 100 }]);
    let failures = 0;
    let fastFailure;
    for (let i = 0; i < 10 && !fastFailure; i++) {
      const res = await createOrder(i);
      assert.equal(res.status, 503, JSON.stringify(res.body));
      assert.equal(res.body.code, "unavailable");
      if (/breaker/i.test(res.body.message)) fastFailure = res.body;
      else failures++;
    }
    assert.ok(fastFailure, "the breaker opened within 10 calls");
    assert.ok(failures >= 1);

    // While open, calls fail without reaching catalog.
    const reached = Number((await faults())[0].injected);
    for (let i = 0; i < 5; i++) {
      const res = await createOrder(100 + i);
      assert.equal(res.body.code, "unavailable");
      assert.match(res.body.message, /breaker/i);
    }
    assert.equal(Number((await faults())[0].injected), reached, "no call reached catalog while open");

    // Catalog heals; after the open interval a probe succeeds and closes it.
    await setFaults([]);
    const deadline = Date.now() + 10_000;
    let healed;
    while (Date.now() < deadline) {
      const res = await createOrder(200);
      if (res.status === 200) {
        healed = res;
        break;
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    assert.ok(healed, "the breaker closed again after catalog recovered");
  }));

test("the caller's deadline shrinks across two hops and fails fast with deadline_exceeded", () =>
  withMesh(async ({ setFaults, faults, createOrder }) => {
    await setFaults([{ service: "shop.v1.CatalogService", method: "GetProduct", delayMs: 3000, delayPercent: 100 }]);
    const started = Date.now();
    const res = await createOrder(1, { "connect-timeout-ms": "400" });
    const elapsed = Date.now() - started;
    assert.equal(res.body.code, "deadline_exceeded", JSON.stringify(res.body));
    assert.equal(res.status, 504);
    assert.ok(elapsed < 2000, `gave up after ${elapsed} ms, not after catalog's 3 s delay`);
    const [rule] = await faults();
    const seen = Number(rule.lastTimeoutMs);
    assert.ok(seen > 0 && seen <= 400, `catalog saw Connect-Timeout-Ms ${seen}, what was left of the caller's 400`);
  }));
