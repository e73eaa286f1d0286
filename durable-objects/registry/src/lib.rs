//! The service registry: one SQLite-backed Durable Object that holds every
//! instance of every service in the mesh, behind the `workmesh.v1.Registry`
//! Connect API.
//!
//! The Worker in front of it forwards each call to the single `mesh` object,
//! so all writers see one consistent table; clients cache what they resolve,
//! so the registry is off the hot path of ordinary requests.

mod model;
mod service;
mod store;

use std::rc::Rc;

use worker::{durable_object, event, Context, DurableObject, Env, State};
use workmesh::proto::v1::registry_server::RegistryServer;
use workmesh_worker::Router;

use crate::service::RegistryService;
use crate::store::Store;

/// The name of the one registry object of a mesh.
const MESH_OBJECT: &str = "mesh";

#[event(fetch)]
async fn fetch(req: worker::Request, env: Env, _ctx: Context) -> worker::Result<worker::Response> {
    let stub = env.durable_object("REGISTRY")?.get_by_name(MESH_OBJECT)?;
    stub.fetch_with_request(req).await
}

#[durable_object]
pub struct Registry {
    router: Router,
    env: Env,
    state: Rc<State>,
}

impl DurableObject for Registry {
    fn new(state: State, env: Env) -> Self {
        let store = Store::new(state.storage().sql());
        Registry {
            router: Router::new().add(RegistryServer::new(RegistryService::new(store))),
            env,
            state: Rc::new(state),
        }
    }

    async fn fetch(&self, req: worker::Request) -> worker::Result<worker::Response> {
        // A Durable Object has no `Context`: its spans go out through the
        // object state's own `wait_until`, after the response.
        let state = Rc::clone(&self.state);
        workmesh_worker::serve_with(&self.router, req, &self.env, move |export| {
            state.wait_until(export)
        })
        .await
    }
}
