//! Query-string filters of the console's pages and API, validated before
//! any SQL runs: a bad value is an `Err` with a message for a 400, never a
//! failed query.
//!
//! Time ranges: `since=<n><unit>` (`s`, `m`, `h`, `d`; e.g. `15m`) counts
//! back from now; `from` and `to` are Unix milliseconds. `since` and `from`
//! are exclusive of each other. The trace list without any of them shows
//! the last hour ([`DEFAULT_SINCE`]): its query then never scans the whole
//! retention window.

use workmesh::Code;

/// Traces listed when the caller asks for none, and the most at once.
pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 500;
/// The window of the trace list, map and metrics pages when the query
/// names none (no `since`, `from` or `to`).
pub const DEFAULT_SINCE: &str = "1h";
const DEFAULT_SINCE_NS: u64 = 3_600_000_000_000;

/// A closed range of Unix nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeRange {
    pub from_ns: u64,
    pub to_ns: u64,
}

impl TimeRange {
    /// The last `ns` nanoseconds before `now_ns`.
    pub fn last(ns: u64, now_ns: u64) -> TimeRange {
        TimeRange {
            from_ns: now_ns.saturating_sub(ns),
            to_ns: now_ns,
        }
    }

    /// The default window ([`DEFAULT_SINCE`]) ending at `now_ns`.
    pub fn default_window(now_ns: u64) -> TimeRange {
        TimeRange::last(DEFAULT_SINCE_NS, now_ns)
    }

    pub fn seconds(&self) -> f64 {
        self.to_ns.saturating_sub(self.from_ns) as f64 / 1e9
    }
}

/// What a trace's status must be.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StatusFilter {
    #[default]
    Any,
    /// No span failed (no error status, no Connect error code).
    Ok,
    /// Some span failed.
    Error,
    /// Some span failed with this Connect code.
    Code(Code),
}

impl StatusFilter {
    pub fn as_param(&self) -> &'static str {
        match self {
            StatusFilter::Any => "",
            StatusFilter::Ok => "ok",
            StatusFilter::Error => "error",
            StatusFilter::Code(code) => code.as_str(),
        }
    }
}

/// The trace list's filters (`GET /` and `GET /api/traces`).
#[derive(Clone, Debug, PartialEq)]
pub struct TraceFilter {
    /// Some span of the trace is of this service.
    pub service: String,
    /// Some span is of this method: its name (`pkg.Service/Method`) or its
    /// `rpc.method` attribute (`Method`).
    pub method: String,
    pub status: StatusFilter,
    /// The trace took at least this long (first start to last end).
    pub min_duration_ms: Option<f64>,
    /// The trace started within this range: the query's, or the last
    /// hour before now.
    pub range: TimeRange,
    pub limit: u32,
    /// The `since` the range came from, to show it again in the form
    /// ([`DEFAULT_SINCE`] when the query named no range; empty for
    /// `from` / `to`).
    pub since: String,
}

impl TraceFilter {
    /// No filter but the default window ending at `now_ns`.
    pub fn recent(now_ns: u64) -> TraceFilter {
        TraceFilter {
            service: String::new(),
            method: String::new(),
            status: StatusFilter::Any,
            min_duration_ms: None,
            range: TimeRange::default_window(now_ns),
            limit: DEFAULT_LIMIT,
            since: DEFAULT_SINCE.to_owned(),
        }
    }
}

/// `15m` → nanoseconds. Units: `s`, `m`, `h`, `d`; at most 366 days.
pub fn parse_duration_ns(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let unit_ns: u64 = match unit {
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        "d" => 86_400_000_000_000,
        _ => return None,
    };
    let ns = number.checked_mul(unit_ns)?;
    (number > 0 && ns <= 366 * 86_400_000_000_000).then_some(ns)
}

fn parse_ms(name: &str, value: &str) -> Result<u64, String> {
    value
        .trim()
        .parse::<u64>()
        .ok()
        .and_then(|ms| ms.checked_mul(1_000_000))
        .ok_or_else(|| format!("{name}: expected Unix milliseconds, got {value:?}"))
}

/// The time range of a query, if it names one: `since`, or `from` (and
/// optionally `to`; `to` alone means "up to then"). `now_ns` is the
/// Worker's clock.
pub fn time_range<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a str)> + Clone,
    now_ns: u64,
) -> Result<Option<TimeRange>, String> {
    let get = |name: &str| {
        pairs
            .clone()
            .into_iter()
            .find(|(k, v)| *k == name && !v.trim().is_empty())
            .map(|(_, v)| v)
    };
    let since = get("since");
    let from = get("from").map(|v| parse_ms("from", v)).transpose()?;
    let to = get("to").map(|v| parse_ms("to", v)).transpose()?;
    let range = match (since, from, to) {
        (Some(_), Some(_), _) => return Err("give either since or from, not both".to_owned()),
        (Some(since), None, to) => {
            let ns = parse_duration_ns(since).ok_or_else(|| {
                format!("since: expected a duration like 30s, 15m, 1h or 2d, got {since:?}")
            })?;
            let end = to.unwrap_or(now_ns);
            TimeRange::last(ns, end)
        }
        (None, Some(from), to) => TimeRange {
            from_ns: from,
            to_ns: to.unwrap_or(now_ns).max(from),
        },
        (None, None, Some(to)) => TimeRange {
            from_ns: 0,
            to_ns: to,
        },
        (None, None, None) => return Ok(None),
    };
    if let (Some(from), Some(to)) = (from, to) {
        if from > to {
            return Err("from is after to".to_owned());
        }
    }
    Ok(Some(range))
}

/// Parses the trace list's query; unknown parameters are ignored, empty
/// ones (as an HTML form sends them) are absent.
pub fn trace_filter<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a str)> + Clone,
    now_ns: u64,
) -> Result<TraceFilter, String> {
    let mut filter = TraceFilter::recent(now_ns);
    if let Some(range) = time_range(pairs.clone(), now_ns)? {
        filter.range = range;
        filter.since = String::new();
    }
    for (key, value) in pairs {
        let value = value.trim();
        if value.is_empty() {
            continue;
        }
        match key {
            "service" => filter.service = bounded(key, value)?,
            "method" => filter.method = bounded(key, value)?,
            "since" => filter.since = value.to_owned(),
            "status" => {
                filter.status = match value {
                    "ok" => StatusFilter::Ok,
                    "error" => StatusFilter::Error,
                    code => StatusFilter::Code(Code::from_wire(code).ok_or_else(|| {
                        format!(
                            "status: expected ok, error or a Connect code (like not_found), got {code:?}"
                        )
                    })?),
                }
            }
            "min_duration_ms" => {
                let ms: f64 = value
                    .parse()
                    .ok()
                    .filter(|ms: &f64| ms.is_finite() && *ms >= 0.0)
                    .ok_or_else(|| {
                        format!("min_duration_ms: expected a number of milliseconds ≥ 0, got {value:?}")
                    })?;
                filter.min_duration_ms = Some(ms);
            }
            "limit" => {
                // Above the most is the most (a client asking for "all").
                filter.limit = value
                    .parse::<u32>()
                    .ok()
                    .filter(|n| *n >= 1)
                    .map(|n| n.min(MAX_LIMIT))
                    .ok_or_else(|| {
                        format!("limit: expected a whole number from 1 (at most {MAX_LIMIT} are listed), got {value:?}")
                    })?;
            }
            _ => {}
        }
    }
    Ok(filter)
}

fn bounded(name: &str, value: &str) -> Result<String, String> {
    if value.len() > 256 {
        return Err(format!("{name}: at most 256 bytes"));
    }
    Ok(value.to_owned())
}

/// A value bound to a statement.
#[derive(Clone, Debug, PartialEq)]
pub enum Param {
    Text(String),
    Num(f64),
}

/// The error code a span carries, as SQL.
pub const ERROR_CODE_SQL: &str = "json_extract(attributes, '$.\"rpc.connect_rpc.error_code\"')";

/// Whether a span failed, as SQL over a `spans` row (no table alias).
pub const FAILED_SQL: &str =
    "(status_code = 2 OR json_extract(attributes, '$.\"rpc.connect_rpc.error_code\"') IS NOT NULL)";

/// The list query for a filter: one row per trace (see `view::TraceRow`),
/// newest first, and its parameters in order (`?1`, `?2`, …).
///
/// Its cost is bounded by the time range, not by the table: the inner
/// query groups only the spans of traces with a span starting in the range
/// (found through `spans_by_start`), sorts and limits them; the root span
/// of each of those at most `limit` traces is then picked by the outer
/// query (the first span without a parent in the trace, by start).
pub fn list_sql(filter: &TraceFilter) -> (String, Vec<Param>) {
    let mut params = Vec::new();
    let mut next = |param: Param| {
        params.push(param);
        format!("?{}", params.len())
    };
    let from = next(Param::Text(crate::otlp::pad_ns(filter.range.from_ns)));
    let to = next(Param::Text(crate::otlp::pad_ns(filter.range.to_ns)));
    let mut conditions = vec![format!(
        "s.trace_id IN (SELECT trace_id FROM spans WHERE start_ns >= {from} AND start_ns <= {to})"
    )];
    if !filter.service.is_empty() {
        let p = next(Param::Text(filter.service.clone()));
        conditions.push(format!(
            "s.trace_id IN (SELECT trace_id FROM spans WHERE service = {p})"
        ));
    }
    if !filter.method.is_empty() {
        let p = next(Param::Text(filter.method.clone()));
        conditions.push(format!(
            "s.trace_id IN (SELECT trace_id FROM spans WHERE name = {p} \
             OR json_extract(attributes, '$.\"rpc.method\"') = {p})"
        ));
    }
    match filter.status {
        StatusFilter::Any | StatusFilter::Ok | StatusFilter::Error => {}
        StatusFilter::Code(code) => {
            let p = next(Param::Text(code.as_str().to_owned()));
            conditions.push(format!(
                "s.trace_id IN (SELECT trace_id FROM spans WHERE {ERROR_CODE_SQL} = {p})"
            ));
        }
    }
    // The trace's first span, not just any of its spans, is in the range.
    let mut having = vec![format!(
        "MIN(s.start_ns) >= {from} AND MIN(s.start_ns) <= {to}"
    )];
    match filter.status {
        StatusFilter::Ok => having.push("MAX(s.failed) = 0".to_owned()),
        StatusFilter::Error => having.push("MAX(s.failed) = 1".to_owned()),
        _ => {}
    }
    if let Some(ms) = filter.min_duration_ms {
        let p = next(Param::Num((ms * 1e6).round()));
        having.push(format!(
            "CAST(MAX(s.end_ns) AS INTEGER) - CAST(MIN(s.start_ns) AS INTEGER) >= {p}"
        ));
    }
    let limit = next(Param::Num(f64::from(filter.limit)));
    // The LEFT JOIN keeps the limited set as the outer loop (and, with its
    // LIMIT, keeps SQLite from flattening it into the join).
    let sql = format!(
        "SELECT t.trace_id AS trace_id, t.start_ns AS start_ns, t.end_ns AS end_ns, \
         t.span_count AS span_count, t.error AS error, \
         r.name AS root_name, r.service AS root_service \
         FROM (SELECT s.trace_id AS trace_id, MIN(s.start_ns) AS start_ns, \
         MAX(s.end_ns) AS end_ns, COUNT(*) AS span_count, MAX(s.failed) AS error \
         FROM (SELECT trace_id, start_ns, end_ns, {FAILED_SQL} AS failed FROM spans) s \
         WHERE {} GROUP BY s.trace_id HAVING {} \
         ORDER BY MIN(s.start_ns) DESC LIMIT {limit}) t \
         LEFT JOIN spans r ON r.trace_id = t.trace_id AND r.span_id = \
         (SELECT c.span_id FROM spans c WHERE c.trace_id = t.trace_id ORDER BY \
         (c.parent_span_id IS NULL OR c.parent_span_id NOT IN \
         (SELECT p.span_id FROM spans p WHERE p.trace_id = c.trace_id)) DESC, \
         c.start_ns, c.span_id LIMIT 1) \
         ORDER BY t.start_ns DESC, t.trace_id",
        conditions.join(" AND "),
        having.join(" AND "),
    );
    (sql, params)
}

#[cfg(test)]
mod tests;
