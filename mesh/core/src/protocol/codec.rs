//! Message encodings: binary protobuf and the canonical protobuf JSON mapping.

use bytes::Bytes;

use crate::message::Message;
use crate::ConnectError;

/// How a message travels on the wire.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// `application/proto`: binary protobuf (the mesh default).
    #[default]
    Proto,
    /// `application/json`: protobuf's canonical JSON mapping (at the edge).
    Json,
}

impl Encoding {
    /// The content type of a unary request or response body.
    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::Proto => "application/proto",
            Encoding::Json => "application/json",
        }
    }

    /// The `encoding` query parameter of a GET call (`proto` / `json`).
    pub fn name(self) -> &'static str {
        match self {
            Encoding::Proto => "proto",
            Encoding::Json => "json",
        }
    }

    /// Parses the GET `encoding` parameter.
    pub fn from_name(name: &str) -> Option<Encoding> {
        match name {
            "proto" => Some(Encoding::Proto),
            "json" => Some(Encoding::Json),
            _ => None,
        }
    }

    /// Parses a unary content type: `application/proto` or `application/json`,
    /// case-insensitively. Parameters are ignored except `charset`, which must
    /// be `utf-8` when present. Streaming (`application/connect+…`) and
    /// anything else is `None`.
    pub fn from_content_type(value: &str) -> Option<Encoding> {
        let mut parts = value.split(';');
        let essence = parts.next()?.trim();
        let encoding = if essence.eq_ignore_ascii_case("application/proto") {
            Encoding::Proto
        } else if essence.eq_ignore_ascii_case("application/json") {
            Encoding::Json
        } else {
            return None;
        };
        for param in parts {
            let (key, value) = param.split_once('=')?;
            if key.trim().eq_ignore_ascii_case("charset") {
                let charset = value.trim().trim_matches('"');
                if !(charset.eq_ignore_ascii_case("utf-8") || charset.eq_ignore_ascii_case("utf8"))
                {
                    return None;
                }
            }
        }
        Some(encoding)
    }

    /// Encodes a message. Failure is an `internal` error (a message the
    /// process built itself that cannot be encoded is a bug, not bad input).
    pub fn encode<M: Message>(self, message: &M) -> Result<Bytes, ConnectError> {
        match self {
            Encoding::Proto => Ok(Bytes::from(message.encode_to_vec())),
            Encoding::Json => serde_json::to_vec(message)
                .map(Bytes::from)
                .map_err(|err| ConnectError::internal(format!("encode JSON message: {err}"))),
        }
    }

    /// Decodes a message. Failure is an `invalid_argument` error; the caller
    /// re-codes it where another code fits (a client decoding a response).
    pub fn decode<M: Message>(self, bytes: &[u8]) -> Result<M, ConnectError> {
        match self {
            Encoding::Proto => M::decode(bytes).map_err(|err| {
                ConnectError::invalid_argument(format!("decode protobuf message: {err}"))
            }),
            Encoding::Json => {
                // Like connect-go: an empty body is not a JSON object.
                if bytes.iter().all(u8::is_ascii_whitespace) {
                    return Err(ConnectError::invalid_argument(
                        "decode JSON message: empty body is not a JSON object",
                    ));
                }
                serde_json::from_slice(bytes).map_err(|err| {
                    ConnectError::invalid_argument(format!("decode JSON message: {err}"))
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Ping;
    use crate::Code;

    #[test]
    fn content_types_parse_leniently_but_not_loosely() {
        assert_eq!(
            Encoding::from_content_type("application/proto"),
            Some(Encoding::Proto)
        );
        assert_eq!(
            Encoding::from_content_type("Application/JSON"),
            Some(Encoding::Json)
        );
        assert_eq!(
            Encoding::from_content_type("application/json; charset=utf-8"),
            Some(Encoding::Json)
        );
        assert_eq!(
            Encoding::from_content_type("application/json;charset=\"UTF-8\""),
            Some(Encoding::Json)
        );
        assert_eq!(
            Encoding::from_content_type("application/json; charset=latin1"),
            None
        );
        assert_eq!(
            Encoding::from_content_type("application/connect+proto"),
            None
        );
        assert_eq!(Encoding::from_content_type("application/grpc"), None);
        assert_eq!(Encoding::from_content_type("text/plain"), None);
        assert_eq!(
            Encoding::from_content_type("application/json; garbage"),
            None
        );
        assert_eq!(Encoding::from_content_type(""), None);
    }

    #[test]
    fn both_encodings_round_trip() {
        let ping = Ping {
            text: "héllo".into(),
            number: -42,
            tags: vec!["a".into(), "b".into()],
        };
        for encoding in [Encoding::Proto, Encoding::Json] {
            let bytes = encoding.encode(&ping).expect("encode");
            let back: Ping = encoding.decode(&bytes).expect("decode");
            assert_eq!(back, ping, "{encoding:?}");
        }
    }

    #[test]
    fn json_uses_camel_case_field_names() {
        let json = Encoding::Json
            .encode(&Ping {
                text: "a".into(),
                number: 7,
                tags: vec![],
            })
            .expect("encode");
        let value: serde_json::Value = serde_json::from_slice(&json).expect("json");
        assert_eq!(value["text"], "a");
        assert_eq!(value["number"], 7);
    }

    #[test]
    fn garbage_is_invalid_argument() {
        for encoding in [Encoding::Proto, Encoding::Json] {
            let err = encoding
                .decode::<Ping>(b"\xff\xff\xff{")
                .expect_err("must fail");
            assert_eq!(err.code, Code::InvalidArgument, "{encoding:?}");
        }
        let err = Encoding::Json
            .decode::<Ping>(b"  ")
            .expect_err("empty JSON");
        assert_eq!(err.code, Code::InvalidArgument);
        // An empty protobuf body is the default message.
        assert_eq!(
            Encoding::Proto.decode::<Ping>(b"").expect("empty proto"),
            Ping::default()
        );
    }
}
