//! RED metrics — rate, errors, duration — per service, method and code.
//!
//! A [`MetricsRegistry`] lives for an isolate (or a native process) and is
//! shared by `Rc`. Each finished call is one
//! [`record`](MetricsRegistry::record): a count, an error count when the
//! call failed, and a latency sample in a fixed-bound histogram. Workers
//! have no background tasks, so nothing is pushed on a timer: the adapter
//! converts the registry with [`to_otlp`](MetricsRegistry::to_otlp) and
//! exports it from `wait_until` when it chooses (e.g. when a minute has
//! passed since the last export).
//!
//! Values are **cumulative** from the registry's creation (OTLP cumulative
//! temporality, `start_time` = creation): a backend computes rates from
//! successive exports, and an isolate that is evicted simply starts a new
//! series (its new start time marks the reset).
//!
//! Latency uses OpenTelemetry's default explicit bucket bounds, in
//! milliseconds. In Workers the clock advances only across I/O, so calls
//! that do no I/O record 0 ms.
//!
//! ```
//! use std::time::Duration;
//! use workmesh::metrics::{MetricsRegistry, Side};
//! use workmesh::{Code, Idempotency, Instant, MethodDescriptor};
//!
//! static GET: MethodDescriptor = MethodDescriptor {
//!     service: "shop.v1.CatalogService",
//!     method: "GetProduct",
//!     idempotency: Idempotency::NoSideEffects,
//! };
//! let metrics = MetricsRegistry::new(Side::Server, Instant::default());
//! metrics.record(&GET, None, Duration::from_millis(12));
//! metrics.record(&GET, Some(Code::NotFound), Duration::from_millis(3));
//! let totals = metrics.totals(&GET);
//! assert_eq!((totals.requests, totals.errors), (2, 1));
//! ```

mod otlp;
mod schedule;

pub use schedule::{ExportSchedule, DEFAULT_EXPORT_INTERVAL};

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use crate::{Code, Instant, MethodDescriptor};

/// OpenTelemetry's default explicit histogram bounds, in milliseconds.
pub const DEFAULT_BOUNDS_MS: [f64; 15] = [
    0.0, 5.0, 10.0, 25.0, 50.0, 75.0, 100.0, 250.0, 500.0, 750.0, 1000.0, 2500.0, 5000.0, 7500.0,
    10000.0,
];

/// Which end of the call the registry measures; it names the metrics
/// (`rpc.server.*` or `rpc.client.*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Server,
    Client,
}

/// One series: a (service, method, outcome) triple. `code` is `None` for
/// success.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SeriesKey {
    pub service: &'static str,
    pub method: &'static str,
    pub code: Option<&'static str>,
}

/// Counts and latency of one series.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub requests: u64,
    pub errors: u64,
    /// `DEFAULT_BOUNDS_MS.len() + 1` buckets: `(-inf, 0]`, `(0, 5]`, …,
    /// `(10000, +inf)`.
    pub bucket_counts: Vec<u64>,
    pub sum_ms: f64,
    pub min_ms: f64,
    pub max_ms: f64,
}

impl Series {
    fn new() -> Self {
        Series {
            requests: 0,
            errors: 0,
            bucket_counts: vec![0; DEFAULT_BOUNDS_MS.len() + 1],
            sum_ms: 0.0,
            min_ms: f64::INFINITY,
            max_ms: 0.0,
        }
    }

    fn observe(&mut self, failed: bool, millis: f64) {
        self.requests += 1;
        self.errors += u64::from(failed);
        // Bounds are upper-inclusive, as OTLP defines them.
        let bucket = DEFAULT_BOUNDS_MS.partition_point(|&bound| bound < millis);
        if let Some(count) = self.bucket_counts.get_mut(bucket) {
            *count += 1;
        }
        self.sum_ms += millis;
        self.min_ms = self.min_ms.min(millis);
        self.max_ms = self.max_ms.max(millis);
    }
}

/// Per-method totals over every code.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub requests: u64,
    pub errors: u64,
}

struct Inner {
    side: Side,
    start: Instant,
    series: BTreeMap<SeriesKey, Series>,
}

/// The isolate's RED metrics. Cheap to clone (an `Rc`).
#[derive(Clone)]
pub struct MetricsRegistry {
    inner: Rc<RefCell<Inner>>,
}

impl std::fmt::Debug for MetricsRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = self.inner.borrow();
        f.debug_struct("MetricsRegistry")
            .field("side", &inner.side)
            .field("start", &inner.start)
            .field("series", &inner.series.len())
            .finish()
    }
}

impl MetricsRegistry {
    /// An empty registry whose series start at `start` (use `runtime.now()`).
    pub fn new(side: Side, start: Instant) -> Self {
        MetricsRegistry {
            inner: Rc::new(RefCell::new(Inner {
                side,
                start,
                series: BTreeMap::new(),
            })),
        }
    }

    pub fn side(&self) -> Side {
        self.inner.borrow().side
    }

    pub fn start(&self) -> Instant {
        self.inner.borrow().start
    }

    /// Records one finished call: `code` is `None` on success, the error's
    /// code otherwise (every error code counts as an error; dashboards can
    /// split client faults by the `code` attribute).
    pub fn record(&self, method: &MethodDescriptor, code: Option<Code>, duration: Duration) {
        let key = SeriesKey {
            service: method.service,
            method: method.method,
            code: code.map(Code::as_str),
        };
        let millis = duration.as_secs_f64() * 1000.0;
        self.inner
            .borrow_mut()
            .series
            .entry(key)
            .or_insert_with(Series::new)
            .observe(code.is_some(), millis);
    }

    /// A copy of every series, in key order.
    pub fn snapshot(&self) -> Vec<(SeriesKey, Series)> {
        let inner = self.inner.borrow();
        inner
            .series
            .iter()
            .map(|(key, series)| (*key, series.clone()))
            .collect()
    }

    /// Requests and errors of one method, over all codes.
    pub fn totals(&self, method: &MethodDescriptor) -> Totals {
        let inner = self.inner.borrow();
        inner
            .series
            .iter()
            .filter(|(key, _)| key.service == method.service && key.method == method.method)
            .fold(Totals::default(), |totals, (_, series)| Totals {
                requests: totals.requests + series.requests,
                errors: totals.errors + series.errors,
            })
    }
}

#[cfg(test)]
mod tests;
