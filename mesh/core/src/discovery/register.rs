//! When a serving instance registers itself and heartbeats.
//!
//! Workers have no timers that outlive a request, so heartbeats ride on
//! requests: after each response the adapter asks [`SelfRegistration::next`]
//! whether a Register or a Heartbeat is due, and sends it in `wait_until`.
//! An isolate that serves nothing for a while stops heartbeating and the
//! registry expires it, which is right: nobody is calling it either (the
//! local mesh runner heartbeats for idle local Workers).

use std::time::Duration;

use crate::Instant;

/// What to send to the registry now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegistrationAction {
    Register,
    Heartbeat,
}

/// A claimed action that never reported back (its `wait_until` was cut
/// short) is forgotten after this long.
const LOST_AFTER: Duration = Duration::from_secs(30);
/// The heartbeat interval when the registry gives none.
const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, Debug, PartialEq)]
enum State {
    Unregistered {
        retry_at: Option<Instant>,
    },
    Registered {
        interval: Duration,
        next_beat: Instant,
    },
}

/// One instance's registration with the registry; see the module docs.
#[derive(Clone, Debug)]
pub struct SelfRegistration {
    retry: Duration,
    state: State,
    in_flight_since: Option<Instant>,
}

impl SelfRegistration {
    /// A registration not yet made; failed attempts are retried after
    /// `retry`.
    pub fn new(retry: Duration) -> Self {
        SelfRegistration {
            retry,
            state: State::Unregistered { retry_at: None },
            in_flight_since: None,
        }
    }

    /// The action due at `now`, if any, claimed: nothing else is due until
    /// the caller reports its result (or [`LOST_AFTER`] passes).
    pub fn next(&mut self, now: Instant) -> Option<RegistrationAction> {
        if self
            .in_flight_since
            .is_some_and(|t| now.saturating_duration_since(t) < LOST_AFTER)
        {
            return None;
        }
        let action = match self.state {
            State::Unregistered { retry_at } if retry_at.is_none_or(|t| now >= t) => {
                RegistrationAction::Register
            }
            State::Registered { next_beat, .. } if now >= next_beat => {
                RegistrationAction::Heartbeat
            }
            _ => return None,
        };
        self.in_flight_since = Some(now);
        Some(action)
    }

    /// The registry accepted the registration and wants heartbeats every
    /// `interval` (zero: the 10 s default).
    pub fn registered(&mut self, now: Instant, interval: Duration) {
        let interval = if interval.is_zero() {
            DEFAULT_HEARTBEAT
        } else {
            interval
        };
        self.in_flight_since = None;
        self.state = State::Registered {
            interval,
            next_beat: now + interval,
        };
    }

    /// A heartbeat was answered; `known == false` means the registry forgot
    /// the instance (it expired), so it registers again at once.
    pub fn heartbeat_answered(&mut self, now: Instant, known: bool) {
        self.in_flight_since = None;
        self.state = match self.state {
            State::Registered { interval, .. } if known => State::Registered {
                interval,
                next_beat: now + interval,
            },
            _ => State::Unregistered { retry_at: None },
        };
    }

    /// The last action failed (registry down, timeout): try again after the
    /// retry interval.
    pub fn failed(&mut self, now: Instant) {
        self.in_flight_since = None;
        let retry_at = now + self.retry;
        match &mut self.state {
            State::Unregistered { retry_at: at } => *at = Some(retry_at),
            State::Registered { next_beat, .. } => *next_beat = retry_at,
        }
    }

    pub fn is_registered(&self) -> bool {
        matches!(self.state, State::Registered { .. })
    }
}
