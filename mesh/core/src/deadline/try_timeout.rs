use std::rc::Rc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::future::{select, Either};
use http::{HeaderValue, Request, Response};
use tower::{Layer, Service, ServiceExt};

use super::{clear_per_try_mark, overall_deadline_error, per_try_timeout_error, MAX_TIMEOUT_MS};
use crate::config::ResilienceConfig;
use crate::context::headers;
use crate::{ConnectError, Deadline, LocalBoxFuture, MethodDescriptor, Runtime};

/// Per-attempt timeout and `Connect-Timeout-Ms`; see the [module docs](super).
#[derive(Clone, Debug)]
pub struct TryTimeout<S, R> {
    inner: S,
    runtime: R,
    config: Rc<ResilienceConfig>,
}

impl<S, R: Runtime> TryTimeout<S, R> {
    pub fn new(inner: S, runtime: R, config: Rc<ResilienceConfig>) -> Self {
        TryTimeout {
            inner,
            runtime,
            config,
        }
    }
}

impl<R: Runtime> TryTimeout<(), R> {
    pub fn layer(runtime: R, config: Rc<ResilienceConfig>) -> TryTimeoutLayer<R> {
        TryTimeoutLayer { runtime, config }
    }
}

/// Wraps services in [`TryTimeout`].
#[derive(Clone, Debug)]
pub struct TryTimeoutLayer<R> {
    runtime: R,
    config: Rc<ResilienceConfig>,
}

impl<S, R: Runtime> Layer<S> for TryTimeoutLayer<R> {
    type Service = TryTimeout<S, R>;
    fn layer(&self, inner: S) -> Self::Service {
        TryTimeout::new(inner, self.runtime.clone(), self.config.clone())
    }
}

impl<S, R> Service<Request<Bytes>> for TryTimeout<S, R>
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

    fn call(&mut self, mut req: Request<Bytes>) -> Self::Future {
        let now = self.runtime.now();
        let overall = req.extensions().get::<Deadline>().copied();
        let method = req.extensions().get::<MethodDescriptor>();
        let per_try = self.config.call_policy_for(method).per_try_timeout;
        let per_try_deadline = per_try.map(|t| Deadline(now + t));
        // The per-try timer only counts as "per-try" when it fires first.
        let (deadline, is_per_try) = match (overall, per_try_deadline) {
            (Some(o), Some(p)) if p < o => (Some(p), true),
            (Some(o), _) => (Some(o), false),
            (None, Some(p)) => (Some(p), true),
            (None, None) => (None, false),
        };
        let inner = self.inner.clone();
        let Some(deadline) = deadline else {
            return Box::pin(async move { inner.oneshot(req).await.map_err(strip) });
        };
        let remaining = deadline.0.saturating_duration_since(now);
        let remaining_ms = remaining.as_millis();
        if remaining_ms == 0 {
            // Spent (or under a millisecond, which Connect cannot express):
            // never send a request the server would have to refuse anyway.
            return Box::pin(async { Err(overall_deadline_error()) });
        }
        let value = HeaderValue::from(remaining_ms.min(MAX_TIMEOUT_MS) as u64);
        req.headers_mut().insert(headers::CONNECT_TIMEOUT_MS, value);
        let timer = self.runtime.sleep(remaining);
        Box::pin(async move {
            let call = std::pin::pin!(inner.oneshot(req));
            match select(call, timer).await {
                Either::Left((result, _)) => result.map_err(strip),
                Either::Right(((), _)) if is_per_try => Err(per_try_timeout_error(remaining)),
                Either::Right(((), _)) => Err(overall_deadline_error()),
            }
        })
    }
}

/// A per-try mark from below came from another hop: it is not ours to act on.
fn strip(mut error: ConnectError) -> ConnectError {
    clear_per_try_mark(&mut error);
    error
}
