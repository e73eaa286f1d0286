//! # workmesh-worker
//!
//! The Cloudflare Workers side of workmesh:
//!
//! - [`serve`]: answer a Worker's `fetch` event with a [`Router`] of generated
//!   Connect services;
//! - [`mesh_transport`]: call another Worker, under the mesh's resilience
//!   stack (state shared across the isolate's requests), routed by the
//!   registry's answers with a static service binding as fallback
//!   ([`discovery`]); [`BindingTransport`] and [`UrlTransport`] are the bare
//!   transports underneath;
//! - self-registration with the registry and outcome reports ([`discovery`]);
//! - [`WorkerRuntime`]: the clock, timer and randomness layers use inside a Worker;
//! - `workmesh.v1.Health/Check`, answered for every Worker that `serve`s;
//! - tracing: a SERVER span per call, CLIENT spans per outgoing attempt,
//!   exported as OTLP after the response ([`telemetry`]); D1 query spans
//!   ([`TracedD1`]); `tracing` spans and events bridged into the trace;
//! - RED metrics per isolate, exported as OTLP beside the spans ([`metrics`]).
//!
//! ```ignore
//! #[event(fetch)]
//! async fn fetch(req: worker::Request, env: worker::Env, ctx: worker::Context) -> worker::Result<worker::Response> {
//!     let router = Router::new().add(CatalogServiceServer::new(Catalog::new(env.d1("DB")?)));
//!     workmesh_worker::serve(&router, req, &env, &ctx).await
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

mod background;
mod client;
pub mod d1;
pub mod discovery;
mod faults;
mod health;
pub mod metrics;
pub mod queue;
mod runtime;
mod serve;
pub mod telemetry;
mod transport;

pub use client::{mesh_transport, MeshTransport, RESILIENCE_VAR};
pub use d1::TracedD1;
pub use faults::FAULTS_VAR;
pub use runtime::WorkerRuntime;
pub use serve::{error_to_worker, serve, serve_with};
pub use transport::{BindingTransport, UrlTransport};
pub use workmesh::server::Router;
