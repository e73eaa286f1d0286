use std::cell::RefCell;
use std::rc::Rc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use tower::{Layer, Service, ServiceExt};

use super::gate::{Admit, Gate};
use super::{BreakerHandle, BreakerState, Classify};
use crate::config::BreakerPolicy;
use crate::{ConnectError, LocalBoxFuture, Runtime};

/// Fails fast while the target is unhealthy; see the [module docs](super).
#[derive(Clone, Debug)]
pub struct Breaker<S, R> {
    inner: S,
    runtime: R,
    classify: Classify,
    gate: Rc<RefCell<Gate>>,
}

impl<R: Runtime> Breaker<(), R> {
    /// A layer with one breaker (one gate) for the target `name`; every
    /// service the layer wraps shares it.
    pub fn layer(runtime: R, policy: BreakerPolicy, name: impl Into<String>) -> BreakerLayer<R> {
        let classify = Classify::new(policy.failure_codes);
        BreakerLayer {
            runtime,
            classify,
            gate: Rc::new(RefCell::new(Gate::new(name.into(), policy))),
        }
    }
}

impl<S, R> Breaker<S, R> {
    pub fn handle(&self) -> BreakerHandle {
        BreakerHandle {
            gate: self.gate.clone(),
        }
    }
}

/// Wraps services in a [`Breaker`] sharing this layer's gate.
#[derive(Clone, Debug)]
pub struct BreakerLayer<R> {
    runtime: R,
    classify: Classify,
    gate: Rc<RefCell<Gate>>,
}

impl<R> BreakerLayer<R> {
    pub fn handle(&self) -> BreakerHandle {
        BreakerHandle {
            gate: self.gate.clone(),
        }
    }
}

impl<S, R: Runtime> Layer<S> for BreakerLayer<R> {
    type Service = Breaker<S, R>;
    fn layer(&self, inner: S) -> Self::Service {
        Breaker {
            inner,
            runtime: self.runtime.clone(),
            classify: self.classify,
            gate: self.gate.clone(),
        }
    }
}

/// Releases the probe slot if the probe's future is dropped unfinished.
struct ProbeGuard {
    gate: Rc<RefCell<Gate>>,
    armed: bool,
}

impl Drop for ProbeGuard {
    fn drop(&mut self) {
        if self.armed {
            self.gate.borrow_mut().probe_abandoned();
        }
    }
}

impl<S, R> Service<Request<Bytes>> for Breaker<S, R>
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
        let admit = self.gate.borrow_mut().admit(self.runtime.now());
        if admit == Admit::Reject {
            let gate = self.gate.borrow();
            let detail = match gate.state {
                BreakerState::Open { reason, .. } => {
                    format!("circuit breaker open for {} ({reason})", gate.name)
                }
                _ => format!("circuit breaker open for {} (probe in flight)", gate.name),
            };
            return Box::pin(async move { Err(super::rejection(detail)) });
        }
        let inner = self.inner.clone();
        let runtime = self.runtime.clone();
        let classify = self.classify;
        let gate = self.gate.clone();
        // Created before the future so that dropping it even unpolled frees the probe.
        let guard = ProbeGuard {
            gate: gate.clone(),
            armed: admit == Admit::Probe,
        };
        Box::pin(async move {
            let mut guard = guard; // move the whole guard in, not just a field
            let outcome = inner.oneshot(req).await;
            guard.armed = false;
            let failure = classify.is_failure(&outcome);
            gate.borrow_mut()
                .record(runtime.now(), admit, failure, runtime.random());
            outcome
        })
    }
}
