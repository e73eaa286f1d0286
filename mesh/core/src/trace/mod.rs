//! Distributed tracing: W3C trace context across every hop, spans collected
//! per request, exported as OTLP/HTTP protobuf after the response.
//!
//! ```
//! use workmesh::trace::{rpc, Sampler, TraceCollector};
//! use workmesh::testing::ManualRuntime;
//! use workmesh::{Idempotency, MethodDescriptor};
//!
//! static GET: MethodDescriptor = MethodDescriptor {
//!     service: "shop.v1.CatalogService",
//!     method: "GetProduct",
//!     idempotency: Idempotency::NoSideEffects,
//! };
//! let runtime = ManualRuntime::default();
//! let collector = TraceCollector::new(&runtime, Sampler::ratio(1.0));
//! let server = rpc::rpc_server_span(&collector, &GET, &http::HeaderMap::new());
//! let query = rpc::db_span(&collector, "d1", "SELECT * FROM products WHERE id = ?", Some(server.context()));
//! rpc::record_rows(&query, 1);
//! query.end();
//! server.end();
//! let spans = collector.drain();
//! assert_eq!(spans.len(), 2);
//! assert_eq!(spans[1].parent_span_id, Some(spans[0].span_id));
//! ```
//!
//! # Seams for the router, the client and the Workers adapter
//!
//! How each side uses it. Wired today: `workmesh_worker::serve` (SERVER span
//! per call, export via `wait_until`) and [`TraceLayer`] innermost in
//! [`ClientStack`](crate::stack::ClientStack) (CLIENT span per attempt).
//! D1 queries get spans through [`db`] (`workmesh_worker::TracedD1`).
//!
//! - **Workers adapter / `serve()`** (per request): create a
//!   [`TraceCollector::new(&runtime, sampler)`](TraceCollector::new); after the
//!   response, `let spans = collector.drain();` and hand
//!   [`OtlpExporter::export(spans)`](otlp::OtlpExporter::export) to
//!   `ctx.wait_until` (log its `Err`, never return it). The exporter, the
//!   [`Sampler`] and a [`MetricsRegistry`](crate::metrics::MetricsRegistry)
//!   are per isolate; metrics go out with
//!   [`OtlpExporter::export_metrics`](otlp::OtlpExporter::export_metrics)
//!   when an [`ExportSchedule`](crate::metrics::ExportSchedule) says so
//!   (`workmesh_worker::metrics`: the isolate's first request, then at most
//!   every 5 s, in the same `wait_until` as the spans).
//! - **Router** (`Router::handle`, after the method lookup): `let span =
//!   rpc::rpc_server_span(&collector, method, &parts.headers);` run the
//!   handler as `scope::in_span(span.handle(), handler_future)`, then
//!   `span.end_with(&result)` and `metrics.record(method, code, elapsed)`.
//!   The collector can reach the router as a parameter of `handle` or from
//!   [`scope::current`] if the adapter wraps the whole call in `in_span`.
//! - **Client trace layer** (innermost, just above the transport, so every
//!   retry attempt gets its own CLIENT span): `let parent =
//!   scope::current();` if there is one, `let span =
//!   rpc::rpc_client_span(parent.collector(), method, Some(parent.context()),
//!   address);` `span.context().inject(request.headers_mut());` await the
//!   transport, `span.end_with(&result)`. Without a current span, just
//!   forward (or start a root with a per-isolate collector).
//! - **Handlers**: D1 statements as [`db::statement_span`] /
//!   [`db::batch_span`] under `scope::current()`; with the [`bridge`] installed, plain
//!   `tracing::info_span!` / `tracing::info!` become child spans / events.
//!
//! Modules: [`context`] (traceparent / tracestate), [`sampler`], [`span`]
//! (collector and spans), [`rpc`] (semantic conventions), [`scope`] (the
//! current span), [`otlp`] (encoding and exporter).

pub mod bridge;
pub mod context;
pub mod db;
pub mod layer;
pub mod messaging;
pub mod otlp;
pub mod rpc;
pub mod sampler;
pub mod scope;
pub mod span;
pub mod tree;

pub use context::{SpanId, TraceContext, TraceId};
pub use layer::{TraceLayer, TraceService};
pub use otlp::{OtlpExporter, Resource};
pub use sampler::Sampler;
pub use span::{
    ActiveSpan, AttrValue, Attributes, SpanData, SpanEvent, SpanHandle, SpanKind, SpanStatus,
    TraceCollector,
};
