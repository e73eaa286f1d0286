use std::fmt;
use std::time::Duration;

use crate::config::BreakerPolicy;
use crate::Instant;

/// Why a breaker opened.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum TripReason {
    /// This many failures in a row.
    ConsecutiveFailures(u32),
    /// The success rate over the window fell below the minimum.
    SuccessRate { rate: f64, calls: u32 },
    /// A half-open probe failed.
    ProbeFailed,
}

impl fmt::Display for TripReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TripReason::ConsecutiveFailures(n) => write!(f, "{n} consecutive failures"),
            TripReason::SuccessRate { rate, calls } => {
                write!(f, "success rate {:.0}% over {calls} calls", rate * 100.0)
            }
            TripReason::ProbeFailed => f.write_str("probe failed"),
        }
    }
}

const SLOTS: usize = 10;

/// Failure accrual: counts outcomes and says when to trip.
#[derive(Clone, Debug)]
pub struct Accrual {
    consecutive_limit: u32,
    min_success_rate: f64,
    min_calls: u32,
    slot_len: Duration,
    consecutive: u32,
    /// (successes, failures) per slot of the window; `slots[head]` is current.
    slots: [(u32, u32); SLOTS],
    head: usize,
    head_start: Instant,
}

impl Accrual {
    pub fn new(policy: &BreakerPolicy) -> Self {
        Accrual {
            consecutive_limit: policy.consecutive_failures.max(1),
            min_success_rate: policy.min_success_rate,
            min_calls: policy.min_calls.max(1),
            slot_len: (policy.window / SLOTS as u32).max(Duration::from_millis(1)),
            consecutive: 0,
            slots: [(0, 0); SLOTS],
            head: 0,
            head_start: Instant::default(),
        }
    }

    fn advance(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.head_start);
        let steps = (elapsed.as_nanos() / self.slot_len.as_nanos()).min(SLOTS as u128 + 1) as usize;
        for _ in 0..steps.min(SLOTS) {
            self.head = (self.head + 1) % SLOTS;
            self.slots[self.head] = (0, 0);
        }
        if steps > SLOTS {
            self.head_start = now;
        } else if steps > 0 {
            self.head_start = self.head_start + self.slot_len * steps as u32;
        }
    }

    /// Records one outcome; `Some(reason)` when the breaker should open.
    pub fn record(&mut self, now: Instant, failure: bool) -> Option<TripReason> {
        self.advance(now);
        let head = self.head;
        if failure {
            self.slots[head].1 += 1;
            self.consecutive += 1;
        } else {
            self.slots[head].0 += 1;
            self.consecutive = 0;
        }
        if self.consecutive >= self.consecutive_limit {
            return Some(TripReason::ConsecutiveFailures(self.consecutive));
        }
        let (ok, failed) = self
            .slots
            .iter()
            .fold((0, 0), |(a, b), (s, f)| (a + s, b + f));
        let calls = ok + failed;
        if failure && calls >= self.min_calls {
            let rate = f64::from(ok) / f64::from(calls);
            if rate < self.min_success_rate {
                return Some(TripReason::SuccessRate { rate, calls });
            }
        }
        None
    }

    /// Forgets history (after the breaker closes again).
    pub fn reset(&mut self, now: Instant) {
        self.consecutive = 0;
        self.slots = [(0, 0); SLOTS];
        self.head_start = now;
    }
}
