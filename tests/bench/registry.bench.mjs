// Registry throughput benchmark: Resolve and ReportOutcomes against the real
// registry Worker (and its Durable Object) in workerd, side by side with a
// Health/Check baseline served by the same Worker and object in the same run.
//
// Run after `cargo workmesh build` (not part of the tests):
//   node tests/bench/registry.bench.mjs [--duration-ms 2000] [--concurrency 16] [--rounds 3]
// or, next to other users of the machine, in a private network namespace:
//   unshare --net bash -c 'ip link set lo up; node tests/bench/registry.bench.mjs'
//
// Set-up: 20 instances over 4 services. Each scenario runs for a fixed time at
// a fixed concurrency of Connect JSON calls over keep-alive HTTP; the
// scenarios take turns for several rounds (a shared machine drifts) and the
// table shows each one's median round: calls/s, latency percentiles and the
// ratio to the Health/Check baseline.
// Resolve is measured without a version token (full answer) and with the
// current one (`not_modified`); ReportOutcomes sends batches of 10 outcomes,
// each with a fresh report_id; Heartbeat (a one-row write) shows what any
// call that writes costs: in workerd a Durable Object answers a writing call
// only once its writes are committed, and that commit, not the SQL, is most
// of a report's time. Every call must answer as expected or the run fails.

import { parseArgs } from "node:util";
import { startMesh, callJson } from "../e2e/helpers.mjs";

const { values } = parseArgs({
  options: {
    "duration-ms": { type: "string", default: "2000" },
    concurrency: { type: "string", default: "16" },
    rounds: { type: "string", default: "3" },
  },
});
const durationMs = Number(values["duration-ms"]);
const concurrency = Number(values.concurrency);
const rounds = Number(values.rounds);
if (!(durationMs > 0) || !(concurrency > 0) || !(rounds > 0)) {
  throw new Error("--duration-ms, --concurrency and --rounds must be positive numbers");
}

const SERVICES = ["bench.v1.Alpha", "bench.v1.Beta", "bench.v1.Gamma", "bench.v1.Delta"];
const PER_SERVICE = 5;

const mesh = await startMesh({ persistTo: false, ephemeralPorts: true });
try {
  const url = mesh.urls.registry;
  // `identity`: measure the registry, not gzip (and stay clear of workerd
  // compressing the router's already-gzipped answers a second time).
  const call = (path, msg) => callJson(url, path, msg, { "accept-encoding": "identity" });
  const ids = [];
  for (const service of SERVICES) {
    for (let i = 0; i < PER_SERVICE; i++) {
      const instanceId = `${service.split(".").pop().toLowerCase()}-${i}`;
      const res = await call("/workmesh.v1.Registry/Register", { instance: { service, instanceId, binding: "CATALOG" } });
      if (res.status !== 200) throw new Error(`register ${instanceId}: ${JSON.stringify(res.body)}`);
      ids.push(instanceId);
    }
  }
  const tokens = {};
  for (const service of SERVICES) {
    tokens[service] = (await call("/workmesh.v1.Registry/Resolve", { service })).body.versionToken;
  }

  let n = 0;
  const scenarios = {
    health: () => call("/workmesh.v1.Health/Check", {}),
    resolve: () => call("/workmesh.v1.Registry/Resolve", { service: SERVICES[n++ % SERVICES.length] }),
    "resolve (not_modified)": () => {
      const service = SERVICES[n++ % SERVICES.length];
      return call("/workmesh.v1.Registry/Resolve", { service, knownVersionToken: tokens[service] });
    },
    // A one-row write: what any call that stores something costs.
    heartbeat: () => call("/workmesh.v1.Registry/Heartbeat", { instanceId: ids[n++ % ids.length] }),
    "report (10 outcomes)": () => {
      const k = n++;
      const outcomes = Array.from({ length: 10 }, (_, j) => ({
        instanceId: ids[(k + j) % ids.length],
        successes: 20,
        failures: 1,
        latencySumMs: 200,
        latencyCount: 21,
        breakerState: "BREAKER_STATE_CLOSED",
      }));
      return call("/workmesh.v1.Registry/ReportOutcomes", { reportId: `bench-${process.pid}-${k}`, outcomes });
    },
  };

  async function run(name, check) {
    const fn = scenarios[name];
    const latencies = [];
    let failures = 0;
    const once = async (record) => {
      const start = performance.now();
      const res = await fn();
      if (res.status !== 200 || (check && !check(res.body))) {
        failures++;
        if (failures === 1) console.error(`${name}: unexpected answer ${res.status} ${JSON.stringify(res.body).slice(0, 200)}`);
      }
      if (record) latencies.push(performance.now() - start);
    };
    // Warm-up: the isolate, the object and the connections.
    const warm = Date.now() + 500;
    await Promise.all(Array.from({ length: concurrency }, async () => {
      while (Date.now() < warm) await once(false);
    }));
    const start = performance.now();
    const end = Date.now() + durationMs;
    await Promise.all(Array.from({ length: concurrency }, async () => {
      while (Date.now() < end) await once(true);
    }));
    const seconds = (performance.now() - start) / 1000;
    if (failures > 0) throw new Error(`${name}: ${failures} calls failed`);
    latencies.sort((a, b) => a - b);
    const pct = (p) => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))];
    return { name, calls: latencies.length, perSecond: latencies.length / seconds, p50: pct(0.5), p99: pct(0.99) };
  }

  const checks = {
    health: (b) => b.status === "SERVING_STATUS_SERVING",
    resolve: (b) => b.instances?.length === PER_SERVICE,
    "resolve (not_modified)": (b) => b.notModified === true,
    heartbeat: (b) => b.known === true,
    "report (10 outcomes)": (b) => Object.keys(b).length === 0,
  };
  const runs = Object.fromEntries(Object.keys(scenarios).map((name) => [name, []]));
  for (let round = 0; round < rounds; round++) {
    for (const name of Object.keys(scenarios)) runs[name].push(await run(name, checks[name]));
  }
  const median = (rs) => [...rs].sort((a, b) => a.perSecond - b.perSecond)[Math.floor(rs.length / 2)];
  const results = Object.values(runs).map(median);
  const counted = runs["report (10 outcomes)"].reduce((sum, r) => sum + r.calls, 0);

  // The reports were counted (and no instance was ejected: 95 % succeed).
  const listed = (await call("/workmesh.v1.Registry/List", {})).body.instances;
  const reported = listed.reduce((sum, i) => sum + Number(i.reportedSuccesses ?? 0), 0);
  const ejected = listed.filter((i) => Number(i.ejectedUntilMs ?? 0) > 0).length;

  const baseline = results[0].perSecond;
  console.log(
    `registry Worker in workerd, ${SERVICES.length} services × ${PER_SERVICE} instances, ` +
      `concurrency ${concurrency}, median of ${rounds} rounds of ${durationMs} ms per scenario`,
  );
  console.log(["scenario".padEnd(24), "calls/s".padStart(9), "p50 ms".padStart(8), "p99 ms".padStart(8), "vs health".padStart(10), "  all rounds (calls/s)"].join(" "));
  for (const r of results) {
    console.log(
      [
        r.name.padEnd(24),
        r.perSecond.toFixed(0).padStart(9),
        r.p50.toFixed(2).padStart(8),
        r.p99.toFixed(2).padStart(8),
        (r.perSecond / baseline).toFixed(2).padStart(10),
        "  " + runs[r.name].map((x) => x.perSecond.toFixed(0)).join(" / "),
      ].join(" "),
    );
  }
  console.log(`reported successes stored: ${reported} (200 per batch; ${counted} timed batches + warm-up), ejected instances: ${ejected}`);
} finally {
  await mesh.dispose();
}
