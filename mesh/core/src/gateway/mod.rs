//! The mesh's edge: Connect calls forwarded to another service **without
//! decoding the message**.
//!
//! [`Forward`] is a [`ServiceHandler`] for a service this process does not
//! implement: put one per routed service in a [`Router`](crate::server::Router)
//! and the router does everything it does for a local service — path lookup
//! (`unimplemented` for unknown methods), POST with proto or JSON, GET only
//! for `NO_SIDE_EFFECTS` methods (405 otherwise), decompression,
//! `Connect-Timeout-Ms` and the deadline race — and hands `Forward` the raw
//! request body. `Forward` re-sends those bytes, in the caller's encoding,
//! through a [`Transport`] (in a Worker, `mesh_transport`: the full
//! resilience stack and a CLIENT span per attempt). The method's
//! [`MethodDescriptor`] rides in the request's extensions, so retries,
//! idempotency and deadlines follow the contract exactly as for a typed
//! client; the remaining budget travels on as `Connect-Timeout-Ms`.
//!
//! Errors the upstream service answered (a Connect error response) come
//! back with their code, message, details and metadata: they are the
//! service's public contract. Errors raised before any upstream answer — a
//! failed fetch, an open circuit breaker, load shedding, a timed-out
//! attempt — keep their code but get a generic message, since theirs name
//! internal bindings and URLs; the original is logged with `tracing`
//! (target `workmesh::gateway`), which the trace bridge attaches to the
//! gateway's SERVER span. The two are told apart by the error's metadata:
//! a transport builds an upstream error from the response
//! ([`error_from_http`](crate::protocol::error_from_http)), whose headers
//! always include `Content-Type`, while errors raised in this process carry
//! no `Content-Type`.
//!
//! Hop-by-hop headers — the fixed list (RFC 9110 §7.6.1) and every header a
//! message's own `Connection` names — and those that describe the body are
//! not forwarded either way. Cookies are the edge domain's, not the internal
//! services': `Cookie` is not forwarded upstream nor `Set-Cookie` back,
//! unless [`Forward::forward_cookies`] enables both.
//!
//! An optional bearer token ([`Forward::with_bearer_token`]) closes the
//! edge: calls without `Authorization: Bearer <token>` are `unauthenticated`,
//! and the token itself never travels past the gateway.
//!
//! [`RouteTable`] reads which service goes where from JSON
//! (`{"shop.v1.OrderService": "ORDERS"}`), checked against the contracts the
//! gateway was built with.
//!
//! ```
//! use workmesh::gateway::Forward;
//! use workmesh::server::Router;
//! # use workmesh::{Idempotency, MethodDescriptor};
//! # static METHODS: [MethodDescriptor; 1] = [MethodDescriptor { service: "a.v1.S", method: "M", idempotency: Idempotency::Unknown }];
//! # fn upstream() -> workmesh::client::RouterTransport<workmesh::testing::ManualRuntime> {
//! #     workmesh::client::RouterTransport::new(Router::new(), Default::default())
//! # }
//! let router = Router::new().add(Forward::new("a.v1.S", &METHODS, upstream()));
//! assert_eq!(router.service_names(), ["a.v1.S"]);
//! ```

mod routes;

pub use routes::{Route, RouteTable, ServiceContract};

use std::rc::Rc;

use bytes::Bytes;
use http::header::{
    ACCEPT_ENCODING, AUTHORIZATION, CONNECTION, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE,
    COOKIE, HOST, SET_COOKIE, TE, TRAILER, TRANSFER_ENCODING, UPGRADE,
};
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use tower::ServiceExt;

use crate::client::Transport;
use crate::context::headers::CONNECT_PROTOCOL_VERSION;
use crate::protocol::headers::Compression;
use crate::protocol::{gzip, DEFAULT_MAX_MESSAGE_BYTES};
use crate::server::{ServiceHandler, UnaryCall, UnaryReply};
use crate::{Code, ConnectError, LocalBoxFuture, MethodDescriptor};

/// Headers never forwarded: hop-by-hop, body framing (the body is sent
/// decompressed and re-framed), and what the stack sets itself (the
/// deadline layer writes `Connect-Timeout-Ms` from the remaining budget, the
/// trace layer writes `traceparent` for its CLIENT span).
const NOT_FORWARDED: [&str; 15] = [
    "host",
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "te",
    "trailer",
    "upgrade",
    "transfer-encoding",
    "content-length",
    "content-encoding",
    "accept-encoding",
    "connect-timeout-ms",
    "traceparent",
    "tracestate",
];

/// Forwards every call of one service to `transport`, undecoded.
pub struct Forward<T> {
    service: &'static str,
    methods: &'static [MethodDescriptor],
    transport: T,
    token: Option<Rc<str>>,
    max_message_bytes: usize,
    forward_cookies: bool,
}

impl<T> std::fmt::Debug for Forward<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token is a secret: say only whether there is one.
        f.debug_struct("Forward")
            .field("service", &self.service)
            .field("methods", &self.methods.len())
            .field("token", &self.token.is_some())
            .field("forward_cookies", &self.forward_cookies)
            .finish()
    }
}

impl<T: Transport> Forward<T> {
    /// Forwards `service`, whose methods (from its generated
    /// `<service>_methods::ALL`) are `methods`, through `transport`.
    pub fn new(service: &'static str, methods: &'static [MethodDescriptor], transport: T) -> Self {
        Forward {
            service,
            methods,
            transport,
            token: None,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            forward_cookies: false,
        }
    }

    /// Forwards the caller's `Cookie` header upstream and the upstream's
    /// `Set-Cookie` back (default: neither). Off by default because the
    /// browser's cookies for the edge domain (sessions, analytics) are not
    /// meant for internal services, and an internal service should not set
    /// cookies on the public domain; enable it only for a service that owns
    /// the edge's cookies.
    pub fn forward_cookies(mut self, forward: bool) -> Self {
        self.forward_cookies = forward;
        self
    }

    /// Requires `Authorization: Bearer <token>` on every call
    /// (`unauthenticated` otherwise). An empty token leaves the edge open.
    pub fn with_bearer_token(mut self, token: impl Into<Rc<str>>) -> Self {
        let token = token.into();
        self.token = (!token.is_empty()).then_some(token);
        self
    }

    /// The largest (decompressed) upstream response accepted; larger is
    /// `resource_exhausted`. Default 4 MiB.
    pub fn max_message_bytes(mut self, limit: usize) -> Self {
        self.max_message_bytes = limit;
        self
    }

    fn authorize(&self, headers: &HeaderMap) -> Result<(), ConnectError> {
        let Some(token) = &self.token else {
            return Ok(());
        };
        let authorization = headers
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok());
        crate::auth::check_bearer(token, authorization, "gateway")
    }

    /// The upstream request: POST to the method's path with the raw body in
    /// the caller's encoding, the caller's headers less [`NOT_FORWARDED`],
    /// those its `Connection` names and (unless enabled) `Cookie`, the
    /// method and deadline in the extensions.
    fn upstream_request(
        &self,
        method: &'static MethodDescriptor,
        call: UnaryCall,
    ) -> Result<http::Request<Bytes>, ConnectError> {
        let uri = method.path().parse().map_err(|err| {
            ConnectError::internal(format!("method path {:?}: {err}", method.path()))
        })?;
        let mut request = http::Request::new(call.body().clone());
        *request.method_mut() = Method::POST;
        *request.uri_mut() = uri;
        let hop_by_hop = connection_named(call.metadata());
        let headers = request.headers_mut();
        for (name, value) in call.metadata() {
            if forwarded(name)
                && !hop_by_hop.contains(name)
                && !(self.token.is_some() && name == AUTHORIZATION)
                && (self.forward_cookies || name != COOKIE)
            {
                headers.append(name.clone(), value.clone());
            }
        }
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static(call.encoding().content_type()),
        );
        headers.insert(CONNECT_PROTOCOL_VERSION, HeaderValue::from_static("1"));
        let extensions = request.extensions_mut();
        extensions.insert(*method);
        if let Some(deadline) = call.deadline() {
            extensions.insert(deadline);
        }
        Ok(request)
    }
}

fn forwarded(name: &HeaderName) -> bool {
    !NOT_FORWARDED.contains(&name.as_str())
}

/// The headers a message's `Connection` header names (comma-separated,
/// case-insensitive): hop-by-hop for that message only (RFC 9110 §7.6.1).
/// Tokens that are not header names are ignored.
fn connection_named(headers: &HeaderMap) -> Vec<HeaderName> {
    headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
        .collect()
}

/// Removes the response headers not passed back to the caller: hop-by-hop
/// ones (the fixed list and those the response's `Connection` names),
/// framing, and `Set-Cookie` unless `forward_cookies`.
fn strip_response_headers(headers: &mut HeaderMap, forward_cookies: bool) {
    for name in connection_named(headers) {
        headers.remove(name);
    }
    for name in [
        CONNECTION,
        TRANSFER_ENCODING,
        CONTENT_LENGTH,
        TE,
        TRAILER,
        UPGRADE,
        HOST,
    ] {
        headers.remove(name);
    }
    headers.remove("keep-alive");
    headers.remove("proxy-connection");
    if !forward_cookies {
        headers.remove(SET_COOKIE);
    }
}

/// True when `error` was answered by the upstream service: transports build
/// those from the HTTP response ([`error_from_http`](crate::protocol::error_from_http)),
/// headers included, and every HTTP response carrying a Connect error has a
/// `Content-Type`. Errors raised in this process (transport failures, an
/// open breaker, load shedding, the deadline layers) have no `Content-Type`
/// in their metadata.
fn answered_upstream(error: &ConnectError) -> bool {
    error.metadata.contains_key(CONTENT_TYPE)
}

/// What the caller reads instead of a local failure's message.
fn generic_message(code: Code) -> &'static str {
    match code {
        Code::Unavailable => "the upstream service is unavailable",
        Code::ResourceExhausted => "the upstream service is overloaded",
        Code::DeadlineExceeded => "the call's deadline was exceeded",
        Code::Canceled => "the call was canceled",
        _ => "the upstream call failed",
    }
}

/// The error the edge's caller sees for a failed upstream call: upstream
/// answers pass through (less hop-by-hop headers); local failures keep only
/// their code, with a generic message, and are logged in full.
fn edge_error(
    service: &'static str,
    method: &'static MethodDescriptor,
    mut error: ConnectError,
    forward_cookies: bool,
) -> ConnectError {
    if answered_upstream(&error) {
        strip_response_headers(&mut error.metadata, forward_cookies);
        return error;
    }
    tracing::warn!(
        target: "workmesh::gateway",
        service,
        method = method.method,
        code = %error.code,
        error = %error.message,
        "upstream call failed without an upstream answer"
    );
    ConnectError::new(error.code, generic_message(error.code))
}

/// Compares without an early exit, so response timing does not reveal how
/// much of a guessed token was right.
impl<T: Transport> ServiceHandler for Forward<T> {
    fn name(&self) -> &'static str {
        self.service
    }

    fn methods(&self) -> &'static [MethodDescriptor] {
        self.methods
    }

    fn call(
        &self,
        method: &'static MethodDescriptor,
        call: UnaryCall,
    ) -> LocalBoxFuture<'static, Result<UnaryReply, ConnectError>> {
        let prepared = self
            .authorize(call.metadata())
            .and_then(|()| self.upstream_request(method, call));
        let transport = self.transport.clone();
        let limit = self.max_message_bytes;
        let (service, cookies) = (self.service, self.forward_cookies);
        Box::pin(async move {
            let request = prepared?;
            let response = transport
                .oneshot(request)
                .await
                .map_err(|error| edge_error(service, method, error, cookies))?;
            let (mut parts, body) = response.into_parts();
            // The router compresses (or not) for its own caller; it wants
            // the body plain.
            let body = match Compression::of_body(&parts.headers)
                .map_err(|err| ConnectError::internal(err.message))?
            {
                Compression::Identity if body.len() > limit => {
                    return Err(ConnectError::resource_exhausted(format!(
                        "upstream response larger than {limit} bytes"
                    )))
                }
                Compression::Identity => body,
                Compression::Gzip => gzip::decompress(&body, limit)?,
            };
            strip_response_headers(&mut parts.headers, cookies);
            parts.headers.remove(CONTENT_ENCODING);
            parts.headers.remove(ACCEPT_ENCODING);
            Ok(UnaryReply::new(body, parts.headers))
        })
    }
}

#[cfg(all(test, feature = "tokio"))]
mod tests;
