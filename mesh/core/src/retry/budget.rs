use std::cell::RefCell;
use std::time::Duration;

use crate::config::BudgetPolicy;
use crate::Instant;

/// Number of slots the window is divided into; counts expire a slot at a time.
const SLOTS: usize = 10;

/// A retry budget shared by all calls to one target; see the [module docs](super).
///
/// Time is passed in (from the caller's [`Runtime`](crate::Runtime)), so the
/// budget itself is a plain synchronous counter.
#[derive(Debug)]
pub struct RetryBudget {
    policy: BudgetPolicy,
    state: RefCell<Window>,
}

#[derive(Debug)]
struct Window {
    /// (requests, retries) per slot; `slots[head]` is the current slot.
    slots: [(u64, u64); SLOTS],
    head: usize,
    /// Start of the current slot.
    head_start: Instant,
}

impl RetryBudget {
    pub fn new(policy: BudgetPolicy) -> Self {
        RetryBudget {
            policy,
            state: RefCell::new(Window {
                slots: [(0, 0); SLOTS],
                head: 0,
                head_start: Instant::default(),
            }),
        }
    }

    fn slot_len(&self) -> Duration {
        (self.policy.window / SLOTS as u32).max(Duration::from_millis(1))
    }

    fn advance(&self, window: &mut Window, now: Instant) {
        let slot = self.slot_len();
        let elapsed = now.saturating_duration_since(window.head_start);
        let steps = (elapsed.as_nanos() / slot.as_nanos()).min(SLOTS as u128 + 1) as usize;
        if steps == 0 {
            return;
        }
        for _ in 0..steps.min(SLOTS) {
            window.head = (window.head + 1) % SLOTS;
            window.slots[window.head] = (0, 0);
        }
        if steps > SLOTS {
            window.head_start = now;
        } else {
            window.head_start = window.head_start + slot * steps as u32;
        }
    }

    /// Records one request (every call, retried or not).
    pub fn deposit(&self, now: Instant) {
        let mut window = self.state.borrow_mut();
        self.advance(&mut window, now);
        let head = window.head;
        window.slots[head].0 += 1;
    }

    /// Takes one retry from the budget; `false` when it is spent.
    pub fn withdraw(&self, now: Instant) -> bool {
        let mut window = self.state.borrow_mut();
        self.advance(&mut window, now);
        let (requests, retries) = window
            .slots
            .iter()
            .fold((0, 0), |(a, b), (r, t)| (a + r, b + t));
        if (retries + 1) as f64 > self.allowance(requests) {
            return false;
        }
        let head = window.head;
        window.slots[head].1 += 1;
        true
    }

    /// Retries allowed in a window holding `requests` requests.
    fn allowance(&self, requests: u64) -> f64 {
        let reserve = self.policy.min_per_s * self.policy.window.as_secs_f64();
        (self.policy.ratio * requests as f64).max(reserve)
    }

    /// Retries still available now.
    pub fn remaining(&self, now: Instant) -> u64 {
        let mut window = self.state.borrow_mut();
        self.advance(&mut window, now);
        let (requests, retries) = window
            .slots
            .iter()
            .fold((0, 0), |(a, b), (r, t)| (a + r, b + t));
        (self.allowance(requests) - retries as f64).max(0.0) as u64
    }
}
