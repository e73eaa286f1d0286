//! The Connect protocol's unary wire format, for both ends of a call.
//!
//! - [`codec`]: [`Encoding`] (`application/proto` / `application/json`) and
//!   message encode / decode.
//! - [`headers`]: content types, `Connect-Timeout-Ms`,
//!   `Connect-Protocol-Version`, `Accept-Encoding` / `Content-Encoding`.
//! - [`gzip`]: the one compression workmesh speaks, with a size limit on
//!   decompression.
//! - [`query`]: the GET form of a call (`?connect=v1&encoding=…&message=…`).
//! - [`error`]: Connect error bodies, and the transport contract's
//!   [`error_from_http`].
//!
//! Everything here is synchronous and allocation-bounded by the caller's
//! limits; nothing panics on wire data.
//!
//! Spec: connectrpc.com/docs/protocol (unary request / response, GET, errors).

pub mod codec;
pub mod error;
pub mod gzip;
pub mod headers;
pub mod query;

pub use codec::Encoding;
pub use error::{error_from_http, error_from_json, error_response, error_to_json, into_result};
pub use headers::{parse_timeout, TimeoutError};

/// The default limit on a message, compressed or not: 4 MiB.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;
