//! The seam between the router and generated service code.

use std::future::Future;

use bytes::Bytes;
use http::{Extensions, HeaderMap};

use crate::message::{Message, Request};
use crate::protocol::Encoding;
use crate::{ConnectError, Deadline, LocalBoxFuture, MethodDescriptor};

/// One service the router can dispatch to. Generated `FooServer<T>`
/// implements it by matching on the method and calling [`serve_unary`] with
/// the matching trait method.
pub trait ServiceHandler {
    /// Fully-qualified service name, e.g. `shop.v1.CatalogService`.
    fn name(&self) -> &'static str;

    /// The service's methods, as declared in its contract.
    fn methods(&self) -> &'static [MethodDescriptor];

    /// Runs one call of `method` (one of [`methods`](Self::methods)).
    fn call(
        &self,
        method: &'static MethodDescriptor,
        call: UnaryCall,
    ) -> LocalBoxFuture<'static, Result<UnaryReply, ConnectError>>;
}

/// A call as the router hands it over: the request body (already
/// decompressed), its encoding, the request headers, the deadline and the
/// request's extensions.
#[derive(Debug)]
pub struct UnaryCall {
    method: &'static MethodDescriptor,
    encoding: Encoding,
    body: Bytes,
    metadata: HeaderMap,
    deadline: Option<Deadline>,
    extensions: Extensions,
}

impl UnaryCall {
    /// A call with no metadata, deadline or extensions (tests, adapters).
    pub fn new(method: &'static MethodDescriptor, encoding: Encoding, body: Bytes) -> Self {
        UnaryCall {
            method,
            encoding,
            body,
            metadata: HeaderMap::new(),
            deadline: None,
            extensions: Extensions::new(),
        }
    }

    pub fn with_metadata(mut self, metadata: HeaderMap) -> Self {
        self.metadata = metadata;
        self
    }

    pub fn with_deadline(mut self, deadline: Option<Deadline>) -> Self {
        self.deadline = deadline;
        self
    }

    pub fn with_extensions(mut self, extensions: Extensions) -> Self {
        self.extensions = extensions;
        self
    }

    pub fn method(&self) -> &'static MethodDescriptor {
        self.method
    }

    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    pub fn body(&self) -> &Bytes {
        &self.body
    }

    pub fn metadata(&self) -> &HeaderMap {
        &self.metadata
    }

    pub fn deadline(&self) -> Option<Deadline> {
        self.deadline
    }

    pub fn extensions(&self) -> &Extensions {
        &self.extensions
    }

    /// Decodes the body into a typed request carrying the call's metadata,
    /// deadline and extensions. Undecodable → `invalid_argument`.
    pub fn into_request<T: Message>(self) -> Result<Request<T>, ConnectError> {
        let message = self.encoding.decode(&self.body)?;
        Ok(Request::from_parts(
            message,
            self.metadata,
            self.extensions,
            self.deadline,
        ))
    }
}

/// A handler's successful answer: the encoded response body (in the call's
/// encoding, uncompressed) and the response metadata.
#[derive(Clone, Debug, Default)]
pub struct UnaryReply {
    body: Bytes,
    metadata: HeaderMap,
}

impl UnaryReply {
    pub fn new(body: Bytes, metadata: HeaderMap) -> Self {
        UnaryReply { body, metadata }
    }

    pub fn body(&self) -> &Bytes {
        &self.body
    }

    pub fn metadata(&self) -> &HeaderMap {
        &self.metadata
    }

    pub fn into_parts(self) -> (Bytes, HeaderMap) {
        (self.body, self.metadata)
    }
}

/// Decodes the call with its encoding, runs `handler`, encodes the answer.
/// What generated servers call for each method.
pub async fn serve_unary<Req, Res, F, Fut>(
    call: UnaryCall,
    handler: F,
) -> Result<UnaryReply, ConnectError>
where
    Req: Message,
    Res: Message,
    F: FnOnce(Request<Req>) -> Fut,
    Fut: Future<Output = Result<crate::message::Response<Res>, ConnectError>>,
{
    let encoding = call.encoding;
    let request = call.into_request::<Req>()?;
    let (message, metadata) = handler(request).await?.into_parts();
    Ok(UnaryReply {
        body: encoding.encode(&message)?,
        metadata,
    })
}
