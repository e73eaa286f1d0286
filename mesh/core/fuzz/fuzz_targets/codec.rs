//! Wire decoders never panic, and what decodes re-encodes to the same message.
#![no_main]

use http::HeaderValue;
use libfuzzer_sys::fuzz_target;
use workmesh::protocol::{error_from_json, error_to_json, gzip, parse_timeout, query, Encoding};
use workmesh::testing::Ping;

fuzz_target!(|data: &[u8]| {
    for encoding in [Encoding::Proto, Encoding::Json] {
        if let Ok(message) = encoding.decode::<Ping>(data) {
            let bytes = encoding.encode(&message).expect("re-encode");
            let again: Ping = encoding.decode(&bytes).expect("decode what we encoded");
            assert_eq!(again, message);
        }
    }
    if let Some(error) = error_from_json(data) {
        assert_eq!(error_from_json(&error_to_json(&error)), Some(error));
    }
    if let Ok(unpacked) = gzip::decompress(data, 1 << 16) {
        assert!(unpacked.len() <= 1 << 16);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = query::decode_get(text);
    }
    if let Ok(value) = HeaderValue::from_bytes(data) {
        let _ = parse_timeout(&value);
    }
});
