// `cargo workmesh up`, the way a developer runs it: it must come up on the
// configured ports, answer, and stop cleanly on SIGTERM and on Ctrl-C (SIGINT)
// leaving no process or port behind.

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";
import { callJson, tempStateDir } from "./helpers.mjs";

/** Running workerd processes (zombies waiting for a reaper do not count: they hold nothing). */
function workerdCount() {
  let pids;
  try {
    pids = execFileSync("pgrep", ["-x", "workerd"], { encoding: "utf8" }).trim().split("\n");
  } catch {
    return 0; // pgrep exits 1 when nothing matches
  }
  return pids.filter((pid) => {
    try {
      return readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.[0] !== "Z";
    } catch {
      return false; // gone meanwhile
    }
  }).length;
}

async function portClosed(url) {
  try {
    await fetch(url);
    return false;
  } catch {
    return true;
  }
}

async function runUpThenSignal(signal) {
  const state = tempStateDir();
  const before = workerdCount();
  const child = spawn("cargo", ["workmesh", "up", "--persist-to", state], {
    cwd: new URL("../..", import.meta.url).pathname,
    stdio: ["ignore", "pipe", "inherit"],
  });
  let output = "";
  const urls = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`not ready after 300 s:\n${output}`)), 300_000);
    child.stdout.on("data", (chunk) => {
      output += chunk;
      if (output.includes("Ctrl-C to stop.")) {
        clearTimeout(timer);
        const found = {};
        for (const [, name, url] of output.matchAll(/^\s+([\w-]+)\s+(http:\/\/\S+)$/gm)) found[name] = url;
        resolve(found);
      }
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`exited early (${code}):\n${output}`));
    });
  });
  try {
    assert.deepEqual(Object.keys(urls).sort(), ["catalog", "catalog-canary", "console", "gateway", "orders", "registry"]);
    assert.equal(urls.gateway, "http://127.0.0.1:8793/");
    assert.equal(urls.console, "http://127.0.0.1:8791/");
    assert.equal(urls.catalog, "http://127.0.0.1:8788/", "ports come from wrangler/*.toml [dev] port");
    const res = await callJson(urls.catalog, "/shop.v1.CatalogService/GetProduct", { sku: "SKU-0002" });
    assert.equal(res.status, 200);
    assert.equal(res.body.product.name, "Merino sock");

    const exited = new Promise((resolve) => child.on("exit", (code, sig) => resolve({ code, sig })));
    child.kill(signal);
    const { code } = await exited;
    assert.equal(code, 0, `exit after ${signal}:\n${output}`);
    assert.match(output, /local mesh stopped/);
    for (const url of Object.values(urls)) assert.ok(await portClosed(url), `${url} still open`);
    assert.equal(workerdCount(), before, "no workerd process left behind");
  } finally {
    child.kill("SIGKILL");
    rmSync(state, { recursive: true, force: true });
  }
}

test("cargo workmesh up serves the mesh and stops on SIGTERM", () => runUpThenSignal("SIGTERM"));
test("cargo workmesh up stops on Ctrl-C (SIGINT)", () => runUpThenSignal("SIGINT"));
