//! Circuit breaking: stop sending to a target that keeps failing, probe it
//! once in a while, resume when a probe succeeds.
//!
//! # Mechanism
//!
//! Three small synchronous parts, as in Linkerd's failure accrual (Workers
//! have no background tasks, so nothing runs between calls; every transition
//! happens on a call, with time from the [`Runtime`](crate::Runtime)):
//!
//! - **classify** ([`Classify`]): which outcomes are failures — by default
//!   `unavailable`, `internal`, `unknown` and `deadline_exceeded`. The
//!   caller's own mistakes (`invalid_argument`, `not_found`, ...) say nothing
//!   about the target's health and count as successes.
//! - **accrual policy** ([`Accrual`]): trips after 5 consecutive failures, or
//!   when the success rate over a 10 s window falls below 80% with at least 5
//!   calls in it. The [`TripReason`] is recorded and reported.
//! - **gate** ([`BreakerState`]): `Closed` lets everything through; `Open
//!   { until }` fails calls fast with `unavailable` ("circuit breaker open")
//!   until `until`; then the next call becomes the single probe (`HalfOpen`)
//!   while all others still fail fast. A successful probe closes the gate and
//!   resets the backoff; a failed one re-opens it for the next backoff.
//!
//! Open periods start at 1 s and double per failed probe up to 60 s; each is
//! lengthened by a random share of up to `jitter` (0.5), so a fleet of
//! isolates does not probe in lockstep: period `n` lasts
//! `min(60 s, 1 s·2^n) · (1 + 0.5·u)`, `u` uniform in `[0, 1)`.
//!
//! The state is observable through a [`BreakerHandle`] (the balancer asks it
//! whether an endpoint is open), and every transition is a `tracing` event
//! with target `workmesh::breaker`.
//!
//! # Example
//!
//! ```
//! use workmesh::breaker::{Breaker, BreakerState};
//! use workmesh::config::BreakerPolicy;
//! # fn demo<R: workmesh::Runtime, T>(runtime: R, transport: T) {
//! let layer = Breaker::layer(runtime, BreakerPolicy::default(), "shop.v1.CatalogService");
//! let handle = layer.handle();
//! let service = tower::Layer::layer(&layer, transport);
//! assert_eq!(handle.state(), BreakerState::Closed);
//! # }
//! ```

mod classify;
mod gate;
mod policy;
mod service;

pub use classify::Classify;
pub use gate::{BreakerHandle, BreakerState};
pub use policy::{Accrual, TripReason};
pub use service::{Breaker, BreakerLayer};

use http::{HeaderName, HeaderValue};

use crate::ConnectError;

/// Error-metadata mark on the fast failure of an open breaker, so the retry
/// layer above can tell "nothing was sent" from a real `unavailable`.
pub const REJECTED_MARK: &str = "workmesh-breaker-open";

/// True when `error` is this isolate's breaker refusing to send.
pub fn is_rejection(error: &ConnectError) -> bool {
    error.metadata.contains_key(REJECTED_MARK)
}

/// Removes the mark, so it never leaves the layer stack that set it.
pub fn clear_rejection_mark(error: &mut ConnectError) {
    error.metadata.remove(REJECTED_MARK);
}

fn rejection(detail: String) -> ConnectError {
    let mut error = ConnectError::unavailable(detail);
    error.metadata.insert(
        HeaderName::from_static(REJECTED_MARK),
        HeaderValue::from_static("1"),
    );
    error
}

#[cfg(all(test, feature = "tokio"))]
mod tests;
