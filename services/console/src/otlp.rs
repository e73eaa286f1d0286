//! OTLP/HTTP in (protobuf or JSON), rows out: what the console stores of
//! each span, and the receiver's responses.

use prost::Message;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use workmesh::trace::otlp::proto;

/// The most spans one export may carry; more is refused as a whole.
pub const MAX_SPANS_PER_EXPORT: usize = 2_000;

/// One stored span (the `spans` table).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SpanRow {
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: Option<String>,
    pub service: String,
    pub name: String,
    pub kind: i64,
    /// Unix nanoseconds, 20-digit zero-padded decimal.
    pub start_ns: String,
    pub end_ns: String,
    pub status_code: i64,
    pub status_message: String,
    /// A JSON object of the span's attributes.
    pub attributes: String,
    /// A JSON array of `{name, timeUnixNano, attributes}`.
    pub events: String,
}

/// What an export request yields: the rows to store (spans, or metric
/// points) and how many items were refused.
#[derive(Debug, PartialEq)]
pub struct Decoded<Row = SpanRow> {
    pub rows: Vec<Row>,
    pub rejected: i64,
}

impl<Row> Default for Decoded<Row> {
    fn default() -> Self {
        Decoded {
            rows: Vec::new(),
            rejected: 0,
        }
    }
}

/// The two encodings of OTLP/HTTP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    Protobuf,
    Json,
}

impl Encoding {
    /// The encoding a `content-type` names (parameters such as `charset`
    /// are ignored); `None` for anything else.
    pub fn from_content_type(content_type: &str) -> Option<Encoding> {
        let media = content_type.split(';').next().unwrap_or("").trim();
        if media.eq_ignore_ascii_case(PROTOBUF) {
            Some(Encoding::Protobuf)
        } else if media.eq_ignore_ascii_case(JSON) {
            Some(Encoding::Json)
        } else {
            None
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => PROTOBUF,
            Encoding::Json => JSON,
        }
    }
}

pub const PROTOBUF: &str = workmesh::trace::otlp::PROTOBUF;
pub const JSON: &str = "application/json";

/// Decodes an `ExportTraceServiceRequest` in either encoding. Undecodable
/// or oversized input is an `Err` with a message for the sender; spans with
/// invalid ids are skipped and counted.
pub fn decode_traces(encoding: Encoding, body: &[u8]) -> Result<Decoded, String> {
    let request = match encoding {
        Encoding::Protobuf => proto::ExportTraceServiceRequest::decode(body)
            .map_err(|e| format!("not an OTLP ExportTraceServiceRequest: {e}"))?,
        Encoding::Json => crate::otlp_json::trace_request(body)
            .map_err(|e| format!("not an OTLP/JSON ExportTraceServiceRequest: {e}"))?,
    };
    rows_of(request)
}

/// Decodes a protobuf `ExportTraceServiceRequest` (see [`decode_traces`]).
pub fn decode_export(body: &[u8]) -> Result<Decoded, String> {
    decode_traces(Encoding::Protobuf, body)
}

fn rows_of(request: proto::ExportTraceServiceRequest) -> Result<Decoded, String> {
    let total: usize = request
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len())
        .sum();
    if total > MAX_SPANS_PER_EXPORT {
        return Err(format!(
            "{total} spans in one export; at most {MAX_SPANS_PER_EXPORT}"
        ));
    }
    let mut decoded = Decoded::default();
    for resource_spans in request.resource_spans {
        let service = service_name(resource_spans.resource.as_ref());
        for span in resource_spans.scope_spans.into_iter().flat_map(|s| s.spans) {
            match row(&service, span) {
                Some(row) => decoded.rows.push(row),
                None => decoded.rejected += 1,
            }
        }
    }
    Ok(decoded)
}

/// A resource's `service.name` (`unknown_service` when it has none, as the
/// OpenTelemetry SDKs default it).
pub fn service_name(resource: Option<&proto::Resource>) -> String {
    resource
        .and_then(|r| r.attributes.iter().find(|kv| kv.key == "service.name"))
        .and_then(|kv| kv.value.as_ref())
        .map(display_value)
        .unwrap_or_else(|| "unknown_service".to_owned())
}

/// The `ExportTraceServiceResponse` for a result: `partial_success` only
/// when something was refused.
pub fn encode_response(rejected: i64, message: &str) -> Vec<u8> {
    let partial_success = (rejected > 0).then(|| proto::ExportPartialSuccess {
        rejected,
        error_message: message.to_owned(),
    });
    proto::ExportTraceServiceResponse { partial_success }.encode_to_vec()
}

/// The export response (traces or metrics: the same shape) in `encoding`.
/// `rejected_field` is the JSON name of the count (`rejectedSpans`,
/// `rejectedDataPoints`).
pub fn export_response(
    encoding: Encoding,
    rejected: i64,
    rejected_field: &str,
    message: &str,
) -> Vec<u8> {
    match encoding {
        Encoding::Protobuf => encode_response(rejected, message),
        Encoding::Json => {
            let body = if rejected > 0 {
                serde_json::json!({ "partialSuccess": {
                    rejected_field: rejected.to_string(),
                    "errorMessage": message,
                }})
            } else {
                serde_json::json!({})
            };
            body.to_string().into_bytes()
        }
    }
}

/// `google.rpc.Status`, the body of an OTLP/HTTP error response.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpcStatus {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
}

/// `google.rpc.Code.INVALID_ARGUMENT`.
pub const INVALID_ARGUMENT: i32 = 3;
/// `google.rpc.Code.UNAUTHENTICATED`.
pub const UNAUTHENTICATED: i32 = 16;

/// An error body as OTLP/HTTP receivers send it: a `google.rpc.Status` in
/// the request's encoding (JSON when the encoding is unknown, so a person
/// with curl can read it).
pub fn error_body(encoding: Option<Encoding>, code: i32, message: &str) -> (Vec<u8>, &'static str) {
    match encoding {
        Some(Encoding::Protobuf) => (
            RpcStatus {
                code,
                message: message.to_owned(),
            }
            .encode_to_vec(),
            PROTOBUF,
        ),
        _ => (
            serde_json::json!({ "code": code, "message": message })
                .to_string()
                .into_bytes(),
            JSON,
        ),
    }
}

fn row(service: &str, span: proto::Span) -> Option<SpanRow> {
    let trace_id = hex_id(&span.trace_id, 16)?;
    let span_id = hex_id(&span.span_id, 8)?;
    let parent_span_id = if span.parent_span_id.is_empty() {
        None
    } else {
        Some(hex_id(&span.parent_span_id, 8)?)
    };
    let events: Vec<Value> = span
        .events
        .iter()
        .map(|event| {
            serde_json::json!({
                "name": event.name,
                "timeUnixNano": event.time_unix_nano.to_string(),
                "attributes": attributes_json(&event.attributes),
            })
        })
        .collect();
    let status = span.status.unwrap_or_default();
    Some(SpanRow {
        trace_id,
        span_id,
        parent_span_id,
        service: service.to_owned(),
        name: span.name,
        kind: i64::from(span.kind),
        start_ns: pad_ns(span.start_time_unix_nano),
        end_ns: pad_ns(span.end_time_unix_nano.max(span.start_time_unix_nano)),
        status_code: i64::from(status.code),
        status_message: status.message,
        attributes: Value::Object(attributes_json(&span.attributes)).to_string(),
        events: Value::Array(events).to_string(),
    })
}

/// Lowercase hex of an id of exactly `len` bytes, not all zero.
fn hex_id(bytes: &[u8], len: usize) -> Option<String> {
    if bytes.len() != len || bytes.iter().all(|b| *b == 0) {
        return None;
    }
    Some(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

pub fn pad_ns(ns: u64) -> String {
    format!("{ns:020}")
}

/// Parses a stored time (0 when unreadable).
pub fn parse_ns(text: &str) -> u64 {
    text.trim().parse().unwrap_or(0)
}

fn attributes_json(attributes: &[proto::KeyValue]) -> Map<String, Value> {
    attributes
        .iter()
        .map(|kv| {
            let value = kv.value.as_ref().map(json_value).unwrap_or(Value::Null);
            (kv.key.clone(), value)
        })
        .collect()
}

fn json_value(value: &proto::AnyValue) -> Value {
    use proto::any_value::Value as V;
    match &value.value {
        Some(V::StringValue(s)) => Value::String(s.clone()),
        Some(V::BoolValue(b)) => Value::Bool(*b),
        Some(V::IntValue(i)) => Value::from(*i),
        Some(V::DoubleValue(f)) => serde_json::Number::from_f64(*f)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        Some(V::BytesValue(bytes)) => {
            Value::String(bytes.iter().map(|b| format!("{b:02x}")).collect())
        }
        None => Value::Null,
    }
}

pub(crate) fn display_value(value: &proto::AnyValue) -> String {
    match json_value(value) {
        Value::String(s) => s,
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use workmesh::testing::ManualRuntime;
    use workmesh::trace::otlp::{encode_traces, EpochOffset};
    use workmesh::trace::{Resource, Sampler, SpanKind, TraceCollector};
    use workmesh::ConnectError;

    #[test]
    fn workmesh_exports_round_trip_into_rows() {
        let runtime = ManualRuntime::default();
        let collector = TraceCollector::new(&runtime, Sampler::ratio(1.0));
        let server =
            collector.start_span("shop.v1.OrderService/CreateOrder", SpanKind::Server, None);
        server.set_attribute("rpc.method", "CreateOrder");
        let client = server.child("shop.v1.CatalogService/GetProduct", SpanKind::Client);
        client.add_event("retry", vec![("workmesh.attempt".into(), 1i64.into())]);
        client.end_with::<()>(&Err(ConnectError::unavailable("down")));
        server.end();
        let spans = collector.drain();
        let resource = Resource::new("shop.v1.OrderService");
        let body = encode_traces(&resource, EpochOffset::default(), &spans).encode_to_vec();

        let decoded = decode_export(&body).unwrap();
        assert_eq!(decoded.rejected, 0);
        let [server_row, client_row] = decoded.rows.as_slice() else {
            panic!("{:?}", decoded.rows);
        };
        assert_eq!(server_row.service, "shop.v1.OrderService");
        assert_eq!(server_row.trace_id, spans[0].trace_id.to_string());
        assert_eq!(server_row.parent_span_id, None);
        assert_eq!(server_row.kind, 2);
        assert_eq!(client_row.kind, 3);
        assert_eq!(
            client_row.parent_span_id.as_deref(),
            Some(spans[0].span_id.to_string().as_str())
        );
        assert_eq!(client_row.status_code, 2);
        assert_eq!(server_row.start_ns.len(), 20);
        let attributes: Value = serde_json::from_str(&server_row.attributes).unwrap();
        assert_eq!(attributes["rpc.method"], "CreateOrder");
        let events: Value = serde_json::from_str(&client_row.events).unwrap();
        assert_eq!(events[0]["name"], "retry");
        assert_eq!(events[0]["attributes"]["workmesh.attempt"], 1);
    }

    #[test]
    fn bad_ids_are_counted_and_garbage_is_refused() {
        let request = proto::ExportTraceServiceRequest {
            resource_spans: vec![proto::ResourceSpans {
                resource: None,
                scope_spans: vec![proto::ScopeSpans {
                    scope: None,
                    spans: vec![proto::Span {
                        trace_id: vec![0; 16],
                        span_id: vec![1; 8],
                        ..Default::default()
                    }],
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        };
        let decoded = decode_export(&request.encode_to_vec()).unwrap();
        assert_eq!(decoded.rejected, 1);
        assert!(decoded.rows.is_empty());
        assert!(decode_export(b"\xff\xff\xff garbage").is_err());
        let response =
            proto::ExportTraceServiceResponse::decode(encode_response(1, "bad ids").as_slice())
                .unwrap();
        assert_eq!(response.partial_success.unwrap().rejected, 1);
        assert!(encode_response(0, "").is_empty());
    }

    #[test]
    fn content_types_pick_the_encoding_and_errors_follow_it() {
        let of = Encoding::from_content_type;
        assert_eq!(of("application/x-protobuf"), Some(Encoding::Protobuf));
        assert_eq!(of("Application/JSON; charset=utf-8"), Some(Encoding::Json));
        assert_eq!(of("text/plain"), None);
        assert_eq!(of(""), None);
        let (body, content_type) = error_body(Some(Encoding::Protobuf), 3, "bad");
        assert_eq!(content_type, PROTOBUF);
        let status = RpcStatus::decode(body.as_slice()).unwrap();
        assert_eq!((status.code, status.message.as_str()), (3, "bad"));
        let (body, content_type) = error_body(None, 3, "bad");
        assert_eq!(content_type, JSON);
        let status: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(status, serde_json::json!({"code": 3, "message": "bad"}));
        let partial = export_response(Encoding::Json, 2, "rejectedSpans", "ids");
        let partial: Value = serde_json::from_slice(&partial).unwrap();
        assert_eq!(partial["partialSuccess"]["rejectedSpans"], "2");
        assert_eq!(
            export_response(Encoding::Json, 0, "rejectedSpans", ""),
            b"{}"
        );
    }

    #[test]
    fn times_sort_as_text() {
        assert!(pad_ns(999) < pad_ns(1_000));
        assert_eq!(
            parse_ns(&pad_ns(1_795_000_000_123_456_789)),
            1_795_000_000_123_456_789
        );
    }
}
