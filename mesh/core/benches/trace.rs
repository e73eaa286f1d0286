//! Per-call cost of tracing one RPC hop: a SERVER span from incoming headers
//! plus a CLIENT span injected into outgoing headers, then the drain.
//! Compared: sampled, unsampled with tail-keep errors (the default),
//! unsampled without it, and tracing off (header handling only). Native
//! only, so `std::time::Instant` is fine here.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use std::hint::black_box;
use std::time::Instant;

use http::HeaderMap;
use workmesh::trace::rpc::{rpc_client_span, rpc_server_span};
use workmesh::trace::{Sampler, TraceCollector};
use workmesh::{Idempotency, MethodDescriptor, TokioRuntime};

static GET: MethodDescriptor = MethodDescriptor {
    service: "shop.v1.CatalogService",
    method: "GetProduct",
    idempotency: Idempotency::NoSideEffects,
};

const ITERATIONS: u32 = 200_000;

fn traced(runtime: &TokioRuntime, sampler: Sampler) -> usize {
    let collector = TraceCollector::new(runtime, sampler);
    let incoming = HeaderMap::new();
    let server = rpc_server_span(&collector, &GET, &incoming);
    let client = rpc_client_span(&collector, &GET, Some(server.context()), Some("catalog"));
    let mut outgoing = HeaderMap::new();
    client.context().inject(&mut outgoing);
    client.end();
    server.end();
    collector.drain().len() + outgoing.len()
}

fn untraced(_: &TokioRuntime, _: Sampler) -> usize {
    // What a call does without tracing: nothing but its own header map.
    let outgoing = HeaderMap::new();
    black_box(&outgoing);
    outgoing.len()
}

fn measure(
    name: &str,
    runtime: &TokioRuntime,
    sampler: Sampler,
    f: fn(&TokioRuntime, Sampler) -> usize,
) -> f64 {
    for _ in 0..ITERATIONS / 10 {
        black_box(f(runtime, sampler));
    }
    let start = Instant::now();
    for _ in 0..ITERATIONS {
        black_box(f(black_box(runtime), sampler));
    }
    let nanos = start.elapsed().as_nanos() as f64 / f64::from(ITERATIONS);
    println!("{name:<34} {nanos:>9.0} ns/call");
    nanos
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("tokio runtime");
    let _guard = rt.enter();
    let runtime = TokioRuntime::with_seed(1);
    let off = measure("tracing off", &runtime, Sampler::ratio(1.0), untraced);
    let none = measure(
        "unsampled, no error keeping",
        &runtime,
        Sampler::ratio(0.0).without_error_keeping(),
        traced,
    );
    let tail = measure(
        "unsampled, tail-keep errors",
        &runtime,
        Sampler::ratio(0.0),
        traced,
    );
    let sampled = measure("sampled", &runtime, Sampler::ratio(1.0), traced);
    println!();
    println!(
        "sampled / unsampled (no keeping)   {:>6.2}x",
        sampled / none
    );
    println!(
        "sampled / unsampled (tail-keep)    {:>6.2}x",
        sampled / tail
    );
    println!("tail-keep / no keeping             {:>6.2}x", tail / none);
    println!("unsampled (no keeping) - off       {:>6.0} ns", none - off);
    println!(
        "sampled - off                      {:>6.0} ns",
        sampled - off
    );
}
