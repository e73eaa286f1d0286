//! A native HTTP transport (feature `http-client`), for the CLI and native
//! tests. Plain HTTP/1.1 through reqwest, with no TLS stack compiled in.
//! Never used in Workers: there, calls go through service bindings.

use std::task::{Context, Poll};

use bytes::Bytes;

use crate::protocol::into_result;
use crate::{ConnectError, LocalBoxFuture};

/// Sends each request to `base_url` + the request's path and query.
#[derive(Clone, Debug)]
pub struct HttpTransport {
    client: reqwest::Client,
    base_url: String,
}

impl HttpTransport {
    /// A transport to `base_url` (e.g. `http://127.0.0.1:8787`), with a
    /// fresh connection pool.
    pub fn new(base_url: impl Into<String>) -> Self {
        Self::with_client(reqwest::Client::new(), base_url)
    }

    /// A transport sharing an existing reqwest client (and its pool).
    pub fn with_client(client: reqwest::Client, base_url: impl Into<String>) -> Self {
        let base_url = base_url.into().trim_end_matches('/').to_owned();
        HttpTransport { client, base_url }
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }
}

impl tower::Service<http::Request<Bytes>> for HttpTransport {
    type Response = http::Response<Bytes>;
    type Error = ConnectError;
    type Future = LocalBoxFuture<'static, Result<http::Response<Bytes>, ConnectError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), ConnectError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Bytes>) -> Self::Future {
        let client = self.client.clone();
        let base_url = self.base_url.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let path = parts.uri.path_and_query().map_or("/", |path| path.as_str());
            let url = format!("{base_url}{path}");
            let method = parts.method.clone();
            let response = client
                .request(parts.method, &url)
                .headers(parts.headers)
                .body(body)
                .send()
                .await
                .map_err(|err| ConnectError::unavailable(format!("{method} {url}: {err}")))?;
            let status = response.status();
            let headers = response.headers().clone();
            let body = response.bytes().await.map_err(|err| {
                ConnectError::unavailable(format!("reading response from {url}: {err}"))
            })?;
            let mut http_response = http::Response::new(body);
            *http_response.status_mut() = status;
            *http_response.headers_mut() = headers;
            into_result(http_response)
        })
    }
}
