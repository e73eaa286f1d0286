//! Concurrency limit with load shedding.
//!
//! # Mechanism
//!
//! At most `max_in_flight` calls to a target run at once (default 100);
//! a call beyond that fails **immediately** with `resource_exhausted`
//! instead of waiting. Queueing would only add latency to calls that are
//! likely to miss their deadline anyway, and a Worker has no spare threads to
//! park them on; shedding keeps latency bounded and tells the caller to back
//! off. The count is shared by every service the layer wraps (`Rc<Cell>`) and
//! a slot is released when the call's future completes or is dropped.
//!
//! `resource_exhausted` is neither retried (not in `retry_on`) nor counted by
//! the breaker (the target did not fail; we chose not to call it).
//!
//! # Example
//!
//! ```
//! use workmesh::limit::ConcurrencyLimit;
//! # fn demo<T>(transport: T) {
//! let layer = ConcurrencyLimit::layer(64);
//! let service = tower::Layer::layer(&layer, transport);
//! # }
//! ```

use std::cell::Cell;
use std::rc::Rc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use tower::{Layer, Service, ServiceExt};

use crate::{ConnectError, LocalBoxFuture};

/// Sheds calls beyond a concurrency limit; see the [module docs](self).
#[derive(Clone, Debug)]
pub struct ConcurrencyLimit<S> {
    inner: S,
    max_in_flight: usize,
    in_flight: Rc<Cell<usize>>,
}

impl ConcurrencyLimit<()> {
    pub fn layer(max_in_flight: usize) -> ConcurrencyLimitLayer {
        ConcurrencyLimitLayer {
            max_in_flight,
            in_flight: Rc::new(Cell::new(0)),
        }
    }
}

impl<S> ConcurrencyLimit<S> {
    /// Calls running now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.get()
    }
}

/// Wraps services in a [`ConcurrencyLimit`] sharing this layer's count.
#[derive(Clone, Debug)]
pub struct ConcurrencyLimitLayer {
    max_in_flight: usize,
    in_flight: Rc<Cell<usize>>,
}

impl ConcurrencyLimitLayer {
    /// Calls running now through any service of this layer.
    pub fn in_flight(&self) -> usize {
        self.in_flight.get()
    }
}

impl<S> Layer<S> for ConcurrencyLimitLayer {
    type Service = ConcurrencyLimit<S>;
    fn layer(&self, inner: S) -> Self::Service {
        ConcurrencyLimit {
            inner,
            max_in_flight: self.max_in_flight,
            in_flight: self.in_flight.clone(),
        }
    }
}

struct Slot(Rc<Cell<usize>>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.set(self.0.get().saturating_sub(1));
    }
}

impl<S> Service<Request<Bytes>> for ConcurrencyLimit<S>
where
    S: Service<Request<Bytes>, Response = Response<Bytes>, Error = ConnectError> + Clone + 'static,
{
    type Response = Response<Bytes>;
    type Error = ConnectError;
    type Future = LocalBoxFuture<'static, Result<Response<Bytes>, ConnectError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), ConnectError>> {
        // Never "not ready": shedding happens in `call`, so nothing waits.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Bytes>) -> Self::Future {
        let running = self.in_flight.get();
        if running >= self.max_in_flight {
            let max = self.max_in_flight;
            return Box::pin(async move {
                Err(ConnectError::resource_exhausted(format!(
                    "load shed: {running} calls in flight, limit {max}"
                )))
            });
        }
        self.in_flight.set(running + 1);
        let slot = Slot(self.in_flight.clone());
        let inner = self.inner.clone();
        Box::pin(async move {
            let _slot = slot;
            inner.oneshot(req).await
        })
    }
}

#[cfg(all(test, feature = "tokio"))]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::test_util::{call, mock, request, Reply, READ};
    use crate::{Code, Runtime, TokioRuntime};

    #[tokio::test(start_paused = true)]
    async fn sheds_beyond_the_limit_immediately_and_frees_slots() {
        let rt = TokioRuntime::with_seed(1);
        let (handle, inner) = mock(
            rt.clone(),
            Reply::after(Duration::from_millis(100), Reply::Ok),
        );
        let layer = ConcurrencyLimit::layer(2);
        let mut svc = layer.layer(inner);
        let slow1 = svc.call(request(READ, None));
        let slow2 = svc.call(request(READ, None));
        assert_eq!(layer.in_flight(), 2);
        let start = rt.now();
        let shed = call(&mut svc, request(READ, None)).await.unwrap_err();
        assert_eq!(shed.code, Code::ResourceExhausted);
        assert!(shed.message.contains("limit 2"), "{}", shed.message);
        assert_eq!(rt.now(), start, "shedding must not wait");
        let (a, b) = tokio::join!(slow1, slow2);
        assert!(a.is_ok() && b.is_ok());
        assert_eq!(
            handle.calls(),
            2,
            "the shed call never reached the inner service"
        );
        assert_eq!(layer.in_flight(), 0);
        assert!(call(&mut svc, request(READ, None)).await.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn dropped_calls_release_their_slot() {
        let rt = TokioRuntime::with_seed(1);
        let (_, inner) = mock(rt.clone(), Reply::after(Duration::from_secs(10), Reply::Ok));
        let mut svc = ConcurrencyLimit::layer(1).layer(inner);
        let pending = svc.call(request(READ, None));
        assert_eq!(svc.in_flight(), 1);
        drop(pending);
        assert_eq!(svc.in_flight(), 0);
    }
}
