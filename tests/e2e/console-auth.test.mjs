// The console with WORKMESH_CONSOLE_TOKEN set: the receiver, the API and
// the pages need the token (bearer header or the sign-in cookie). This mesh
// also cuts the console off from the registry (a client-side fault), so the
// registry page must say so and still render.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startMesh } from "./helpers.mjs";

const TOKEN = "e2e-console-token";
let mesh;
before(async () => {
  mesh = await startMesh({
    persistTo: false,
    ephemeralPorts: true,
    vars: {
      console: {
        WORKMESH_CONSOLE_TOKEN: TOKEN,
        WORKMESH_RESILIENCE: JSON.stringify({
          faults: { enabled: true, rules: [{ service: "workmesh.v1.Registry", abort: { code: "unavailable", percent: 100 } }] },
        }),
      },
      // catalog exports with the token (as a deployed Worker would, from a
      // secret); orders does not, so its spans are refused.
      catalog: { WORKMESH_OTLP_HEADERS: JSON.stringify({ authorization: `Bearer ${TOKEN}` }) },
    },
  });
});
after(async () => {
  await mesh?.dispose();
});

const url = (path) => new URL(path, mesh.urls.console);
const bearer = { authorization: `Bearer ${TOKEN}` };

test("without the token: 401 everywhere but health and sign-in", async () => {
  for (const path of ["/", "/api/traces", "/map", "/api/service-map", "/metrics", "/registry", "/trace/4bf92f3577b34da6a3ce929d0e0e4736"]) {
    const res = await fetch(url(path));
    assert.equal(res.status, 401, path);
    await res.arrayBuffer();
  }
  const page = await fetch(url("/"));
  assert.match(await page.text(), /name="token"/, "browsers get the sign-in form");
  const wrong = await fetch(url("/api/traces"), { headers: { authorization: "Bearer nope" } });
  assert.equal(wrong.status, 401);
  const otlp = await fetch(url("/v1/traces"), { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
  assert.equal(otlp.status, 401);
  assert.equal((await otlp.json()).code, 16, "google.rpc.Code UNAUTHENTICATED");
  const health = await fetch(url("/workmesh.v1.Health/Check"), { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
  assert.equal(health.status, 200);
  await health.arrayBuffer();
});

test("with the bearer token: 200", async () => {
  const otlp = await fetch(url("/v1/traces"), { method: "POST", headers: { "content-type": "application/json", ...bearer }, body: "{}" });
  assert.equal(otlp.status, 200);
  await otlp.arrayBuffer();
  for (const path of ["/", "/api/traces", "/map", "/metrics"]) {
    const res = await fetch(url(path), { headers: bearer });
    assert.equal(res.status, 200, path);
    await res.arrayBuffer();
  }
});

test("the sign-in form sets an HttpOnly, SameSite=Strict cookie that opens the pages", async () => {
  const bad = await fetch(url("/login"), {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: "token=guess",
    redirect: "manual",
  });
  assert.equal(bad.status, 401);
  assert.equal(bad.headers.get("set-cookie"), null);
  await bad.arrayBuffer();
  const good = await fetch(url("/login"), {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: `token=${encodeURIComponent(TOKEN)}`,
    redirect: "manual",
  });
  assert.equal(good.status, 303);
  const cookie = good.headers.get("set-cookie");
  assert.match(cookie, /HttpOnly/);
  assert.match(cookie, /SameSite=Strict/);
  const page = await fetch(url("/"), { headers: { cookie: cookie.split(";")[0] } });
  assert.equal(page.status, 200);
  assert.match(await page.text(), /<h1>Traces<\/h1>/);

  // The cookie is `<expiry>.<hmac>`, not the token: a 12 h session that a
  // forged expiry or the token itself (raw or hex) cannot stand in for.
  const value = cookie.split(";")[0].split("=")[1];
  const [expiry, mac] = value.split(".");
  assert.match(mac, /^[0-9a-f]{64}$/);
  const hours = (Number(expiry) - Date.now() / 1000) / 3600;
  assert.ok(hours > 11.9 && hours <= 12, `expires in ${hours} h`);
  assert.ok(!value.includes(TOKEN) && !value.includes(Buffer.from(TOKEN).toString("hex")));
  for (const forged of [`${Number(expiry) + 3600}.${mac}`, TOKEN, Buffer.from(TOKEN).toString("hex")]) {
    const res = await fetch(url("/api/traces"), { headers: { cookie: `workmesh_console=${forged}` } });
    assert.equal(res.status, 401, forged);
    await res.arrayBuffer();
  }
});

test("an unreachable registry is reported on the page; the page still renders", async () => {
  const page = await fetch(url("/registry"), { headers: bearer });
  assert.equal(page.status, 200);
  const html = await page.text();
  assert.match(html, /The registry is unreachable: unavailable/);
  assert.match(html, /<nav>/);
  const api = await fetch(url("/api/registry"), { headers: bearer });
  assert.equal(api.status, 502);
  assert.match((await api.json()).error, /unreachable/);
});

test("Workers export to a token-protected console with WORKMESH_OTLP_HEADERS", async () => {
  const traceId = "5af92f3577b34da6a3ce929d0e0e4737";
  const traceparent = `00-${traceId}-00f067aa0ba902b7-01`;
  const call = await fetch(new URL("/shop.v1.OrderService/CreateOrder", mesh.urls.orders), {
    method: "POST",
    headers: { "content-type": "application/json", traceparent },
    body: JSON.stringify({ customerId: "auth-c1", requestId: "auth-r1", items: [{ sku: "SKU-0001", quantity: 1 }] }),
  });
  assert.equal(call.status, 200, await call.text());
  let services = [];
  for (let i = 0; i < 50 && !services.includes("shop.v1.CatalogService"); i++) {
    await new Promise((r) => setTimeout(r, 100));
    const res = await fetch(url(`/api/traces/${traceId}`), { headers: bearer });
    if (res.status === 200) services = (await res.json()).spans.map((s) => s.service);
    else await res.arrayBuffer();
  }
  assert.ok(services.includes("shop.v1.CatalogService"), "catalog's spans arrive with the token");
  assert.ok(!services.includes("shop.v1.OrderService"), "orders' spans are refused without it");
});
