// Benchmark: what service discovery costs orders→catalog calls once warm.
//
//   node tests/bench/discovery.bench.mjs [requests=500]
//
// Runs the local mesh twice, in one process:
//   1. discovery: every Worker registered, orders routes by the registry;
//   2. static: orders without its REGISTRY binding (the static CATALOG binding).
// Each run warms up with 20 CreateOrder calls, then sends `requests` more, one
// at a time, one line item each (one orders→catalog GetProduct per request).
//
// Registry round-trips are counted by the registry itself: two fault rules
// with a 1 ms delay count every call the registry Worker serves in their
// `injected` counters, one for Resolve, one for every other method
// (outcome reports, heartbeats — the runner's own heartbeats included).
//
// Latency is shown two ways: CreateOrder as the client sees it, and the
// orders→catalog CLIENT spans (shop.v1.CatalogService/GetProduct) as orders
// recorded them, read back from the console. Ratios are discovery / static.

import { startMesh } from "../../mesh/cli/js/local-mesh.mjs";

const requests = Number(process.argv[2] ?? 500);
const WARMUP = 20;

async function call(baseUrl, path, message) {
  const res = await fetch(new URL(path, baseUrl), {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(message),
  });
  const body = await res.json();
  if (res.status !== 200) throw new Error(`${path}: ${res.status} ${JSON.stringify(body)}`);
  return body;
}

const createOrder = (mesh, requestId) =>
  call(mesh.urls.orders, "/shop.v1.OrderService/CreateOrder", {
    customerId: "bench",
    requestId,
    items: [{ sku: "SKU-0003", quantity: 1 }],
  });

const COUNTING_RULES = [
  { service: "workmesh.v1.Registry", method: "Resolve", delayMs: 1, delayPercent: 100 },
  { service: "workmesh.v1.Registry", delayMs: 1, delayPercent: 100 },
];

function stats(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  const mean = sorted.reduce((a, b) => a + b, 0) / Math.max(1, sorted.length);
  return { n: sorted.length, mean, p50: at(0.5), p95: at(0.95) };
}

/** orders→catalog CLIENT span durations of the last `limit` orders traces. */
async function clientSpanMs(mesh, limit) {
  const res = await fetch(new URL(`/api/traces?service=shop.v1.OrderService&limit=${Math.min(limit, 500)}`, mesh.urls.console));
  const body = await res.json();
  const traces = Array.isArray(body) ? body : (body.traces ?? []);
  const durations = [];
  for (const trace of traces) {
    const spans = await (await fetch(new URL(`/api/traces/${trace.traceId}`, mesh.urls.console))).json();
    for (const span of Array.isArray(spans) ? spans : (spans.spans ?? [])) {
      if (span.kind === "CLIENT" && span.name === "shop.v1.CatalogService/GetProduct" && span.status?.code !== 2) {
        durations.push(Number(span.durationMs));
      }
    }
  }
  return durations;
}

async function run(label, options) {
  const mesh = await startMesh({ persistTo: false, ephemeralPorts: true, ...options });
  try {
    for (let i = 0; i < WARMUP; i++) await createOrder(mesh, `${label}-warm-${i}`);
    await call(mesh.urls.registry, "/workmesh.v1.Faults/SetFaults", { rules: COUNTING_RULES });
    const latencies = [];
    const started = Date.now();
    for (let i = 0; i < requests; i++) {
      const t = performance.now();
      await createOrder(mesh, `${label}-${i}`);
      latencies.push(performance.now() - t);
    }
    const seconds = (Date.now() - started) / 1000;
    // Let the last responses' wait_until work (reports, refreshes) land.
    await new Promise((r) => setTimeout(r, 500));
    const rules = (await call(mesh.urls.registry, "/workmesh.v1.Faults/GetFaults", {})).rules ?? [];
    const resolves = Number(rules[0]?.injected ?? 0);
    const others = Number(rules[1]?.injected ?? 0);
    // Give the last exports time to reach the console.
    await new Promise((r) => setTimeout(r, 500));
    const spans = await clientSpanMs(mesh, requests);
    return { label, seconds, resolves, others, e2e: stats(latencies), span: stats(spans) };
  } finally {
    await mesh.dispose();
  }
}

const discovery = await run("discovery", { register: true });
const fixed = await run("static", { register: true, services: { orders: { REGISTRY: null } } });

const fmt = (x) => x.toFixed(2).padStart(8);
console.log(`requests per run: ${requests} (after ${WARMUP} warm-up), sequential, 1 orders→catalog call each`);
for (const r of [discovery, fixed]) {
  console.log(
    `${r.label.padEnd(10)} registry Resolve/request ${(r.resolves / requests).toFixed(4)} (${r.resolves})  ` +
      `other registry calls/request ${(r.others / requests).toFixed(4)} (${r.others})  over ${r.seconds.toFixed(1)} s`,
  );
}
console.log(`${"".padEnd(28)}${"discovery".padStart(10)}${"static".padStart(10)}${"ratio".padStart(8)}`);
for (const [what, key] of [["CreateOrder mean ms", ["e2e", "mean"]], ["CreateOrder p50 ms", ["e2e", "p50"]], ["CreateOrder p95 ms", ["e2e", "p95"]], ["orders→catalog span mean ms", ["span", "mean"]], ["orders→catalog span p50 ms", ["span", "p50"]], ["orders→catalog span p95 ms", ["span", "p95"]]]) {
  const a = discovery[key[0]][key[1]];
  const b = fixed[key[0]][key[1]];
  console.log(`${what.padEnd(28)}${fmt(a)}  ${fmt(b)}  ${(b ? a / b : NaN).toFixed(2).padStart(6)}`);
}
console.log(`(span samples: discovery ${discovery.span.n}, static ${fixed.span.n})`);
