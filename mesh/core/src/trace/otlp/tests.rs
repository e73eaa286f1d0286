//! Our hand-written OTLP messages, decoded by the `opentelemetry-proto`
//! crate's types: a wrong field number or type fails here.

use std::time::Duration;

use opentelemetry_proto::tonic::collector::metrics::v1 as otel_metrics;
use opentelemetry_proto::tonic::collector::trace::v1 as otel_trace;
use opentelemetry_proto::tonic::common::v1::any_value::Value as OtelValue;
use prost::Message;

use super::*;
use crate::metrics::{MetricsRegistry, Side};
use crate::testing::ManualRuntime;
use crate::trace::{Sampler, TraceCollector};
use crate::{Code, Idempotency, MethodDescriptor};

fn attr<'a>(
    attributes: &'a [opentelemetry_proto::tonic::common::v1::KeyValue],
    key: &str,
) -> Option<&'a OtelValue> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

#[test]
fn spans_decode_with_the_upstream_types() {
    let runtime = ManualRuntime::default();
    runtime.advance(Duration::from_millis(1500));
    let collector = TraceCollector::new(&runtime, Sampler::ratio(1.0));
    let root = collector.start_span("root", SpanKind::Server, None);
    root.set_attribute("s", "x");
    root.set_attribute("i", -3i64);
    root.set_attribute("f", 0.5);
    root.set_attribute("b", true);
    let child = root.child("child", SpanKind::Client);
    runtime.advance(Duration::from_millis(20));
    child.add_event("retry", vec![("workmesh.attempt".into(), 2i64.into())]);
    child.set_connect_error(&ConnectError::unavailable("down"));
    child.end();
    root.end();
    let spans = collector.drain();

    let resource = Resource::new("catalog")
        .with_version("1.2.3")
        .with_instance_id("isolate-1")
        .with_attribute("deployment.environment.name", "dev");
    let offset = EpochOffset(Duration::from_secs(1_000));
    let bytes = encode_traces(&resource, offset, &spans).encode_to_vec();
    let decoded = otel_trace::ExportTraceServiceRequest::decode(bytes.as_slice()).expect("decodes");

    let resource_spans = &decoded.resource_spans[0];
    let resource_attrs = &resource_spans
        .resource
        .as_ref()
        .expect("resource")
        .attributes;
    assert_eq!(
        attr(resource_attrs, "service.name"),
        Some(&OtelValue::StringValue("catalog".into()))
    );
    assert_eq!(
        attr(resource_attrs, "service.version"),
        Some(&OtelValue::StringValue("1.2.3".into()))
    );
    assert_eq!(
        attr(resource_attrs, "service.instance.id"),
        Some(&OtelValue::StringValue("isolate-1".into()))
    );
    assert_eq!(
        attr(resource_attrs, "telemetry.sdk.name"),
        Some(&OtelValue::StringValue("workmesh".into()))
    );
    let scope_spans = &resource_spans.scope_spans[0];
    assert_eq!(
        scope_spans.scope.as_ref().map(|s| s.name.as_str()),
        Some("workmesh")
    );
    let [root, child] = scope_spans.spans.as_slice() else {
        panic!("two spans");
    };
    assert_eq!(root.trace_id, spans[0].trace_id.0.to_vec());
    assert_eq!(root.span_id, spans[0].span_id.0.to_vec());
    assert!(root.parent_span_id.is_empty());
    assert_eq!(child.parent_span_id, root.span_id);
    assert_eq!(root.kind, 2);
    assert_eq!(child.kind, 3);
    assert_eq!(root.flags, 1);
    assert_eq!(root.start_time_unix_nano, 1_001_500_000_000);
    assert_eq!(child.end_time_unix_nano, 1_001_520_000_000);
    assert_eq!(attr(&root.attributes, "i"), Some(&OtelValue::IntValue(-3)));
    assert_eq!(
        attr(&root.attributes, "f"),
        Some(&OtelValue::DoubleValue(0.5))
    );
    assert_eq!(
        attr(&root.attributes, "b"),
        Some(&OtelValue::BoolValue(true))
    );
    let status = child.status.as_ref().expect("status");
    assert_eq!(status.code, 2);
    assert_eq!(status.message, "unavailable: down");
    assert_eq!(child.events[0].name, "retry");
    assert_eq!(child.events[0].time_unix_nano, 1_001_520_000_000);
    assert_eq!(
        attr(&child.events[0].attributes, "workmesh.attempt"),
        Some(&OtelValue::IntValue(2))
    );
}

#[test]
fn metrics_decode_with_the_upstream_types() {
    static GET: MethodDescriptor = MethodDescriptor {
        service: "shop.v1.CatalogService",
        method: "GetProduct",
        idempotency: Idempotency::NoSideEffects,
    };
    let registry = MetricsRegistry::new(Side::Server, Instant::default());
    registry.record(&GET, Some(Code::NotFound), Duration::from_millis(12));
    let request = registry.to_otlp(
        &Resource::new("catalog"),
        EpochOffset::default(),
        Instant::from_epoch(Duration::from_secs(1)),
    );
    let decoded =
        otel_metrics::ExportMetricsServiceRequest::decode(request.encode_to_vec().as_slice())
            .expect("decodes");
    use opentelemetry_proto::tonic::metrics::v1::metric::Data;
    let metrics = &decoded.resource_metrics[0].scope_metrics[0].metrics;
    let Some(Data::Sum(errors)) = &metrics[1].data else {
        panic!("errors is a Sum");
    };
    let point = &errors.data_points[0];
    assert_eq!(
        point.value,
        Some(opentelemetry_proto::tonic::metrics::v1::number_data_point::Value::AsInt(1))
    );
    assert_eq!(
        attr(&point.attributes, "rpc.connect_rpc.error_code"),
        Some(&OtelValue::StringValue("not_found".into()))
    );
    assert_eq!(errors.aggregation_temporality, 2, "cumulative");
    let Some(Data::Histogram(histogram)) = &metrics[2].data else {
        panic!("duration is a Histogram");
    };
    let point = &histogram.data_points[0];
    assert_eq!(point.sum, Some(12.0));
    assert_eq!(point.bucket_counts[3], 1, "12 ms in (10, 25]");
    assert_eq!(point.time_unix_nano, 1_000_000_000);
}
