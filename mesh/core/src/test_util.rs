//! Shared test helpers: a scripted mock service and request builders.
//!
//! The mock is a small `tower::Service` that records every call it receives
//! (time, headers, extensions that matter) and answers from a queue of
//! [`Reply`]s, falling back to a fixed reply when the queue is empty.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use tower::Service;

use crate::context::headers;
use crate::{
    Code, ConnectError, Deadline, Idempotency, Instant, LocalBoxFuture, MethodDescriptor, Runtime,
};

pub(crate) const READ: MethodDescriptor = MethodDescriptor {
    service: "shop.v1.CatalogService",
    method: "GetProduct",
    idempotency: Idempotency::NoSideEffects,
};
pub(crate) const WRITE: MethodDescriptor = MethodDescriptor {
    service: "shop.v1.OrderService",
    method: "PlaceOrder",
    idempotency: Idempotency::Unknown,
};

/// What the mock answers to one call.
#[derive(Clone, Debug)]
pub(crate) enum Reply {
    Ok,
    Err(Code),
    Error(ConnectError),
    /// Waits, then answers.
    After(Duration, Box<Reply>),
}

impl Reply {
    pub(crate) fn after(delay: Duration, reply: Reply) -> Reply {
        Reply::After(delay, Box::new(reply))
    }
}

/// One call the mock saw.
#[derive(Clone, Debug)]
pub(crate) struct Seen {
    pub at: Instant,
    pub headers: HeaderMap,
    pub deadline: Option<Deadline>,
}

impl Seen {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub(crate) fn attempt(&self) -> Option<u32> {
        self.header(headers::ATTEMPT).and_then(|v| v.parse().ok())
    }
}

/// The test's side of a mock: script replies, read what was seen.
#[derive(Clone)]
pub(crate) struct MockHandle {
    script: Rc<RefCell<VecDeque<Reply>>>,
    seen: Rc<RefCell<Vec<Seen>>>,
}

impl MockHandle {
    pub(crate) fn push(&self, reply: Reply) {
        self.script.borrow_mut().push_back(reply);
    }

    pub(crate) fn calls(&self) -> usize {
        self.seen.borrow().len()
    }

    pub(crate) fn seen(&self) -> Vec<Seen> {
        self.seen.borrow().clone()
    }
}

/// A mock inner service: records each call, answers from its script.
#[derive(Clone)]
pub(crate) struct Mock<R> {
    runtime: R,
    handle: MockHandle,
    fallback: Reply,
}

impl<R: Runtime> Service<Request<Bytes>> for Mock<R> {
    type Response = Response<Bytes>;
    type Error = ConnectError;
    type Future = LocalBoxFuture<'static, Result<Response<Bytes>, ConnectError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), ConnectError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Bytes>) -> Self::Future {
        self.handle.seen.borrow_mut().push(Seen {
            at: self.runtime.now(),
            headers: req.headers().clone(),
            deadline: req.extensions().get::<Deadline>().copied(),
        });
        let reply = self
            .handle
            .script
            .borrow_mut()
            .pop_front()
            .unwrap_or_else(|| self.fallback.clone());
        let runtime = self.runtime.clone();
        Box::pin(async move { answer(&runtime, reply).await })
    }
}

/// A mock inner service. `fallback` answers once the script runs out.
pub(crate) fn mock<R: Runtime>(runtime: R, fallback: Reply) -> (MockHandle, Mock<R>) {
    let handle = MockHandle {
        script: Rc::default(),
        seen: Rc::default(),
    };
    (
        handle.clone(),
        Mock {
            runtime,
            handle,
            fallback,
        },
    )
}

async fn answer<R: Runtime>(
    runtime: &R,
    mut reply: Reply,
) -> Result<Response<Bytes>, ConnectError> {
    loop {
        match reply {
            Reply::Ok => return Ok(Response::new(Bytes::from_static(b"ok"))),
            Reply::Err(code) => return Err(ConnectError::new(code, "scripted failure")),
            Reply::Error(e) => return Err(e),
            Reply::After(delay, next) => {
                runtime.sleep(delay).await;
                reply = *next;
            }
        }
    }
}

/// A request for `method`, with an optional absolute deadline.
pub(crate) fn request(method: MethodDescriptor, deadline: Option<Deadline>) -> Request<Bytes> {
    let mut req = Request::post(method.path())
        .body(Bytes::from_static(b"payload"))
        .unwrap_or_default();
    req.extensions_mut().insert(method);
    if let Some(d) = deadline {
        req.extensions_mut().insert(d);
    }
    req
}

/// An error with `workmesh-retry-pushback-ms` metadata.
pub(crate) fn pushback(code: Code, value: &str) -> ConnectError {
    let mut e = ConnectError::new(code, "pushed back");
    if let Ok(v) = http::HeaderValue::from_str(value) {
        e.metadata.insert(headers::RETRY_PUSHBACK_MS, v);
    }
    e
}

/// Calls `service` once it is ready.
pub(crate) async fn call<S>(
    service: &mut S,
    req: Request<Bytes>,
) -> Result<Response<Bytes>, ConnectError>
where
    S: Service<Request<Bytes>, Response = Response<Bytes>, Error = ConnectError>,
{
    use tower::ServiceExt;
    service.ready().await?.call(req).await
}

/// A minimal `tracing` subscriber that keeps `(target, message)` of every
/// event, to assert that transitions and injected faults are reported.
#[derive(Clone, Default)]
pub(crate) struct Events(std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>);

thread_local! {
    static RECORDING: std::cell::RefCell<Option<Events>> = const { std::cell::RefCell::new(None) };
}

/// Restores the thread's previous recorder on drop.
pub(crate) struct EventsGuard(Option<Events>);

impl Drop for EventsGuard {
    fn drop(&mut self) {
        let previous = self.0.take();
        RECORDING.with(|r| *r.borrow_mut() = previous);
    }
}

impl Events {
    /// Records this thread's events until the guard drops.
    ///
    /// The subscriber is process-global (installed once) and forwards to the
    /// recorder of the calling thread. A per-thread `set_default` subscriber
    /// was flaky: a test on another thread could cache a callsite's interest
    /// as "never" while this one was installing, and its events were lost.
    pub(crate) fn install() -> (Events, EventsGuard) {
        static GLOBAL: std::sync::Once = std::sync::Once::new();
        GLOBAL.call_once(|| {
            // Fails only if something else set one first; then nothing records.
            let _ = tracing::subscriber::set_global_default(Recorder);
        });
        let events = Events::default();
        let previous = RECORDING.with(|r| r.borrow_mut().replace(events.clone()));
        (events, EventsGuard(previous))
    }

    pub(crate) fn messages(&self, target: &str) -> Vec<String> {
        let events = self.0.lock().unwrap_or_else(|e| e.into_inner());
        events
            .iter()
            .filter(|(t, _)| t == target)
            .map(|(_, m)| m.clone())
            .collect()
    }
}

struct Recorder;

impl tracing::Subscriber for Recorder {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        struct Message(String);
        impl tracing::field::Visit for Message {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    self.0 = format!("{value:?}");
                }
            }
        }
        let mut message = Message(String::new());
        event.record(&mut message);
        let target = event.metadata().target().to_owned();
        RECORDING.with(|r| {
            if let Some(events) = r.borrow().as_ref() {
                let mut events = events.0.lock().unwrap_or_else(|e| e.into_inner());
                events.push((target, message.0));
            }
        });
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}
