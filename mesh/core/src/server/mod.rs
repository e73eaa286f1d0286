//! The server side: a [`Router`] that speaks the Connect protocol and hands
//! decoded calls to [`ServiceHandler`]s (the generated `FooServer<T>`).
//!
//! The router owns the wire: paths, content types, GET, compression,
//! `Connect-Timeout-Ms`, size limits and error bodies. Handlers see typed
//! [`Request`](crate::message::Request)s and return
//! `Result<Response<T>, ConnectError>`; the router turns errors into Connect
//! error responses. It never panics on what a client sends.
//!
//! ```
//! use workmesh::server::Router;
//! # fn service() -> workmesh::testing::FnService {
//! #     workmesh::testing::FnService::new("a.v1.S", &[], |_, _| async { Err(workmesh::ConnectError::internal("")) })
//! # }
//! let router = Router::new().add(service()).max_message_bytes(1 << 20);
//! assert_eq!(router.message_limit(), 1 << 20);
//! ```

mod router;
mod service;

pub use router::Router;
pub use service::{serve_unary, ServiceHandler, UnaryCall, UnaryReply};

// The router and client tests run on `TokioRuntime` (paused time).
#[cfg(all(test, feature = "tokio"))]
mod tests;
