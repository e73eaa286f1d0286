//! Typed clients' transport inside a Worker: a service binding under the
//! mesh's full resilience stack.
//!
//! The stack's state (retry budget, circuit breaker, in-flight count) must
//! outlive one request, or a breaker could never open and a budget never
//! drain. A Worker has no process, but it has an isolate that serves many
//! requests in turn, so the stacks live in an isolate-wide table, one per
//! binding. Configuration comes from the `WORKMESH_RESILIENCE` var (JSON, see
//! `workmesh::config`), parsed once per isolate.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use tower::Layer;
use workmesh::config::ResilienceConfig;
use workmesh::stack::{ClientService, ClientStack};
use workmesh::ConnectError;

use crate::{BindingTransport, WorkerRuntime};

/// The Worker var holding the resilience configuration.
pub const RESILIENCE_VAR: &str = "WORKMESH_RESILIENCE";

/// A binding transport wrapped in the resilience stack for `target`.
pub type MeshTransport = ClientService<BindingTransport, WorkerRuntime>;

thread_local! {
    static CONFIG: RefCell<Option<Rc<ResilienceConfig>>> = const { RefCell::new(None) };
    static STACKS: RefCell<HashMap<&'static str, ClientStack<WorkerRuntime>>> = RefCell::new(HashMap::new());
}

/// The transport for calls to `target` (a service's full name, e.g.
/// `shop.v1.CatalogService`) through the service binding `binding`:
/// deadlines, retries within a budget, a circuit breaker, load shedding and
/// any configured faults, with state shared by every request of this isolate.
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
                ClientStack::new(WorkerRuntime, config, target).with_server_address(binding)
            })
            .clone()
    });
    let transport = BindingTransport::new(env, binding).map_err(|e| {
        ConnectError::internal(format!("service binding {binding} is not configured: {e}"))
    })?;
    Ok(stack.layer(transport))
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
