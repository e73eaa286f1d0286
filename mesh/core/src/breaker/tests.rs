#![allow(clippy::unwrap_used)]

use std::time::Duration;

use tower::{Layer, Service};

use super::*;
use crate::config::BreakerPolicy;
use crate::test_util::{call, mock, request, Mock, MockHandle, Reply, READ};
use crate::{Code, Instant, Runtime, TokioRuntime};

const MS: fn(u64) -> Duration = Duration::from_millis;

fn no_jitter() -> BreakerPolicy {
    BreakerPolicy {
        jitter: 0.0,
        ..BreakerPolicy::default()
    }
}

type Svc = Breaker<Mock<TokioRuntime>, TokioRuntime>;

fn breaker(rt: &TokioRuntime, policy: BreakerPolicy) -> (MockHandle, Svc, BreakerHandle) {
    let (handle, inner) = mock(rt.clone(), Reply::Ok);
    let layer = Breaker::layer(rt.clone(), policy, "catalog");
    let h = layer.handle();
    (handle, layer.layer(inner), h)
}

async fn outcomes(svc: &mut Svc, mock: &MockHandle, replies: &[Reply]) {
    for r in replies {
        mock.push(r.clone());
        let _ = call(svc, request(READ, None)).await;
    }
}

fn open_until(h: &BreakerHandle) -> (Instant, TripReason) {
    match h.state() {
        BreakerState::Open { until, reason } => (until, reason),
        other => panic!("expected open, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn five_consecutive_failures_open_and_then_fail_fast() {
    let rt = TokioRuntime::with_seed(1);
    let (mock, mut svc, h) = breaker(&rt, no_jitter());
    outcomes(&mut svc, &mock, &vec![Reply::Err(Code::Unavailable); 4]).await;
    assert_eq!(h.state(), BreakerState::Closed);
    outcomes(&mut svc, &mock, &[Reply::Err(Code::Internal)]).await;
    let (until, reason) = open_until(&h);
    assert_eq!(reason, TripReason::ConsecutiveFailures(5));
    assert_eq!(until, rt.now() + MS(1000));
    let e = call(&mut svc, request(READ, None)).await.unwrap_err();
    assert_eq!(e.code, Code::Unavailable);
    assert!(
        e.message
            .contains("circuit breaker open for catalog (5 consecutive failures)"),
        "{}",
        e.message
    );
    assert_eq!(mock.calls(), 5, "fail fast: not sent");
    assert!(
        super::is_rejection(&e),
        "marked, so retry knows nothing was sent"
    );
}

#[tokio::test(start_paused = true)]
async fn caller_errors_do_not_count_as_failures() {
    let rt = TokioRuntime::with_seed(1);
    let (mock, mut svc, h) = breaker(&rt, no_jitter());
    let replies: Vec<Reply> = [
        Code::InvalidArgument,
        Code::NotFound,
        Code::PermissionDenied,
        Code::AlreadyExists,
    ]
    .iter()
    .cycle()
    .take(20)
    .map(|c| Reply::Err(*c))
    .collect();
    outcomes(&mut svc, &mock, &replies).await;
    assert_eq!(h.state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn low_success_rate_opens_without_consecutive_failures() {
    let rt = TokioRuntime::with_seed(1);
    let (mock, mut svc, h) = breaker(&rt, no_jitter());
    let (f, s) = (Reply::Err(Code::Unavailable), Reply::Ok);
    // 1 failure in 5 is 80%: not below the minimum.
    outcomes(
        &mut svc,
        &mock,
        &[s.clone(), s.clone(), f.clone(), s.clone(), s.clone()],
    )
    .await;
    assert_eq!(h.state(), BreakerState::Closed);
    // A second failure: 4 of 6 = 67% < 80%, with only one failure in a row.
    outcomes(&mut svc, &mock, std::slice::from_ref(&f)).await;
    match open_until(&h).1 {
        TripReason::SuccessRate { rate, calls } => {
            assert_eq!(calls, 6);
            assert!((rate - 4.0 / 6.0).abs() < 1e-9);
        }
        other => panic!("unexpected reason {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn success_rate_trip_records_its_reason() {
    let rt = TokioRuntime::with_seed(1);
    let (mock, mut svc, h) = breaker(&rt, no_jitter());
    let (f, s) = (Reply::Err(Code::Unavailable), Reply::Ok);
    // Four calls, 25% success: too few calls to judge.
    outcomes(
        &mut svc,
        &mock,
        &[f.clone(), f.clone(), s.clone(), f.clone()],
    )
    .await;
    assert_eq!(h.state(), BreakerState::Closed);
    // Fifth call (a success would not trip; a failure does): 1/5 = 20%.
    outcomes(&mut svc, &mock, std::slice::from_ref(&f)).await;
    match open_until(&h).1 {
        TripReason::SuccessRate { rate, calls } => {
            assert_eq!(calls, 5);
            assert!((rate - 0.2).abs() < 1e-9);
        }
        other => panic!("unexpected reason {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn the_success_rate_window_forgets_old_calls() {
    let rt = TokioRuntime::with_seed(1);
    let (mock, mut svc, h) = breaker(&rt, no_jitter());
    let (f, s) = (Reply::Err(Code::Unavailable), Reply::Ok);
    outcomes(
        &mut svc,
        &mock,
        &[f.clone(), s.clone(), f.clone(), f.clone()],
    )
    .await;
    rt.sleep(MS(11_000)).await;
    // Old calls have left the 10 s window: 1 call in it, no trip.
    outcomes(&mut svc, &mock, &[s.clone(), f.clone()]).await;
    assert_eq!(h.state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn exactly_one_probe_after_each_growing_backoff_and_reset_on_success() {
    let rt = TokioRuntime::with_seed(1);
    let (mock, mut svc, h) = breaker(&rt, no_jitter());
    outcomes(&mut svc, &mock, &vec![Reply::Err(Code::Unavailable); 5]).await;
    let (until, _) = open_until(&h);
    assert!(h.is_open(rt.now()));

    // 1 ms early: still failing fast.
    rt.sleep(MS(999)).await;
    call(&mut svc, request(READ, None)).await.unwrap_err();
    assert_eq!(mock.calls(), 5);

    // At `until` the next call is the one probe; a concurrent call fails fast.
    rt.sleep(MS(1)).await;
    assert_eq!(rt.now(), until);
    assert!(!h.is_open(rt.now()));
    mock.push(Reply::after(MS(100), Reply::Err(Code::Unavailable)));
    let probe = svc.call(request(READ, None));
    assert_eq!(h.state(), BreakerState::HalfOpen);
    assert!(h.is_open(rt.now()), "probe in flight: balancer should skip");
    let rejected = call(&mut svc, request(READ, None)).await.unwrap_err();
    assert!(
        rejected.message.contains("probe in flight"),
        "{}",
        rejected.message
    );
    probe.await.unwrap_err();
    assert_eq!(mock.calls(), 6, "exactly one probe");

    // The failed probe re-opens for 2 s, then 4 s.
    let mut backoff = MS(2000);
    for _ in 0..2 {
        let (until, reason) = open_until(&h);
        assert_eq!(reason, TripReason::ProbeFailed);
        assert_eq!(until, rt.now() + backoff);
        rt.sleep(backoff).await;
        mock.push(Reply::Err(Code::Unavailable));
        call(&mut svc, request(READ, None)).await.unwrap_err();
        backoff *= 2;
    }
    let (until, _) = open_until(&h);
    assert_eq!(until, rt.now() + MS(8000));
    rt.sleep(MS(8000)).await;
    call(&mut svc, request(READ, None)).await.unwrap();
    assert_eq!(h.state(), BreakerState::Closed);

    // After closing, the backoff starts over at 1 s.
    outcomes(&mut svc, &mock, &vec![Reply::Err(Code::Unavailable); 5]).await;
    assert_eq!(open_until(&h).0, rt.now() + MS(1000));
}

#[tokio::test(start_paused = true)]
async fn backoff_is_capped_at_sixty_seconds() {
    let rt = TokioRuntime::with_seed(1);
    let (mock, mut svc, h) = breaker(&rt, no_jitter());
    outcomes(&mut svc, &mock, &vec![Reply::Err(Code::Unavailable); 5]).await;
    let mut periods = Vec::new();
    for _ in 0..8 {
        let (until, _) = open_until(&h);
        periods.push(until.saturating_duration_since(rt.now()).as_secs());
        rt.sleep(until.saturating_duration_since(rt.now())).await;
        mock.push(Reply::Err(Code::Unavailable));
        call(&mut svc, request(READ, None)).await.unwrap_err();
    }
    assert_eq!(periods, vec![1, 2, 4, 8, 16, 32, 60, 60]);
}

#[tokio::test(start_paused = true)]
async fn jitter_lengthens_open_periods_by_up_to_half() {
    let rt = TokioRuntime::with_seed(9);
    let mut lengths = Vec::new();
    for _ in 0..50 {
        let (mock, mut svc, h) = breaker(&rt, BreakerPolicy::default());
        outcomes(&mut svc, &mock, &vec![Reply::Err(Code::Unavailable); 5]).await;
        lengths.push(open_until(&h).0.saturating_duration_since(rt.now()));
    }
    assert!(
        lengths.iter().all(|d| *d >= MS(1000) && *d < MS(1500)),
        "{lengths:?}"
    );
    assert!(lengths.iter().any(|d| *d > MS(1250)) && lengths.iter().any(|d| *d < MS(1250)));
}

#[tokio::test(start_paused = true)]
async fn an_abandoned_probe_lets_the_next_call_probe() {
    let rt = TokioRuntime::with_seed(1);
    let (mock, mut svc, h) = breaker(&rt, no_jitter());
    outcomes(&mut svc, &mock, &vec![Reply::Err(Code::Unavailable); 5]).await;
    rt.sleep(MS(1000)).await;
    let probe = svc.call(request(READ, None));
    drop(probe);
    assert_eq!(h.state(), BreakerState::HalfOpen);
    assert!(!h.is_open(rt.now()));
    call(&mut svc, request(READ, None)).await.unwrap();
    assert_eq!(h.state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn transitions_are_tracing_events() {
    let (events, _guard) = crate::test_util::Events::install();
    let rt = TokioRuntime::with_seed(1);
    let (mock, mut svc, _h) = breaker(&rt, no_jitter());
    outcomes(&mut svc, &mock, &vec![Reply::Err(Code::Unavailable); 5]).await;
    rt.sleep(MS(1000)).await;
    call(&mut svc, request(READ, None)).await.unwrap();
    assert_eq!(
        events.messages("workmesh::breaker"),
        vec![
            "circuit breaker opened",
            "circuit breaker half-open: probing",
            "circuit breaker closed"
        ]
    );
}
