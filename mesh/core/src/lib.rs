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

// Generated code names `workmesh::codegen`; this lets it live in this crate too.
extern crate self as workmesh;

pub mod balance;
pub mod breaker;
pub mod config;
pub mod context;
pub mod deadline;
pub mod error;
pub mod fault;
pub mod limit;
pub mod method;
pub mod retry;
pub mod runtime;
pub mod stack;
#[cfg(all(test, feature = "tokio"))]
mod test_util;

pub use context::Deadline;
pub use error::{Code, ConnectError, ErrorDetail};
pub use method::{Idempotency, MethodDescriptor};
pub use runtime::{Instant, LocalBoxFuture, Runtime};
#[cfg(feature = "tokio")]
pub use runtime::TokioRuntime;
