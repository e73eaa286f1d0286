#![allow(clippy::unwrap_used)]

use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use tower::{Layer, ServiceExt};

use super::*;
use crate::breaker::BreakerState;
use crate::context::headers;
use crate::deadline::deadline_from_headers;
use crate::test_util::{call, mock, request, Reply, READ};
use crate::{Code, ConnectError, Deadline, MethodDescriptor, Runtime, TokioRuntime};

const MS: fn(u64) -> Duration = Duration::from_millis;

fn config(json: &str) -> Rc<ResilienceConfig> {
    Rc::new(ResilienceConfig::from_json(json).unwrap())
}

const INVENTORY: MethodDescriptor = MethodDescriptor {
    service: "shop.v1.InventoryService",
    ..READ
};

#[tokio::test(start_paused = true)]
async fn deadline_shrinks_across_two_hops() {
    let rt = TokioRuntime::with_seed(1);
    // Hop 2: orders → inventory, through its own client stack.
    let (inventory, transport) = mock(rt.clone(), Reply::Ok);
    let downstream = ClientStack::new(rt.clone(), config("{}"), INVENTORY.service).layer(transport);
    // The orders server: reads the incoming budget, works 30 ms, calls on.
    let server_rt = rt.clone();
    let orders_server = tower::service_fn(move |req: Request<Bytes>| {
        let rt = server_rt.clone();
        let downstream = downstream.clone();
        async move {
            let deadline = deadline_from_headers(req.headers(), rt.now())?;
            rt.sleep(MS(30)).await;
            let mut next = request(INVENTORY, deadline);
            next.headers_mut()
                .insert("x-hop", http::HeaderValue::from_static("2"));
            downstream.oneshot(next).await?;
            Ok::<_, ConnectError>(Response::new(Bytes::new()))
        }
    });
    let mut client = ClientStack::new(rt.clone(), config("{}"), READ.service).layer(orders_server);
    call(
        &mut client,
        request(READ, Some(Deadline(rt.now() + MS(1000)))),
    )
    .await
    .unwrap();
    assert_eq!(
        inventory.seen()[0].header(headers::CONNECT_TIMEOUT_MS),
        Some("970")
    );

    // A budget smaller than the server's work: the second hop is never sent.
    let e = call(
        &mut client,
        request(READ, Some(Deadline(rt.now() + MS(20)))),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code, Code::DeadlineExceeded);
    assert_eq!(inventory.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn each_attempt_gets_a_fresh_shrinking_header() {
    let rt = TokioRuntime::with_seed(1);
    let (handle, transport) = mock(rt.clone(), Reply::Ok);
    handle.push(Reply::after(MS(40), Reply::Err(Code::Unavailable)));
    let mut client = ClientStack::new(
        rt.clone(),
        config(r#"{"default": {"timeout_ms": 500}}"#),
        READ.service,
    )
    .layer(transport);
    call(&mut client, request(READ, None)).await.unwrap();
    let seen = handle.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].header(headers::CONNECT_TIMEOUT_MS), Some("500"));
    let elapsed = seen[1].at.saturating_duration_since(seen[0].at).as_millis() as u64;
    let expected = (500 - elapsed).to_string();
    assert_eq!(
        seen[1].header(headers::CONNECT_TIMEOUT_MS),
        Some(expected.as_str())
    );
    assert_eq!((seen[0].attempt(), seen[1].attempt()), (Some(1), Some(2)));
}

#[tokio::test(start_paused = true)]
async fn a_failing_target_trips_the_breaker_within_the_retry_loop() {
    let rt = TokioRuntime::with_seed(1);
    let (handle, transport) = mock(rt.clone(), Reply::Err(Code::Unavailable));
    let stack = ClientStack::new(rt.clone(), config("{}"), READ.service);
    let mut client = stack.layer(transport);
    // 3 attempts, then 2 attempts reach the transport before the breaker opens;
    // the third attempt of call 2 fails fast.
    for _ in 0..2 {
        call(&mut client, request(READ, None)).await.unwrap_err();
    }
    assert_eq!(handle.calls(), 5);
    assert!(matches!(stack.breaker().state(), BreakerState::Open { .. }));
    let e = call(&mut client, request(READ, None)).await.unwrap_err();
    assert!(e.message.contains("circuit breaker open"), "{}", e.message);
    assert_eq!(handle.calls(), 5);
    assert_eq!(stack.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn balanced_retries_move_to_a_healthy_endpoint() {
    let rt = TokioRuntime::with_seed(6);
    let (bad, bad_svc) = mock(rt.clone(), Reply::Err(Code::Unavailable));
    let (good, good_svc) = mock(rt.clone(), Reply::after(MS(5), Reply::Ok));
    let stack = ClientStack::new(rt.clone(), config("{}"), READ.service);
    let (mut client, breakers) =
        stack.balanced(vec![("a".to_owned(), bad_svc), ("b".to_owned(), good_svc)]);
    for _ in 0..50 {
        call(&mut client, request(READ, None)).await.unwrap();
    }
    assert_eq!(good.calls(), 50);
    assert!(
        bad.calls() <= 5,
        "the bad endpoint's breaker opens: {}",
        bad.calls()
    );
    assert_eq!(breakers[0].0, "a");
    assert!(!matches!(breakers[1].1.state(), BreakerState::Open { .. }));
}

#[tokio::test(start_paused = true)]
async fn injected_aborts_are_not_retried() {
    let rt = TokioRuntime::with_seed(1);
    let cfg = config(
        r#"{"faults": {"enabled": true, "rules": [{"abort": {"code": "unavailable", "percent": 100}}]}}"#,
    );
    let (handle, transport) = mock(rt.clone(), Reply::Ok);
    let mut client = layer(rt.clone(), cfg, READ.service).layer(transport);
    let e = call(&mut client, request(READ, None)).await.unwrap_err();
    assert_eq!(e.code, Code::Unavailable);
    assert_eq!(handle.calls(), 0);
}

#[tokio::test(start_paused = true)]
async fn each_attempt_is_its_own_client_span_under_the_current_span() {
    use crate::trace::{scope, AttrValue, Sampler, SpanKind, TraceCollector, TraceContext};
    let rt = TokioRuntime::with_seed(1);
    let (handle, transport) = mock(rt.clone(), Reply::Ok);
    handle.push(Reply::Err(Code::Unavailable));
    let mut client = ClientStack::new(rt.clone(), config("{}"), READ.service)
        .with_server_address("CATALOG")
        .layer(transport);
    let collector = TraceCollector::new(&rt, Sampler::ratio(1.0));
    let server = collector.start_span("server", SpanKind::Server, None);
    scope::in_span(server.handle(), call(&mut client, request(READ, None)))
        .await
        .unwrap();
    server.end();

    let spans = collector.drain();
    let server = &spans[0];
    let clients: Vec<_> = spans
        .iter()
        .filter(|s| s.kind == SpanKind::Client)
        .collect();
    assert_eq!(clients.len(), 2, "one CLIENT span per attempt");
    let seen = handle.seen();
    for (i, client) in clients.iter().enumerate() {
        assert_eq!(client.parent_span_id, Some(server.span_id));
        let attempt = client
            .attributes
            .iter()
            .find(|(k, _)| k == "workmesh.attempt")
            .map(|(_, v)| v.clone());
        assert_eq!(attempt, Some(AttrValue::Int(i as i64 + 1)));
        // Each attempt carries its own span as the callee's parent.
        let sent = TraceContext::extract(&seen[i].headers).unwrap();
        assert_eq!(sent.span_id, client.span_id);
    }
    assert_ne!(clients[0].span_id, clients[1].span_id);
    assert!(clients[0].status != crate::trace::SpanStatus::Unset);
    // The retry decision is an event on the caller's span.
    let retry = server.events.iter().find(|e| e.name == "retry");
    assert!(retry.is_some(), "{:?}", server.events);
}

#[tokio::test(start_paused = true)]
async fn balanced_with_keeps_breakers_across_rebuilds() {
    let rt = TokioRuntime::with_seed(6);
    let stack = ClientStack::new(rt.clone(), config("{}"), READ.service);
    let mut breakers = std::collections::HashMap::new();
    let (_, bad_svc) = mock(rt.clone(), Reply::Err(Code::Unavailable));
    let mut client = stack.balanced_with(vec![("a".to_owned(), bad_svc)], &mut breakers);
    for _ in 0..3 {
        call(&mut client, request(READ, None)).await.unwrap_err();
    }
    assert!(matches!(
        breakers["a"].handle().state(),
        BreakerState::Open { .. }
    ));

    // A new answer lists "a" again, next to a new "b": a's breaker is still open.
    let (a_again, a_svc) = mock(rt.clone(), Reply::Ok);
    let (b, b_svc) = mock(rt.clone(), Reply::Ok);
    let mut client = stack.balanced_with(
        vec![("a".to_owned(), a_svc), ("b".to_owned(), b_svc)],
        &mut breakers,
    );
    for _ in 0..10 {
        call(&mut client, request(READ, None)).await.unwrap();
    }
    assert_eq!((a_again.calls(), b.calls()), (0, 10));
    assert_eq!(breakers.len(), 2);
}

#[tokio::test(start_paused = true)]
async fn balanced_groups_keep_only_the_current_endpoints_breakers() {
    let rt = TokioRuntime::with_seed(7);
    let stack = ClientStack::new(rt.clone(), config("{}"), READ.service);
    let mut breakers = std::collections::HashMap::new();
    let (_, bad_svc) = mock(rt.clone(), Reply::Err(Code::Unavailable));
    let (_, b_svc) = mock(rt.clone(), Reply::Ok);
    let mut routes = stack.balanced_groups(
        vec![
            ("v1", vec![("a".to_owned(), bad_svc)]),
            ("v2", vec![("b".to_owned(), b_svc)]),
        ],
        &mut breakers,
    );
    let mut v1 = routes.remove("v1").unwrap();
    for _ in 0..3 {
        call(&mut v1, request(READ, None)).await.unwrap_err();
    }
    assert!(matches!(
        breakers["a"].handle().state(),
        BreakerState::Open { .. }
    ));
    assert_eq!(breakers.len(), 2);

    // Many answers later, each with fresh instance ids: the table holds only
    // the latest answer's endpoints, and one kept across answers keeps its state.
    for n in 0..50 {
        let (_, c_svc) = mock(rt.clone(), Reply::Ok);
        let (_, a_svc) = mock(rt.clone(), Reply::Ok);
        let routes = stack.balanced_groups(
            vec![
                ("v1", vec![("a".to_owned(), a_svc)]),
                ("v2", vec![(format!("c{n}"), c_svc)]),
            ],
            &mut breakers,
        );
        assert_eq!(routes.len(), 2);
    }
    let mut ids: Vec<_> = breakers.keys().cloned().collect();
    ids.sort();
    assert_eq!(ids, ["a", "c49"]);
    assert!(matches!(
        breakers["a"].handle().state(),
        BreakerState::Open { .. }
    ));
}
