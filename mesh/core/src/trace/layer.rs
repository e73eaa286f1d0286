//! The client trace layer: one CLIENT span per attempt, propagated to the
//! callee as `traceparent` / `tracestate`.
//!
//! It sits innermost in [`ClientStack`](crate::stack::ClientStack), just
//! above the transport, so every retry attempt is its own span (each a child
//! of the caller's current span) and the callee's SERVER span is a child of
//! the attempt that reached it. The parent comes from [`scope::current`];
//! with no current span (a call made outside any traced request) the request
//! is forwarded untouched.

use std::rc::Rc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};

use super::rpc::rpc_client_span;
use super::scope;
use super::span::SpanKind;
use crate::{ConnectError, LocalBoxFuture, MethodDescriptor};

/// Builds [`TraceService`]s.
#[derive(Clone, Debug, Default)]
pub struct TraceLayer {
    server_address: Option<Rc<str>>,
}

impl TraceLayer {
    pub fn new() -> Self {
        TraceLayer::default()
    }

    /// Records `server.address` (the callee as the caller names it: a
    /// binding or host name) on every span.
    pub fn with_server_address(mut self, address: impl Into<Rc<str>>) -> Self {
        self.server_address = Some(address.into());
        self
    }
}

impl<S> tower::Layer<S> for TraceLayer {
    type Service = TraceService<S>;
    fn layer(&self, inner: S) -> TraceService<S> {
        TraceService {
            inner,
            server_address: self.server_address.clone(),
        }
    }
}

/// Wraps each call in a CLIENT span under the current span.
#[derive(Clone, Debug)]
pub struct TraceService<S> {
    inner: S,
    server_address: Option<Rc<str>>,
}

impl<S> tower::Service<Request<Bytes>> for TraceService<S>
where
    S: tower::Service<Request<Bytes>, Response = Response<Bytes>, Error = ConnectError>,
    S::Future: 'static,
{
    type Response = Response<Bytes>;
    type Error = ConnectError;
    type Future = LocalBoxFuture<'static, Result<Response<Bytes>, ConnectError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ConnectError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<Bytes>) -> Self::Future {
        let Some(parent) = scope::current() else {
            return Box::pin(self.inner.call(request));
        };
        let method = request.extensions().get::<MethodDescriptor>().copied();
        let span = match method {
            Some(method) => rpc_client_span(
                parent.collector(),
                &method,
                Some(parent.context()),
                self.server_address.as_deref(),
            ),
            // Not a typed call: name the span by its path.
            None => parent.child(request.uri().path().to_owned(), SpanKind::Client),
        };
        let attempt = request
            .headers()
            .get(crate::context::headers::ATTEMPT)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse::<u32>().ok());
        if let Some(attempt) = attempt {
            span.set_attribute(super::rpc::attr::ATTEMPT, attempt);
        }
        span.context().inject(request.headers_mut());
        let future = self.inner.call(request);
        Box::pin(async move {
            let result = future.await;
            span.end_with(&result);
            result
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use tower::{Layer, ServiceExt};

    use super::*;
    use crate::testing::ManualRuntime;
    use crate::trace::context::{TraceContext, TRACEPARENT};
    use crate::trace::{rpc::attr, AttrValue, Sampler, SpanStatus, TraceCollector};
    use crate::{Code, Idempotency};

    static GET: MethodDescriptor = MethodDescriptor {
        service: "shop.v1.CatalogService",
        method: "GetProduct",
        idempotency: Idempotency::NoSideEffects,
    };

    /// A transport that answers `not_found` when told to, and hands back
    /// the `traceparent` it received in a response header.
    fn transport(
        fail: bool,
    ) -> impl tower::Service<
        Request<Bytes>,
        Response = Response<Bytes>,
        Error = ConnectError,
        Future = LocalBoxFuture<'static, Result<Response<Bytes>, ConnectError>>,
    > + Clone {
        tower::service_fn(move |request: Request<Bytes>| {
            let seen = request.headers().get(TRACEPARENT).cloned();
            Box::pin(async move {
                if fail {
                    return Err(ConnectError::not_found("no such product"));
                }
                let mut response = Response::new(Bytes::new());
                if let Some(seen) = seen {
                    response.headers_mut().insert(TRACEPARENT, seen);
                }
                Ok(response)
            }) as LocalBoxFuture<'static, _>
        })
    }

    fn typed_request() -> Request<Bytes> {
        let mut request = Request::new(Bytes::new());
        request.extensions_mut().insert(GET);
        request
    }

    fn attribute<'a>(span: &'a crate::trace::SpanData, key: &str) -> Option<&'a AttrValue> {
        span.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    #[tokio::test]
    async fn a_call_under_a_span_gets_a_client_child_and_propagates_it() {
        let runtime = ManualRuntime::default();
        let collector = TraceCollector::new(&runtime, Sampler::ratio(1.0));
        let server = collector.start_span("server", SpanKind::Server, None);
        let service = TraceLayer::new()
            .with_server_address("CATALOG")
            .layer(transport(false));
        let response = scope::in_span(server.handle(), service.oneshot(typed_request()))
            .await
            .unwrap();
        server.end();

        let spans = collector.drain();
        assert_eq!(spans.len(), 2);
        let client = &spans[1];
        assert_eq!(client.kind, SpanKind::Client);
        assert_eq!(client.name, "shop.v1.CatalogService/GetProduct");
        assert_eq!(client.parent_span_id, Some(spans[0].span_id));
        assert_eq!(client.trace_id, spans[0].trace_id);
        assert_eq!(
            attribute(client, attr::RPC_METHOD),
            Some(&AttrValue::from("GetProduct"))
        );
        assert_eq!(
            attribute(client, attr::SERVER_ADDRESS),
            Some(&AttrValue::from("CATALOG"))
        );
        // The callee's parent is the CLIENT span, not the server span.
        let sent = TraceContext::extract(response.headers()).unwrap();
        assert_eq!(sent.span_id, client.span_id);
        assert_eq!(sent.trace_id, client.trace_id);
    }

    #[tokio::test]
    async fn a_failed_call_records_its_connect_code() {
        let runtime = ManualRuntime::default();
        let collector = TraceCollector::new(&runtime, Sampler::ratio(1.0));
        let server = collector.start_span("server", SpanKind::Server, None);
        let service = TraceLayer::new().layer(transport(true));
        let error = scope::in_span(server.handle(), service.oneshot(typed_request()))
            .await
            .unwrap_err();
        assert_eq!(error.code, Code::NotFound);
        let spans = collector.drain();
        assert_eq!(
            attribute(&spans[1], attr::CONNECT_ERROR_CODE),
            Some(&AttrValue::from("not_found"))
        );
        assert!(matches!(spans[1].status, SpanStatus::Error { .. }));
    }

    #[tokio::test]
    async fn without_a_current_span_the_request_is_untouched() {
        let service = TraceLayer::new().layer(transport(false));
        let response = service.oneshot(typed_request()).await.unwrap();
        assert!(response.headers().get(TRACEPARENT).is_none());
    }
}
