//! Spans following OpenTelemetry's semantic conventions for RPC
//! (`rpc.system = "connect_rpc"`) and databases (D1).
//!
//! Span names are `<package>.<Service>/<Method>`, as the conventions ask.

use std::borrow::Cow;

use http::HeaderMap;

use super::context::TraceContext;
use super::span::{ActiveSpan, SpanKind, TraceCollector};
use crate::MethodDescriptor;

/// Attribute keys used by the mesh.
pub mod attr {
    pub const RPC_SYSTEM: &str = "rpc.system";
    pub const RPC_SERVICE: &str = "rpc.service";
    pub const RPC_METHOD: &str = "rpc.method";
    pub const CONNECT_ERROR_CODE: &str = "rpc.connect_rpc.error_code";
    pub const SERVER_ADDRESS: &str = "server.address";
    pub const DB_SYSTEM: &str = "db.system";
    pub const DB_QUERY_TEXT: &str = "db.query.text";
    pub const DB_RETURNED_ROWS: &str = "db.response.returned_rows";
    /// 1-based attempt of a retried call (an event attribute on the client span).
    pub const ATTEMPT: &str = "workmesh.attempt";
}

/// `rpc.system` value for Connect.
pub const CONNECT_RPC: &str = "connect_rpc";

fn rpc_span(
    collector: &TraceCollector,
    method: &MethodDescriptor,
    kind: SpanKind,
    parent: Option<&TraceContext>,
) -> ActiveSpan {
    let span = collector.start_span(
        format!("{}/{}", method.service, method.method),
        kind,
        parent,
    );
    if span.is_recording() {
        span.set_attribute(attr::RPC_SYSTEM, CONNECT_RPC);
        span.set_attribute(attr::RPC_SERVICE, method.service);
        span.set_attribute(attr::RPC_METHOD, method.method);
    }
    span
}

/// The SERVER span of an incoming call: its parent is the caller's
/// `traceparent` from `headers`, or none (a new trace) when that header is
/// missing or malformed.
pub fn rpc_server_span(
    collector: &TraceCollector,
    method: &MethodDescriptor,
    headers: &HeaderMap,
) -> ActiveSpan {
    let parent = TraceContext::extract(headers);
    rpc_span(collector, method, SpanKind::Server, parent.as_ref())
}

/// The CLIENT span of an outgoing call, as a child of `parent` (usually the
/// current SERVER span). `server_address` is the callee as the caller names
/// it (a binding or host name) when known. Propagate it with
/// `span.context().inject(request.headers_mut())`.
pub fn rpc_client_span(
    collector: &TraceCollector,
    method: &MethodDescriptor,
    parent: Option<&TraceContext>,
    server_address: Option<&str>,
) -> ActiveSpan {
    let span = rpc_span(collector, method, SpanKind::Client, parent);
    if let Some(address) = server_address {
        span.set_attribute(attr::SERVER_ADDRESS, address.to_owned());
    }
    span
}

/// A CLIENT span for one database statement: `db.system` (`"d1"`) and
/// `db.query.text`. Name it by the statement's first keyword (`SELECT`);
/// record rows with [`record_rows`]. Pass statements with placeholders, not
/// literal values: the text is exported as is.
pub fn db_span(
    collector: &TraceCollector,
    system: &'static str,
    statement: &str,
    parent: Option<&TraceContext>,
) -> ActiveSpan {
    let operation = statement
        .split_whitespace()
        .next()
        .filter(|word| word.chars().all(|c| c.is_ascii_alphabetic()))
        .map(|word| Cow::Owned(format!("{} {system}", word.to_ascii_uppercase())))
        .unwrap_or(Cow::Borrowed(system));
    let span = collector.start_span(operation, SpanKind::Client, parent);
    if span.is_recording() {
        span.set_attribute(attr::DB_SYSTEM, system);
        span.set_attribute(attr::DB_QUERY_TEXT, statement.to_owned());
    }
    span
}

/// Records how many rows a statement returned.
pub fn record_rows(span: &ActiveSpan, rows: usize) {
    span.set_attribute(attr::DB_RETURNED_ROWS, rows);
}
