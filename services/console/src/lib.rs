//! The console Worker: the mesh's local trace collector and viewer.
//!
//! - `POST /v1/traces`: OTLP/HTTP protobuf (`application/x-protobuf`), as
//!   every Worker's `serve` exports it over the `OTLP` service binding;
//!   spans are stored in the console's own D1.
//! - `GET /api/traces?service=&limit=`: recent traces (root span, service,
//!   duration, span count, error), newest first.
//! - `GET /api/traces/<trace_id>`: one trace's spans.
//! - `GET /`: the trace list as HTML; `GET /trace/<trace_id>`: a waterfall.
//! - `workmesh.v1.Health/Check`, like every Worker of the mesh.
//!
//! Locally it is open to anyone who can reach its port; a deployed console
//! needs an access check (not done yet).

pub mod otlp;
pub mod otlp_json;
pub mod view;

use serde_json::json;
use wasm_bindgen::JsValue;
use worker::{event, Context, D1Database, Env, Method, Request, Response};
use workmesh_worker::Router;

use crate::otlp::{Encoding, SpanRow};
use crate::view::TraceRow;

/// The largest export body accepted.
const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;
/// Traces listed when the caller asks for none, and the most at once.
const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 500;
/// Statements per D1 batch.
const BATCH: usize = 100;

const INSERT_SPAN: &str = "INSERT OR REPLACE INTO spans (trace_id, span_id, parent_span_id, \
     service, name, kind, start_ns, end_ns, status_code, status_message, attributes, events) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)";

/// Recent traces; the root is the span without a parent in the trace
/// (earliest first when there are several).
const LIST_TRACES: &str = "SELECT s.trace_id AS trace_id, MIN(s.start_ns) AS start_ns, \
     MAX(s.end_ns) AS end_ns, COUNT(*) AS span_count, MAX(s.status_code = 2) AS error, \
     (SELECT r.name FROM spans r WHERE r.trace_id = s.trace_id ORDER BY \
        (r.parent_span_id IS NULL OR r.parent_span_id NOT IN \
          (SELECT p.span_id FROM spans p WHERE p.trace_id = r.trace_id)) DESC, r.start_ns LIMIT 1) AS root_name, \
     (SELECT r.service FROM spans r WHERE r.trace_id = s.trace_id ORDER BY \
        (r.parent_span_id IS NULL OR r.parent_span_id NOT IN \
          (SELECT p.span_id FROM spans p WHERE p.trace_id = r.trace_id)) DESC, r.start_ns LIMIT 1) AS root_service \
     FROM spans s \
     WHERE ?1 = '' OR s.trace_id IN (SELECT trace_id FROM spans WHERE service = ?1) \
     GROUP BY s.trace_id ORDER BY MIN(s.start_ns) DESC LIMIT ?2";

const TRACE_SPANS: &str = "SELECT trace_id, span_id, parent_span_id, service, name, kind, \
     start_ns, end_ns, status_code, status_message, attributes, events \
     FROM spans WHERE trace_id = ?1 ORDER BY start_ns, span_id";

#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: Context) -> worker::Result<Response> {
    let path = req.path();
    if path.starts_with("/workmesh.v1.") {
        // Health (and local fault control), answered by the mesh adapter.
        return workmesh_worker::serve(&Router::new(), req, &env, &ctx).await;
    }
    let db = env.d1("DB")?;
    match (req.method(), path.as_str()) {
        (Method::Post, "/v1/traces") => ingest(req, &db).await,
        (Method::Get, "/api/traces") => {
            let (service, limit) = list_query(&req)?;
            let traces = list_traces(&db, &service, limit).await?;
            let traces: Vec<_> = traces.iter().map(view::trace_json).collect();
            Response::from_json(&json!({ "traces": traces }))
        }
        (Method::Get, "/") => {
            let (service, limit) = list_query(&req)?;
            let traces = list_traces(&db, &service, limit).await?;
            Response::from_html(view::list_page(&traces, &service))
        }
        (Method::Get, p) if p.starts_with("/api/traces/") => {
            let Some(trace_id) = trace_id(&p["/api/traces/".len()..]) else {
                return Response::error("trace id must be 32 hex digits", 400);
            };
            let spans = trace_spans(&db, &trace_id).await?;
            if spans.is_empty() {
                return Response::error("no such trace", 404);
            }
            let spans: Vec<_> = spans.iter().map(view::span_json).collect();
            Response::from_json(&json!({ "traceId": trace_id, "spans": spans }))
        }
        (Method::Get, p) if p.starts_with("/trace/") => {
            let Some(trace_id) = trace_id(&p["/trace/".len()..]) else {
                return Response::error("trace id must be 32 hex digits", 400);
            };
            let spans = trace_spans(&db, &trace_id).await?;
            Response::from_html(view::trace_page(&trace_id, &spans))
        }
        _ => Response::error("not found", 404),
    }
}

/// A trace id from a URL: 32 hex digits, lowercased.
fn trace_id(text: &str) -> Option<String> {
    let text = text.trim_end_matches('/');
    (text.len() == 32 && text.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| text.to_ascii_lowercase())
}

fn list_query(req: &Request) -> worker::Result<(String, u32)> {
    let url = req.url()?;
    let mut service = String::new();
    let mut limit = DEFAULT_LIMIT;
    for (key, value) in url.query_pairs() {
        match key.as_ref() {
            "service" => service = value.trim().to_owned(),
            "limit" => {
                limit = value
                    .parse::<u32>()
                    .unwrap_or(DEFAULT_LIMIT)
                    .clamp(1, MAX_LIMIT)
            }
            _ => {}
        }
    }
    Ok((service, limit))
}

/// An OTLP/HTTP error response: a `google.rpc.Status` body in the
/// request's encoding.
fn otlp_error(encoding: Option<Encoding>, status: u16, message: &str) -> worker::Result<Response> {
    let code = if status == 401 {
        otlp::UNAUTHENTICATED
    } else {
        otlp::INVALID_ARGUMENT
    };
    let (body, content_type) = otlp::error_body(encoding, code, message);
    let mut response = Response::from_bytes(body)?.with_status(status);
    response.headers_mut().set("content-type", content_type)?;
    Ok(response)
}

/// The encoding and body of an OTLP/HTTP export, or the error response.
async fn export_body(req: &mut Request) -> worker::Result<Result<(Encoding, Vec<u8>), Response>> {
    let content_type = req.headers().get("content-type")?.unwrap_or_default();
    let Some(encoding) = Encoding::from_content_type(&content_type) else {
        return otlp_error(
            None,
            415,
            &format!(
                "content-type {content_type:?} is not OTLP/HTTP: send application/x-protobuf or application/json"
            ),
        )
        .map(Err);
    };
    let body = req.bytes().await?;
    if body.len() > MAX_BODY_BYTES {
        return otlp_error(
            Some(encoding),
            413,
            &format!("export larger than {MAX_BODY_BYTES} bytes"),
        )
        .map(Err);
    }
    Ok(Ok((encoding, body)))
}

async fn ingest(mut req: Request, db: &D1Database) -> worker::Result<Response> {
    let (encoding, body) = match export_body(&mut req).await? {
        Ok(export) => export,
        Err(response) => return Ok(response),
    };
    let decoded = match otlp::decode_traces(encoding, &body) {
        Ok(decoded) => decoded,
        Err(message) => return otlp_error(Some(encoding), 400, &message),
    };
    for chunk in decoded.rows.chunks(BATCH) {
        let statements = chunk
            .iter()
            .map(|row| insert(db, row))
            .collect::<worker::Result<Vec<_>>>()?;
        db.batch(statements).await?;
    }
    let body = otlp::export_response(
        encoding,
        decoded.rejected,
        "rejectedSpans",
        "spans with invalid trace or span ids",
    );
    let mut response = Response::from_bytes(body)?;
    response
        .headers_mut()
        .set("content-type", encoding.content_type())?;
    Ok(response)
}

fn insert(db: &D1Database, row: &SpanRow) -> worker::Result<worker::D1PreparedStatement> {
    let text = |s: &str| JsValue::from_str(s);
    db.prepare(INSERT_SPAN).bind(&[
        text(&row.trace_id),
        text(&row.span_id),
        row.parent_span_id.as_deref().map_or(JsValue::NULL, text),
        text(&row.service),
        text(&row.name),
        JsValue::from_f64(row.kind as f64),
        text(&row.start_ns),
        text(&row.end_ns),
        JsValue::from_f64(row.status_code as f64),
        text(&row.status_message),
        text(&row.attributes),
        text(&row.events),
    ])
}

async fn list_traces(db: &D1Database, service: &str, limit: u32) -> worker::Result<Vec<TraceRow>> {
    db.prepare(LIST_TRACES)
        .bind(&[
            JsValue::from_str(service),
            JsValue::from_f64(f64::from(limit)),
        ])?
        .all()
        .await?
        .results()
}

async fn trace_spans(db: &D1Database, trace_id: &str) -> worker::Result<Vec<SpanRow>> {
    db.prepare(TRACE_SPANS)
        .bind(&[JsValue::from_str(trace_id)])?
        .all()
        .await?
        .results()
}
