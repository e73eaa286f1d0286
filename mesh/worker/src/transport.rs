use std::rc::Rc;
use std::task::{Context, Poll};

use bytes::Bytes;
use js_sys::Uint8Array;
use workmesh::{ConnectError, LocalBoxFuture};

/// Calls another Worker through a service binding (`[[services]]` in its
/// wrangler config): a `fetch` that never leaves the Cloudflare machine.
///
/// Follows the workmesh transport contract: `Ok` only for HTTP 200, every
/// Connect error (or other status) as `Err`, a failed fetch as `unavailable`.
#[derive(Clone)]
pub struct BindingTransport {
    binding: Rc<str>,
    fetcher: worker::Fetcher,
}

impl BindingTransport {
    /// The transport for the service binding named `binding` in `env`.
    pub fn new(env: &worker::Env, binding: &'static str) -> worker::Result<Self> {
        Self::named(env, binding)
    }

    /// [`new`](Self::new) for a binding name known only at run time (an
    /// instance's endpoint from the registry).
    pub fn named(env: &worker::Env, binding: &str) -> worker::Result<Self> {
        Ok(BindingTransport {
            binding: binding.into(),
            fetcher: env.service(binding)?,
        })
    }
}

/// Calls a Connect server by base URL (`https://catalog.example.dev`) with
/// the global `fetch`; the same transport contract as [`BindingTransport`].
#[derive(Clone)]
pub struct UrlTransport {
    base: Rc<str>,
}

impl UrlTransport {
    pub fn new(base_url: &str) -> Self {
        UrlTransport {
            base: base_url.trim_end_matches('/').into(),
        }
    }
}

impl tower_service::Service<http::Request<Bytes>> for UrlTransport {
    type Response = http::Response<Bytes>;
    type Error = ConnectError;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Bytes>) -> Self::Future {
        let base = self.base.clone();
        Box::pin(async move { send(&base, &base, None, request).await })
    }
}

impl tower_service::Service<http::Request<Bytes>> for BindingTransport {
    type Response = http::Response<Bytes>;
    type Error = ConnectError;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Bytes>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { this.send(request).await })
    }
}

impl BindingTransport {
    async fn send(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<Bytes>, ConnectError> {
        // The host is ignored by service bindings; it names the target in logs.
        let base = format!("https://{}", self.binding);
        let what = format!("service binding {}", self.binding);
        send(&what, &base, Some(&self.fetcher), request).await
    }
}

/// Sends `request` to `base` + its path, through `fetcher` or the global
/// `fetch`; `what` names the target in errors.
async fn send(
    what: &str,
    base: &str,
    fetcher: Option<&worker::Fetcher>,
    request: http::Request<Bytes>,
) -> Result<http::Response<Bytes>, ConnectError> {
    let unavailable =
        |step: &str, e: worker::Error| ConnectError::unavailable(format!("{what}: {step}: {e}"));
    let (parts, body) = request.into_parts();
    let url = format!(
        "{base}{}",
        parts.uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let mut init = worker::RequestInit::new();
    init.with_method(worker::Method::from(parts.method.to_string()))
        .with_headers(worker::Headers::from(&parts.headers));
    if !body.is_empty() {
        init.with_body(Some(Uint8Array::from(body.as_ref()).into()));
    }
    let request = worker::Request::new_with_init(&url, &init)
        .map_err(|e| unavailable("building request", e))?;
    let sent = match fetcher {
        Some(fetcher) => fetcher.fetch_request(request).await,
        None => worker::Fetch::Request(request).send().await,
    };
    let mut response = sent.map_err(|e| unavailable("fetch failed", e))?;
    let status =
        http::StatusCode::from_u16(response.status_code()).unwrap_or(http::StatusCode::BAD_GATEWAY);
    let headers = http::HeaderMap::from(response.headers());
    let body = Bytes::from(
        response
            .bytes()
            .await
            .map_err(|e| unavailable("reading response", e))?,
    );
    if status != http::StatusCode::OK {
        return Err(workmesh::protocol::error_from_http(status, &headers, &body));
    }
    let mut out = http::Response::new(body);
    *out.status_mut() = status;
    *out.headers_mut() = headers;
    Ok(out)
}
