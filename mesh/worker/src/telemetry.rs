//! Where a Worker's spans go, read from its env per request:
//!
//! 1. the service binding `OTLP` (the local console Worker, or any Worker
//!    speaking OTLP/HTTP), when the Worker has one;
//! 2. else `WORKMESH_OTLP_URL` (an OTLP/HTTP base URL such as
//!    `https://api.honeycomb.io`);
//! 3. else nowhere.
//!
//! `WORKMESH_OTLP_HEADERS` (a JSON map of extra headers: an API key, or
//! `{"authorization": "Bearer …"}` for a console with a token) applies to
//! either; keep it in a secret.
//!
//! The sampler ratio is `WORKMESH_TRACE_SAMPLE_RATIO` (default 1.0).

use std::task::{Context, Poll};

use bytes::Bytes;
use js_sys::Uint8Array;
use workmesh::server::Router;
use workmesh::trace::{OtlpExporter, Resource, Sampler};
use workmesh::{ConnectError, LocalBoxFuture};

use crate::BindingTransport;

/// The service binding spans are exported to, when present.
pub const OTLP_BINDING: &str = "OTLP";
/// An OTLP/HTTP base URL, used when there is no `OTLP` binding.
pub const OTLP_URL_VAR: &str = "WORKMESH_OTLP_URL";
/// A JSON object of extra headers sent with every export.
pub const OTLP_HEADERS_VAR: &str = "WORKMESH_OTLP_HEADERS";
/// The head-sampling ratio of new traces, `0` to `1` (default 1).
pub const SAMPLE_RATIO_VAR: &str = "WORKMESH_TRACE_SAMPLE_RATIO";

/// The sampler from `WORKMESH_TRACE_SAMPLE_RATIO`; unset or unparsable is 1.
pub(crate) fn sampler(env: &worker::Env) -> Sampler {
    let ratio = env
        .var(SAMPLE_RATIO_VAR)
        .ok()
        .and_then(|value| value.to_string().trim().parse::<f64>().ok())
        .unwrap_or(1.0);
    Sampler::ratio(ratio)
}

/// `service.name`: `OTEL_SERVICE_NAME`, else `WORKMESH_SERVICE`, else the
/// router's first service.
fn resource(env: &worker::Env, router: &Router) -> Resource {
    let var = |name: &str| {
        env.var(name)
            .ok()
            .map(|v| v.to_string())
            .filter(|v| !v.is_empty())
    };
    let name = var("OTEL_SERVICE_NAME")
        .or_else(|| var("WORKMESH_SERVICE"))
        .or_else(|| router.service_names().first().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown_service".to_owned());
    let mut resource = Resource::new(name);
    if let Some(version) = var("WORKMESH_VERSION") {
        resource = resource.with_version(version);
    }
    resource
}

/// The exporter this Worker is configured for, if any. A bad URL or header
/// map is logged and disables export; it never fails the request.
pub(crate) fn exporter(env: &worker::Env, router: &Router) -> Option<OtlpExporter<OtlpTransport>> {
    let built = if let Ok(binding) = BindingTransport::new(env, OTLP_BINDING) {
        // A service binding ignores the host.
        OtlpExporter::new(
            OtlpTransport::Binding(binding),
            "https://otlp",
            resource(env, router),
        )
    } else {
        let url = env.var(OTLP_URL_VAR).ok()?.to_string();
        if url.trim().is_empty() {
            return None;
        }
        OtlpExporter::new(OtlpTransport::Fetch, url.trim(), resource(env, router))
    };
    // Headers apply to both: a deployed console behind the `OTLP` binding
    // wants its bearer token as much as a SaaS backend wants its API key.
    let built = built.and_then(|exporter| match env.var(OTLP_HEADERS_VAR) {
        Ok(json) => with_headers(exporter, &json.to_string()),
        Err(_) => Ok(exporter),
    });
    match built {
        Ok(exporter) => Some(exporter),
        Err(error) => {
            worker::console_error!("workmesh: trace export disabled: {error}");
            None
        }
    }
}

fn with_headers(
    mut exporter: OtlpExporter<OtlpTransport>,
    json: &str,
) -> Result<OtlpExporter<OtlpTransport>, ConnectError> {
    let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(json)
        .map_err(|e| ConnectError::invalid_argument(format!("{OTLP_HEADERS_VAR}: {e}")))?;
    for (name, value) in map {
        let value = value.as_str().ok_or_else(|| {
            ConnectError::invalid_argument(format!("{OTLP_HEADERS_VAR}: {name} is not a string"))
        })?;
        exporter = exporter.with_header(&name, value)?;
    }
    Ok(exporter)
}

/// The exporter's transport: a service binding or the global `fetch`.
#[derive(Clone)]
pub(crate) enum OtlpTransport {
    Binding(BindingTransport),
    Fetch,
}

impl tower_service::Service<http::Request<Bytes>> for OtlpTransport {
    type Response = http::Response<Bytes>;
    type Error = ConnectError;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Bytes>) -> Self::Future {
        match self {
            OtlpTransport::Binding(binding) => binding.call(request),
            OtlpTransport::Fetch => Box::pin(fetch(request)),
        }
    }
}

/// POSTs with the global `fetch`; anything but 2xx is an error.
async fn fetch(request: http::Request<Bytes>) -> Result<http::Response<Bytes>, ConnectError> {
    let unavailable =
        |what: &str, e: worker::Error| ConnectError::unavailable(format!("OTLP {what}: {e}"));
    let (parts, body) = request.into_parts();
    let mut init = worker::RequestInit::new();
    init.with_method(worker::Method::from(parts.method.to_string()))
        .with_headers(worker::Headers::from(&parts.headers))
        .with_body(Some(Uint8Array::from(body.as_ref()).into()));
    let request = worker::Request::new_with_init(&parts.uri.to_string(), &init)
        .map_err(|e| unavailable("request", e))?;
    let mut response = worker::Fetch::Request(request)
        .send()
        .await
        .map_err(|e| unavailable("fetch", e))?;
    let status = response.status_code();
    let body = response
        .bytes()
        .await
        .map_err(|e| unavailable("response", e))?;
    if !(200..300).contains(&status) {
        return Err(ConnectError::unavailable(format!(
            "OTLP endpoint answered HTTP {status}"
        )));
    }
    Ok(http::Response::new(Bytes::from(body)))
}
