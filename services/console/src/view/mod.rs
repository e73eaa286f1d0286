//! What the console shows: the JSON API's shapes and the HTML pages (trace
//! list, waterfall, service map, metrics, registry, sign-in). Plain
//! server-rendered HTML with a small inline style sheet: no scripts, no
//! external assets; every filter is a GET form.

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

const STYLE: &str = "body{font:14px system-ui,sans-serif;margin:0 2rem 2rem;color:#222}\
nav{display:flex;gap:1rem;align-items:center;padding:.6rem 0;border-bottom:1px solid #ddd;margin-bottom:1rem}\
nav a.on{font-weight:700;text-decoration:none;color:#222}nav form{margin-left:auto}\
table{border-collapse:collapse;width:100%}td,th{padding:4px 8px;border-bottom:1px solid #ddd;text-align:left}\
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}\
.err{color:#b00020;font-weight:600}a{color:#0645ad}code{font-size:12px}\
.bar{position:relative;height:14px;background:#f3f3f3;min-width:300px}\
.bar span{position:absolute;top:0;height:14px;background:#4a7bd0}\
.bar span.e{background:#d04a4a}.k{color:#666;font-size:12px}\
form.f{display:flex;flex-wrap:wrap;gap:.5rem;align-items:end;margin-bottom:1rem}\
form.f label{display:flex;flex-direction:column;font-size:12px;color:#555}\
.msg{padding:.5rem .8rem;background:#fdecee;border:1px solid #f3b5bd;color:#7a0012;margin:1rem 0}\
svg{max-width:100%;height:auto;margin:1rem 0}\
#waterfall td{vertical-align:top}#waterfall summary{cursor:pointer}\
#waterfall .sd{font-weight:400;color:#222;max-width:48rem;margin:.4rem 0 .6rem;padding:.4rem .6rem;background:#fafafa;border-left:3px solid #c8d6ef}\
.sd h4{margin:.5rem 0 .2rem;font-size:12px;color:#555}.sd p{margin:0}\
dl.kv{display:grid;grid-template-columns:max-content 1fr;gap:1px 12px;margin:0;font:12px ui-monospace,monospace}\
dl.kv dt{color:#555}dl.kv dd{margin:0;white-space:pre-wrap;overflow-wrap:anywhere}\
ol.ev{margin:0;padding-left:1.2rem}ol.ev li{margin:.2rem 0}.t{color:#555;font:12px ui-monospace,monospace}\
code.c{background:#fdecee;color:#b00020;padding:0 4px;border-radius:3px}";

/// The pages of the top navigation: (path, label).
const PAGES: [(&str, &str); 4] = [
    ("/", "Traces"),
    ("/map", "Service map"),
    ("/metrics", "Metrics"),
    ("/registry", "Registry"),
];

/// A whole page; `active` is the path of the navigation entry to mark, or
/// `""` for a page outside the navigation (login).
pub fn page(title: &str, active: &str, body: &str) -> String {
    let mut nav = String::from("<nav><strong>workmesh</strong>");
    if !active.is_empty() {
        for (path, label) in PAGES {
            let class = if path == active { " class=\"on\"" } else { "" };
            let _ = write!(nav, "<a href=\"{path}\"{class}>{label}</a>");
        }
    }
    nav.push_str("</nav>");
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
         <title>{}</title><style>{STYLE}</style></head><body>{nav}{body}</body></html>",
        escape(title)
    )
}

/// A red box with a message (a bad filter, an unreachable registry).
pub fn message(text: &str) -> String {
    format!("<p class=\"msg\" role=\"alert\">{}</p>", escape(text))
}

/// The `since` choices of the forms (no "any time": an unbounded list or
/// map would scan the whole retention window).
const SINCE: [(&str, &str); 6] = [
    ("5m", "last 5 min"),
    ("15m", "last 15 min"),
    ("1h", "last hour"),
    ("6h", "last 6 h"),
    ("24h", "last 24 h"),
    ("7d", "last 7 days"),
];

fn since_select(current: &str) -> String {
    let mut out = String::from("<label>time<select name=\"since\">");
    let mut known = false;
    for (value, label) in SINCE {
        let selected = if value == current {
            known = true;
            " selected"
        } else {
            ""
        };
        let _ = write!(out, "<option value=\"{value}\"{selected}>{label}</option>");
    }
    if !known {
        let current = escape(current);
        let _ = write!(
            out,
            "<option value=\"{current}\" selected>last {current}</option>"
        );
    }
    out.push_str("</select></label>");
    out
}

/// The raw query values the list form shows again (valid or not).
#[derive(Debug, Default)]
pub struct ListForm {
    pub service: String,
    pub method: String,
    pub status: String,
    pub min_duration_ms: String,
    pub since: String,
}

fn list_form(form: &ListForm) -> String {
    let mut status = String::from("<label>status<select name=\"status\">");
    let mut known = false;
    for (value, label) in [("", "any"), ("ok", "ok"), ("error", "error")]
        .into_iter()
        .chain(workmesh::Code::ALL.iter().map(|c| (c.as_str(), c.as_str())))
    {
        let selected = if value == form.status {
            known = true;
            " selected"
        } else {
            ""
        };
        let _ = write!(
            status,
            "<option value=\"{value}\"{selected}>{label}</option>"
        );
    }
    if !known {
        let value = escape(&form.status);
        let _ = write!(
            status,
            "<option value=\"{value}\" selected>{value}</option>"
        );
    }
    status.push_str("</select></label>");
    format!(
        "<form class=\"f\" method=\"get\" action=\"/\">\
         <label>service<input name=\"service\" value=\"{}\" placeholder=\"shop.v1.OrderService\"></label>\
         <label>method<input name=\"method\" value=\"{}\" placeholder=\"CreateOrder\"></label>\
         {status}<label>min ms<input name=\"min_duration_ms\" value=\"{}\" size=\"6\" inputmode=\"decimal\"></label>\
         {}<button>filter</button></form>",
        escape(&form.service),
        escape(&form.method),
        escape(&form.min_duration_ms),
        since_select(&form.since),
    )
}

/// `GET /`: recent traces, filtered; `error` is a bad filter's message
/// (the list is then empty).
pub fn list_page(traces: &[TraceRow], form: &ListForm, error: Option<&str>) -> String {
    let mut body = String::from("<h1>Traces</h1>");
    body.push_str(&list_form(form));
    if let Some(error) = error {
        body.push_str(&message(error));
        return page("workmesh traces", "/", &body);
    }
    if traces.is_empty() {
        body.push_str("<p>No traces match.</p>");
        return page("workmesh traces", "/", &body);
    }
    body.push_str("<table><tr><th>start (UTC)</th><th>root</th><th>service</th><th class=\"n\">duration</th><th class=\"n\">spans</th><th>trace</th></tr>");
    for trace in traces {
        let class = if trace.error != 0 {
            " class=\"err\""
        } else {
            ""
        };
        let _ = write!(
            body,
            "<tr{class}><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{:.1} ms</td><td class=\"n\">{}</td><td><a href=\"/trace/{}\"><code>{}</code></a></td></tr>",
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
    page("workmesh traces", "/", &body)
}

/// `GET /map`: the service map as a graph and a table.
pub fn map_page(edges: &[crate::map::Edge], since: &str, error: Option<&str>) -> String {
    let mut body = format!(
        "<h1>Service map</h1><form class=\"f\" method=\"get\" action=\"/map\">{}<button>show</button></form>",
        since_select(since)
    );
    if let Some(error) = error {
        body.push_str(&message(error));
        return page("workmesh service map", "/map", &body);
    }
    if edges.is_empty() {
        body.push_str("<p>No calls between services in this window.</p>");
        return page("workmesh service map", "/map", &body);
    }
    body.push_str(&crate::map::svg(edges));
    body.push_str("<table id=\"edges\"><tr><th>caller</th><th>callee</th><th class=\"n\">calls</th><th class=\"n\">rate</th><th class=\"n\">errors</th><th class=\"n\">p50</th><th class=\"n\">p99</th></tr>");
    for edge in edges {
        let class = if edge.errors > 0 {
            " class=\"err\""
        } else {
            ""
        };
        let _ = write!(
            body,
            "<tr{class}><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{:.1}%</td><td class=\"n\">{:.1} ms</td><td class=\"n\">{:.1} ms</td></tr>",
            escape(&edge.caller),
            escape(&edge.callee),
            edge.calls,
            rate(edge.rate),
            edge.error_rate * 100.0,
            edge.p50_ms,
            edge.p99_ms,
        );
    }
    body.push_str("</table>");
    page("workmesh service map", "/map", &body)
}

/// A rate readable at any size: per second from 1/s up, per minute below.
pub fn rate(per_second: f64) -> String {
    if per_second >= 1.0 {
        format!("{per_second:.1}/s")
    } else {
        format!("{:.2}/min", per_second * 60.0)
    }
}

fn ms(value: Option<f64>) -> String {
    value.map_or_else(|| "–".to_owned(), |v| format!("{v:.1} ms"))
}

/// `GET /metrics`: RED per method from the exported metrics.
pub fn metrics_page(
    methods: &[crate::metrics::MethodRed],
    since: &str,
    error: Option<&str>,
) -> String {
    let mut body = format!(
        "<h1>Metrics</h1><form class=\"f\" method=\"get\" action=\"/metrics\">{}<button>show</button></form>",
        since_select(since)
    );
    if let Some(error) = error {
        body.push_str(&message(error));
        return page("workmesh metrics", "/metrics", &body);
    }
    if methods.is_empty() {
        body.push_str("<p>No RED metrics in this window (Workers export them to <code>/v1/metrics</code>).</p>");
        return page("workmesh metrics", "/metrics", &body);
    }
    body.push_str("<table><tr><th>side</th><th>reported by</th><th>service</th><th>method</th><th class=\"n\">requests</th><th class=\"n\">rate</th><th class=\"n\">errors</th><th class=\"n\">p50</th><th class=\"n\">p99</th><th class=\"n\">mean</th></tr>");
    for m in methods {
        let class = if m.errors > 0.0 { " class=\"err\"" } else { "" };
        let _ = write!(
            body,
            "<tr{class}><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{:.1}%{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            escape(&m.side),
            escape(&m.reporter),
            escape(&m.service),
            escape(&m.method),
            m.requests,
            rate(m.rate),
            m.error_rate * 100.0,
            m.errors_by_code
                .iter()
                .map(|(code, n)| format!(" <span class=\"k\">{} ×{n}</span>", escape(code)))
                .collect::<String>(),
            ms(m.p50_ms),
            ms(m.p99_ms),
            ms(m.mean_ms),
        );
    }
    body.push_str("</table>");
    page("workmesh metrics", "/metrics", &body)
}

/// `GET /registry`: the registry's instances, or why they could not be read.
pub fn registry_page(
    instances: Result<&[workmesh::proto::v1::Instance], &str>,
    now_ms: i64,
) -> String {
    use workmesh::proto::v1::{instance::Endpoint, BreakerState, HealthState};
    let mut body = String::from("<h1>Registry</h1>");
    let instances = match instances {
        Ok(instances) => instances,
        Err(error) => {
            body.push_str(&message(&format!("The registry is unreachable: {error}")));
            return page("workmesh registry", "/registry", &body);
        }
    };
    if instances.is_empty() {
        body.push_str("<p>No instances registered.</p>");
        return page("workmesh registry", "/registry", &body);
    }
    body.push_str("<table><tr><th>service</th><th>instance</th><th>version</th><th>endpoint</th><th>health</th><th class=\"n\">weight</th><th>draining</th><th>ejection</th><th>breaker (reported)</th><th class=\"n\">ok / failed</th><th class=\"n\">heartbeat</th></tr>");
    for i in instances {
        let health = match HealthState::try_from(i.health) {
            Ok(HealthState::Healthy) => "healthy",
            Ok(HealthState::Unhealthy) => "unhealthy",
            _ => "unknown",
        };
        let breaker = match BreakerState::try_from(i.breaker_state) {
            Ok(BreakerState::Closed) => "closed",
            Ok(BreakerState::Open) => "open",
            Ok(BreakerState::HalfOpen) => "half-open",
            _ => "–",
        };
        let endpoint = match &i.endpoint {
            Some(Endpoint::Binding(b)) => format!("binding {b}"),
            Some(Endpoint::Url(u)) => u.clone(),
            None => "–".to_owned(),
        };
        let ejection = if i.ejected_until_ms > now_ms {
            format!(
                "ejected {:.0} s more (×{})",
                (i.ejected_until_ms - now_ms) as f64 / 1000.0,
                i.times_ejected
            )
        } else if i.times_ejected > 0 {
            format!("back (ejected ×{})", i.times_ejected)
        } else {
            "–".to_owned()
        };
        let bad = health == "unhealthy" || i.ejected_until_ms > now_ms || breaker == "open";
        let _ = write!(
            body,
            "<tr{}><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{health}</td><td class=\"n\">{}</td><td>{}</td><td>{}</td><td>{breaker}</td><td class=\"n\">{} / {}</td><td class=\"n\">{:.0} s ago</td></tr>",
            if bad { " class=\"err\"" } else { "" },
            escape(&i.service),
            escape(&i.instance_id),
            escape(&i.version),
            escape(&endpoint),
            i.weight,
            if i.draining { "yes" } else { "no" },
            escape(&ejection),
            i.reported_successes,
            i.reported_failures,
            (now_ms - i.last_heartbeat_ms).max(0) as f64 / 1000.0,
        );
    }
    body.push_str("</table>");
    page("workmesh registry", "/registry", &body)
}

/// The token form of a deployed console.
pub fn login_page(error: Option<&str>) -> String {
    let mut body = String::from("<h1>Sign in</h1>");
    if let Some(error) = error {
        body.push_str(&message(error));
    }
    body.push_str(
        "<form class=\"f\" method=\"post\" action=\"/login\"><label>console token\
         <input name=\"token\" type=\"password\" autocomplete=\"current-password\" required></label>\
         <button>sign in</button></form>",
    );
    page("workmesh console: sign in", "", &body)
}

/// An attribute value as text: strings as they are, anything else as JSON.
fn value_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// `key = value` lines of an attribute object, sorted by key, escaped.
fn attributes_list(attributes: &Value) -> String {
    let Some(map) = attributes.as_object().filter(|m| !m.is_empty()) else {
        return "<p class=\"k\">none</p>".to_owned();
    };
    let mut pairs: Vec<(&String, &Value)> = map.iter().collect();
    pairs.sort_by(|a, b| a.0.cmp(b.0));
    let mut out = String::from("<dl class=\"kv\">");
    for (key, value) in pairs {
        let _ = write!(
            out,
            "<dt>{}</dt><dd>{}</dd>",
            escape(key),
            escape(&value_text(value))
        );
    }
    out.push_str("</dl>");
    out
}

/// The Connect error code a span recorded, if any.
fn connect_code(attributes: &Value) -> Option<String> {
    attributes
        .get(workmesh::trace::rpc::attr::CONNECT_ERROR_CODE)
        .map(value_text)
}

/// The expanded part of a waterfall row: ids, kind, status, attributes and
/// events (their times as offsets from the trace's start).
fn span_details(span: &SpanRow, attributes: &Value, trace_start: u64) -> String {
    let status = match span.status_code {
        1 => "OK",
        2 => "ERROR",
        _ => "UNSET",
    };
    let mut out = format!(
        "<div class=\"sd\"><dl class=\"kv\"><dt>span id</dt><dd><code>{}</code></dd><dt>parent id</dt><dd><code>{}</code></dd>\
         <dt>kind</dt><dd>{}</dd><dt>status</dt><dd>{status}{}</dd>",
        escape(&span.span_id),
        escape(span.parent_span_id.as_deref().unwrap_or("–")),
        kind_name(span.kind),
        if span.status_message.is_empty() {
            String::new()
        } else {
            format!(": {}", escape(&span.status_message))
        },
    );
    if let Some(code) = connect_code(attributes) {
        let _ = write!(
            out,
            "<dt>Connect code</dt><dd class=\"err\">{}</dd>",
            escape(&code)
        );
    }
    out.push_str("</dl><h4>attributes</h4>");
    out.push_str(&attributes_list(attributes));
    let events: Value = serde_json::from_str(&span.events).unwrap_or(Value::Null);
    let events = events.as_array().map(Vec::as_slice).unwrap_or_default();
    let _ = write!(out, "<h4>events ({})</h4>", events.len());
    if events.is_empty() {
        out.push_str("<p class=\"k\">none</p>");
    } else {
        out.push_str("<ol class=\"ev\">");
        for event in events {
            let at = event
                .get("timeUnixNano")
                .map(value_text)
                .map(|t| parse_ns(&t))
                .unwrap_or(0);
            let offset = at.saturating_sub(trace_start) as f64 / 1e6;
            let name = event.get("name").map(value_text).unwrap_or_default();
            let _ = write!(
                out,
                "<li><span class=\"t\">+{offset:.3} ms</span> <strong>{}</strong>{}</li>",
                escape(&name),
                attributes_list(event.get("attributes").unwrap_or(&Value::Null)),
            );
        }
        out.push_str("</ol>");
    }
    out.push_str("</div>");
    out
}

/// `GET /trace/<id>`: the waterfall. Each span's name is a `<details>`
/// summary: opening it shows the span's ids, status, attributes and events
/// (plain HTML, no script); the bars stay in their own column.
pub fn trace_page(trace_id: &str, spans: &[SpanRow]) -> String {
    let mut body = format!(
        "<p><a href=\"/\">&larr; traces</a></p><h1>trace <code>{}</code></h1>",
        escape(trace_id)
    );
    if spans.is_empty() {
        body.push_str("<p>No spans for this trace (yet).</p>");
        return page("trace", "/", &body);
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
        "<p>{} spans, {:.1} ms; open a span for its attributes and events.</p><table id=\"waterfall\"><tr><th>span</th><th>service</th><th class=\"n\">duration</th><th style=\"width:40%\">timeline</th></tr>",
        spans.len(),
        (end - start) as f64 / 1e6
    );
    for (depth, span) in tree_order(spans) {
        let s = parse_ns(&span.start_ns).saturating_sub(start) as f64;
        let d = parse_ns(&span.end_ns).saturating_sub(parse_ns(&span.start_ns)) as f64;
        let left = s / total * 100.0;
        let width = (d / total * 100.0).max(0.5).min(100.0 - left);
        let attributes: Value = serde_json::from_str(&span.attributes).unwrap_or(Value::Null);
        let code = connect_code(&attributes);
        let error = span.status_code == 2 || code.is_some();
        let mut summary = format!(
            "{} <span class=\"k\">{}</span>",
            escape(&span.name),
            kind_name(span.kind)
        );
        if let Some(code) = &code {
            let _ = write!(summary, " <code class=\"c\">{}</code>", escape(code));
        }
        if !span.status_message.is_empty() {
            let _ = write!(
                summary,
                " <span class=\"k\">{}</span>",
                escape(&span.status_message)
            );
        }
        let _ = write!(
            body,
            "<tr{}><td style=\"padding-left:{}px\"><details><summary>{summary}</summary>{}</details></td><td>{}</td><td class=\"n\">{:.1} ms</td><td><div class=\"bar\"><span{} style=\"left:{left:.2}%;width:{width:.2}%\"></span></div></td></tr>",
            if error { " class=\"err\"" } else { "" },
            8 + depth * 18,
            span_details(span, &attributes, start),
            escape(&span.service),
            d / 1e6,
            if error { " class=\"e\"" } else { "" },
        );
    }
    body.push_str("</table>");
    page("trace", "/", &body)
}

#[cfg(test)]
mod tests;
