use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use super::{Accrual, TripReason};
use crate::config::BreakerPolicy;
use crate::Instant;

/// Where a breaker's gate stands.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum BreakerState {
    /// Calls pass.
    Closed,
    /// Calls fail fast until `until`; the first call after it is the probe.
    Open { until: Instant, reason: TripReason },
    /// One probe is in flight (or about to be); others fail fast.
    HalfOpen,
}

#[derive(Debug)]
pub(crate) struct Gate {
    pub(crate) name: String,
    policy: BreakerPolicy,
    pub(crate) state: BreakerState,
    probe_in_flight: bool,
    /// Open periods since the last close; picks the next backoff.
    opened: u32,
    pub(crate) accrual: Accrual,
}

/// What the gate says about one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Admit {
    Pass,
    Probe,
    Reject,
}

impl Gate {
    pub(crate) fn new(name: String, policy: BreakerPolicy) -> Self {
        let accrual = Accrual::new(&policy);
        Gate {
            name,
            policy,
            state: BreakerState::Closed,
            probe_in_flight: false,
            opened: 0,
            accrual,
        }
    }

    pub(crate) fn admit(&mut self, now: Instant) -> Admit {
        match self.state {
            BreakerState::Closed => Admit::Pass,
            BreakerState::Open { until, .. } if now >= until => {
                self.state = BreakerState::HalfOpen;
                self.probe_in_flight = true;
                tracing::info!(target: "workmesh::breaker", breaker = %self.name, "circuit breaker half-open: probing");
                self.span_event("circuit breaker half-open", Vec::new());
                Admit::Probe
            }
            BreakerState::Open { .. } => Admit::Reject,
            BreakerState::HalfOpen if !self.probe_in_flight => {
                self.probe_in_flight = true;
                Admit::Probe
            }
            BreakerState::HalfOpen => Admit::Reject,
        }
    }

    /// Records a state change as an event on the current span (the call
    /// that caused it), named by the breaker.
    fn span_event(&self, name: &'static str, mut attributes: crate::trace::Attributes) {
        if let Some(span) = crate::trace::scope::current() {
            attributes.insert(0, ("workmesh.breaker".into(), self.name.to_string().into()));
            span.add_event(name, attributes);
        }
    }

    /// The open period after `opened` earlier ones, before jitter.
    pub(crate) fn backoff(&self, opened: u32) -> Duration {
        let factor = 1u32.checked_shl(opened.min(31)).unwrap_or(u32::MAX);
        self.policy
            .backoff_initial
            .saturating_mul(factor)
            .min(self.policy.backoff_max)
    }

    fn open(&mut self, now: Instant, reason: TripReason, random: f64) {
        let period = self
            .backoff(self.opened)
            .mul_f64(1.0 + self.policy.jitter * random);
        self.opened = self.opened.saturating_add(1);
        let until = now + period;
        self.state = BreakerState::Open { until, reason };
        self.probe_in_flight = false;
        tracing::warn!(
            target: "workmesh::breaker",
            breaker = %self.name,
            %reason,
            open_ms = period.as_millis() as u64,
            "circuit breaker opened"
        );
        let open_ms = u64::try_from(period.as_millis()).unwrap_or(u64::MAX);
        self.span_event(
            "circuit breaker opened",
            vec![
                ("workmesh.breaker.reason".into(), reason.to_string().into()),
                ("workmesh.breaker.open_ms".into(), open_ms.into()),
            ],
        );
    }

    fn close(&mut self, now: Instant) {
        self.state = BreakerState::Closed;
        self.probe_in_flight = false;
        self.opened = 0;
        self.accrual.reset(now);
        tracing::info!(target: "workmesh::breaker", breaker = %self.name, "circuit breaker closed");
        self.span_event("circuit breaker closed", Vec::new());
    }

    /// Records the outcome of a call the gate let through.
    pub(crate) fn record(&mut self, now: Instant, admit: Admit, failure: bool, random: f64) {
        match admit {
            Admit::Probe if failure => self.open(now, TripReason::ProbeFailed, random),
            Admit::Probe => self.close(now),
            Admit::Pass => {
                let trip = self.accrual.record(now, failure);
                if let (Some(reason), BreakerState::Closed) = (trip, self.state) {
                    self.open(now, reason, random);
                }
            }
            Admit::Reject => {}
        }
    }

    /// A probe whose call was dropped before it finished: let the next call probe.
    pub(crate) fn probe_abandoned(&mut self) {
        if self.state == BreakerState::HalfOpen {
            self.probe_in_flight = false;
        }
    }
}

/// A read-only view of one breaker, for dashboards, tests and the balancer.
#[derive(Clone, Debug)]
pub struct BreakerHandle {
    pub(crate) gate: Rc<RefCell<Gate>>,
}

impl BreakerHandle {
    pub fn state(&self) -> BreakerState {
        self.gate.borrow().state
    }

    /// True when a call made at `now` would be failed fast: open and not yet
    /// due for a probe, or half-open with the probe already out.
    pub fn is_open(&self, now: Instant) -> bool {
        let gate = self.gate.borrow();
        match gate.state {
            BreakerState::Closed => false,
            BreakerState::Open { until, .. } => now < until,
            BreakerState::HalfOpen => gate.probe_in_flight,
        }
    }

    /// The breaker's name (its target or endpoint).
    pub fn name(&self) -> String {
        self.gate.borrow().name.clone()
    }
}
