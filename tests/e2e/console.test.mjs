// The console Worker's own API, end to end: OTLP/JSON and protobuf input,
// metrics, retention, trace search, the service map, the registry view.
// (The browser walk through the dashboard is dashboard.test.mjs.)

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { startMesh, callJson } from "./helpers.mjs";

let mesh;
before(async () => {
  mesh = await startMesh({ persistTo: false, ephemeralPorts: true });
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
