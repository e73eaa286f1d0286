#![allow(clippy::unwrap_used)]

use std::time::Duration;

use tower::Layer;

use super::*;
use crate::config::ResilienceConfig;
use crate::test_util::{call, mock, request, Reply, READ, WRITE};
use crate::{Code, TokioRuntime};

fn rules(json: &str) -> Vec<FaultRule> {
    ResilienceConfig::from_json(json).unwrap().fault_rules()
}

#[tokio::test(start_paused = true)]
async fn off_unless_enabled() {
    let rt = TokioRuntime::with_seed(2);
    let json = r#"{"faults": {"rules": [{"abort": {"code": "unavailable", "percent": 100}}]}}"#;
    let (handle, inner) = mock(rt.clone(), Reply::Ok);
    let mut svc = FaultInjection::layer(rt, rules(json)).layer(inner);
    for _ in 0..100 {
        call(&mut svc, request(READ, None)).await.unwrap();
    }
    assert_eq!(handle.calls(), 100);
}

#[tokio::test(start_paused = true)]
async fn aborts_the_configured_share_of_matching_calls_only() {
    let rt = TokioRuntime::with_seed(2);
    let json = r#"{"faults": {"enabled": true, "rules": [{"service": "shop.v1.CatalogService", "method": "GetProduct",
        "abort": {"code": "unavailable", "percent": 30, "message": "chaos"}}]}}"#;
    let (handle, inner) = mock(rt.clone(), Reply::Ok);
    let mut svc = FaultInjection::layer(rt, rules(json)).layer(inner);
    let mut aborted = 0;
    for _ in 0..10_000 {
        if let Err(e) = call(&mut svc, request(READ, None)).await {
            assert_eq!((e.code, e.message.as_str()), (Code::Unavailable, "chaos"));
            aborted += 1;
        }
    }
    // 30% ± 1.5 points (about 3.3 standard deviations).
    assert!((2850..=3150).contains(&aborted), "aborted {aborted}");
    assert_eq!(
        handle.calls(),
        10_000 - aborted,
        "aborted calls are not sent"
    );
    // Another method is untouched.
    for _ in 0..200 {
        call(&mut svc, request(WRITE, None)).await.unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn delays_the_configured_share_then_sends() {
    let rt = TokioRuntime::with_seed(3);
    let json = r#"{"faults": {"enabled": true, "rules": [{"service": "shop.v1.CatalogService",
        "delay": {"ms": 100, "percent": 50}}]}}"#;
    let (handle, inner) = mock(rt.clone(), Reply::Ok);
    let mut svc = FaultInjection::layer(rt.clone(), rules(json)).layer(inner);
    let mut delayed = 0;
    for _ in 0..4_000 {
        let start = rt.now();
        call(&mut svc, request(READ, None)).await.unwrap();
        match rt.now().saturating_duration_since(start) {
            d if d == Duration::from_millis(100) => delayed += 1,
            d => assert_eq!(d, Duration::ZERO),
        }
    }
    // 50% ± 2.5 points.
    assert!((1900..=2100).contains(&delayed), "delayed {delayed}");
    assert_eq!(handle.calls(), 4_000);
}

#[tokio::test(start_paused = true)]
async fn injected_faults_are_tracing_events() {
    let (events, _guard) = crate::test_util::Events::install();
    let rt = TokioRuntime::with_seed(2);
    let json = r#"{"faults": {"enabled": true, "rules": [{"delay": {"ms": 5, "percent": 100},
        "abort": {"code": "internal", "percent": 100}}]}}"#;
    let (_, inner) = mock(rt.clone(), Reply::Ok);
    let mut svc = FaultInjection::layer(rt, rules(json)).layer(inner);
    call(&mut svc, request(READ, None)).await.unwrap_err();
    assert_eq!(
        events.messages("workmesh::fault"),
        vec!["fault injected: delay", "fault injected: abort"]
    );
}
