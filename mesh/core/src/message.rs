//! The typed side of a call: [`Message`], [`Request`] and [`Response`].
//!
//! Handlers and clients see these; the wire (codec, headers, compression)
//! stays in [`protocol`](crate::protocol), the router and the client.
//!
//! ```
//! use std::time::Duration;
//! use workmesh::message::Request;
//!
//! let mut request = Request::new(String::from("hello")).with_timeout(Duration::from_millis(250));
//! request.metadata_mut().insert("x-tenant", "acme".parse().unwrap());
//! assert_eq!(request.get_ref(), "hello");
//! assert_eq!(request.timeout(), Some(Duration::from_millis(250)));
//! ```

use std::time::Duration;

use http::{Extensions, HeaderMap};

use crate::Deadline;

/// A protobuf message that also has its canonical JSON mapping (pbjson
/// generates the serde impls next to prost's). Implemented for every such type.
pub trait Message:
    prost::Message + Default + serde::Serialize + serde::de::DeserializeOwned + 'static
{
}

impl<T> Message for T where
    T: prost::Message + Default + serde::Serialize + serde::de::DeserializeOwned + 'static
{
}

/// A request message with its metadata (headers), deadline and extensions.
#[derive(Debug)]
pub struct Request<T> {
    message: T,
    metadata: HeaderMap,
    extensions: Extensions,
    deadline: Option<Deadline>,
    timeout: Option<Duration>,
}

impl<T> Request<T> {
    pub fn new(message: T) -> Self {
        Request {
            message,
            metadata: HeaderMap::new(),
            extensions: Extensions::new(),
            deadline: None,
            timeout: None,
        }
    }

    pub(crate) fn from_parts(
        message: T,
        metadata: HeaderMap,
        extensions: Extensions,
        deadline: Option<Deadline>,
    ) -> Self {
        Request {
            message,
            metadata,
            extensions,
            deadline,
            timeout: None,
        }
    }

    pub fn get_ref(&self) -> &T {
        &self.message
    }

    pub fn get_mut(&mut self) -> &mut T {
        &mut self.message
    }

    pub fn into_inner(self) -> T {
        self.message
    }

    /// Request headers: on the server, every header the caller sent; on the
    /// client, extra headers to send.
    pub fn metadata(&self) -> &HeaderMap {
        &self.metadata
    }

    pub fn metadata_mut(&mut self) -> &mut HeaderMap {
        &mut self.metadata
    }

    /// The call's absolute deadline. On the server the router sets it from
    /// `Connect-Timeout-Ms`, on the server runtime's clock.
    pub fn deadline(&self) -> Option<Deadline> {
        self.deadline
    }

    /// Sets the deadline; a handler passes its own on to downstream calls so
    /// the budget shrinks hop by hop (the deadline layer turns it into
    /// `Connect-Timeout-Ms`).
    pub fn with_deadline(mut self, deadline: Option<Deadline>) -> Self {
        self.deadline = deadline;
        self
    }

    /// A relative timeout the client sends as `Connect-Timeout-Ms`. Use it
    /// when no deadline layer is in the client stack; with one, prefer
    /// [`with_deadline`](Self::with_deadline).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The timeout set with [`with_timeout`](Self::with_timeout).
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    pub fn extensions(&self) -> &Extensions {
        &self.extensions
    }

    pub fn extensions_mut(&mut self) -> &mut Extensions {
        &mut self.extensions
    }

    pub(crate) fn into_parts(self) -> RequestParts<T> {
        RequestParts {
            message: self.message,
            metadata: self.metadata,
            extensions: self.extensions,
            deadline: self.deadline,
            timeout: self.timeout,
        }
    }
}

pub(crate) struct RequestParts<T> {
    pub message: T,
    pub metadata: HeaderMap,
    pub extensions: Extensions,
    pub deadline: Option<Deadline>,
    pub timeout: Option<Duration>,
}

/// Converts a bare message or a full [`Request`] into a `Request`, so typed
/// clients accept either.
pub trait IntoRequest<T> {
    fn into_request(self) -> Request<T>;
}

impl<T: Message> IntoRequest<T> for T {
    fn into_request(self) -> Request<T> {
        Request::new(self)
    }
}

impl<T> IntoRequest<T> for Request<T> {
    fn into_request(self) -> Request<T> {
        self
    }
}

/// A response message with its metadata (headers).
#[derive(Debug)]
pub struct Response<T> {
    message: T,
    metadata: HeaderMap,
}

impl<T> Response<T> {
    pub fn new(message: T) -> Self {
        Response {
            message,
            metadata: HeaderMap::new(),
        }
    }

    pub(crate) fn from_parts(message: T, metadata: HeaderMap) -> Self {
        Response { message, metadata }
    }

    pub fn get_ref(&self) -> &T {
        &self.message
    }

    pub fn into_inner(self) -> T {
        self.message
    }

    /// Response headers: on the server, extra headers to send; on the
    /// client, every header the server answered with.
    pub fn metadata(&self) -> &HeaderMap {
        &self.metadata
    }

    pub fn metadata_mut(&mut self) -> &mut HeaderMap {
        &mut self.metadata
    }

    pub(crate) fn into_parts(self) -> (T, HeaderMap) {
        (self.message, self.metadata)
    }
}
