//! The per-service resolution cache: Fresh / Stale / Expired, background
//! refresh claims, and the fallback to the last answer that had instances.

use std::collections::HashMap;
use std::rc::Rc;

use super::DiscoveryPolicy;
use crate::proto::v1::{Instance, ResolveResponse};
use crate::Instant;

/// One Resolve answer: the routable instances, the token naming it, and the
/// version weights in force.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Resolution {
    pub instances: Vec<Instance>,
    pub version_token: String,
    pub version_weights: HashMap<String, u32>,
}

impl Resolution {
    /// The answer carried by a (modified) Resolve response.
    pub fn from_response(response: ResolveResponse) -> Self {
        Resolution {
            instances: response.instances,
            version_token: response.version_token,
            version_weights: response.version_weights,
        }
    }
}

/// How old an answer is, judged against the TTL and the stale window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Freshness {
    /// Younger than the TTL: route by it, nothing to refresh.
    Fresh,
    /// Past the TTL but within the stale window: route by it, refresh in the
    /// background.
    Stale,
    /// Past the stale window: only a last resort.
    Expired,
}

/// What the caller should do about the registry for this call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refresh {
    /// Nothing: the answer is fresh, a refresh is already running, or the
    /// last attempt failed less than a TTL ago.
    None,
    /// Resolve after the response (the caller has claimed the refresh and
    /// must report back with `resolved` or `failed`).
    Background,
    /// The first lookup of this service in the isolate: resolve now, within
    /// the resolve timeout (claimed likewise).
    Inline,
    /// The first inline resolve is still running and nothing is cached yet:
    /// wait for it (within the timeout) or go static.
    InFlight,
}

/// The decision for one call.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// The answer to route by: the latest one if it lists instances, else
    /// the last one that did (however old). `None`: use the static endpoint.
    pub resolution: Option<Rc<Resolution>>,
    /// How old `resolution` is.
    pub freshness: Option<Freshness>,
    pub refresh: Refresh,
}

#[derive(Debug, Default)]
struct Entry {
    /// The latest answer (even one without instances) and when it came.
    current: Option<(Rc<Resolution>, Instant)>,
    /// The latest answer that listed instances, and when it came.
    last_usable: Option<(Rc<Resolution>, Instant)>,
    /// A claimed refresh still running; considered lost after a TTL.
    refresh_started: Option<Instant>,
    /// Whether any resolve was ever attempted (only the first is inline).
    attempted: bool,
    last_failure: Option<Instant>,
}

/// Every service's latest answer in one isolate (or process).
#[derive(Debug)]
pub struct ResolutionCache {
    policy: DiscoveryPolicy,
    entries: HashMap<String, Entry>,
}

impl ResolutionCache {
    pub fn new(policy: DiscoveryPolicy) -> Self {
        ResolutionCache {
            policy,
            entries: HashMap::new(),
        }
    }

    pub fn policy(&self) -> &DiscoveryPolicy {
        &self.policy
    }

    /// How old an answer fetched at `fetched_at` is at `now`.
    pub fn freshness_of(&self, fetched_at: Instant, now: Instant) -> Freshness {
        freshness(&self.policy, fetched_at, now)
    }

    /// The freshness of the latest answer for `service`, if any.
    pub fn freshness(&self, service: &str, now: Instant) -> Option<Freshness> {
        let (_, at) = self.entries.get(service)?.current.as_ref()?;
        Some(self.freshness_of(*at, now))
    }

    /// Decides how a call to `service` at `now` routes and whether it
    /// refreshes. A returned `Background` or `Inline` is a claim: the caller
    /// must later call [`resolved`](Self::resolved) or
    /// [`failed`](Self::failed).
    pub fn plan(&mut self, service: &str, now: Instant) -> Plan {
        let policy = self.policy.clone();
        let entry = self.entries.entry(service.to_owned()).or_default();
        let latest_freshness = entry
            .current
            .as_ref()
            .map(|(_, at)| freshness(&policy, *at, now));
        let in_flight = entry
            .refresh_started
            .is_some_and(|t| now.saturating_duration_since(t) < policy.ttl);
        let backing_off = entry
            .last_failure
            .is_some_and(|t| now.saturating_duration_since(t) < policy.ttl);
        let refresh = if !entry.attempted {
            Refresh::Inline
        } else if in_flight {
            if entry.current.is_none() && entry.last_failure.is_none() {
                Refresh::InFlight
            } else {
                Refresh::None
            }
        } else if backing_off || latest_freshness == Some(Freshness::Fresh) {
            Refresh::None
        } else {
            Refresh::Background
        };
        if matches!(refresh, Refresh::Inline | Refresh::Background) {
            entry.attempted = true;
            entry.refresh_started = Some(now);
        }
        let usable = self.usable(service, now);
        Plan {
            freshness: usable.as_ref().map(|(_, f)| *f),
            resolution: usable.map(|(resolution, _)| resolution),
            refresh,
        }
    }

    /// The answer to route `service` by, without planning a refresh: the
    /// latest one if it lists instances, else the last one that did.
    pub fn usable(&self, service: &str, now: Instant) -> Option<(Rc<Resolution>, Freshness)> {
        let entry = self.entries.get(service)?;
        let (resolution, at) = match &entry.current {
            Some((resolution, at)) if !resolution.instances.is_empty() => (resolution, at),
            _ => {
                let (resolution, at) = entry.last_usable.as_ref()?;
                (resolution, at)
            }
        };
        Some((resolution.clone(), self.freshness_of(*at, now)))
    }

    /// The `version_token` to send when refreshing `service` (empty if none).
    pub fn known_token(&self, service: &str) -> String {
        self.entries
            .get(service)
            .and_then(|e| e.current.as_ref())
            .map(|(r, _)| r.version_token.clone())
            .unwrap_or_default()
    }

    /// Records the registry's answer for `service`. A `not_modified` answer
    /// renews the cached one; one for a token we no longer hold counts as a
    /// failure (there is nothing it could renew).
    pub fn resolved(&mut self, service: &str, response: ResolveResponse, now: Instant) {
        let entry = self.entries.entry(service.to_owned()).or_default();
        entry.refresh_started = None;
        entry.attempted = true;
        if response.not_modified {
            match &mut entry.current {
                Some((resolution, at)) if resolution.version_token == response.version_token => {
                    *at = now;
                    if let Some((usable, usable_at)) = &mut entry.last_usable {
                        if Rc::ptr_eq(usable, resolution) {
                            *usable_at = now;
                        }
                    }
                    entry.last_failure = None;
                }
                _ => entry.last_failure = Some(now),
            }
            return;
        }
        let resolution = Rc::new(Resolution::from_response(response));
        if !resolution.instances.is_empty() {
            entry.last_usable = Some((resolution.clone(), now));
        }
        entry.current = Some((resolution, now));
        entry.last_failure = None;
    }

    /// Records that resolving `service` failed (error, timeout, not found).
    /// Cached answers stay; the next refresh waits a TTL.
    pub fn failed(&mut self, service: &str, now: Instant) {
        let entry = self.entries.entry(service.to_owned()).or_default();
        entry.refresh_started = None;
        entry.attempted = true;
        entry.last_failure = Some(now);
    }
}

fn freshness(policy: &DiscoveryPolicy, fetched_at: Instant, now: Instant) -> Freshness {
    let age = now.saturating_duration_since(fetched_at);
    if age < policy.ttl {
        Freshness::Fresh
    } else if age < policy.ttl + policy.stale_window {
        Freshness::Stale
    } else {
        Freshness::Expired
    }
}
