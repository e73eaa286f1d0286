#![allow(clippy::unwrap_used)]

use std::rc::Rc;
use std::time::Duration;

use futures_util::future::join_all;
use http::HeaderValue;
use tower::Layer;

use super::*;
use crate::config::{BudgetPolicy, ResilienceConfig};
use crate::deadline::TryTimeout;
use crate::test_util::{call, mock, pushback as pushback_error, request, Reply, READ, WRITE};
use crate::{Code, Deadline, Instant, Runtime, TokioRuntime};

const MS: fn(u64) -> Duration = Duration::from_millis;

fn config(json: &str) -> Rc<ResilienceConfig> {
    Rc::new(ResilienceConfig::from_json(json).unwrap())
}

fn budget() -> Rc<RetryBudget> {
    Rc::new(RetryBudget::new(BudgetPolicy::default()))
}

fn gaps(seen: &[crate::test_util::Seen]) -> Vec<Duration> {
    seen.windows(2)
        .map(|w| w[1].at.saturating_duration_since(w[0].at))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn retries_unavailable_up_to_max_attempts_with_attempt_headers() {
    let rt = TokioRuntime::with_seed(3);
    let (handle, inner) = mock(rt.clone(), Reply::Err(Code::Unavailable));
    let mut svc = Retry::layer(rt.clone(), config("{}"), budget()).layer(inner);
    let e = call(&mut svc, request(READ, None)).await.unwrap_err();
    assert_eq!(e.code, Code::Unavailable);
    let attempts: Vec<_> = handle.seen().iter().map(|s| s.attempt()).collect();
    assert_eq!(attempts, vec![Some(1), Some(2), Some(3)]);

    // Succeeds on the second attempt: exactly two calls.
    let (handle, inner) = mock(rt.clone(), Reply::Ok);
    handle.push(Reply::Err(Code::Unavailable));
    let mut svc = Retry::layer(rt.clone(), config("{}"), budget()).layer(inner);
    call(&mut svc, request(READ, None)).await.unwrap();
    assert_eq!(handle.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn other_codes_and_max_attempts_one_are_not_retried() {
    let rt = TokioRuntime::with_seed(3);
    for code in [
        Code::Internal,
        Code::InvalidArgument,
        Code::ResourceExhausted,
        Code::DeadlineExceeded,
    ] {
        let (handle, inner) = mock(rt.clone(), Reply::Err(code));
        let mut svc = Retry::layer(rt.clone(), config("{}"), budget()).layer(inner);
        assert_eq!(
            call(&mut svc, request(READ, None)).await.unwrap_err().code,
            code
        );
        assert_eq!(handle.calls(), 1, "{code}");
    }
    let (handle, inner) = mock(rt.clone(), Reply::Err(Code::Unavailable));
    let cfg = config(r#"{"default": {"retry": {"max_attempts": 1}}}"#);
    let mut svc = Retry::layer(rt.clone(), cfg, budget()).layer(inner);
    call(&mut svc, request(READ, None)).await.unwrap_err();
    assert_eq!(handle.calls(), 1);
    assert_eq!(handle.seen()[0].attempt(), Some(1));
}

#[tokio::test(start_paused = true)]
async fn non_idempotent_calls_retry_only_with_an_idempotency_key() {
    let rt = TokioRuntime::with_seed(3);
    let (handle, inner) = mock(rt.clone(), Reply::Err(Code::Unavailable));
    let mut svc = Retry::layer(rt.clone(), config("{}"), budget()).layer(inner);
    call(&mut svc, request(WRITE, None)).await.unwrap_err();
    assert_eq!(handle.calls(), 1);

    let mut keyed = request(WRITE, None);
    keyed.headers_mut().insert(
        headers::IDEMPOTENCY_KEY,
        HeaderValue::from_static("order-42"),
    );
    call(&mut svc, keyed).await.unwrap_err();
    assert_eq!(handle.calls(), 4);
    assert!(handle.seen()[1..]
        .iter()
        .all(|s| s.header(headers::IDEMPOTENCY_KEY) == Some("order-42")));
}

#[tokio::test(start_paused = true)]
async fn backoff_is_full_jitter_within_the_exponential_ceiling() {
    let rt = TokioRuntime::with_seed(11);
    let cfg = config(
        r#"{"default": {"retry": {"max_attempts": 6}, "retry_budget": {"ratio": 1.0, "min_per_s": 1000}}}"#,
    );
    let policy = cfg.call_policy("", "").retry;
    let ceilings: Vec<Duration> = (0..5).map(|n| backoff_ceiling(&policy, n)).collect();
    assert_eq!(ceilings, vec![MS(25), MS(50), MS(100), MS(200), MS(250)]);
    let mut longest = [Duration::ZERO; 5];
    let mut shortest = [Duration::MAX; 5];
    for _ in 0..200 {
        let (handle, inner) = mock(rt.clone(), Reply::Err(Code::Unavailable));
        let mut svc = Retry::layer(rt.clone(), cfg.clone(), budget()).layer(inner);
        call(&mut svc, request(READ, None)).await.unwrap_err();
        let gaps = gaps(&handle.seen());
        assert_eq!(gaps.len(), 5);
        for (n, gap) in gaps.iter().enumerate() {
            assert!(
                *gap <= ceilings[n],
                "retry {n} slept {gap:?} > {:?}",
                ceilings[n]
            );
            longest[n] = longest[n].max(*gap);
            shortest[n] = shortest[n].min(*gap);
        }
    }
    // Jitter really spans the range: near zero and near the ceiling.
    for n in 0..5 {
        assert!(
            shortest[n] < ceilings[n] / 10,
            "retry {n}: shortest {:?}",
            shortest[n]
        );
        assert!(
            longest[n] > ceilings[n] * 9 / 10,
            "retry {n}: longest {:?}",
            longest[n]
        );
    }
}

#[tokio::test(start_paused = true)]
async fn pushback_replaces_backoff_or_stops_retries() {
    let rt = TokioRuntime::with_seed(3);
    let (handle, inner) = mock(rt.clone(), Reply::Ok);
    handle.push(Reply::Error(pushback_error(Code::Unavailable, "400")));
    let mut svc = Retry::layer(rt.clone(), config("{}"), budget()).layer(inner);
    call(&mut svc, request(READ, None)).await.unwrap();
    assert_eq!(gaps(&handle.seen()), vec![MS(400)]);

    for value in ["-1", "soon"] {
        let (handle, inner) = mock(rt.clone(), Reply::Ok);
        handle.push(Reply::Error(pushback_error(Code::Unavailable, value)));
        let mut svc = Retry::layer(rt.clone(), config("{}"), budget()).layer(inner);
        call(&mut svc, request(READ, None)).await.unwrap_err();
        assert_eq!(handle.calls(), 1, "pushback {value}");
    }
}

#[tokio::test(start_paused = true)]
async fn never_retries_past_the_overall_deadline() {
    let rt = TokioRuntime::with_seed(3);
    let (handle, inner) = mock(rt.clone(), Reply::Ok);
    handle.push(Reply::Error(pushback_error(Code::Unavailable, "50")));
    let mut svc = Retry::layer(rt.clone(), config("{}"), budget()).layer(inner);
    let deadline = Deadline(rt.now() + MS(40));
    call(&mut svc, request(READ, Some(deadline)))
        .await
        .unwrap_err();
    assert_eq!(handle.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn per_try_timeouts_are_retried_overall_ones_are_not() {
    let rt = TokioRuntime::with_seed(3);
    let cfg = config(r#"{"default": {"per_try_timeout_ms": 100}}"#);
    let (handle, inner) = mock(rt.clone(), Reply::Ok);
    handle.push(Reply::after(MS(500), Reply::Ok));
    let mut svc = Retry::layer(rt.clone(), cfg.clone(), budget())
        .layer(TryTimeout::layer(rt.clone(), cfg).layer(inner));
    call(&mut svc, request(READ, None)).await.unwrap();
    assert_eq!(handle.calls(), 2);

    // All attempts time out: the final error carries no per-try mark.
    let cfg = config(r#"{"default": {"per_try_timeout_ms": 100}}"#);
    let (handle, inner) = mock(rt.clone(), Reply::after(MS(500), Reply::Ok));
    let mut svc = Retry::layer(rt.clone(), cfg.clone(), budget())
        .layer(TryTimeout::layer(rt.clone(), cfg).layer(inner));
    let e = call(&mut svc, request(READ, None)).await.unwrap_err();
    assert_eq!(handle.calls(), 3);
    assert_eq!(e.code, Code::DeadlineExceeded);
    assert!(!crate::deadline::is_per_try_timeout(&e));
}

#[test]
fn budget_reserve_is_a_floor_and_ratio_applies_above_it() {
    let at = |ms: u64| Instant::from_epoch(MS(ms));
    let b = RetryBudget::new(BudgetPolicy::default());
    // No traffic yet: the reserve (10/s × 10 s) allows 100 retries.
    assert_eq!(b.remaining(at(0)), 100);
    assert_eq!((0..150).filter(|_| b.withdraw(at(0))).count(), 100);
    // 1,000 requests in the window: 20% = 200 retries, 100 already spent.
    for _ in 0..1000 {
        b.deposit(at(1));
    }
    assert_eq!(b.remaining(at(1)), 100);
    assert_eq!((0..150).filter(|_| b.withdraw(at(1))).count(), 100);
    assert!(!b.withdraw(at(1)));
    // Once the window has passed, everything expired: back to the reserve.
    assert_eq!(b.remaining(at(10_500)), 100);
}

#[tokio::test(start_paused = true)]
async fn budget_caps_amplification_under_total_failure() {
    let rt = TokioRuntime::with_seed(5);
    let (handle, inner) = mock(
        rt.clone(),
        Reply::after(MS(5), Reply::Err(Code::Unavailable)),
    );
    let budget = budget();
    let svc = Retry::layer(rt.clone(), config("{}"), budget.clone()).layer(inner);
    const CALLS: u64 = 10_000;
    // 1,000 calls per second, each starting 1 ms after the previous.
    let calls = (0..CALLS).map(|i| {
        let mut svc = svc.clone();
        let rt = rt.clone();
        async move {
            rt.sleep(MS(i)).await;
            call(&mut svc, request(READ, None)).await
        }
    });
    let results = join_all(calls).await;
    assert!(results
        .iter()
        .all(|r| r.as_ref().is_err_and(|e| e.code == Code::Unavailable)));
    let amplification = handle.calls() as f64 / CALLS as f64;
    println!("retry amplification at 100% failure over {CALLS} calls: {amplification:.4}");
    assert!(amplification <= 1.2, "amplification {amplification}");
    // The budget is actually spent (retries do happen), not merely disabled.
    assert!(amplification >= 1.15, "amplification {amplification}");
}

#[tokio::test(start_paused = true)]
async fn an_open_breakers_rejection_is_not_retried_and_spends_no_budget() {
    let rt = TokioRuntime::with_seed(3);
    let mut rejected = crate::ConnectError::unavailable("circuit breaker open for test");
    rejected.metadata.insert(
        http::HeaderName::from_static(crate::breaker::REJECTED_MARK),
        HeaderValue::from_static("1"),
    );
    let (handle, inner) = mock(rt.clone(), Reply::Error(rejected));
    let budget = budget();
    let before = budget.remaining(rt.now());
    let mut svc = Retry::layer(rt.clone(), config("{}"), budget.clone()).layer(inner);
    let started = rt.now();
    let e = call(&mut svc, request(READ, None)).await.unwrap_err();
    assert_eq!(e.code, Code::Unavailable);
    assert_eq!(handle.calls(), 1, "nothing was sent, so nothing is retried");
    assert!(
        !crate::breaker::is_rejection(&e),
        "the mark stays inside the stack"
    );
    assert_eq!(rt.now(), started, "no backoff sleep");
    assert!(budget.remaining(rt.now()) >= before, "no budget spent");
}
