// Shared helpers for the end-to-end tests: start the real Workers in workerd
// (the same runner `cargo workmesh up` uses) and speak Connect to them.

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
