// The local mesh: every Worker in wrangler/*.toml, in one workerd driven
// through Miniflare's API.
//
// Why not `wrangler dev -c a -c b ...`: its dev proxy sits in front of every
// request and measured ~5x slower on this mesh, which would distort the
// benchmarks. Miniflare gives the same workerd, the same bindings (we read them
// with wrangler's own config loader, so wrangler/*.toml stays the single source
// of truth) and a direct socket per Worker.
//
// Used by `cargo workmesh up` (as a program) and by the end-to-end tests (as a
// module: `startMesh()`).

import { readdirSync, readFileSync, existsSync, mkdirSync } from "node:fs";
import { dirname, join, resolve, basename } from "node:path";
import { fileURLToPath } from "node:url";
import { Miniflare, Log, LogLevel } from "miniflare";
import { unstable_getMiniflareWorkerOptions, unstable_readConfig } from "wrangler";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");

/** Every Worker config, in a stable order. */
export function workerConfigs(root = repoRoot) {
  const dir = join(root, "wrangler");
  return readdirSync(dir)
    .filter((f) => f.endsWith(".toml"))
    .sort()
    .map((f) => join(dir, f));
}

/**
 * Vars every Worker gets in the local mesh only, like wrangler's `.dev.vars`:
 * server-side fault injection (`workmesh.v1.Faults`) for chaos tests and demos.
 * Deployed Workers never get them from here.
 */
const LOCAL_VARS = { WORKMESH_FAULTS: "enabled" };

function workerOptionsFor(configPath, port, opts = {}) {
  const config = unstable_readConfig({ config: configPath });
  const { workerOptions, main } = unstable_getMiniflareWorkerOptions(configPath);
  const scriptPath = resolve(dirname(configPath), main ?? config.main);
  if (!existsSync(scriptPath)) {
    throw new Error(`${basename(configPath)}: ${scriptPath} is missing; run \`cargo workmesh build\` first`);
  }
  const bindings = { ...workerOptions.bindings, ...LOCAL_VARS };
  if (!opts.register) {
    // Without WORKMESH_INSTANCE a Worker does not register itself (a test may set it in `vars`).
    delete bindings.WORKMESH_INSTANCE;
  }
  Object.assign(bindings, opts.vars?.[config.name] ?? {});
  const serviceBindings = { ...(workerOptions.serviceBindings ?? {}) };
  for (const [binding, service] of Object.entries(opts.services?.[config.name] ?? {})) {
    if (service === null) delete serviceBindings[binding];
    else serviceBindings[binding] = service;
  }
  return {
    config,
    options: {
      ...workerOptions,
      bindings,
      serviceBindings,
      name: config.name,
      modules: true,
      scriptPath,
      // worker-build emits index.js importing index_bg.wasm beside it.
      modulesRoot: dirname(scriptPath),
      modulesRules: [{ type: "CompiledWasm", include: ["**/*.wasm"], fallthrough: true }],
      unsafeDirectSockets: [{ host: "127.0.0.1", port: port ?? config.dev?.port ?? 0 }],
    },
  };
}

/** Applies a D1 database's migrations the way `wrangler d1 migrations apply` does. */
async function applyMigrations(mf, workerName, configPath, database) {
  if (!database.migrations_dir) return [];
  const dir = resolve(dirname(configPath), database.migrations_dir);
  if (!existsSync(dir)) return [];
  const table = database.migrations_table ?? "d1_migrations";
  const db = await mf.getD1Database(database.binding, workerName);
  await db.exec(
    `CREATE TABLE IF NOT EXISTS ${table} (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT UNIQUE, applied_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP);`,
  );
  const applied = new Set((await db.prepare(`SELECT name FROM ${table}`).all()).results.map((r) => r.name));
  const done = [];
  for (const file of readdirSync(dir).filter((f) => f.endsWith(".sql")).sort()) {
    if (applied.has(file)) continue;
    const sql = readFileSync(join(dir, file), "utf8");
    // D1's batch runs in one transaction: a failing migration leaves nothing behind.
    const statements = splitSql(sql).map((s) => db.prepare(s));
    statements.push(db.prepare(`INSERT INTO ${table} (name) VALUES (?)`).bind(file));
    await db.batch(statements);
    done.push(`${workerName}/${database.binding}: ${file}`);
  }
  return done;
}

function splitSql(sql) {
  const withoutComments = sql
    .split("\n")
    .filter((line) => !line.trim().startsWith("--"))
    .join("\n");
  return withoutComments
    .split(";")
    .map((s) => s.trim())
    .filter(Boolean);
}

/** Polls until the Worker answers any HTTP response (or throws after `timeoutMs`). */
async function waitUntilAnswering(name, url, timeoutMs = 30_000) {
  const start = Date.now();
  let lastError;
  while (Date.now() - start < timeoutMs) {
    try {
      const res = await fetch(new URL("/workmesh.v1.Health/Check", url), {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: "{}",
      });
      await res.arrayBuffer();
      return;
    } catch (e) {
      lastError = e;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  throw new Error(`${name} did not answer at ${url} within ${timeoutMs} ms: ${lastError}`);
}

/**
 * Starts every Worker of the mesh in one workerd.
 * @param {{root?: string, persistTo?: string|false, ephemeralPorts?: boolean, verbose?: boolean,
 *          vars?: Record<string, Record<string, string>>,
 *          services?: Record<string, Record<string, string|null>>, register?: boolean}} opts
 * `persistTo: false` keeps all state in memory (tests); `ephemeralPorts` lets the OS pick ports;
 * `vars` (tests only) overrides vars per Worker name, merged over its wrangler config's,
 * e.g. `{ registry: { WORKMESH_HEALTH_INTERVAL_MS: "200" } }`;
 * `services` (tests only) replaces service bindings per Worker name (`null` removes one),
 * e.g. `{ orders: { REGISTRY: null } }`;
 * `register` (on for `cargo workmesh up`, off by default here so tests see only the instances
 * they register) registers every Worker that has `WORKMESH_SERVICE`, `WORKMESH_INSTANCE` and
 * `WORKMESH_ENDPOINT` with the registry right after start, heartbeats them while the mesh runs,
 * and lets the Workers register themselves.
 */
export async function startMesh(opts = {}) {
  const root = opts.root ?? repoRoot;
  const persistRoot = opts.persistTo === false ? null : resolve(opts.persistTo ?? join(root, ".wrangler/state/v3"));
  if (persistRoot) mkdirSync(persistRoot, { recursive: true });

  const workers = workerConfigs(root).map((path) => ({ path, ...workerOptionsFor(path, opts.ephemeralPorts ? 0 : undefined, opts) }));
  const mf = new Miniflare({
    workers: workers.map((w) => w.options),
    d1Persist: persistRoot ? join(persistRoot, "d1") : false,
    durableObjectsPersist: persistRoot ? join(persistRoot, "do") : false,
    // Never ask the internet for a Request.cf object: the placeholder serves locally.
    cf: false,
    log: new Log(opts.verbose ? LogLevel.DEBUG : LogLevel.WARN),
  });
  await mf.ready;

  const migrations = [];
  for (const w of workers) {
    for (const database of w.config.d1_databases ?? []) {
      migrations.push(...(await applyMigrations(mf, w.config.name, w.path, database)));
    }
  }

  const urls = {};
  for (const w of workers) {
    urls[w.config.name] = (await mf.unsafeGetDirectURL(w.config.name)).toString();
  }
  await Promise.all(Object.entries(urls).map(([name, url]) => waitUntilAnswering(name, url)));

  const heartbeats = opts.register && urls.registry ? await registerInstances(workers, urls.registry) : null;
  return {
    mf,
    urls,
    migrations,
    registered: heartbeats?.instances ?? [],
    dispose: () => {
      heartbeats?.stop();
      return dispose(mf, urls);
    },
  };
}

/** The registry instance a Worker's vars describe, or null. */
function instanceOf(config) {
  const vars = config.vars ?? {};
  const { WORKMESH_SERVICE: service, WORKMESH_INSTANCE: instanceId, WORKMESH_ENDPOINT: endpoint } = vars;
  if (!service || !instanceId || !endpoint) return null;
  return {
    service,
    instanceId,
    version: vars.WORKMESH_VERSION ?? "v1",
    ...(/^https?:\/\//.test(endpoint) ? { url: endpoint } : { binding: endpoint }),
    zone: "local",
  };
}

/**
 * Registers every Worker of the mesh that describes its instance, then heartbeats them at the
 * interval the registry asks for (Workers heartbeat only while they serve requests; an idle
 * local Worker would otherwise expire). Failures are reported on stderr and retried next beat.
 */
async function registerInstances(workers, registryUrl) {
  const call = async (method, message) => {
    const res = await fetch(new URL(`/workmesh.v1.Registry/${method}`, registryUrl), {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(message),
    });
    const body = await res.json();
    if (!res.ok) throw new Error(`${method}: ${res.status} ${JSON.stringify(body)}`);
    return body;
  };
  const instances = workers.map((w) => instanceOf(w.config)).filter(Boolean);
  let interval = 10_000;
  for (const instance of instances) {
    const registered = await call("Register", { instance });
    interval = Math.min(interval, Number(registered.heartbeatIntervalMs) || interval);
  }
  const timer = setInterval(async () => {
    for (const instance of instances) {
      try {
        const beat = await call("Heartbeat", { instanceId: instance.instanceId });
        if (!beat.known) await call("Register", { instance });
      } catch (e) {
        console.error(`local mesh: heartbeat of ${instance.instanceId} failed: ${e.message}`);
      }
    }
  }, interval);
  timer.unref();
  return { instances: instances.map((i) => i.instanceId), stop: () => clearInterval(timer) };
}

/** Disposes Miniflare and waits until workerd has really let go of every port. */
async function dispose(mf, urls) {
  await mf.dispose();
  const deadline = Date.now() + 10_000;
  for (const url of Object.values(urls)) {
    while (Date.now() < deadline && (await answers(url))) {
      await new Promise((r) => setTimeout(r, 25));
    }
  }
}

async function answers(url) {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(500) });
    await res.arrayBuffer();
    return true;
  } catch {
    return false;
  }
}

/**
 * Kills every workerd that is still a child of this process (Linux only).
 * A safety net: Miniflare's own signal hook kills the runtime it knows and
 * exits at once, and now and then a workerd outlived the runner, holding the
 * dev ports (seen about once in four `up` runs).
 */
function killChildWorkerd() {
  if (process.platform !== "linux") return;
  for (const pid of readdirSync("/proc").filter((d) => /^\d+$/.test(d))) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      const close = stat.lastIndexOf(")");
      const comm = stat.slice(stat.indexOf("(") + 1, close);
      const ppid = Number(stat.slice(close + 2).split(" ")[1]);
      if (comm === "workerd" && ppid === process.pid) process.kill(Number(pid), "SIGKILL");
    } catch {
      // gone already, or not ours to read
    }
  }
}

// As a program: start, print one JSON line with the URLs, stay up until signalled.
if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.on("exit", killChildWorkerd);
  const args = process.argv.slice(2);
  const persistArg = args.indexOf("--persist-to");
  const mesh = await startMesh({
    persistTo: persistArg >= 0 ? args[persistArg + 1] : undefined,
    verbose: args.includes("--verbose"),
    register: true,
  });
  console.log(JSON.stringify({ ready: true, urls: mesh.urls, migrations: mesh.migrations, registered: mesh.registered }));
  let stopping = false;
  const stop = async (signal) => {
    if (stopping) return;
    stopping = true;
    await mesh.dispose();
    console.error(`local mesh stopped (${signal})`);
    process.exit(0);
  };
  process.on("SIGINT", () => stop("SIGINT"));
  process.on("SIGTERM", () => stop("SIGTERM"));
  // Our parent (cargo workmesh up) closes stdin when it goes away: never outlive it.
  process.stdin.on("end", () => stop("parent exited"));
  process.stdin.resume();
}
