//! Router behaviour, driven with hand-built requests against a hand-written
//! service (no generated code).

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http::header::{ACCEPT_ENCODING, ALLOW, CONTENT_ENCODING, CONTENT_TYPE};
use http::{HeaderValue, Method, StatusCode};
use proptest::prelude::*;
use prost::Message as _;

use super::*;
use crate::message::{Request, Response};
use crate::protocol::{error_from_json, gzip, query};
use crate::testing::{FnService, Ping};
use crate::{
    Code, ConnectError, Deadline, ErrorDetail, Idempotency, MethodDescriptor, Runtime, TokioRuntime,
};

const SERVICE: &str = "test.v1.PingService";

const fn method(name: &'static str, idempotency: Idempotency) -> MethodDescriptor {
    MethodDescriptor {
        service: SERVICE,
        method: name,
        idempotency,
    }
}

static METHODS: [MethodDescriptor; 6] = [
    method("Echo", Idempotency::Unknown),
    method("Get", Idempotency::NoSideEffects),
    method("Fail", Idempotency::Idempotent),
    method("Slow", Idempotency::Unknown),
    method("Panic", Idempotency::Unknown),
    method("Big", Idempotency::NoSideEffects),
];

/// Echo and Get answer `text` back, `number + 1`, the `x-tenant` header and
/// the remaining budget (ms) as tags; Slow sleeps 200 ms first; Fail fails
/// with details and metadata; Big answers 8 KiB of text.
fn ping_service(runtime: TokioRuntime, calls: Rc<Cell<usize>>) -> FnService {
    FnService::new(SERVICE, &METHODS, move |method, call| {
        calls.set(calls.get() + 1);
        let runtime = runtime.clone();
        async move {
            if method.method == "Slow" {
                runtime.sleep(Duration::from_millis(200)).await;
            }
            if method.method == "Panic" {
                panic!("handler bug");
            }
            serve_unary(call, move |request: Request<Ping>| async move {
                if method.method == "Fail" {
                    let mut error =
                        ConnectError::not_found(format!("no ping {:?}", request.get_ref().text))
                            .with_detail(ErrorDetail {
                                type_name: "test.v1.Missing".into(),
                                value: Bytes::from_static(b"\x08\x07"),
                            });
                    error
                        .metadata
                        .insert("x-reason", HeaderValue::from_static("gone"));
                    return Err(error);
                }
                let mut tags = Vec::new();
                if let Some(tenant) = request.metadata().get("x-tenant") {
                    tags.push(String::from_utf8_lossy(tenant.as_bytes()).into_owned());
                }
                if let Some(Deadline(at)) = request.deadline() {
                    tags.push(
                        at.saturating_duration_since(runtime.now())
                            .as_millis()
                            .to_string(),
                    );
                }
                let text = if method.method == "Big" {
                    "x".repeat(8192)
                } else {
                    request.get_ref().text.clone()
                };
                let mut response = Response::new(Ping {
                    text,
                    number: request.get_ref().number + 1,
                    tags,
                });
                response
                    .metadata_mut()
                    .insert("x-served-by", HeaderValue::from_static("ping"));
                Ok(response)
            })
            .await
        }
    })
}

struct Fixture {
    router: Router,
    runtime: TokioRuntime,
    calls: Rc<Cell<usize>>,
}

impl Fixture {
    fn new() -> Self {
        let runtime = TokioRuntime::default();
        let calls = Rc::new(Cell::new(0));
        let router = Router::new().add(ping_service(runtime.clone(), Rc::clone(&calls)));
        Fixture {
            router,
            runtime,
            calls,
        }
    }

    async fn send(&self, request: http::Request<Bytes>) -> http::Response<Bytes> {
        self.router.handle(&self.runtime, request).await
    }
}

fn ping(text: &str) -> Ping {
    Ping {
        text: text.into(),
        number: 41,
        tags: vec![],
    }
}

fn post(path: &str, content_type: &str, body: impl Into<Bytes>) -> http::Request<Bytes> {
    http::Request::builder()
        .method(Method::POST)
        .uri(path)
        .header(CONTENT_TYPE, content_type)
        .body(body.into())
        .expect("request")
}

fn get(path_and_query: &str) -> http::Request<Bytes> {
    http::Request::builder()
        .method(Method::GET)
        .uri(path_and_query)
        .body(Bytes::new())
        .expect("request")
}

fn proto_post(method: &str, message: &Ping) -> http::Request<Bytes> {
    post(
        &format!("/{SERVICE}/{method}"),
        "application/proto",
        message.encode_to_vec(),
    )
}

/// Asserts a Connect error response and returns the error it carries.
fn connect_error(response: &http::Response<Bytes>) -> ConnectError {
    assert_eq!(
        response
            .headers()
            .get(CONTENT_TYPE)
            .map(HeaderValue::as_bytes),
        Some(&b"application/json"[..])
    );
    error_from_json(response.body()).expect("a Connect error body")
}

fn decode_ping(response: &http::Response<Bytes>) -> Ping {
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "body: {:?}",
        response.body()
    );
    Ping::decode(&response.body()[..]).expect("proto body")
}

#[tokio::test]
async fn proto_post_round_trip_with_metadata_both_ways() {
    let fx = Fixture::new();
    let mut request = proto_post("Echo", &ping("hi"));
    request
        .headers_mut()
        .insert("x-tenant", HeaderValue::from_static("acme"));
    let response = fx.send(request).await;
    assert_eq!(response.headers()[CONTENT_TYPE], "application/proto");
    assert_eq!(response.headers()["x-served-by"], "ping");
    assert_eq!(
        decode_ping(&response),
        Ping {
            text: "hi".into(),
            number: 42,
            tags: vec!["acme".into()]
        }
    );
    assert_eq!(fx.calls.get(), 1);
}

#[tokio::test]
async fn json_post_round_trip() {
    let fx = Fixture::new();
    for content_type in ["application/json", "application/json; charset=utf-8"] {
        let response = fx
            .send(post(
                &format!("/{SERVICE}/Echo"),
                content_type,
                r#"{"text":"hé","number":1}"#,
            ))
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
        let value: serde_json::Value = serde_json::from_slice(response.body()).expect("json");
        assert_eq!(value["text"], "hé");
        assert_eq!(value["number"], 2);
    }
}

#[tokio::test]
async fn unknown_procedures_are_unimplemented_404() {
    let fx = Fixture::new();
    for path in [
        format!("/{SERVICE}/Nope"),
        "/test.v1.Other/Echo".to_owned(),
        format!("/{SERVICE}"),
        format!("/{SERVICE}/Echo/extra"),
        "/".to_owned(),
    ] {
        let response = fx
            .send(post(&path, "application/proto", Bytes::new()))
            .await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        assert_eq!(connect_error(&response).code, Code::Unimplemented, "{path}");
    }
    assert_eq!(fx.calls.get(), 0);
}

#[tokio::test]
async fn wrong_http_methods_are_405_with_allow() {
    let fx = Fixture::new();
    let mut put = proto_post("Get", &ping("x"));
    *put.method_mut() = Method::PUT;
    let response = fx.send(put).await;
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.headers()[ALLOW], "GET, POST");
    connect_error(&response);

    // GET only for NO_SIDE_EFFECTS methods.
    let query = query::encode_get(crate::Encoding::Proto, &ping("x").encode_to_vec());
    let response = fx.send(get(&format!("/{SERVICE}/Echo?{query}"))).await;
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.headers()[ALLOW], "POST");
    connect_error(&response);
    assert_eq!(fx.calls.get(), 0);
}

#[tokio::test]
async fn unsupported_content_types_are_415() {
    let fx = Fixture::new();
    for content_type in [
        "text/plain",
        "application/connect+proto",
        "application/grpc",
        "application/json; charset=latin1",
    ] {
        let response = fx
            .send(post(
                &format!("/{SERVICE}/Echo"),
                content_type,
                Bytes::new(),
            ))
            .await;
        assert_eq!(
            response.status(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{content_type}"
        );
        assert!(response.headers().contains_key("accept-post"));
        connect_error(&response);
    }
    let mut missing = proto_post("Echo", &ping("x"));
    missing.headers_mut().remove(CONTENT_TYPE);
    assert_eq!(
        fx.send(missing).await.status(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
    assert_eq!(fx.calls.get(), 0);
}

#[tokio::test]
async fn undecodable_bodies_are_invalid_argument() {
    let fx = Fixture::new();
    for (content_type, body) in [
        ("application/proto", &b"\xff\xff\xff"[..]),
        ("application/json", b"{not json"),
        ("application/json", b""),
    ] {
        let response = fx
            .send(post(
                &format!("/{SERVICE}/Echo"),
                content_type,
                body.to_vec(),
            ))
            .await;
        assert_eq!(
            response.status(),
            StatusCode::BAD_REQUEST,
            "{content_type} {body:?}"
        );
        assert_eq!(connect_error(&response).code, Code::InvalidArgument);
    }
}

#[tokio::test]
async fn protocol_version_and_timeout_headers_are_validated() {
    let fx = Fixture::new();
    let mut ok = proto_post("Echo", &ping("x"));
    ok.headers_mut()
        .insert("connect-protocol-version", HeaderValue::from_static("1"));
    assert_eq!(fx.send(ok).await.status(), StatusCode::OK);

    let mut bad = proto_post("Echo", &ping("x"));
    bad.headers_mut()
        .insert("connect-protocol-version", HeaderValue::from_static("2"));
    let response = fx.send(bad).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(connect_error(&response).code, Code::InvalidArgument);

    for timeout in ["-5", "12345678901", "soon", ""] {
        let mut bad = proto_post("Echo", &ping("x"));
        bad.headers_mut().insert(
            "connect-timeout-ms",
            HeaderValue::from_str(timeout).expect("value"),
        );
        let response = fx.send(bad).await;
        assert_eq!(
            connect_error(&response).code,
            Code::InvalidArgument,
            "{timeout:?}"
        );
    }
    assert_eq!(fx.calls.get(), 1);
}

#[tokio::test]
async fn get_calls_for_side_effect_free_methods() {
    let fx = Fixture::new();
    let message = ping("by get").encode_to_vec();
    let encoded = base64::engine::general_purpose::URL_SAFE.encode(&message);
    let padded_and_not = [encoded.clone(), encoded.trim_end_matches('=').to_owned()];
    for message in padded_and_not {
        let response = fx
            .send(get(&format!(
                "/{SERVICE}/Get?connect=v1&encoding=proto&base64=1&message={message}"
            )))
            .await;
        assert_eq!(response.headers()[CONTENT_TYPE], "application/proto");
        assert_eq!(decode_ping(&response).text, "by get");
    }

    let response = fx
        .send(get(&format!(
            "/{SERVICE}/Get?encoding=json&message=%7B%22text%22%3A%22a%20b%22%7D"
        )))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
    let value: serde_json::Value = serde_json::from_slice(response.body()).expect("json");
    assert_eq!(value["text"], "a b");

    let gz = gzip::compress(&message).expect("gzip");
    let gz = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&gz);
    let response = fx
        .send(get(&format!(
            "/{SERVICE}/Get?encoding=proto&base64=1&compression=gzip&message={gz}"
        )))
        .await;
    assert_eq!(decode_ping(&response).text, "by get");

    let response = fx.send(get(&format!("/{SERVICE}/Get?message=x"))).await;
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let response = fx
        .send(get(&format!(
            "/{SERVICE}/Get?encoding=proto&base64=1&message=***"
        )))
        .await;
    assert_eq!(connect_error(&response).code, Code::InvalidArgument);
}

#[tokio::test]
async fn gzip_request_bodies() {
    let fx = Fixture::new();
    let mut request = proto_post("Echo", &ping("packed"));
    *request.body_mut() = gzip::compress(request.body()).expect("gzip");
    request
        .headers_mut()
        .insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    assert_eq!(decode_ping(&fx.send(request).await).text, "packed");

    let mut request = proto_post("Echo", &ping("x"));
    request
        .headers_mut()
        .insert(CONTENT_ENCODING, HeaderValue::from_static("br"));
    let response = fx.send(request).await;
    assert_eq!(connect_error(&response).code, Code::Unimplemented);

    let mut request = proto_post("Echo", &ping("x"));
    request
        .headers_mut()
        .insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    assert_eq!(
        connect_error(&fx.send(request).await).code,
        Code::InvalidArgument,
        "not actually gzip"
    );
}

#[tokio::test]
async fn size_limits_apply_before_and_after_decompression() {
    let fx = Fixture::new();
    let router = fx.router.clone().max_message_bytes(1000);
    assert_eq!(router.message_limit(), 1000);
    let big = ping(&"y".repeat(2000));

    let response = router.handle(&fx.runtime, proto_post("Echo", &big)).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(connect_error(&response).code, Code::ResourceExhausted);

    let mut bomb = proto_post("Echo", &big);
    *bomb.body_mut() = gzip::compress(bomb.body()).expect("gzip");
    assert!(bomb.body().len() < 1000);
    bomb.headers_mut()
        .insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    let response = router.handle(&fx.runtime, bomb).await;
    assert_eq!(connect_error(&response).code, Code::ResourceExhausted);

    let fine = router
        .handle(&fx.runtime, proto_post("Echo", &ping(&"y".repeat(900))))
        .await;
    assert_eq!(fine.status(), StatusCode::OK);
    assert_eq!(fx.calls.get(), 1);
}

#[tokio::test]
async fn responses_are_gzipped_only_when_accepted_and_large() {
    let fx = Fixture::new();
    let mut big = proto_post("Big", &ping(""));
    big.headers_mut()
        .insert(ACCEPT_ENCODING, HeaderValue::from_static("gzip, br"));
    let response = fx.send(big).await;
    assert_eq!(response.headers()[CONTENT_ENCODING], "gzip");
    let body = gzip::decompress(response.body(), 1 << 20).expect("gunzip");
    assert_eq!(Ping::decode(&body[..]).expect("proto").text.len(), 8192);
    assert!(response.body().len() < 1024);

    let response = fx.send(proto_post("Big", &ping(""))).await;
    assert!(
        !response.headers().contains_key(CONTENT_ENCODING),
        "not accepted"
    );
    assert_eq!(decode_ping(&response).text.len(), 8192);

    let mut small = proto_post("Echo", &ping("tiny"));
    small
        .headers_mut()
        .insert(ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
    let response = fx.send(small).await;
    assert!(
        !response.headers().contains_key(CONTENT_ENCODING),
        "below threshold"
    );
    assert_eq!(decode_ping(&response).text, "tiny");
}

#[tokio::test]
async fn handler_errors_become_connect_errors() {
    let fx = Fixture::new();
    let response = fx.send(proto_post("Fail", &ping("p1"))).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(response.headers()["x-reason"], "gone");
    let error = connect_error(&response);
    assert_eq!(error.code, Code::NotFound);
    assert_eq!(error.message, "no ping \"p1\"");
    assert_eq!(
        error.details,
        vec![ErrorDetail {
            type_name: "test.v1.Missing".into(),
            value: Bytes::from_static(b"\x08\x07")
        }]
    );
}

#[tokio::test]
async fn handler_panics_are_internal() {
    let fx = Fixture::new();
    let response = fx.send(proto_post("Panic", &ping(""))).await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(connect_error(&response).code, Code::Internal);
}

#[tokio::test(start_paused = true)]
async fn expired_budget_fails_without_calling_the_handler() {
    let fx = Fixture::new();
    let mut request = proto_post("Echo", &ping(""));
    request
        .headers_mut()
        .insert("connect-timeout-ms", HeaderValue::from_static("0"));
    let response = fx.send(request).await;
    assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(connect_error(&response).code, Code::DeadlineExceeded);
    assert_eq!(fx.calls.get(), 0);
}

#[tokio::test(start_paused = true)]
async fn slow_handlers_lose_the_race_with_the_deadline() {
    let fx = Fixture::new();
    let start = fx.runtime.now();
    let mut request = proto_post("Slow", &ping(""));
    request
        .headers_mut()
        .insert("connect-timeout-ms", HeaderValue::from_static("50"));
    let response = fx.send(request).await;
    assert_eq!(connect_error(&response).code, Code::DeadlineExceeded);
    assert_eq!(
        fx.runtime.now().saturating_duration_since(start),
        Duration::from_millis(50)
    );
    assert_eq!(fx.calls.get(), 1);

    let mut request = proto_post("Slow", &ping(""));
    request
        .headers_mut()
        .insert("connect-timeout-ms", HeaderValue::from_static("500"));
    let reply = decode_ping(&fx.send(request).await);
    // The handler saw the deadline: 500 ms from arrival, 300 ms left after its sleep.
    assert_eq!(reply.tags, vec!["300".to_owned()]);
}

/// A fresh paused current-thread runtime for property tests.
fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("tokio runtime")
}

fn arbitrary_request() -> impl Strategy<Value = Option<http::Request<Bytes>>> {
    let method = prop_oneof![
        Just(Method::POST),
        Just(Method::GET),
        Just(Method::PUT),
        Just(Method::OPTIONS)
    ];
    let path = prop_oneof![
        prop::sample::select(vec!["Echo", "Get", "Fail", "Slow", "Big", "Nope"])
            .prop_map(|m| format!("/{SERVICE}/{m}")),
        "/[ -~]{0,40}",
        any::<String>(),
    ];
    let query = prop_oneof![
        Just(String::new()),
        "[a-z0-9=&%+_-]{0,60}",
        (
            prop::sample::select(vec!["proto", "json", "xml"]),
            "[A-Za-z0-9_%=-]{0,40}",
            any::<bool>()
        )
            .prop_map(|(e, m, gz)| format!(
                "connect=v1&encoding={e}&base64=1&message={m}{}",
                if gz { "&compression=gzip" } else { "" }
            )),
    ];
    let header_name = prop::sample::select(vec![
        "content-type",
        "content-encoding",
        "accept-encoding",
        "connect-timeout-ms",
        "connect-protocol-version",
        "x-custom",
    ]);
    let header_value = prop_oneof![
        prop::sample::select(vec![
            "application/proto",
            "application/json",
            "gzip",
            "1",
            "0",
            "10",
            "identity"
        ])
        .prop_map(|v| v.as_bytes().to_vec()),
        prop::collection::vec(any::<u8>(), 0..20),
    ];
    let headers = prop::collection::vec((header_name, header_value), 0..6);
    let body = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..256),
        any::<String>().prop_map(String::into_bytes),
        "[a-z]{0,20}".prop_map(|t| ping(&t).encode_to_vec()),
    ];
    (method, path, query, headers, body).prop_map(|(method, path, query, headers, body)| {
        let uri = if query.is_empty() {
            path
        } else {
            format!("{path}?{query}")
        };
        let mut request = http::Request::builder()
            .method(method)
            .uri(uri)
            .body(Bytes::from(body))
            .ok()?;
        for (name, value) in headers {
            if let Ok(value) = HeaderValue::from_bytes(&value) {
                request.headers_mut().append(name, value);
            }
        }
        Some(request)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn router_always_answers_with_a_connect_response(request in arbitrary_request()) {
        let Some(request) = request else { return Ok(()) };
        let response = paused_runtime().block_on(async {
            let fx = Fixture::new();
            fx.send(request).await
        });
        if response.status() == StatusCode::OK {
            let content_type = response.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
            prop_assert!(content_type == "application/proto" || content_type == "application/json");
        } else {
            prop_assert!(error_from_json(response.body()).is_some(), "not a Connect error: {:?}", response.body());
            prop_assert_eq!(response.headers().get(CONTENT_TYPE).map(HeaderValue::as_bytes), Some(&b"application/json"[..]));
        }
    }
}

#[test]
fn method_for_path_finds_only_served_methods() {
    let router = Router::new().add(ping_service(TokioRuntime::default(), Rc::default()));
    let found = router.method_for_path("/test.v1.PingService/Get");
    assert_eq!(found.map(|m| m.method), Some("Get"));
    assert_eq!(
        found.map(|m| m.idempotency),
        Some(Idempotency::NoSideEffects)
    );
    for path in [
        "/test.v1.PingService/Nope",
        "/other.v1.Service/Get",
        "test.v1.PingService/Get",
        "/",
        "",
    ] {
        assert!(router.method_for_path(path).is_none(), "{path}");
    }
}
