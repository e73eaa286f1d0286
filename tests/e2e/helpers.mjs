// Shared helpers for the end-to-end tests: start the real Workers in workerd
// (the same runner `cargo workmesh up` uses) and speak Connect to them.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startMesh } from "../../mesh/cli/js/local-mesh.mjs";

export { startMesh };

/** A fresh folder for persisted local state. */
export function tempStateDir() {
  return mkdtempSync(join(tmpdir(), "workmesh-e2e-"));
}

/** A Connect unary call with the JSON codec; returns {status, headers, body}. */
export async function callJson(baseUrl, path, message, headers = {}) {
  const res = await fetch(new URL(path, baseUrl), {
    method: "POST",
    headers: { "content-type": "application/json", "connect-protocol-version": "1", ...headers },
    body: typeof message === "string" ? message : JSON.stringify(message),
  });
  const text = await res.text();
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    body = text;
  }
  return { status: res.status, headers: res.headers, body };
}

/** A Connect GET call (only for NO_SIDE_EFFECTS methods). */
export async function getJson(baseUrl, path, message) {
  const url = new URL(path, baseUrl);
  url.searchParams.set("connect", "v1");
  url.searchParams.set("encoding", "json");
  url.searchParams.set("message", JSON.stringify(message));
  const res = await fetch(url);
  return { status: res.status, headers: res.headers, body: await res.json() };
}

/** Runs `cargo workmesh …` from the repository root; returns {code, stdout, stderr}. */
export function workmesh(...args) {
  const res = spawnSync("cargo", ["workmesh", ...args], {
    cwd: new URL("../..", import.meta.url).pathname,
    encoding: "utf8",
  });
  return { code: res.status, stdout: res.stdout, stderr: res.stderr };
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `find` until it returns a truthy value, and returns that value. */
export async function eventually(what, find, timeoutMs = 10_000) {
  const start = Date.now();
  while (Date.now() - start < timeoutMs) {
    const found = await find();
    if (found) return found;
    await sleep(100);
  }
  assert.fail(`${what} did not appear within ${timeoutMs} ms`);
}

/**
 * Polls `predicate` until it returns exactly `true`; anything else it returns
 * is shown if time runs out. Returns the elapsed ms.
 */
export async function until(what, predicate, timeoutMs = 5000) {
  const start = Date.now();
  let last;
  while (Date.now() - start < timeoutMs) {
    last = await predicate();
    if (last === true) return Date.now() - start;
    await sleep(25);
  }
  assert.fail(`${what} within ${timeoutMs} ms (last: ${JSON.stringify(last)})`);
}

/** A console JSON API answer (must be 200). */
export async function consoleJson(mesh, path) {
  const res = await fetch(new URL(path, mesh.urls.console));
  assert.equal(res.status, 200, `${path}: ${res.status}`);
  return res.json();
}
