use std::rc::Rc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use tower::{Layer, Service, ServiceExt};

use super::{backoff_ceiling, pushback, Pushback, RetryBudget};
use crate::breaker;
use crate::config::ResilienceConfig;
use crate::context::headers;
use crate::deadline::{clear_per_try_mark, is_per_try_timeout};
use crate::{ConnectError, Deadline, LocalBoxFuture, MethodDescriptor, Runtime};

/// Retries safe calls within a budget; see the [module docs](super).
#[derive(Clone, Debug)]
pub struct Retry<S, R> {
    inner: S,
    runtime: R,
    config: Rc<ResilienceConfig>,
    budget: Rc<RetryBudget>,
}

impl<S, R: Runtime> Retry<S, R> {
    pub fn new(
        inner: S,
        runtime: R,
        config: Rc<ResilienceConfig>,
        budget: Rc<RetryBudget>,
    ) -> Self {
        Retry {
            inner,
            runtime,
            config,
            budget,
        }
    }
}

impl<R: Runtime> Retry<(), R> {
    pub fn layer(
        runtime: R,
        config: Rc<ResilienceConfig>,
        budget: Rc<RetryBudget>,
    ) -> RetryLayer<R> {
        RetryLayer {
            runtime,
            config,
            budget,
        }
    }
}

/// Wraps services in [`Retry`]; every service it makes shares one budget.
#[derive(Clone, Debug)]
pub struct RetryLayer<R> {
    runtime: R,
    config: Rc<ResilienceConfig>,
    budget: Rc<RetryBudget>,
}

impl<R> RetryLayer<R> {
    pub fn budget(&self) -> &Rc<RetryBudget> {
        &self.budget
    }
}

impl<S, R: Runtime> Layer<S> for RetryLayer<R> {
    type Service = Retry<S, R>;
    fn layer(&self, inner: S) -> Self::Service {
        Retry::new(
            inner,
            self.runtime.clone(),
            self.config.clone(),
            self.budget.clone(),
        )
    }
}

fn copy_request(req: &Request<Bytes>, attempt: u32) -> Request<Bytes> {
    let mut copy = Request::new(req.body().clone());
    *copy.method_mut() = req.method().clone();
    *copy.uri_mut() = req.uri().clone();
    *copy.version_mut() = req.version();
    *copy.headers_mut() = req.headers().clone();
    copy.headers_mut()
        .insert(headers::ATTEMPT, HeaderValue::from(attempt));
    if let Some(m) = req.extensions().get::<MethodDescriptor>() {
        copy.extensions_mut().insert(*m);
    }
    if let Some(d) = req.extensions().get::<Deadline>() {
        copy.extensions_mut().insert(*d);
    }
    copy
}

impl<S, R> Service<Request<Bytes>> for Retry<S, R>
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
        let method = req.extensions().get::<MethodDescriptor>().copied();
        let policy = self.config.call_policy_for(method.as_ref()).retry;
        let retry_safe = method.is_some_and(|m| m.idempotency.is_retry_safe())
            || req.headers().contains_key(headers::IDEMPOTENCY_KEY);
        let deadline = req.extensions().get::<Deadline>().copied();
        let runtime = self.runtime.clone();
        let budget = self.budget.clone();
        let mut inner = self.inner.clone();
        budget.deposit(runtime.now());

        if !retry_safe || policy.max_attempts <= 1 {
            req.headers_mut()
                .insert(headers::ATTEMPT, HeaderValue::from(1u32));
            return Box::pin(async move {
                inner.ready().await?.call(req).await.map_err(|mut e| {
                    clear_per_try_mark(&mut e);
                    e
                })
            });
        }

        Box::pin(async move {
            let mut attempt = 1u32;
            loop {
                let result = match inner.ready().await {
                    Ok(ready) => ready.call(copy_request(&req, attempt)).await,
                    Err(e) => Err(e),
                };
                let mut error = match result {
                    Ok(response) => return Ok(response),
                    Err(e) => e,
                };
                // An open breaker sent nothing and will refuse the next attempt
                // too: retrying it would only sleep and spend budget.
                let rejected = breaker::is_rejection(&error);
                let retryable = !rejected
                    && (policy.retry_on.contains(error.code) || is_per_try_timeout(&error));
                clear_per_try_mark(&mut error);
                breaker::clear_rejection_mark(&mut error);
                if !retryable || attempt >= policy.max_attempts {
                    return Err(error);
                }
                let wait = match pushback(&error) {
                    Pushback::DoNotRetry => return Err(error),
                    Pushback::Wait(wait) => wait,
                    Pushback::None => {
                        backoff_ceiling(&policy, attempt - 1).mul_f64(runtime.random())
                    }
                };
                let now = runtime.now();
                if deadline.is_some_and(|d| now + wait >= d.0) {
                    return Err(error);
                }
                if !budget.withdraw(now) {
                    tracing::debug!(target: "workmesh::retry", code = %error.code, attempt, "retry budget exhausted; not retrying");
                    span_event("retry budget exhausted", error.code, attempt, None);
                    return Err(error);
                }
                tracing::debug!(target: "workmesh::retry", code = %error.code, attempt, wait_ms = wait.as_millis() as u64, "retrying");
                span_event("retry", error.code, attempt, Some(wait));
                runtime.sleep(wait).await;
                attempt += 1;
            }
        })
    }
}

/// Records a retry decision as an event on the caller's current span (the
/// attempts themselves are CLIENT spans below, in the trace layer).
fn span_event(
    name: &'static str,
    code: crate::Code,
    attempt: u32,
    wait: Option<std::time::Duration>,
) {
    if let Some(span) = crate::trace::scope::current() {
        let mut attributes: crate::trace::Attributes = vec![
            (crate::trace::rpc::attr::ATTEMPT.into(), attempt.into()),
            (
                crate::trace::rpc::attr::CONNECT_ERROR_CODE.into(),
                code.as_str().into(),
            ),
        ];
        if let Some(wait) = wait {
            let wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
            attributes.push(("workmesh.retry.wait_ms".into(), wait_ms.into()));
        }
        span.add_event(name, attributes);
    }
}
