//! Spans and the per-request [`TraceCollector`].
//!
//! A collector lives for one request in one isolate. It hands out
//! [`ActiveSpan`] guards, keeps what they record, and is drained once at the
//! end of the request into [`SpanData`] for export. It is `Rc`-shared and
//! single-threaded, like everything in a Worker.
//!
//! **Durations.** Times come from the [`Runtime`] clock. In Workers that
//! clock advances only across I/O, so a span around pure computation has the
//! same start and end, and reads as zero: it is reported as zero, never
//! padded. An end is clamped to be no earlier than its start.
//!
//! **Unended spans.** A span dropped without [`ActiveSpan::end`] (an early
//! `?` return, a cancelled future) is ended when the collector is drained,
//! at the last time the collector saw (the latest start, event or end) — the
//! clock is not read again, so a late drain (in `wait_until`) does not
//! stretch it.
//!
//! **Sampling.** See [`Sampler`]: unsampled spans are recorded only
//! provisionally (tail-keep errors), or not at all with
//! [`Sampler::without_error_keeping`]. Either way they have ids and
//! propagate `sampled=0`.

use std::borrow::Cow;
use std::cell::RefCell;
use std::rc::Rc;

use super::context::{SpanId, TraceContext, TraceId};
use super::sampler::Sampler;
use crate::{Code, ConnectError, Instant, Runtime};

/// Default cap on spans recorded by one collector; later spans still get
/// ids and propagate, but are not recorded.
pub const DEFAULT_MAX_SPANS: usize = 1024;
/// Cap on events per span; later events are counted in `dropped_events`.
pub const MAX_EVENTS_PER_SPAN: usize = 128;

/// OpenTelemetry span kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SpanKind {
    Internal,
    Server,
    Client,
    Producer,
    Consumer,
}

/// An attribute value (the scalar subset of OpenTelemetry's `AnyValue`).
#[derive(Clone, Debug, PartialEq)]
pub enum AttrValue {
    Str(Cow<'static, str>),
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl From<&'static str> for AttrValue {
    fn from(value: &'static str) -> Self {
        AttrValue::Str(Cow::Borrowed(value))
    }
}
impl From<String> for AttrValue {
    fn from(value: String) -> Self {
        AttrValue::Str(Cow::Owned(value))
    }
}
impl From<Cow<'static, str>> for AttrValue {
    fn from(value: Cow<'static, str>) -> Self {
        AttrValue::Str(value)
    }
}
impl From<i64> for AttrValue {
    fn from(value: i64) -> Self {
        AttrValue::Int(value)
    }
}
impl From<i32> for AttrValue {
    fn from(value: i32) -> Self {
        AttrValue::Int(value.into())
    }
}
impl From<u32> for AttrValue {
    fn from(value: u32) -> Self {
        AttrValue::Int(value.into())
    }
}
impl From<u64> for AttrValue {
    /// Saturates at `i64::MAX` (OTLP integers are signed).
    fn from(value: u64) -> Self {
        AttrValue::Int(i64::try_from(value).unwrap_or(i64::MAX))
    }
}
impl From<usize> for AttrValue {
    fn from(value: usize) -> Self {
        AttrValue::Int(i64::try_from(value).unwrap_or(i64::MAX))
    }
}
impl From<f64> for AttrValue {
    fn from(value: f64) -> Self {
        AttrValue::Float(value)
    }
}
impl From<bool> for AttrValue {
    fn from(value: bool) -> Self {
        AttrValue::Bool(value)
    }
}

/// A span's attributes, in insertion order (a later value for the same key
/// replaces the earlier one).
pub type Attributes = Vec<(Cow<'static, str>, AttrValue)>;

/// Something that happened at a point in a span.
#[derive(Clone, Debug, PartialEq)]
pub struct SpanEvent {
    pub name: Cow<'static, str>,
    pub time: Instant,
    pub attributes: Attributes,
}

/// A span's outcome, as OpenTelemetry's status.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum SpanStatus {
    #[default]
    Unset,
    Ok,
    Error {
        message: String,
    },
}

/// A finished span, ready for export.
#[derive(Clone, Debug, PartialEq)]
pub struct SpanData {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub parent_span_id: Option<SpanId>,
    pub name: Cow<'static, str>,
    pub kind: SpanKind,
    pub start: Instant,
    /// Never before `start`.
    pub end: Instant,
    pub attributes: Attributes,
    pub events: Vec<SpanEvent>,
    pub status: SpanStatus,
    /// Events beyond [`MAX_EVENTS_PER_SPAN`].
    pub dropped_events: u32,
    /// The `tracestate` the span propagates.
    pub tracestate: Option<String>,
    /// The trace's head-sampling decision (false for spans kept only
    /// because the request failed).
    pub sampled: bool,
}

/// The runtime, as an object, so collectors and spans are not generic.
trait Clock {
    fn now(&self) -> Instant;
    fn random_u64(&self) -> u64;
}

impl<R: Runtime> Clock for R {
    fn now(&self) -> Instant {
        Runtime::now(self)
    }
    fn random_u64(&self) -> u64 {
        Runtime::random_u64(self)
    }
}

struct Record {
    data: SpanData,
    ended: bool,
}

struct State {
    records: Vec<Rc<RefCell<Record>>>,
    /// Latest time seen: ends spans that were dropped without `end`.
    last_time: Instant,
    sequence: u64,
    max_spans: usize,
    dropped_spans: usize,
}

struct Inner {
    clock: Box<dyn Clock>,
    sampler: Sampler,
    state: RefCell<State>,
}

/// Collects one request's spans. Cheap to clone (an `Rc`).
#[derive(Clone)]
pub struct TraceCollector {
    inner: Rc<Inner>,
}

impl std::fmt::Debug for TraceCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.inner.state.borrow();
        f.debug_struct("TraceCollector")
            .field("sampler", &self.inner.sampler)
            .field("recorded", &state.records.len())
            .field("dropped_spans", &state.dropped_spans)
            .finish()
    }
}

impl TraceCollector {
    /// A collector reading time and ids from `runtime`.
    pub fn new<R: Runtime>(runtime: &R, sampler: Sampler) -> Self {
        let now = runtime.now();
        TraceCollector {
            inner: Rc::new(Inner {
                clock: Box::new(runtime.clone()),
                sampler,
                state: RefCell::new(State {
                    records: Vec::new(),
                    last_time: now,
                    sequence: 0,
                    max_spans: DEFAULT_MAX_SPANS,
                    dropped_spans: 0,
                }),
            }),
        }
    }

    /// Caps the spans this collector records (default [`DEFAULT_MAX_SPANS`]).
    pub fn with_max_spans(self, max_spans: usize) -> Self {
        self.inner.state.borrow_mut().max_spans = max_spans;
        self
    }

    pub fn sampler(&self) -> Sampler {
        self.inner.sampler
    }

    /// Starts a span. With a `parent` (extracted from a request, or another
    /// span's [`context`](ActiveSpan::context)) it joins that trace and
    /// follows its sampling decision; without one it starts a new trace and
    /// asks the [`Sampler`].
    pub fn start_span(
        &self,
        name: impl Into<Cow<'static, str>>,
        kind: SpanKind,
        parent: Option<&TraceContext>,
    ) -> ActiveSpan {
        let now = self.now();
        let (trace_id, parent_span_id, sampled, tracestate) = match parent {
            Some(parent) => (
                parent.trace_id,
                Some(parent.span_id),
                parent.sampled,
                parent.tracestate.clone(),
            ),
            None => {
                let trace_id = TraceId::from_u128(
                    (u128::from(self.inner.clock.random_u64()) << 64)
                        | u128::from(self.inner.clock.random_u64()),
                );
                (
                    trace_id,
                    None,
                    self.inner.sampler.should_sample(trace_id),
                    None,
                )
            }
        };
        let span_id = self.next_span_id();
        let context = TraceContext {
            trace_id,
            span_id,
            sampled,
            tracestate,
        };
        let record = if sampled || self.inner.sampler.keeps_errors() {
            let mut state = self.inner.state.borrow_mut();
            if state.records.len() < state.max_spans {
                let record = Rc::new(RefCell::new(Record {
                    data: SpanData {
                        trace_id,
                        span_id,
                        parent_span_id,
                        name: name.into(),
                        kind,
                        start: now,
                        end: now,
                        attributes: Vec::new(),
                        events: Vec::new(),
                        status: SpanStatus::Unset,
                        dropped_events: 0,
                        tracestate: context.tracestate.clone(),
                        sampled,
                    },
                    ended: false,
                }));
                state.records.push(record.clone());
                Some(record)
            } else {
                state.dropped_spans += 1;
                None
            }
        } else {
            None
        };
        ActiveSpan {
            handle: SpanHandle {
                collector: self.clone(),
                record,
                context,
                kind,
            },
        }
    }

    /// Takes the request's finished spans, in start order: every span of a
    /// sampled trace, and every span of an unsampled trace in which some span
    /// has an error status. Spans not yet ended are ended at the last known
    /// time (see the module docs). Later spans start a new batch.
    pub fn drain(&self) -> Vec<SpanData> {
        let (records, last_time) = {
            let mut state = self.inner.state.borrow_mut();
            (std::mem::take(&mut state.records), state.last_time)
        };
        let failed: Vec<TraceId> = records
            .iter()
            .filter_map(|record| {
                let record = record.borrow();
                matches!(record.data.status, SpanStatus::Error { .. })
                    .then_some(record.data.trace_id)
            })
            .collect();
        records
            .into_iter()
            .filter_map(|record| {
                let mut record = record.borrow_mut();
                let keep = record.data.sampled || failed.contains(&record.data.trace_id);
                if !keep {
                    return None;
                }
                if !record.ended {
                    record.data.end = record.data.start.max(last_time);
                    record.ended = true;
                }
                Some(record.data.clone())
            })
            .collect()
    }

    /// Spans not recorded because of the cap, since creation.
    pub fn dropped_spans(&self) -> usize {
        self.inner.state.borrow().dropped_spans
    }

    /// Now, on the runtime's clock; also advances the "last known time".
    fn now(&self) -> Instant {
        let now = self.inner.clock.now();
        let mut state = self.inner.state.borrow_mut();
        state.last_time = state.last_time.max(now);
        now
    }

    /// Random, but distinct within this collector even if the runtime's
    /// generator is degenerate (a test clock with fixed randomness): the
    /// random word is mixed with a per-collector sequence by a bijection.
    fn next_span_id(&self) -> SpanId {
        let sequence = {
            let mut state = self.inner.state.borrow_mut();
            state.sequence += 1;
            state.sequence
        };
        let mut z = self.inner.clock.random_u64() ^ sequence.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        SpanId::from_u64(z ^ (z >> 31))
    }
}

/// A shared, non-owning reference to a live span: it can add attributes and
/// events and give its context, but not end it. The scope stack and the
/// `tracing` bridge hold these; the code that started the span keeps the
/// [`ActiveSpan`].
#[derive(Clone)]
pub struct SpanHandle {
    collector: TraceCollector,
    /// `None` when the span is not recorded (unsampled without error
    /// keeping, or over the cap): every recording call is then a no-op.
    record: Option<Rc<RefCell<Record>>>,
    context: TraceContext,
    kind: SpanKind,
}

impl std::fmt::Debug for SpanHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpanHandle")
            .field("context", &self.context)
            .field("kind", &self.kind)
            .field("recording", &self.record.is_some())
            .finish()
    }
}

impl SpanHandle {
    /// The context to propagate to a callee, or to use as a local parent.
    pub fn context(&self) -> &TraceContext {
        &self.context
    }

    pub fn collector(&self) -> &TraceCollector {
        &self.collector
    }

    pub fn kind(&self) -> SpanKind {
        self.kind
    }

    /// False when nothing this span records will be kept.
    pub fn is_recording(&self) -> bool {
        self.record.is_some()
    }

    /// Starts a child span in the same collector.
    pub fn child(&self, name: impl Into<Cow<'static, str>>, kind: SpanKind) -> ActiveSpan {
        self.collector.start_span(name, kind, Some(&self.context))
    }

    /// Sets an attribute, replacing an earlier value for the same key.
    pub fn set_attribute(&self, key: impl Into<Cow<'static, str>>, value: impl Into<AttrValue>) {
        if let Some(record) = &self.record {
            let key = key.into();
            let value = value.into();
            let attributes = &mut record.borrow_mut().data.attributes;
            match attributes.iter_mut().find(|(k, _)| *k == key) {
                Some(slot) => slot.1 = value,
                None => attributes.push((key, value)),
            }
        }
    }

    /// Adds an event at the current time.
    pub fn add_event(&self, name: impl Into<Cow<'static, str>>, attributes: Attributes) {
        if let Some(record) = &self.record {
            let time = self.collector.now();
            let data = &mut record.borrow_mut().data;
            if data.events.len() < MAX_EVENTS_PER_SPAN {
                data.events.push(SpanEvent {
                    name: name.into(),
                    time,
                    attributes,
                });
            } else {
                data.dropped_events = data.dropped_events.saturating_add(1);
            }
        }
    }

    pub fn set_status(&self, status: SpanStatus) {
        if let Some(record) = &self.record {
            record.borrow_mut().data.status = status;
        }
    }

    /// Records a failed call, following OpenTelemetry's RPC conventions:
    /// the `rpc.connect_rpc.error_code` attribute always; status `Error`
    /// (message `"<code>: <message>"`) on a client or internal span always,
    /// but on a server span only for codes that mean the server failed
    /// (`unknown`, `deadline_exceeded`, `unimplemented`, `internal`,
    /// `unavailable`, `data_loss`) — a caller's `not_found` or
    /// `invalid_argument` is not the server's error.
    pub fn set_connect_error(&self, error: &ConnectError) {
        self.set_attribute(super::rpc::attr::CONNECT_ERROR_CODE, error.code.as_str());
        if self.kind != SpanKind::Server || is_server_fault(error.code) {
            self.set_status(SpanStatus::Error {
                message: format!("{}: {}", error.code, error.message),
            });
        }
    }
}

/// Codes OpenTelemetry's RPC conventions count as server-side errors.
pub fn is_server_fault(code: Code) -> bool {
    matches!(
        code,
        Code::Unknown
            | Code::DeadlineExceeded
            | Code::Unimplemented
            | Code::Internal
            | Code::Unavailable
            | Code::DataLoss
    )
}

/// A started span; [`end`](Self::end) it when its work is done. Derefs to
/// [`SpanHandle`] for recording.
#[derive(Debug)]
pub struct ActiveSpan {
    handle: SpanHandle,
}

impl std::ops::Deref for ActiveSpan {
    type Target = SpanHandle;
    fn deref(&self) -> &SpanHandle {
        &self.handle
    }
}

impl ActiveSpan {
    /// A shared handle for the scope stack or another owner.
    pub fn handle(&self) -> SpanHandle {
        self.handle.clone()
    }

    /// Ends the span now (clamped to its start).
    pub fn end(self) {
        if let Some(record) = &self.handle.record {
            let now = self.handle.collector.now();
            let mut record = record.borrow_mut();
            if !record.ended {
                record.data.end = now.max(record.data.start);
                record.ended = true;
            }
        }
    }

    /// Records the outcome of a call and ends the span: an error through
    /// [`set_connect_error`](SpanHandle::set_connect_error), success as
    /// status unset (the RPC conventions leave `Ok` to the application).
    pub fn end_with<T>(self, result: &Result<T, ConnectError>) {
        if let Err(error) = result {
            self.set_connect_error(error);
        }
        self.end();
    }
}

#[cfg(test)]
mod tests;
