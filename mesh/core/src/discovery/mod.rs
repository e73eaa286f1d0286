//! The client side of service discovery, as pure state machines: what a
//! caller does with the Registry's answers, independent of how it talks to
//! the Registry (a Workers service binding, HTTP in tests).
//!
//! # Why a cache with three states
//!
//! The registry must never be a hard dependency of a request (see the
//! architecture's *Discovery and health*). So a caller keeps, per service,
//! the last [`Resolution`] it got and when, and judges it by age:
//!
//! - **Fresh** (younger than the TTL, 5 s): routed by, nothing else happens;
//! - **Stale** (younger than TTL + stale window, 5 min): still routed by, and
//!   a refresh runs in the background (stale-while-revalidate, RFC 5861);
//! - **Expired**: routed by only as the *last known* answer when the static
//!   endpoint is failing too (see below), with a background refresh.
//!
//! Refreshes send the cached `version_token`, so an unchanged answer costs a
//! `not_modified` round-trip with no instances. Only the very first lookup of
//! a service in an isolate resolves inline ([`Refresh::Inline`]); once any
//! attempt was made, every later refresh is background work.
//!
//! # Fallback order
//!
//! When the current answer gives nothing to call (no answer yet, the
//! registry failed, or it listed no routable instance), a call routes by the
//! last answer that had instances ([`ResolutionCache::usable`]). Then
//! ([`choose_route`]), per call:
//! 1. no such answer: the static endpoint;
//! 2. the picked version has no reachable instance, or every one of their
//!    breakers is open: the static endpoint (the discovered route cannot
//!    send, the static one might);
//! 3. the answer is fresh or stale: its instances;
//! 4. the answer is expired: the static endpoint, unless that one's breaker
//!    is open too, when the expired answer is the last resort.
//!
//! An error comes only when both routes fail.
//!
//! # Weighted picking by version
//!
//! [`pick_version`] picks a version with probability proportional to its
//! weight. The rule for weights ([`version_shares`]):
//! - no `version_weights` at all: every routable version weighs the same
//!   (the contract's "empty means every version weighs the same");
//! - weights set: a version without an entry gets no traffic (the contract's
//!   SetWeights rule), a version with weight 0 neither;
//! - weights set, but no weighted version has a routable instance (say
//!   v1=100 and every v1 instance drained): availability beats the split, and
//!   every routable version weighs the same again.
//!
//! Within the picked version the instances go to the P2C balancer
//! ([`crate::balance`]), one circuit breaker each; the per-instance `weight`
//! field is not applied (P2C balances by load).
//!
//! # Outcome reports and self-registration
//!
//! [`OutcomeRecorder`] batches per-instance call outcomes for
//! `ReportOutcomes`; [`SelfRegistration`] decides when a serving instance
//! registers and heartbeats. Both only *decide*; the Workers adapter sends.
//!
//! ```
//! use std::collections::HashMap;
//! use workmesh::discovery::{pick_version, Resolution};
//! use workmesh::proto::v1::Instance;
//!
//! let instance = |id: &str, version: &str| Instance {
//!     instance_id: id.into(),
//!     version: version.into(),
//!     ..Default::default()
//! };
//! let resolution = Resolution {
//!     instances: vec![instance("a", "v1"), instance("b", "v2")],
//!     version_token: "t".into(),
//!     version_weights: HashMap::from([("v1".into(), 90), ("v2".into(), 10)]),
//! };
//! assert_eq!(pick_version(&resolution, 0.5), Some("v1"));
//! assert_eq!(pick_version(&resolution, 0.95), Some("v2"));
//! ```

mod cache;
mod pick;
mod register;
mod report;
mod route;

use std::time::Duration;

pub use cache::{Freshness, Plan, Refresh, Resolution, ResolutionCache};
pub use pick::{pick_version, version_shares};
pub use register::{RegistrationAction, SelfRegistration};
pub use report::{blames_instance, proto_breaker_state, report_id, OutcomeRecorder};
pub use route::{choose_route, dropped_attempt_blames, inline_wait, RouteChoice};

/// How a caller uses the registry. The defaults are the ones documented in
/// the module docs.
#[derive(Clone, Debug, PartialEq)]
pub struct DiscoveryPolicy {
    /// An answer younger than this is fresh (default 5 s).
    pub ttl: Duration,
    /// After the TTL, an answer stays usable (stale) this long more
    /// (default 5 min), then it is expired.
    pub stale_window: Duration,
    /// The longest a Resolve may take, inline or in the background
    /// (default 200 ms).
    pub resolve_timeout: Duration,
    /// At most one outcome report per this interval (default 2 s).
    pub report_interval: Duration,
    /// Distinct instances one report batch holds; outcomes for more are
    /// dropped and counted (default 256).
    pub max_report_instances: usize,
    /// After a failed registration, the next attempt waits this long
    /// (default 5 s).
    pub register_retry: Duration,
}

impl Default for DiscoveryPolicy {
    fn default() -> Self {
        DiscoveryPolicy {
            ttl: Duration::from_secs(5),
            stale_window: Duration::from_secs(300),
            resolve_timeout: Duration::from_millis(200),
            report_interval: Duration::from_secs(2),
            max_report_instances: 256,
            register_retry: Duration::from_secs(5),
        }
    }
}

#[cfg(all(test, feature = "tokio"))]
mod tests;
