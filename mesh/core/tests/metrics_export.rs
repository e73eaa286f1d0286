//! RED metrics as an isolate exports them: recorded per call, throttled by
//! an `ExportSchedule`, POSTed as OTLP/HTTP protobuf to `/v1/metrics` of a
//! wiremock endpoint, decoded with `opentelemetry-proto`'s types. Values are
//! cumulative: each export carries the totals since the registry started.
#![cfg(all(feature = "tokio", feature = "http-client"))]
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::number_data_point;
use opentelemetry_proto::tonic::metrics::v1::{AggregationTemporality, Metric};
use prost::Message;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};
use workmesh::client::HttpTransport;
use workmesh::metrics::{ExportSchedule, MetricsRegistry, Side};
use workmesh::trace::otlp::EpochOffset;
use workmesh::trace::{OtlpExporter, Resource};
use workmesh::{Code, Idempotency, Instant, MethodDescriptor};

static GET_PRODUCT: MethodDescriptor = MethodDescriptor {
    service: "shop.v1.CatalogService",
    method: "GetProduct",
    idempotency: Idempotency::NoSideEffects,
};

/// Unix time of the runtime clock's zero (Workers: 0; here, a fixed date).
const EPOCH: Duration = Duration::from_secs(1_790_000_000);

fn string_attr<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a str> {
    attributes.iter().find(|kv| kv.key == key).and_then(|kv| {
        match kv.value.as_ref()?.value.as_ref()? {
            Value::StringValue(s) => Some(s.as_str()),
            _ => None,
        }
    })
}

fn metric<'a>(request: &'a ExportMetricsServiceRequest, name: &str) -> &'a Metric {
    request.resource_metrics[0].scope_metrics[0]
        .metrics
        .iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("no metric {name}"))
}

/// The `rpc.server.requests` value of the series with `code` (None = ok).
fn requests(request: &ExportMetricsServiceRequest, code: Option<&str>) -> (i64, u64, u64) {
    let Some(Data::Sum(sum)) = &metric(request, "rpc.server.requests").data else {
        panic!("requests is a Sum");
    };
    assert!(sum.is_monotonic);
    assert_eq!(
        sum.aggregation_temporality,
        AggregationTemporality::Cumulative as i32
    );
    let point = sum
        .data_points
        .iter()
        .find(|p| string_attr(&p.attributes, "rpc.connect_rpc.error_code") == code)
        .unwrap();
    assert_eq!(
        string_attr(&point.attributes, "rpc.service"),
        Some("shop.v1.CatalogService")
    );
    assert_eq!(
        string_attr(&point.attributes, "rpc.method"),
        Some("GetProduct")
    );
    let Some(number_data_point::Value::AsInt(value)) = point.value else {
        panic!("an integer count");
    };
    (value, point.start_time_unix_nano, point.time_unix_nano)
}

#[tokio::test]
async fn an_isolate_exports_cumulative_red_metrics_at_most_once_per_interval() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/metrics"))
        .and(header("content-type", "application/x-protobuf"))
        .and(header("x-api-key", "k"))
        .respond_with(ResponseTemplate::new(200))
        .expect(2)
        .mount(&server)
        .await;
    let exporter = OtlpExporter::new(
        HttpTransport::new(server.uri()),
        &server.uri(),
        Resource::new("shop.v1.CatalogService"),
    )
    .unwrap()
    .with_header("x-api-key", "k")
    .unwrap()
    .with_epoch_offset(EPOCH);

    let start = Instant::default() + Duration::from_secs(10);
    let registry = MetricsRegistry::new(Side::Server, start);
    let schedule = ExportSchedule::new(Duration::from_secs(5));
    let offset = EpochOffset(EPOCH);
    // What the adapter does after each request.
    let after_request = |now: Instant| {
        schedule
            .due(now)
            .then(|| registry.to_otlp(exporter.resource(), offset, now))
    };

    registry.record(&GET_PRODUCT, None, Duration::from_millis(3));
    registry.record(&GET_PRODUCT, Some(Code::NotFound), Duration::from_millis(1));
    let first = after_request(start + Duration::from_secs(1)).expect("the first request exports");
    exporter.export_metrics(first).await.unwrap();

    registry.record(&GET_PRODUCT, None, Duration::from_millis(30));
    assert!(
        after_request(start + Duration::from_secs(2)).is_none(),
        "throttled"
    );
    registry.record(&GET_PRODUCT, None, Duration::from_millis(300));
    let second = after_request(start + Duration::from_secs(6)).expect("due again");
    exporter.export_metrics(second).await.unwrap();

    let received = server.received_requests().await.unwrap();
    assert_eq!(received.len(), 2);
    let decoded: Vec<ExportMetricsServiceRequest> = received
        .iter()
        .map(|r| ExportMetricsServiceRequest::decode(r.body.as_slice()).unwrap())
        .collect();
    let resource = decoded[0].resource_metrics[0].resource.as_ref().unwrap();
    assert_eq!(
        string_attr(&resource.attributes, "service.name"),
        Some("shop.v1.CatalogService")
    );

    let unix = |at: Duration| (EPOCH + at).as_nanos() as u64;
    let (ok1, start1, time1) = requests(&decoded[0], None);
    let (ok2, start2, time2) = requests(&decoded[1], None);
    assert_eq!(
        (ok1, ok2),
        (1, 3),
        "cumulative: the second export carries the totals"
    );
    assert_eq!(start1, unix(Duration::from_secs(10)));
    assert_eq!(start2, start1, "one series: the same start time");
    assert_eq!(
        (time1, time2),
        (unix(Duration::from_secs(11)), unix(Duration::from_secs(16)))
    );
    assert_eq!(requests(&decoded[1], Some("not_found")).0, 1);

    let Some(Data::Sum(errors)) = &metric(&decoded[1], "rpc.server.errors").data else {
        panic!("errors is a Sum");
    };
    let failed: i64 = errors
        .data_points
        .iter()
        .map(|p| match p.value {
            Some(number_data_point::Value::AsInt(v)) => v,
            _ => 0,
        })
        .sum();
    assert_eq!(failed, 1);

    let duration = metric(&decoded[1], "rpc.server.duration");
    assert_eq!(duration.unit, "ms");
    let Some(Data::Histogram(histogram)) = &duration.data else {
        panic!("duration is a Histogram");
    };
    assert_eq!(
        histogram.aggregation_temporality,
        AggregationTemporality::Cumulative as i32
    );
    let ok = histogram
        .data_points
        .iter()
        .find(|p| string_attr(&p.attributes, "rpc.connect_rpc.error_code").is_none())
        .unwrap();
    assert_eq!(ok.count, 3);
    assert_eq!(ok.sum, Some(333.0));
    assert_eq!(ok.bucket_counts.iter().sum::<u64>(), 3);
    assert_eq!((ok.min, ok.max), (Some(3.0), Some(300.0)));
}
