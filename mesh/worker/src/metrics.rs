//! Server-side RED metrics per isolate, exported as OTLP/HTTP protobuf to
//! `<endpoint>/v1/metrics` on the same path as spans (the `OTLP` binding,
//! or `WORKMESH_OTLP_URL` + `WORKMESH_OTLP_HEADERS`; see
//! [`telemetry`](crate::telemetry)).
//!
//! `serve` records every call of a routed method (health checks and the
//! faults API excluded): `rpc.server.requests`, `rpc.server.errors` and
//! `rpc.server.duration` per service, method and Connect code. An isolate
//! serves many requests, so the registry lives in the isolate; after a
//! request, when the export is due (the isolate's first request, then at
//! most every `WORKMESH_METRICS_INTERVAL_MS`, default 5000), the registry
//! goes out in that request's `wait_until`, together with its spans.
//!
//! **Temporality: cumulative.** Each export carries the totals since the
//! isolate started (`start_time_unix_nano` = the isolate's first request),
//! so a skipped or failed export loses nothing, and a new isolate is a new
//! series (distinguished by `service.instance.id`, a random id per isolate).
//! Backends sum the series of all isolates; rates come from successive
//! points of one series.
//!
//! Durations are honest Workers time: the clock advances across I/O only,
//! so a handler that does no I/O records 0 ms.

use std::cell::RefCell;
use std::time::Duration;

use bytes::Bytes;
use workmesh::metrics::{ExportSchedule, MetricsRegistry, Side, DEFAULT_EXPORT_INTERVAL};
use workmesh::protocol::error_from_http;
use workmesh::server::Router;
use workmesh::trace::otlp::proto::ExportMetricsServiceRequest;
use workmesh::trace::{OtlpExporter, SpanData};
use workmesh::{Instant, Runtime};

use crate::telemetry::OtlpTransport;
use crate::WorkerRuntime;

/// Minimum milliseconds between two metrics exports of one isolate.
pub const METRICS_INTERVAL_VAR: &str = "WORKMESH_METRICS_INTERVAL_MS";

struct IsolateMetrics {
    registry: MetricsRegistry,
    schedule: ExportSchedule,
    instance_id: String,
}

thread_local! {
    static METRICS: RefCell<Option<IsolateMetrics>> = const { RefCell::new(None) };
}

fn with_metrics<T>(env: &worker::Env, f: impl FnOnce(&IsolateMetrics) -> T) -> T {
    METRICS.with(|cell| {
        let mut slot = cell.borrow_mut();
        let metrics = slot.get_or_insert_with(|| {
            let interval = env
                .var(METRICS_INTERVAL_VAR)
                .ok()
                .and_then(|v| v.to_string().trim().parse::<u64>().ok())
                .map_or(DEFAULT_EXPORT_INTERVAL, Duration::from_millis);
            IsolateMetrics {
                registry: MetricsRegistry::new(Side::Server, WorkerRuntime.now()),
                schedule: ExportSchedule::new(interval),
                instance_id: format!("{:016x}", WorkerRuntime.random_u64()),
            }
        });
        f(metrics)
    })
}

/// Records one answered call to `path`, if it names a method `router`
/// serves; the code is read back from the response like the SERVER span's.
pub(crate) fn record(
    env: &worker::Env,
    router: &Router,
    path: &str,
    response: &http::Response<Bytes>,
    started: Instant,
) {
    let Some(method) = router.method_for_path(path) else {
        return;
    };
    let code = (response.status() != http::StatusCode::OK)
        .then(|| error_from_http(response.status(), response.headers(), response.body()).code);
    let elapsed = WorkerRuntime.now().saturating_duration_since(started);
    with_metrics(env, |m| m.registry.record(method, code, elapsed));
}

/// Sends `spans` and, when due, the isolate's metrics: what `serve` hands
/// to `wait_until`. Failures are logged, never raised.
pub(crate) fn export(
    env: &worker::Env,
    exporter: OtlpExporter<OtlpTransport>,
    spans: Vec<SpanData>,
) -> Option<workmesh::LocalBoxFuture<'static, ()>> {
    let metrics = due(env, &exporter);
    if spans.is_empty() && metrics.is_none() {
        return None;
    }
    Some(Box::pin(async move {
        if let Err(error) = exporter.export(spans).await {
            worker::console_error!("workmesh: trace export failed: {error}");
        }
        if let Some(request) = metrics {
            if let Err(error) = exporter.export_metrics(request).await {
                worker::console_error!("workmesh: metrics export failed: {error}");
            }
        }
    }))
}

/// The isolate's registry as OTLP, when an export is due.
fn due(
    env: &worker::Env,
    exporter: &OtlpExporter<OtlpTransport>,
) -> Option<ExportMetricsServiceRequest> {
    with_metrics(env, |m| {
        let now = WorkerRuntime.now();
        if m.registry.snapshot().is_empty() || !m.schedule.due(now) {
            return None;
        }
        let resource = exporter
            .resource()
            .clone()
            .with_instance_id(m.instance_id.clone());
        Some(m.registry.to_otlp(&resource, exporter.epoch_offset(), now))
    })
}
