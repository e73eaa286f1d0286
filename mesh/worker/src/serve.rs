use bytes::Bytes;
use futures_util::future::join_all;
use workmesh::protocol::{error_from_http, error_response};
use workmesh::server::Router;
use workmesh::trace::{rpc, scope, ActiveSpan, SpanKind, TraceCollector, TraceContext};
use workmesh::{ConnectError, LocalBoxFuture, Runtime};

use crate::faults::{self, FAULTS_SERVICE};
use crate::health::{health_router, HEALTH_SERVICE};
use crate::{background, discovery, metrics, telemetry, WorkerRuntime};

/// Answers one `fetch` event with the router's Connect services, plus the
/// mesh's built-in ones: `workmesh.v1.Health` always, `workmesh.v1.Faults`
/// and fault injection when the Worker's `WORKMESH_FAULTS` var enables them.
/// Fault rules apply to every call but `workmesh.v1.Faults` itself,
/// including the built-in `workmesh.v1.Health`.
///
/// Every call except health checks gets a SERVER span (a child of the
/// caller's `traceparent`, or a new trace when it is missing or malformed),
/// current while the handler runs so typed clients' calls become its CLIENT
/// children. After the response, the request's spans are exported through
/// `ctx.wait_until` (see [`telemetry`](crate::telemetry) for where); an
/// export failure is logged and never touches the response. Registry work
/// runs there too: refreshes the isolate's transports queued, this Worker's
/// registration and heartbeats, and outcome reports
/// ([`discovery`](crate::discovery)).
///
/// The request size limit is checked on `Content-Length` before the body is
/// read, so an oversized upload is refused without buffering it. Every
/// failure becomes a Connect error response; this never returns `Err` for
/// anything the client sent.
pub async fn serve(
    router: &Router,
    request: worker::Request,
    env: &worker::Env,
    ctx: &worker::Context,
) -> worker::Result<worker::Response> {
    serve_with(router, request, env, |export| ctx.wait_until(export)).await
}

/// [`serve`] for callers without a `worker::Context` (a Durable Object's
/// `fetch`): `wait_until` receives the export future to run after the
/// response (e.g. `|f| state.wait_until(f)`), or drops it to skip export.
pub async fn serve_with(
    router: &Router,
    request: worker::Request,
    env: &worker::Env,
    wait_until: impl FnOnce(LocalBoxFuture<'static, ()>),
) -> worker::Result<worker::Response> {
    // Handlers' `tracing` spans and events join the request's trace.
    workmesh::trace::bridge::install();
    let collector = TraceCollector::new(&WorkerRuntime, telemetry::sampler(env));
    let response = serve_traced(router, request, env, &collector).await;
    let mut after: Vec<LocalBoxFuture<'static, ()>> = Vec::new();
    let spans = collector.drain();
    // Spans, and the isolate's metrics when due.
    if let Some(exporter) = telemetry::exporter(env, router) {
        if let Some(export) = metrics::export(env, exporter, spans) {
            after.push(export);
        }
    }
    // Registry work (refreshes queued by transports, this Worker's
    // registration, outcome reports) also runs after the response.
    discovery::after_response(env);
    if let Some(queued) = background::take() {
        after.push(queued);
    }
    if !after.is_empty() {
        wait_until(Box::pin(async move {
            join_all(after).await;
        }));
    }
    response
}

async fn serve_traced(
    router: &Router,
    mut request: worker::Request,
    env: &worker::Env,
    collector: &TraceCollector,
) -> worker::Result<worker::Response> {
    let headers = http::HeaderMap::from(request.headers());
    let span = server_span(router, collector, &request.path(), &headers);
    let limit = router.message_limit();
    let declared = headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        let error = ConnectError::resource_exhausted(format!(
            "request body exceeds the {limit} byte limit"
        ));
        return fail(span, &error);
    }
    let body = match request.bytes().await {
        Ok(body) => Bytes::from(body),
        Err(e) => {
            let error =
                ConnectError::invalid_argument(format!("could not read the request body: {e}"));
            return fail(span, &error);
        }
    };
    let http_request = match to_http_request(&request, headers, body) {
        Ok(r) => r,
        Err(error) => return fail(span, &error),
    };
    let (path, started) = (http_request.uri().path().to_owned(), WorkerRuntime.now());
    let response = match &span {
        Some(span) => scope::in_span(span.handle(), route(router, http_request, env)).await,
        None => route(router, http_request, env).await,
    };
    metrics::record(env, router, &path, &response, started);
    if let Some(span) = span {
        end_server_span(span, &response);
    }
    to_worker_response(response)
}

/// The SERVER span of a call, named by its RPC; `None` for health checks
/// (probed every few seconds, they would drown the traces).
fn server_span(
    router: &Router,
    collector: &TraceCollector,
    path: &str,
    headers: &http::HeaderMap,
) -> Option<ActiveSpan> {
    let service = path.trim_start_matches('/').split('/').next().unwrap_or("");
    if let Some(method) = router.method_for_path(path) {
        return Some(rpc::rpc_server_span(collector, method, headers));
    }
    if service == HEALTH_SERVICE {
        return None;
    }
    if service == FAULTS_SERVICE {
        if let Some(method) = faults::faults_router().method_for_path(path) {
            return Some(rpc::rpc_server_span(collector, method, headers));
        }
    }
    // Not a procedure we serve: still traced (the caller sees an error),
    // under a fixed name so arbitrary paths do not become span names.
    let parent = TraceContext::extract(headers);
    let span = collector.start_span("unknown procedure", SpanKind::Server, parent.as_ref());
    let shown: String = path.chars().take(256).collect();
    span.set_attribute("url.path", shown);
    Some(span)
}

/// Ends the SERVER span with the response's Connect code (read back from
/// the error body for a non-200 answer).
fn end_server_span(span: ActiveSpan, response: &http::Response<Bytes>) {
    if response.status() == http::StatusCode::OK {
        span.end();
    } else {
        let error = error_from_http(response.status(), response.headers(), response.body());
        span.end_with::<()>(&Err(error));
    }
}

fn fail(span: Option<ActiveSpan>, error: &ConnectError) -> worker::Result<worker::Response> {
    if let Some(span) = span {
        span.end_with::<()>(&Err(error.clone()));
    }
    error_to_worker(error)
}

async fn route(
    router: &Router,
    request: http::Request<Bytes>,
    env: &worker::Env,
) -> http::Response<Bytes> {
    let path = request.uri().path();
    let service = path.trim_start_matches('/').split('/').next().unwrap_or("");
    let served_by_app = || router.service_names().contains(&service);
    if faults::enabled(env) {
        if service == FAULTS_SERVICE && !served_by_app() {
            return faults::faults_router()
                .handle(&WorkerRuntime, request)
                .await;
        }
        // Faults apply before the built-in Health answers too, so a rule on
        // `workmesh.v1.Health` fails the registry's active health checks.
        let timeout_ms = request
            .headers()
            .get("connect-timeout-ms")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let injection = faults::decide(path, timeout_ms, &WorkerRuntime);
        if let Err(error) = faults::apply(injection).await {
            return error_response(&error);
        }
    }
    if service == HEALTH_SERVICE && !served_by_app() {
        return health_router(router).handle(&WorkerRuntime, request).await;
    }
    router.handle(&WorkerRuntime, request).await
}

fn to_http_request(
    request: &worker::Request,
    headers: http::HeaderMap,
    body: Bytes,
) -> Result<http::Request<Bytes>, ConnectError> {
    let url = request
        .url()
        .map_err(|e| ConnectError::invalid_argument(format!("bad URL: {e}")))?;
    let path_and_query = match url.query() {
        Some(q) => format!("{}?{}", url.path(), q),
        None => url.path().to_string(),
    };
    let mut builder = http::Request::builder()
        .method(request.method().as_ref())
        .uri(path_and_query);
    if let Some(slot) = builder.headers_mut() {
        *slot = headers;
    }
    builder
        .body(body)
        .map_err(|e| ConnectError::invalid_argument(format!("malformed request: {e}")))
}

/// A Connect error as the Worker's response: for failures before a router
/// is available (a misconfigured binding or resilience config).
pub fn error_to_worker(error: &ConnectError) -> worker::Result<worker::Response> {
    to_worker_response(error_response(error))
}

fn to_worker_response(response: http::Response<Bytes>) -> worker::Result<worker::Response> {
    let (parts, body) = response.into_parts();
    let headers = worker::Headers::from(&parts.headers);
    let response = worker::Response::from_bytes(body.to_vec())?
        .with_status(parts.status.as_u16())
        .with_headers(headers);
    // The router already compressed the body when it set `content-encoding`;
    // left on `Automatic`, workerd would compress it a second time.
    Ok(
        if parts.headers.contains_key(http::header::CONTENT_ENCODING) {
            response.with_encode_body(worker::EncodeBody::Manual)
        } else {
            response
        },
    )
}
