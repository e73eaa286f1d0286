use std::rc::Rc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::future::{select, Either};
use http::{Request, Response};
use tower::{Layer, Service, ServiceExt};

use super::overall_deadline_error;
use crate::config::ResilienceConfig;
use crate::{ConnectError, Deadline, LocalBoxFuture, MethodDescriptor, Runtime};

/// Fixes a call's overall deadline and enforces it; see the [module docs](super).
#[derive(Clone, Debug)]
pub struct CallDeadline<S, R> {
    inner: S,
    runtime: R,
    config: Rc<ResilienceConfig>,
}

impl<S, R: Runtime> CallDeadline<S, R> {
    pub fn new(inner: S, runtime: R, config: Rc<ResilienceConfig>) -> Self {
        CallDeadline {
            inner,
            runtime,
            config,
        }
    }
}

impl<R: Runtime> CallDeadline<(), R> {
    pub fn layer(runtime: R, config: Rc<ResilienceConfig>) -> CallDeadlineLayer<R> {
        CallDeadlineLayer { runtime, config }
    }
}

/// Wraps services in [`CallDeadline`].
#[derive(Clone, Debug)]
pub struct CallDeadlineLayer<R> {
    runtime: R,
    config: Rc<ResilienceConfig>,
}

impl<S, R: Runtime> Layer<S> for CallDeadlineLayer<R> {
    type Service = CallDeadline<S, R>;
    fn layer(&self, inner: S) -> Self::Service {
        CallDeadline::new(inner, self.runtime.clone(), self.config.clone())
    }
}

impl<S, R> Service<Request<Bytes>> for CallDeadline<S, R>
where
    S: Service<Request<Bytes>, Response = Response<Bytes>, Error = ConnectError> + Clone + 'static,
    R: Runtime,
{
    type Response = Response<Bytes>;
    type Error = ConnectError;
    type Future = LocalBoxFuture<'static, Result<Response<Bytes>, ConnectError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), ConnectError>> {
        // Readiness of the inner service is awaited inside the call.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request<Bytes>) -> Self::Future {
        let now = self.runtime.now();
        let deadline = match req.extensions().get::<Deadline>() {
            Some(d) => Some(*d),
            None => {
                let method = req.extensions().get::<MethodDescriptor>();
                self.config
                    .call_policy_for(method)
                    .timeout
                    .map(|t| Deadline(now + t))
            }
        };
        let inner = self.inner.clone();
        let Some(deadline) = deadline else {
            return Box::pin(inner.oneshot(req));
        };
        if deadline.0 <= now {
            return Box::pin(async { Err(overall_deadline_error()) });
        }
        req.extensions_mut().insert(deadline);
        let timer = self
            .runtime
            .sleep(deadline.0.saturating_duration_since(now));
        Box::pin(async move {
            let call = std::pin::pin!(inner.oneshot(req));
            match select(call, timer).await {
                Either::Left((result, _)) => result,
                Either::Right(((), _)) => Err(overall_deadline_error()),
            }
        })
    }
}
