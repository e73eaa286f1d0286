//! # workmesh-worker
//!
//! The Cloudflare Workers side of workmesh:
//!
//! - [`serve`]: answer a Worker's `fetch` event with a [`Router`] of generated
//!   Connect services;
//! - [`BindingTransport`]: call another Worker through a service binding, as
//!   the transport under a generated typed client;
//! - [`WorkerRuntime`]: the clock, timer and randomness layers use inside a Worker;
//! - `workmesh.v1.Health/Check`, answered for every Worker that `serve`s.
//!
//! ```ignore
//! #[event(fetch)]
//! async fn fetch(req: worker::Request, env: worker::Env, _ctx: worker::Context) -> worker::Result<worker::Response> {
//!     let router = Router::new().add(CatalogServiceServer::new(Catalog::new(env.d1("DB")?)));
//!     workmesh_worker::serve(&router, req).await
//! }
//! ```
//!
//! ## Where the platform bites
//! - No `std::time`: `Instant::now()` panics on wasm32. Use [`WorkerRuntime`].
//! - `Date.now()` only advances across I/O (a Spectre mitigation), so timing
//!   pure computation inside a request reads zero.
//! - A panic aborts the request and resets the isolate: nothing here unwraps
//!   request data; failures become Connect errors.
//! - Nothing is `Send`: the futures here hold JS values.

mod health;
mod runtime;
mod serve;
mod transport;

pub use runtime::WorkerRuntime;
pub use serve::serve;
pub use transport::BindingTransport;
pub use workmesh::server::Router;
