//! Per-call overhead of the full client stack over a bare in-memory service.
//!
//! Native only (run with `cargo bench -p workmesh --features tokio --bench stack`);
//! prints nanoseconds per call and the ratio, side by side.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use tower::{Layer, Service, ServiceExt};
use workmesh::config::ResilienceConfig;
use workmesh::stack::ClientStack;
use workmesh::{ConnectError, Deadline, Idempotency, MethodDescriptor, Runtime, TokioRuntime};

const CALLS: u32 = 200_000;
const METHOD: MethodDescriptor = MethodDescriptor {
    service: "shop.v1.CatalogService",
    method: "GetProduct",
    idempotency: Idempotency::NoSideEffects,
};

fn request(deadline: Option<Deadline>) -> Request<Bytes> {
    let mut req = Request::post("/shop.v1.CatalogService/GetProduct")
        .body(Bytes::from_static(b"\x08\x01"))
        .unwrap_or_default();
    req.extensions_mut().insert(METHOD);
    if let Some(d) = deadline {
        req.extensions_mut().insert(d);
    }
    req
}

async fn run<S>(mut service: S, deadline: impl Fn() -> Option<Deadline>) -> Duration
where
    S: Service<Request<Bytes>, Response = Response<Bytes>, Error = ConnectError>,
{
    // Warm up, then measure.
    for _ in 0..CALLS / 10 {
        let _ = service.ready().await.map(|s| s.call(request(deadline())));
    }
    let start = Instant::now();
    for _ in 0..CALLS {
        let ready = service.ready().await.unwrap_or_else(|e| panic!("{e}"));
        let response = ready.call(request(deadline())).await;
        assert!(response.is_ok());
    }
    start.elapsed() / CALLS
}

fn main() {
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    tokio.block_on(async {
        let rt = TokioRuntime::with_seed(1);
        let transport = tower::service_fn(|_req: Request<Bytes>| async {
            Ok::<_, ConnectError>(Response::new(Bytes::new()))
        });
        let config = Rc::new(ResilienceConfig::default());

        let bare = run(transport, || None).await;
        let stack = run(
            ClientStack::new(rt.clone(), config.clone(), METHOD.service).layer(transport),
            || None,
        )
        .await;
        let timed_rt = rt.clone();
        let with_deadline = run(
            ClientStack::new(rt.clone(), config, METHOD.service).layer(transport),
            move || Some(Deadline(timed_rt.now() + Duration::from_secs(1))),
        )
        .await;

        let ns = |d: Duration| d.as_nanos() as f64;
        println!("bare in-memory service      {:>8.0} ns/call", ns(bare));
        println!(
            "full stack, no deadline     {:>8.0} ns/call  ({:.1}x bare)",
            ns(stack),
            ns(stack) / ns(bare)
        );
        println!(
            "full stack, 1 s deadline    {:>8.0} ns/call  ({:.1}x bare)",
            ns(with_deadline),
            ns(with_deadline) / ns(bare)
        );
        println!(
            "stack overhead per call     {:>8.0} ns (no deadline), {:.0} ns (with deadline timers)",
            ns(stack) - ns(bare),
            ns(with_deadline) - ns(bare)
        );
    });
}
