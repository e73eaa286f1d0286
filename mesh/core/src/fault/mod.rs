//! Fault injection, as Envoy's fault filter: delay or abort a share of the
//! calls matching a rule, to rehearse how the rest of the mesh copes.
//!
//! # Mechanism
//!
//! Rules come from [`ResilienceConfig::faults`](crate::config::ResilienceConfig)
//! and match on the request's [`MethodDescriptor`](crate::MethodDescriptor)
//! (service and/or method; an absent field matches any). The first matching
//! rule applies: with probability `delay.percent` the call waits `delay.ms`
//! first, then with probability `abort.percent` it fails with `abort.code`
//! instead of being sent. Dice come from the [`Runtime`](crate::Runtime).
//!
//! Injection is **off unless `faults.enabled` is true**: a configuration with
//! rules but no `enabled: true` injects nothing. Every injected fault is a
//! `tracing` event (target `workmesh::fault`), so a chaos run is visible in
//! traces and logs.
//!
//! In the client stack the fault layer is outermost: an injected abort looks
//! to the application exactly like a dependency failure after the mesh gave
//! up (it is not retried and does not trip breakers), and an injected delay
//! consumes the caller's deadline as real slowness would.
//!
//! # Example
//!
//! ```
//! use workmesh::config::ResilienceConfig;
//! use workmesh::fault::FaultInjection;
//! # fn demo<R: workmesh::Runtime, T>(runtime: R, transport: T) {
//! let config = ResilienceConfig::from_json(r#"{"faults": {"enabled": true, "rules": [
//!     {"service": "shop.v1.PaymentService", "abort": {"code": "unavailable", "percent": 10}}]}}"#).unwrap();
//! let layer = FaultInjection::layer(runtime, config.fault_rules());
//! let service = tower::Layer::layer(&layer, transport);
//! # }
//! ```

use std::rc::Rc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use tower::{Layer, Service, ServiceExt};

use crate::config::FaultRule;
use crate::{ConnectError, LocalBoxFuture, MethodDescriptor, Runtime};

/// Injects configured delays and aborts; see the [module docs](self).
#[derive(Clone, Debug)]
pub struct FaultInjection<S, R> {
    inner: S,
    runtime: R,
    rules: Rc<[FaultRule]>,
}

impl<R: Runtime> FaultInjection<(), R> {
    /// A layer with these rules; an empty list (faults disabled) passes
    /// every call straight through.
    pub fn layer(runtime: R, rules: Vec<FaultRule>) -> FaultInjectionLayer<R> {
        FaultInjectionLayer {
            runtime,
            rules: rules.into(),
        }
    }
}

/// Wraps services in [`FaultInjection`].
#[derive(Clone, Debug)]
pub struct FaultInjectionLayer<R> {
    runtime: R,
    rules: Rc<[FaultRule]>,
}

impl<S, R: Runtime> Layer<S> for FaultInjectionLayer<R> {
    type Service = FaultInjection<S, R>;
    fn layer(&self, inner: S) -> Self::Service {
        FaultInjection {
            inner,
            runtime: self.runtime.clone(),
            rules: self.rules.clone(),
        }
    }
}

impl<S, R> Service<Request<Bytes>> for FaultInjection<S, R>
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
        let inner = self.inner.clone();
        let method = req.extensions().get::<MethodDescriptor>().copied();
        let Some(rule) = self.rules.iter().find(|r| r.matches(method.as_ref())) else {
            return Box::pin(inner.oneshot(req));
        };
        let (service, name) = method.map_or(("", ""), |m| (m.service, m.method));
        let delay = rule
            .delay
            .filter(|(_, share)| self.runtime.random() < *share)
            .map(|(d, _)| d);
        let abort = rule
            .abort
            .as_ref()
            .filter(|(_, _, share)| self.runtime.random() < *share);
        let abort = abort.map(|(code, message, _)| ConnectError::new(*code, message.clone()));
        let runtime = self.runtime.clone();
        Box::pin(async move {
            if let Some(delay) = delay {
                tracing::info!(target: "workmesh::fault", service, method = name, delay_ms = delay.as_millis() as u64, "fault injected: delay");
                runtime.sleep(delay).await;
            }
            if let Some(error) = abort {
                tracing::info!(target: "workmesh::fault", service, method = name, code = %error.code, "fault injected: abort");
                return Err(error);
            }
            inner.oneshot(req).await
        })
    }
}

#[cfg(all(test, feature = "tokio"))]
mod tests;
