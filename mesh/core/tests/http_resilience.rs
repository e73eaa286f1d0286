//! The whole client stack (`ClientStack`) over the native `HttpTransport`,
//! against real sockets: a wiremock server for HTTP-level failures (503
//! bursts, slow answers, a 503 storm) and a bare TCP listener that drops
//! every connection.
//!
//! Time is real (sockets do not run under tokio's paused clock), so every
//! timeout and backoff is configured small and each test takes well under
//! three seconds.
#![cfg(all(feature = "tokio", feature = "http-client"))]
#![allow(clippy::unwrap_used)]

use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;
use prost::Message as _;
use tower::Layer;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use workmesh::breaker::BreakerState;
use workmesh::client::{Client, HttpTransport};
use workmesh::config::ResilienceConfig;
use workmesh::message::{Request, Response};
use workmesh::stack::{ClientService, ClientStack};
use workmesh::testing::Ping;
use workmesh::{Code, ConnectError, Idempotency, MethodDescriptor, Runtime, TokioRuntime};

const SERVICE: &str = "test.v1.PingService";

/// A read: safe to retry.
static GET: MethodDescriptor = MethodDescriptor {
    service: SERVICE,
    method: "Get",
    idempotency: Idempotency::NoSideEffects,
};

/// A write of unknown idempotency: retried only with an idempotency key.
static PUT: MethodDescriptor = MethodDescriptor {
    service: SERVICE,
    method: "Put",
    idempotency: Idempotency::Unknown,
};

const MS: fn(u64) -> Duration = Duration::from_millis;

type StackClient = Client<ClientService<HttpTransport, TokioRuntime>>;

/// A client through the full stack for [`SERVICE`], and the stack (for its
/// breaker and budget).
fn client(
    runtime: &TokioRuntime,
    config_json: &str,
    base_url: &str,
) -> (StackClient, ClientStack<TokioRuntime>) {
    let config = Rc::new(ResilienceConfig::from_json(config_json).unwrap());
    let stack = ClientStack::new(runtime.clone(), config, SERVICE);
    let service = stack.layer(HttpTransport::new(base_url));
    (Client::new(service), stack)
}

fn ping(text: &str) -> Ping {
    Ping {
        text: text.into(),
        number: 1,
        tags: vec![],
    }
}

async fn call(
    client: &StackClient,
    method: &'static MethodDescriptor,
    request: Request<Ping>,
) -> Result<Response<Ping>, ConnectError> {
    client.unary(method, request).await
}

fn ok_reply(text: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(ping(text).encode_to_vec(), "application/proto")
}

/// A Connect error as an HTTP 503 with its JSON body.
fn unavailable_reply() -> ResponseTemplate {
    ResponseTemplate::new(503).set_body_raw(
        r#"{"code":"unavailable","message":"burst"}"#.as_bytes().to_vec(),
        "application/json",
    )
}

/// A wiremock server for `method` that answers 503 to the first `failures`
/// requests, then 200.
async fn burst_server(method_name: &str, failures: u64) -> MockServer {
    let server = MockServer::start().await;
    let route = format!("/{SERVICE}/{method_name}");
    // Mounted first, so it wins while it still matches.
    Mock::given(method("POST"))
        .and(path(route.as_str()))
        .respond_with(unavailable_reply())
        .up_to_n_times(failures)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(route.as_str()))
        .respond_with(ok_reply("pong"))
        .mount(&server)
        .await;
    server
}

/// One header of every request the server received, in order.
async fn received_header(server: &MockServer, name: &str) -> Vec<Option<String>> {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| {
            r.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        })
        .collect()
}

fn attempts(values: &[&str]) -> Vec<Option<String>> {
    values.iter().map(|v| Some((*v).to_owned())).collect()
}

/// `connect-timeout-ms` of every request, as numbers.
async fn timeout_headers(server: &MockServer) -> Vec<u64> {
    received_header(server, "connect-timeout-ms")
        .await
        .into_iter()
        .map(|v| v.expect("connect-timeout-ms sent").parse().unwrap())
        .collect()
}

const BURST_CONFIG: &str = r#"{"default": {"timeout_ms": 2000,
    "retry": {"max_attempts": 3, "backoff_base_ms": 5, "backoff_cap_ms": 20}}}"#;

#[tokio::test]
async fn a_503_burst_on_a_read_is_retried_until_it_succeeds() {
    let runtime = TokioRuntime::with_seed(1);
    let server = burst_server("Get", 2).await;
    let (client, stack) = client(&runtime, BURST_CONFIG, &server.uri());

    let response = call(&client, &GET, Request::new(ping("ping")))
        .await
        .expect("the third attempt succeeds");
    assert_eq!(response.get_ref().text, "pong");
    assert_eq!(
        received_header(&server, "workmesh-attempt").await,
        attempts(&["1", "2", "3"])
    );
    // Two failures then a success leave the breaker closed.
    assert_eq!(stack.breaker().state(), BreakerState::Closed);
}

#[tokio::test]
async fn a_503_burst_on_a_write_without_idempotency_key_is_not_retried() {
    let runtime = TokioRuntime::with_seed(1);
    let server = burst_server("Put", 2).await;
    let (client, _) = client(&runtime, BURST_CONFIG, &server.uri());

    let error = call(&client, &PUT, Request::new(ping("ping")))
        .await
        .expect_err("a write is not retried blindly");
    assert_eq!(error.code, Code::Unavailable, "{error}");
    assert_eq!(error.message, "burst");
    assert_eq!(
        received_header(&server, "workmesh-attempt").await,
        attempts(&["1"])
    );
}

#[tokio::test]
async fn a_503_burst_on_a_write_with_idempotency_key_is_retried() {
    let runtime = TokioRuntime::with_seed(1);
    let server = burst_server("Put", 2).await;
    let (client, _) = client(&runtime, BURST_CONFIG, &server.uri());

    let mut request = Request::new(ping("ping"));
    request
        .metadata_mut()
        .insert("idempotency-key", HeaderValue::from_static("order-42"));
    let response = call(&client, &PUT, request)
        .await
        .expect("the key makes it safe to retry");
    assert_eq!(response.get_ref().text, "pong");
    assert_eq!(
        received_header(&server, "workmesh-attempt").await,
        attempts(&["1", "2", "3"])
    );
    assert_eq!(
        received_header(&server, "idempotency-key").await,
        attempts(&["order-42", "order-42", "order-42"])
    );
}

/// A server whose answers to `Get` all take far longer than any timeout here.
async fn slow_server(slow_answers: Option<u64>) -> MockServer {
    let server = MockServer::start().await;
    let slow = Mock::given(method("POST"))
        .and(path(GET.path()))
        .respond_with(ok_reply("slow").set_delay(MS(1500)));
    match slow_answers {
        Some(n) => slow.up_to_n_times(n).mount(&server).await,
        None => slow.mount(&server).await,
    }
    Mock::given(method("POST"))
        .and(path(GET.path()))
        .respond_with(ok_reply("fast"))
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn slow_answers_time_out_per_try_and_exhaust_the_attempts() {
    let runtime = TokioRuntime::with_seed(1);
    let server = slow_server(None).await;
    let (client, _) = client(
        &runtime,
        r#"{"default": {"timeout_ms": 1000, "per_try_timeout_ms": 200,
            "retry": {"max_attempts": 3, "backoff_base_ms": 5, "backoff_cap_ms": 10}}}"#,
        &server.uri(),
    );

    let start = runtime.now();
    let error = call(&client, &GET, Request::new(ping("ping")))
        .await
        .expect_err("every attempt is too slow");
    let elapsed = runtime.now().saturating_duration_since(start);
    assert_eq!(error.code, Code::DeadlineExceeded, "{error}");
    assert!(
        !error.metadata.contains_key("workmesh-per-try-timeout"),
        "the internal per-try mark must not leak to the caller"
    );
    // Three full per-try timeouts, and within the overall deadline + slack.
    assert!(elapsed >= MS(600), "{elapsed:?}");
    assert!(elapsed <= MS(1000 + 150), "{elapsed:?}");
    assert_eq!(
        received_header(&server, "workmesh-attempt").await,
        attempts(&["1", "2", "3"])
    );
    let budgets = timeout_headers(&server).await;
    assert_eq!(budgets.len(), 3);
    assert!(budgets.iter().all(|ms| *ms <= 200), "{budgets:?}");
}

#[tokio::test]
async fn slow_answers_stop_at_the_overall_deadline_with_shrinking_budgets() {
    let runtime = TokioRuntime::with_seed(1);
    let server = slow_server(None).await;
    // Attempt 1 gets its full 200 ms; attempt 2 only what is left of 300 ms.
    let (client, _) = client(
        &runtime,
        r#"{"default": {"timeout_ms": 300, "per_try_timeout_ms": 200,
            "retry": {"max_attempts": 3, "backoff_base_ms": 5, "backoff_cap_ms": 10}}}"#,
        &server.uri(),
    );

    let start = runtime.now();
    let error = call(&client, &GET, Request::new(ping("ping")))
        .await
        .expect_err("the overall deadline passes");
    let elapsed = runtime.now().saturating_duration_since(start);
    assert_eq!(error.code, Code::DeadlineExceeded, "{error}");
    assert!(elapsed >= MS(300), "{elapsed:?}");
    assert!(elapsed <= MS(300 + 150), "{elapsed:?}");
    let budgets = timeout_headers(&server).await;
    assert_eq!(budgets.len(), 2, "no third attempt past the deadline");
    assert_eq!(budgets[0], 200, "per-try timeout below the overall budget");
    // The second attempt starts at least 200 ms into the 300 ms budget.
    assert!(budgets[1] <= 100, "{budgets:?}");
}

#[tokio::test]
async fn a_slow_answer_is_retried_onto_a_fast_one() {
    let runtime = TokioRuntime::with_seed(1);
    let server = slow_server(Some(1)).await;
    let (client, _) = client(
        &runtime,
        r#"{"default": {"timeout_ms": 2000, "per_try_timeout_ms": 200,
            "retry": {"max_attempts": 3, "backoff_base_ms": 5, "backoff_cap_ms": 10}}}"#,
        &server.uri(),
    );

    let start = runtime.now();
    let response = call(&client, &GET, Request::new(ping("ping")))
        .await
        .expect("the retry is fast");
    let elapsed = runtime.now().saturating_duration_since(start);
    assert_eq!(response.get_ref().text, "fast");
    assert!(elapsed >= MS(200), "{elapsed:?}");
    assert!(
        elapsed < MS(1000),
        "did not wait for the slow answer: {elapsed:?}"
    );
    assert_eq!(
        received_header(&server, "workmesh-attempt").await,
        attempts(&["1", "2"])
    );
    let budgets = timeout_headers(&server).await;
    assert!(budgets.iter().all(|ms| *ms <= 200), "{budgets:?}");
}

/// A TCP listener that accepts each connection and drops it at once,
/// counting them.
async fn dropping_listener() -> (String, Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    let task = tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            drop(socket);
        }
    });
    (format!("http://{address}"), accepted, task)
}

#[tokio::test]
async fn dropped_connections_are_retried_then_open_the_breaker() {
    let runtime = TokioRuntime::with_seed(1);
    let (url, accepted, task) = dropping_listener().await;
    // Five consecutive failures open the breaker, for 5 s (no jitter).
    let (client, stack) = client(
        &runtime,
        r#"{"default": {"timeout_ms": 2000,
            "retry": {"max_attempts": 3, "backoff_base_ms": 1, "backoff_cap_ms": 5},
            "breaker": {"consecutive_failures": 5, "backoff_initial_ms": 5000,
                        "backoff_max_ms": 5000, "jitter": 0}}}"#,
        &url,
    );
    let breaker = stack.breaker();

    // Call 1: every attempt reaches the listener and is dropped.
    let error = call(&client, &GET, Request::new(ping("1")))
        .await
        .expect_err("connection dropped");
    assert_eq!(error.code, Code::Unavailable, "{error}");
    assert_eq!(accepted.load(Ordering::SeqCst), 3, "one per attempt");
    assert_eq!(breaker.state(), BreakerState::Closed, "3 of 5 failures");

    // Call 2: attempts 4 and 5 open the breaker; attempt 3 fails fast.
    let error = call(&client, &GET, Request::new(ping("2")))
        .await
        .expect_err("connection dropped");
    assert_eq!(error.code, Code::Unavailable, "{error}");
    assert!(error.message.contains("circuit breaker open"), "{error}");
    assert_eq!(accepted.load(Ordering::SeqCst), 5);
    assert!(
        matches!(breaker.state(), BreakerState::Open { .. }),
        "{:?}",
        breaker.state()
    );

    // Call 3: the open breaker fails every attempt without connecting.
    let start = runtime.now();
    let error = call(&client, &GET, Request::new(ping("3")))
        .await
        .expect_err("breaker open");
    let elapsed = runtime.now().saturating_duration_since(start);
    assert_eq!(error.code, Code::Unavailable, "{error}");
    assert!(error.message.contains("circuit breaker open"), "{error}");
    assert_eq!(accepted.load(Ordering::SeqCst), 5, "no new connection");
    assert!(elapsed < MS(100), "fails fast: {elapsed:?}");
    task.abort();
}

#[tokio::test]
async fn a_503_storm_is_retried_only_within_the_budget() {
    const CALLS: usize = 200;
    const RATIO: f64 = 0.2;
    const MIN_PER_S: f64 = 1.0;
    const WINDOW_MS: u64 = 10_000;
    let runtime = TokioRuntime::with_seed(1);
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(GET.path()))
        .respond_with(unavailable_reply())
        .mount(&server)
        .await;
    // No backoff, so the storm is quick; the breaker counts nothing as a
    // failure (empty `failure_codes`) so every call reaches the server and
    // only the budget limits retries.
    let (client, _) = client(
        &runtime,
        &format!(
            r#"{{"default": {{"timeout_ms": 2000,
                "retry": {{"max_attempts": 3, "backoff_base_ms": 0, "backoff_cap_ms": 0}},
                "retry_budget": {{"ratio": {RATIO}, "min_per_s": {MIN_PER_S},
                                  "window_ms": {WINDOW_MS}}},
                "breaker": {{"failure_codes": []}}}}}}"#
        ),
        &server.uri(),
    );

    let start = runtime.now();
    for i in 0..CALLS {
        let error = call(&client, &GET, Request::new(ping(&i.to_string())))
            .await
            .expect_err("always 503");
        assert_eq!(error.code, Code::Unavailable, "{error}");
    }
    // The whole storm fits in one budget window, so nothing expired.
    assert!(runtime.now().saturating_duration_since(start) < MS(WINDOW_MS));

    let total = server.received_requests().await.unwrap().len();
    // The budget allows `max(ratio × requests, min_per_s × window)` retries
    // per window, which is at most `ratio × requests + reserve`. Every call
    // is one request, so the server sees at most
    // `calls + ratio × calls + reserve` = 200 + 40 + 10 = 250 requests
    // (without the budget, 3 attempts × 200 = 600).
    let reserve = MIN_PER_S * WINDOW_MS as f64 / 1000.0;
    let bound = (1.0 + RATIO) * CALLS as f64 + reserve;
    assert!(total as f64 <= bound, "{total} requests > {bound}");
    // And retries did happen: at least the reserve was spent.
    assert!(total as f64 >= CALLS as f64 + reserve, "{total} requests");
}
