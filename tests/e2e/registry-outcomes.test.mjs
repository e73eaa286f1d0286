// Passive health in the registry Durable Object: ReportOutcomes batches,
// outcome totals, reported breaker state and outlier ejection, against the
// real registry Worker. Each test registers its own service so they share
// one mesh; the base ejection time is shortened by a var.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startMesh, callJson, until, sleep } from "./helpers.mjs";

const BASE_MS = 800;

let mesh;
before(async () => {
  mesh = await startMesh({
    persistTo: false,
    ephemeralPorts: true,
    vars: { registry: { WORKMESH_EJECTION_BASE_MS: String(BASE_MS), WORKMESH_EJECTION_MAX_MS: "10000" } },
  });
});
after(async () => {
  await mesh?.dispose();
});

const registry = (method, msg) => callJson(mesh.urls.registry, `/workmesh.v1.Registry/${method}`, msg);
let reports = 0;
const report = (outcomes, reportId = `r-${process.pid}-${++reports}`) => registry("ReportOutcomes", { reportId, outcomes });

async function register(service, ...ids) {
  for (const id of ids) {
    const res = await registry("Register", { instance: { service, instanceId: id, binding: "CATALOG" } });
    assert.equal(res.status, 200, JSON.stringify(res.body));
  }
}
const resolvedIds = async (service) => ((await registry("Resolve", { service })).body.instances ?? []).map((i) => i.instanceId).sort();
const listed = async (service) => Object.fromEntries((await registry("List", { service })).body.instances.map((i) => [i.instanceId, i]));

/** Reports 5 failures of `id` and returns the ejection as List shows it, with the client clock around the call. */
async function fail5(service, id) {
  const before = Date.now();
  const res = await report([{ instanceId: id, failures: 5 }]);
  const after = Date.now();
  assert.equal(res.status, 200, JSON.stringify(res.body));
  const instance = (await listed(service))[id];
  return { before, after, until: Number(instance.ejectedUntilMs ?? 0), times: instance.timesEjected ?? 0 };
}

test("failures eject an instance for a growing time, then it comes back by itself", async () => {
  const service = "test.v1.Eject";
  await register(service, "ej-a", "ej-b");
  const first = await registry("Resolve", { service });
  assert.deepEqual(first.body.instances.map((i) => i.instanceId).sort(), ["ej-a", "ej-b"]);

  // Four failures and a success-rate above 80 %: not an outlier yet.
  assert.equal((await report([{ instanceId: "ej-a", failures: 4 }, { instanceId: "ej-b", successes: 20 }])).status, 200);
  assert.deepEqual(await resolvedIds(service), ["ej-a", "ej-b"]);

  // (a) the fifth consecutive failure ejects it.
  const one = await fail5(service, "ej-a");
  assert.equal(one.times, 1);
  assert.ok(one.until >= one.before + BASE_MS - 50 && one.until <= one.after + BASE_MS + 50, JSON.stringify(one));
  assert.deepEqual(await resolvedIds(service), ["ej-b"]);
  const changed = await registry("Resolve", { service, knownVersionToken: first.body.versionToken });
  assert.notEqual(changed.body.notModified, true, "ejection changed the version token");
  // Reports during the ejection count in the totals only.
  await report([{ instanceId: "ej-a", failures: 9 }]);
  assert.equal((await listed(service))["ej-a"].reportedFailures, "18");
  assert.equal((await listed(service))["ej-a"].timesEjected, 1);

  const back = await until("ej-a back in Resolve", async () => (await resolvedIds(service)).includes("ej-a"));
  const list = (await listed(service))["ej-a"];
  assert.equal(list.ejectedUntilMs ?? "0", "0", "an ended ejection shows as 0");
  assert.equal(list.timesEjected, 1);

  // (b) the second ejection lasts twice as long.
  const two = await fail5(service, "ej-a");
  assert.equal(two.times, 2);
  assert.ok(two.until >= two.before + 2 * BASE_MS - 50 && two.until <= two.after + 2 * BASE_MS + 50, JSON.stringify(two));
  // Past the first ejection's length (from before the report), well before the second's end.
  await sleep(two.until - 500 - Date.now());
  assert.ok(Date.now() - two.before > BASE_MS + 200);
  assert.deepEqual(await resolvedIds(service), ["ej-b"], "still ejected after the first ejection's time");
  await until("ej-a back after the second ejection", async () => (await resolvedIds(service)).includes("ej-a"));
  const returned = Date.now() - two.before;
  assert.ok(returned >= 2 * BASE_MS - 50, `back after ${returned} ms (the first time after ${back} ms)`);
});

test("a low success rate ejects, but never more than half of a service", async () => {
  const service = "test.v1.Share";
  await register(service, "sh-a", "sh-b");
  // (c) both fail, with successes in between (no streak): 3 of 10 succeed.
  const res = await report([
    { instanceId: "sh-a", successes: 3, failures: 7 },
    { instanceId: "sh-b", successes: 3, failures: 7 },
  ]);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  const instances = Object.values(await listed(service));
  const ejected = instances.filter((i) => Number(i.ejectedUntilMs ?? 0) > 0);
  assert.equal(ejected.length, 1, JSON.stringify(instances));
  assert.equal((await resolvedIds(service)).length, 1);
  // More failures of the other one do not eject it while the first is out.
  const other = instances.find((i) => Number(i.ejectedUntilMs ?? 0) === 0).instanceId;
  await report([{ instanceId: other, failures: 50 }]);
  assert.deepEqual(await resolvedIds(service), [other]);

  // A lone instance is never ejected.
  await register("test.v1.Lone", "lone-a");
  await report([{ instanceId: "lone-a", failures: 100 }]);
  assert.deepEqual(await resolvedIds("test.v1.Lone"), ["lone-a"]);
  assert.equal((await listed("test.v1.Lone"))["lone-a"].timesEjected ?? 0, 0);
});

test("a repeated report_id counts once", async () => {
  const service = "test.v1.Idempotent";
  await register(service, "id-a");
  const batch = [{ instanceId: "id-a", successes: 7, failures: 1, latencySumMs: 70, latencyCount: 8 }];
  for (let i = 0; i < 3; i++) {
    const res = await report(batch, "same-report");
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.deepEqual(res.body, {});
  }
  let a = (await listed(service))["id-a"];
  assert.equal(a.reportedSuccesses, "7");
  assert.equal(a.reportedFailures, "1");
  await report(batch, "another-report");
  a = (await listed(service))["id-a"];
  assert.equal(a.reportedSuccesses, "14");
  assert.equal(a.reportedFailures, "2");
  // Resolve carries the totals too.
  const resolved = await registry("Resolve", { service });
  assert.equal(resolved.body.instances[0].reportedSuccesses, "14");
});

test("the worst reported breaker state shows in List and Resolve", async () => {
  const service = "test.v1.Breaker";
  await register(service, "br-a", "br-b");
  const before = Date.now();
  await report([{ instanceId: "br-a", successes: 1, breakerState: "BREAKER_STATE_OPEN" }, { instanceId: "br-b", successes: 1, breakerState: "BREAKER_STATE_CLOSED" }]);
  // Another caller's breaker is closed: the open one still shows.
  await report([{ instanceId: "br-a", successes: 1, breakerState: "BREAKER_STATE_CLOSED" }, { instanceId: "br-b", successes: 1, breakerState: "BREAKER_STATE_HALF_OPEN" }]);
  const list = await listed(service);
  assert.equal(list["br-a"].breakerState, "BREAKER_STATE_OPEN");
  assert.ok(Number(list["br-a"].breakerReportedAtMs) >= before - 50, JSON.stringify(list["br-a"]));
  assert.equal(list["br-b"].breakerState, "BREAKER_STATE_HALF_OPEN");
  const resolved = await registry("Resolve", { service });
  const byId = Object.fromEntries(resolved.body.instances.map((i) => [i.instanceId, i]));
  assert.equal(byId["br-a"].breakerState, "BREAKER_STATE_OPEN");
  // Instances nobody reported a breaker for show none.
  await register(service, "br-c");
  assert.equal((await listed(service))["br-c"].breakerState ?? "BREAKER_STATE_UNSPECIFIED", "BREAKER_STATE_UNSPECIFIED");
});

test("ReportOutcomes rejects bad input naming the field and skips unknown instances", async () => {
  await register("test.v1.Invalid", "inv-a");
  const cases = [
    [{ reportId: "", outcomes: [{ instanceId: "inv-a", successes: 1 }] }, /^report_id is required/],
    [{ reportId: "bad-1", outcomes: [{ instanceId: "inv-a", successes: 1 }, { instanceId: " ", failures: 1 }] }, /^outcomes\[1\]\.instance_id is required/],
    [{ reportId: "bad-2", outcomes: Array.from({ length: 1001 }, () => ({ instanceId: "inv-a", successes: 1 })) }, /^outcomes has 1001 entries/],
    // JSON decoding already refuses unknown enum numbers (binary ones are
    // refused by the registry itself: unit-tested in model::passive).
    [{ reportId: "bad-3", outcomes: [{ instanceId: "inv-a", breakerState: 7 }] }, /BREAKER_STATE_OPEN/],
  ];
  for (const [msg, message] of cases) {
    const res = await registry("ReportOutcomes", msg);
    assert.equal(res.status, 400, JSON.stringify(res.body));
    assert.equal(res.body.code, "invalid_argument");
    assert.match(res.body.message, message);
  }
  // Nothing of the rejected batches was counted, and their ids stay usable.
  assert.equal((await listed("test.v1.Invalid"))["inv-a"].reportedSuccesses ?? "0", "0");
  const ok = await registry("ReportOutcomes", { reportId: "bad-1", outcomes: [{ instanceId: "inv-a", successes: 2 }, { instanceId: "nobody-knows-me", failures: 5 }] });
  assert.equal(ok.status, 200, JSON.stringify(ok.body));
  assert.equal((await listed("test.v1.Invalid"))["inv-a"].reportedSuccesses, "2");
});

test("Envoy's rules: a small max share still ejects one of two, and times_ejected decays by one per quiet period", async (t) => {
  // Its own registry: a 10 % share (floor(2 × 10 %) = 0) and a short decay.
  const base = 200;
  const decay = 1500;
  const own = await startMesh({
    persistTo: false,
    ephemeralPorts: true,
    vars: {
      registry: {
        WORKMESH_EJECTION_BASE_MS: String(base),
        WORKMESH_EJECTION_MAX_PERCENT: "10",
        WORKMESH_EJECTION_DECAY_MS: String(decay),
      },
    },
  });
  t.after(() => own.dispose());
  const call = (method, msg) => callJson(own.urls.registry, `/workmesh.v1.Registry/${method}`, msg);
  const service = "test.v1.Envoy";
  for (const id of ["en-a", "en-b"]) {
    assert.equal((await call("Register", { instance: { service, instanceId: id, binding: "CATALOG" } })).status, 200);
  }
  let n = 0;
  const fail5 = async (id) => {
    const res = await call("ReportOutcomes", { reportId: `envoy-${++n}`, outcomes: [{ instanceId: id, failures: 5 }] });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const list = (await call("List", { service })).body.instances;
    const instance = list.find((i) => i.instanceId === id);
    return { until: Number(instance.ejectedUntilMs ?? 0), times: instance.timesEjected ?? 0 };
  };
  const resolved = async () => ((await call("Resolve", { service })).body.instances ?? []).map((i) => i.instanceId);

  const first = await fail5("en-a");
  assert.equal(first.times, 1, "one of two is ejected under a 10 % share");
  assert.deepEqual(await resolved(), ["en-b"]);
  // The other cannot follow while en-a is out.
  assert.equal((await fail5("en-b")).times, 0);

  await sleep(first.until + 50 - Date.now());
  const second = await fail5("en-a");
  assert.equal(second.times, 2);
  // One quiet period after the second ejection ends (less than two): one
  // step of decay, so the next ejection is the second again — not the first
  // (a reset) nor the third (no decay).
  await sleep(second.until + decay + 300 - Date.now());
  const third = await fail5("en-a");
  assert.equal(third.times, 2, JSON.stringify({ second, third }));
});
