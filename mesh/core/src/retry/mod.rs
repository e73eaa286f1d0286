//! Retries: safe ones only, with jittered backoff, bounded by a budget.
//!
//! # Why a budget and not just `max_attempts`
//!
//! A fixed number of retries multiplies load exactly when a dependency is
//! struggling: with 3 attempts, a service failing every call receives three
//! times its normal traffic, which keeps it down. A **retry budget** caps
//! retries as a share of real requests over a sliding window, so under a full
//! outage retries add at most that share (`ratio`, 20%) to the load, while a
//! rare blip is still retried. The budget is shared by every call to one
//! target (`Rc<RetryBudget>`), as in Finagle, Linkerd and tower's
//! `TpsBudget`.
//!
//! The budget allows `max(ratio × requests, min_per_s × window)` retries in
//! the window. The reserve (`min_per_s`, 10/s) is a *floor*, so quiet clients
//! (a few calls a second) can still retry; unlike an additive reserve it
//! keeps the amplification under full failure at `1 + ratio` (1.2) for any
//! traffic above `min_per_s / ratio` (50 calls/s) — an additive reserve would
//! give `1 + ratio + min_per_s / rate`, e.g. 1.21 at 1,000 calls/s.
//!
//! # What is retried
//!
//! - Only calls that are safe to repeat: methods marked `NO_SIDE_EFFECTS` or
//!   `IDEMPOTENT`, or any call carrying an `idempotency-key` header.
//! - Only on `unavailable` (configurable: `retry_on`) and on this isolate's
//!   per-try timeouts ([`is_per_try_timeout`](crate::deadline::is_per_try_timeout));
//!   never on the call's overall deadline.
//! - A server's `workmesh-retry-pushback-ms` wins over backoff: a negative
//!   (or unparsable) value means "do not retry", otherwise wait exactly that.
//! - Never past the overall deadline: a retry whose wait would end after the
//!   deadline is not attempted.
//!
//! Each attempt carries `workmesh-attempt: n` (1-based).
//!
//! # Backoff
//!
//! Full jitter: before retry `n` (0-based) sleep uniformly in
//! `[0, min(cap, base·2^n)]`, base 25 ms, cap 250 ms (Envoy, Linkerd).
//! Sleep and randomness come from the [`Runtime`](crate::Runtime).
//!
//! # Why not `tower::retry::Policy`
//!
//! tower's `Retry` would fit the `!Send` futures, but its `retry` feature
//! enables `tokio/time`, which we keep out of Workers bundles; and a plain
//! `async` loop states attempt numbering, pushback, budget and deadline checks
//! in one readable place instead of across `retry`/`clone_request` callbacks.
//!
//! # Example
//!
//! ```
//! use std::rc::Rc;
//! use workmesh::config::{BudgetPolicy, ResilienceConfig};
//! use workmesh::retry::{Retry, RetryBudget};
//! # fn demo<R: workmesh::Runtime, T: Clone>(runtime: R, transport: T) {
//! let config = Rc::new(ResilienceConfig::default());
//! let budget = Rc::new(RetryBudget::new(BudgetPolicy::default()));
//! let layer = Retry::layer(runtime, config, budget.clone());
//! let service = tower::Layer::layer(&layer, transport);
//! # }
//! ```

mod budget;
mod service;

pub use budget::RetryBudget;
pub use service::{Retry, RetryLayer};

use std::time::Duration;

use crate::config::RetryPolicy;
use crate::context::headers;
use crate::ConnectError;

/// The longest full-jitter backoff before retry `n` (0-based):
/// `min(cap, base·2^n)`.
pub fn backoff_ceiling(policy: &RetryPolicy, n: u32) -> Duration {
    let factor = 1u32.checked_shl(n.min(31)).unwrap_or(u32::MAX);
    policy
        .backoff_base
        .saturating_mul(factor)
        .min(policy.backoff_cap)
}

/// What a server's pushback metadata says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pushback {
    None,
    DoNotRetry,
    Wait(Duration),
}

pub(crate) fn pushback(error: &ConnectError) -> Pushback {
    let Some(value) = error.metadata.get(headers::RETRY_PUSHBACK_MS) else {
        return Pushback::None;
    };
    match value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse::<i64>().ok())
    {
        Some(ms) if ms >= 0 => Pushback::Wait(Duration::from_millis(ms as u64)),
        // Negative, or not a number: gRPC treats both as "do not retry".
        _ => Pushback::DoNotRetry,
    }
}

#[cfg(all(test, feature = "tokio"))]
mod tests;
