//! Conversion of a [`MetricsRegistry`] to an OTLP metrics request.

use super::{MetricsRegistry, SeriesKey, Side, DEFAULT_BOUNDS_MS};
use crate::trace::otlp::{key_value, proto, scope, EpochOffset, Resource};
use crate::trace::rpc::{attr, CONNECT_RPC};
use crate::trace::AttrValue;
use crate::Instant;

fn attributes(key: &SeriesKey) -> Vec<proto::KeyValue> {
    let mut attributes = vec![
        key_value(attr::RPC_SYSTEM, &CONNECT_RPC.into()),
        key_value(attr::RPC_SERVICE, &key.service.into()),
        key_value(attr::RPC_METHOD, &key.method.into()),
    ];
    if let Some(code) = key.code {
        attributes.push(key_value(attr::CONNECT_ERROR_CODE, &AttrValue::from(code)));
    }
    attributes
}

impl MetricsRegistry {
    /// The registry as one cumulative OTLP request at time `now`:
    /// `rpc.<side>.requests` and `rpc.<side>.errors` (monotonic Sums) and
    /// `rpc.<side>.duration` (Histogram, ms), each data point carrying
    /// `rpc.system`, `rpc.service`, `rpc.method` and, for failures,
    /// `rpc.connect_rpc.error_code`. An empty registry gives an empty
    /// request (which the exporter does not send).
    pub fn to_otlp(
        &self,
        resource: &Resource,
        offset: EpochOffset,
        now: Instant,
    ) -> proto::ExportMetricsServiceRequest {
        let inner = self.inner.borrow();
        if inner.series.is_empty() {
            return proto::ExportMetricsServiceRequest::default();
        }
        let prefix = match inner.side {
            Side::Server => "rpc.server",
            Side::Client => "rpc.client",
        };
        let start = offset.unix_nanos(inner.start);
        let time = offset.unix_nanos(now.max(inner.start));
        let sum = |name: &str, description: &str, value: fn(&super::Series) -> u64| proto::Metric {
            name: format!("{prefix}.{name}"),
            description: description.to_owned(),
            unit: "{request}".to_owned(),
            data: Some(proto::metric::Data::Sum(proto::Sum {
                data_points: inner
                    .series
                    .iter()
                    .map(|(key, series)| proto::NumberDataPoint {
                        attributes: attributes(key),
                        start_time_unix_nano: start,
                        time_unix_nano: time,
                        flags: 0,
                        value: Some(proto::number_data_point::Value::AsInt(
                            i64::try_from(value(series)).unwrap_or(i64::MAX),
                        )),
                    })
                    .collect(),
                aggregation_temporality: proto::CUMULATIVE,
                is_monotonic: true,
            })),
        };
        let requests = sum("requests", "Calls finished, by outcome.", |s| s.requests);
        let errors = sum("errors", "Calls that ended with a Connect error.", |s| {
            s.errors
        });
        let duration = proto::Metric {
            name: format!("{prefix}.duration"),
            description: "Call latency.".to_owned(),
            unit: "ms".to_owned(),
            data: Some(proto::metric::Data::Histogram(proto::Histogram {
                data_points: inner
                    .series
                    .iter()
                    .map(|(key, series)| proto::HistogramDataPoint {
                        attributes: attributes(key),
                        start_time_unix_nano: start,
                        time_unix_nano: time,
                        count: series.requests,
                        sum: Some(series.sum_ms),
                        bucket_counts: series.bucket_counts.clone(),
                        explicit_bounds: DEFAULT_BOUNDS_MS.to_vec(),
                        flags: 0,
                        min: (series.requests > 0).then_some(series.min_ms),
                        max: (series.requests > 0).then_some(series.max_ms),
                    })
                    .collect(),
                aggregation_temporality: proto::CUMULATIVE,
            })),
        };
        proto::ExportMetricsServiceRequest {
            resource_metrics: vec![proto::ResourceMetrics {
                resource: Some(resource.to_proto()),
                scope_metrics: vec![proto::ScopeMetrics {
                    scope: Some(scope()),
                    metrics: vec![requests, errors, duration],
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        }
    }
}
