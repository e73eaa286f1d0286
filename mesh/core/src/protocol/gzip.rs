//! gzip, with a hard limit on what decompression may produce (a small body
//! must not inflate into gigabytes inside a 128 MB isolate).

use std::io::{Read, Write};

use bytes::Bytes;

use crate::ConnectError;

/// Compresses `data` (default level).
pub fn compress(data: &[u8]) -> Result<Bytes, ConnectError> {
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(data.len() / 2 + 32),
        flate2::Compression::default(),
    );
    encoder
        .write_all(data)
        .and_then(|()| encoder.finish())
        .map(Bytes::from)
        .map_err(|err| ConnectError::internal(format!("gzip: {err}")))
}

/// Decompresses `data`; output beyond `limit` bytes is `resource_exhausted`,
/// a corrupt stream is `invalid_argument`.
pub fn decompress(data: &[u8], limit: usize) -> Result<Bytes, ConnectError> {
    let decoder = flate2::read::GzDecoder::new(data);
    let mut out = Vec::new();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    decoder
        .take(cap)
        .read_to_end(&mut out)
        .map_err(|err| ConnectError::invalid_argument(format!("gzip: {err}")))?;
    if out.len() > limit {
        return Err(ConnectError::resource_exhausted(format!(
            "decompressed message larger than {limit} bytes"
        )));
    }
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Code;

    #[test]
    fn round_trip() {
        let data = b"hello hello hello hello".repeat(100);
        let packed = compress(&data).expect("compress");
        assert!(packed.len() < data.len());
        assert_eq!(decompress(&packed, data.len()).expect("decompress"), data);
    }

    #[test]
    fn limit_is_enforced_on_output() {
        let bomb = compress(&vec![0u8; 1 << 20]).expect("compress");
        assert!(bomb.len() < 4096);
        let err = decompress(&bomb, 1000).expect_err("over limit");
        assert_eq!(err.code, Code::ResourceExhausted);
        assert!(decompress(&bomb, 1 << 20).is_ok());
    }

    #[test]
    fn corrupt_stream_is_invalid_argument() {
        assert_eq!(
            decompress(b"not gzip at all", 100).map_err(|e| e.code),
            Err(Code::InvalidArgument)
        );
        let packed = compress(b"truncate me please").expect("compress");
        let cut = &packed[..packed.len() - 6];
        assert_eq!(
            decompress(cut, 100).map_err(|e| e.code),
            Err(Code::InvalidArgument)
        );
    }
}
