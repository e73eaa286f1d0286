//! The bridge under `with_default`, against a manual clock: what plain
//! `tracing` calls become in the request's trace.

use std::time::Duration;

use tracing::Instrument;

use super::*;
use crate::testing::ManualRuntime;
use crate::trace::{Sampler, SpanData, SpanStatus, TraceCollector};

fn attribute<'a>(
    attributes: &'a [(Cow<'static, str>, AttrValue)],
    key: &str,
) -> Option<&'a AttrValue> {
    attributes.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

/// Runs `f` under a SERVER span with the bridge as the subscriber; returns
/// the request's spans (the server span first).
fn traced(runtime: &ManualRuntime, bridge: TracingBridge, f: impl FnOnce()) -> Vec<SpanData> {
    let collector = TraceCollector::new(runtime, Sampler::ratio(1.0));
    let server = collector.start_span("server", SpanKind::Server, None);
    tracing::subscriber::with_default(bridge, || scope::with_span(&server.handle(), f));
    server.end();
    collector.drain()
}

#[test]
fn spans_become_children_of_the_current_span_with_fields_and_durations() {
    let runtime = ManualRuntime::default();
    let spans = traced(&runtime, TracingBridge::default(), || {
        let outer = tracing::info_span!("price_items", items = 3_u64, customer = "c-1");
        let _outer = outer.enter();
        runtime.advance(Duration::from_millis(5));
        let inner = tracing::warn_span!("lookup", sku = ?"SKU-1", cached = false);
        inner.in_scope(|| runtime.advance(Duration::from_millis(2)));
        outer.record("items", 4_u64);
    });
    assert_eq!(spans.len(), 3);
    let (server, outer, inner) = (&spans[0], &spans[1], &spans[2]);
    assert_eq!(outer.name, "price_items");
    assert_eq!(outer.kind, SpanKind::Internal);
    assert_eq!(outer.parent_span_id, Some(server.span_id));
    assert_eq!(outer.trace_id, server.trace_id);
    assert_eq!(
        attribute(&outer.attributes, "items"),
        Some(&AttrValue::Int(4))
    );
    assert_eq!(
        attribute(&outer.attributes, "customer"),
        Some(&AttrValue::from("c-1"))
    );
    assert_eq!(
        outer.end.saturating_duration_since(outer.start),
        Duration::from_millis(7)
    );
    assert_eq!(inner.name, "lookup");
    assert_eq!(
        inner.parent_span_id,
        Some(outer.span_id),
        "entered spans are current"
    );
    assert_eq!(
        attribute(&inner.attributes, "sku"),
        Some(&AttrValue::from("\"SKU-1\""))
    );
    assert_eq!(
        attribute(&inner.attributes, "cached"),
        Some(&AttrValue::Bool(false))
    );
    assert_eq!(
        inner.end.saturating_duration_since(inner.start),
        Duration::from_millis(2)
    );
    assert_eq!(inner.status, SpanStatus::Unset);
}

#[test]
fn events_land_on_the_innermost_span_named_by_their_message() {
    let runtime = ManualRuntime::default();
    let spans = traced(&runtime, TracingBridge::default(), || {
        tracing::info!(order = "o-1", "order received");
        tracing::info_span!("price_items").in_scope(|| {
            tracing::error!(total_units = 99_i64, "priced");
        });
        tracing::debug!("too verbose for the default level");
    });
    assert_eq!(spans[0].events.len(), 1);
    let received = &spans[0].events[0];
    assert_eq!(received.name, "order received");
    assert_eq!(
        attribute(&received.attributes, "order"),
        Some(&AttrValue::from("o-1"))
    );
    assert_eq!(
        attribute(&received.attributes, "level"),
        Some(&AttrValue::from("INFO"))
    );
    let priced = &spans[1].events[0];
    assert_eq!(priced.name, "priced");
    assert_eq!(
        attribute(&priced.attributes, "total_units"),
        Some(&AttrValue::Int(99))
    );
    assert_eq!(
        attribute(&priced.attributes, "level"),
        Some(&AttrValue::from("ERROR"))
    );
}

#[test]
fn the_max_level_filters_spans_and_events() {
    let runtime = ManualRuntime::default();
    let spans = traced(&runtime, TracingBridge::default(), || {
        tracing::debug_span!("hidden").in_scope(|| tracing::info!("on the server span"));
    });
    assert_eq!(spans.len(), 1, "the debug span is not recorded");
    assert_eq!(spans[0].events[0].name, "on the server span");
    let spans = traced(
        &runtime,
        TracingBridge::with_max_level(Level::DEBUG),
        || {
            tracing::debug_span!("shown").in_scope(|| tracing::debug!("kept"));
        },
    );
    assert_eq!(spans[1].name, "shown");
    assert_eq!(spans[1].events[0].name, "kept");
}

#[test]
fn instrumented_futures_are_children_across_polls_and_clients_nest_under_them() {
    #[tracing::instrument(fields(sku = %sku))]
    async fn get_product(sku: &'static str) -> usize {
        // What the client trace layer does: a child of the current span.
        let current = scope::current().expect("a current span inside the instrumented future");
        current.child("rpc", SpanKind::Client).end();
        tracing::info!("fetched");
        sku.len()
    }

    let runtime = ManualRuntime::default();
    let collector = TraceCollector::new(&runtime, Sampler::ratio(1.0));
    let server = collector.start_span("server", SpanKind::Server, None);
    let bridge = tracing::Dispatch::new(TracingBridge::default());
    let future = scope::in_span(server.handle(), async {
        let a = get_product("SKU-1").await;
        let b = async { 1 }.instrument(tracing::info_span!("priced")).await;
        a + b
    });
    let total = tracing::dispatcher::with_default(&bridge, || {
        futures_util::FutureExt::now_or_never(future).expect("ready")
    });
    server.end();
    assert_eq!(total, 6);
    let spans = collector.drain();
    let named = |name: &str| spans.iter().find(|s| s.name == name).expect(name);
    let get = named("get_product");
    assert_eq!(get.parent_span_id, Some(spans[0].span_id));
    assert_eq!(
        attribute(&get.attributes, "sku"),
        Some(&AttrValue::from("SKU-1"))
    );
    assert_eq!(named("rpc").parent_span_id, Some(get.span_id));
    assert_eq!(get.events[0].name, "fetched");
    assert_eq!(named("priced").parent_span_id, Some(spans[0].span_id));
    assert!(scope::current().is_none(), "the scope stack is left empty");
}

#[test]
fn explicit_parents_and_roots_are_honoured_and_outside_a_request_nothing_is_recorded() {
    let runtime = ManualRuntime::default();
    let spans = traced(&runtime, TracingBridge::default(), || {
        let parent = tracing::info_span!("parent");
        let child = tracing::info_span!(parent: &parent, "child");
        tracing::info!(parent: &child, "on the child");
        drop(child);
        let root = tracing::info_span!(parent: None, "detached");
        drop(root);
    });
    let names: Vec<_> = spans.iter().map(|s| s.name.as_ref()).collect();
    assert_eq!(names, ["server", "parent", "child"]);
    assert_eq!(spans[2].parent_span_id, Some(spans[1].span_id));
    assert_eq!(spans[2].events[0].name, "on the child");

    // No request: spans are disabled, events dropped, nothing panics.
    tracing::subscriber::with_default(TracingBridge::default(), || {
        let span = tracing::info_span!("orphan");
        assert!(span.is_disabled());
        span.in_scope(|| tracing::info!("nowhere"));
    });
    SPANS.with(|spans| assert!(spans.borrow().is_empty(), "closed spans are forgotten"));
}
