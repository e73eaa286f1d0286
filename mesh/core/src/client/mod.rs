//! The client side: a typed [`Client`] over any [`Transport`].
//!
//! A transport is a `tower::Service` from `http::Request<Bytes>` to
//! `http::Response<Bytes>`; middleware (deadline, retry, breaker, balance,
//! trace) wraps it as tower layers and reads the
//! [`MethodDescriptor`] and [`Deadline`](crate::Deadline) the client puts
//! into the request's extensions.
//!
//! **Transport contract**: `Ok` only for HTTP 200; any other status is
//! `Err(ConnectError)` decoded with
//! [`protocol::error_from_http`](crate::protocol::error_from_http) (response
//! headers as the error's metadata); a network failure is `unavailable`.
//!
//! Transports here: [`RouterTransport`] (in-process, to a [`Router`]) and,
//! with feature `http-client`, [`HttpTransport`] (native HTTP). Workers use
//! the service-binding transport of `workmesh-worker`.
//!
//! ```
//! use workmesh::client::{Client, RouterTransport};
//! use workmesh::protocol::Encoding;
//! use workmesh::server::Router;
//! use workmesh::testing::ManualRuntime;
//!
//! let client = Client::new(RouterTransport::new(Router::new(), ManualRuntime::default()))
//!     .with_encoding(Encoding::Json);
//! assert_eq!(client.encoding(), Encoding::Json);
//! ```

#[cfg(feature = "http-client")]
mod http_transport;

use std::rc::Rc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{
    ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, TRANSFER_ENCODING,
};
use http::{HeaderValue, Method};
use tower::{Service, ServiceExt};

use crate::context::headers::{CONNECT_PROTOCOL_VERSION, CONNECT_TIMEOUT_MS};
use crate::message::{Message, Request, Response};
use crate::protocol::headers::{format_timeout, Compression};
use crate::protocol::{gzip, into_result, Encoding, DEFAULT_MAX_MESSAGE_BYTES};
use crate::server::Router;
use crate::{Code, ConnectError, LocalBoxFuture, MethodDescriptor, Runtime};

#[cfg(feature = "http-client")]
pub use http_transport::HttpTransport;

/// What a [`Client`] sends calls through. Implemented for every matching
/// `tower::Service`; futures need not be `Send`.
pub trait Transport:
    Service<http::Request<Bytes>, Response = http::Response<Bytes>, Error = ConnectError>
    + Clone
    + 'static
{
}

impl<T> Transport for T where
    T: Service<http::Request<Bytes>, Response = http::Response<Bytes>, Error = ConnectError>
        + Clone
        + 'static
{
}

/// A typed Connect client; generated `FooClient<T>` wraps one.
#[derive(Clone, Debug)]
pub struct Client<T> {
    transport: T,
    encoding: Encoding,
    max_message_bytes: usize,
}

impl<T> Client<T> {
    /// A client sending `application/proto`.
    pub fn new(transport: T) -> Self {
        Client {
            transport,
            encoding: Encoding::Proto,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
        }
    }

    /// Sends and expects this encoding (JSON is for the edge and debugging).
    pub fn with_encoding(mut self, encoding: Encoding) -> Self {
        self.encoding = encoding;
        self
    }

    /// The largest response message accepted after decompression (default
    /// 4 MiB); larger is `resource_exhausted`.
    pub fn max_message_bytes(mut self, limit: usize) -> Self {
        self.max_message_bytes = limit;
        self
    }

    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    pub fn transport(&self) -> &T {
        &self.transport
    }
}

impl<T: Transport> Client<T> {
    /// Calls `method`: POSTs `method.path()` with the encoded request, its
    /// metadata as headers, `Connect-Protocol-Version: 1`,
    /// `Accept-Encoding: gzip`, `Connect-Timeout-Ms` from
    /// [`Request::with_timeout`], and the method and deadline in the
    /// request's extensions for the middleware.
    pub async fn unary<Req: Message, Res: Message>(
        &self,
        method: &'static MethodDescriptor,
        request: Request<Req>,
    ) -> Result<Response<Res>, ConnectError> {
        let parts = request.into_parts();
        let mut http_request = http::Request::new(self.encoding.encode(&parts.message)?);
        *http_request.method_mut() = Method::POST;
        *http_request.uri_mut() = method.path().parse().map_err(|err| {
            ConnectError::internal(format!("method path {:?}: {err}", method.path()))
        })?;

        let headers = http_request.headers_mut();
        *headers = parts.metadata;
        for reserved in [CONTENT_LENGTH, CONTENT_ENCODING, TRANSFER_ENCODING] {
            headers.remove(reserved);
        }
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static(self.encoding.content_type()),
        );
        headers.insert(CONNECT_PROTOCOL_VERSION, HeaderValue::from_static("1"));
        headers.insert(
            ACCEPT_ENCODING,
            HeaderValue::from_static(crate::protocol::headers::GZIP),
        );
        if let Some(timeout) = parts.timeout {
            headers.insert(CONNECT_TIMEOUT_MS, format_timeout(timeout));
        }

        let extensions = http_request.extensions_mut();
        *extensions = parts.extensions;
        extensions.insert(*method);
        if let Some(deadline) = parts.deadline {
            extensions.insert(deadline);
        }

        let mut transport = self.transport.clone();
        let response = transport.ready().await?.call(http_request).await?;
        // Transports return only 200s; check anyway so a hand-rolled
        // transport that does not cannot turn an error body into a message.
        let (parts, body) = into_result(response)?.into_parts();
        self.decode_response(parts, body)
    }

    fn decode_response<Res: Message>(
        &self,
        parts: http::response::Parts,
        body: Bytes,
    ) -> Result<Response<Res>, ConnectError> {
        if let Some(value) = parts.headers.get(CONTENT_TYPE) {
            let encoding = value.to_str().ok().and_then(Encoding::from_content_type);
            if encoding != Some(self.encoding) {
                return Err(ConnectError::internal(format!(
                    "response content type {:?}, expected {}",
                    String::from_utf8_lossy(value.as_bytes()),
                    self.encoding.content_type()
                )));
            }
        }
        let body = match Compression::of_body(&parts.headers)
            .map_err(|err| ConnectError::internal(err.message))?
        {
            Compression::Identity if body.len() > self.max_message_bytes => {
                return Err(ConnectError::resource_exhausted(format!(
                    "response larger than {} bytes",
                    self.max_message_bytes
                )))
            }
            Compression::Identity => body,
            Compression::Gzip => {
                gzip::decompress(&body, self.max_message_bytes).map_err(recode_as_internal)?
            }
        };
        let message = self.encoding.decode(&body).map_err(recode_as_internal)?;
        Ok(Response::from_parts(message, parts.headers))
    }
}

/// A response the client cannot read is the server's fault, not the
/// caller's: `invalid_argument` from the codec becomes `internal`.
fn recode_as_internal(mut error: ConnectError) -> ConnectError {
    if error.code == Code::InvalidArgument {
        error.code = Code::Internal;
        error.message = format!("invalid response: {}", error.message);
    }
    error
}

/// An in-process transport that hands each request to a [`Router`] on a
/// runtime, honouring the transport contract. For tests, and for calling a
/// service that lives in the same Worker.
pub struct RouterTransport<R> {
    router: Rc<Router>,
    runtime: R,
}

impl<R: Runtime> RouterTransport<R> {
    pub fn new(router: Router, runtime: R) -> Self {
        RouterTransport {
            router: Rc::new(router),
            runtime,
        }
    }
}

impl<R: Clone> Clone for RouterTransport<R> {
    fn clone(&self) -> Self {
        RouterTransport {
            router: Rc::clone(&self.router),
            runtime: self.runtime.clone(),
        }
    }
}

impl<R: Runtime> Service<http::Request<Bytes>> for RouterTransport<R> {
    type Response = http::Response<Bytes>;
    type Error = ConnectError;
    type Future = LocalBoxFuture<'static, Result<http::Response<Bytes>, ConnectError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), ConnectError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Bytes>) -> Self::Future {
        let router = Rc::clone(&self.router);
        let runtime = self.runtime.clone();
        Box::pin(async move { into_result(router.handle(&runtime, request).await) })
    }
}

// The router and client tests run on `TokioRuntime` (paused time).
#[cfg(all(test, feature = "tokio"))]
mod tests;
