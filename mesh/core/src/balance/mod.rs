//! Load balancing across a target's endpoints: power of two choices over
//! peak-EWMA latency.
//!
//! # Mechanism
//!
//! For each call, two distinct endpoints are picked at random (from the
//! [`Runtime`](crate::Runtime)) among those whose circuit breaker would admit
//! the call, and the one with the lower **load** gets it (Mitzenmacher's
//! "power of two choices": nearly as good as always picking the best, without
//! herding onto it). Load is `latency estimate × (pending calls + 1)`, so a
//! busy endpoint looks slower than an idle one at the same latency.
//!
//! The latency estimate is a **peak EWMA** (Finagle, Linkerd, tower): a new
//! observation above the estimate replaces it at once (react to slowness
//! fast), one below it is blended in with weight `1 − e^(−Δt/τ)` (recover
//! slowly), where `Δt` is the time since the last update and `τ` the decay
//! (10 s). An unmeasured endpoint starts at the seed (30 ms). Latency is
//! measured with the runtime clock for successes; failures only raise the
//! estimate (a fast error must not make an endpoint look attractive).
//!
//! Endpoints whose breaker is open are skipped; when every breaker is open
//! the call fails with `unavailable` without being sent.
//!
//! # Example
//!
//! ```
//! use workmesh::balance::{Balance, Endpoint};
//! use workmesh::config::BalancePolicy;
//! # fn demo<R: workmesh::Runtime, T: Clone>(runtime: R, a: T, b: T) {
//! let endpoints = vec![Endpoint::new("catalog-a", a), Endpoint::new("catalog-b", b)];
//! let balance = Balance::new(runtime, BalancePolicy::default(), endpoints);
//! # }
//! ```

mod ewma;

pub use ewma::PeakEwma;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use tower::{Layer, Service, ServiceExt};

use crate::breaker::BreakerHandle;
use crate::config::BalancePolicy;
use crate::{ConnectError, LocalBoxFuture, Runtime};

/// One endpoint of a target: an id, its service, and optionally its breaker.
#[derive(Clone, Debug)]
pub struct Endpoint<S> {
    pub id: String,
    pub service: S,
    pub breaker: Option<BreakerHandle>,
}

impl<S> Endpoint<S> {
    pub fn new(id: impl Into<String>, service: S) -> Self {
        Endpoint {
            id: id.into(),
            service,
            breaker: None,
        }
    }

    /// Lets the balancer skip this endpoint while its breaker is open.
    pub fn with_breaker(mut self, breaker: BreakerHandle) -> Self {
        self.breaker = Some(breaker);
        self
    }
}

#[derive(Debug)]
struct Slot<S> {
    endpoint: Endpoint<S>,
    ewma: Rc<RefCell<PeakEwma>>,
    pending: Rc<Cell<u32>>,
}

impl<S: Clone> Clone for Slot<S> {
    fn clone(&self) -> Self {
        Slot {
            endpoint: self.endpoint.clone(),
            ewma: self.ewma.clone(),
            pending: self.pending.clone(),
        }
    }
}

/// P2C over peak-EWMA latency; see the [module docs](self).
#[derive(Debug)]
pub struct Balance<S, R> {
    runtime: R,
    slots: Rc<Vec<Slot<S>>>,
}

impl<S, R: Clone> Clone for Balance<S, R> {
    fn clone(&self) -> Self {
        Balance {
            runtime: self.runtime.clone(),
            slots: self.slots.clone(),
        }
    }
}

impl<S, R: Runtime> Balance<S, R> {
    pub fn new(runtime: R, policy: BalancePolicy, endpoints: Vec<Endpoint<S>>) -> Self {
        let now = runtime.now();
        let slots = endpoints
            .into_iter()
            .map(|endpoint| Slot {
                endpoint,
                ewma: Rc::new(RefCell::new(PeakEwma::new(
                    policy.ewma_seed,
                    policy.decay,
                    now,
                ))),
                pending: Rc::new(Cell::new(0)),
            })
            .collect();
        Balance {
            runtime,
            slots: Rc::new(slots),
        }
    }

    /// Each endpoint's id and current load (latency estimate in ms × (pending + 1)).
    pub fn loads(&self) -> Vec<(String, f64)> {
        self.slots
            .iter()
            .map(|s| (s.endpoint.id.clone(), load(s)))
            .collect()
    }

    /// Endpoint ids with their breakers, for observability.
    pub fn breakers(&self) -> Vec<(String, BreakerHandle)> {
        self.slots
            .iter()
            .filter_map(|s| Some((s.endpoint.id.clone(), s.endpoint.breaker.clone()?)))
            .collect()
    }

    /// The index of the endpoint for the next call, or `None` if none admits it.
    fn pick(&self) -> Option<usize> {
        let now = self.runtime.now();
        let open = |s: &Slot<S>| s.endpoint.breaker.as_ref().is_some_and(|b| b.is_open(now));
        let candidates: Vec<usize> = (0..self.slots.len())
            .filter(|i| !open(&self.slots[*i]))
            .collect();
        match candidates.len() {
            0 => None,
            1 => Some(candidates[0]),
            n => {
                let a = ((self.runtime.random() * n as f64) as usize).min(n - 1);
                let mut b = ((self.runtime.random() * (n - 1) as f64) as usize).min(n - 2);
                if b >= a {
                    b += 1;
                }
                let (a, b) = (candidates[a], candidates[b]);
                Some(if load(&self.slots[a]) <= load(&self.slots[b]) {
                    a
                } else {
                    b
                })
            }
        }
    }
}

fn load<S>(slot: &Slot<S>) -> f64 {
    slot.ewma.borrow().estimate_ms() * f64::from(slot.pending.get() + 1)
}

impl<R: Runtime> Balance<(), R> {
    pub fn layer(runtime: R, policy: BalancePolicy) -> BalanceLayer<R> {
        BalanceLayer { runtime, policy }
    }
}

/// Builds a [`Balance`] from a list of endpoints.
#[derive(Clone, Debug)]
pub struct BalanceLayer<R> {
    runtime: R,
    policy: BalancePolicy,
}

impl<S, R: Runtime> Layer<Vec<Endpoint<S>>> for BalanceLayer<R> {
    type Service = Balance<S, R>;
    fn layer(&self, endpoints: Vec<Endpoint<S>>) -> Self::Service {
        Balance::new(self.runtime.clone(), self.policy.clone(), endpoints)
    }
}

struct Pending(Rc<Cell<u32>>);

impl Drop for Pending {
    fn drop(&mut self) {
        self.0.set(self.0.get().saturating_sub(1));
    }
}

impl<S, R> Service<Request<Bytes>> for Balance<S, R>
where
    S: Service<Request<Bytes>, Response = Response<Bytes>, Error = ConnectError> + Clone + 'static,
    R: Runtime,
{
    type Response = Response<Bytes>;
    type Error = ConnectError;
    type Future = LocalBoxFuture<'static, Result<Response<Bytes>, ConnectError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), ConnectError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Bytes>) -> Self::Future {
        let Some(index) = self.pick() else {
            let message = if self.slots.is_empty() {
                "no endpoints to balance over".to_owned()
            } else {
                format!(
                    "all {} endpoints have open circuit breakers",
                    self.slots.len()
                )
            };
            return Box::pin(async move { Err(ConnectError::unavailable(message)) });
        };
        let slot = self.slots[index].clone();
        let runtime = self.runtime.clone();
        slot.pending.set(slot.pending.get() + 1);
        let pending = Pending(slot.pending.clone());
        Box::pin(async move {
            let _pending = pending;
            let start = runtime.now();
            let outcome = slot.endpoint.service.oneshot(req).await;
            let now = runtime.now();
            let rtt = now.saturating_duration_since(start);
            let mut ewma = slot.ewma.borrow_mut();
            match &outcome {
                Ok(_) => ewma.observe(rtt, now),
                Err(_) => ewma.observe_peak(rtt, now),
            }
            outcome
        })
    }
}

#[cfg(all(test, feature = "tokio"))]
mod tests;
