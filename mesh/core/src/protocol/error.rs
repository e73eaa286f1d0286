//! Connect error bodies and the mapping between errors and HTTP responses.
//!
//! A unary error is an HTTP response with the code's status and a JSON body:
//! `{"code":"not_found","message":"…","details":[{"type":"pkg.Msg","value":"<base64>"}]}`.
//!
//! **Transport contract.** Every [`Transport`](crate::client::Transport)
//! returns `Ok` only for HTTP 200; anything else becomes `Err(ConnectError)`
//! through [`error_from_http`] (also used by the Workers service-binding
//! transport), and a network failure is `unavailable`. Middleware relies on
//! it: it classifies `Err` codes and never looks at statuses.

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD_NO_PAD};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use bytes::Bytes;
use http::header::{CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde::{Deserialize, Serialize};

use super::gzip;
use super::headers::Compression;
use super::DEFAULT_MAX_MESSAGE_BYTES;
use crate::{Code, ConnectError, ErrorDetail};

/// Standard base64, accepting input with or without padding (the spec
/// writes it unpadded and asks readers to accept both).
const STANDARD_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

const TYPE_URL_PREFIX: &str = "type.googleapis.com/";

#[derive(Serialize, Deserialize)]
struct WireError {
    code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    message: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    details: Vec<WireDetail>,
}

#[derive(Serialize, Deserialize)]
struct WireDetail {
    #[serde(rename = "type")]
    type_name: String,
    value: String,
}

/// The JSON body of a Connect error.
pub fn error_to_json(error: &ConnectError) -> Bytes {
    let wire = WireError {
        code: error.code.as_str().to_owned(),
        message: (!error.message.is_empty()).then(|| error.message.clone()),
        details: error
            .details
            .iter()
            .map(|detail| WireDetail {
                type_name: detail.type_name.clone(),
                value: STANDARD_NO_PAD.encode(&detail.value),
            })
            .collect(),
    };
    // Serialising plain strings cannot fail; fall back to a fixed body anyway.
    serde_json::to_vec(&wire)
        .map(Bytes::from)
        .unwrap_or_else(|_| Bytes::from_static(br#"{"code":"internal"}"#))
}

/// Parses a Connect error body; `None` when the body is not one (not JSON,
/// or no string `code`). An unrecognised code reads as `unknown`, as the spec
/// asks; details that are not valid base64 are dropped.
pub fn error_from_json(body: &[u8]) -> Option<ConnectError> {
    let wire: WireError = serde_json::from_slice(body).ok()?;
    let code = Code::from_wire(&wire.code).unwrap_or(Code::Unknown);
    let mut error = ConnectError::new(code, wire.message.unwrap_or_default());
    for detail in wire.details {
        let Ok(value) = STANDARD_LENIENT.decode(detail.value.as_bytes()) else {
            continue;
        };
        let type_name = detail
            .type_name
            .strip_prefix(TYPE_URL_PREFIX)
            .unwrap_or(&detail.type_name)
            .to_owned();
        error.details.push(ErrorDetail {
            type_name,
            value: Bytes::from(value),
        });
    }
    Some(error)
}

/// Turns a non-200 HTTP response into the error it carries: the Connect
/// error in its JSON body, or, when the body is not one (a proxy answered),
/// a code inferred with [`Code::from_http_status`]. The response headers
/// become the error's metadata. A gzip-compressed body is inflated first.
pub fn error_from_http(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> ConnectError {
    let inflated;
    let body = match Compression::of_body(headers) {
        Ok(Compression::Gzip) => match gzip::decompress(body, DEFAULT_MAX_MESSAGE_BYTES) {
            Ok(bytes) => {
                inflated = bytes;
                &inflated[..]
            }
            Err(_) => &[][..],
        },
        _ => body,
    };
    let mut error = error_from_json(body).unwrap_or_else(|| {
        let reason = status.canonical_reason().unwrap_or("unexpected status");
        ConnectError::new(
            Code::from_http_status(status),
            format!("HTTP {}: {reason}", status.as_u16()),
        )
    });
    error.metadata = headers.clone();
    error
}

/// Passes a 200 response through and turns any other into its error: the
/// transport contract in one function, for transports to call.
pub fn into_result(response: http::Response<Bytes>) -> Result<http::Response<Bytes>, ConnectError> {
    if response.status() == StatusCode::OK {
        Ok(response)
    } else {
        Err(error_from_http(
            response.status(),
            response.headers(),
            response.body(),
        ))
    }
}

/// The HTTP response for an error: the code's status, its JSON body, and its
/// metadata as headers.
pub fn error_response(error: &ConnectError) -> http::Response<Bytes> {
    error_response_with_status(error, error.code.http_status())
}

/// As [`error_response`], with a status the protocol fixes independently of
/// the code (405 for a wrong HTTP method, 415 for an unsupported media type).
pub fn error_response_with_status(
    error: &ConnectError,
    status: StatusCode,
) -> http::Response<Bytes> {
    let mut response = http::Response::new(error_to_json(error));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    copy_metadata(&error.metadata, headers);
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// Copies metadata into response headers, leaving out the headers that
/// describe the body (the router sets those itself).
pub(crate) fn copy_metadata(metadata: &HeaderMap, headers: &mut HeaderMap) {
    let reserved: [&HeaderName; 4] = [
        &CONTENT_TYPE,
        &CONTENT_LENGTH,
        &CONTENT_ENCODING,
        &TRANSFER_ENCODING,
    ];
    for (name, value) in metadata {
        if !reserved.contains(&name) {
            headers.append(name.clone(), value.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ConnectError {
        ConnectError::new(Code::NotFound, "no product 42").with_detail(ErrorDetail {
            type_name: "shop.v1.ProductMissing".into(),
            value: Bytes::from_static(b"\x0a\x0242"),
        })
    }

    #[test]
    fn json_shape_follows_the_spec() {
        let json: serde_json::Value =
            serde_json::from_slice(&error_to_json(&sample())).expect("json");
        assert_eq!(json["code"], "not_found");
        assert_eq!(json["message"], "no product 42");
        assert_eq!(json["details"][0]["type"], "shop.v1.ProductMissing");
        assert_eq!(
            json["details"][0]["value"], "CgI0Mg",
            "standard base64 without padding"
        );
        let bare: serde_json::Value =
            serde_json::from_slice(&error_to_json(&ConnectError::new(Code::Internal, "")))
                .expect("json");
        assert_eq!(bare, serde_json::json!({"code": "internal"}));
    }

    #[test]
    fn json_round_trips() {
        assert_eq!(error_from_json(&error_to_json(&sample())), Some(sample()));
    }

    #[test]
    fn lenient_reading() {
        let padded = br#"{"code":"not_found","details":[{"type":"type.googleapis.com/a.B","value":"CgI0Mg=="},{"type":"x","value":"%%"}],"extra":1}"#;
        let error = error_from_json(padded).expect("connect error");
        assert_eq!(error.message, "");
        assert_eq!(
            error.details,
            vec![ErrorDetail {
                type_name: "a.B".into(),
                value: Bytes::from_static(b"\x0a\x0242")
            }]
        );
        assert_eq!(
            error_from_json(br#"{"code":"teapot"}"#).map(|e| e.code),
            Some(Code::Unknown)
        );
        assert_eq!(error_from_json(b"<html>bad gateway</html>"), None);
        assert_eq!(error_from_json(br#"{"message":"no code"}"#), None);
    }

    #[test]
    fn http_errors_prefer_the_body_then_the_status() {
        let mut headers = HeaderMap::new();
        headers.insert("x-request-id", HeaderValue::from_static("r1"));
        let error = error_from_http(StatusCode::NOT_FOUND, &headers, &error_to_json(&sample()));
        assert_eq!(error.code, Code::NotFound);
        assert_eq!(error.details.len(), 1);
        assert_eq!(
            error.metadata.get("x-request-id").map(|v| v.as_bytes()),
            Some(&b"r1"[..])
        );

        let proxy = error_from_http(StatusCode::BAD_GATEWAY, &HeaderMap::new(), b"<html/>");
        assert_eq!(proxy.code, Code::Unavailable);
        let missing = error_from_http(StatusCode::NOT_FOUND, &HeaderMap::new(), b"");
        assert_eq!(missing.code, Code::Unimplemented);
    }

    #[test]
    fn gzipped_error_bodies_are_read() {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        let body = gzip::compress(&error_to_json(&sample())).expect("gzip");
        assert_eq!(
            error_from_http(StatusCode::NOT_FOUND, &headers, &body).details,
            sample().details
        );
    }

    #[test]
    fn responses_carry_status_type_and_metadata() {
        let mut error = sample();
        error
            .metadata
            .insert("x-retry", HeaderValue::from_static("no"));
        error
            .metadata
            .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        let response = error_response(&error);
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
        assert_eq!(response.headers()["x-retry"], "no");
        assert_eq!(
            into_result(response).map(|_| ()).map_err(|e| e.code),
            Err(Code::NotFound)
        );
        assert!(into_result(http::Response::new(Bytes::new())).is_ok());
    }

    proptest::proptest! {
        #[test]
        fn any_error_round_trips_through_json(
            code in proptest::sample::select(Code::ALL.to_vec()),
            message in ".*",
            details in proptest::collection::vec(("[a-z]{1,8}(\\.[A-Z][a-z]{0,8}){1,3}", proptest::collection::vec(proptest::arbitrary::any::<u8>(), 0..64)), 0..4),
        ) {
            let mut error = ConnectError::new(code, message);
            for (type_name, value) in details {
                error = error.with_detail(ErrorDetail { type_name, value: Bytes::from(value) });
            }
            proptest::prop_assert_eq!(error_from_json(&error_to_json(&error)), Some(error.clone()));
            let via_http = error_from_http(code.http_status(), &HeaderMap::new(), &error_to_json(&error));
            proptest::prop_assert_eq!(via_http, error);
        }

        #[test]
        fn reading_arbitrary_bodies_never_panics(status in 100u16..600, body in proptest::collection::vec(proptest::arbitrary::any::<u8>(), 0..128)) {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
            let _ = error_from_http(status, &HeaderMap::new(), &body);
        }
    }
}
