use bytes::Bytes;
use workmesh::protocol::error_response;
use workmesh::server::Router;
use workmesh::ConnectError;

use crate::faults::{self, FAULTS_SERVICE};
use crate::health::{health_router, HEALTH_SERVICE};
use crate::WorkerRuntime;

/// Answers one `fetch` event with the router's Connect services, plus the
/// mesh's built-in ones: `workmesh.v1.Health` always, `workmesh.v1.Faults`
/// and fault injection when the Worker's `WORKMESH_FAULTS` var enables them.
/// Fault rules apply to every call but `workmesh.v1.Faults` itself,
/// including the built-in `workmesh.v1.Health`.
///
/// The request size limit is checked on `Content-Length` before the body is
/// read, so an oversized upload is refused without buffering it. Every
/// failure becomes a Connect error response; this never returns `Err` for
/// anything the client sent.
pub async fn serve(
    router: &Router,
    mut request: worker::Request,
    env: &worker::Env,
) -> worker::Result<worker::Response> {
    let limit = router.message_limit();
    let declared = request
        .headers()
        .get("content-length")
        .ok()
        .flatten()
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        let error = ConnectError::resource_exhausted(format!(
            "request body exceeds the {limit} byte limit"
        ));
        return error_to_worker(&error);
    }
    let body = match request.bytes().await {
        Ok(body) => Bytes::from(body),
        Err(e) => {
            let error =
                ConnectError::invalid_argument(format!("could not read the request body: {e}"));
            return error_to_worker(&error);
        }
    };
    let http_request = match to_http_request(&request, body) {
        Ok(r) => r,
        Err(error) => return error_to_worker(&error),
    };
    let response = route(router, http_request, env).await;
    to_worker_response(response)
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
    if let Some(headers) = builder.headers_mut() {
        *headers = http::HeaderMap::from(request.headers());
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
    Ok(worker::Response::from_bytes(body.to_vec())?
        .with_status(parts.status.as_u16())
        .with_headers(headers))
}
