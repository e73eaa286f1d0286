//! Batching call outcomes per instance for `ReportOutcomes`.

use std::collections::BTreeMap;
use std::time::Duration;

use super::DiscoveryPolicy;
use crate::proto::v1::{BreakerState, Outcome};
use crate::{Code, Instant, Runtime};

/// True when a call failing with `code` blames the instance that answered
/// (the contract's list: `unavailable`, `internal`, `deadline_exceeded`,
/// plus `unknown` and `data_loss`, which only a broken server produces).
/// Other codes (`not_found`, `invalid_argument`, ...) are the caller's
/// business and count as successes.
pub fn blames_instance(code: Code) -> bool {
    matches!(
        code,
        Code::Unavailable
            | Code::Internal
            | Code::DeadlineExceeded
            | Code::Unknown
            | Code::DataLoss
    )
}

/// A random (version 4) UUID from the runtime's randomness, for the
/// `report_id` that makes a retried report count once.
pub fn report_id(runtime: &impl Runtime) -> String {
    let high = runtime.random_u64();
    let low = runtime.random_u64();
    // Version 4 in the high word's nibble 12..16, variant 10 in the low word.
    let high = (high & !0xF000) | 0x4000;
    let low = (low & !(0xC000 << 48)) | (0x8000 << 48);
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        high >> 32,
        (high >> 16) & 0xFFFF,
        high & 0xFFFF,
        low >> 48,
        low & 0xFFFF_FFFF_FFFF
    )
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Tally {
    successes: u64,
    failures: u64,
    latency_sum_ms: u64,
    latency_count: u64,
}

/// Outcomes since the last report, per instance, bounded in size; see the
/// [module docs](super).
#[derive(Debug)]
pub struct OutcomeRecorder {
    interval: Duration,
    max_instances: usize,
    tallies: BTreeMap<String, Tally>,
    last_sent: Option<Instant>,
    dropped: u64,
}

impl OutcomeRecorder {
    pub fn new(policy: &DiscoveryPolicy) -> Self {
        OutcomeRecorder {
            interval: policy.report_interval,
            max_instances: policy.max_report_instances,
            tallies: BTreeMap::new(),
            last_sent: None,
            dropped: 0,
        }
    }

    /// Counts one call to `instance_id`. Outcomes for a new instance beyond
    /// the batch's bound are dropped (and counted in [`dropped`](Self::dropped)).
    pub fn record(&mut self, instance_id: &str, failure: bool, latency: Duration) {
        if !self.tallies.contains_key(instance_id) && self.tallies.len() >= self.max_instances {
            self.dropped += 1;
            return;
        }
        let tally = self.tallies.entry(instance_id.to_owned()).or_default();
        if failure {
            tally.failures += 1;
        } else {
            tally.successes += 1;
        }
        tally.latency_sum_ms += latency.as_millis() as u64;
        tally.latency_count += 1;
    }

    /// True when there is something to report and the last report was at
    /// least the interval ago.
    pub fn due(&self, now: Instant) -> bool {
        !self.tallies.is_empty()
            && self
                .last_sent
                .is_none_or(|t| now.saturating_duration_since(t) >= self.interval)
    }

    /// The batch to send now (emptying the recorder), with each instance's
    /// breaker state from `breaker`; `None` when not [`due`](Self::due).
    pub fn take(
        &mut self,
        now: Instant,
        breaker: impl Fn(&str) -> BreakerState,
    ) -> Option<Vec<Outcome>> {
        if !self.due(now) {
            return None;
        }
        self.last_sent = Some(now);
        let tallies = std::mem::take(&mut self.tallies);
        Some(
            tallies
                .into_iter()
                .map(|(instance_id, t)| Outcome {
                    breaker_state: breaker(&instance_id) as i32,
                    instance_id,
                    successes: t.successes,
                    failures: t.failures,
                    latency_sum_ms: t.latency_sum_ms,
                    latency_count: t.latency_count,
                })
                .collect(),
        )
    }

    /// Outcomes dropped because the batch was full.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Instances with outcomes waiting.
    pub fn pending_instances(&self) -> usize {
        self.tallies.len()
    }
}

/// The proto form of a caller's breaker state.
pub fn proto_breaker_state(state: &crate::breaker::BreakerState) -> BreakerState {
    match state {
        crate::breaker::BreakerState::Closed => BreakerState::Closed,
        crate::breaker::BreakerState::Open { .. } => BreakerState::Open,
        crate::breaker::BreakerState::HalfOpen => BreakerState::HalfOpen,
    }
}
