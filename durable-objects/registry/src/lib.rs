//! The service registry: one SQLite-backed Durable Object that holds every
//! instance of every service in the mesh, behind the `workmesh.v1.Registry`
//! Connect API.
//!
//! The Worker in front of it forwards each call to the single `mesh` object,
//! so all writers see one consistent table; clients cache what they resolve,
//! so the registry is off the hot path of ordinary requests.
//!
//! What it keeps per instance and why:
//! - **Liveness**: instances heartbeat; one silent for the heartbeat TTL
//!   (`WORKMESH_HEARTBEAT_TTL_MS`, 30 s) is no longer resolved, and one
//!   silent for ten TTLs is deleted.
//! - **Active health** (`health.rs`): the object's alarm probes every live
//!   instance's `workmesh.v1.Health/Check` and flips it unhealthy / healthy
//!   on consecutive results (`WORKMESH_HEALTH_*`).
//! - **Passive health** (`ReportOutcomes`, rules in `model/passive.rs`):
//!   clients report call outcomes per instance in batches that are counted
//!   once per `report_id`; the registry sums them, keeps the worst recent
//!   breaker state callers report, and ejects outliers for a growing time,
//!   never more than half of a service, yet always one of two or more
//!   (`WORKMESH_EJECTION_*`).
//!
//! Resolve answers only live, healthy, non-ejected, non-draining instances,
//! with a version token that changes whenever that answer would (writes that
//! change routability, ejections included, bump a generation; expiry and the
//! end of an ejection change the routable set itself). Outcome totals and
//! breaker states ride along in the instances but do not change the token:
//! they change with every report and would void every cached answer.
//!
//! **Access**: the registry Worker has no public URL (`workers_dev = false`,
//! `preview_urls = false`); services reach it through service bindings. With
//! `WORKMESH_REGISTRY_TOKEN` set (best as a secret: `wrangler secret put
//! WORKMESH_REGISTRY_TOKEN -c wrangler/registry.toml`), every call but
//! `workmesh.v1.Health/Check` must also carry `Authorization: Bearer <token>`
//! or is refused with `unauthenticated` (401); unset, the registry is open
//! (the local mesh). Give every caller the same secret: the mesh's registry
//! client (`mesh/worker`) and the CLI send it as a bearer token; a Worker
//! without it cannot register, heartbeat, report or resolve, and falls back
//! to its static bindings.
//!
//! Configuration (vars of the registry Worker; a bad value fails every call
//! with `failed_precondition` naming the var):
//!
//! | var | default | meaning |
//! |---|---|---|
//! | `WORKMESH_HEARTBEAT_TTL_MS` | 30000 | silent this long: not resolved (heartbeat asked every TTL/3; deleted after 10 TTLs) |
//! | `WORKMESH_HEALTH_INTERVAL_MS` | 5000 | probe interval |
//! | `WORKMESH_HEALTH_TIMEOUT_MS` | 500 | probe timeout |
//! | `WORKMESH_HEALTH_UNHEALTHY_THRESHOLD` | 3 | consecutive failed probes to mark unhealthy |
//! | `WORKMESH_HEALTH_HEALTHY_THRESHOLD` | 2 | consecutive passed probes to mark healthy |
//! | `WORKMESH_EJECTION_CONSECUTIVE_FAILURES` | 5 | reported failures in a row that eject |
//! | `WORKMESH_EJECTION_SUCCESS_RATE_PERCENT` | 80 | a success rate below this over the window ejects (0: off) |
//! | `WORKMESH_EJECTION_MIN_CALLS` | 5 | calls in the window the rate rule needs |
//! | `WORKMESH_EJECTION_WINDOW_MS` | 10000 | success-rate window |
//! | `WORKMESH_EJECTION_BASE_MS` | 30000 | first ejection; the n-th lasts n times as long |
//! | `WORKMESH_EJECTION_MAX_MS` | 300000 | longest ejection (at least the base) |
//! | `WORKMESH_EJECTION_MAX_PERCENT` | 50 | most of a service's live instances ejected at once; with two or more, at least one may be (0: off) |
//! | `WORKMESH_EJECTION_DECAY_MS` | 300000 | each this long without an ejection takes one off `times_ejected` (Envoy's multiplier decay) |

mod auth;
mod health;
mod model;
mod service;
mod store;
mod transaction;

use std::rc::Rc;

use worker::{durable_object, event, Context, DurableObject, Env, State};
use workmesh::proto::v1::registry_server::RegistryServer;
use workmesh::ConnectError;
use workmesh_worker::Router;

use crate::model::RegistryConfig;
use crate::service::RegistryService;
use crate::store::Store;

/// The name of the one registry object of a mesh.
const MESH_OBJECT: &str = "mesh";

#[event(fetch)]
async fn fetch(req: worker::Request, env: Env, _ctx: Context) -> worker::Result<worker::Response> {
    let token = env.var(auth::TOKEN_VAR).ok().map(|v| v.to_string());
    let authorization = req.headers().get("authorization")?;
    if let Err(error) = auth::authorize(token.as_deref(), &req.path(), authorization.as_deref()) {
        return workmesh_worker::error_to_worker(&error);
    }
    let stub = env.durable_object("REGISTRY")?.get_by_name(MESH_OBJECT)?;
    stub.fetch_with_request(req).await
}

#[durable_object]
pub struct Registry {
    router: Router,
    state: Rc<State>,
    env: Env,
    /// The registry's config from its vars; `Err` (a bad var) fails every call.
    config: Result<RegistryConfig, ConnectError>,
}

impl DurableObject for Registry {
    fn new(state: State, env: Env) -> Self {
        let store = Store::new(state.storage().sql());
        let config = RegistryConfig::from_vars(|name| env.var(name).ok().map(|v| v.to_string()));
        // With a bad var every call fails before reaching the service, so the
        // defaults it gets then are never used.
        let service_config = config.as_ref().copied().unwrap_or_default();
        let service = RegistryService::new(store, state.storage(), service_config);
        Registry {
            router: Router::new().add(RegistryServer::new(service)),
            state: Rc::new(state),
            env,
            config,
        }
    }

    async fn fetch(&self, req: worker::Request) -> worker::Result<worker::Response> {
        if let Err(error) = &self.config {
            return workmesh_worker::error_to_worker(error);
        }
        // A Durable Object has no `Context`: its spans go out through the
        // object state's own `wait_until`, after the response.
        let state = Rc::clone(&self.state);
        workmesh_worker::serve_with(&self.router, req, &self.env, move |export| {
            state.wait_until(export)
        })
        .await
    }

    async fn alarm(&self) -> worker::Result<worker::Response> {
        let storage = self.state.storage();
        let config = match &self.config {
            Ok(config) => *config,
            Err(error) => {
                // Calls already fail with this error; keep the alarm alive so
                // probing resumes once the var is fixed and redeployed.
                worker::console_error!("registry health checks are off: {}", error.message);
                storage
                    .set_alarm(i64::from(RegistryConfig::default().health.interval_ms))
                    .await?;
                return worker::Response::ok("health config invalid");
            }
        };
        let store = Store::new(storage.sql());
        let rearm = match health::run_round(&store, &self.env, &config).await {
            Ok(remaining) => remaining,
            Err(error) => {
                worker::console_error!("registry health round failed: {}", error.message);
                true
            }
        };
        if rearm {
            storage
                .set_alarm(i64::from(config.health.interval_ms))
                .await?;
        }
        worker::Response::ok("health round done")
    }
}
