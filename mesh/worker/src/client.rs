//! Typed clients' transport inside a Worker: the registry's instances (or a
//! static service binding) under the mesh's full resilience stack.
//!
//! The stack's state (retry budget, circuit breaker, in-flight count) must
//! outlive one request, or a breaker could never open and a budget never
//! drain. A Worker has no process, but it has an isolate that serves many
//! requests in turn, so the stacks live in an isolate-wide table, one per
//! binding. Configuration comes from the `WORKMESH_RESILIENCE` var (JSON, see
//! `workmesh::config`), parsed once per isolate.
//!
//! With a `REGISTRY` binding, calls route by the registry's answers
//! (versions by weight, then P2C over the version's instances, a breaker per
//! instance); see [`discovery`](crate::discovery) for when the registry is
//! called, how calls fall back to the static binding (also when every
//! discovered instance's breaker is open, or the answer is expired and the
//! static binding is healthy) and how deadlines count the time spent
//! deciding.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::task::{Context, Poll};

use bytes::Bytes;
use tower::{Layer, ServiceExt};
use workmesh::breaker::BreakerHandle;
use workmesh::config::ResilienceConfig;
use workmesh::proto::v1::registry_client::RegistryClient;
use workmesh::stack::{ClientService, ClientStack};
use workmesh::{ConnectError, Deadline, LocalBoxFuture, MethodDescriptor, Runtime};

use crate::discovery::{self, Target};
use crate::{BindingTransport, WorkerRuntime};

/// The Worker var holding the resilience configuration.
pub const RESILIENCE_VAR: &str = "WORKMESH_RESILIENCE";

/// The transport typed clients call a target through: discovered instances
/// when the registry knows some, else the static binding; always under the
/// resilience stack for the target.
#[derive(Clone)]
pub struct MeshTransport {
    fallback: ClientService<BindingTransport, WorkerRuntime>,
    discovery: Option<Discovery>,
}

#[derive(Clone)]
struct Discovery {
    target: Rc<Target>,
    registry: RegistryClient<crate::discovery::RegistryTransport>,
    env: worker::Env,
    config: Rc<ResilienceConfig>,
    /// The static binding's breaker.
    fallback_breaker: BreakerHandle,
}

thread_local! {
    static CONFIG: RefCell<Option<Rc<ResilienceConfig>>> = const { RefCell::new(None) };
    static STACKS: RefCell<HashMap<&'static str, ClientStack<WorkerRuntime>>> = RefCell::new(HashMap::new());
}

/// The transport for calls to `target` (a service's full name, e.g.
/// `shop.v1.CatalogService`): deadlines, retries within a budget, circuit
/// breakers, load shedding and any configured faults, with state shared by
/// every request of this isolate.
///
/// Calls go to the instances the `REGISTRY` binding resolves `target` to,
/// when the Worker has that binding and the registry has answered; the
/// service binding `binding` is the static fallback (no registry, registry
/// down, no routable instance yet).
///
/// Fails with `failed_precondition` when `WORKMESH_RESILIENCE` is invalid
/// (the message names the bad field) and `internal` when the binding is
/// missing from the Worker's wrangler config.
pub fn mesh_transport(
    env: &worker::Env,
    binding: &'static str,
    target: &str,
) -> Result<MeshTransport, ConnectError> {
    let config = resilience_config(env)?;
    let stack = STACKS.with(|stacks| {
        stacks
            .borrow_mut()
            .entry(binding)
            .or_insert_with(|| {
                ClientStack::new(WorkerRuntime, config.clone(), target).with_server_address(binding)
            })
            .clone()
    });
    let transport = BindingTransport::new(env, binding).map_err(|e| {
        ConnectError::internal(format!("service binding {binding} is not configured: {e}"))
    })?;
    let discovery = discovery::registry(env).map(|registry| Discovery {
        target: discovery::target(target, || {
            ClientStack::new(WorkerRuntime, config.clone(), target)
        }),
        registry,
        env: env.clone(),
        config,
        fallback_breaker: stack.breaker(),
    });
    Ok(MeshTransport {
        fallback: stack.layer(transport),
        discovery,
    })
}

impl tower_service::Service<http::Request<Bytes>> for MeshTransport {
    type Response = http::Response<Bytes>;
    type Error = ConnectError;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: http::Request<Bytes>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            if let Some(d) = &this.discovery {
                let now = WorkerRuntime.now();
                // Fix the deadline now, so deciding the route (a cold
                // Resolve) spends the call's budget rather than adding to it.
                let deadline = match request.extensions().get::<Deadline>() {
                    Some(deadline) => Some(*deadline),
                    None => d
                        .config
                        .call_policy_for(request.extensions().get::<MethodDescriptor>())
                        .timeout
                        .map(|timeout| Deadline(now + timeout)),
                };
                if let Some(deadline) = deadline {
                    request.extensions_mut().insert(deadline);
                }
                let static_can_send = !d.fallback_breaker.is_open(now);
                let route = discovery::route(
                    &d.target,
                    &d.registry,
                    &d.env,
                    deadline.map(|d| d.0),
                    static_can_send,
                )
                .await;
                if let Some(route) = route {
                    return route.oneshot(request).await;
                }
            }
            this.fallback.oneshot(request).await
        })
    }
}

fn resilience_config(env: &worker::Env) -> Result<Rc<ResilienceConfig>, ConnectError> {
    if let Some(config) = CONFIG.with(|c| c.borrow().clone()) {
        return Ok(config);
    }
    let config = match env.var(RESILIENCE_VAR) {
        Ok(json) => ResilienceConfig::from_json(&json.to_string()).map_err(|e| {
            ConnectError::failed_precondition(format!("{RESILIENCE_VAR} is invalid: {e}"))
        })?,
        // Unset: the reference defaults.
        Err(_) => ResilienceConfig::default(),
    };
    let config = Rc::new(config);
    CONFIG.with(|c| *c.borrow_mut() = Some(config.clone()));
    Ok(config)
}
