//! Trace context across a queue: W3C `traceparent` / `tracestate` carried in
//! the message body ([`Traced`]), since Cloudflare Queues messages have no
//! headers. The sender records a PRODUCER span under the current span and
//! stamps its context into the message; the consumer starts a CONSUMER span
//! whose parent is that context, so the processing joins the sender's trace
//! (OpenTelemetry's messaging conventions: `messaging.system`,
//! `messaging.destination.name`, `messaging.operation.type`; spans named
//! `send <queue>` / `process <queue>`).
//!
//! ```
//! use workmesh::trace::messaging::{consumer_span, producer_span, Traced};
//! use workmesh::trace::{scope, Sampler, SpanKind, TraceCollector};
//! use workmesh::testing::ManualRuntime;
//!
//! let runtime = ManualRuntime::default();
//! let sender = TraceCollector::new(&runtime, Sampler::ratio(1.0));
//! let server = sender.start_span("server", SpanKind::Server, None);
//! let message = scope::with_span(&server.handle(), || {
//!     let span = producer_span("cloudflare_queues", "order-events").unwrap();
//!     let message = Traced::new(42, Some(span.context()));
//!     span.end();
//!     message
//! });
//! let consumer = TraceCollector::new(&runtime, Sampler::ratio(1.0));
//! let process = consumer_span(&consumer, "cloudflare_queues", "order-events", &message);
//! assert_eq!(process.context().trace_id, server.context().trace_id);
//! ```

use serde::{Deserialize, Serialize};

use super::context::TraceContext;
use super::scope;
use super::span::{ActiveSpan, SpanKind, TraceCollector};

/// Attribute keys of messaging spans.
pub mod attr {
    pub const MESSAGING_SYSTEM: &str = "messaging.system";
    pub const MESSAGING_DESTINATION: &str = "messaging.destination.name";
    pub const MESSAGING_OPERATION_TYPE: &str = "messaging.operation.type";
    pub const MESSAGING_MESSAGE_ID: &str = "messaging.message.id";
}

/// A message body with the trace context of the span that sent it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Traced<T> {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracestate: Option<String>,
    pub body: T,
}

impl<T> Traced<T> {
    /// `body`, stamped with `context` (the PRODUCER span's) when there is one.
    pub fn new(body: T, context: Option<&TraceContext>) -> Self {
        Traced {
            traceparent: context.map(TraceContext::format_traceparent),
            tracestate: context.and_then(|c| c.tracestate.clone()),
            body,
        }
    }

    /// The sender's context; `None` when missing or malformed (the consumer
    /// then starts a new trace).
    pub fn context(&self) -> Option<TraceContext> {
        let mut context = TraceContext::parse_traceparent(self.traceparent.as_deref()?)?;
        context.tracestate = self
            .tracestate
            .as_deref()
            .and_then(super::context::parse_tracestate);
        Some(context)
    }
}

/// The PRODUCER span of a send to `queue`, under the current span; `None`
/// outside a traced request (send the message unstamped).
pub fn producer_span(system: &'static str, queue: &str) -> Option<ActiveSpan> {
    let parent = scope::current()?;
    let span = parent.child(format!("send {queue}"), SpanKind::Producer);
    span.set_attribute(attr::MESSAGING_SYSTEM, system);
    span.set_attribute(attr::MESSAGING_DESTINATION, queue.to_owned());
    span.set_attribute(attr::MESSAGING_OPERATION_TYPE, "send");
    Some(span)
}

/// The CONSUMER span processing `message` from `queue`, a child of the
/// sender's PRODUCER span (or a new trace when the message carries none).
pub fn consumer_span<T>(
    collector: &TraceCollector,
    system: &'static str,
    queue: &str,
    message: &Traced<T>,
) -> ActiveSpan {
    let parent = message.context();
    let span = collector.start_span(
        format!("process {queue}"),
        SpanKind::Consumer,
        parent.as_ref(),
    );
    span.set_attribute(attr::MESSAGING_SYSTEM, system);
    span.set_attribute(attr::MESSAGING_DESTINATION, queue.to_owned());
    span.set_attribute(attr::MESSAGING_OPERATION_TYPE, "process");
    span
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::ManualRuntime;
    use crate::trace::{AttrValue, Sampler};

    #[test]
    fn a_message_carries_the_producer_span_into_the_consumers_trace() {
        let runtime = ManualRuntime::default();
        let sender = TraceCollector::new(&runtime, Sampler::ratio(1.0));
        assert!(
            producer_span("cloudflare_queues", "q").is_none(),
            "no current span"
        );
        let server = sender.start_span("server", SpanKind::Server, None);
        let message = scope::with_span(&server.handle(), || {
            let span = producer_span("cloudflare_queues", "order-events").expect("a span");
            let message = Traced::new("order-1".to_owned(), Some(span.context()));
            span.end();
            message
        });
        server.end();
        // Through JSON, as the queue carries it.
        let json = serde_json::to_string(&message).expect("json");
        let received: Traced<String> = serde_json::from_str(&json).expect("json");
        assert_eq!(received, message);

        let consumer = TraceCollector::new(&runtime, Sampler::ratio(1.0));
        consumer_span(&consumer, "cloudflare_queues", "order-events", &received).end();
        let sent = sender.drain();
        let processed = consumer.drain();
        let producer = &sent[1];
        assert_eq!(producer.kind, SpanKind::Producer);
        assert_eq!(producer.name, "send order-events");
        assert_eq!(producer.parent_span_id, Some(sent[0].span_id));
        let process = &processed[0];
        assert_eq!(process.kind, SpanKind::Consumer);
        assert_eq!(process.name, "process order-events");
        assert_eq!(process.trace_id, producer.trace_id);
        assert_eq!(process.parent_span_id, Some(producer.span_id));
        assert!(process.attributes.contains(&(
            attr::MESSAGING_OPERATION_TYPE.into(),
            AttrValue::from("process")
        )));
    }

    #[test]
    fn unstamped_or_malformed_messages_start_a_new_trace() {
        let runtime = ManualRuntime::default();
        let consumer = TraceCollector::new(&runtime, Sampler::ratio(1.0));
        let plain: Traced<u32> = serde_json::from_str(r#"{"body": 7}"#).expect("json");
        assert_eq!(plain.body, 7);
        assert!(plain.context().is_none());
        let bad: Traced<u32> =
            serde_json::from_str(r#"{"traceparent": "00-zz-01", "body": 7}"#).expect("json");
        assert!(bad.context().is_none());
        consumer_span(&consumer, "cloudflare_queues", "q", &bad).end();
        assert_eq!(consumer.drain()[0].parent_span_id, None);
    }
}
