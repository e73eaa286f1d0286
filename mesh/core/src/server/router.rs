//! The Connect router: one `http::Request` in, one Connect response out.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::pin::pin;
use std::rc::Rc;

use bytes::Bytes;
use futures_util::future::{select, Either};
use futures_util::FutureExt;
use http::header::{ALLOW, CONTENT_ENCODING, CONTENT_TYPE};
use http::{HeaderName, HeaderValue, Method, StatusCode};

use super::service::{ServiceHandler, UnaryCall};
use crate::protocol::error::{copy_metadata, error_response_with_status};
use crate::protocol::headers::{self, Compression};
use crate::protocol::query::{decode_get, GetError};
use crate::protocol::{gzip, Encoding, DEFAULT_MAX_MESSAGE_BYTES};
use crate::{ConnectError, Deadline, Idempotency, MethodDescriptor, Runtime};

/// `Accept-Post` (RFC 7694): the media types a 415 answer offers instead.
const ACCEPT_POST: HeaderName = HeaderName::from_static("accept-post");

/// Responses smaller than this are not worth gzipping.
const DEFAULT_COMPRESS_MIN_BYTES: usize = 1024;

/// Routes Connect unary calls to services by path.
///
/// `POST /<pkg>.<Service>/<Method>` with `application/proto` or
/// `application/json`, and `GET` with the query form for `NO_SIDE_EFFECTS`
/// methods. See [`handle`](Self::handle) for the statuses it answers with.
#[derive(Clone)]
pub struct Router {
    services: HashMap<&'static str, Rc<dyn ServiceHandler>>,
    max_message_bytes: usize,
    compress_min_bytes: usize,
}

impl Default for Router {
    fn default() -> Self {
        Router::new()
    }
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<_> = self.services.keys().collect();
        names.sort();
        f.debug_struct("Router")
            .field("services", &names)
            .field("max_message_bytes", &self.max_message_bytes)
            .field("compress_min_bytes", &self.compress_min_bytes)
            .finish()
    }
}

/// A rejected request: the error and, where the protocol fixes it
/// independently of the code (405, 415), the HTTP status.
struct Rejection {
    error: ConnectError,
    status: Option<StatusCode>,
}

impl From<ConnectError> for Rejection {
    fn from(error: ConnectError) -> Self {
        Rejection {
            error,
            status: None,
        }
    }
}

impl Router {
    pub fn new() -> Self {
        Router {
            services: HashMap::new(),
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            compress_min_bytes: DEFAULT_COMPRESS_MIN_BYTES,
        }
    }

    /// Serves `service` under its name. A second service with the same name
    /// replaces the first.
    #[allow(clippy::should_implement_trait)] // a builder step, not `Add`
    pub fn add<S: ServiceHandler + 'static>(mut self, service: S) -> Self {
        self.services.insert(service.name(), Rc::new(service));
        self
    }

    /// The largest request message accepted, compressed or decompressed
    /// (default 4 MiB); larger is `resource_exhausted`.
    pub fn max_message_bytes(mut self, limit: usize) -> Self {
        self.max_message_bytes = limit;
        self
    }

    /// The limit set by [`max_message_bytes`](Self::max_message_bytes), so an
    /// adapter can reject on `Content-Length` before buffering a body.
    pub fn message_limit(&self) -> usize {
        self.max_message_bytes
    }

    /// Responses at least this large are gzipped when the client accepts it
    /// (default 1 KiB).
    pub fn compress_min_bytes(mut self, threshold: usize) -> Self {
        self.compress_min_bytes = threshold;
        self
    }

    /// The names of the services served, sorted.
    pub fn service_names(&self) -> Vec<&'static str> {
        let mut names: Vec<_> = self.services.keys().copied().collect();
        names.sort_unstable();
        names
    }

    /// The method a Connect request path (`/<pkg>.<Service>/<Method>`) names,
    /// if this router serves it: lets an adapter name a span or a metric
    /// before the call is dispatched.
    pub fn method_for_path(&self, path: &str) -> Option<&'static MethodDescriptor> {
        self.lookup(path).ok().map(|(_, method)| method)
    }

    /// Answers one request. Never panics on request data, and always answers
    /// with a Connect response:
    ///
    /// | request | answer |
    /// |---|---|
    /// | unknown service or method | `unimplemented`, 404 |
    /// | HTTP method other than POST (or GET for `NO_SIDE_EFFECTS`) | 405 with `Allow` |
    /// | content type / GET `encoding` not proto or JSON | 415 with `Accept-Post` |
    /// | `Connect-Protocol-Version` not `1`, bad `Connect-Timeout-Ms`, undecodable body | `invalid_argument`, 400 |
    /// | unknown `Content-Encoding` | `unimplemented` |
    /// | message over the limit (before or after gzip) | `resource_exhausted`, 429 |
    /// | budget spent before or during the handler | `deadline_exceeded`, 504 |
    /// | handler error | its code, status and metadata |
    /// | handler panic (native only; Workers abort) | `internal` |
    pub async fn handle<R: Runtime>(
        &self,
        runtime: &R,
        request: http::Request<Bytes>,
    ) -> http::Response<Bytes> {
        match self.dispatch(runtime, request).await {
            Ok(response) => response,
            Err(Rejection { error, status }) => {
                let status = status.unwrap_or_else(|| error.code.http_status());
                error_response_with_status(&error, status)
            }
        }
    }

    async fn dispatch<R: Runtime>(
        &self,
        runtime: &R,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<Bytes>, Rejection> {
        let (parts, body) = request.into_parts();
        let (service, method) = self.lookup(parts.uri.path())?;

        let (encoding, compression, body) = match parts.method {
            Method::POST => {
                let encoding = parts
                    .headers
                    .get(CONTENT_TYPE)
                    .and_then(|value| value.to_str().ok())
                    .and_then(Encoding::from_content_type)
                    .ok_or_else(unsupported_media_type)?;
                (encoding, Compression::of_body(&parts.headers)?, body)
            }
            Method::GET if method.idempotency == Idempotency::NoSideEffects => {
                let call =
                    decode_get(parts.uri.query().unwrap_or_default()).map_err(|err| match err {
                        GetError::UnsupportedEncoding(_) => {
                            let mut rejection = unsupported_media_type();
                            rejection.error.message = ConnectError::from(err).message;
                            rejection
                        }
                        GetError::Invalid(error) => Rejection::from(error),
                    })?;
                (call.encoding, call.compression, call.message)
            }
            _ => return Err(method_not_allowed(method)),
        };
        headers::check_protocol_version(&parts.headers)?;
        let timeout = headers::request_timeout(&parts.headers)?;
        let deadline = timeout.map(|timeout| Deadline(runtime.now() + timeout));

        let limit = self.max_message_bytes;
        if body.len() > limit {
            return Err(ConnectError::resource_exhausted(format!(
                "message larger than {limit} bytes"
            ))
            .into());
        }
        let body = match compression {
            Compression::Identity => body,
            Compression::Gzip => gzip::decompress(&body, limit)?,
        };
        let accepts_gzip = headers::accepts_gzip(&parts.headers);

        let mut extensions = parts.extensions;
        extensions.insert(*method);
        if let Some(deadline) = deadline {
            extensions.insert(deadline);
        }
        let call = UnaryCall::new(method, encoding, body)
            .with_metadata(parts.headers)
            .with_deadline(deadline)
            .with_extensions(extensions);

        let reply = match deadline {
            None => run(service.as_ref(), method, call).await,
            Some(Deadline(at)) => {
                let remaining = at.saturating_duration_since(runtime.now());
                if remaining.is_zero() {
                    return Err(ConnectError::deadline_exceeded(
                        "deadline expired before the call started",
                    )
                    .into());
                }
                let handler = pin!(run(service.as_ref(), method, call));
                match select(handler, runtime.sleep(remaining)).await {
                    Either::Left((reply, _)) => reply,
                    Either::Right(((), _)) => {
                        Err(ConnectError::deadline_exceeded("deadline exceeded"))
                    }
                }
            }
        }?;

        let (mut body, metadata) = reply.into_parts();
        let mut response = http::Response::new(Bytes::new());
        let headers = response.headers_mut();
        copy_metadata(&metadata, headers);
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static(encoding.content_type()),
        );
        if accepts_gzip && body.len() >= self.compress_min_bytes {
            if let Ok(packed) = gzip::compress(&body) {
                body = packed;
                headers.insert(CONTENT_ENCODING, HeaderValue::from_static(headers::GZIP));
            }
        }
        *response.body_mut() = body;
        Ok(response)
    }

    fn lookup(
        &self,
        path: &str,
    ) -> Result<(Rc<dyn ServiceHandler>, &'static MethodDescriptor), Rejection> {
        let unknown = || ConnectError::unimplemented(format!("unknown procedure {path:?}"));
        let (service_name, method_name) = path
            .strip_prefix('/')
            .and_then(|rest| rest.split_once('/'))
            .ok_or_else(unknown)?;
        let service = self.services.get(service_name).ok_or_else(unknown)?;
        let method = service
            .methods()
            .iter()
            .find(|method| method.method == method_name)
            .ok_or_else(unknown)?;
        Ok((Rc::clone(service), method))
    }
}

/// Runs the handler, turning a panic (where panics unwind, i.e. natively)
/// into `internal` so one bad handler cannot take the server down.
async fn run(
    service: &dyn ServiceHandler,
    method: &'static MethodDescriptor,
    call: UnaryCall,
) -> Result<super::UnaryReply, ConnectError> {
    match AssertUnwindSafe(async { service.call(method, call).await })
        .catch_unwind()
        .await
    {
        Ok(reply) => reply,
        Err(_) => Err(ConnectError::internal("handler panicked")),
    }
}

fn unsupported_media_type() -> Rejection {
    let mut error = ConnectError::unimplemented(
        "unsupported content type: use application/proto or application/json",
    );
    error.metadata.insert(
        ACCEPT_POST,
        HeaderValue::from_static("application/proto, application/json"),
    );
    Rejection {
        error,
        status: Some(StatusCode::UNSUPPORTED_MEDIA_TYPE),
    }
}

fn method_not_allowed(method: &MethodDescriptor) -> Rejection {
    let allow = if method.idempotency == Idempotency::NoSideEffects {
        "GET, POST"
    } else {
        "POST"
    };
    let mut error = ConnectError::unimplemented(format!("HTTP method not allowed: use {allow}"));
    error
        .metadata
        .insert(ALLOW, HeaderValue::from_static(allow));
    Rejection {
        error,
        status: Some(StatusCode::METHOD_NOT_ALLOWED),
    }
}
