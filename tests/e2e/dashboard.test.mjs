// The console dashboard in a real browser: headless Debian Chromium driven
// by playwright-core (`cargo workmesh setup` installs /usr/bin/chromium).
// A CreateOrder makes a multi-hop trace; the test finds it in the list,
// clicks into its waterfall, opens the service map and reads the
// orders → catalog edge, saving a screenshot of each page.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { startMesh, callJson } from "./helpers.mjs";

const ORDERS = "shop.v1.OrderService";
const CATALOG = "shop.v1.CatalogService";
const CHROMIUM = process.env.WORKMESH_CHROMIUM ?? "/usr/bin/chromium";
const SHOTS = join(new URL("../..", import.meta.url).pathname, "target", "e2e-screenshots");

let mesh;
let browser;
before(async () => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: run \`cargo workmesh setup\` (it installs Debian's chromium)`);
  mkdirSync(SHOTS, { recursive: true });
  console.log(`screenshots: ${SHOTS}`);
  mesh = await startMesh({ persistTo: false, ephemeralPorts: true });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
});
after(async () => {
  await browser?.close();
  await mesh?.dispose();
});

/** Polls until `find` returns a value. */
async function eventually(what, find, timeoutMs = 10_000) {
  const start = Date.now();
  while (Date.now() - start < timeoutMs) {
    const found = await find();
    if (found) return found;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`${what} did not appear within ${timeoutMs} ms`);
}

function assertPng(path) {
  assert.ok(existsSync(path), `${path} exists`);
  assert.ok(statSync(path).size > 1000, `${path} is not empty`);
  const signature = readFileSync(path).subarray(0, 8);
  assert.deepEqual([...signature], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], `${path} is a PNG`);
}

test("list → waterfall → service map in Chromium", async () => {
  const res = await callJson(mesh.urls.orders, `/${ORDERS}/CreateOrder`, {
    customerId: "dash-cust",
    requestId: `dash-${Date.now()}`,
    items: [{ sku: "SKU-0001", quantity: 2 }],
  });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  const trace = await eventually("the CreateOrder trace", async () => {
    const list = await (await fetch(new URL(`/api/traces?service=${ORDERS}`, mesh.urls.console))).json();
    return list.traces.find((t) => t.rootName === `${ORDERS}/CreateOrder` && t.spanCount >= 3);
  });

  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  const shots = [];
  const shot = async (name) => {
    const path = join(SHOTS, `${name}.png`);
    await page.screenshot({ path, fullPage: true });
    shots.push(path);
  };

  // The trace list shows the trace; its link opens the waterfall.
  await page.goto(mesh.urls.console);
  assert.equal(await page.locator("h1").textContent(), "Traces");
  const link = page.locator(`a[href="/trace/${trace.traceId}"]`);
  assert.equal(await link.count(), 1, "the trace is listed");
  await shot("01-traces");
  await link.click();
  await page.waitForURL(`**/trace/${trace.traceId}`);

  // The waterfall has a row per span, each service's spans among them.
  const rows = page.locator("#waterfall tr:not(:first-child)");
  assert.ok((await rows.count()) >= 3, "three or more spans");
  const services = await page.locator("#waterfall tr td:nth-child(2)").allTextContents();
  assert.ok(services.includes(ORDERS), services.join());
  assert.ok(services.includes(CATALOG), services.join());
  const names = await page.locator("#waterfall tr td:first-child").allTextContents();
  assert.ok(names.some((n) => n.includes(`${ORDERS}/CreateOrder`) && n.includes("SERVER")), names.join());
  assert.ok(names.some((n) => n.includes(`${CATALOG}/GetProduct`) && n.includes("CLIENT")), names.join());
  assert.ok((await page.locator("#waterfall .bar span").count()) >= 3, "a bar per span");
  await shot("02-waterfall");

  // The service map, reached through the navigation.
  await page.click("nav >> text=Service map");
  await page.waitForURL("**/map");
  const edge = page.locator("#edges tr", { hasText: `${ORDERS}` }).filter({ hasText: CATALOG });
  assert.equal(await edge.count(), 1, "an orders → catalog row");
  const cells = await edge.locator("td").allTextContents();
  assert.equal(cells[0], ORDERS);
  assert.equal(cells[1], CATALOG);
  assert.ok(Number(cells[2]) >= 1, `calls: ${cells[2]}`);
  assert.match(cells[3], /^\d+\.\d+\/(s|min)$/, "rate");
  assert.match(cells[4], /^\d+\.\d%$/, "error rate");
  assert.match(cells[5], /^\d+\.\d ms$/, "p50");
  assert.match(cells[6], /^\d+\.\d ms$/, "p99");
  assert.equal(await page.locator("svg rect").count() >= 2, true, "the graph draws both services");
  await shot("03-service-map");

  // The registry page: an instance registered here shows with its state.
  const reg = await callJson(mesh.urls.registry, "/workmesh.v1.Registry/Register", {
    instance: { service: CATALOG, instanceId: "catalog-dash-1", version: "v2", binding: "CATALOG", weight: 90 },
  });
  assert.equal(reg.status, 200, JSON.stringify(reg.body));
  await page.click("nav >> text=Registry");
  await page.waitForURL("**/registry");
  assert.equal(await page.locator("h1").textContent(), "Registry");
  const instance = await page.locator("tr", { hasText: "catalog-dash-1" }).locator("td").allTextContents();
  assert.deepEqual(instance.slice(0, 7), [CATALOG, "catalog-dash-1", "v2", "binding CATALOG", "healthy", "90", "no"]);
  await shot("04-registry");

  // Metrics may be empty here (only exporters that send RED metrics fill it).
  await page.click("nav >> text=Metrics");
  await page.waitForURL("**/metrics");
  assert.equal(await page.locator("h1").textContent(), "Metrics");
  await shot("05-metrics");

  // A bad filter typed into the list form: a 400 page with the message.
  await page.goto(mesh.urls.console);
  await page.fill("input[name=min_duration_ms]", "soon");
  await page.click("form.f button");
  assert.match(await page.locator(".msg").textContent(), /min_duration_ms: expected a number/);
  await shot("06-bad-filter");

  for (const path of shots) assertPng(path);
  console.log(`saved ${shots.length} screenshots in ${SHOTS}`);
});
