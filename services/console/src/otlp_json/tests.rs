#![allow(clippy::unwrap_used)]

use super::*;
use crate::otlp::{decode_traces, Encoding};

const TRACE: &str = r#"{
  "resourceSpans": [{
    "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "json-svc"}}]},
    "scopeSpans": [{
      "scope": {"name": "curl"},
      "spans": [{
        "traceId": "5B8EFFF798038103D269B633813FC60C",
        "spanId": "eee19b7ec3c1b174",
        "parentSpanId": "",
        "name": "shop.v1.OrderService/CreateOrder",
        "kind": 2,
        "startTimeUnixNano": "1544712660000000000",
        "endTimeUnixNano": 1544712661000000000,
        "attributes": [
          {"key": "rpc.method", "value": {"stringValue": "CreateOrder"}},
          {"key": "n", "value": {"intValue": "42"}},
          {"key": "m", "value": {"intValue": 7}},
          {"key": "f", "value": {"doubleValue": 1.5}},
          {"key": "b", "value": {"boolValue": true}},
          {"key": "raw", "value": {"bytesValue": "AQI="}},
          {"key": "list", "value": {"arrayValue": {"values": [{"stringValue": "x"}]}}}
        ],
        "events": [{"timeUnixNano": "1544712660500000000", "name": "retry", "attributes": []}],
        "status": {"code": 2, "message": "boom"}
      }, {
        "trace_id": "5b8efff798038103d269b633813fc60c",
        "span_id": "0000000000000001",
        "parent_span_id": "eee19b7ec3c1b174",
        "name": "child",
        "kind": "SPAN_KIND_CLIENT",
        "start_time_unix_nano": "1544712660100000000",
        "end_time_unix_nano": "1544712660200000000"
      }, {
        "traceId": "5b8efff798038103d269b633813fc60c",
        "spanId": "01",
        "name": "short id: refused, not fatal"
      }]
    }]
  }]
}"#;

#[test]
fn json_traces_decode_like_protobuf_ones() {
    let decoded = decode_traces(Encoding::Json, TRACE.as_bytes()).unwrap();
    assert_eq!(decoded.rejected, 1, "the span with a 1-byte id");
    let [server, child] = decoded.rows.as_slice() else {
        panic!("{:?}", decoded.rows)
    };
    assert_eq!(server.service, "json-svc");
    assert_eq!(server.trace_id, "5b8efff798038103d269b633813fc60c");
    assert_eq!(server.span_id, "eee19b7ec3c1b174");
    assert_eq!(server.parent_span_id, None);
    assert_eq!(server.kind, 2);
    assert_eq!(server.start_ns, "01544712660000000000");
    assert_eq!(server.end_ns, "01544712661000000000");
    assert_eq!(
        (server.status_code, server.status_message.as_str()),
        (2, "boom")
    );
    let attributes: Value = serde_json::from_str(&server.attributes).unwrap();
    assert_eq!(attributes["rpc.method"], "CreateOrder");
    assert_eq!(attributes["n"], 42);
    assert_eq!(attributes["m"], 7);
    assert_eq!(attributes["f"], 1.5);
    assert_eq!(attributes["b"], true);
    assert_eq!(attributes["raw"], "0102");
    assert_eq!(attributes["list"], r#"{"values":[{"stringValue":"x"}]}"#);
    let events: Value = serde_json::from_str(&server.events).unwrap();
    assert_eq!(events[0]["name"], "retry");
    assert_eq!(events[0]["timeUnixNano"], "1544712660500000000");

    assert_eq!(child.kind, 3, "enum names are accepted too");
    assert_eq!(child.parent_span_id.as_deref(), Some("eee19b7ec3c1b174"));
}

#[test]
fn json_and_protobuf_give_the_same_rows() {
    let request = trace_request(TRACE.as_bytes()).unwrap();
    let from_proto = crate::otlp::decode_export(&prost::Message::encode_to_vec(&request)).unwrap();
    assert_eq!(
        from_proto,
        decode_traces(Encoding::Json, TRACE.as_bytes()).unwrap()
    );
}

#[test]
fn bad_json_names_the_field() {
    let cases = [
        ("not json", "body is not valid JSON"),
        ("[]", "body must be a JSON object"),
        (
            r#"{"resourceSpans": {}}"#,
            "resourceSpans: expected an array",
        ),
        (
            r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz"}]}]}]}"#,
            "resourceSpans[0].scopeSpans[0].spans[0].traceId: expected a hex string",
        ),
        (
            r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"startTimeUnixNano":"-5"}]}]}]}"#,
            "spans[0].startTimeUnixNano: expected an unsigned 64-bit integer",
        ),
        (
            r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"kind":"SERVER"}]}]}]}"#,
            "spans[0].kind: expected an enum number",
        ),
        (
            r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"k","value":{"intValue":"x"}}]}}]}"#,
            "resourceSpans[0].resource.attributes[0].value.intValue: expected a 64-bit integer",
        ),
    ];
    for (body, expected) in cases {
        let error = decode_traces(Encoding::Json, body.as_bytes()).unwrap_err();
        assert!(error.contains(expected), "{body}: {error}");
    }
    // An empty request is valid and stores nothing.
    assert_eq!(
        decode_traces(Encoding::Json, b"{}").unwrap(),
        Default::default()
    );
}

#[test]
fn json_metrics_parse_sums_and_histograms() {
    let body = r#"{"resourceMetrics":[{
      "resource":{"attributes":[{"key":"service.name","value":{"stringValue":"svc"}}]},
      "scopeMetrics":[{"metrics":[
        {"name":"rpc.server.requests","sum":{"aggregationTemporality":2,"isMonotonic":true,
          "dataPoints":[{"attributes":[{"key":"rpc.method","value":{"stringValue":"M"}}],
            "startTimeUnixNano":"1","timeUnixNano":"2","asInt":"5"}]}},
        {"name":"rpc.server.duration","histogram":{"aggregationTemporality":1,
          "dataPoints":[{"startTimeUnixNano":"1","timeUnixNano":"2","count":"3","sum":12.5,
            "bucketCounts":["1",2],"explicitBounds":[10],"min":1,"max":9}]}},
        {"name":"a.gauge","gauge":{"dataPoints":[]}}
      ]}]}]}"#;
    let request = metrics_request(body.as_bytes()).unwrap();
    let metrics = &request.resource_metrics[0].scope_metrics[0].metrics;
    assert_eq!(metrics.len(), 3);
    let Some(proto::metric::Data::Sum(sum)) = &metrics[0].data else {
        panic!("{:?}", metrics[0])
    };
    assert_eq!(sum.aggregation_temporality, 2);
    assert_eq!(
        sum.data_points[0].value,
        Some(proto::number_data_point::Value::AsInt(5))
    );
    let Some(proto::metric::Data::Histogram(h)) = &metrics[1].data else {
        panic!("{:?}", metrics[1])
    };
    let point = &h.data_points[0];
    assert_eq!((point.count, point.sum), (3, Some(12.5)));
    assert_eq!(point.bucket_counts, [1, 2]);
    assert_eq!(point.explicit_bounds, [10.0]);
    assert_eq!(metrics[2].data, None, "gauges are skipped");
    let error = metrics_request(br#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"histogram":{"dataPoints":[{"bucketCounts":["-1"]}]}}]}]}]}"#).unwrap_err();
    assert!(error.contains("bucketCounts[0]: negative count"), "{error}");
}
