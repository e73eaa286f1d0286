//! Deadlines: a call's overall time budget, a timeout per attempt, and the
//! `Connect-Timeout-Ms` header that carries what is left to the next hop.
//!
//! # Mechanism
//!
//! The layer comes in two halves because the retry layer sits between them:
//!
//! - [`CallDeadline`] (above retry) fixes the **overall deadline** once per
//!   call: the [`Deadline`] extension the typed client set, or else `now +
//!   timeout` from the method's [`CallPolicy`](crate::config::CallPolicy).
//!   It stores the result in the request's extensions (so retries can see it),
//!   fails an already-expired call with `deadline_exceeded` without calling
//!   further, and races the whole call — retries and backoff included —
//!   against `runtime.sleep` until the deadline.
//! - [`TryTimeout`] (below retry and the breaker, just above the transport)
//!   runs once **per attempt**: the attempt's deadline is the earlier of the
//!   overall deadline and `now + per_try_timeout`; it writes the remaining
//!   milliseconds to `Connect-Timeout-Ms` at send time, so the budget shrinks
//!   hop by hop and attempt by attempt; it never sends a request whose budget
//!   is already spent (under one millisecond left); and it races the attempt
//!   against the attempt's deadline.
//!
//! A per-try timeout and the overall deadline both surface as
//! `deadline_exceeded`. The retry layer must retry the first and never the
//! second, so `TryTimeout` marks its own per-try timeouts (see
//! [`is_per_try_timeout`]) and strips any such mark arriving from below (a
//! remote hop's per-try timeout is not ours to retry).
//!
//! # Defaults
//!
//! No overall timeout and no per-try timeout unless configured
//! (`timeout_ms` / `per_try_timeout_ms`, per service or method); a deadline
//! set by the caller always applies.
//!
//! # Example
//!
//! ```
//! use std::rc::Rc;
//! use tower::ServiceBuilder;
//! use workmesh::config::ResilienceConfig;
//! use workmesh::deadline::{CallDeadline, TryTimeout};
//! # fn demo<R: workmesh::Runtime, T>(runtime: R, transport: T) -> impl Sized
//! # where T: tower::Service<http::Request<bytes::Bytes>, Response = http::Response<bytes::Bytes>, Error = workmesh::ConnectError> + Clone + 'static {
//! let config = Rc::new(ResilienceConfig::from_json(r#"{"default": {"timeout_ms": 500}}"#).unwrap());
//! ServiceBuilder::new()
//!     .layer(CallDeadline::layer(runtime.clone(), config.clone()))
//!     // .layer(retry, breaker, limit ...)
//!     .layer(TryTimeout::layer(runtime, config))
//!     .service(transport)
//! # }
//! ```

mod call;
mod try_timeout;

pub use call::{CallDeadline, CallDeadlineLayer};
pub use try_timeout::{TryTimeout, TryTimeoutLayer};

use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::context::headers;
use crate::{ConnectError, Deadline, Instant};

/// Metadata key marking a `deadline_exceeded` produced by this isolate's
/// per-try timer (as opposed to the call's overall deadline).
pub const PER_TRY_TIMEOUT_MARK: &str = "workmesh-per-try-timeout";

/// True when `error` is a per-try timeout raised by this isolate's
/// [`TryTimeout`] layer: worth retrying if the overall deadline allows.
pub fn is_per_try_timeout(error: &ConnectError) -> bool {
    error.code == crate::Code::DeadlineExceeded && error.metadata.contains_key(PER_TRY_TIMEOUT_MARK)
}

/// Removes the per-try mark, so it never leaves the layer stack that set it.
pub fn clear_per_try_mark(error: &mut ConnectError) {
    error.metadata.remove(PER_TRY_TIMEOUT_MARK);
}

fn per_try_timeout_error(timeout: Duration) -> ConnectError {
    let mut e = ConnectError::deadline_exceeded(format!(
        "attempt timed out after {} ms",
        timeout.as_millis()
    ));
    e.metadata.insert(
        HeaderName::from_static(PER_TRY_TIMEOUT_MARK),
        HeaderValue::from_static("1"),
    );
    e
}

fn overall_deadline_error() -> ConnectError {
    ConnectError::deadline_exceeded("call deadline exceeded")
}

/// The largest value `Connect-Timeout-Ms` may carry (at most 10 digits).
const MAX_TIMEOUT_MS: u128 = 9_999_999_999;

/// The deadline a server should give its own outgoing calls, from an
/// incoming request's `Connect-Timeout-Ms` header, measured from `now`.
///
/// `Ok(None)` when the header is absent; `invalid_argument` when it is not
/// 1–10 ASCII digits, as the Connect protocol requires.
// `ConnectError` is the crate-wide error type; its size is error.rs's concern.
#[allow(clippy::result_large_err)]
pub fn deadline_from_headers(
    headers: &HeaderMap,
    now: Instant,
) -> Result<Option<Deadline>, ConnectError> {
    let Some(value) = headers.get(headers::CONNECT_TIMEOUT_MS) else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or("");
    if text.is_empty() || text.len() > 10 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ConnectError::invalid_argument(format!(
            "{}: expected 1 to 10 digits, got {:?}",
            headers::CONNECT_TIMEOUT_MS,
            value
        )));
    }
    let ms: u64 = text
        .parse()
        .map_err(|_| ConnectError::invalid_argument("bad connect-timeout-ms"))?;
    Ok(Some(Deadline(now + Duration::from_millis(ms))))
}

#[cfg(all(test, feature = "tokio"))]
mod tests;
