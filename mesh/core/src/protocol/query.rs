//! The GET form of a unary call, for `NO_SIDE_EFFECTS` methods:
//! `GET /pkg.Service/Method?connect=v1&encoding=json&message=…[&base64=1][&compression=gzip]`.
//!
//! The message is encoded with the codec, then (with `base64=1`) URL-safe
//! base64, then percent-encoded. Cacheable by browsers and CDNs.

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use bytes::Bytes;

use super::codec::Encoding;
use super::headers::Compression;
use crate::{Code, ConnectError};

/// URL-safe base64 that accepts input with or without padding.
const URL_SAFE_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A decoded GET call: the body is still compressed if `compression` says so.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GetCall {
    pub encoding: Encoding,
    pub compression: Compression,
    pub message: Bytes,
}

/// Why a GET query was rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GetError {
    /// `encoding` is missing or not `proto` / `json`: HTTP 415.
    UnsupportedEncoding(ConnectError),
    /// Anything else, with its code.
    Invalid(ConnectError),
}

impl GetError {
    pub fn code(&self) -> Code {
        self.error().code
    }

    pub fn error(&self) -> &ConnectError {
        match self {
            GetError::UnsupportedEncoding(error) | GetError::Invalid(error) => error,
        }
    }
}

impl From<GetError> for ConnectError {
    fn from(err: GetError) -> Self {
        match err {
            GetError::UnsupportedEncoding(error) | GetError::Invalid(error) => error,
        }
    }
}

impl From<ConnectError> for GetError {
    fn from(err: ConnectError) -> Self {
        GetError::Invalid(err)
    }
}

/// Decodes the query string of a GET call (without the leading `?`).
///
/// A missing or unknown `encoding` is [`GetError::UnsupportedEncoding`]
/// (code `unimplemented`, HTTP 415); an unknown `compression` is
/// `unimplemented`; other malformed input is `invalid_argument`.
pub fn decode_get(query: &str) -> Result<GetCall, GetError> {
    let mut connect = None;
    let mut encoding = None;
    let mut message = None;
    let mut base64 = None;
    let mut compression = None;
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = percent_decode(key.as_bytes())?;
        let slot = match key.as_slice() {
            b"connect" => &mut connect,
            b"encoding" => &mut encoding,
            b"message" => &mut message,
            b"base64" => &mut base64,
            b"compression" => &mut compression,
            _ => continue,
        };
        if slot.is_none() {
            *slot = Some(percent_decode(value.as_bytes())?);
        }
    }
    if let Some(version) = connect {
        if version != b"v1" {
            return Err(GetError::Invalid(ConnectError::invalid_argument(format!(
                "query parameter connect must be \"v1\", got {:?}",
                String::from_utf8_lossy(&version)
            ))));
        }
    }
    let encoding = match encoding {
        None => {
            return Err(GetError::UnsupportedEncoding(ConnectError::unimplemented(
                "missing query parameter encoding",
            )))
        }
        Some(name) => {
            let encoding = std::str::from_utf8(&name)
                .ok()
                .and_then(Encoding::from_name)
                .ok_or_else(|| {
                    ConnectError::unimplemented(format!(
                        "unsupported encoding {:?}: supported are proto, json",
                        String::from_utf8_lossy(&name)
                    ))
                });
            encoding.map_err(GetError::UnsupportedEncoding)?
        }
    };
    let compression = match compression {
        None => Compression::Identity,
        Some(name) => Compression::from_name(&String::from_utf8_lossy(&name))?,
    };
    let raw =
        message.ok_or_else(|| ConnectError::invalid_argument("missing query parameter message"))?;
    let message = match base64.as_deref() {
        None | Some(b"0") => raw,
        Some(b"1") => URL_SAFE_LENIENT.decode(&raw).map_err(|err| {
            ConnectError::invalid_argument(format!("query parameter message: base64: {err}"))
        })?,
        Some(other) => {
            return Err(GetError::Invalid(ConnectError::invalid_argument(format!(
                "query parameter base64 must be 1, got {:?}",
                String::from_utf8_lossy(other)
            ))))
        }
    };
    Ok(GetCall {
        encoding,
        compression,
        message: Bytes::from(message),
    })
}

/// Encodes a GET query for `message` (already codec-encoded): URL-safe
/// base64 for protobuf, percent-encoding for JSON.
pub fn encode_get(encoding: Encoding, message: &[u8]) -> String {
    match encoding {
        Encoding::Proto => format!(
            "connect=v1&encoding=proto&base64=1&message={}",
            URL_SAFE_LENIENT.encode(message)
        ),
        Encoding::Json => format!(
            "connect=v1&encoding=json&message={}",
            percent_encode(message)
        ),
    }
}

/// `application/x-www-form-urlencoded` decoding: `%XX` escapes and `+` for
/// space. A malformed escape is `invalid_argument`.
fn percent_decode(input: &[u8]) -> Result<Vec<u8>, ConnectError> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while let Some(&byte) = input.get(i) {
        match byte {
            b'%' => {
                let hex = |offset: usize| {
                    input
                        .get(i + offset)
                        .and_then(|b| (*b as char).to_digit(16))
                };
                match (hex(1), hex(2)) {
                    (Some(hi), Some(lo)) => out.push((hi * 16 + lo) as u8),
                    _ => {
                        return Err(ConnectError::new(
                            Code::InvalidArgument,
                            "malformed percent-encoding in query",
                        ))
                    }
                }
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            other => {
                out.push(other);
                i += 1;
            }
        }
    }
    Ok(out)
}

fn percent_encode(input: &[u8]) -> String {
    let mut out = String::with_capacity(input.len() * 3);
    for &byte in input {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proto_base64_with_and_without_padding() {
        // b"\x0a\x01a" is 3 bytes: no padding either way; use 4 bytes to get "==".
        let body = b"\x0a\x02ab";
        for message in ["CgJhYg", "CgJhYg=="] {
            let query = format!("connect=v1&encoding=proto&base64=1&message={message}");
            let call = decode_get(&query).expect("decode");
            assert_eq!(call.encoding, Encoding::Proto);
            assert_eq!(call.compression, Compression::Identity);
            assert_eq!(&call.message[..], body);
        }
        // Percent-encoded padding too.
        let call = decode_get("encoding=proto&base64=1&message=CgJhYg%3D%3D").expect("decode");
        assert_eq!(&call.message[..], body);
    }

    #[test]
    fn url_safe_alphabet() {
        // 0xfb 0xff encodes to "-_8" in the URL-safe alphabet.
        let call = decode_get("encoding=proto&base64=1&message=-_8").expect("decode");
        assert_eq!(&call.message[..], &[0xfb, 0xff]);
        assert!(
            decode_get("encoding=proto&base64=1&message=%2B%2F8").is_err(),
            "standard alphabet rejected"
        );
    }

    #[test]
    fn json_is_percent_decoded() {
        let call = decode_get("connect=v1&encoding=json&message=%7B%22text%22%3A%22a+b%22%7D")
            .expect("decode");
        assert_eq!(call.encoding, Encoding::Json);
        assert_eq!(&call.message[..], br#"{"text":"a b"}"#);
    }

    #[test]
    fn encode_and_decode_agree() {
        let json = "{\"text\":\"h&llo = wörld+%\"}".as_bytes();
        let call = decode_get(&encode_get(Encoding::Json, json)).expect("decode");
        assert_eq!(&call.message[..], json);
        let proto = [0u8, 1, 2, 250, 251, 252, 253, 254, 255];
        let call = decode_get(&encode_get(Encoding::Proto, &proto)).expect("decode");
        assert_eq!(&call.message[..], &proto);
    }

    #[test]
    fn malformed_queries() {
        let code = |q: &str| decode_get(q).map(|_| ()).map_err(|e| e.code());
        assert_eq!(
            code("connect=v1&message=x"),
            Err(Code::Unimplemented),
            "no encoding"
        );
        assert_eq!(code("encoding=xml&message=x"), Err(Code::Unimplemented));
        assert_eq!(
            code("encoding=json"),
            Err(Code::InvalidArgument),
            "no message"
        );
        assert_eq!(
            code("connect=v2&encoding=json&message=x"),
            Err(Code::InvalidArgument)
        );
        assert_eq!(
            code("encoding=json&message=%zz"),
            Err(Code::InvalidArgument)
        );
        assert_eq!(code("encoding=json&message=%4"), Err(Code::InvalidArgument));
        assert_eq!(
            code("encoding=proto&base64=1&message=!!!"),
            Err(Code::InvalidArgument)
        );
        assert_eq!(
            code("encoding=proto&base64=yes&message=x"),
            Err(Code::InvalidArgument)
        );
        assert_eq!(
            code("encoding=proto&compression=br&message=x"),
            Err(Code::Unimplemented)
        );
        assert_eq!(code("encoding=proto&compression=gzip&message=x"), Ok(()));
        assert_eq!(
            code("encoding=json&message="),
            Ok(()),
            "empty message decodes at the codec"
        );
        assert!(matches!(
            decode_get("encoding=xml&message=x"),
            Err(GetError::UnsupportedEncoding(_))
        ));
        assert!(matches!(
            decode_get("encoding=json&compression=br&message=x"),
            Err(GetError::Invalid(_))
        ));
    }
}
