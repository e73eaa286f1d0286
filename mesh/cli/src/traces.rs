//! `workmesh traces [<trace_id>]`: the console Worker's traces in the
//! terminal. Without an id it lists recent traces (`GET /api/traces`); with
//! one it prints the trace as a waterfall (`GET /api/traces/<id>`): one line
//! per span in tree order, indented by depth, with a bar scaled to the
//! trace's duration.

use std::time::Duration;
use workmesh::trace::tree::TreeKey;

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Deserializer};

use crate::project::Project;

/// Columns of the waterfall bar.
pub const BAR_WIDTH: usize = 40;
const ERROR_CODE: &str = "rpc.connect_rpc.error_code";
/// OTLP `STATUS_CODE_ERROR`.
const STATUS_ERROR: i64 = 2;

/// One trace in `GET /api/traces`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TraceSummary {
    pub trace_id: String,
    pub root_name: Option<String>,
    pub root_service: Option<String>,
    #[serde(deserialize_with = "nanos")]
    pub start_time_unix_nano: u64,
    pub duration_ms: f64,
    pub span_count: u64,
    pub error: bool,
}

#[derive(Deserialize)]
struct TraceList {
    traces: Vec<TraceSummary>,
}

/// One span in `GET /api/traces/<id>`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Span {
    pub span_id: String,
    pub parent_span_id: Option<String>,
    pub service: String,
    pub name: String,
    pub kind: String,
    #[serde(deserialize_with = "nanos")]
    pub start_time_unix_nano: u64,
    #[serde(deserialize_with = "nanos")]
    pub end_time_unix_nano: u64,
    #[serde(default)]
    pub status: Status,
    #[serde(default)]
    pub attributes: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Status {
    #[serde(default)]
    pub code: i64,
    #[serde(default)]
    pub message: Option<String>,
}

#[derive(Deserialize)]
struct TraceSpans {
    spans: Vec<Span>,
}

/// Unix nanoseconds, sent as a decimal string (they do not fit a JSON double).
fn nanos<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    let text = String::deserialize(deserializer)?;
    text.trim().parse().map_err(serde::de::Error::custom)
}

pub fn run(
    project: &Project,
    trace_id: Option<String>,
    service: Option<String>,
    limit: u32,
    url: Option<String>,
) -> Result<()> {
    let base = match url {
        Some(url) => url,
        None => local_console(project)?,
    };
    let base = base.trim_end_matches('/');
    let lines = match trace_id {
        Some(id) => {
            let id = id.trim().to_ascii_lowercase();
            if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
                bail!("a trace id is 32 hex digits, not {id:?}");
            }
            let body = get(&format!("{base}/api/traces/{id}"))?
                .ok_or_else(|| anyhow!("the console at {base} has no trace {id}"))?;
            let trace: TraceSpans = serde_json::from_str(&body)
                .with_context(|| format!("the console's answer for trace {id} is not a trace"))?;
            render_waterfall(&trace.spans)
        }
        None => {
            let mut url = format!("{base}/api/traces?limit={limit}");
            if let Some(service) = service {
                url.push_str("&service=");
                url.push_str(&percent_encode(&service));
            }
            let body = get(&url)?.ok_or_else(|| anyhow!("{url} is not a trace console"))?;
            let list: TraceList =
                serde_json::from_str(&body).context("the console's answer is not a trace list")?;
            if list.traces.is_empty() {
                vec!["No traces yet.".to_owned()]
            } else {
                render_list(&list.traces)
            }
        }
    };
    for line in lines {
        println!("{line}");
    }
    Ok(())
}

/// The local console Worker: its `[dev] port` in wrangler/console.toml.
fn local_console(project: &Project) -> Result<String> {
    let worker = project.worker("console")?;
    let port = worker
        .dev_port
        .with_context(|| format!("{} has no [dev] port", worker.config.display()))?;
    Ok(format!("http://127.0.0.1:{port}"))
}

/// GET `url`: `Some(body)` on 2xx, `None` on 404, an error otherwise.
fn get(url: &str) -> Result<Option<String>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?;
        let response = client
            .get(url)
            .send()
            .await
            .with_context(|| format!("no answer from {url} (is the mesh up?)"))?;
        let status = response.status();
        let body = response.text().await?;
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            bail!("GET {url}: {status}: {}", body.trim());
        }
        Ok(Some(body))
    })
}

/// `application/x-www-form-urlencoded`-safe query value.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The trace list: a header and one aligned row per trace.
pub fn render_list(traces: &[TraceSummary]) -> Vec<String> {
    let header = [
        "TRACE ID",
        "ROOT",
        "SERVICE",
        "START (UTC)",
        "DURATION",
        "SPANS",
        "ERROR",
    ]
    .map(str::to_owned);
    let rows: Vec<[String; 7]> = traces
        .iter()
        .map(|t| {
            [
                t.trace_id.clone(),
                t.root_name.clone().unwrap_or_else(|| "?".to_owned()),
                t.root_service.clone().unwrap_or_else(|| "?".to_owned()),
                utc(t.start_time_unix_nano),
                format_ms(t.duration_ms),
                t.span_count.to_string(),
                if t.error { "✗" } else { "" }.to_owned(),
            ]
        })
        .collect();
    let mut widths = [0usize; 7];
    for row in std::iter::once(&header).chain(&rows) {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    std::iter::once(&header)
        .chain(&rows)
        .map(|row| {
            let cells: Vec<String> = row
                .iter()
                .zip(widths)
                .enumerate()
                .map(|(i, (cell, width))| match i {
                    // Numbers right-aligned.
                    4 | 5 => format!("{cell:>width$}"),
                    _ => format!("{cell:<width$}"),
                })
                .collect();
            cells.join("  ").trim_end().to_owned()
        })
        .collect()
}

/// The waterfall: one line per span in tree order,
/// `<indent>service  name  kind  duration  |bar|  error`.
pub fn render_waterfall(spans: &[Span]) -> Vec<String> {
    let Some(trace_start) = spans.iter().map(|s| s.start_time_unix_nano).min() else {
        return vec!["(no spans)".to_owned()];
    };
    let trace_end = spans
        .iter()
        .map(|s| s.end_time_unix_nano.max(s.start_time_unix_nano))
        .max()
        .unwrap_or(trace_start);
    let total = trace_end - trace_start;
    let ordered = tree_order(spans);
    let labels: Vec<String> = ordered
        .iter()
        .map(|(depth, span)| {
            format!(
                "{}{}  {}  {}",
                "  ".repeat(*depth),
                span.service,
                span.name,
                span.kind
            )
        })
        .collect();
    let label_width = labels.iter().map(|l| l.chars().count()).max().unwrap_or(0);
    let durations: Vec<String> = ordered
        .iter()
        .map(|(_, span)| format_ns(span_duration(span)))
        .collect();
    let duration_width = durations.iter().map(String::len).max().unwrap_or(0);
    ordered
        .iter()
        .zip(labels)
        .zip(durations)
        .map(|(((_, span), label), duration)| {
            let offset = span.start_time_unix_nano - trace_start;
            let bar = bar(offset, span_duration(span), total, BAR_WIDTH);
            let line = format!("{label:<label_width$}  {duration:>duration_width$}  |{bar}|");
            match failure(span) {
                Some(mark) => format!("{line}  ✗ {mark}"),
                None => line,
            }
        })
        .collect()
}

fn span_duration(span: &Span) -> u64 {
    span.end_time_unix_nano
        .saturating_sub(span.start_time_unix_nano)
}

/// The Connect error code of a failed span (the attribute the mesh always
/// records), or its status message when it has only an error status.
fn failure(span: &Span) -> Option<String> {
    match span.attributes.get(ERROR_CODE) {
        Some(serde_json::Value::String(code)) => Some(code.clone()),
        Some(other) => Some(other.to_string()),
        None if span.status.code == STATUS_ERROR => Some(
            span.status
                .message
                .clone()
                .filter(|m| !m.is_empty())
                .unwrap_or_else(|| "error".to_owned()),
        ),
        None => None,
    }
}

/// `width` columns: spaces before the span, `█` while it runs (at least one
/// column, so instant spans still show), spaces after. A trace of zero
/// duration puts every span in the first column.
pub fn bar(offset: u64, duration: u64, total: u64, width: usize) -> String {
    if width == 0 {
        return String::new();
    }
    let (start, end) = if total == 0 {
        (0, 1)
    } else {
        let scale = |ns: u64| -> usize {
            let columns = u128::from(ns.min(total)) * width as u128;
            let whole = columns / u128::from(total);
            usize::try_from(whole).unwrap_or(width)
        };
        let start = scale(offset).min(width - 1);
        // Round the end up so a span covers every column it touches.
        let end_ns = offset.saturating_add(duration).min(total);
        let end = usize::try_from((u128::from(end_ns) * width as u128).div_ceil(u128::from(total)))
            .unwrap_or(width)
            .min(width);
        (start, end.max(start + 1))
    };
    let mut out = String::with_capacity(width * 3);
    out.push_str(&" ".repeat(start));
    out.push_str(&"█".repeat(end - start));
    out.push_str(&" ".repeat(width - end));
    out
}

/// Spans in tree order with their depth (see [`workmesh::trace::tree::tree_order`]).
fn tree_order(spans: &[Span]) -> Vec<(usize, &Span)> {
    workmesh::trace::tree::tree_order(spans, |s| TreeKey {
        span_id: &s.span_id,
        parent_span_id: s.parent_span_id.as_deref(),
        start: s.start_time_unix_nano,
    })
}

fn format_ns(ns: u64) -> String {
    format!("{}.{:03} ms", ns / 1_000_000, ns / 1_000 % 1_000)
}

fn format_ms(ms: f64) -> String {
    if ms.is_finite() && ms >= 0.0 {
        format!("{ms:.3} ms")
    } else {
        "?".to_owned()
    }
}

/// `YYYY-MM-DD HH:MM:SS.mmm` of Unix nanoseconds, UTC.
pub fn utc(ns: u64) -> String {
    let ms = ns / 1_000_000;
    let days = ms / 86_400_000;
    let day_ms = ms % 86_400_000;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}.{:03}",
        day_ms / 3_600_000,
        day_ms / 60_000 % 60,
        day_ms / 1_000 % 60,
        day_ms % 1_000
    )
}

/// Proleptic Gregorian date of a day count since 1970-01-01.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // Shift to 0000-03-01 so leap days fall at the end of each 400-year era.
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests;
