use std::time::Duration;

use super::*;
use crate::trace::otlp::{proto, EpochOffset, Resource};
use crate::Idempotency;

static GET: MethodDescriptor = MethodDescriptor {
    service: "shop.v1.CatalogService",
    method: "GetProduct",
    idempotency: Idempotency::NoSideEffects,
};
static LIST: MethodDescriptor = MethodDescriptor {
    service: "shop.v1.CatalogService",
    method: "ListProducts",
    idempotency: Idempotency::NoSideEffects,
};

#[test]
fn buckets_follow_otel_bounds_upper_inclusive() {
    let registry = MetricsRegistry::new(Side::Server, Instant::default());
    for ms in [0, 5, 6, 10_000, 10_001] {
        registry.record(&GET, None, Duration::from_millis(ms));
    }
    let snapshot = registry.snapshot();
    assert_eq!(snapshot.len(), 1);
    let series = &snapshot[0].1;
    assert_eq!(series.bucket_counts[0], 1, "0 ms in (-inf, 0]");
    assert_eq!(series.bucket_counts[1], 1, "5 ms in (0, 5]");
    assert_eq!(series.bucket_counts[2], 1, "6 ms in (5, 10]");
    assert_eq!(series.bucket_counts[14], 1, "10 s in (7500, 10000]");
    assert_eq!(series.bucket_counts[15], 1, "overflow");
    assert_eq!(series.requests, 5);
    assert_eq!((series.min_ms, series.max_ms), (0.0, 10_001.0));
}

#[test]
fn series_split_by_method_and_code() {
    let registry = MetricsRegistry::new(Side::Server, Instant::default());
    registry.record(&GET, None, Duration::from_millis(1));
    registry.record(&GET, Some(Code::NotFound), Duration::from_millis(1));
    registry.record(&GET, Some(Code::NotFound), Duration::from_millis(1));
    registry.record(&LIST, Some(Code::Internal), Duration::from_millis(1));
    assert_eq!(registry.snapshot().len(), 3);
    assert_eq!(
        registry.totals(&GET),
        Totals {
            requests: 3,
            errors: 2
        }
    );
    assert_eq!(
        registry.totals(&LIST),
        Totals {
            requests: 1,
            errors: 1
        }
    );
}

#[test]
fn otlp_is_cumulative_from_creation() {
    let start = Instant::from_epoch(Duration::from_secs(100));
    let registry = MetricsRegistry::new(Side::Client, start);
    registry.record(&GET, None, Duration::from_millis(30));
    registry.record(&GET, Some(Code::Unavailable), Duration::from_millis(70));
    let offset = EpochOffset(Duration::from_secs(1_700_000_000));
    let now = start + Duration::from_secs(60);
    let request = registry.to_otlp(&Resource::new("orders"), offset, now);
    let metrics = &request.resource_metrics[0].scope_metrics[0].metrics;
    let names: Vec<_> = metrics.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "rpc.client.requests",
            "rpc.client.errors",
            "rpc.client.duration"
        ]
    );
    let Some(proto::metric::Data::Sum(requests)) = &metrics[0].data else {
        panic!("requests is a Sum");
    };
    assert_eq!(requests.aggregation_temporality, proto::CUMULATIVE);
    assert!(requests.is_monotonic);
    assert_eq!(requests.data_points.len(), 2);
    let point = &requests.data_points[0];
    assert_eq!(point.start_time_unix_nano, 1_700_000_100_000_000_000);
    assert_eq!(point.time_unix_nano, 1_700_000_160_000_000_000);
    let Some(proto::metric::Data::Histogram(histogram)) = &metrics[2].data else {
        panic!("duration is a Histogram");
    };
    let total: u64 = histogram.data_points.iter().map(|p| p.count).sum();
    assert_eq!(total, 2);
    assert_eq!(histogram.data_points[0].explicit_bounds.len(), 15);
    assert_eq!(histogram.data_points[0].bucket_counts.len(), 16);
}

#[test]
fn empty_registry_exports_nothing() {
    let registry = MetricsRegistry::new(Side::Server, Instant::default());
    let request = registry.to_otlp(
        &Resource::new("x"),
        EpochOffset::default(),
        Instant::default(),
    );
    assert!(request.resource_metrics.is_empty());
}
