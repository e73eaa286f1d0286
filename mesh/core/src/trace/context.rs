//! W3C Trace Context: the `traceparent` and `tracestate` headers
//! (<https://www.w3.org/TR/trace-context/>).
//!
//! Parsing is lenient in one direction only: anything malformed, hostile or
//! over-long yields `None`, and the receiver starts a fresh trace. A bad
//! header never becomes an error response: tracing must not be able to fail a
//! call.

use std::fmt;

use http::{HeaderMap, HeaderValue};

use crate::Runtime;

/// The `traceparent` header name.
pub const TRACEPARENT: &str = "traceparent";
/// The `tracestate` header name.
pub const TRACESTATE: &str = "tracestate";

/// `tracestate` longer than this is dropped rather than truncated (the spec
/// lets a vendor do either; dropping never produces a half-member).
pub const MAX_TRACESTATE_LEN: usize = 512;
/// The spec's limit on `tracestate` list members.
const MAX_TRACESTATE_MEMBERS: usize = 32;

/// A 16-byte trace id; never all zeros when it comes from this module.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TraceId(pub [u8; 16]);

/// An 8-byte span id; never all zeros when it comes from this module.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpanId(pub [u8; 8]);

impl TraceId {
    /// A random, non-zero trace id from the runtime's generator.
    pub fn random<R: Runtime>(runtime: &R) -> Self {
        let high = runtime.random_u64();
        let low = runtime.random_u64();
        TraceId::from_u128(((u128::from(high)) << 64) | u128::from(low))
    }

    /// The id from its big-endian integer value; zero becomes one, since a
    /// zero id is invalid on the wire.
    pub fn from_u128(value: u128) -> Self {
        TraceId(value.max(1).to_be_bytes())
    }

    pub fn to_u128(self) -> u128 {
        u128::from_be_bytes(self.0)
    }

    /// Parses 32 lowercase hex digits; all zeros is invalid.
    pub fn from_hex(hex: &str) -> Option<Self> {
        let mut bytes = [0u8; 16];
        decode_hex(hex, &mut bytes)?;
        (bytes != [0; 16]).then_some(TraceId(bytes))
    }
}

impl SpanId {
    /// A random, non-zero span id from the runtime's generator.
    pub fn random<R: Runtime>(runtime: &R) -> Self {
        SpanId::from_u64(runtime.random_u64())
    }

    /// The id from its big-endian integer value; zero becomes one.
    pub fn from_u64(value: u64) -> Self {
        SpanId(value.max(1).to_be_bytes())
    }

    pub fn to_u64(self) -> u64 {
        u64::from_be_bytes(self.0)
    }

    /// Parses 16 lowercase hex digits; all zeros is invalid.
    pub fn from_hex(hex: &str) -> Option<Self> {
        let mut bytes = [0u8; 8];
        decode_hex(hex, &mut bytes)?;
        (bytes != [0; 8]).then_some(SpanId(bytes))
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceId({self})")
    }
}

impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Debug for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpanId({self})")
    }
}

/// What crosses a hop: the trace, the caller's span (the parent of whatever
/// the receiver starts), the sampling decision and the vendors' `tracestate`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceContext {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    /// The `sampled` trace flag: the caller records this trace.
    pub sampled: bool,
    /// The raw `tracestate` list, kept only when well-formed.
    pub tracestate: Option<String>,
}

impl TraceContext {
    /// Parses a `traceparent` value. Version `00` must be exactly four
    /// fields; a later version (not `ff`) is accepted when its first four
    /// fields parse, as the spec asks, and anything after them is ignored.
    pub fn parse_traceparent(value: &str) -> Option<TraceContext> {
        let value = value.trim_matches(|c| c == ' ' || c == '\t');
        // 2 + 1 + 32 + 1 + 16 + 1 + 2
        const LEN: usize = 55;
        let head = value.get(..LEN)?;
        let version = value.get(..2)?;
        let mut version_byte = [0u8; 1];
        decode_hex(version, &mut version_byte)?;
        match version_byte[0] {
            0xff => return None,
            0x00 if value.len() != LEN => return None,
            // A future version may append fields, always after a dash.
            _ if value.len() > LEN && value.as_bytes().get(LEN) != Some(&b'-') => return None,
            _ => {}
        }
        let mut fields = head.split('-');
        let (_version, trace, span, flags) = (
            fields.next()?,
            fields.next()?,
            fields.next()?,
            fields.next()?,
        );
        if fields.next().is_some() {
            return None;
        }
        let trace_id = TraceId::from_hex(trace)?;
        let span_id = SpanId::from_hex(span)?;
        let mut flags_byte = [0u8; 1];
        decode_hex(flags, &mut flags_byte)?;
        Some(TraceContext {
            trace_id,
            span_id,
            sampled: flags_byte[0] & 0x01 == 0x01,
            tracestate: None,
        })
    }

    /// The `traceparent` value, always version `00`.
    pub fn format_traceparent(&self) -> String {
        format!(
            "00-{}-{}-{}",
            self.trace_id,
            self.span_id,
            if self.sampled { "01" } else { "00" }
        )
    }

    /// Reads `traceparent` and `tracestate`. `None` — start a new trace —
    /// when `traceparent` is missing, repeated or malformed; a malformed
    /// `tracestate` is dropped on its own.
    pub fn extract(headers: &HeaderMap) -> Option<TraceContext> {
        let mut parents = headers.get_all(TRACEPARENT).iter();
        let parent = parents.next()?;
        if parents.next().is_some() {
            return None;
        }
        let mut context = TraceContext::parse_traceparent(parent.to_str().ok()?)?;
        let mut state = String::new();
        for value in headers.get_all(TRACESTATE) {
            let Ok(value) = value.to_str() else {
                return Some(context);
            };
            if !state.is_empty() {
                state.push(',');
            }
            state.push_str(value);
            if state.len() > MAX_TRACESTATE_LEN {
                return Some(context);
            }
        }
        context.tracestate = parse_tracestate(&state);
        Some(context)
    }

    /// Writes `traceparent` (and `tracestate` when present), replacing any
    /// previous values.
    pub fn inject(&self, headers: &mut HeaderMap) {
        if let Ok(value) = HeaderValue::from_str(&self.format_traceparent()) {
            headers.insert(TRACEPARENT, value);
        }
        headers.remove(TRACESTATE);
        if let Some(state) = &self.tracestate {
            if let Ok(value) = HeaderValue::from_str(state) {
                headers.insert(TRACESTATE, value);
            }
        }
    }

    /// The context of a new span in the same trace, as a child of `self`:
    /// same trace, flags and `tracestate`, new span id.
    pub fn child<R: Runtime>(&self, runtime: &R) -> TraceContext {
        TraceContext {
            span_id: SpanId::random(runtime),
            ..self.clone()
        }
    }
}

/// Validates a `tracestate` list. Returns it trimmed when it has at most 32
/// well-formed members (`key=value`, keys unique), fits in
/// [`MAX_TRACESTATE_LEN`] and is not empty; otherwise `None`.
pub fn parse_tracestate(value: &str) -> Option<String> {
    let value = value.trim_matches(|c| c == ' ' || c == '\t');
    if value.is_empty() || value.len() > MAX_TRACESTATE_LEN {
        return None;
    }
    let mut keys: Vec<&str> = Vec::new();
    for member in value.split(',') {
        let member = member.trim_matches(|c| c == ' ' || c == '\t');
        if member.is_empty() {
            continue; // the spec allows empty list members
        }
        let (key, val) = member.split_once('=')?;
        if !valid_key(key) || !valid_value(val) || keys.contains(&key) {
            return None;
        }
        keys.push(key);
        if keys.len() > MAX_TRACESTATE_MEMBERS {
            return None;
        }
    }
    (!keys.is_empty()).then(|| value.to_owned())
}

fn key_char(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'_' | b'-' | b'*' | b'/')
}

/// `simple-key` or `tenant@system` (multi-tenant key).
fn valid_key(key: &str) -> bool {
    let bytes = key.as_bytes();
    match key.split_once('@') {
        None => {
            bytes.len() <= 256
                && bytes.first().is_some_and(u8::is_ascii_lowercase)
                && bytes.iter().copied().all(key_char)
        }
        Some((tenant, system)) => {
            let (tenant, system) = (tenant.as_bytes(), system.as_bytes());
            (1..=241).contains(&tenant.len())
                && tenant
                    .first()
                    .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
                && tenant.iter().copied().all(key_char)
                && (1..=14).contains(&system.len())
                && system.first().is_some_and(u8::is_ascii_lowercase)
                && system.iter().copied().all(key_char)
        }
    }
}

/// Up to 256 printable ASCII characters except `,` and `=`, not ending in a space.
fn valid_value(value: &str) -> bool {
    let bytes = value.as_bytes();
    bytes.len() <= 256
        && bytes
            .iter()
            .all(|&c| (0x20..=0x7e).contains(&c) && c != b',' && c != b'=')
        && bytes.last() != Some(&b' ')
}

/// Decodes exactly `out.len() * 2` lowercase hex digits.
fn decode_hex(hex: &str, out: &mut [u8]) -> Option<()> {
    let bytes = hex.as_bytes();
    if bytes.len() != out.len() * 2 {
        return None;
    }
    for (slot, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        let digit = |c: u8| match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        };
        let (high, low) = match pair {
            [high, low] => (digit(*high)?, digit(*low)?),
            _ => return None,
        };
        *slot = (high << 4) | low;
    }
    Some(())
}

fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    for byte in bytes {
        write!(f, "{byte:02x}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
