//! Connect's unary headers: timeout, protocol version, compression negotiation.

use std::time::Duration;

use http::{HeaderMap, HeaderValue};

use crate::context::headers::{CONNECT_PROTOCOL_VERSION, CONNECT_TIMEOUT_MS};
use crate::ConnectError;

/// The only compression workmesh speaks besides `identity`.
pub const GZIP: &str = "gzip";

/// Why a `Connect-Timeout-Ms` value was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TimeoutError {
    #[error("Connect-Timeout-Ms must be 1 to 10 ASCII digits, got {0:?}")]
    Malformed(String),
}

impl From<TimeoutError> for ConnectError {
    fn from(err: TimeoutError) -> Self {
        ConnectError::invalid_argument(err.to_string())
    }
}

/// Parses `Connect-Timeout-Ms`: a positive integer of at most 10 digits
/// (per the spec), in milliseconds. `0` is valid and means "already expired".
pub fn parse_timeout(value: &HeaderValue) -> Result<Duration, TimeoutError> {
    let bytes = value.as_bytes();
    if bytes.is_empty() || bytes.len() > 10 || !bytes.iter().all(u8::is_ascii_digit) {
        return Err(TimeoutError::Malformed(
            String::from_utf8_lossy(bytes).into_owned(),
        ));
    }
    // At most 10 digits always fits in u64.
    let millis = bytes
        .iter()
        .fold(0u64, |acc, digit| acc * 10 + u64::from(digit - b'0'));
    Ok(Duration::from_millis(millis))
}

/// Formats a remaining budget as `Connect-Timeout-Ms`, rounding up to whole
/// milliseconds and capping at the 10-digit maximum.
pub fn format_timeout(timeout: Duration) -> HeaderValue {
    let millis = timeout.as_nanos().div_ceil(1_000_000).min(9_999_999_999);
    HeaderValue::from(millis as u64)
}

/// The request's timeout, if it sent one.
pub fn request_timeout(headers: &HeaderMap) -> Result<Option<Duration>, ConnectError> {
    match headers.get(CONNECT_TIMEOUT_MS) {
        None => Ok(None),
        Some(value) => Ok(Some(parse_timeout(value)?)),
    }
}

/// Checks `Connect-Protocol-Version`: absent is accepted (like connect-go's
/// default), anything but `1` is `invalid_argument`.
pub fn check_protocol_version(headers: &HeaderMap) -> Result<(), ConnectError> {
    match headers.get(CONNECT_PROTOCOL_VERSION) {
        None => Ok(()),
        Some(value) if value.as_bytes() == b"1" => Ok(()),
        Some(value) => Err(ConnectError::invalid_argument(format!(
            "Connect-Protocol-Version must be \"1\", got {:?}",
            String::from_utf8_lossy(value.as_bytes())
        ))),
    }
}

/// A body's compression, from `Content-Encoding` (or the GET `compression`
/// parameter).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    Identity,
    Gzip,
}

impl Compression {
    /// Parses an encoding name; names other than `identity` and `gzip` are
    /// `unimplemented`, as the spec requires.
    pub fn from_name(name: &str) -> Result<Compression, ConnectError> {
        let name = name.trim();
        if name.is_empty() || name.eq_ignore_ascii_case("identity") {
            Ok(Compression::Identity)
        } else if name.eq_ignore_ascii_case(GZIP) {
            Ok(Compression::Gzip)
        } else {
            Err(ConnectError::unimplemented(format!(
                "unsupported compression {name:?}: supported are gzip, identity"
            )))
        }
    }

    /// The request's `Content-Encoding`.
    pub fn of_body(headers: &HeaderMap) -> Result<Compression, ConnectError> {
        match headers.get(http::header::CONTENT_ENCODING) {
            None => Ok(Compression::Identity),
            Some(value) => match value.to_str() {
                Ok(name) => Compression::from_name(name),
                Err(_) => Err(ConnectError::unimplemented(
                    "unsupported compression (not ASCII)",
                )),
            },
        }
    }
}

/// True when the peer's `Accept-Encoding` lists gzip with a non-zero weight.
pub fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(http::header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|value| {
            value.split(',').any(|item| {
                let mut parts = item.split(';');
                let name = parts.next().unwrap_or_default().trim();
                let zero_weight = parts.any(|param| {
                    param.split_once('=').is_some_and(|(key, q)| {
                        key.trim().eq_ignore_ascii_case("q")
                            && q.trim().parse::<f32>().is_ok_and(|q| q <= 0.0)
                    })
                });
                name.eq_ignore_ascii_case(GZIP) && !zero_weight
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Code;

    fn value(s: &str) -> HeaderValue {
        HeaderValue::from_str(s).expect("header value")
    }

    #[test]
    fn timeouts_are_one_to_ten_digits() {
        assert_eq!(parse_timeout(&value("0")), Ok(Duration::ZERO));
        assert_eq!(parse_timeout(&value("250")), Ok(Duration::from_millis(250)));
        assert_eq!(
            parse_timeout(&value("9999999999")),
            Ok(Duration::from_millis(9_999_999_999))
        );
        for bad in ["", "12345678901", "-1", "1.5", " 1", "1s", "+1"] {
            assert!(parse_timeout(&value(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn format_rounds_up_and_round_trips() {
        assert_eq!(format_timeout(Duration::from_micros(1500)), "2");
        assert_eq!(format_timeout(Duration::from_millis(250)), "250");
        assert_eq!(format_timeout(Duration::from_secs(u64::MAX)), "9999999999");
        let back = parse_timeout(&format_timeout(Duration::from_millis(1234))).expect("parse");
        assert_eq!(back, Duration::from_millis(1234));
    }

    #[test]
    fn protocol_version_is_lenient_when_absent() {
        let mut headers = HeaderMap::new();
        assert!(check_protocol_version(&headers).is_ok());
        headers.insert(CONNECT_PROTOCOL_VERSION, value("1"));
        assert!(check_protocol_version(&headers).is_ok());
        headers.insert(CONNECT_PROTOCOL_VERSION, value("2"));
        assert_eq!(
            check_protocol_version(&headers).map_err(|e| e.code),
            Err(Code::InvalidArgument)
        );
    }

    #[test]
    fn compression_names() {
        assert_eq!(Compression::from_name("gzip").ok(), Some(Compression::Gzip));
        assert_eq!(Compression::from_name("GZIP").ok(), Some(Compression::Gzip));
        assert_eq!(
            Compression::from_name("identity").ok(),
            Some(Compression::Identity)
        );
        assert_eq!(
            Compression::from_name("br").map_err(|e| e.code),
            Err(Code::Unimplemented)
        );
    }

    #[test]
    fn accept_encoding_negotiation() {
        let accepts = |s: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(http::header::ACCEPT_ENCODING, value(s));
            accepts_gzip(&headers)
        };
        assert!(accepts("gzip"));
        assert!(accepts("br, GZip;q=0.5"));
        assert!(!accepts("gzip;q=0"));
        assert!(!accepts("br, identity"));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }
}
