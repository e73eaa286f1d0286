//! The `tracing` bridge: handlers write plain `tracing::info_span!`,
//! `#[tracing::instrument]` and `tracing::info!`, and get child spans and
//! span events in the request's trace.
//!
//! [`TracingBridge`] is a minimal [`tracing::Subscriber`] (no
//! `tracing-subscriber`, to keep Workers bundles small) over the
//! [`scope`](super::scope) stack and the request's
//! [`TraceCollector`](super::TraceCollector):
//!
//! | `tracing` | workmesh |
//! |---|---|
//! | new span | an `Internal` child of its explicit parent, else of the current span; fields become attributes |
//! | `record` | more attributes |
//! | enter / exit | push / pop on the scope stack, so spans, events and outgoing calls inside it are its children |
//! | last handle closed | the span ends |
//! | event | an event on its explicit parent, else the current span, named by its message, fields as attributes, plus `level` |
//!
//! Outside a traced request (no current span) nothing is recorded. Spans and
//! events more verbose than the maximum level (default `INFO`) are disabled
//! at the call site.
//!
//! Install it once per isolate or process with [`install`] (the Workers
//! adapter's `serve` does), or scope it with
//! `tracing::subscriber::with_default` in tests. As everywhere with
//! `tracing` in async code, do not hold a `span.enter()` guard across an
//! `.await`: use `.instrument(span)` or `#[instrument]`.
//!
//! ```
//! use workmesh::trace::{bridge::TracingBridge, scope, Sampler, SpanKind, TraceCollector};
//! use workmesh::testing::ManualRuntime;
//!
//! let collector = TraceCollector::new(&ManualRuntime::default(), Sampler::ratio(1.0));
//! let server = collector.start_span("server", SpanKind::Server, None);
//! tracing::subscriber::with_default(TracingBridge::default(), || {
//!     scope::with_span(&server.handle(), || {
//!         let _priced = tracing::info_span!("price_items", items = 2).entered();
//!         tracing::info!(total = 42, "priced");
//!     })
//! });
//! server.end();
//! let spans = collector.drain();
//! assert_eq!(spans[1].name, "price_items");
//! assert_eq!(spans[1].parent_span_id, Some(spans[0].span_id));
//! assert_eq!(spans[1].events[0].name, "priced");
//! ```

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};

use super::scope::{self, Entered};
use super::span::{ActiveSpan, AttrValue, SpanHandle, SpanKind};

/// Longest string attribute value kept from a `tracing` field.
const MAX_VALUE_CHARS: usize = 1024;

/// The subscriber. It holds no state itself (that lives in the thread's
/// span table), so it is `Send + Sync` as `tracing` requires.
#[derive(Clone, Copy, Debug)]
pub struct TracingBridge {
    max_level: Level,
}

impl Default for TracingBridge {
    fn default() -> Self {
        TracingBridge {
            max_level: Level::INFO,
        }
    }
}

impl TracingBridge {
    /// Records spans and events up to `level` (`Level::DEBUG` to include
    /// debug ones).
    pub fn with_max_level(level: Level) -> Self {
        TracingBridge { max_level: level }
    }
}

/// Installs the bridge as the global `tracing` subscriber, once; a
/// subscriber installed earlier (by the application) is left in place.
pub fn install() {
    install_with(TracingBridge::default());
}

/// [`install`] with a chosen bridge.
pub fn install_with(bridge: TracingBridge) {
    thread_local! {
        static INSTALLED: Cell<bool> = const { Cell::new(false) };
    }
    if !INSTALLED.with(|installed| installed.replace(true)) {
        // Err means another subscriber is global already: keep it.
        let _ = tracing::subscriber::set_global_default(bridge);
    }
}

/// A live `tracing` span: the workmesh span and how many `tracing` handles
/// refer to it.
struct Entry {
    span: ActiveSpan,
    refs: usize,
}

thread_local! {
    static SPANS: RefCell<HashMap<u64, Entry>> = RefCell::new(HashMap::new());
    static NEXT_ID: Cell<u64> = const { Cell::new(1) };
    /// Scope guards of entered bridge spans, innermost last.
    static ENTERED: RefCell<Vec<(u64, Entered)>> = const { RefCell::new(Vec::new()) };
}

fn next_id() -> Id {
    let id = NEXT_ID.with(|next| {
        let id = next.get();
        next.set(id.wrapping_add(1).max(1));
        id
    });
    Id::from_u64(id)
}

fn handle_of(id: &Id) -> Option<SpanHandle> {
    SPANS.with(|spans| spans.borrow().get(&id.into_u64()).map(|e| e.span.handle()))
}

/// Turns `tracing` fields into attributes (and picks out the message).
struct Fields {
    attributes: Vec<(Cow<'static, str>, AttrValue)>,
    message: Option<String>,
}

impl Fields {
    fn new() -> Self {
        Fields {
            attributes: Vec::new(),
            message: None,
        }
    }

    fn push(&mut self, field: &Field, value: AttrValue) {
        if field.name() == "message" {
            if let AttrValue::Str(text) = value {
                self.message = Some(text.into_owned());
                return;
            }
        }
        self.attributes.push((Cow::Borrowed(field.name()), value));
    }
}

fn clipped(text: &str) -> String {
    text.chars().take(MAX_VALUE_CHARS).collect()
}

impl Visit for Fields {
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.push(field, value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.push(field, value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.push(field, value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.push(field, value.into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.push(field, clipped(value).into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.push(field, clipped(&format!("{value:?}")).into());
    }
}

impl Subscriber for TracingBridge {
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        if *metadata.level() <= self.max_level {
            // Whether anything is recorded depends on the current request.
            Interest::sometimes()
        } else {
            Interest::never()
        }
    }

    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        *metadata.level() <= self.max_level && scope::current().is_some()
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::from_level(
            self.max_level,
        ))
    }

    fn new_span(&self, attributes: &Attributes<'_>) -> Id {
        let id = next_id();
        let parent = match attributes.parent() {
            Some(parent) => handle_of(parent),
            None if attributes.is_root() => None,
            None => scope::current(),
        };
        // An explicit root, or no request to belong to: nothing to record.
        let Some(parent) = parent else {
            return id;
        };
        let span = parent.child(attributes.metadata().name(), SpanKind::Internal);
        if span.is_recording() {
            let mut fields = Fields::new();
            attributes.record(&mut fields);
            for (key, value) in fields.attributes {
                span.set_attribute(key, value);
            }
        }
        SPANS.with(|spans| {
            spans
                .borrow_mut()
                .insert(id.into_u64(), Entry { span, refs: 1 })
        });
        id
    }

    fn record(&self, id: &Id, values: &Record<'_>) {
        if let Some(handle) = handle_of(id) {
            let mut fields = Fields::new();
            values.record(&mut fields);
            for (key, value) in fields.attributes {
                handle.set_attribute(key, value);
            }
        }
    }

    fn record_follows_from(&self, _span: &Id, _follows: &Id) {
        // Span links are not modelled.
    }

    fn event(&self, event: &Event<'_>) {
        let target = match event.parent() {
            Some(parent) => handle_of(parent),
            None if event.is_root() => None,
            None => scope::current(),
        };
        let Some(target) = target else {
            return;
        };
        let mut fields = Fields::new();
        event.record(&mut fields);
        let metadata = event.metadata();
        let name = fields.message.unwrap_or_else(|| metadata.name().to_owned());
        let mut attributes = fields.attributes;
        attributes.push((Cow::Borrowed("level"), metadata.level().as_str().into()));
        target.add_event(name, attributes);
    }

    fn enter(&self, id: &Id) {
        if let Some(handle) = handle_of(id) {
            let guard = Entered::push(handle);
            ENTERED.with(|entered| entered.borrow_mut().push((id.into_u64(), guard)));
        }
    }

    fn exit(&self, id: &Id) {
        let id = id.into_u64();
        let guard = ENTERED.with(|entered| {
            let mut entered = entered.borrow_mut();
            let at = entered
                .iter()
                .rposition(|(entered_id, _)| *entered_id == id)?;
            Some(entered.remove(at))
        });
        // Dropped outside the borrow: it pops the scope stack.
        drop(guard);
    }

    fn clone_span(&self, id: &Id) -> Id {
        SPANS.with(|spans| {
            if let Some(entry) = spans.borrow_mut().get_mut(&id.into_u64()) {
                entry.refs += 1;
            }
        });
        id.clone()
    }

    fn try_close(&self, id: Id) -> bool {
        let closed = SPANS.with(|spans| {
            let mut spans = spans.borrow_mut();
            let entry = spans.get_mut(&id.into_u64())?;
            entry.refs = entry.refs.saturating_sub(1);
            if entry.refs == 0 {
                spans.remove(&id.into_u64())
            } else {
                None
            }
        });
        match closed {
            Some(entry) => {
                entry.span.end();
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests;
