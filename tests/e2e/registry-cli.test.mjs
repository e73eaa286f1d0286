// `cargo workmesh services | weights | drain`: the registry from the terminal,
// against the real registry Worker.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startMesh, callJson, workmesh } from "./helpers.mjs";

const SERVICE = "shop.v1.CatalogService";

let mesh;
before(async () => {
  mesh = await startMesh({ persistTo: false, ephemeralPorts: true });
  for (const [id, version] of [["cli-catalog-a", "v1"], ["cli-catalog-b", "v2"]]) {
    const res = await callJson(mesh.urls.registry, "/workmesh.v1.Registry/Register", {
      instance: { service: SERVICE, instanceId: id, version, binding: "CATALOG", zone: "local" },
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
  }
});
after(async () => {
  await mesh?.dispose();
});

/** The `services` table as objects keyed by the lower-cased header. */
function parseTable(stdout) {
  const [header, ...rows] = stdout.trim().split("\n").map((l) => l.trim().split(/\s{2,}/));
  return rows.map((cells) => Object.fromEntries(header.map((h, i) => [h.toLowerCase(), cells[i]])));
}

const resolve = () => callJson(mesh.urls.registry, "/workmesh.v1.Registry/Resolve", { service: SERVICE });

test("services lists every instance with its version, endpoint, weight and health", () => {
  const res = workmesh("services", "--service", SERVICE, "--url", mesh.urls.registry);
  assert.equal(res.code, 0, res.stderr);
  const rows = parseTable(res.stdout);
  const byId = Object.fromEntries(rows.map((r) => [r.instance, r]));
  assert.deepEqual(Object.keys(byId).sort(), ["cli-catalog-a", "cli-catalog-b"]);
  assert.equal(byId["cli-catalog-a"].service, SERVICE);
  assert.equal(byId["cli-catalog-a"].version, "v1");
  assert.equal(byId["cli-catalog-b"].version, "v2");
  assert.equal(byId["cli-catalog-a"].endpoint, "binding:CATALOG");
  assert.equal(byId["cli-catalog-a"].weight, "100");
  assert.equal(byId["cli-catalog-a"].health, "healthy");
  assert.equal(byId["cli-catalog-a"].ejected, "-");

  assert.equal(byId["cli-catalog-a"].breaker, "-");

  const other = workmesh("services", "--service", "shop.v1.OrderService", "--url", mesh.urls.registry);
  assert.equal(other.code, 0, other.stderr);
  assert.doesNotMatch(other.stdout, /cli-catalog/, "--service filters");
});

test("services shows the breaker state and outcome totals callers reported", async () => {
  const report = await callJson(mesh.urls.registry, "/workmesh.v1.Registry/ReportOutcomes", {
    reportId: "cli-report-1",
    outcomes: [{ instanceId: "cli-catalog-b", successes: 7, failures: 1, breakerState: "BREAKER_STATE_OPEN" }],
  });
  assert.equal(report.status, 200, JSON.stringify(report.body));
  const res = workmesh("services", "--service", SERVICE, "--url", mesh.urls.registry);
  assert.equal(res.code, 0, res.stderr);
  const b = parseTable(res.stdout).find((r) => r.instance === "cli-catalog-b");
  assert.equal(b.breaker, "open");
  assert.equal(b.ok, "7");
  assert.equal(b.failed, "1");
});

test("weights sets per-version weights that Resolve then returns", async () => {
  const res = workmesh("weights", SERVICE, "v1=90", "v2=10", "--url", mesh.urls.registry);
  assert.equal(res.code, 0, res.stderr);
  assert.match(res.stdout, /^v1\s+90\s+90\.0%$/m);
  assert.match(res.stdout, /^v2\s+10\s+10\.0%$/m);

  const resolved = await resolve();
  assert.equal(resolved.status, 200, JSON.stringify(resolved.body));
  assert.deepEqual(resolved.body.versionWeights, { v1: 90, v2: 10 });
});

test("weights rejects malformed pairs before calling, with exit 1", async () => {
  const bad = workmesh("weights", SERVICE, "v1=abc", "--url", mesh.urls.registry);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /^error: "v1=abc": the weight "abc" is not a whole number/m);
  assert.doesNotMatch(bad.stderr, /panicked|backtrace/i);

  const noEquals = workmesh("weights", SERVICE, "v1", "--url", mesh.urls.registry);
  assert.equal(noEquals.code, 1);
  assert.match(noEquals.stderr, /version=weight/);
});

test("drain marks an instance draining and Resolve stops returning it", async () => {
  const res = workmesh("drain", "cli-catalog-b", "--url", mesh.urls.registry);
  assert.equal(res.code, 0, res.stderr);
  const [row] = parseTable(res.stdout);
  assert.equal(row.instance, "cli-catalog-b");
  assert.equal(row.draining, "yes");

  const listed = parseTable(workmesh("services", "--url", mesh.urls.registry).stdout);
  const draining = Object.fromEntries(listed.map((r) => [r.instance, r.draining]));
  assert.equal(draining["cli-catalog-a"], "no");
  assert.equal(draining["cli-catalog-b"], "yes");

  const resolved = await resolve();
  assert.deepEqual(resolved.body.instances.map((i) => i.instanceId), ["cli-catalog-a"]);
});

test("registry errors print as `error: <code>: <message>` with exit 1", () => {
  const allZero = workmesh("weights", SERVICE, "v1=0", "--url", mesh.urls.registry);
  assert.equal(allZero.code, 1);
  assert.match(allZero.stderr, /^error: invalid_argument: version_weights must give at least one version a weight$/m);

  const unknown = workmesh("weights", "nobody.v1.Nothing", "v1=1", "--url", mesh.urls.registry);
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /^error: not_found: no instances of nobody\.v1\.Nothing/m);

  const missing = workmesh("drain", "no-such-instance", "--url", mesh.urls.registry);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /^error: not_found: /m);
});

test("against a registry with a token, the CLI sends WORKMESH_REGISTRY_TOKEN", async (t) => {
  const guarded = await startMesh({ persistTo: false, ephemeralPorts: true, vars: { registry: { WORKMESH_REGISTRY_TOKEN: "cli-secret" } } });
  t.after(() => guarded.dispose());
  const refused = workmesh("services", "--url", guarded.urls.registry);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /unauthenticated/);
  process.env.WORKMESH_REGISTRY_TOKEN = "cli-secret";
  try {
    const listed = workmesh("services", "--url", guarded.urls.registry);
    assert.equal(listed.code, 0, listed.stderr);
  } finally {
    delete process.env.WORKMESH_REGISTRY_TOKEN;
  }
});
