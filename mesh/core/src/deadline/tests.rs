#![allow(clippy::unwrap_used)]

use std::rc::Rc;
use std::time::Duration;

use http::HeaderMap;
use tower::Layer;

use super::*;
use crate::config::ResilienceConfig;
use crate::test_util::{call, mock, request, Reply, READ};
use crate::{Code, Runtime, TokioRuntime};

fn config(json: &str) -> Rc<ResilienceConfig> {
    Rc::new(ResilienceConfig::from_json(json).unwrap())
}

const MS: fn(u64) -> Duration = Duration::from_millis;

#[tokio::test(start_paused = true)]
async fn caller_deadline_becomes_the_remaining_budget_header() {
    let rt = TokioRuntime::with_seed(1);
    let cfg = config("{}");
    let (handle, inner) = mock(rt.clone(), Reply::Ok);
    let mut svc = CallDeadline::layer(rt.clone(), cfg.clone())
        .layer(TryTimeout::layer(rt.clone(), cfg).layer(inner));
    let deadline = Deadline(rt.now() + MS(800));
    rt.sleep(MS(300)).await;
    call(&mut svc, request(READ, Some(deadline))).await.unwrap();
    let seen = handle.seen();
    assert_eq!(seen[0].header(headers::CONNECT_TIMEOUT_MS), Some("500"));
    assert_eq!(seen[0].deadline, Some(deadline));
}

#[tokio::test(start_paused = true)]
async fn per_method_default_timeout_applies_when_the_call_has_no_deadline() {
    let rt = TokioRuntime::with_seed(1);
    let cfg = config(
        r#"{"services": {"shop.v1.CatalogService": {"methods": {"GetProduct": {"timeout_ms": 200}}}}}"#,
    );
    let (handle, inner) = mock(rt.clone(), Reply::Ok);
    let mut svc = CallDeadline::layer(rt.clone(), cfg.clone())
        .layer(TryTimeout::layer(rt.clone(), cfg).layer(inner));
    call(&mut svc, request(READ, None)).await.unwrap();
    assert_eq!(
        handle.seen()[0].header(headers::CONNECT_TIMEOUT_MS),
        Some("200")
    );
    // Another method of the same service has no timeout: no header at all.
    let other = crate::MethodDescriptor {
        method: "ListProducts",
        ..READ
    };
    call(&mut svc, request(other, None)).await.unwrap();
    assert_eq!(handle.seen()[1].header(headers::CONNECT_TIMEOUT_MS), None);
}

#[tokio::test(start_paused = true)]
async fn expired_deadline_fails_without_calling_inner() {
    let rt = TokioRuntime::with_seed(1);
    let cfg = config("{}");
    let (handle, inner) = mock(rt.clone(), Reply::Ok);
    let mut outer = CallDeadline::layer(rt.clone(), cfg.clone()).layer(inner.clone());
    let mut try_only = TryTimeout::layer(rt.clone(), cfg).layer(inner);
    let deadline = Deadline(rt.now() + MS(10));
    rt.sleep(MS(10)).await;
    let e = call(&mut outer, request(READ, Some(deadline)))
        .await
        .unwrap_err();
    assert_eq!(e.code, Code::DeadlineExceeded);
    assert!(!is_per_try_timeout(&e));
    // Under a millisecond left: also not sent.
    let deadline = Deadline(rt.now() + Duration::from_micros(900));
    let e = call(&mut try_only, request(READ, Some(deadline)))
        .await
        .unwrap_err();
    assert_eq!(e.code, Code::DeadlineExceeded);
    assert_eq!(handle.calls(), 0);
}

#[tokio::test(start_paused = true)]
async fn overall_deadline_cuts_a_slow_call_at_exactly_the_deadline() {
    let rt = TokioRuntime::with_seed(1);
    let cfg = config(r#"{"default": {"timeout_ms": 150}}"#);
    let (_, inner) = mock(rt.clone(), Reply::after(MS(1000), Reply::Ok));
    let mut svc = CallDeadline::layer(rt.clone(), cfg).layer(inner);
    let start = rt.now();
    let e = call(&mut svc, request(READ, None)).await.unwrap_err();
    assert_eq!(e.code, Code::DeadlineExceeded);
    assert!(
        !is_per_try_timeout(&e),
        "the overall deadline is not a per-try timeout"
    );
    assert_eq!(rt.now().saturating_duration_since(start), MS(150));
}

#[tokio::test(start_paused = true)]
async fn per_try_timeout_is_marked_and_caps_the_header() {
    let rt = TokioRuntime::with_seed(1);
    let cfg = config(r#"{"default": {"timeout_ms": 1000, "per_try_timeout_ms": 100}}"#);
    let (handle, inner) = mock(rt.clone(), Reply::after(MS(500), Reply::Ok));
    let mut svc = CallDeadline::layer(rt.clone(), cfg.clone())
        .layer(TryTimeout::layer(rt.clone(), cfg).layer(inner));
    let start = rt.now();
    let e = call(&mut svc, request(READ, None)).await.unwrap_err();
    assert!(is_per_try_timeout(&e), "{e:?}");
    assert_eq!(rt.now().saturating_duration_since(start), MS(100));
    assert_eq!(
        handle.seen()[0].header(headers::CONNECT_TIMEOUT_MS),
        Some("100")
    );
}

#[tokio::test(start_paused = true)]
async fn per_try_equal_to_overall_counts_as_overall() {
    let rt = TokioRuntime::with_seed(1);
    let cfg = config(r#"{"default": {"per_try_timeout_ms": 100}}"#);
    let (_, inner) = mock(rt.clone(), Reply::after(MS(500), Reply::Ok));
    let mut svc = TryTimeout::layer(rt.clone(), cfg).layer(inner);
    // The caller's deadline is earlier than the per-try timeout.
    let e = call(&mut svc, request(READ, Some(Deadline(rt.now() + MS(50)))))
        .await
        .unwrap_err();
    assert_eq!(e.code, Code::DeadlineExceeded);
    assert!(!is_per_try_timeout(&e));
}

#[tokio::test(start_paused = true)]
async fn per_try_marks_from_another_hop_are_stripped() {
    let rt = TokioRuntime::with_seed(1);
    let remote = per_try_timeout_error(MS(10));
    assert!(is_per_try_timeout(&remote));
    let (_, inner) = mock(rt.clone(), Reply::Error(remote));
    let mut svc = TryTimeout::layer(rt.clone(), config("{}")).layer(inner);
    let e = call(&mut svc, request(READ, None)).await.unwrap_err();
    assert_eq!(e.code, Code::DeadlineExceeded);
    assert!(!is_per_try_timeout(&e));
}

#[test]
fn incoming_header_parses_to_a_deadline() {
    let now = crate::Instant::from_epoch(Duration::from_secs(5));
    let mut h = HeaderMap::new();
    assert_eq!(deadline_from_headers(&h, now).unwrap(), None);
    h.insert(headers::CONNECT_TIMEOUT_MS, "250".parse().unwrap());
    assert_eq!(
        deadline_from_headers(&h, now).unwrap(),
        Some(Deadline(now + MS(250)))
    );
    for bad in ["", "-5", "1.5", "12345678901", "abc"] {
        h.insert(headers::CONNECT_TIMEOUT_MS, bad.parse().unwrap());
        let e = deadline_from_headers(&h, now).unwrap_err();
        assert_eq!(e.code, Code::InvalidArgument, "{bad}");
    }
}
