#![allow(clippy::unwrap_used)]

use std::time::Duration;

use super::*;
use workmesh::metrics::{MetricsRegistry, Side};
use workmesh::trace::otlp::{EpochOffset, Resource};
use workmesh::{Code, Idempotency, Instant, MethodDescriptor};

static GET: MethodDescriptor = MethodDescriptor {
    service: "shop.v1.CatalogService",
    method: "GetProduct",
    idempotency: Idempotency::NoSideEffects,
};

const SEC: u64 = 1_000_000_000;
/// The Unix time of the runtime clock's zero in these tests.
const EPOCH: Duration = Duration::from_secs(1_800_000_000);

fn export(metrics: &MetricsRegistry, at_secs: u64) -> Vec<MetricRow> {
    let resource = Resource::new("shop.v1.CatalogService").with_instance_id("isolate-1");
    let now = Instant::default() + Duration::from_secs(at_secs);
    let request = metrics.to_otlp(&resource, EpochOffset(EPOCH), now);
    decode_metrics(Encoding::Protobuf, &request.encode_to_vec())
        .unwrap()
        .rows
}

fn window(from_secs: u64, to_secs: u64) -> TimeRange {
    TimeRange {
        from_ns: EPOCH.as_secs() * SEC + from_secs * SEC,
        to_ns: EPOCH.as_secs() * SEC + to_secs * SEC,
    }
}

#[test]
fn workmesh_exports_decode_into_rows_per_method_and_code() {
    let metrics = MetricsRegistry::new(Side::Server, Instant::default());
    metrics.record(&GET, None, Duration::from_millis(12));
    metrics.record(&GET, Some(Code::NotFound), Duration::from_millis(3));
    let rows = export(&metrics, 60);
    // requests, errors and duration, each for the ok and the not_found series.
    assert_eq!(rows.len(), 6);
    let requests: Vec<_> = rows
        .iter()
        .filter(|r| r.metric == "rpc.server.requests")
        .collect();
    assert_eq!(requests.len(), 2);
    assert!(requests
        .iter()
        .all(|r| r.service == "shop.v1.CatalogService"
            && r.instance == "isolate-1"
            && r.rpc_method == "GetProduct"
            && r.temporality == 2
            && r.value == 1.0));
    let codes: Vec<_> = requests.iter().map(|r| r.code.as_str()).collect();
    assert_eq!(codes, ["", "not_found"]);
    let duration = rows
        .iter()
        .find(|r| r.metric == "rpc.server.duration" && r.code.is_empty())
        .unwrap();
    assert_eq!((duration.value, duration.sum), (1.0, 12.0));
    assert_eq!(duration.time_ns, pad_ns((EPOCH.as_secs() + 60) * SEC));
    assert_eq!(duration.start_ns, pad_ns(EPOCH.as_secs() * SEC));
}

#[test]
fn cumulative_series_count_what_happened_inside_the_window() {
    let metrics = MetricsRegistry::new(Side::Server, Instant::default());
    for _ in 0..10 {
        metrics.record(&GET, None, Duration::from_millis(20));
    }
    let mut rows = export(&metrics, 60);
    for _ in 0..30 {
        metrics.record(&GET, None, Duration::from_millis(200));
    }
    metrics.record(&GET, Some(Code::Unavailable), Duration::from_millis(300));
    rows.extend(export(&metrics, 120));

    // The whole life: 41 requests, 1 error.
    let [all] = red(&rows, window(0, 180)).try_into().unwrap();
    assert_eq!((all.requests, all.errors), (41.0, 1.0));
    assert_eq!(all.side, "server");
    assert_eq!(
        (all.service.as_str(), all.method.as_str()),
        ("shop.v1.CatalogService", "GetProduct")
    );
    assert!((all.rate - 41.0 / 180.0).abs() < 1e-9);
    assert_eq!(
        all.errors_by_code,
        BTreeMap::from([("unavailable".to_owned(), 1.0)])
    );

    // Only the second minute: the later export minus the earlier one.
    let [second] = red(&rows, window(90, 150)).try_into().unwrap();
    assert_eq!((second.requests, second.errors), (31.0, 1.0));
    assert!((second.error_rate - 1.0 / 31.0).abs() < 1e-9);
    // 30 calls in (100, 250] and one in (250, 500]: p50 inside (100, 250].
    let p50 = second.p50_ms.unwrap();
    assert!(p50 > 100.0 && p50 <= 250.0, "{p50}");
    let p99 = second.p99_ms.unwrap();
    assert!(p99 > 250.0 && p99 <= 500.0, "{p99}");
    assert!((second.mean_ms.unwrap() - (30.0 * 200.0 + 300.0) / 31.0).abs() < 1e-9);

    // Nothing exported inside the window: nothing to show.
    assert!(red(&rows, window(130, 170)).is_empty());
}

#[test]
fn quantiles_interpolate_inside_buckets() {
    let bounds = [0.0, 10.0, 100.0];
    // 4 values in (0, 10], 4 in (10, 100].
    let counts = [0.0, 4.0, 4.0, 0.0];
    assert_eq!(quantile(&bounds, &counts, 0.5), Some(10.0));
    assert_eq!(quantile(&bounds, &counts, 0.25), Some(5.0));
    assert_eq!(quantile(&bounds, &counts, 0.75), Some(55.0));
    // The open last bucket reads as its lower bound, the first as its upper.
    assert_eq!(quantile(&bounds, &[0.0, 0.0, 0.0, 3.0], 0.99), Some(100.0));
    assert_eq!(quantile(&bounds, &[2.0, 0.0, 0.0, 0.0], 0.5), Some(0.0));
    assert_eq!(quantile(&bounds, &[0.0; 4], 0.5), None);
    assert_eq!(
        quantile(&bounds, &[1.0], 0.5),
        None,
        "counts must fit bounds"
    );
}

#[test]
fn delta_points_are_summed_and_bad_points_refused() {
    let body = br#"{"resourceMetrics":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"svc"}}]},
      "scopeMetrics":[{"metrics":[
        {"name":"rpc.client.requests","sum":{"aggregationTemporality":1,"dataPoints":[
          {"attributes":[{"key":"rpc.service","value":{"stringValue":"S"}},{"key":"rpc.method","value":{"stringValue":"M"}}],
           "timeUnixNano":"1000000000","asInt":"4"},
          {"attributes":[{"key":"rpc.service","value":{"stringValue":"S"}},{"key":"rpc.method","value":{"stringValue":"M"}}],
           "timeUnixNano":"2000000000","asInt":"6"},
          {"timeUnixNano":"0","asInt":"1"}]}},
        {"name":"rpc.client.duration","histogram":{"aggregationTemporality":1,"dataPoints":[
          {"timeUnixNano":"1000000000","count":"1","bucketCounts":["1"],"explicitBounds":[1,2]}]}}
      ]}]}]}"#;
    let decoded = decode_metrics(Encoding::Json, body).unwrap();
    assert_eq!(
        decoded.rejected, 2,
        "a point without time, buckets that do not fit"
    );
    let range = TimeRange {
        from_ns: 0,
        to_ns: 3_000_000_000,
    };
    let [client] = red(&decoded.rows, range).try_into().unwrap();
    assert_eq!((client.side.as_str(), client.requests), ("client", 10.0));
    assert_eq!(client.p50_ms, None);
    let garbage = decode_metrics(Encoding::Protobuf, b"\xff\xff\xff").unwrap_err();
    assert!(garbage.contains("ExportMetricsServiceRequest"), "{garbage}");
}

#[test]
fn errors_are_broken_down_by_code_within_the_window() {
    let metrics = MetricsRegistry::new(Side::Server, Instant::default());
    metrics.record(&GET, Some(Code::NotFound), Duration::from_millis(1));
    let mut rows = export(&metrics, 60);
    metrics.record(&GET, None, Duration::from_millis(1));
    metrics.record(&GET, Some(Code::NotFound), Duration::from_millis(1));
    metrics.record(&GET, Some(Code::NotFound), Duration::from_millis(1));
    metrics.record(&GET, Some(Code::InvalidArgument), Duration::from_millis(1));
    rows.extend(export(&metrics, 120));

    let [all] = red(&rows, window(0, 180)).try_into().unwrap();
    assert_eq!((all.requests, all.errors), (5.0, 4.0));
    assert_eq!(
        all.errors_by_code,
        BTreeMap::from([
            ("invalid_argument".to_owned(), 1.0),
            ("not_found".to_owned(), 3.0)
        ])
    );
    // The second minute only: the not_found series grew by 2.
    let [second] = red(&rows, window(90, 150)).try_into().unwrap();
    assert_eq!(second.errors_by_code["not_found"], 2.0);
    let json = serde_json::to_value(&second).unwrap();
    assert_eq!(json["errorsByCode"]["not_found"], 2.0);
}

#[test]
fn the_same_method_reported_by_two_workers_stays_two_rows() {
    let metrics = MetricsRegistry::new(Side::Server, Instant::default());
    metrics.record(&GET, None, Duration::from_millis(1));
    let mut rows = export(&metrics, 60);
    // The gateway serves (forwards) the same method and reports it too.
    let mut gateway = rows.clone();
    for row in &mut gateway {
        row.service = "gateway".to_owned();
    }
    rows.extend(gateway);
    let red = red(&rows, window(0, 120));
    let seen: Vec<(&str, &str, f64)> = red
        .iter()
        .map(|m| (m.reporter.as_str(), m.method.as_str(), m.requests))
        .collect();
    assert_eq!(
        seen,
        [
            ("gateway", "GetProduct", 1.0),
            ("shop.v1.CatalogService", "GetProduct", 1.0)
        ]
    );
}
