// The console Worker's own API, end to end: OTLP/JSON and protobuf input,
// metrics (the real Workers' RED exports among them), retention, trace
// search, the service map, the registry view.
// (The browser walk through the dashboard is dashboard.test.mjs.)

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import http from "node:http";
import { startMesh, callJson, sleep } from "./helpers.mjs";

let mesh;
before(async () => {
  // Catalog exports its RED metrics at most every 100 ms (default 5 s), so
  // the test does not wait long for them.
  mesh = await startMesh({
    persistTo: false,
    ephemeralPorts: true,
    vars: { catalog: { WORKMESH_METRICS_INTERVAL_MS: "100" } },
  });
});
after(async () => {
  await mesh?.dispose();
});

const hex = (bytes) => randomBytes(bytes).toString("hex");
const nowNs = () => BigInt(Date.now()) * 1_000_000n;

/** One OTLP/JSON span. */
function jsonSpan({ traceId, spanId, parent = "", name, kind = 2, startNs, durationMs = 5, attrs = {}, error = false }) {
  return {
    traceId,
    spanId,
    parentSpanId: parent,
    name,
    kind,
    startTimeUnixNano: startNs.toString(),
    endTimeUnixNano: (startNs + BigInt(Math.round(durationMs * 1e6))).toString(),
    attributes: Object.entries(attrs).map(([key, value]) => ({ key, value: { stringValue: value } })),
    status: error ? { code: 2, message: "failed" } : {},
  };
}

function exportBody(service, spans) {
  return {
    resourceSpans: [
      {
        resource: { attributes: [{ key: "service.name", value: { stringValue: service } }] },
        scopeSpans: [{ scope: { name: "e2e" }, spans }],
      },
    ],
  };
}

async function post(path, body, contentType = "application/json", headers = {}) {
  const res = await fetch(new URL(path, mesh.urls.console), {
    method: "POST",
    headers: { "content-type": contentType, ...headers },
    body: typeof body === "string" || body instanceof Uint8Array ? body : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, text };
}

async function getJson(path, expected = 200) {
  const res = await fetch(new URL(path, mesh.urls.console));
  const text = await res.text();
  assert.equal(res.status, expected, `${path}: ${res.status} ${text}`);
  return JSON.parse(text);
}

const CATALOG = "shop.v1.CatalogService";
// First in this file: no other test has called catalog yet, so the counts are exact.
test("the Workers' exported RED metrics arrive: GetProduct's requests and its errors by code", async () => {
  const getProduct = async () =>
    (await getJson("/api/metrics?since=1h")).methods.find(
      (m) => m.side === "server" && m.reporter === CATALOG && m.service === CATALOG && m.method === "GetProduct",
    );
  assert.equal(await getProduct(), undefined, "no GetProduct calls before this test");

  for (const sku of ["SKU-0001", "SKU-0002", "SKU-0003", "SKU-0001"]) {
    const res = await callJson(mesh.urls.catalog, `/${CATALOG}/GetProduct`, { sku });
    assert.equal(res.status, 200, JSON.stringify(res.body));
  }
  for (const sku of ["NOPE-1", "NOPE-2"]) {
    const res = await callJson(mesh.urls.catalog, `/${CATALOG}/GetProduct`, { sku });
    assert.equal(res.body.code, "not_found", JSON.stringify(res.body));
  }

  // Catalog exports after a request once 100 ms have passed since its last
  // export; a health check (never counted itself) is such a request.
  let seen;
  const start = Date.now();
  while (Date.now() - start < 10_000) {
    seen = await getProduct();
    if (seen?.requests === 6 && seen?.errors === 2) break;
    await sleep(150);
    const health = await callJson(mesh.urls.catalog, "/workmesh.v1.Health/Check", {});
    assert.equal(health.status, 200);
  }
  assert.ok(seen, "GetProduct's metrics arrived");
  assert.equal(seen.requests, 6, JSON.stringify(seen));
  assert.equal(seen.errors, 2, JSON.stringify(seen));
  assert.deepEqual(seen.errorsByCode, { not_found: 2 });
  assert.ok(Math.abs(seen.errorRate - 2 / 6) < 1e-9, `error rate ${seen.errorRate}`);
  assert.ok(seen.rate > 0);
  assert.ok(seen.p50Ms !== null && seen.p99Ms >= seen.p50Ms, JSON.stringify(seen));
  // Health checks are not methods of the service: never counted.
  const methods = (await getJson("/api/metrics?since=1h")).methods;
  assert.equal(methods.filter((m) => m.method === "Check").length, 0, JSON.stringify(methods));

  const html = await (await fetch(new URL("/metrics?since=1h", mesh.urls.console))).text();
  assert.match(html, /<td>server<\/td><td>shop\.v1\.CatalogService<\/td><td>shop\.v1\.CatalogService<\/td><td>GetProduct<\/td><td class="n">6<\/td>/);
  assert.match(html, /not_found ×2/);
});

test("OTLP/JSON spans are stored and shown like protobuf ones", async () => {
  const traceId = hex(16);
  const root = hex(8);
  const res = await post(
    "/v1/traces",
    exportBody("json.Svc", [
      jsonSpan({ traceId, spanId: root, name: "json.Svc/Do", startNs: nowNs(), durationMs: 12 }),
      { traceId, spanId: "01", name: "refused: short id" },
    ]),
  );
  assert.equal(res.status, 200, res.text);
  assert.match(res.headers.get("content-type"), /application\/json/);
  const body = JSON.parse(res.text);
  assert.equal(body.partialSuccess.rejectedSpans, "1");
  const trace = await getJson(`/api/traces/${traceId}`);
  assert.equal(trace.spans.length, 1);
  assert.equal(trace.spans[0].service, "json.Svc");
  assert.equal(trace.spans[0].durationMs, 12);
});

test("bad OTLP bodies get 400 with a google.rpc.Status; other types 415", async () => {
  const bad = await post("/v1/traces", '{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"xyz!"}]}]}]}');
  assert.equal(bad.status, 400);
  const status = JSON.parse(bad.text);
  assert.equal(status.code, 3);
  assert.match(status.message, /resourceSpans\[0\]\.scopeSpans\[0\]\.spans\[0\]\.traceId: expected a hex string/);
  const notJson = await post("/v1/traces", "{oops");
  assert.equal(notJson.status, 400);
  assert.match(JSON.parse(notJson.text).message, /not valid JSON/);
  const garbage = await post("/v1/traces", new Uint8Array([0xff, 0xff, 0xff, 0x01]), "application/x-protobuf");
  assert.equal(garbage.status, 400);
  assert.match(garbage.headers.get("content-type"), /application\/x-protobuf/);
  const form = await post("/v1/traces", "a=b", "application/x-www-form-urlencoded");
  assert.equal(form.status, 415);
  assert.match(JSON.parse(form.text).message, /application\/x-protobuf or application\/json/);
});

test("an export declaring more than 8 MiB gets 413 before its body is read", async () => {
  // Only a few bytes of the declared 9 MiB are ever sent and the request
  // is never finished: a Worker that read the body first would not answer.
  const declared = 9 * 1024 * 1024;
  const answer = (contentType) =>
    new Promise((resolve, reject) => {
      const req = http.request(new URL("/v1/traces", mesh.urls.console), {
        method: "POST",
        headers: { "content-type": contentType, "content-length": String(declared) },
      });
      const timer = setTimeout(() => {
        req.destroy();
        reject(new Error("no answer within 5 s: the body was waited for"));
      }, 5000);
      req.on("response", (res) => {
        const chunks = [];
        res.on("data", (c) => chunks.push(c));
        res.on("end", () => {
          clearTimeout(timer);
          req.destroy();
          resolve({ status: res.statusCode, type: res.headers["content-type"], body: Buffer.concat(chunks) });
        });
      });
      req.on("error", (error) => {
        clearTimeout(timer);
        reject(error);
      });
      req.write(contentType === "application/json" ? '{"resourceSpans":[' : Buffer.from([0x0a, 0x00]));
    });
  const json = await answer("application/json");
  assert.equal(json.status, 413);
  assert.match(json.type, /application\/json/);
  const status = JSON.parse(json.body.toString());
  assert.equal(status.code, 3, "a google.rpc.Status");
  assert.match(status.message, /larger than 8388608 bytes/);
  const proto = await answer("application/x-protobuf");
  assert.equal(proto.status, 413);
  assert.match(proto.type, /application\/x-protobuf/);
  assert.ok(proto.body.length > 0, "a protobuf google.rpc.Status");
  assert.match(proto.body.toString("latin1"), /larger than 8388608 bytes/);

  // A small export still goes through.
  const small = await post("/v1/traces", exportBody("e2e.Size", []));
  assert.equal(small.status, 200);
});

/** OTLP/JSON RED metrics as workmesh exports them (cumulative). */
function redExport({ service, method, startNs, timeNs, requests, errors = 0, buckets }) {
  const attrs = (code) => [
    { key: "rpc.system", value: { stringValue: "connect_rpc" } },
    { key: "rpc.service", value: { stringValue: service } },
    { key: "rpc.method", value: { stringValue: method } },
    ...(code ? [{ key: "rpc.connect_rpc.error_code", value: { stringValue: code } }] : []),
  ];
  const point = (value) => ({
    attributes: attrs(),
    startTimeUnixNano: startNs.toString(),
    timeUnixNano: timeNs.toString(),
    asInt: String(value),
  });
  const bounds = [0, 5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000];
  return {
    resourceMetrics: [
      {
        resource: {
          attributes: [
            { key: "service.name", value: { stringValue: service } },
            { key: "service.instance.id", value: { stringValue: "e2e-isolate" } },
          ],
        },
        scopeMetrics: [
          {
            metrics: [
              { name: "rpc.server.requests", sum: { aggregationTemporality: 2, isMonotonic: true, dataPoints: [point(requests)] } },
              { name: "rpc.server.errors", sum: { aggregationTemporality: 2, isMonotonic: true, dataPoints: [point(errors)] } },
              {
                name: "rpc.server.duration",
                histogram: {
                  aggregationTemporality: 2,
                  dataPoints: [
                    {
                      attributes: attrs(),
                      startTimeUnixNano: startNs.toString(),
                      timeUnixNano: timeNs.toString(),
                      count: String(requests),
                      sum: 0,
                      bucketCounts: buckets.map(String),
                      explicitBounds: bounds,
                    },
                  ],
                },
              },
            ],
          },
        ],
      },
    ],
  };
}

test("/v1/metrics stores RED points and /api/metrics turns cumulative exports into window numbers", async () => {
  const start = nowNs() - 120_000_000_000n;
  const method = `Red${hex(3)}`;
  const buckets = (n) => [0, 0, 0, 0, 0, 0, 0, n, 0, 0, 0, 0, 0, 0, 0, 0]; // (100, 250] ms
  const first = await post("/v1/metrics", redExport({ service: "e2e.Red", method, startNs: start, timeNs: start + 30_000_000_000n, requests: 10, buckets: buckets(10) }));
  assert.equal(first.status, 200, first.text);
  assert.equal(first.text, "{}");
  const second = await post(
    "/v1/metrics",
    redExport({ service: "e2e.Red", method, startNs: start, timeNs: nowNs(), requests: 40, errors: 4, buckets: buckets(40) }),
  );
  assert.equal(second.status, 200, second.text);

  const all = (await getJson("/api/metrics?since=1h")).methods.find((m) => m.method === method);
  assert.ok(all, "the method is listed");
  assert.equal(all.side, "server");
  assert.equal(all.requests, 40);
  assert.equal(all.errors, 4);
  assert.ok(all.p50Ms > 100 && all.p50Ms <= 250, `p50 ${all.p50Ms}`);
  // Only the last 60 s: the second export minus the first.
  const recent = (await getJson("/api/metrics?since=60s")).methods.find((m) => m.method === method);
  assert.equal(recent.requests, 30);
  assert.equal(recent.errors, 4);

  const html = await (await fetch(new URL("/metrics?since=1h", mesh.urls.console))).text();
  assert.match(html, new RegExp(method));

  const bad = await post("/v1/metrics", { resourceMetrics: [{ scopeMetrics: [{ metrics: [{ name: "x", sum: { dataPoints: [{ asInt: "many" }] } }] }] }] });
  assert.equal(bad.status, 400);
  assert.match(JSON.parse(bad.text).message, /dataPoints\[0\]\.asInt: expected a 64-bit integer/);
  assert.equal((await getJson("/api/metrics?since=soon", 400)).error.includes("since"), true);
});

test("retention: old spans go on the next ingest and on the cron sweep", async () => {
  const oldNs = nowNs() - 48n * 3_600_000_000_000n;
  const oldTrace = hex(16);
  const oldSpan = () => exportBody("e2e.Old", [jsonSpan({ traceId: oldTrace, spanId: hex(8), name: "old", startNs: oldNs })]);
  // An ingest deletes what is old *before* inserting, so this one stays for now.
  assert.equal((await post("/v1/traces", oldSpan())).status, 200);
  await getJson(`/api/traces/${oldTrace}`, 200);
  const worker = await mesh.mf.getWorker("console");
  await worker.scheduled({ cron: "*/15 * * * *" });
  await getJson(`/api/traces/${oldTrace}`, 404);

  // The next ingest of anything sweeps it too.
  assert.equal((await post("/v1/traces", oldSpan())).status, 200);
  await getJson(`/api/traces/${oldTrace}`, 200);
  const fresh = hex(16);
  assert.equal((await post("/v1/traces", exportBody("e2e.New", [jsonSpan({ traceId: fresh, spanId: hex(8), name: "new", startNs: nowNs() })]))).status, 200);
  await getJson(`/api/traces/${oldTrace}`, 404);
  await getJson(`/api/traces/${fresh}`, 200);

  // Old metric points are swept by the cron as well.
  const method = `Old${hex(3)}`;
  await post("/v1/metrics", redExport({ service: "e2e.Old", method, startNs: oldNs, timeNs: oldNs + 1_000_000_000n, requests: 1, buckets: [1, ...Array(15).fill(0)] }));
  const before = (await getJson("/api/metrics?since=7d")).methods.some((m) => m.method === method);
  assert.equal(before, true);
  await worker.scheduled({ cron: "*/15 * * * *" });
  const after = (await getJson("/api/metrics?since=7d")).methods.some((m) => m.method === method);
  assert.equal(after, false);
});

test("trace search filters by service, method, status, duration and time", async () => {
  const tag = hex(3);
  const base = nowNs();
  const traces = {
    fastOk: { id: hex(16), ms: 2, error: false, code: null, method: `Fast${tag}` },
    slowOk: { id: hex(16), ms: 80, error: false, code: null, method: `Slow${tag}` },
    notFound: { id: hex(16), ms: 5, error: false, code: "not_found", method: `Find${tag}` },
    failed: { id: hex(16), ms: 9, error: true, code: "unavailable", method: `Fail${tag}` },
  };
  const service = `e2e.Search${tag}`;
  const spans = Object.values(traces).map((t) =>
    jsonSpan({
      traceId: t.id,
      spanId: hex(8),
      name: `${service}/${t.method}`,
      startNs: base,
      durationMs: t.ms,
      attrs: { "rpc.method": t.method, ...(t.code ? { "rpc.connect_rpc.error_code": t.code } : {}) },
      error: t.error,
    }),
  );
  // A trace from 90 minutes ago: outside the default window (the last hour).
  const earlier = { id: hex(16), method: `Earlier${tag}` };
  spans.push(
    jsonSpan({
      traceId: earlier.id,
      spanId: hex(8),
      name: `${service}/${earlier.method}`,
      startNs: base - 90n * 60_000_000_000n,
      attrs: { "rpc.method": earlier.method },
    }),
  );
  assert.equal((await post("/v1/traces", exportBody(service, spans))).status, 200);
  const ids = async (query) =>
    new Set((await getJson(`/api/traces?service=${service}&limit=500&${query}`)).traces.map((t) => t.traceId));

  assert.deepEqual(await ids(""), new Set(Object.values(traces).map((t) => t.id)));
  assert.deepEqual(await ids(`method=Slow${tag}`), new Set([traces.slowOk.id]));
  assert.deepEqual(await ids(`method=${service}/Fast${tag}`), new Set([traces.fastOk.id]));
  assert.deepEqual(await ids("status=ok"), new Set([traces.fastOk.id, traces.slowOk.id]));
  assert.deepEqual(await ids("status=error"), new Set([traces.notFound.id, traces.failed.id]));
  assert.deepEqual(await ids("status=not_found"), new Set([traces.notFound.id]));
  assert.deepEqual(await ids("min_duration_ms=50"), new Set([traces.slowOk.id]));
  assert.deepEqual(await ids("since=5m"), new Set(Object.values(traces).map((t) => t.id)));
  assert.deepEqual(await ids(`method=Earlier${tag}`), new Set(), "no range is the last hour");
  assert.deepEqual(await ids(`method=Earlier${tag}&since=2h`), new Set([earlier.id]));
  const earlierMs = Number((base - 90n * 60_000_000_000n) / 1_000_000n);
  assert.deepEqual(await ids(`from=${earlierMs - 10}&to=${earlierMs + 10}`), new Set([earlier.id]));
  const list = await (await fetch(new URL(`/?service=${service}`, mesh.urls.console))).text();
  assert.match(list, /<option value="1h" selected>last hour<\/option>/, "the form shows the default window");
  assert.doesNotMatch(list, new RegExp(earlier.id));
  assert.doesNotMatch(list, /any time/);
  const fromMs = Number(base / 1_000_000n) + 1;
  assert.deepEqual(await ids(`from=${fromMs}`), new Set());
  assert.deepEqual(await ids(`from=${fromMs - 10}&to=${fromMs + 10}`).then((s) => s.size), 4);

  // Bad values: 400 with the parameter named, on the API and the HTML list alike.
  for (const [query, expected] of [
    ["status=broken", /status: expected ok, error or a Connect code/],
    ["min_duration_ms=fast", /min_duration_ms/],
    ["since=yesterday", /since: expected a duration/],
    ["limit=0", /limit: expected a whole number from 1/],
    ["from=5&to=1", /from is after to/],
  ]) {
    const body = await getJson(`/api/traces?${query}`, 400);
    assert.match(body.error, expected, query);
    const page = await fetch(new URL(`/?${query}`, mesh.urls.console));
    assert.equal(page.status, 400, query);
    assert.match(await page.text(), expected);
  }
  const page = await (await fetch(new URL(`/?service=${service}&status=not_found`, mesh.urls.console))).text();
  assert.match(page, new RegExp(traces.notFound.id));
  assert.doesNotMatch(page, new RegExp(traces.fastOk.id));
});

test("the service map shows orders → catalog after a CreateOrder, with rates and latency", async () => {
  const res = await callJson(mesh.urls.orders, "/shop.v1.OrderService/CreateOrder", {
    customerId: "map-cust",
    requestId: `map-${hex(4)}`,
    items: [{ sku: "SKU-0001", quantity: 1 }],
  });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  const edge = await (async () => {
    const start = Date.now();
    while (Date.now() - start < 10_000) {
      const { edges } = await getJson("/api/service-map?since=15m");
      const found = edges.find((e) => e.caller === "shop.v1.OrderService" && e.callee === "shop.v1.CatalogService");
      if (found) return found;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.fail("no orders → catalog edge");
  })();
  assert.ok(edge.calls >= 1);
  assert.ok(edge.rate > 0);
  assert.equal(edge.errorRate, 0);
  assert.ok(edge.p99Ms >= edge.p50Ms && edge.p50Ms >= 0);
  // D1 spans carry no database name: each service's D1 is its own node.
  const { edges } = await getJson("/api/service-map?since=15m");
  const d1 = edges.filter((e) => e.callee.startsWith("d1 ")).map((e) => [e.caller, e.callee]);
  assert.deepEqual(
    d1.filter(([caller]) => caller === CATALOG),
    [[CATALOG, `d1 (${CATALOG})`]],
    JSON.stringify(edges),
  );
  assert.ok(d1.some(([caller, callee]) => caller === "shop.v1.OrderService" && callee === "d1 (shop.v1.OrderService)"), JSON.stringify(edges));
  assert.ok(!edges.some((e) => e.callee.startsWith("db:")), "no merged database node");
  const html = await (await fetch(new URL("/map?since=15m", mesh.urls.console))).text();
  assert.match(html, /<svg/);
  assert.match(html, /shop\.v1\.OrderService<\/td><td>shop\.v1\.CatalogService/);
  assert.match((await getJson("/api/service-map?since=1w", 400)).error, /since/);
});

test("the registry page lists instances through the REGISTRY binding", async () => {
  const reg = await callJson(mesh.urls.registry, "/workmesh.v1.Registry/Register", {
    instance: { service: "shop.v1.CatalogService", instanceId: "console-view-a", version: "v7", binding: "CATALOG", weight: 40 },
  });
  assert.equal(reg.status, 200, JSON.stringify(reg.body));
  await callJson(mesh.urls.registry, "/workmesh.v1.Registry/Drain", { instanceId: "console-view-a" });
  const { instances } = await getJson("/api/registry");
  const instance = instances.find((i) => i.instanceId === "console-view-a");
  assert.equal(instance.version, "v7");
  assert.equal(instance.weight, 40);
  assert.equal(instance.draining, true);
  const html = await (await fetch(new URL("/registry", mesh.urls.console))).text();
  assert.match(html, /console-view-a/);
  assert.match(html, /<td>v7<\/td><td>binding CATALOG<\/td><td>healthy<\/td><td class="n">40<\/td><td>yes<\/td>/);
});
