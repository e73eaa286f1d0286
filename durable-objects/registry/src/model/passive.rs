//! Passive health: what the registry makes of the call outcomes clients
//! report (`ReportOutcomes`), as pure functions over plain state.
//!
//! **Outlier ejection** (Envoy's outlier detection, applied mesh-wide): an
//! instance is ejected — left out of Resolve answers — when either
//! - its reported failures form a streak of at least
//!   [`EjectionConfig::consecutive_failures`] (5). A report entry with no
//!   success extends the streak by its failures; an entry with any success
//!   ends it, because a batch does not say in which order its calls
//!   completed; or
//! - its success rate over the last [`EjectionConfig::window_ms`] (10 s) is
//!   below [`EjectionConfig::success_rate_percent`] (80 %) with at least
//!   [`EjectionConfig::min_calls`] (5) calls reported. The window is two
//!   buckets of half its length, so it covers between half and all of it.
//!
//! The *n*-th ejection lasts `base_ms × n` (30 s × n), capped at `max_ms`
//! (300 s). The instance comes back by itself when the time passes: Resolve
//! compares `ejected_until_ms` with its clock. Ejection resets the streak and
//! the window, and reports that arrive while an instance is ejected (callers
//! with cached answers) only add to its totals, so it returns with a clean
//! slate. Like Envoy's ejection multiplier, `times_ejected` goes down by one
//! for every `decay_ms` (300 s) that passes without an ejection, so an
//! instance that failed often long ago works its way back to the base time
//! instead of keeping its longest ejection. Each decay step moves the stored
//! `ejected_until_ms` (already in the past) forward by `decay_ms`, so it marks
//! the start of the current quiet interval; reads show a past ejection as 0.
//!
//! **Max ejection share**: at most `max(1, floor(n × max_percent / 100))` of
//! a service's `n ≥ 2` live (heartbeating) instances are ejected at once
//! (50 %). As in Envoy, a small share never rounds down to nothing: a service
//! of two or more instances can always lose its worst one (`max_percent` 0
//! turns ejection off). One instance alone is never ejected — when
//! everything is failing, ejecting leaves nothing to route to; failing fast
//! is each caller's circuit breaker's job. An outlier that cannot be ejected
//! keeps its counts and is ejected once the share allows.
//!
//! **Breaker state**: callers report their circuit breaker per instance; the
//! registry keeps the worst one (open > half-open > closed) reported within
//! [`BREAKER_STATE_TTL_MS`] (30 s). Once that passes, the next report sets it
//! whatever it says, and reads show unspecified until then.

use workmesh::proto::v1::{BreakerState, Instance, Outcome};
use workmesh::ConnectError;

use super::{check_name, read_var};

/// A `ReportOutcomes` batch carries at most this many outcomes.
pub const MAX_OUTCOMES_PER_REPORT: usize = 1_000;
/// One outcome entry counts at most this many successes or failures; larger
/// numbers are a client bug, not traffic.
pub const MAX_CALLS_PER_OUTCOME: u64 = 1 << 40;
/// Report ids are remembered this long: a retry of a batch later than that
/// counts again.
pub const REPORT_ID_RETENTION_MS: i64 = 10 * 60 * 1_000;
/// A reported breaker state counts for this long.
pub const BREAKER_STATE_TTL_MS: i64 = 30_000;

/// The registry vars that configure outlier ejection.
pub const EJECTION_CONSECUTIVE_FAILURES_VAR: &str = "WORKMESH_EJECTION_CONSECUTIVE_FAILURES";
pub const EJECTION_SUCCESS_RATE_PERCENT_VAR: &str = "WORKMESH_EJECTION_SUCCESS_RATE_PERCENT";
pub const EJECTION_MIN_CALLS_VAR: &str = "WORKMESH_EJECTION_MIN_CALLS";
pub const EJECTION_WINDOW_VAR: &str = "WORKMESH_EJECTION_WINDOW_MS";
pub const EJECTION_BASE_VAR: &str = "WORKMESH_EJECTION_BASE_MS";
pub const EJECTION_MAX_VAR: &str = "WORKMESH_EJECTION_MAX_MS";
pub const EJECTION_MAX_PERCENT_VAR: &str = "WORKMESH_EJECTION_MAX_PERCENT";
pub const EJECTION_DECAY_VAR: &str = "WORKMESH_EJECTION_DECAY_MS";

/// When an instance is ejected and for how long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EjectionConfig {
    /// A streak of this many reported failures ejects.
    pub consecutive_failures: u32,
    /// A success rate below this (in percent) over the window ejects; 0 turns
    /// the rule off.
    pub success_rate_percent: u32,
    /// The success-rate rule needs at least this many calls in the window.
    pub min_calls: u32,
    /// Length of the success-rate window.
    pub window_ms: u32,
    /// The first ejection lasts this long; the n-th n times as long.
    pub base_ms: u32,
    /// No ejection lasts longer.
    pub max_ms: u32,
    /// At most this share (in percent) of a service's live instances are
    /// ejected at once.
    pub max_percent: u32,
    /// `times_ejected` goes down by one for each this long without an
    /// ejection.
    pub decay_ms: u32,
}

impl Default for EjectionConfig {
    /// The reference defaults (Envoy; the breaker's 5 failures / 80 % over
    /// 10 s): 30 s × times ejected, at most 300 s, at most 50 % ejected.
    fn default() -> Self {
        EjectionConfig {
            consecutive_failures: 5,
            success_rate_percent: 80,
            min_calls: 5,
            window_ms: 10_000,
            base_ms: 30_000,
            max_ms: 300_000,
            max_percent: 50,
            decay_ms: 300_000,
        }
    }
}

impl EjectionConfig {
    /// Reads the `WORKMESH_EJECTION_*` vars; unset vars keep their defaults.
    /// A bad value is a `failed_precondition` naming the var.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, ConnectError> {
        let d = EjectionConfig::default();
        let read =
            |name: &str, default: u32, min: u32, max: u32| read_var(&var, name, default, min, max);
        let config = EjectionConfig {
            consecutive_failures: read(
                EJECTION_CONSECUTIVE_FAILURES_VAR,
                d.consecutive_failures,
                1,
                1_000_000,
            )?,
            success_rate_percent: read(
                EJECTION_SUCCESS_RATE_PERCENT_VAR,
                d.success_rate_percent,
                0,
                100,
            )?,
            min_calls: read(EJECTION_MIN_CALLS_VAR, d.min_calls, 1, 1_000_000)?,
            window_ms: read(EJECTION_WINDOW_VAR, d.window_ms, 100, 3_600_000)?,
            base_ms: read(EJECTION_BASE_VAR, d.base_ms, 1, 3_600_000)?,
            max_ms: read(EJECTION_MAX_VAR, d.max_ms, 1, 86_400_000)?,
            max_percent: read(EJECTION_MAX_PERCENT_VAR, d.max_percent, 0, 100)?,
            decay_ms: read(EJECTION_DECAY_VAR, d.decay_ms, 1, 86_400_000)?,
        };
        if config.max_ms < config.base_ms {
            return Err(ConnectError::failed_precondition(format!(
                "{EJECTION_MAX_VAR} ({}) is less than {EJECTION_BASE_VAR} ({})",
                config.max_ms, config.base_ms
            )));
        }
        Ok(config)
    }
}

/// Checks a `ReportOutcomes` batch before anything is stored; the error
/// names the bad field.
pub fn validate_report(report_id: &str, outcomes: &[Outcome]) -> Result<(), ConnectError> {
    check_name("report_id", report_id)?;
    if outcomes.len() > MAX_OUTCOMES_PER_REPORT {
        return Err(ConnectError::invalid_argument(format!(
            "outcomes has {} entries; at most {MAX_OUTCOMES_PER_REPORT} per report",
            outcomes.len()
        )));
    }
    for (i, outcome) in outcomes.iter().enumerate() {
        check_name(&format!("outcomes[{i}].instance_id"), &outcome.instance_id)?;
        for (field, n) in [
            ("successes", outcome.successes),
            ("failures", outcome.failures),
        ] {
            if n > MAX_CALLS_PER_OUTCOME {
                return Err(ConnectError::invalid_argument(format!(
                    "outcomes[{i}].{field} is over {MAX_CALLS_PER_OUTCOME}"
                )));
            }
        }
        if BreakerState::try_from(outcome.breaker_state).is_err() {
            return Err(ConnectError::invalid_argument(format!(
                "outcomes[{i}].breaker_state {} is not a BreakerState",
                outcome.breaker_state
            )));
        }
    }
    Ok(())
}

/// Reported successes and failures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub successes: u64,
    pub failures: u64,
}

impl Counts {
    pub fn calls(&self) -> u64 {
        self.successes.saturating_add(self.failures)
    }

    pub fn plus(self, other: Counts) -> Counts {
        Counts {
            successes: self.successes.saturating_add(other.successes),
            failures: self.failures.saturating_add(other.failures),
        }
    }
}

/// Outcomes of the recent past in two buckets of half the window each,
/// aligned to multiples of the bucket length.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutcomeWindow {
    /// Start of `current`'s bucket.
    pub bucket_start_ms: i64,
    pub current: Counts,
    pub previous: Counts,
}

impl OutcomeWindow {
    /// The window as of `now_ms`: buckets that have ended shift out.
    pub fn at(self, now_ms: i64, window_ms: u32) -> OutcomeWindow {
        let bucket = i64::from(window_ms / 2).max(1);
        let start = now_ms - now_ms.rem_euclid(bucket);
        if start <= self.bucket_start_ms {
            // Same bucket (or a clock that stepped back: keep what we have).
            self
        } else if start == self.bucket_start_ms + bucket {
            OutcomeWindow {
                bucket_start_ms: start,
                current: Counts::default(),
                previous: self.current,
            }
        } else {
            OutcomeWindow {
                bucket_start_ms: start,
                ..OutcomeWindow::default()
            }
        }
    }

    /// Everything the window holds.
    pub fn total(&self) -> Counts {
        self.current.plus(self.previous)
    }
}

/// An instance's passive-health state, as stored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PassiveState {
    /// Reported failures since the last reported success.
    pub consecutive_failures: u64,
    pub window: OutcomeWindow,
    pub times_ejected: u32,
    /// End of the latest ejection (in the past once it is over); 0 if never.
    pub ejected_until_ms: i64,
}

impl PassiveState {
    pub fn is_ejected(&self, now_ms: i64) -> bool {
        self.ejected_until_ms > now_ms
    }
}

/// Adds one reported outcome to the streak and the window. While the
/// instance is ejected, reports do not count towards its next ejection.
pub fn record_outcome(
    state: PassiveState,
    counts: Counts,
    now_ms: i64,
    config: &EjectionConfig,
) -> PassiveState {
    if state.is_ejected(now_ms) {
        return state;
    }
    let consecutive_failures = if counts.successes > 0 {
        0
    } else {
        state.consecutive_failures.saturating_add(counts.failures)
    };
    let mut window = state.window.at(now_ms, config.window_ms);
    window.current = window.current.plus(counts);
    PassiveState {
        consecutive_failures,
        window,
        ..state
    }
}

/// Why an instance is an outlier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EjectReason {
    /// This many failures were reported in a row.
    ConsecutiveFailures(u64),
    /// `successes` of `calls` succeeded in the window.
    SuccessRate { successes: u64, calls: u64 },
}

impl std::fmt::Display for EjectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EjectReason::ConsecutiveFailures(n) => write!(f, "{n} consecutive failures"),
            EjectReason::SuccessRate { successes, calls } => {
                write!(f, "{successes} of {calls} calls succeeded")
            }
        }
    }
}

/// Whether the state makes a (not yet ejected) instance an outlier at `now_ms`.
pub fn outlier(state: &PassiveState, now_ms: i64, config: &EjectionConfig) -> Option<EjectReason> {
    if state.is_ejected(now_ms) {
        return None;
    }
    if state.consecutive_failures >= u64::from(config.consecutive_failures) {
        return Some(EjectReason::ConsecutiveFailures(state.consecutive_failures));
    }
    let total = state.window.at(now_ms, config.window_ms).total();
    let calls = total.calls();
    let rate_below = u128::from(total.successes) * 100
        < u128::from(config.success_rate_percent) * u128::from(calls);
    if config.success_rate_percent > 0 && calls >= u64::from(config.min_calls) && rate_below {
        return Some(EjectReason::SuccessRate {
            successes: total.successes,
            calls,
        });
    }
    None
}

/// Whether one more of a service's `live` instances may be ejected while
/// `ejected` of them already are: at most `max(1, floor(live × max_percent /
/// 100))` when there are at least two, none of a lone instance, none when
/// `max_percent` is 0.
pub fn may_eject(live: u64, ejected: u64, max_percent: u32) -> bool {
    if live < 2 || max_percent == 0 {
        return false;
    }
    let allowed = (u128::from(live) * u128::from(max_percent) / 100).max(1);
    u128::from(ejected) < allowed
}

/// The state as of `now_ms` after the decay of `times_ejected`: one less for
/// every whole `decay_ms` since the latest ejection ended (or since the last
/// decay step), never below 0. `ejected_until_ms` moves forward by the
/// intervals used up, so the decay can be applied again later without
/// counting them twice. An ejected instance does not decay.
pub fn decayed(state: PassiveState, now_ms: i64, decay_ms: u32) -> PassiveState {
    let interval = i64::from(decay_ms.max(1));
    let steps = now_ms.saturating_sub(state.ejected_until_ms) / interval;
    if state.times_ejected == 0 || steps <= 0 {
        return state;
    }
    PassiveState {
        times_ejected: state
            .times_ejected
            .saturating_sub(u32::try_from(steps).unwrap_or(u32::MAX)),
        ejected_until_ms: state
            .ejected_until_ms
            .saturating_add(steps.saturating_mul(interval)),
        ..state
    }
}

/// `times_ejected` as of `now_ms` (see [`decayed`]).
pub fn decayed_times_ejected(state: &PassiveState, now_ms: i64, decay_ms: u32) -> u32 {
    decayed(*state, now_ms, decay_ms).times_ejected
}

/// How long the `times`-th ejection lasts: `base_ms × times`, at most `max_ms`.
pub fn ejection_ms(times: u32, config: &EjectionConfig) -> i64 {
    let ms = u64::from(config.base_ms).saturating_mul(u64::from(times));
    ms.min(u64::from(config.max_ms)) as i64
}

/// Ejects the instance at `now_ms`: counts the ejection (after decay), sets
/// its end, and clears the streak and the window.
pub fn eject(state: PassiveState, now_ms: i64, config: &EjectionConfig) -> PassiveState {
    let times_ejected = decayed_times_ejected(&state, now_ms, config.decay_ms).saturating_add(1);
    PassiveState {
        consecutive_failures: 0,
        window: OutcomeWindow::default(),
        times_ejected,
        ejected_until_ms: now_ms.saturating_add(ejection_ms(times_ejected, config)),
    }
}

fn severity(state: BreakerState) -> u8 {
    match state {
        BreakerState::Unspecified => 0,
        BreakerState::Closed => 1,
        BreakerState::HalfOpen => 2,
        BreakerState::Open => 3,
    }
}

/// A reported breaker state with when it was reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReportedBreaker {
    pub state: BreakerState,
    pub at_ms: i64,
}

/// The stored breaker state after a caller reports `reported` at `now_ms`:
/// the worse of the two while the stored one is recent, else the new one.
/// An unspecified report changes nothing.
pub fn breaker_after_report(
    stored: ReportedBreaker,
    reported: BreakerState,
    now_ms: i64,
) -> ReportedBreaker {
    if reported == BreakerState::Unspecified {
        return stored;
    }
    let stored_recent = now_ms - stored.at_ms <= BREAKER_STATE_TTL_MS;
    if stored_recent && severity(stored.state) > severity(reported) {
        stored
    } else {
        ReportedBreaker {
            state: reported,
            at_ms: now_ms,
        }
    }
}

/// The breaker state to show at `now_ms`: unspecified once it is stale.
pub fn breaker_as_seen(stored: ReportedBreaker, now_ms: i64) -> BreakerState {
    if now_ms - stored.at_ms <= BREAKER_STATE_TTL_MS {
        stored.state
    } else {
        BreakerState::Unspecified
    }
}

/// An instance as List and Resolve show it at `now_ms`: an ejection that is
/// over shows as 0 (the contract's "not ejected"), a stale breaker state as
/// unspecified.
pub fn as_seen(mut instance: Instance, now_ms: i64) -> Instance {
    if instance.ejected_until_ms <= now_ms {
        instance.ejected_until_ms = 0;
    }
    let stored = ReportedBreaker {
        state: BreakerState::try_from(instance.breaker_state).unwrap_or_default(),
        at_ms: instance.breaker_reported_at_ms,
    };
    instance.breaker_state = breaker_as_seen(stored, now_ms) as i32;
    instance
}

#[cfg(test)]
mod tests;
