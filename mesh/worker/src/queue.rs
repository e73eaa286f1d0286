//! Cloudflare Queues with the trace carried across: a send records a
//! PRODUCER span and stamps its `traceparent` into the message
//! ([`Traced`]); [`consume`] runs each message under a CONSUMER span that
//! continues the sender's trace, with the handler's D1 queries, calls and
//! `tracing` spans beneath it, and exports the spans (and due metrics) like
//! `serve` does.
//!
//! ```ignore
//! // Producer, inside a handler:
//! TracedQueue::new(&env, "ORDER_EVENTS", "order-events")?.send(OrderEvent { .. }).await?;
//! // Consumer:
//! #[event(queue)]
//! async fn queue(batch: MessageBatch<Traced<OrderEvent>>, env: Env, ctx: Context) -> worker::Result<()> {
//!     workmesh_worker::queue::consume(batch, &env, &ctx, |event| async move { .. }).await
//! }
//! ```

use std::future::Future;

use serde::de::DeserializeOwned;
use serde::Serialize;
use worker::{MessageBatch, MessageExt};
use workmesh::trace::messaging::{self, attr, Traced};
use workmesh::trace::{scope, TraceCollector};
use workmesh::ConnectError;

use crate::{background, discovery, metrics, telemetry, WorkerRuntime};

/// `messaging.system` of Cloudflare Queues.
pub const QUEUES_SYSTEM: &str = "cloudflare_queues";

/// A queue producer binding that traces its sends.
pub struct TracedQueue {
    queue: worker::Queue,
    name: String,
}

impl TracedQueue {
    /// The producer binding `binding` of the queue named `queue_name` (the
    /// name is what spans report as the destination). A missing binding is
    /// `internal`.
    pub fn new(env: &worker::Env, binding: &str, queue_name: &str) -> Result<Self, ConnectError> {
        let queue = env.queue(binding).map_err(|e| {
            ConnectError::internal(format!("queue binding {binding} is not configured: {e}"))
        })?;
        Ok(TracedQueue {
            queue,
            name: queue_name.to_owned(),
        })
    }

    /// Sends `body` under a PRODUCER span (a child of the current span),
    /// stamped with its trace context. A failed send is `unavailable`.
    pub async fn send<T: Serialize>(&self, body: T) -> Result<(), ConnectError> {
        let span = messaging::producer_span(QUEUES_SYSTEM, &self.name);
        let message = Traced::new(body, span.as_ref().map(|s| s.context()));
        let result = self
            .queue
            .send(message)
            .await
            .map_err(|e| ConnectError::unavailable(format!("queue {}: {e}", self.name)));
        if let Some(span) = span {
            span.end_with(&result);
        }
        result
    }
}

/// Runs `handler` for each message of `batch`, each under a CONSUMER span
/// continuing its sender's trace: `Ok` acks the message, `Err` marks it for
/// retry (and the span as failed). A message that does not decode is logged
/// and left to the batch's outcome. Spans are exported after the batch
/// through `ctx.wait_until`, together with the registry work the batch's
/// calls queued (discovery refreshes, outcome reports, registration).
pub async fn consume<T, F, Fut>(
    batch: MessageBatch<Traced<T>>,
    env: &worker::Env,
    ctx: &worker::Context,
    handler: F,
) -> worker::Result<()>
where
    T: DeserializeOwned + Clone,
    F: Fn(T) -> Fut,
    Fut: Future<Output = Result<(), ConnectError>>,
{
    workmesh::trace::bridge::install();
    let queue = batch.queue();
    let collector = TraceCollector::new(&WorkerRuntime, telemetry::sampler(env));
    for message in batch.iter() {
        let message = match message {
            Ok(message) => message,
            Err(error) => {
                worker::console_error!("workmesh: undecodable message on {queue}: {error}");
                continue;
            }
        };
        let span = messaging::consumer_span(&collector, QUEUES_SYSTEM, &queue, message.body());
        span.set_attribute(attr::MESSAGING_MESSAGE_ID, message.id());
        let body = message.body().body.clone();
        let result = scope::in_span(span.handle(), handler(body)).await;
        if result.is_ok() {
            message.ack();
        } else {
            message.retry();
        }
        span.end_with(&result);
    }
    let spans = collector.drain();
    if let Some(exporter) = telemetry::exporter(env, &crate::Router::new()) {
        if let Some(export) = metrics::export(env, exporter, spans) {
            ctx.wait_until(export);
        }
    }
    // Registry work the handlers' calls queued (refreshes, outcome reports)
    // and this Worker's registration run after the batch, as after a
    // response: a queue-only Worker has no `serve` to drain them.
    discovery::after_response(env);
    if let Some(queued) = background::take() {
        ctx.wait_until(queued);
    }
    Ok(())
}
