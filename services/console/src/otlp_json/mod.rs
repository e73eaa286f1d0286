//! OTLP/JSON in: the JSON encoding of the OTLP/HTTP export requests, turned
//! into the same prost messages the protobuf path decodes, so both encodings
//! share one conversion to rows.
//!
//! The OTLP/JSON mapping differs from plain proto3 JSON in three places, all
//! handled here: trace and span ids are **hex** strings (not base64), enums
//! are **integers**, and 64-bit integers may be strings or numbers. Field
//! names are lowerCamelCase; the proto names (`snake_case`) are accepted
//! too, as proto3 JSON parsers do. Unknown fields are ignored.
//!
//! A body that does not fit the mapping (wrong JSON type, ids that are not
//! hex, numbers out of range) is an `Err` naming the field's path, e.g.
//! `resourceSpans[0].scopeSpans[0].spans[3].startTimeUnixNano: expected an
//! unsigned 64-bit integer`.

use base64::Engine;
use serde_json::{Map, Value};
use workmesh::trace::otlp::proto;

type Obj = Map<String, Value>;

/// Parses an `ExportTraceServiceRequest` in OTLP/JSON.
pub fn trace_request(body: &[u8]) -> Result<proto::ExportTraceServiceRequest, String> {
    let root = parse_root(body)?;
    let mut request = proto::ExportTraceServiceRequest::default();
    for (i, rs) in array(&root, "resourceSpans", "resource_spans", "")?
        .iter()
        .enumerate()
    {
        let path = format!("resourceSpans[{i}]");
        let rs = object(rs, &path)?;
        let mut out = proto::ResourceSpans {
            resource: resource(rs, &path)?,
            ..Default::default()
        };
        for (j, ss) in array(rs, "scopeSpans", "scope_spans", &path)?
            .iter()
            .enumerate()
        {
            let path = format!("{path}.scopeSpans[{j}]");
            let ss = object(ss, &path)?;
            let mut scope = proto::ScopeSpans::default();
            for (k, span) in array(ss, "spans", "spans", &path)?.iter().enumerate() {
                scope
                    .spans
                    .push(self::span(span, &format!("{path}.spans[{k}]"))?);
            }
            out.scope_spans.push(scope);
        }
        request.resource_spans.push(out);
    }
    Ok(request)
}

/// Parses an `ExportMetricsServiceRequest` in OTLP/JSON (sums and
/// histograms; other metric types are skipped, as the protobuf decoder
/// skips them).
pub fn metrics_request(body: &[u8]) -> Result<proto::ExportMetricsServiceRequest, String> {
    let root = parse_root(body)?;
    let mut request = proto::ExportMetricsServiceRequest::default();
    for (i, rm) in array(&root, "resourceMetrics", "resource_metrics", "")?
        .iter()
        .enumerate()
    {
        let path = format!("resourceMetrics[{i}]");
        let rm = object(rm, &path)?;
        let mut out = proto::ResourceMetrics {
            resource: resource(rm, &path)?,
            ..Default::default()
        };
        for (j, sm) in array(rm, "scopeMetrics", "scope_metrics", &path)?
            .iter()
            .enumerate()
        {
            let path = format!("{path}.scopeMetrics[{j}]");
            let sm = object(sm, &path)?;
            let mut scope = proto::ScopeMetrics::default();
            for (k, metric) in array(sm, "metrics", "metrics", &path)?.iter().enumerate() {
                scope
                    .metrics
                    .push(self::metric(metric, &format!("{path}.metrics[{k}]"))?);
            }
            out.scope_metrics.push(scope);
        }
        request.resource_metrics.push(out);
    }
    Ok(request)
}

fn parse_root(body: &[u8]) -> Result<Obj, String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("body is not valid JSON: {e}"))?;
    match value {
        Value::Object(map) => Ok(map),
        _ => Err("body must be a JSON object".to_owned()),
    }
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_owned()
    } else {
        format!("{path}.{field}")
    }
}

/// A field by its JSON name or its proto name; `null` counts as absent.
fn field<'a>(obj: &'a Obj, camel: &str, snake: &str) -> Option<&'a Value> {
    obj.get(camel)
        .or_else(|| obj.get(snake))
        .filter(|v| !v.is_null())
}

fn object<'a>(value: &'a Value, path: &str) -> Result<&'a Obj, String> {
    value
        .as_object()
        .ok_or_else(|| format!("{path}: expected an object"))
}

fn array<'a>(obj: &'a Obj, camel: &str, snake: &str, path: &str) -> Result<&'a [Value], String> {
    match field(obj, camel, snake) {
        None => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(_) => Err(format!("{}: expected an array", join(path, camel))),
    }
}

fn string(obj: &Obj, camel: &str, snake: &str, path: &str) -> Result<String, String> {
    match field(obj, camel, snake) {
        None => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(format!("{}: expected a string", join(path, camel))),
    }
}

/// A 64-bit unsigned integer: a JSON number or a decimal string.
fn u64_field(obj: &Obj, camel: &str, snake: &str, path: &str) -> Result<u64, String> {
    let bad = || format!("{}: expected an unsigned 64-bit integer", join(path, camel));
    match field(obj, camel, snake) {
        None => Ok(0),
        Some(Value::Number(n)) => n.as_u64().ok_or_else(bad),
        Some(Value::String(s)) => s.trim().parse().map_err(|_| bad()),
        Some(_) => Err(bad()),
    }
}

fn i64_value(value: &Value, path: &str) -> Result<i64, String> {
    let bad = || format!("{path}: expected a 64-bit integer");
    match value {
        Value::Number(n) => n.as_i64().ok_or_else(bad),
        Value::String(s) => s.trim().parse().map_err(|_| bad()),
        _ => Err(bad()),
    }
}

fn f64_value(value: &Value, path: &str) -> Result<f64, String> {
    match value {
        Value::Number(n) => n
            .as_f64()
            .ok_or_else(|| format!("{path}: expected a number")),
        // proto3 JSON spells non-finite doubles as strings.
        Value::String(s) => match s.as_str() {
            "NaN" => Ok(f64::NAN),
            "Infinity" => Ok(f64::INFINITY),
            "-Infinity" => Ok(f64::NEG_INFINITY),
            other => other
                .trim()
                .parse()
                .map_err(|_| format!("{path}: expected a number")),
        },
        _ => Err(format!("{path}: expected a number")),
    }
}

fn f64_field(obj: &Obj, camel: &str, snake: &str, path: &str) -> Result<Option<f64>, String> {
    field(obj, camel, snake)
        .map(|v| f64_value(v, &join(path, camel)))
        .transpose()
}

/// An enum: its number (the OTLP/JSON form) or, leniently, its proto name
/// looked up in `names` (index = number).
fn enum_field(
    obj: &Obj,
    camel: &str,
    snake: &str,
    path: &str,
    names: &[&str],
) -> Result<i32, String> {
    let bad = || format!("{}: expected an enum number", join(path, camel));
    match field(obj, camel, snake) {
        None => Ok(0),
        Some(Value::Number(n)) => n
            .as_i64()
            .and_then(|n| i32::try_from(n).ok())
            .ok_or_else(bad),
        Some(Value::String(s)) => names
            .iter()
            .position(|name| name == s)
            .and_then(|i| i32::try_from(i).ok())
            .ok_or_else(bad),
        Some(_) => Err(bad()),
    }
}

/// A trace or span id: hex (any case). Empty is "absent"; the length is
/// checked later, where a wrong one rejects only that span.
fn hex_id(obj: &Obj, camel: &str, snake: &str, path: &str) -> Result<Vec<u8>, String> {
    let text = string(obj, camel, snake, path)?;
    let bad = || format!("{}: expected a hex string, got {text:?}", join(path, camel));
    if !text.len().is_multiple_of(2) {
        return Err(bad());
    }
    (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                .ok_or_else(bad)
        })
        .collect()
}

fn resource(obj: &Obj, path: &str) -> Result<Option<proto::Resource>, String> {
    let Some(value) = field(obj, "resource", "resource") else {
        return Ok(None);
    };
    let path = join(path, "resource");
    let resource = object(value, &path)?;
    Ok(Some(proto::Resource {
        attributes: attributes(resource, &path)?,
        dropped_attributes_count: 0,
    }))
}

fn attributes(obj: &Obj, path: &str) -> Result<Vec<proto::KeyValue>, String> {
    array(obj, "attributes", "attributes", path)?
        .iter()
        .enumerate()
        .map(|(i, kv)| key_value(kv, &format!("{}[{i}]", join(path, "attributes"))))
        .collect()
}

fn key_value(value: &Value, path: &str) -> Result<proto::KeyValue, String> {
    let kv = object(value, path)?;
    Ok(proto::KeyValue {
        key: string(kv, "key", "key", path)?,
        value: field(kv, "value", "value")
            .map(|v| any_value(v, &join(path, "value")))
            .transpose()?,
    })
}

fn any_value(value: &Value, path: &str) -> Result<proto::AnyValue, String> {
    use proto::any_value::Value as V;
    let obj = object(value, path)?;
    let inner = if let Some(v) = field(obj, "stringValue", "string_value") {
        V::StringValue(
            v.as_str()
                .ok_or_else(|| format!("{path}.stringValue: expected a string"))?
                .to_owned(),
        )
    } else if let Some(v) = field(obj, "boolValue", "bool_value") {
        V::BoolValue(
            v.as_bool()
                .ok_or_else(|| format!("{path}.boolValue: expected a boolean"))?,
        )
    } else if let Some(v) = field(obj, "intValue", "int_value") {
        V::IntValue(i64_value(v, &join(path, "intValue"))?)
    } else if let Some(v) = field(obj, "doubleValue", "double_value") {
        V::DoubleValue(f64_value(v, &join(path, "doubleValue"))?)
    } else if let Some(v) = field(obj, "bytesValue", "bytes_value") {
        let text = v
            .as_str()
            .ok_or_else(|| format!("{path}.bytesValue: expected a base64 string"))?;
        V::BytesValue(
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(|_| format!("{path}.bytesValue: expected a base64 string"))?,
        )
    } else if let Some(v) = field(obj, "arrayValue", "array_value")
        .or_else(|| field(obj, "kvlistValue", "kvlist_value"))
    {
        // Arrays and maps are kept as their JSON text.
        V::StringValue(v.to_string())
    } else {
        return Ok(proto::AnyValue { value: None });
    };
    Ok(proto::AnyValue { value: Some(inner) })
}

const SPAN_KINDS: [&str; 6] = [
    "SPAN_KIND_UNSPECIFIED",
    "SPAN_KIND_INTERNAL",
    "SPAN_KIND_SERVER",
    "SPAN_KIND_CLIENT",
    "SPAN_KIND_PRODUCER",
    "SPAN_KIND_CONSUMER",
];
const STATUS_CODES: [&str; 3] = ["STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR"];
const TEMPORALITIES: [&str; 3] = [
    "AGGREGATION_TEMPORALITY_UNSPECIFIED",
    "AGGREGATION_TEMPORALITY_DELTA",
    "AGGREGATION_TEMPORALITY_CUMULATIVE",
];

fn span(value: &Value, path: &str) -> Result<proto::Span, String> {
    let s = object(value, path)?;
    let status = match field(s, "status", "status") {
        None => None,
        Some(v) => {
            let path = join(path, "status");
            let st = object(v, &path)?;
            Some(proto::Status {
                message: string(st, "message", "message", &path)?,
                code: enum_field(st, "code", "code", &path, &STATUS_CODES)?,
            })
        }
    };
    let events = array(s, "events", "events", path)?
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let path = format!("{path}.events[{i}]");
            let e = object(e, &path)?;
            Ok(proto::SpanEvent {
                time_unix_nano: u64_field(e, "timeUnixNano", "time_unix_nano", &path)?,
                name: string(e, "name", "name", &path)?,
                attributes: attributes(e, &path)?,
                dropped_attributes_count: 0,
            })
        })
        .collect::<Result<_, String>>()?;
    Ok(proto::Span {
        trace_id: hex_id(s, "traceId", "trace_id", path)?,
        span_id: hex_id(s, "spanId", "span_id", path)?,
        trace_state: string(s, "traceState", "trace_state", path)?,
        parent_span_id: hex_id(s, "parentSpanId", "parent_span_id", path)?,
        flags: 0,
        name: string(s, "name", "name", path)?,
        kind: enum_field(s, "kind", "kind", path, &SPAN_KINDS)?,
        start_time_unix_nano: u64_field(s, "startTimeUnixNano", "start_time_unix_nano", path)?,
        end_time_unix_nano: u64_field(s, "endTimeUnixNano", "end_time_unix_nano", path)?,
        attributes: attributes(s, path)?,
        dropped_attributes_count: 0,
        events,
        dropped_events_count: 0,
        status,
    })
}

fn metric(value: &Value, path: &str) -> Result<proto::Metric, String> {
    let m = object(value, path)?;
    let data = if let Some(sum) = field(m, "sum", "sum") {
        let path = join(path, "sum");
        let sum = object(sum, &path)?;
        let data_points = array(sum, "dataPoints", "data_points", &path)?
            .iter()
            .enumerate()
            .map(|(i, p)| number_point(p, &format!("{path}.dataPoints[{i}]")))
            .collect::<Result<_, String>>()?;
        Some(proto::metric::Data::Sum(proto::Sum {
            data_points,
            aggregation_temporality: enum_field(
                sum,
                "aggregationTemporality",
                "aggregation_temporality",
                &path,
                &TEMPORALITIES,
            )?,
            is_monotonic: field(sum, "isMonotonic", "is_monotonic")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        }))
    } else if let Some(histogram) = field(m, "histogram", "histogram") {
        let path = join(path, "histogram");
        let h = object(histogram, &path)?;
        let data_points = array(h, "dataPoints", "data_points", &path)?
            .iter()
            .enumerate()
            .map(|(i, p)| histogram_point(p, &format!("{path}.dataPoints[{i}]")))
            .collect::<Result<_, String>>()?;
        Some(proto::metric::Data::Histogram(proto::Histogram {
            data_points,
            aggregation_temporality: enum_field(
                h,
                "aggregationTemporality",
                "aggregation_temporality",
                &path,
                &TEMPORALITIES,
            )?,
        }))
    } else {
        None
    };
    Ok(proto::Metric {
        name: string(m, "name", "name", path)?,
        description: string(m, "description", "description", path)?,
        unit: string(m, "unit", "unit", path)?,
        data,
    })
}

fn number_point(value: &Value, path: &str) -> Result<proto::NumberDataPoint, String> {
    use proto::number_data_point::Value as V;
    let p = object(value, path)?;
    let value = if let Some(v) = field(p, "asInt", "as_int") {
        Some(V::AsInt(i64_value(v, &join(path, "asInt"))?))
    } else {
        f64_field(p, "asDouble", "as_double", path)?.map(V::AsDouble)
    };
    Ok(proto::NumberDataPoint {
        attributes: attributes(p, path)?,
        start_time_unix_nano: u64_field(p, "startTimeUnixNano", "start_time_unix_nano", path)?,
        time_unix_nano: u64_field(p, "timeUnixNano", "time_unix_nano", path)?,
        flags: 0,
        value,
    })
}

fn histogram_point(value: &Value, path: &str) -> Result<proto::HistogramDataPoint, String> {
    let p = object(value, path)?;
    let bucket_counts = array(p, "bucketCounts", "bucket_counts", path)?
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let path = format!("{path}.bucketCounts[{i}]");
            u64::try_from(i64_value(v, &path)?).map_err(|_| format!("{path}: negative count"))
        })
        .collect::<Result<_, String>>()?;
    let explicit_bounds = array(p, "explicitBounds", "explicit_bounds", path)?
        .iter()
        .enumerate()
        .map(|(i, v)| f64_value(v, &format!("{path}.explicitBounds[{i}]")))
        .collect::<Result<_, String>>()?;
    Ok(proto::HistogramDataPoint {
        attributes: attributes(p, path)?,
        start_time_unix_nano: u64_field(p, "startTimeUnixNano", "start_time_unix_nano", path)?,
        time_unix_nano: u64_field(p, "timeUnixNano", "time_unix_nano", path)?,
        count: u64_field(p, "count", "count", path)?,
        sum: f64_field(p, "sum", "sum", path)?,
        bucket_counts,
        explicit_bounds,
        flags: 0,
        min: f64_field(p, "min", "min", path)?,
        max: f64_field(p, "max", "max", path)?,
    })
}

#[cfg(test)]
mod tests;
