use std::time::Duration;

use super::*;
use crate::testing::ManualRuntime;
use crate::trace::context::TraceContext;
use crate::TokioRuntime;

fn parent(sampled: bool) -> TraceContext {
    TraceContext {
        trace_id: TraceId::from_u128(0xabc),
        span_id: SpanId::from_u64(0xdef),
        sampled,
        tracestate: Some("k=v".to_owned()),
    }
}

#[test]
fn children_join_the_parent_trace() {
    let runtime = TokioRuntime::with_seed(3);
    let collector = TraceCollector::new(&runtime, Sampler::ratio(1.0));
    let server = collector.start_span("server", SpanKind::Server, Some(&parent(true)));
    let client = server.child("client", SpanKind::Client);
    assert_eq!(client.context().trace_id, TraceId::from_u128(0xabc));
    assert_ne!(client.context().span_id, server.context().span_id);
    assert_eq!(client.context().tracestate.as_deref(), Some("k=v"));
    client.end();
    server.end();
    let spans = collector.drain();
    assert_eq!(spans.len(), 2);
    assert_eq!(spans[0].parent_span_id, Some(SpanId::from_u64(0xdef)));
    assert_eq!(spans[1].parent_span_id, Some(spans[0].span_id));
    assert!(collector.drain().is_empty(), "drain takes the spans");
}

#[test]
fn span_ids_are_distinct_even_with_fixed_randomness() {
    let runtime = ManualRuntime::default();
    let collector = TraceCollector::new(&runtime, Sampler::ratio(1.0));
    let root = collector.start_span("root", SpanKind::Internal, None);
    let ids: std::collections::HashSet<_> = (0..100)
        .map(|_| root.child("c", SpanKind::Internal).context().span_id)
        .collect();
    assert_eq!(ids.len(), 100);
}

#[test]
fn durations_are_clamped_and_never_invented() {
    let runtime = ManualRuntime::default();
    runtime.advance(Duration::from_secs(10));
    let collector = TraceCollector::new(&runtime, Sampler::ratio(1.0));
    let span = collector.start_span("no io", SpanKind::Internal, None);
    span.end();
    let pending = collector.start_span("dropped", SpanKind::Internal, None);
    runtime.advance(Duration::from_millis(40));
    let worker = collector.start_span("worker", SpanKind::Internal, None);
    worker.add_event("tick", Vec::new());
    drop(pending);
    runtime.advance(Duration::from_secs(5)); // after the last thing the collector saw
    worker.end();
    let spans = collector.drain();
    assert_eq!(spans[0].end, spans[0].start, "no I/O: zero duration");
    // Dropped without end: ended at the last time the collector knew of,
    // the worker's end, not at the drain.
    assert_eq!(
        spans[1].end.saturating_duration_since(spans[1].start),
        Duration::from_millis(5040)
    );
}

#[test]
fn unended_span_ends_at_last_known_time_not_later() {
    let runtime = ManualRuntime::default();
    let collector = TraceCollector::new(&runtime, Sampler::ratio(1.0));
    let span = collector.start_span("s", SpanKind::Internal, None);
    runtime.advance(Duration::from_millis(7));
    span.add_event("seen", Vec::new());
    runtime.advance(Duration::from_secs(60));
    let spans = collector.drain();
    assert_eq!(
        spans[0].end.saturating_duration_since(spans[0].start),
        Duration::from_millis(7)
    );
    drop(span);
}

#[test]
fn unsampled_traces_propagate_but_are_not_kept() {
    let runtime = TokioRuntime::with_seed(5);
    let collector = TraceCollector::new(&runtime, Sampler::ratio(0.0));
    let root = collector.start_span("root", SpanKind::Server, None);
    assert!(!root.context().sampled);
    let child = root.child("child", SpanKind::Client);
    assert!(!child.context().sampled);
    child.end();
    root.end();
    assert!(collector.drain().is_empty());
}

#[test]
fn unsampled_traces_with_an_error_are_kept_whole() {
    let runtime = TokioRuntime::with_seed(5);
    let collector = TraceCollector::new(&runtime, Sampler::ratio(0.0));
    let root = collector.start_span("root", SpanKind::Server, Some(&parent(false)));
    let child = root.child("child", SpanKind::Client);
    child.set_connect_error(&ConnectError::not_found("no such product"));
    child.end();
    root.end();
    let spans = collector.drain();
    assert_eq!(spans.len(), 2);
    assert!(spans.iter().all(|span| !span.sampled));
    assert_eq!(
        spans[1].status,
        SpanStatus::Error {
            message: "not_found: no such product".to_owned()
        }
    );
}

#[test]
fn without_error_keeping_unsampled_spans_record_nothing() {
    let runtime = TokioRuntime::with_seed(5);
    let collector = TraceCollector::new(&runtime, Sampler::ratio(0.0).without_error_keeping());
    let root = collector.start_span("root", SpanKind::Server, None);
    assert!(!root.is_recording());
    root.set_connect_error(&ConnectError::internal("boom"));
    root.end();
    assert!(collector.drain().is_empty());
}

#[test]
fn server_spans_mark_only_server_faults_as_errors() {
    let runtime = TokioRuntime::with_seed(5);
    let collector = TraceCollector::new(&runtime, Sampler::ratio(1.0));
    let client_fault = collector.start_span("a", SpanKind::Server, None);
    client_fault.set_connect_error(&ConnectError::invalid_argument("bad id"));
    let server_fault = collector.start_span("b", SpanKind::Server, None);
    server_fault.set_connect_error(&ConnectError::unavailable("down"));
    let outgoing = collector.start_span("c", SpanKind::Client, None);
    outgoing.end_with::<()>(&Err(ConnectError::invalid_argument("bad id")));
    client_fault.end();
    server_fault.end();
    let spans = collector.drain();
    let code = |span: &SpanData| {
        span.attributes
            .iter()
            .find(|(k, _)| k == "rpc.connect_rpc.error_code")
            .map(|(_, v)| v.clone())
    };
    assert_eq!(spans[0].status, SpanStatus::Unset);
    assert_eq!(code(&spans[0]), Some(AttrValue::from("invalid_argument")));
    assert!(matches!(spans[1].status, SpanStatus::Error { .. }));
    assert!(matches!(spans[2].status, SpanStatus::Error { .. }));
}

#[test]
fn attributes_replace_and_events_are_capped() {
    let runtime = ManualRuntime::default();
    let collector = TraceCollector::new(&runtime, Sampler::ratio(1.0));
    let span = collector.start_span("s", SpanKind::Internal, None);
    span.set_attribute("k", 1i64);
    span.set_attribute("k", "two");
    for _ in 0..MAX_EVENTS_PER_SPAN + 3 {
        span.add_event("e", vec![("n".into(), 1i64.into())]);
    }
    span.end();
    let spans = collector.drain();
    assert_eq!(
        spans[0].attributes,
        vec![("k".into(), AttrValue::from("two"))]
    );
    assert_eq!(spans[0].events.len(), MAX_EVENTS_PER_SPAN);
    assert_eq!(spans[0].dropped_events, 3);
}

#[test]
fn the_span_cap_bounds_memory_but_not_propagation() {
    let runtime = ManualRuntime::default();
    let collector = TraceCollector::new(&runtime, Sampler::ratio(1.0)).with_max_spans(2);
    let spans: Vec<_> = (0..5)
        .map(|_| collector.start_span("s", SpanKind::Internal, None))
        .collect();
    assert!(spans.iter().take(2).all(|span| span.is_recording()));
    assert!(!spans[4].is_recording());
    assert_eq!(collector.dropped_spans(), 3);
    assert_eq!(collector.drain().len(), 2);
}
