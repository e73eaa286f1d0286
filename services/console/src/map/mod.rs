//! The service map: who calls whom, computed from spans.
//!
//! An edge is caller service → callee service. Each CLIENT span in the
//! window is one call: its caller is the span's service; its callee is the
//! service of the SERVER span that is its child (the callee exported), else
//! the span's `rpc.service` attribute (the callee did not export, or the
//! call never reached it), else `db:<db.system>` for database spans, else
//! the span's name. Latency is the CLIENT span's duration (what the caller
//! waited); a call failed when the span has an error status or a Connect
//! error code.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use serde::{Deserialize, Serialize};

use crate::view::escape;

/// One CLIENT span, as the map query returns it.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Call {
    pub caller: String,
    pub callee: String,
    pub duration_ns: f64,
    pub failed: i64,
}

/// Calls from one service to another in a window.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Edge {
    pub caller: String,
    pub callee: String,
    pub calls: u64,
    pub errors: u64,
    /// Calls per second over the window.
    pub rate: f64,
    pub error_rate: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// The query's SQL: the CLIENT spans that started in `[?1, ?2]` (padded
/// nanoseconds), at most `?3`.
pub const CALLS_SQL: &str = "SELECT c.service AS caller, COALESCE(\
     (SELECT s.service FROM spans s WHERE s.trace_id = c.trace_id AND s.parent_span_id = c.span_id \
        AND s.kind = 2 LIMIT 1), \
     json_extract(c.attributes, '$.\"rpc.service\"'), \
     'db:' || json_extract(c.attributes, '$.\"db.system\"'), c.name) AS callee, \
     CAST(c.end_ns AS INTEGER) - CAST(c.start_ns AS INTEGER) AS duration_ns, \
     (c.status_code = 2 OR json_extract(c.attributes, '$.\"rpc.connect_rpc.error_code\"') IS NOT NULL) AS failed \
     FROM spans c WHERE c.kind = 3 AND c.start_ns >= ?1 AND c.start_ns <= ?2 LIMIT ?3";

/// The most calls one map reads.
pub const MAX_CALLS: u32 = 20_000;

/// Nearest-rank percentile of sorted values (`q` in 0..=1).
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Edges of `calls` over a window of `seconds`, sorted by caller, callee.
pub fn edges(calls: &[Call], seconds: f64) -> Vec<Edge> {
    let mut grouped: BTreeMap<(&str, &str), (Vec<f64>, u64)> = BTreeMap::new();
    for call in calls {
        let entry = grouped
            .entry((call.caller.as_str(), call.callee.as_str()))
            .or_default();
        entry.0.push(call.duration_ns.max(0.0) / 1e6);
        entry.1 += u64::from(call.failed != 0);
    }
    let seconds = seconds.max(1e-9);
    grouped
        .into_iter()
        .map(|((caller, callee), (mut millis, errors))| {
            millis.sort_by(f64::total_cmp);
            let calls = millis.len() as u64;
            Edge {
                caller: caller.to_owned(),
                callee: callee.to_owned(),
                calls,
                errors,
                rate: calls as f64 / seconds,
                error_rate: errors as f64 / calls as f64,
                p50_ms: percentile(&millis, 0.5),
                p99_ms: percentile(&millis, 0.99),
            }
        })
        .collect()
}

/// Columns for the graph: a service's column is its call distance from the
/// nearest service nobody calls (breadth first, so cycles end where they
/// close); services only reachable through a cycle start a column 0 of
/// their own.
fn columns(edges: &[Edge]) -> BTreeMap<&str, usize> {
    let mut nodes: BTreeSet<&str> = BTreeSet::new();
    let mut called: BTreeSet<&str> = BTreeSet::new();
    for edge in edges {
        nodes.insert(&edge.caller);
        nodes.insert(&edge.callee);
        if edge.caller != edge.callee {
            called.insert(&edge.callee);
        }
    }
    let mut column: BTreeMap<&str, usize> = BTreeMap::new();
    let mut queue: std::collections::VecDeque<&str> = nodes
        .iter()
        .filter(|n| !called.contains(*n))
        .copied()
        .collect();
    for root in &queue {
        column.insert(root, 0);
    }
    loop {
        while let Some(node) = queue.pop_front() {
            let depth = column.get(node).copied().unwrap_or(0);
            for edge in edges.iter().filter(|e| e.caller == node) {
                if !column.contains_key(edge.callee.as_str()) {
                    column.insert(&edge.callee, depth + 1);
                    queue.push_back(&edge.callee);
                }
            }
        }
        // A cycle nobody outside calls: start it at column 0.
        match nodes.iter().find(|n| !column.contains_key(*n)) {
            Some(node) => {
                column.insert(node, 0);
                queue.push_back(node);
            }
            None => break,
        }
    }
    column
}

/// An inline SVG of the map: services as boxes in columns by call depth,
/// calls as arrows labelled with their rate and p99.
pub fn svg(edges: &[Edge]) -> String {
    const W: f64 = 220.0;
    const H: f64 = 36.0;
    const GAP_X: f64 = 120.0;
    const GAP_Y: f64 = 30.0;
    let columns = columns(edges);
    let mut rows: BTreeMap<usize, usize> = BTreeMap::new();
    let mut at: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
    for (node, column) in &columns {
        let row = rows.entry(*column).or_insert(0);
        at.insert(
            node,
            (
                10.0 + *column as f64 * (W + GAP_X),
                10.0 + *row as f64 * (H + GAP_Y),
            ),
        );
        *row += 1;
    }
    let width = 20.0 + (columns.values().max().copied().unwrap_or(0) + 1) as f64 * (W + GAP_X);
    let height = 20.0 + rows.values().max().copied().unwrap_or(1) as f64 * (H + GAP_Y);
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" aria-label=\"service map\" width=\"{width:.0}\" height=\"{height:.0}\" viewBox=\"0 0 {width:.0} {height:.0}\">\
         <defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"8\" markerHeight=\"8\" orient=\"auto\"><path d=\"M0,0L10,5L0,10z\" fill=\"#555\"/></marker></defs>"
    );
    for edge in edges {
        let (Some(&(x1, y1)), Some(&(x2, y2))) =
            (at.get(edge.caller.as_str()), at.get(edge.callee.as_str()))
        else {
            continue;
        };
        let color = if edge.errors > 0 { "#b00020" } else { "#555" };
        let (ax, ay, bx, by) = if x2 > x1 {
            (x1 + W, y1 + H / 2.0, x2, y2 + H / 2.0)
        } else {
            (x1 + W / 2.0, y1 + H, x2 + W / 2.0, y2)
        };
        let _ = write!(
            out,
            "<line x1=\"{ax:.0}\" y1=\"{ay:.0}\" x2=\"{bx:.0}\" y2=\"{by:.0}\" stroke=\"{color}\" stroke-width=\"1.5\" marker-end=\"url(#arrow)\"/>\
             <text x=\"{:.0}\" y=\"{:.0}\" font-size=\"11\" text-anchor=\"middle\" fill=\"{color}\">{} p99 {:.1} ms</text>",
            (ax + bx) / 2.0,
            (ay + by) / 2.0 - 4.0,
            crate::view::rate(edge.rate),
            edge.p99_ms,
        );
    }
    for (node, (x, y)) in &at {
        let _ = write!(
            out,
            "<rect x=\"{x:.0}\" y=\"{y:.0}\" width=\"{W}\" height=\"{H}\" rx=\"6\" fill=\"#eef3fb\" stroke=\"#4a7bd0\"/>\
             <text x=\"{:.0}\" y=\"{:.0}\" font-size=\"12\" text-anchor=\"middle\">{}</text>",
            x + W / 2.0,
            y + H / 2.0 + 4.0,
            escape(node),
        );
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests;
