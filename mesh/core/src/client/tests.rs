//! The typed client against the router in process, and against a capturing
//! transport to check what it puts on the wire.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT_ENCODING, CONTENT_TYPE};
use http::{HeaderValue, StatusCode};
use prost::Message as _;

use super::*;
use crate::message::IntoRequest;
use crate::protocol::error_to_json;
use crate::server::{serve_unary, Router};
use crate::testing::{FnService, Ping};
use crate::{Deadline, ErrorDetail, Idempotency, Instant, TokioRuntime};

const SERVICE: &str = "test.v1.PingService";

static METHODS: [MethodDescriptor; 4] = [
    MethodDescriptor {
        service: SERVICE,
        method: "Echo",
        idempotency: Idempotency::Unknown,
    },
    MethodDescriptor {
        service: SERVICE,
        method: "Fail",
        idempotency: Idempotency::Unknown,
    },
    MethodDescriptor {
        service: SERVICE,
        method: "Slow",
        idempotency: Idempotency::Unknown,
    },
    MethodDescriptor {
        service: SERVICE,
        method: "Big",
        idempotency: Idempotency::NoSideEffects,
    },
];
static ECHO: &MethodDescriptor = &METHODS[0];
static FAIL: &MethodDescriptor = &METHODS[1];
static SLOW: &MethodDescriptor = &METHODS[2];
static BIG: &MethodDescriptor = &METHODS[3];

fn router(runtime: TokioRuntime) -> Router {
    Router::new().add(FnService::new(SERVICE, &METHODS, move |method, call| {
        let runtime = runtime.clone();
        async move {
            if method.method == "Slow" {
                runtime.sleep(Duration::from_millis(200)).await;
            }
            serve_unary(call, move |request: Request<Ping>| async move {
                if method.method == "Fail" {
                    let mut error = ConnectError::new(Code::FailedPrecondition, "out of stock")
                        .with_detail(ErrorDetail {
                            type_name: "shop.v1.Stock".into(),
                            value: Bytes::from_static(b"\x08\x03"),
                        });
                    error
                        .metadata
                        .insert("x-retry-after", HeaderValue::from_static("5"));
                    return Err(error);
                }
                let text = if method.method == "Big" {
                    "z".repeat(10_000)
                } else {
                    request.get_ref().text.clone()
                };
                let tenant = request
                    .metadata()
                    .get("x-tenant")
                    .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
                let mut response = Response::new(Ping {
                    text,
                    number: request.get_ref().number * 2,
                    tags: tenant.into_iter().collect(),
                });
                response
                    .metadata_mut()
                    .insert("x-served-by", HeaderValue::from_static("ping"));
                Ok(response)
            })
            .await
        }
    }))
}

/// The brief's in-memory transport: the router itself behind `service_fn`.
/// It does not follow the transport contract (non-200 is `Ok`); the client
/// must cope.
fn service_fn_transport(runtime: TokioRuntime) -> impl Transport {
    let router = Rc::new(router(runtime.clone()));
    tower::service_fn(move |request: http::Request<Bytes>| {
        let router = Rc::clone(&router);
        let runtime = runtime.clone();
        async move { Ok::<_, ConnectError>(router.handle(&runtime, request).await) }
    })
}

fn ping(text: &str, number: i32) -> Ping {
    Ping {
        text: text.into(),
        number,
        tags: vec![],
    }
}

#[tokio::test]
async fn both_encodings_round_trip_with_metadata() {
    let runtime = TokioRuntime::default();
    for encoding in [Encoding::Proto, Encoding::Json] {
        let client = Client::new(service_fn_transport(runtime.clone())).with_encoding(encoding);
        let mut request = ping("hello", 21).into_request();
        request
            .metadata_mut()
            .insert("x-tenant", HeaderValue::from_static("acme"));
        let response: Response<Ping> = client.unary(ECHO, request).await.expect("call");
        assert_eq!(
            response.get_ref(),
            &Ping {
                text: "hello".into(),
                number: 42,
                tags: vec!["acme".into()]
            },
            "{encoding:?}"
        );
        assert_eq!(response.metadata()["x-served-by"], "ping");
        assert_eq!(response.metadata()[CONTENT_TYPE], encoding.content_type());
    }
}

fn assert_stock_error(result: Result<Response<Ping>, ConnectError>) {
    let error = result.expect_err("must fail");
    assert_eq!(error.code, Code::FailedPrecondition);
    assert_eq!(error.message, "out of stock");
    assert_eq!(
        error.details,
        vec![ErrorDetail {
            type_name: "shop.v1.Stock".into(),
            value: Bytes::from_static(b"\x08\x03")
        }]
    );
    assert_eq!(error.metadata["x-retry-after"], "5");
}

#[tokio::test]
async fn errors_round_trip_with_details_and_metadata() {
    let runtime = TokioRuntime::default();
    let client = Client::new(service_fn_transport(runtime.clone()));
    assert_stock_error(client.unary(FAIL, Request::new(ping("", 0))).await);

    let transport = RouterTransport::new(router(runtime.clone()), runtime);
    let client = Client::new(transport).with_encoding(Encoding::Json);
    assert_stock_error(client.unary(FAIL, Request::new(ping("", 0))).await);
}

#[tokio::test]
async fn router_transport_keeps_the_transport_contract() {
    let runtime = TokioRuntime::default();
    let mut transport = RouterTransport::new(router(runtime.clone()), runtime);
    let request = http::Request::builder()
        .method("POST")
        .uri("/nope.v1.S/M")
        .header(CONTENT_TYPE, "application/proto")
        .body(Bytes::new())
        .expect("request");
    let error = transport
        .ready()
        .await
        .expect("ready")
        .call(request)
        .await
        .expect_err("404 is an error");
    assert_eq!(error.code, Code::Unimplemented);
    assert_eq!(error.metadata[CONTENT_TYPE], "application/json");
}

#[tokio::test]
async fn gzipped_responses_are_inflated() {
    let runtime = TokioRuntime::default();
    let client = Client::new(RouterTransport::new(router(runtime.clone()), runtime));
    let response: Response<Ping> = client
        .unary(BIG, Request::new(ping("", 1)))
        .await
        .expect("call");
    assert_eq!(
        response.metadata()["content-encoding"],
        "gzip",
        "the router compressed it"
    );
    assert_eq!(response.get_ref().text.len(), 10_000);

    let small_limit = client.clone().max_message_bytes(1000);
    let error = small_limit
        .unary::<Ping, Ping>(BIG, Request::new(ping("", 1)))
        .await
        .expect_err("too big");
    assert_eq!(error.code, Code::ResourceExhausted);
}

#[tokio::test(start_paused = true)]
async fn with_timeout_reaches_the_server_as_a_deadline() {
    let runtime = TokioRuntime::default();
    let client = Client::new(RouterTransport::new(
        router(runtime.clone()),
        runtime.clone(),
    ));
    let start = runtime.now();
    let request = Request::new(ping("", 1)).with_timeout(Duration::from_millis(80));
    let error = client
        .unary::<Ping, Ping>(SLOW, request)
        .await
        .expect_err("too slow");
    assert_eq!(error.code, Code::DeadlineExceeded);
    assert_eq!(
        runtime.now().saturating_duration_since(start),
        Duration::from_millis(80)
    );

    let request = Request::new(ping("", 1)).with_timeout(Duration::from_millis(300));
    assert!(client.unary::<Ping, Ping>(SLOW, request).await.is_ok());
}

type Seen = Rc<RefCell<Vec<http::Request<Bytes>>>>;

/// Records each request and answers with `reply`.
fn capturing(reply: fn() -> http::Response<Bytes>) -> (impl Transport, Seen) {
    let seen: Seen = Rc::default();
    let log = Rc::clone(&seen);
    let transport = tower::service_fn(move |request: http::Request<Bytes>| {
        log.borrow_mut().push(request);
        std::future::ready(Ok::<_, ConnectError>(reply()))
    });
    (transport, seen)
}

fn proto_reply() -> http::Response<Bytes> {
    let mut response = http::Response::new(Bytes::from(ping("ok", 1).encode_to_vec()));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/proto"));
    response
}

#[tokio::test]
async fn the_wire_request_carries_headers_and_extensions() {
    let (transport, seen) = capturing(proto_reply);
    let client = Client::new(transport);
    let deadline = Deadline(Instant::from_epoch(Duration::from_secs(9)));
    let mut request = Request::new(ping("x", 1))
        .with_deadline(Some(deadline))
        .with_timeout(Duration::from_micros(2500));
    request
        .metadata_mut()
        .insert("x-tenant", HeaderValue::from_static("acme"));
    request
        .metadata_mut()
        .insert("content-length", HeaderValue::from_static("999"));
    request.extensions_mut().insert(7u32);
    let response: Response<Ping> = client.unary(ECHO, request).await.expect("call");
    assert_eq!(response.get_ref().text, "ok");

    let seen = seen.borrow();
    let wire = seen.first().expect("one request");
    assert_eq!(wire.method(), http::Method::POST);
    assert_eq!(wire.uri().path(), "/test.v1.PingService/Echo");
    assert_eq!(wire.headers()[CONTENT_TYPE], "application/proto");
    assert_eq!(wire.headers()["connect-protocol-version"], "1");
    assert_eq!(wire.headers()["connect-timeout-ms"], "3", "rounded up");
    assert_eq!(wire.headers()[ACCEPT_ENCODING], "gzip");
    assert_eq!(wire.headers()["x-tenant"], "acme");
    assert!(
        !wire.headers().contains_key("content-length"),
        "body headers are the transport's"
    );
    assert_eq!(wire.extensions().get::<MethodDescriptor>(), Some(ECHO));
    assert_eq!(wire.extensions().get::<Deadline>(), Some(&deadline));
    assert_eq!(wire.extensions().get::<u32>(), Some(&7));
    assert_eq!(Ping::decode(&wire.body()[..]).expect("body"), ping("x", 1));
}

#[tokio::test]
async fn no_timeout_header_without_with_timeout() {
    let (transport, seen) = capturing(proto_reply);
    let deadline = Deadline(Instant::from_epoch(Duration::from_secs(1)));
    let request = Request::new(ping("x", 1)).with_deadline(Some(deadline));
    Client::new(transport)
        .unary::<Ping, Ping>(ECHO, request)
        .await
        .expect("call");
    let seen = seen.borrow();
    assert!(
        !seen[0].headers().contains_key("connect-timeout-ms"),
        "the deadline layer writes it, not the client"
    );
}

#[tokio::test]
async fn unreadable_responses_are_internal() {
    fn wrong_type() -> http::Response<Bytes> {
        let mut response = proto_reply();
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("text/html"));
        response
    }
    fn garbage() -> http::Response<Bytes> {
        let mut response = http::Response::new(Bytes::from_static(b"\xff\xff\xff"));
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/proto"));
        response
    }
    fn proxy_error() -> http::Response<Bytes> {
        let mut response = http::Response::new(Bytes::from_static(b"<html>bad gateway</html>"));
        *response.status_mut() = StatusCode::BAD_GATEWAY;
        response
    }
    fn connect_error_body() -> http::Response<Bytes> {
        let mut response =
            http::Response::new(error_to_json(&ConnectError::unavailable("draining")));
        *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        response
    }
    for (reply, code) in [
        (wrong_type as fn() -> http::Response<Bytes>, Code::Internal),
        (garbage, Code::Internal),
        (proxy_error, Code::Unavailable),
        (connect_error_body, Code::Unavailable),
    ] {
        let (transport, _) = capturing(reply);
        let error = Client::new(transport)
            .unary::<Ping, Ping>(ECHO, Request::new(ping("", 0)))
            .await
            .expect_err("must fail");
        assert_eq!(error.code, code, "{error}");
    }
}

#[cfg(feature = "http-client")]
mod http_transport {
    use super::*;
    use wiremock::matchers::{header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    #[tokio::test]
    async fn http_transport_success_and_connect_errors() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/test.v1.PingService/Echo"))
            .and(header("content-type", "application/proto"))
            .and(header("connect-protocol-version", "1"))
            .respond_with(
                ResponseTemplate::new(200)
                    .insert_header("content-type", "application/proto")
                    .set_body_bytes(ping("pong", 2).encode_to_vec()),
            )
            .mount(&server)
            .await;
        let not_found = ConnectError::not_found("no such ping").with_detail(ErrorDetail {
            type_name: "a.B".into(),
            value: Bytes::from_static(b"\x01"),
        });
        Mock::given(method("POST"))
            .and(path("/test.v1.PingService/Fail"))
            .respond_with(
                ResponseTemplate::new(404)
                    .insert_header("content-type", "application/json")
                    .insert_header("x-trace", "t1")
                    .set_body_bytes(error_to_json(&not_found).to_vec()),
            )
            .mount(&server)
            .await;

        let client = Client::new(HttpTransport::new(format!("{}/", server.uri())));
        let response: Response<Ping> = client
            .unary(ECHO, Request::new(ping("ping", 1)))
            .await
            .expect("call");
        assert_eq!(response.get_ref().text, "pong");

        let error = client
            .unary::<Ping, Ping>(FAIL, Request::new(ping("", 0)))
            .await
            .expect_err("404");
        assert_eq!(error.code, Code::NotFound);
        assert_eq!(error.message, "no such ping");
        assert_eq!(error.details, not_found.details);
        assert_eq!(error.metadata["x-trace"], "t1");
    }

    #[tokio::test]
    async fn http_transport_connection_refused_is_unavailable() {
        // Bind then drop a listener so the port is (almost certainly) closed.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("address");
        drop(listener);
        let client = Client::new(HttpTransport::new(format!("http://{address}")));
        let error = client
            .unary::<Ping, Ping>(ECHO, Request::new(ping("", 0)))
            .await
            .expect_err("refused");
        assert_eq!(error.code, Code::Unavailable, "{error}");
    }
}
