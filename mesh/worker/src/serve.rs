use bytes::Bytes;
use workmesh::server::Router;
use workmesh::ConnectError;

use crate::health::{health_router, HEALTH_SERVICE};
use crate::WorkerRuntime;

/// Answers one `fetch` event with the router's Connect services.
///
/// The request size limit is checked on `Content-Length` before the body is
/// read, so an oversized upload is refused without buffering it. Every
/// failure becomes a Connect error response; this never returns `Err` for
/// anything the client sent.
pub async fn serve(
    router: &Router,
    mut request: worker::Request,
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
        return to_worker_response(workmesh::protocol::error_response(&error));
    }
    let body = match request.bytes().await {
        Ok(body) => Bytes::from(body),
        Err(e) => {
            let error =
                ConnectError::invalid_argument(format!("could not read the request body: {e}"));
            return to_worker_response(workmesh::protocol::error_response(&error));
        }
    };
    let http_request = match to_http_request(&request, body) {
        Ok(r) => r,
        Err(error) => return to_worker_response(workmesh::protocol::error_response(&error)),
    };
    let is_health_check = http_request
        .uri()
        .path()
        .starts_with("/workmesh.v1.Health/");
    let response = if is_health_check && !router.service_names().contains(&HEALTH_SERVICE) {
        health_router(router)
            .handle(&WorkerRuntime, http_request)
            .await
    } else {
        router.handle(&WorkerRuntime, http_request).await
    };
    to_worker_response(response)
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

pub(crate) fn to_worker_response(
    response: http::Response<Bytes>,
) -> worker::Result<worker::Response> {
    let (parts, body) = response.into_parts();
    let headers = worker::Headers::from(&parts.headers);
    Ok(worker::Response::from_bytes(body.to_vec())?
        .with_status(parts.status.as_u16())
        .with_headers(headers))
}
