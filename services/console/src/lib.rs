//! The console Worker: the mesh's trace and metrics collector and its
//! dashboard.
//!
//! Receiver (OTLP/HTTP, protobuf `application/x-protobuf` or JSON
//! `application/json`):
//! - `POST /v1/traces`: spans into D1 (as every Worker's `serve` exports
//!   them over the `OTLP` service binding).
//! - `POST /v1/metrics`: Sum and Histogram data points into D1 (see
//!   [`metrics`]).
//!
//! Bad bodies get 400 with a `google.rpc.Status` in the request's encoding;
//! other content types 415; bodies over 8 MiB 413 (with a `Status` too),
//! refused on their `Content-Length` before they are read.
//!
//! Dashboard (server-rendered HTML, no scripts) and its JSON twins:
//! - `GET /` and `GET /api/traces`: recent traces, filtered by `service`,
//!   `method`, `status` (`ok`, `error` or a Connect code), `min_duration_ms`,
//!   `since` / `from` / `to` (the last hour when none is given) and `limit`
//!   (see [`query`]); a bad value is a 400 naming it.
//! - `GET /trace/<id>` (waterfall) and `GET /api/traces/<id>`.
//! - `GET /map` and `GET /api/service-map?since=1h`: caller → callee edges
//!   with call rate, error rate, p50 and p99 (see [`map`]).
//! - `GET /metrics` and `GET /api/metrics?since=1h`: RED per method.
//! - `GET /registry` and `GET /api/registry`: the registry's instances,
//!   read through the `REGISTRY` service binding with the typed client.
//! - `workmesh.v1.Health/Check`, like every Worker of the mesh.
//!
//! Vars: `WORKMESH_CONSOLE_TOKEN` (when set, everything above needs it; see
//! [`auth`]) and `WORKMESH_CONSOLE_RETENTION_HOURS` (default 24; see
//! [`retention`]). The Cron Trigger runs the retention sweep.

pub mod auth;
pub mod map;
pub mod metrics;
pub mod otlp;
pub mod otlp_json;
pub mod query;
pub mod retention;
pub mod view;

use std::time::Duration;

use serde_json::json;
use wasm_bindgen::JsValue;
use worker::{
    event, Context, D1Database, D1PreparedStatement, Env, Method, Request, Response,
    ScheduleContext, ScheduledEvent,
};
use workmesh::proto::v1::registry_client::RegistryClient;
use workmesh::proto::v1::{Instance, ListRequest};
use workmesh_worker::{mesh_transport, Router};

use crate::metrics::MetricRow;
use crate::otlp::{Encoding, SpanRow};
use crate::query::{Param, TimeRange, TraceFilter, DEFAULT_SINCE};
use crate::view::{ListForm, TraceRow};

/// The largest export body accepted.
const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;
/// Statements per D1 batch.
const BATCH: usize = 100;
/// The registry's service name and the console's binding to it.
const REGISTRY_SERVICE: &str = "workmesh.v1.Registry";
const REGISTRY_BINDING: &str = "REGISTRY";
/// How long the registry page waits for the registry.
const REGISTRY_TIMEOUT: Duration = Duration::from_secs(3);

const INSERT_SPAN: &str = "INSERT OR REPLACE INTO spans (trace_id, span_id, parent_span_id, \
     service, name, kind, start_ns, end_ns, status_code, status_message, attributes, events) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)";

const INSERT_POINT: &str = "INSERT OR REPLACE INTO metric_points (service, instance, metric, \
     rpc_service, rpc_method, code, start_ns, time_ns, temporality, value, sum, bucket_counts, bounds) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)";

/// The points a metrics page reads: every series' points up to the
/// window's end (earlier points are the baselines of cumulative series),
/// the newest 50 000 when there are more.
const POINTS_SQL: &str = "SELECT service, instance, metric, rpc_service, rpc_method, code, \
     start_ns, time_ns, temporality, value, sum, bucket_counts, bounds FROM metric_points \
     WHERE time_ns <= ?1 AND metric LIKE 'rpc.%' ORDER BY time_ns DESC LIMIT 50000";

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
    let retention = match retention::hours(var(&env, retention::RETENTION_VAR).as_deref()) {
        Ok(hours) => hours,
        Err(message) => return Response::error(message, 500),
    };
    let token = var(&env, auth::TOKEN_VAR).filter(|t| !t.is_empty());
    match (req.method(), path.as_str()) {
        (Method::Get, "/login") => return html(view::login_page(None), 200),
        (Method::Post, "/login") => return login(req, token.as_deref()).await,
        (Method::Post, "/logout") => return see_other("/login", Some(auth::clear_cookie())),
        _ => {}
    }
    let allowed = auth::authorized(
        token.as_deref(),
        req.headers().get("authorization")?.as_deref(),
        req.headers().get("cookie")?.as_deref(),
        now_ms() / 1000,
    );
    if !allowed {
        return unauthorized(&req, &path);
    }
    let db = env.d1("DB")?;
    match (req.method(), path.as_str()) {
        (Method::Post, "/v1/traces") => ingest(&TRACES, req, &db, retention).await,
        (Method::Post, "/v1/metrics") => ingest(&METRICS, req, &db, retention).await,
        (Method::Get, "/api/traces") => {
            let filter = match trace_filter(&req)? {
                Ok(filter) => filter,
                Err(message) => return bad_request_json(&message),
            };
            let traces = list_traces(&db, &filter).await?;
            let traces: Vec<_> = traces.iter().map(view::trace_json).collect();
            Response::from_json(&json!({ "traces": traces }))
        }
        (Method::Get, "/") => {
            let form = list_form(&req)?;
            match trace_filter(&req)? {
                Ok(filter) => {
                    let traces = list_traces(&db, &filter).await?;
                    html(view::list_page(&traces, &form, None), 200)
                }
                Err(message) => html(view::list_page(&[], &form, Some(&message)), 400),
            }
        }
        (Method::Get, p) if p.starts_with("/api/traces/") => {
            let Some(trace_id) = trace_id(&p["/api/traces/".len()..]) else {
                return bad_request_json("trace id must be 32 hex digits");
            };
            let spans = trace_spans(&db, &trace_id).await?;
            if spans.is_empty() {
                return Ok(
                    Response::from_json(&json!({ "error": "no such trace" }))?.with_status(404)
                );
            }
            let spans: Vec<_> = spans.iter().map(view::span_json).collect();
            Response::from_json(&json!({ "traceId": trace_id, "spans": spans }))
        }
        (Method::Get, p) if p.starts_with("/trace/") => {
            let Some(trace_id) = trace_id(&p["/trace/".len()..]) else {
                return Response::error("trace id must be 32 hex digits", 400);
            };
            let spans = trace_spans(&db, &trace_id).await?;
            html(view::trace_page(&trace_id, &spans), 200)
        }
        (Method::Get, "/api/service-map") => match window(&req)? {
            Ok((range, _)) => {
                let edges = service_map(&db, range).await?;
                Response::from_json(&json!({
                    "fromUnixNano": range.from_ns.to_string(),
                    "toUnixNano": range.to_ns.to_string(),
                    "edges": edges,
                }))
            }
            Err(message) => bad_request_json(&message),
        },
        (Method::Get, "/map") => match window(&req)? {
            Ok((range, since)) => {
                let edges = service_map(&db, range).await?;
                html(view::map_page(&edges, &since, None), 200)
            }
            Err(message) => html(view::map_page(&[], &since_of(&req)?, Some(&message)), 400),
        },
        (Method::Get, "/api/metrics") => match window(&req)? {
            Ok((range, _)) => {
                let methods = red(&db, range).await?;
                Response::from_json(&json!({
                    "fromUnixNano": range.from_ns.to_string(),
                    "toUnixNano": range.to_ns.to_string(),
                    "methods": methods,
                }))
            }
            Err(message) => bad_request_json(&message),
        },
        (Method::Get, "/metrics") => match window(&req)? {
            Ok((range, since)) => {
                let methods = red(&db, range).await?;
                html(view::metrics_page(&methods, &since, None), 200)
            }
            Err(message) => html(
                view::metrics_page(&[], &since_of(&req)?, Some(&message)),
                400,
            ),
        },
        (Method::Get, "/api/registry") => match registry_instances(&env).await {
            Ok(instances) => Response::from_json(&json!({ "instances": instances })),
            Err(message) => Ok(Response::from_json(&json!({
                "error": format!("the registry is unreachable: {message}"),
            }))?
            .with_status(502)),
        },
        (Method::Get, "/registry") => {
            let instances = registry_instances(&env).await;
            let instances = instances.as_deref().map_err(String::as_str);
            html(view::registry_page(instances, now_ms() as i64), 200)
        }
        _ => Response::error("not found", 404),
    }
}

/// The Cron Trigger: deletes everything older than the retention window.
#[event(scheduled)]
async fn scheduled(_event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
    if let Err(error) = sweep(&env).await {
        worker::console_error!("console retention sweep failed: {error}");
    }
}

async fn sweep(env: &Env) -> Result<(), String> {
    let hours = retention::hours(var(env, retention::RETENTION_VAR).as_deref())?;
    let db = env.d1("DB").map_err(|e| e.to_string())?;
    let cutoff = otlp::pad_ns(retention::cutoff_ns(now_ms(), hours));
    for sql in [retention::DELETE_SPANS, retention::DELETE_POINTS] {
        for _ in 0..retention::CRON_ROUNDS {
            let result = db
                .prepare(sql)
                .bind(&[
                    JsValue::from_str(&cutoff),
                    JsValue::from_f64(f64::from(retention::CRON_BATCH)),
                ])
                .map_err(|e| e.to_string())?
                .run()
                .await
                .map_err(|e| e.to_string())?;
            let changed = result
                .meta()
                .ok()
                .flatten()
                .and_then(|m| m.changes)
                .unwrap_or(0);
            if changed < retention::CRON_BATCH as usize {
                break;
            }
        }
    }
    Ok(())
}

fn var(env: &Env, name: &str) -> Option<String> {
    env.var(name).ok().map(|v| v.to_string())
}

fn now_ms() -> u64 {
    worker::Date::now().as_millis()
}

fn html(body: String, status: u16) -> worker::Result<Response> {
    Ok(Response::from_html(body)?.with_status(status))
}

fn bad_request_json(message: &str) -> worker::Result<Response> {
    Ok(Response::from_json(&json!({ "error": message }))?.with_status(400))
}

fn see_other(location: &str, cookie: Option<String>) -> worker::Result<Response> {
    let mut response = Response::empty()?.with_status(303);
    response.headers_mut().set("location", location)?;
    if let Some(cookie) = cookie {
        response.headers_mut().set("set-cookie", &cookie)?;
    }
    Ok(response)
}

/// 401 in the shape the caller expects: an OTLP status for exporters, JSON
/// for the API, the sign-in form for a browser.
fn unauthorized(req: &Request, path: &str) -> worker::Result<Response> {
    let message = "this console needs its token (Authorization: Bearer <WORKMESH_CONSOLE_TOKEN>)";
    let mut response = if path.starts_with("/v1/") {
        let content_type = req.headers().get("content-type")?.unwrap_or_default();
        return otlp_error(Encoding::from_content_type(&content_type), 401, message);
    } else if path.starts_with("/api/") {
        Response::from_json(&json!({ "error": message }))?.with_status(401)
    } else {
        Response::from_html(view::login_page(None))?.with_status(401)
    };
    response
        .headers_mut()
        .set("www-authenticate", "Bearer realm=\"workmesh console\"")?;
    Ok(response)
}

/// `POST /login`: a form with the token; a match sets the session cookie.
async fn login(mut req: Request, token: Option<&str>) -> worker::Result<Response> {
    let Some(token) = token else {
        // Nothing to sign in to.
        return see_other("/", None);
    };
    let body = req.text().await?;
    let given = auth::form_token(&body).unwrap_or_default();
    if !auth::constant_time_eq(given.as_bytes(), token.as_bytes()) {
        return html(
            view::login_page(Some("That is not the console's token.")),
            401,
        );
    }
    let secure = req.url()?.scheme() == "https";
    see_other(
        "/",
        Some(auth::session_cookie(token, now_ms() / 1000, secure)),
    )
}

/// A trace id from a URL: 32 hex digits, lowercased.
fn trace_id(text: &str) -> Option<String> {
    let text = text.trim_end_matches('/');
    (text.len() == 32 && text.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| text.to_ascii_lowercase())
}

fn query_pairs(req: &Request) -> worker::Result<Vec<(String, String)>> {
    Ok(req
        .url()?
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect())
}

fn trace_filter(req: &Request) -> worker::Result<Result<TraceFilter, String>> {
    let pairs = query_pairs(req)?;
    let pairs = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    Ok(query::trace_filter(pairs, now_ms() * 1_000_000))
}

fn list_form(req: &Request) -> worker::Result<ListForm> {
    let mut form = ListForm::default();
    for (key, value) in query_pairs(req)? {
        match key.as_str() {
            "service" => form.service = value,
            "method" => form.method = value,
            "status" => form.status = value,
            "min_duration_ms" => form.min_duration_ms = value,
            "since" => form.since = value,
            _ => {}
        }
    }
    if form.since.trim().is_empty() {
        // What the list shows without a range (and what the form sends).
        form.since = DEFAULT_SINCE.to_owned();
    }
    Ok(form)
}

fn since_of(req: &Request) -> worker::Result<String> {
    Ok(query_pairs(req)?
        .into_iter()
        .find(|(k, v)| k == "since" && !v.trim().is_empty())
        .map_or_else(|| DEFAULT_SINCE.to_owned(), |(_, v)| v))
}

/// The window of the map and metrics views (the last hour by default) and
/// the `since` to show in their form.
fn window(req: &Request) -> worker::Result<Result<(TimeRange, String), String>> {
    let pairs = query_pairs(req)?;
    let now = now_ms() * 1_000_000;
    let range = query::time_range(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())), now);
    let since = since_of(req)?;
    Ok(range.map(|range| {
        let range = range.unwrap_or_else(|| TimeRange::default_window(now));
        (range, since)
    }))
}

fn bind(params: &[Param]) -> Vec<JsValue> {
    params
        .iter()
        .map(|p| match p {
            Param::Text(text) => JsValue::from_str(text),
            Param::Num(n) => JsValue::from_f64(*n),
        })
        .collect()
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
    let too_large = || {
        otlp_error(
            Some(encoding),
            413,
            &format!("export larger than {MAX_BODY_BYTES} bytes"),
        )
        .map(Err)
    };
    // A declared length over the limit is refused before any of the body
    // is read; a chunked body (no length) is checked once read.
    let declared = req.headers().get("content-length")?;
    if declared.as_deref().is_some_and(declared_too_large) {
        return too_large();
    }
    let body = req.bytes().await?;
    if body.len() > MAX_BODY_BYTES {
        return too_large();
    }
    Ok(Ok((encoding, body)))
}

/// Whether a `Content-Length` declares more than [`MAX_BODY_BYTES`]. One
/// that is not a number is left to the runtime (and the check after
/// reading).
fn declared_too_large(content_length: &str) -> bool {
    let digits = content_length.trim();
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    // All digits, so a failed parse is a length beyond u64.
    digits
        .parse::<u64>()
        .map_or(true, |n| n > MAX_BODY_BYTES as u64)
}

fn export_ok(encoding: Encoding, body: Vec<u8>) -> worker::Result<Response> {
    let mut response = Response::from_bytes(body)?;
    response
        .headers_mut()
        .set("content-type", encoding.content_type())?;
    Ok(response)
}

/// The bounded retention delete that rides along with every ingest.
fn retention_statement(
    db: &D1Database,
    sql: &str,
    hours: f64,
) -> worker::Result<D1PreparedStatement> {
    let cutoff = otlp::pad_ns(retention::cutoff_ns(now_ms(), hours));
    db.prepare(sql).bind(&[
        JsValue::from_str(&cutoff),
        JsValue::from_f64(f64::from(retention::INGEST_BATCH)),
    ])
}

/// Runs the retention delete, then the inserts, in D1 batches.
async fn store(
    db: &D1Database,
    sweep: D1PreparedStatement,
    inserts: Vec<D1PreparedStatement>,
) -> worker::Result<()> {
    let mut inserts = inserts.into_iter();
    let mut first: Vec<_> = std::iter::once(sweep)
        .chain(inserts.by_ref().take(BATCH))
        .collect();
    loop {
        db.batch(std::mem::take(&mut first)).await?;
        first = inserts.by_ref().take(BATCH).collect();
        if first.is_empty() {
            return Ok(());
        }
    }
}

/// What differs between the OTLP signals the console receives.
struct Signal<Row> {
    decode: fn(Encoding, &[u8]) -> Result<otlp::Decoded<Row>, String>,
    insert: fn(&D1Database, &Row) -> worker::Result<D1PreparedStatement>,
    /// The bounded retention sweep that runs with every ingest.
    delete_old: &'static str,
    /// The `partialSuccess` field counting refused items, and why.
    rejected_field: &'static str,
    rejected_reason: &'static str,
}

const TRACES: Signal<SpanRow> = Signal {
    decode: otlp::decode_traces,
    insert: insert_span,
    delete_old: retention::DELETE_SPANS,
    rejected_field: "rejectedSpans",
    rejected_reason: "spans with invalid trace or span ids",
};

const METRICS: Signal<MetricRow> = Signal {
    decode: metrics::decode_metrics,
    insert: insert_point,
    delete_old: retention::DELETE_POINTS,
    rejected_field: "rejectedDataPoints",
    rejected_reason: "data points without a time or with buckets that do not fit their bounds",
};

/// Decodes one export, stores its rows with a retention sweep, and answers
/// with the OTLP response (partial success when items were refused).
async fn ingest<Row>(
    signal: &Signal<Row>,
    mut req: Request,
    db: &D1Database,
    hours: f64,
) -> worker::Result<Response> {
    let (encoding, body) = match export_body(&mut req).await? {
        Ok(export) => export,
        Err(response) => return Ok(response),
    };
    let decoded = match (signal.decode)(encoding, &body) {
        Ok(decoded) => decoded,
        Err(message) => return otlp_error(Some(encoding), 400, &message),
    };
    let inserts = decoded
        .rows
        .iter()
        .map(|row| (signal.insert)(db, row))
        .collect::<worker::Result<Vec<_>>>()?;
    store(
        db,
        retention_statement(db, signal.delete_old, hours)?,
        inserts,
    )
    .await?;
    export_ok(
        encoding,
        otlp::export_response(
            encoding,
            decoded.rejected,
            signal.rejected_field,
            signal.rejected_reason,
        ),
    )
}

fn insert_span(db: &D1Database, row: &SpanRow) -> worker::Result<D1PreparedStatement> {
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

fn insert_point(db: &D1Database, row: &MetricRow) -> worker::Result<D1PreparedStatement> {
    let text = |s: &str| JsValue::from_str(s);
    db.prepare(INSERT_POINT).bind(&[
        text(&row.service),
        text(&row.instance),
        text(&row.metric),
        text(&row.rpc_service),
        text(&row.rpc_method),
        text(&row.code),
        text(&row.start_ns),
        text(&row.time_ns),
        JsValue::from_f64(row.temporality as f64),
        JsValue::from_f64(row.value),
        JsValue::from_f64(row.sum),
        text(&row.bucket_counts),
        text(&row.bounds),
    ])
}

async fn list_traces(db: &D1Database, filter: &TraceFilter) -> worker::Result<Vec<TraceRow>> {
    let (sql, params) = query::list_sql(filter);
    db.prepare(&sql)
        .bind(&bind(&params))?
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

async fn service_map(db: &D1Database, range: TimeRange) -> worker::Result<Vec<map::Edge>> {
    let calls: Vec<map::Call> = db
        .prepare(map::CALLS_SQL)
        .bind(&[
            JsValue::from_str(&otlp::pad_ns(range.from_ns)),
            JsValue::from_str(&otlp::pad_ns(range.to_ns)),
            JsValue::from_f64(f64::from(map::MAX_CALLS)),
        ])?
        .all()
        .await?
        .results()?;
    Ok(map::edges(&calls, range.seconds()))
}

async fn red(db: &D1Database, range: TimeRange) -> worker::Result<Vec<metrics::MethodRed>> {
    let rows: Vec<MetricRow> = db
        .prepare(POINTS_SQL)
        .bind(&[JsValue::from_str(&otlp::pad_ns(range.to_ns))])?
        .all()
        .await?
        .results()?;
    Ok(metrics::red(&rows, range))
}

/// Every instance the registry knows, through the `REGISTRY` binding and
/// the mesh's client stack; an `Err` says why the registry could not be
/// read (the pages show it instead of failing).
async fn registry_instances(env: &Env) -> Result<Vec<Instance>, String> {
    let transport =
        mesh_transport(env, REGISTRY_BINDING, REGISTRY_SERVICE).map_err(|e| e.to_string())?;
    let request =
        workmesh::message::Request::new(ListRequest::default()).with_timeout(REGISTRY_TIMEOUT);
    RegistryClient::new(transport)
        .list(request)
        .await
        .map(|response| response.into_inner().instances)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_lengths_over_the_limit_are_too_large() {
        assert!(!declared_too_large("0"));
        assert!(!declared_too_large(&MAX_BODY_BYTES.to_string()));
        assert!(declared_too_large(&(MAX_BODY_BYTES + 1).to_string()));
        assert!(declared_too_large(" 99999999999999999999 "));
        assert!(declared_too_large("18446744073709551615"));
        // Not a number: left to the check after reading.
        assert!(!declared_too_large("lots"));
        assert!(!declared_too_large("-1"));
        assert!(!declared_too_large(""));
    }
}
