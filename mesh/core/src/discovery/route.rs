//! Per-call decisions of a discovering client that do not depend on how it
//! talks to the registry: where a call goes (discovered instances or the
//! static endpoint), how long it may wait for a cold Resolve, and whether an
//! attempt dropped before it answered blames its instance.

use std::time::Duration;

use super::Freshness;
use crate::Instant;

/// Where one call goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteChoice {
    /// The discovered instances of the picked version.
    Discovered,
    /// The static endpoint from configuration.
    Static,
}

/// The route of one call (see *Fallback order* in the [module docs](super)):
///
/// - no answer with instances (`freshness` is `None`): static;
/// - the discovered route cannot send (no reachable instance in the picked
///   version, or every one of their breakers open): static;
/// - the answer is [`Expired`](Freshness::Expired): static, unless the
///   static endpoint cannot send either (its breaker is open), when the
///   expired answer is the last resort;
/// - otherwise (fresh or stale): discovered.
pub fn choose_route(
    freshness: Option<Freshness>,
    discovered_can_send: bool,
    static_can_send: bool,
) -> RouteChoice {
    match freshness {
        None => RouteChoice::Static,
        Some(_) if !discovered_can_send => RouteChoice::Static,
        Some(Freshness::Expired) if static_can_send => RouteChoice::Static,
        Some(_) => RouteChoice::Discovered,
    }
}

/// How long a call starting at `now` may wait for a cold (inline) Resolve:
/// the resolve timeout, but never past the call's own deadline, so waiting
/// for the registry cannot make a call overrun its `Connect-Timeout-Ms`.
pub fn inline_wait(resolve_timeout: Duration, deadline: Option<Instant>, now: Instant) -> Duration {
    match deadline {
        Some(deadline) => resolve_timeout.min(deadline.saturating_duration_since(now)),
        None => resolve_timeout,
    }
}

/// Whether an attempt that was dropped before it answered counts as a
/// failure of its instance: only when it ran for its whole budget (the
/// `Connect-Timeout-Ms` it was sent with), i.e. its per-try timeout (or the
/// call's deadline) fired. An attempt dropped earlier was abandoned by its
/// caller (`try_join_all` dropping siblings after one failed, a client
/// disconnecting) and says nothing about the instance; nor does one without
/// a budget, which no timer can have cut short.
pub fn dropped_attempt_blames(elapsed: Duration, budget: Option<Duration>) -> bool {
    budget.is_some_and(|budget| elapsed >= budget)
}
