//! What the console shows: the JSON API's shapes and the two HTML pages
//! (trace list, waterfall). Plain server-rendered HTML with inline CSS.

use std::fmt::Write;
use workmesh::trace::tree::TreeKey;

use serde::Deserialize;
use serde_json::{json, Value};

use crate::otlp::{parse_ns, SpanRow};

/// One trace in the list, as the summary query returns it.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct TraceRow {
    pub trace_id: String,
    pub start_ns: String,
    pub end_ns: String,
    pub span_count: i64,
    pub error: i64,
    pub root_name: Option<String>,
    pub root_service: Option<String>,
}

fn duration_ms(start: &str, end: &str) -> f64 {
    parse_ns(end).saturating_sub(parse_ns(start)) as f64 / 1e6
}

fn unpadded(ns: &str) -> String {
    parse_ns(ns).to_string()
}

pub fn kind_name(kind: i64) -> &'static str {
    match kind {
        1 => "INTERNAL",
        2 => "SERVER",
        3 => "CLIENT",
        4 => "PRODUCER",
        5 => "CONSUMER",
        _ => "UNSPECIFIED",
    }
}

pub fn trace_json(row: &TraceRow) -> Value {
    json!({
        "traceId": row.trace_id,
        "rootName": row.root_name,
        "rootService": row.root_service,
        "startTimeUnixNano": unpadded(&row.start_ns),
        "durationMs": duration_ms(&row.start_ns, &row.end_ns),
        "spanCount": row.span_count,
        "error": row.error != 0,
    })
}

pub fn span_json(row: &SpanRow) -> Value {
    let parse = |text: &str, empty: Value| serde_json::from_str(text).unwrap_or(empty);
    json!({
        "traceId": row.trace_id,
        "spanId": row.span_id,
        "parentSpanId": row.parent_span_id,
        "service": row.service,
        "name": row.name,
        "kind": kind_name(row.kind),
        "startTimeUnixNano": unpadded(&row.start_ns),
        "endTimeUnixNano": unpadded(&row.end_ns),
        "durationMs": duration_ms(&row.start_ns, &row.end_ns),
        "status": { "code": row.status_code, "message": row.status_message },
        "attributes": parse(&row.attributes, json!({})),
        "events": parse(&row.events, json!([])),
    })
}

/// Spans in tree order with their depth (see [`workmesh::trace::tree::tree_order`]):
/// spans whose parent is not in the trace (a caller outside the mesh, or one
/// that did not export) are roots.
pub fn tree_order(spans: &[SpanRow]) -> Vec<(usize, &SpanRow)> {
    workmesh::trace::tree::tree_order(spans, |s| TreeKey {
        span_id: &s.span_id,
        parent_span_id: s.parent_span_id.as_deref(),
        start: &s.start_ns,
    })
}

pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `HH:MM:SS.mmm` UTC of a Unix-nanosecond time.
fn time_of_day(ns: &str) -> String {
    let ms = parse_ns(ns) / 1_000_000;
    let day_ms = ms % 86_400_000;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        day_ms / 3_600_000,
        day_ms / 60_000 % 60,
        day_ms / 1_000 % 60,
        day_ms % 1_000
    )
}

const STYLE: &str = "body{font:14px system-ui,sans-serif;margin:2rem;color:#222}\
table{border-collapse:collapse;width:100%}td,th{padding:4px 8px;border-bottom:1px solid #ddd;text-align:left}\
.err{color:#b00020;font-weight:600}a{color:#0645ad}code{font-size:12px}\
.bar{position:relative;height:14px;background:#f3f3f3;min-width:300px}\
.bar span{position:absolute;top:0;height:14px;background:#4a7bd0}\
.bar span.e{background:#d04a4a}.k{color:#666;font-size:12px}";

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head><body>{body}</body></html>",
        escape(title)
    )
}

/// `GET /`: recent traces.
pub fn list_page(traces: &[TraceRow], service: &str) -> String {
    let mut body = String::from("<h1>workmesh traces</h1>");
    let _ = write!(
        body,
        "<form method=\"get\" action=\"/\">service <input name=\"service\" value=\"{}\"> <button>filter</button></form>",
        escape(service)
    );
    if traces.is_empty() {
        body.push_str("<p>No traces yet.</p>");
        return page("workmesh traces", &body);
    }
    body.push_str("<table><tr><th>start (UTC)</th><th>root</th><th>service</th><th>duration</th><th>spans</th><th>trace</th></tr>");
    for trace in traces {
        let class = if trace.error != 0 {
            " class=\"err\""
        } else {
            ""
        };
        let _ = write!(
            body,
            "<tr{class}><td>{}</td><td>{}</td><td>{}</td><td>{:.1} ms</td><td>{}</td><td><a href=\"/trace/{}\"><code>{}</code></a></td></tr>",
            time_of_day(&trace.start_ns),
            escape(trace.root_name.as_deref().unwrap_or("?")),
            escape(trace.root_service.as_deref().unwrap_or("?")),
            duration_ms(&trace.start_ns, &trace.end_ns),
            trace.span_count,
            escape(&trace.trace_id),
            escape(&trace.trace_id),
        );
    }
    body.push_str("</table>");
    page("workmesh traces", &body)
}

/// `GET /trace/<id>`: the waterfall.
pub fn trace_page(trace_id: &str, spans: &[SpanRow]) -> String {
    let mut body = format!(
        "<p><a href=\"/\">&larr; traces</a></p><h1>trace <code>{}</code></h1>",
        escape(trace_id)
    );
    if spans.is_empty() {
        body.push_str("<p>No spans for this trace (yet).</p>");
        return page("trace", &body);
    }
    let start = spans
        .iter()
        .map(|s| parse_ns(&s.start_ns))
        .min()
        .unwrap_or(0);
    let end = spans
        .iter()
        .map(|s| parse_ns(&s.end_ns))
        .max()
        .unwrap_or(start);
    let total = end.saturating_sub(start).max(1) as f64;
    let _ = write!(
        body,
        "<p>{} spans, {:.1} ms</p><table><tr><th>span</th><th>service</th><th>duration</th><th style=\"width:40%\">timeline</th></tr>",
        spans.len(),
        (end - start) as f64 / 1e6
    );
    for (depth, span) in tree_order(spans) {
        let s = parse_ns(&span.start_ns).saturating_sub(start) as f64;
        let d = parse_ns(&span.end_ns).saturating_sub(parse_ns(&span.start_ns)) as f64;
        let left = s / total * 100.0;
        let width = (d / total * 100.0).max(0.5).min(100.0 - left);
        let error = span.status_code == 2;
        let _ = write!(
            body,
            "<tr{}><td style=\"padding-left:{}px\">{} <span class=\"k\">{}</span>{}</td><td>{}</td><td>{:.1} ms</td><td><div class=\"bar\"><span{} style=\"left:{left:.2}%;width:{width:.2}%\"></span></div></td></tr>",
            if error { " class=\"err\"" } else { "" },
            8 + depth * 18,
            escape(&span.name),
            kind_name(span.kind),
            if span.status_message.is_empty() {
                String::new()
            } else {
                format!(" <span class=\"k\">{}</span>", escape(&span.status_message))
            },
            escape(&span.service),
            d / 1e6,
            if error { " class=\"e\"" } else { "" },
        );
    }
    body.push_str("</table>");
    page("trace", &body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otlp::pad_ns;

    fn span(id: &str, parent: Option<&str>, start: u64, end: u64) -> SpanRow {
        SpanRow {
            trace_id: "t".repeat(32),
            span_id: id.to_owned(),
            parent_span_id: parent.map(str::to_owned),
            service: "svc".to_owned(),
            name: format!("<{id}>"),
            kind: 2,
            start_ns: pad_ns(start),
            end_ns: pad_ns(end),
            status_code: 0,
            status_message: String::new(),
            attributes: "{}".to_owned(),
            events: "[]".to_owned(),
        }
    }

    #[test]
    fn tree_order_puts_children_after_parents_and_orphans_at_the_root() {
        let spans = vec![
            span("c2", Some("root"), 30, 40),
            span("root", Some("outside"), 0, 100),
            span("c1", Some("root"), 10, 20),
            span("g", Some("c1"), 11, 12),
        ];
        let order: Vec<_> = tree_order(&spans)
            .into_iter()
            .map(|(d, s)| (d, s.span_id.as_str()))
            .collect();
        assert_eq!(order, [(0, "root"), (1, "c1"), (2, "g"), (1, "c2")]);
    }

    #[test]
    fn pages_escape_names_and_json_reports_durations() {
        let spans = vec![span("a", None, 1_000_000, 3_500_000)];
        let html = trace_page("abc", &spans);
        assert!(html.contains("&lt;a&gt;"));
        assert!(!html.contains("<a>"));
        let value = span_json(&spans[0]);
        assert_eq!(value["durationMs"], 2.5);
        assert_eq!(value["startTimeUnixNano"], "1000000");
        assert_eq!(value["parentSpanId"], Value::Null);
        assert_eq!(value["kind"], "SERVER");
    }
}
