//! # workmesh
//!
//! The runtime-neutral core of the workmesh service mesh. It knows nothing of
//! Cloudflare Workers: it compiles natively (for the CLI and tests) and to
//! wasm32 (inside every Worker), and takes time and randomness only from a
//! [`Runtime`].
//!
//! - [`error`]: the Connect error model, [`ConnectError`] and [`Code`].
//! - [`method`]: method metadata generated from the contracts.
//! - [`context`]: what travels with a call (deadline, wire header names).
//! - [`runtime`]: the clock / sleep / randomness seam.
//! - [`message`]: typed [`Request`](message::Request) / [`Response`](message::Response).
//! - [`protocol`]: the Connect unary wire format (codec, headers, gzip, GET, errors).
//! - [`server`]: the [`Router`](server::Router) and the [`ServiceHandler`](server::ServiceHandler) seam.
//! - [`client`]: the typed [`Client`](client::Client) and its transports.
//! - [`codegen`]: the façade generated code imports.
//! - [`proto`]: the mesh's own contracts (`workmesh.v1`: health, registry, faults).
//! - resilience layers, one module each: [`deadline`], [`retry`], [`breaker`],
//!   [`limit`], [`balance`], [`fault`]; [`stack`] composes them from a typed
//!   [`config`].
//! - [`trace`]: W3C trace context, per-request span collection, OTLP export.
//! - [`metrics`]: RED metrics per service and method.

// Generated code names `workmesh::codegen`; this lets it live in this crate too.
extern crate self as workmesh;

pub mod auth;
pub mod balance;
pub mod breaker;
pub mod client;
pub mod codegen;
pub mod config;
pub mod context;
pub mod deadline;
pub mod discovery;
pub mod error;
pub mod fault;
pub mod gateway;
pub mod limit;
pub mod message;
pub mod method;
pub mod metrics;
pub mod proto;
pub mod protocol;
pub mod retry;
pub mod runtime;
pub mod server;
pub mod stack;
#[cfg(all(test, feature = "tokio"))]
mod test_util;
#[cfg(any(test, feature = "test-util"))]
pub mod testing;
pub mod trace;

pub use context::Deadline;
pub use error::{Code, ConnectError, ErrorDetail};
pub use method::{Idempotency, MethodDescriptor};
pub use protocol::Encoding;
#[cfg(feature = "tokio")]
pub use runtime::TokioRuntime;
pub use runtime::{Instant, LocalBoxFuture, Runtime};
