//! A gateway router forwarding to an upstream router in-process: what the
//! caller sends is what the upstream sees, and what the upstream answers is
//! what the caller gets.

#![allow(clippy::unwrap_used)]

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT_ENCODING, ALLOW, AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use prost::Message as _;
use tower::Layer;

use super::*;
use crate::client::RouterTransport;
use crate::config::ResilienceConfig;
use crate::message::{Request, Response};
use crate::protocol::{error_from_json, gzip, query, Encoding};
use crate::server::{serve_unary, Router};
use crate::stack::ClientStack;
use crate::testing::{FnService, Ping};
use crate::{breaker, Code, ErrorDetail, Idempotency, Runtime, TokioRuntime};

const SERVICE: &str = "test.v1.PingService";

const fn method(name: &'static str, idempotency: Idempotency) -> MethodDescriptor {
    MethodDescriptor {
        service: SERVICE,
        method: name,
        idempotency,
    }
}

static METHODS: [MethodDescriptor; 4] = [
    method("Echo", Idempotency::Unknown),
    method("Get", Idempotency::NoSideEffects),
    method("Fail", Idempotency::Unknown),
    method("Slow", Idempotency::NoSideEffects),
];

/// What the upstream saw of each call.
#[derive(Clone, Debug)]
struct Seen {
    method: &'static str,
    http_headers: HeaderMap,
}

/// Echo/Get answer `text` and `number + 1`; Fail fails with a detail and
/// metadata; Slow sleeps 200 ms. Every call is recorded.
fn upstream(runtime: TokioRuntime, seen: Rc<RefCell<Vec<Seen>>>) -> Router {
    Router::new().add(FnService::new(SERVICE, &METHODS, move |method, call| {
        seen.borrow_mut().push(Seen {
            method: method.method,
            http_headers: call.metadata().clone(),
        });
        let runtime = runtime.clone();
        async move {
            if method.method == "Slow" {
                runtime.sleep(Duration::from_millis(200)).await;
            }
            serve_unary(call, move |request: Request<Ping>| async move {
                if method.method == "Fail" {
                    let mut error =
                        ConnectError::not_found("no such ping").with_detail(ErrorDetail {
                            type_name: "test.v1.Missing".into(),
                            value: Bytes::from_static(b"\x08\x07"),
                        });
                    error
                        .metadata
                        .insert("x-reason", HeaderValue::from_static("gone"));
                    error
                        .metadata
                        .insert("set-cookie", HeaderValue::from_static("sid=err"));
                    return Err(error);
                }
                let mut response = Response::new(Ping {
                    text: request.get_ref().text.clone(),
                    number: request.get_ref().number + 1,
                    tags: vec![],
                });
                let metadata = response.metadata_mut();
                metadata.insert("x-served-by", HeaderValue::from_static("upstream"));
                // Hop-by-hop for the upstream's own connection, and a
                // cookie the edge domain must not receive by default.
                metadata.insert("connection", HeaderValue::from_static("x-upstream-hop"));
                metadata.insert("x-upstream-hop", HeaderValue::from_static("1"));
                metadata.insert("set-cookie", HeaderValue::from_static("sid=internal"));
                Ok(response)
            })
            .await
        }
    }))
}

struct Fixture {
    gateway: Router,
    runtime: TokioRuntime,
    seen: Rc<RefCell<Vec<Seen>>>,
}

impl Fixture {
    /// The upstream behind the full client stack (deadlines, retries, …).
    fn new(token: Option<&str>) -> Self {
        Self::with_cookies(token, false)
    }

    /// [`new`](Self::new), with [`Forward::forward_cookies`] set to `cookies`.
    fn with_cookies(token: Option<&str>, cookies: bool) -> Self {
        let runtime = TokioRuntime::default();
        let seen = Rc::new(RefCell::new(Vec::new()));
        let transport =
            RouterTransport::new(upstream(runtime.clone(), seen.clone()), runtime.clone());
        let stack = ClientStack::new(
            runtime.clone(),
            Rc::new(ResilienceConfig::default()),
            SERVICE,
        );
        let mut forward =
            Forward::new(SERVICE, &METHODS, stack.layer(transport)).forward_cookies(cookies);
        if let Some(token) = token {
            forward = forward.with_bearer_token(token);
        }
        Fixture {
            gateway: Router::new().add(forward),
            runtime,
            seen,
        }
    }

    async fn send(&self, request: http::Request<Bytes>) -> http::Response<Bytes> {
        self.gateway.handle(&self.runtime, request).await
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.borrow().clone()
    }
}

fn ping(text: &str) -> Ping {
    Ping {
        text: text.into(),
        number: 41,
        tags: vec![],
    }
}

fn post(path: &str, content_type: &str) -> http::request::Builder {
    http::Request::builder()
        .method(Method::POST)
        .uri(path)
        .header(CONTENT_TYPE, content_type)
}

fn json_call(path: &str, json: &str) -> http::Request<Bytes> {
    post(path, "application/json")
        .body(Bytes::from(json.to_owned()))
        .unwrap()
}

fn error_of(response: &http::Response<Bytes>) -> ConnectError {
    error_from_json(response.body()).expect("a Connect error body")
}

#[tokio::test(start_paused = true)]
async fn forwards_json_and_proto_bodies_untouched_in_the_callers_encoding() {
    let fixture = Fixture::new(None);

    let response = fixture
        .send(json_call(
            "/test.v1.PingService/Echo",
            r#"{"text":"hi","number":1}"#,
        ))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
    assert_eq!(response.headers()["x-served-by"], "upstream");
    let reply: Ping = serde_json::from_slice(response.body()).unwrap();
    assert_eq!((reply.text.as_str(), reply.number), ("hi", 2));

    let request = post("/test.v1.PingService/Echo", "application/proto")
        .body(Bytes::from(ping("proto").encode_to_vec()))
        .unwrap();
    let response = fixture.send(request).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[CONTENT_TYPE], "application/proto");
    let reply = Ping::decode(response.body().clone()).unwrap();
    assert_eq!((reply.text.as_str(), reply.number), ("proto", 42));

    let seen = fixture.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].http_headers[CONTENT_TYPE], "application/json");
    assert_eq!(seen[1].http_headers[CONTENT_TYPE], "application/proto");
}

#[tokio::test(start_paused = true)]
async fn forwards_application_headers_but_not_hop_by_hop_ones() {
    let fixture = Fixture::new(None);
    let request = post("/test.v1.PingService/Echo", "application/json")
        .header("x-tenant", "acme")
        .header("connection", "keep-alive")
        .header(ACCEPT_ENCODING, "gzip")
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .header(AUTHORIZATION, "Bearer caller-credential")
        .body(Bytes::from_static(b"{}"))
        .unwrap();
    let response = fixture.send(request).await;
    assert_eq!(response.status(), StatusCode::OK);
    let seen = &fixture.seen()[0].http_headers;
    assert_eq!(seen["x-tenant"], "acme");
    // With no token configured, the caller's credentials are the upstream's business.
    assert_eq!(seen[AUTHORIZATION], "Bearer caller-credential");
    assert_eq!(seen["connect-protocol-version"], "1");
    for dropped in [
        "connection",
        "accept-encoding",
        "traceparent",
        "connect-timeout-ms",
    ] {
        assert!(seen.get(dropped).is_none(), "{dropped} was forwarded");
    }
}

#[tokio::test(start_paused = true)]
async fn a_gzipped_request_is_forwarded_plain_and_the_answer_recompressed_for_the_caller() {
    let fixture = Fixture::new(None);
    let text = "y".repeat(4096);
    let body = gzip::compress(&Bytes::from(ping(&text).encode_to_vec())).unwrap();
    let request = post("/test.v1.PingService/Echo", "application/proto")
        .header(CONTENT_ENCODING, "gzip")
        .header(ACCEPT_ENCODING, "gzip")
        .body(body)
        .unwrap();
    let response = fixture.send(request).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[CONTENT_ENCODING], "gzip");
    let plain = gzip::decompress(response.body(), 1 << 20).unwrap();
    assert_eq!(Ping::decode(plain).unwrap().text, text);
    assert!(fixture.seen()[0]
        .http_headers
        .get(CONTENT_ENCODING)
        .is_none());
}

#[tokio::test(start_paused = true)]
async fn get_works_for_no_side_effects_methods_only() {
    let fixture = Fixture::new(None);
    let query = query::encode_get(Encoding::Json, br#"{"text":"via get"}"#);
    let request = http::Request::builder()
        .method(Method::GET)
        .uri(format!("/test.v1.PingService/Get?{query}"))
        .body(Bytes::new())
        .unwrap();
    let response = fixture.send(request).await;
    assert_eq!(response.status(), StatusCode::OK, "{:?}", response.body());
    let reply: Ping = serde_json::from_slice(response.body()).unwrap();
    assert_eq!(reply.text, "via get");
    assert_eq!(fixture.seen()[0].method, "Get");

    let request = http::Request::builder()
        .method(Method::GET)
        .uri(format!("/test.v1.PingService/Echo?{query}"))
        .body(Bytes::new())
        .unwrap();
    let response = fixture.send(request).await;
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.headers()[ALLOW], "POST");
    assert_eq!(
        fixture.seen().len(),
        1,
        "a refused GET never reaches the upstream"
    );
}

#[tokio::test(start_paused = true)]
async fn unknown_services_and_methods_are_unimplemented_without_forwarding() {
    let fixture = Fixture::new(None);
    for path in ["/test.v1.PingService/Nope", "/test.v1.Other/Echo"] {
        let response = fixture.send(json_call(path, "{}")).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        assert_eq!(error_of(&response).code, Code::Unimplemented, "{path}");
    }
    assert!(fixture.seen().is_empty());
}

#[tokio::test(start_paused = true)]
async fn upstream_errors_pass_through_with_code_details_and_metadata() {
    let fixture = Fixture::new(None);
    let response = fixture
        .send(json_call("/test.v1.PingService/Fail", "{}"))
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(response.headers()["x-reason"], "gone");
    let error = error_of(&response);
    assert_eq!(error.code, Code::NotFound);
    assert_eq!(error.message, "no such ping");
    assert_eq!(error.details.len(), 1);
    assert_eq!(error.details[0].type_name, "test.v1.Missing");
    assert_eq!(error.details[0].value, Bytes::from_static(b"\x08\x07"));
    // Not retried: a non-idempotent method, and not_found is final anyway.
    assert_eq!(fixture.seen().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn the_callers_timeout_shrinks_downstream_and_is_enforced() {
    let fixture = Fixture::new(None);
    let request = post("/test.v1.PingService/Echo", "application/json")
        .header("connect-timeout-ms", "500")
        .body(Bytes::from_static(b"{}"))
        .unwrap();
    let response = fixture.send(request).await;
    assert_eq!(response.status(), StatusCode::OK);
    let sent: u64 = fixture.seen()[0].http_headers["connect-timeout-ms"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(sent > 0 && sent <= 500, "forwarded timeout {sent} ms");

    let start = fixture.runtime.now();
    let request = post("/test.v1.PingService/Slow", "application/json")
        .header("connect-timeout-ms", "50")
        .body(Bytes::from_static(b"{}"))
        .unwrap();
    let response = fixture.send(request).await;
    assert_eq!(error_of(&response).code, Code::DeadlineExceeded);
    let waited = fixture.runtime.now().saturating_duration_since(start);
    assert!(waited <= Duration::from_millis(60), "waited {waited:?}");
}

#[tokio::test(start_paused = true)]
async fn a_configured_token_is_required_and_not_forwarded() {
    let fixture = Fixture::new(Some("s3cret"));
    let call = |auth: Option<&str>| {
        let mut builder = post("/test.v1.PingService/Echo", "application/json");
        if let Some(auth) = auth {
            builder = builder.header(AUTHORIZATION, auth);
        }
        builder.body(Bytes::from_static(b"{}")).unwrap()
    };
    for auth in [
        None,
        Some("Bearer wrong"),
        Some("Basic s3cret"),
        Some("Bearer s3cre"),
    ] {
        let response = fixture.send(call(auth)).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{auth:?}");
        assert_eq!(error_of(&response).code, Code::Unauthenticated);
    }
    assert!(fixture.seen().is_empty());

    let response = fixture.send(call(Some("bearer s3cret"))).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(fixture.seen()[0].http_headers.get(AUTHORIZATION).is_none());
    // An empty token leaves the edge open.
    let open = Forward::new(
        SERVICE,
        &METHODS,
        RouterTransport::new(Router::new(), fixture.runtime.clone()),
    )
    .with_bearer_token("");
    assert!(!format!("{open:?}").contains("token: true"));
}

#[tokio::test(start_paused = true)]
async fn headers_named_by_connection_are_hop_by_hop_in_both_directions() {
    let fixture = Fixture::new(None);
    let request = post("/test.v1.PingService/Echo", "application/json")
        .header("x-tenant", "acme")
        .header("connection", "X-Hop, keep-alive")
        .header("connection", " x-other-hop ,, not a header name")
        .header("x-hop", "1")
        .header("x-other-hop", "2")
        .header("keep-alive", "timeout=5")
        .body(Bytes::from_static(b"{}"))
        .unwrap();
    let response = fixture.send(request).await;
    assert_eq!(response.status(), StatusCode::OK);
    let seen = &fixture.seen()[0].http_headers;
    assert_eq!(seen["x-tenant"], "acme");
    for dropped in ["connection", "x-hop", "x-other-hop", "keep-alive"] {
        assert!(seen.get(dropped).is_none(), "{dropped} was forwarded");
    }
    // The upstream's response named `x-upstream-hop` in its `Connection`.
    assert_eq!(response.headers()["x-served-by"], "upstream");
    assert!(response.headers().get("x-upstream-hop").is_none());
    assert!(response.headers().get("connection").is_none());
}

#[tokio::test(start_paused = true)]
async fn cookies_stay_at_the_edge_unless_enabled() {
    let call = || {
        post("/test.v1.PingService/Echo", "application/json")
            .header("cookie", "session=edge-secret")
            .body(Bytes::from_static(b"{}"))
            .unwrap()
    };
    let closed = Fixture::new(None);
    let response = closed.send(call()).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(closed.seen()[0].http_headers.get("cookie").is_none());
    assert!(response.headers().get("set-cookie").is_none());
    let failed = closed
        .send(json_call("/test.v1.PingService/Fail", "{}"))
        .await;
    assert_eq!(failed.headers()["x-reason"], "gone");
    assert!(failed.headers().get("set-cookie").is_none());

    let open = Fixture::with_cookies(None, true);
    let response = open.send(call()).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(open.seen()[0].http_headers["cookie"], "session=edge-secret");
    assert_eq!(response.headers()["set-cookie"], "sid=internal");
    let failed = open
        .send(json_call("/test.v1.PingService/Fail", "{}"))
        .await;
    assert_eq!(failed.headers()["set-cookie"], "sid=err");
}

/// A transport that fails every call before any upstream answers, as a
/// Workers transport does when its fetch fails; counts the calls.
#[derive(Clone)]
struct Failing {
    error: ConnectError,
    calls: Rc<Cell<usize>>,
}

impl tower::Service<http::Request<Bytes>> for Failing {
    type Response = http::Response<Bytes>;
    type Error = ConnectError;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), ConnectError>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, _request: http::Request<Bytes>) -> Self::Future {
        self.calls.set(self.calls.get() + 1);
        let error = self.error.clone();
        Box::pin(async move { Err(error) })
    }
}

#[tokio::test(start_paused = true)]
async fn local_failures_keep_their_code_but_not_their_internal_message() {
    let runtime = TokioRuntime::default();
    let mut shed = ConnectError::resource_exhausted("load shed: 64 calls in flight, limit 64");
    shed.metadata
        .insert("workmesh-internal-mark", HeaderValue::from_static("1"));
    for (error, status) in [
        (
            ConnectError::unavailable(
                "service binding CATALOG: fetch failed: https://catalog.internal/ refused",
            ),
            StatusCode::SERVICE_UNAVAILABLE,
        ),
        (shed, StatusCode::TOO_MANY_REQUESTS),
        (
            ConnectError::internal("service binding CATALOG is not configured"),
            StatusCode::INTERNAL_SERVER_ERROR,
        ),
    ] {
        let code = error.code;
        let transport = Failing {
            error,
            calls: Rc::default(),
        };
        let gateway = Router::new().add(Forward::new(SERVICE, &METHODS, transport));
        let response = gateway
            .handle(&runtime, json_call("/test.v1.PingService/Echo", "{}"))
            .await;
        assert_eq!(response.status(), status);
        assert!(response.headers().get("workmesh-internal-mark").is_none());
        let seen = error_of(&response);
        assert_eq!(seen.code, code);
        assert_eq!(seen.message, generic_message(code));
        assert!(!seen.message.contains("CATALOG") && !seen.message.contains("load shed"));
    }
}

#[tokio::test(start_paused = true)]
async fn an_open_breakers_fast_failure_is_generic_too() {
    let runtime = TokioRuntime::default();
    let calls = Rc::new(Cell::new(0));
    let transport = Failing {
        error: ConnectError::unavailable("service binding CATALOG: fetch failed: refused"),
        calls: calls.clone(),
    };
    let stack = ClientStack::new(
        runtime.clone(),
        Rc::new(ResilienceConfig::default()),
        SERVICE,
    );
    let gateway = Router::new().add(Forward::new(SERVICE, &METHODS, stack.layer(transport)));
    // `Get` has no side effects: retried, so the breaker trips within a few calls.
    let mut last = None;
    for _ in 0..10 {
        let response = gateway
            .handle(&runtime, json_call("/test.v1.PingService/Get", "{}"))
            .await;
        last = Some(error_of(&response));
    }
    let sent = calls.get();
    let response = gateway
        .handle(&runtime, json_call("/test.v1.PingService/Get", "{}"))
        .await;
    assert_eq!(calls.get(), sent, "the breaker is open: nothing was sent");
    for error in [last.unwrap(), error_of(&response)] {
        assert_eq!(error.code, Code::Unavailable);
        assert_eq!(error.message, "the upstream service is unavailable");
    }
    assert!(response.headers().get(breaker::REJECTED_MARK).is_none());
}

#[tokio::test(start_paused = true)]
async fn an_upstream_unavailable_passes_through_unchanged() {
    let runtime = TokioRuntime::default();
    let upstream = Router::new().add(FnService::new(SERVICE, &METHODS, |_, call| {
        serve_unary(call, |_: Request<Ping>| async move {
            Err::<Response<Ping>, _>(ConnectError::unavailable("catalog is reindexing"))
        })
    }));
    let transport = RouterTransport::new(upstream, runtime.clone());
    let gateway = Router::new().add(Forward::new(SERVICE, &METHODS, transport));
    let response = gateway
        .handle(&runtime, json_call("/test.v1.PingService/Echo", "{}"))
        .await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let error = error_of(&response);
    assert_eq!(error.code, Code::Unavailable);
    assert_eq!(error.message, "catalog is reindexing");
}
