#![allow(clippy::unwrap_used)]

use std::time::Duration;

use futures_util::future::join_all;
use tower::Layer;

use super::*;
use crate::breaker::Breaker;
use crate::config::BreakerPolicy;
use crate::test_util::{call, mock, request, Mock, MockHandle, Reply, READ};
use crate::{Code, TokioRuntime};

const MS: fn(u64) -> Duration = Duration::from_millis;

fn endpoints(
    rt: &TokioRuntime,
    latencies: &[u64],
) -> (Vec<MockHandle>, Vec<Endpoint<Mock<TokioRuntime>>>) {
    latencies
        .iter()
        .enumerate()
        .map(|(i, ms)| {
            let (h, svc) = mock(rt.clone(), Reply::after(MS(*ms), Reply::Ok));
            (h, Endpoint::new(format!("ep{i}"), svc))
        })
        .unzip()
}

#[tokio::test(start_paused = true)]
async fn p2c_prefers_the_faster_endpoint() {
    let rt = TokioRuntime::with_seed(21);
    let (mocks, eps) = endpoints(&rt, &[100, 10, 100]);
    let mut balance = Balance::new(rt.clone(), BalancePolicy::default(), eps);
    for _ in 0..300 {
        call(&mut balance, request(READ, None)).await.unwrap();
    }
    let counts: Vec<usize> = mocks.iter().map(|m| m.calls()).collect();
    // The fast endpoint loses only when P2C draws the two slow ones (1 in 3).
    assert!(counts[1] >= 180, "{counts:?}");
    assert!(
        counts[1] > counts[0] * 3 && counts[1] > counts[2] * 3,
        "{counts:?}"
    );
    let loads = balance.loads();
    assert!(loads[1].1 < loads[0].1, "{loads:?}");
}

#[tokio::test(start_paused = true)]
async fn pending_calls_count_in_the_load() {
    let rt = TokioRuntime::with_seed(4);
    let (mocks, eps) = endpoints(&rt, &[50, 50]);
    let balance = Balance::new(rt.clone(), BalancePolicy::default(), eps);
    // 20 concurrent calls before any latency is measured: with pending
    // counted, they spread instead of all landing on one endpoint.
    join_all((0..20).map(|_| {
        let mut b = balance.clone();
        async move { call(&mut b, request(READ, None)).await }
    }))
    .await;
    let counts: Vec<usize> = mocks.iter().map(|m| m.calls()).collect();
    assert_eq!(counts, vec![10, 10]);
}

#[tokio::test(start_paused = true)]
async fn open_breakers_are_skipped_and_all_open_fails_fast() {
    let rt = TokioRuntime::with_seed(8);
    let (mut handles, mut eps, mut layers) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..2 {
        let (h, svc) = mock(rt.clone(), Reply::Ok);
        let layer = Breaker::layer(rt.clone(), BreakerPolicy::default(), format!("ep{i}"));
        eps.push(Endpoint::new(format!("ep{i}"), layer.layer(svc)).with_breaker(layer.handle()));
        handles.push(h);
        layers.push(layer);
    }
    let mut balance = Balance::new(rt.clone(), BalancePolicy::default(), eps);
    // Trip ep0's breaker through its own service.
    let (failing, svc) = mock(rt.clone(), Reply::Err(Code::Unavailable));
    let mut ep0 = layers[0].layer(svc);
    for _ in 0..5 {
        call(&mut ep0, request(READ, None)).await.unwrap_err();
    }
    assert_eq!(failing.calls(), 5);
    assert!(layers[0].handle().is_open(rt.now()));
    for _ in 0..50 {
        call(&mut balance, request(READ, None)).await.unwrap();
    }
    assert_eq!((handles[0].calls(), handles[1].calls()), (0, 50));

    let (_, svc) = mock(rt.clone(), Reply::Err(Code::Unavailable));
    let mut ep1 = layers[1].layer(svc);
    for _ in 0..5 {
        call(&mut ep1, request(READ, None)).await.unwrap_err();
    }
    let e = call(&mut balance, request(READ, None)).await.unwrap_err();
    assert_eq!(e.code, Code::Unavailable);
    assert_eq!(e.message, "all 2 endpoints have open circuit breakers");
    assert_eq!(handles[1].calls(), 50);
}

#[tokio::test(start_paused = true)]
async fn no_endpoints_is_unavailable() {
    let rt = TokioRuntime::with_seed(8);
    let mut balance: Balance<Mock<TokioRuntime>, _> =
        Balance::new(rt, BalancePolicy::default(), Vec::new());
    let e = call(&mut balance, request(READ, None)).await.unwrap_err();
    assert_eq!(e.code, Code::Unavailable);
}
