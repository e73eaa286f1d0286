//! What travels with one call through the client stack, in the
//! `http::Request` extensions and headers.
//!
//! The typed client puts the [`MethodDescriptor`](crate::MethodDescriptor) and,
//! when the call has one, its [`Deadline`] into the request's extensions;
//! middleware reads them from there rather than from global configuration.

use crate::runtime::Instant;

/// The absolute deadline of a call, on the caller's [`Runtime`](crate::Runtime) clock.
///
/// The deadline layer turns what is left of it into `Connect-Timeout-Ms` at
/// each send, so the budget shrinks hop by hop.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Deadline(pub Instant);

/// Wire header names the mesh uses besides Connect's own.
pub mod headers {
    /// Connect's timeout header: the remaining budget in milliseconds.
    pub const CONNECT_TIMEOUT_MS: &str = "connect-timeout-ms";
    /// Connect's protocol version header (`1`).
    pub const CONNECT_PROTOCOL_VERSION: &str = "connect-protocol-version";
    /// 1-based attempt number of a (possibly retried) call.
    pub const ATTEMPT: &str = "workmesh-attempt";
    /// Key that makes a non-idempotent call safe to retry: the server answers
    /// a repeated key with the first outcome.
    pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
    /// A server's pushback: milliseconds to wait before retrying, or a
    /// negative value for "do not retry" (as gRPC's `grpc-retry-pushback-ms`).
    pub const RETRY_PUSHBACK_MS: &str = "workmesh-retry-pushback-ms";
}
