//! The router answers every request with a Connect response, without
//! panicking and without waiting on anything but the handler.
#![no_main]

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, StatusCode};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use workmesh::protocol::error_from_json;
use workmesh::server::{serve_unary, Router};
use workmesh::testing::{FnService, ManualRuntime, Ping};
use workmesh::{Idempotency, MethodDescriptor};

const SERVICE: &str = "fuzz.v1.PingService";
static METHODS: [MethodDescriptor; 2] = [
    MethodDescriptor {
        service: SERVICE,
        method: "Echo",
        idempotency: Idempotency::Unknown,
    },
    MethodDescriptor {
        service: SERVICE,
        method: "Get",
        idempotency: Idempotency::NoSideEffects,
    },
];
const HEADERS: [&str; 6] = [
    "content-type",
    "content-encoding",
    "accept-encoding",
    "connect-timeout-ms",
    "connect-protocol-version",
    "x-any",
];

#[derive(Debug, Arbitrary)]
struct Input {
    method: u8,
    known_path: Option<bool>,
    path: String,
    query: Option<String>,
    headers: Vec<(u8, Vec<u8>)>,
    body: Vec<u8>,
}

fn router() -> Router {
    Router::new()
        .max_message_bytes(64 * 1024)
        .add(FnService::new(SERVICE, &METHODS, |_, call| {
            serve_unary(
                call,
                |request: workmesh::message::Request<Ping>| async move {
                    Ok(workmesh::message::Response::new(request.into_inner()))
                },
            )
        }))
}

/// Polls once: with a `ManualRuntime` and an immediate handler, the router
/// must finish without waiting.
fn run_to_completion<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("router waited on something other than the handler"),
    }
}

fuzz_target!(|input: Input| {
    let method = match input.method % 4 {
        0 => Method::POST,
        1 => Method::GET,
        2 => Method::PUT,
        _ => Method::DELETE,
    };
    let path = match input.known_path {
        Some(true) => format!("/{SERVICE}/Echo"),
        Some(false) => format!("/{SERVICE}/Get"),
        None => input.path,
    };
    let uri = match input.query {
        Some(query) => format!("{path}?{query}"),
        None => path,
    };
    let Ok(mut request) = http::Request::builder()
        .method(method)
        .uri(uri)
        .body(Bytes::from(input.body))
    else {
        return;
    };
    for (name, value) in input.headers {
        let name = HeaderName::from_static(HEADERS[usize::from(name) % HEADERS.len()]);
        if let Ok(value) = HeaderValue::from_bytes(&value) {
            request.headers_mut().append(name, value);
        }
    }
    let response = run_to_completion(router().handle(&ManualRuntime::default(), request));
    if response.status() == StatusCode::OK {
        let content_type = response
            .headers()
            .get("content-type")
            .map(HeaderValue::as_bytes);
        assert!(matches!(
            content_type,
            Some(b"application/proto" | b"application/json")
        ));
    } else {
        assert!(
            error_from_json(response.body()).is_some(),
            "not a Connect error body"
        );
    }
});
