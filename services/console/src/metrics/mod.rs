//! OTLP metrics in (`POST /v1/metrics`), RED numbers out.
//!
//! Every Sum and Histogram data point is stored as one row of
//! `metric_points`, keyed by the exporting resource (`service.name`,
//! `service.instance.id`), the metric name, the point's `rpc.service`,
//! `rpc.method` and `rpc.connect_rpc.error_code` attributes (other
//! attributes are not kept), its start time and its time. workmesh exports
//! `rpc.server.*` / `rpc.client.*` `requests`, `errors` (Sums) and
//! `duration` (a Histogram in ms), cumulative from the isolate's start.
//!
//! **Cumulative to windows.** A cumulative series (one start time) grows
//! from export to export; what happened within `[from, to]` is its last
//! value up to `to` minus its last value before `from` (zero when it had
//! none: a series first seen inside the window counts whole). An isolate
//! that restarts begins a new series with a new start time. Delta points
//! are summed when their time falls in the window.

use std::collections::BTreeMap;

use prost::Message;
use serde::{Deserialize, Serialize};
use serde_json::json;
use workmesh::trace::otlp::proto;

use crate::otlp::{display_value, pad_ns, parse_ns, service_name, Encoding};
use crate::query::TimeRange;

/// The most data points one export may carry; more is refused as a whole.
pub const MAX_POINTS_PER_EXPORT: usize = 10_000;

/// `AggregationTemporality.DELTA`.
const DELTA: i64 = 1;

/// One stored data point (the `metric_points` table).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricRow {
    pub service: String,
    pub instance: String,
    pub metric: String,
    pub rpc_service: String,
    pub rpc_method: String,
    /// The Connect error code, empty for successes.
    pub code: String,
    /// Unix nanoseconds, 20-digit zero-padded decimal.
    pub start_ns: String,
    pub time_ns: String,
    /// OTLP aggregation temporality: 1 delta, 2 cumulative.
    pub temporality: i64,
    /// A Sum's value, or a Histogram's count.
    pub value: f64,
    /// A Histogram's sum (0 for Sums).
    pub sum: f64,
    /// A Histogram's bucket counts and bounds, as JSON arrays.
    pub bucket_counts: String,
    pub bounds: String,
}

/// Decoded metric points, and how many were refused.
pub type DecodedMetrics = crate::otlp::Decoded<MetricRow>;

/// Decodes an `ExportMetricsServiceRequest` in either encoding. Points
/// without a time, and histogram points whose bucket counts do not fit
/// their bounds, are refused and counted; metric types other than Sum and
/// Histogram are skipped.
pub fn decode_metrics(encoding: Encoding, body: &[u8]) -> Result<DecodedMetrics, String> {
    let request = match encoding {
        Encoding::Protobuf => proto::ExportMetricsServiceRequest::decode(body)
            .map_err(|e| format!("not an OTLP ExportMetricsServiceRequest: {e}"))?,
        Encoding::Json => crate::otlp_json::metrics_request(body)
            .map_err(|e| format!("not an OTLP/JSON ExportMetricsServiceRequest: {e}"))?,
    };
    let total: usize = request
        .resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
        .map(|m| match &m.data {
            Some(proto::metric::Data::Sum(s)) => s.data_points.len(),
            Some(proto::metric::Data::Histogram(h)) => h.data_points.len(),
            None => 0,
        })
        .sum();
    if total > MAX_POINTS_PER_EXPORT {
        return Err(format!(
            "{total} data points in one export; at most {MAX_POINTS_PER_EXPORT}"
        ));
    }
    let mut decoded = DecodedMetrics::default();
    for resource_metrics in request.resource_metrics {
        let resource = resource_metrics.resource.as_ref();
        let service = service_name(resource);
        let instance = resource
            .and_then(|r| {
                r.attributes
                    .iter()
                    .find(|kv| kv.key == "service.instance.id")
            })
            .and_then(|kv| kv.value.as_ref())
            .map(display_value)
            .unwrap_or_default();
        let base = MetricRow {
            service,
            instance,
            metric: String::new(),
            rpc_service: String::new(),
            rpc_method: String::new(),
            code: String::new(),
            start_ns: String::new(),
            time_ns: String::new(),
            temporality: 0,
            value: 0.0,
            sum: 0.0,
            bucket_counts: "[]".to_owned(),
            bounds: "[]".to_owned(),
        };
        for metric in resource_metrics
            .scope_metrics
            .into_iter()
            .flat_map(|s| s.metrics)
        {
            let row = |attributes: &[proto::KeyValue], start: u64, time: u64, temporality: i32| {
                let attr = |key: &str| {
                    attributes
                        .iter()
                        .find(|kv| kv.key == key)
                        .and_then(|kv| kv.value.as_ref())
                        .map(display_value)
                        .unwrap_or_default()
                };
                MetricRow {
                    metric: metric.name.clone(),
                    rpc_service: attr("rpc.service"),
                    rpc_method: attr("rpc.method"),
                    code: attr("rpc.connect_rpc.error_code"),
                    start_ns: pad_ns(start),
                    time_ns: pad_ns(time),
                    temporality: i64::from(temporality),
                    ..base.clone()
                }
            };
            match &metric.data {
                Some(proto::metric::Data::Sum(sum)) => {
                    for point in &sum.data_points {
                        use proto::number_data_point::Value as V;
                        let value = match point.value {
                            Some(V::AsInt(i)) => i as f64,
                            Some(V::AsDouble(f)) if f.is_finite() => f,
                            _ => {
                                decoded.rejected += 1;
                                continue;
                            }
                        };
                        if point.time_unix_nano == 0 {
                            decoded.rejected += 1;
                            continue;
                        }
                        decoded.rows.push(MetricRow {
                            value,
                            ..row(
                                &point.attributes,
                                point.start_time_unix_nano,
                                point.time_unix_nano,
                                sum.aggregation_temporality,
                            )
                        });
                    }
                }
                Some(proto::metric::Data::Histogram(histogram)) => {
                    for point in &histogram.data_points {
                        let fits = point.bucket_counts.is_empty()
                            || point.bucket_counts.len() == point.explicit_bounds.len() + 1;
                        let finite = point.explicit_bounds.iter().all(|b| b.is_finite());
                        if point.time_unix_nano == 0 || !fits || !finite {
                            decoded.rejected += 1;
                            continue;
                        }
                        decoded.rows.push(MetricRow {
                            value: point.count as f64,
                            sum: point.sum.filter(|s| s.is_finite()).unwrap_or(0.0),
                            bucket_counts: json!(point.bucket_counts).to_string(),
                            bounds: json!(point.explicit_bounds).to_string(),
                            ..row(
                                &point.attributes,
                                point.start_time_unix_nano,
                                point.time_unix_nano,
                                histogram.aggregation_temporality,
                            )
                        });
                    }
                }
                None => {}
            }
        }
    }
    Ok(decoded)
}

/// RED numbers of one method, seen from one side.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MethodRed {
    /// `server` or `client`.
    pub side: String,
    /// The `service.name` of the Workers that reported it: the gateway
    /// serves `shop.v1.OrderService/CreateOrder` too (it forwards it), and
    /// its numbers are not the orders Worker's.
    pub reporter: String,
    pub service: String,
    pub method: String,
    pub requests: f64,
    pub errors: f64,
    /// `errors` by Connect code (`not_found`, `unavailable`, …); codes
    /// with no error in the window are left out.
    pub errors_by_code: BTreeMap<String, f64>,
    /// Requests per second over the window.
    pub rate: f64,
    pub error_rate: f64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub mean_ms: Option<f64>,
}

/// Merged histogram of a window.
#[derive(Default)]
struct Histogram {
    bounds: Vec<f64>,
    counts: Vec<f64>,
    sum: f64,
}

impl Histogram {
    fn add(&mut self, bounds: &[f64], counts: &[f64], sum: f64) {
        if self.counts.is_empty() {
            self.bounds = bounds.to_vec();
            self.counts = vec![0.0; counts.len()];
        }
        // Points with other bounds cannot be merged bucket by bucket.
        if self.bounds != bounds || self.counts.len() != counts.len() {
            return;
        }
        for (total, count) in self.counts.iter_mut().zip(counts) {
            *total += count;
        }
        self.sum += sum;
    }
}

/// The value at quantile `q` (0..=1) of a histogram with OTLP explicit
/// bounds (`counts.len() == bounds.len() + 1`; bucket `i` holds values in
/// `(bounds[i-1], bounds[i]]`), interpolated linearly inside the bucket.
/// The open first bucket reads as its upper bound, the open last one as
/// its lower bound. `None` when the histogram is empty.
pub fn quantile(bounds: &[f64], counts: &[f64], q: f64) -> Option<f64> {
    let total: f64 = counts.iter().sum();
    if total <= 0.0 || counts.len() != bounds.len() + 1 {
        return None;
    }
    let rank = q.clamp(0.0, 1.0) * total;
    let mut below = 0.0;
    for (i, count) in counts.iter().enumerate() {
        if *count > 0.0 && below + count >= rank {
            return Some(
                match (i.checked_sub(1).and_then(|j| bounds.get(j)), bounds.get(i)) {
                    (Some(lower), Some(upper)) => {
                        lower + (upper - lower) * ((rank - below) / count).clamp(0.0, 1.0)
                    }
                    (None, Some(upper)) => *upper,
                    (Some(lower), None) => *lower,
                    (None, None) => return None,
                },
            );
        }
        below += count;
    }
    bounds.last().copied()
}

/// What each series added within `range`: see the module docs.
fn window_deltas(rows: &[MetricRow], range: TimeRange) -> Vec<(&MetricRow, f64, Vec<f64>, f64)> {
    type Key<'a> = (
        &'a str,
        &'a str,
        &'a str,
        &'a str,
        &'a str,
        &'a str,
        &'a str,
    );
    let mut series: BTreeMap<Key, Vec<&MetricRow>> = BTreeMap::new();
    for row in rows {
        let key = (
            row.service.as_str(),
            row.instance.as_str(),
            row.metric.as_str(),
            row.rpc_service.as_str(),
            row.rpc_method.as_str(),
            row.code.as_str(),
            row.start_ns.as_str(),
        );
        series.entry(key).or_default().push(row);
    }
    let counts = |row: &MetricRow| -> Vec<f64> {
        serde_json::from_str::<Vec<f64>>(&row.bucket_counts).unwrap_or_default()
    };
    let mut out = Vec::new();
    for mut points in series.into_values() {
        points.sort_by_key(|p| parse_ns(&p.time_ns));
        let inside = |p: &&&MetricRow| {
            let t = parse_ns(&p.time_ns);
            t >= range.from_ns && t <= range.to_ns
        };
        if points.first().is_some_and(|p| p.temporality == DELTA) {
            for point in points.iter().filter(inside) {
                out.push((*point, point.value, counts(point), point.sum));
            }
            continue;
        }
        let Some(last) = points
            .iter()
            .rev()
            .find(|p| parse_ns(&p.time_ns) <= range.to_ns)
        else {
            continue;
        };
        if parse_ns(&last.time_ns) < range.from_ns {
            continue;
        }
        let before = points
            .iter()
            .rev()
            .find(|p| parse_ns(&p.time_ns) < range.from_ns);
        let (value, mut buckets, sum) = (last.value, counts(last), last.sum);
        let (value, sum) = match before {
            Some(b) => {
                for (total, earlier) in buckets.iter_mut().zip(counts(b)) {
                    *total = (*total - earlier).max(0.0);
                }
                ((value - b.value).max(0.0), sum - b.sum)
            }
            None => (value, sum),
        };
        out.push((*last, value, buckets, sum));
    }
    out
}

/// RED per side, service, method and reporting Worker over `range`, from workmesh's
/// `rpc.{server,client}.{requests,errors,duration}`; sorted by side
/// (server first), service, method.
pub fn red(rows: &[MetricRow], range: TimeRange) -> Vec<MethodRed> {
    #[derive(Default)]
    struct Acc {
        requests: f64,
        errors: f64,
        errors_by_code: BTreeMap<String, f64>,
        histogram: Histogram,
    }
    let mut methods: BTreeMap<(String, String, String, String), Acc> = BTreeMap::new();
    for (row, value, buckets, sum) in window_deltas(rows, range) {
        let Some((side, name)) = row
            .metric
            .strip_prefix("rpc.")
            .and_then(|rest| rest.split_once('.'))
        else {
            continue;
        };
        if side != "server" && side != "client" {
            continue;
        }
        let key = (
            side.to_owned(),
            row.rpc_service.clone(),
            row.rpc_method.clone(),
            row.service.clone(),
        );
        let acc = methods.entry(key).or_default();
        match name {
            "requests" => acc.requests += value,
            "errors" => {
                acc.errors += value;
                if value > 0.0 {
                    let code = if row.code.is_empty() {
                        "unknown"
                    } else {
                        &row.code
                    };
                    *acc.errors_by_code.entry(code.to_owned()).or_default() += value;
                }
            }
            "duration" => {
                let bounds: Vec<f64> = serde_json::from_str(&row.bounds).unwrap_or_default();
                acc.histogram.add(&bounds, &buckets, sum);
            }
            _ => {}
        }
    }
    let seconds = range.seconds().max(1e-9);
    let mut out: Vec<MethodRed> = methods
        .into_iter()
        .filter(|(_, acc)| acc.requests > 0.0)
        .map(|((side, service, method, reporter), acc)| {
            let h = &acc.histogram;
            let count: f64 = h.counts.iter().sum();
            MethodRed {
                side,
                reporter,
                service,
                method,
                requests: acc.requests,
                errors: acc.errors,
                errors_by_code: acc.errors_by_code,
                rate: acc.requests / seconds,
                error_rate: acc.errors / acc.requests,
                p50_ms: quantile(&h.bounds, &h.counts, 0.5),
                p99_ms: quantile(&h.bounds, &h.counts, 0.99),
                mean_ms: (count > 0.0).then(|| h.sum / count),
            }
        })
        .collect();
    out.sort_by(|a, b| {
        (a.side != "server", &a.service, &a.method, &a.reporter).cmp(&(
            b.side != "server",
            &b.service,
            &b.method,
            &b.reporter,
        ))
    });
    out
}

#[cfg(test)]
mod tests;
