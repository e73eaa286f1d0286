// The console dashboard in a real browser: headless Debian Chromium driven
// by playwright-core (`cargo workmesh setup` installs /usr/bin/chromium).
// A CreateOrder through the gateway makes a three-Worker trace (gateway →
// orders → catalog, with D1 and `tracing` spans); the test finds it in the
// list, clicks into its waterfall, opens spans to read their attributes and
// events, opens the service map and reads the gateway → orders and
// orders → catalog edges, saving a screenshot of each page.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { startMesh, callJson, eventually } from "./helpers.mjs";

const GATEWAY = "gateway";
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

function assertPng(path) {
  assert.ok(existsSync(path), `${path} exists`);
  assert.ok(statSync(path).size > 1000, `${path} is not empty`);
  const signature = readFileSync(path).subarray(0, 8);
  assert.deepEqual([...signature], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], `${path} is a PNG`);
}

test("list → waterfall → service map in Chromium", async () => {
  const res = await callJson(mesh.urls.gateway, `/${ORDERS}/CreateOrder`, {
    customerId: "dash-cust",
    requestId: `dash-${Date.now()}`,
    items: [{ sku: "SKU-0001", quantity: 2 }],
  });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  // Spans arrive per Worker after each response: wait for all three
  // services, catalog's D1 span and orders' `price_items` span.
  const trace = await eventually("the three-Worker CreateOrder trace", async () => {
    const list = await (await fetch(new URL(`/api/traces?service=${GATEWAY}`, mesh.urls.console))).json();
    const found = list.traces.find((t) => t.rootName === `${ORDERS}/CreateOrder` && t.rootService === GATEWAY);
    if (!found) return undefined;
    const { spans } = await (await fetch(new URL(`/api/traces/${found.traceId}`, mesh.urls.console))).json();
    const servers = new Set(spans.filter((s) => s.kind === "SERVER").map((s) => s.service));
    const ready =
      servers.size === 3 &&
      spans.some((s) => s.service === CATALOG && s.name === "SELECT products") &&
      spans.some((s) => s.name === "price_items");
    return ready ? found : undefined;
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

  // The waterfall has a row per span, the three Workers' spans among them.
  const rows = page.locator("#waterfall tr:not(:first-child)");
  assert.ok((await rows.count()) >= 6, "gateway, orders, catalog, D1 and tracing spans");
  const services = await page.locator("#waterfall tr td:nth-child(2)").allTextContents();
  for (const service of [GATEWAY, ORDERS, CATALOG]) assert.ok(services.includes(service), services.join());
  const names = await page.locator("#waterfall summary").allTextContents();
  assert.ok(names[0].includes(`${ORDERS}/CreateOrder`) && names[0].includes("SERVER"), `the gateway's SERVER span is the root: ${names[0]}`);
  assert.ok(names.some((n) => n.includes(`${CATALOG}/GetProduct`) && n.includes("CLIENT")), names.join());
  assert.equal(await rows.count(), await page.locator("#waterfall .bar span").count(), "a bar per span");
  // Closed rows show no details.
  assert.equal(await page.locator("#waterfall dl.kv").first().isVisible(), false, "details start closed");
  await shot("02-waterfall");

  /** The waterfall row of the span `name` of `service`, opened. */
  const open = async (service, name) => {
    const row = page
      .locator("#waterfall tr")
      .filter({ has: page.locator("td:nth-child(2)", { hasText: service }) })
      .filter({ has: page.locator("summary", { hasText: name }) });
    assert.equal(await row.count(), 1, `one ${service} ${name} row`);
    await row.locator("summary").click();
    assert.equal(await row.locator("details").getAttribute("open"), "", `${name} opened`);
    return row;
  };
  /** The visible text of attribute `key` in a row's details. */
  const attribute = async (row, key) => {
    const value = row.locator(`.sd > dl.kv:nth-of-type(2) dt:text-is("${key}") + dd`);
    assert.ok(await value.isVisible(), `${key} is visible`);
    return value.textContent();
  };

  // Catalog's D1 query: its database attributes, ids and kind.
  const select = await open(CATALOG, "SELECT products");
  assert.equal(await attribute(select, "db.system"), "cloudflare_d1");
  assert.equal(await attribute(select, "db.operation.name"), "SELECT");
  assert.equal(await attribute(select, "db.collection.name"), "products");
  assert.match(await attribute(select, "db.query.text"), /WHERE sku = \?1/);
  assert.equal(await attribute(select, "db.response.returned_rows"), "1");
  const keys = await select.locator(".sd > dl.kv:nth-of-type(2) dt").allTextContents();
  assert.deepEqual(keys, [...keys].sort(), "attributes are sorted");
  assert.equal(await select.locator(".sd dt:text-is('kind') + dd").textContent(), "CLIENT");
  assert.match(await select.locator(".sd dt:text-is('span id') + dd").textContent(), /^[0-9a-f]{16}$/);

  // Orders' `tracing` span, and the "order priced" event its handler
  // logs (recorded on orders' SERVER span, where `tracing::info!` runs).
  const priceItems = await open(ORDERS, "price_items");
  assert.equal(await priceItems.locator(".sd dt:text-is('kind') + dd").textContent(), "INTERNAL");
  assert.equal(await attribute(priceItems, "items"), "1");
  const server = await open(ORDERS, "CreateOrder SERVER");
  const event = server.locator("ol.ev li", { hasText: "order priced" });
  assert.ok(await event.isVisible(), "the order priced event is shown");
  assert.match(await event.locator(".t").textContent(), /^\+\d+\.\d{3} ms$/, "at an offset from the trace start");
  assert.equal(await event.locator("dt:text-is('currency') + dd").textContent(), "EUR");
  await select.scrollIntoViewIfNeeded();
  await shot("03-waterfall-open-spans");

  // The service map, reached through the navigation: gateway → orders →
  // catalog, and each service's own D1 node.
  await page.click("nav >> text=Service map");
  await page.waitForURL("**/map");
  const edgeRow = async (caller, callee) => {
    const row = page.locator("#edges tr").filter({ has: page.locator("td:nth-child(1)", { hasText: caller }) });
    const cells = (await Promise.all((await row.all()).map((r) => r.locator("td").allTextContents()))).filter((c) => c[0] === caller && c[1] === callee);
    assert.equal(cells.length, 1, `one ${caller} → ${callee} row`);
    return cells[0];
  };
  for (const [caller, callee] of [
    [GATEWAY, ORDERS],
    [ORDERS, CATALOG],
    [CATALOG, `d1 (${CATALOG})`],
    [ORDERS, `d1 (${ORDERS})`],
  ]) {
    const cells = await edgeRow(caller, callee);
    assert.ok(Number(cells[2]) >= 1, `calls: ${cells[2]}`);
    assert.match(cells[3], /^\d+\.\d+\/(s|min)$/, "rate");
    assert.match(cells[4], /^\d+\.\d%$/, "error rate");
    assert.match(cells[5], /^\d+\.\d ms$/, "p50");
    assert.match(cells[6], /^\d+\.\d ms$/, "p99");
  }
  const boxes = await page.locator("svg rect[fill=\"#eef3fb\"] + text").allTextContents();
  for (const node of [GATEWAY, ORDERS, CATALOG, `d1 (${CATALOG})`]) assert.ok(boxes.includes(node), boxes.join());
  await shot("04-service-map");

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
  await shot("05-registry");

  // Metrics: the Workers export their RED metrics on an isolate's first
  // request; CreateOrder is served by the gateway (forwarding) and by orders,
  // each reported on its own row.
  await page.click("nav >> text=Metrics");
  await page.waitForURL("**/metrics");
  assert.equal(await page.locator("h1").textContent(), "Metrics");
  const createOrder = await page.locator("tr", { hasText: "CreateOrder" }).evaluateAll((rows) =>
    rows.map((r) => [...r.querySelectorAll("td")].slice(0, 4).map((td) => td.textContent)),
  );
  for (const reporter of [GATEWAY, ORDERS]) {
    assert.ok(
      createOrder.some((cells) => cells.join() === ["server", reporter, ORDERS, "CreateOrder"].join()),
      JSON.stringify(createOrder),
    );
  }
  await shot("06-metrics");

  // A bad filter typed into the list form: a 400 page with the message.
  await page.goto(mesh.urls.console);
  await page.fill("input[name=min_duration_ms]", "soon");
  await page.click("form.f button");
  assert.match(await page.locator(".msg").textContent(), /min_duration_ms: expected a number/);
  await shot("07-bad-filter");

  for (const path of shots) assertPng(path);
  console.log(`saved ${shots.length} screenshots in ${SHOTS}`);
});
