//! The service map: who calls whom, computed from spans.
//!
//! An edge is caller service → callee service. Each CLIENT span in the
//! window is one call: its caller is the span's service; its callee is the
//! service of the SERVER span that is its child (the callee exported), else
//! the span's `rpc.service` attribute (the callee did not export, or the
//! call never reached it), else a database node for database spans (see
//! [`Call::callee`]), else the span's name. Latency is the CLIENT span's
//! duration (what the caller waited); a call failed when the span has an
//! error status or a Connect error code.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use serde::{Deserialize, Serialize};

use crate::view::escape;

/// One CLIENT span, as the map query returns it.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct Call {
    pub caller: String,
    /// The service that answered (its SERVER span) or was named
    /// (`rpc.service`), when either is known.
    pub service: Option<String>,
    /// `db.system` and `db.namespace` of a database span.
    pub db_system: Option<String>,
    pub db_namespace: Option<String>,
    pub name: String,
    pub duration_ns: f64,
    pub failed: i64,
}

impl Call {
    /// The node this call goes to. A database is named by its
    /// `db.namespace` when the span has one; without it (our D1 spans carry
    /// only `db.system`: a D1 binding does not know its database's name),
    /// each caller's database is its own node, `d1 (shop.v1.OrderService)`,
    /// since two services' D1 bindings are usually different databases and
    /// one merged node would draw calls between them that never happen.
    pub fn callee(&self) -> String {
        if let Some(service) = &self.service {
            return service.clone();
        }
        let Some(system) = &self.db_system else {
            return self.name.clone();
        };
        let system = match system.as_str() {
            "cloudflare_d1" => "d1",
            other => other,
        };
        match &self.db_namespace {
            Some(namespace) => format!("{system}:{namespace}"),
            None => format!("{system} ({})", self.caller),
        }
    }
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
     CAST(json_extract(c.attributes, '$.\"rpc.service\"') AS TEXT)) AS service, \
     CAST(json_extract(c.attributes, '$.\"db.system\"') AS TEXT) AS db_system, \
     CAST(json_extract(c.attributes, '$.\"db.namespace\"') AS TEXT) AS db_namespace, c.name AS name, \
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
    let mut grouped: BTreeMap<(&str, String), (Vec<f64>, u64)> = BTreeMap::new();
    for call in calls {
        let entry = grouped
            .entry((call.caller.as_str(), call.callee()))
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
                callee,
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

/// Where an edge's arrow runs: an SVG path from the caller's box to just
/// outside the callee's (so the arrowhead is never under a box), and the
/// point its label sits at. Forward edges run edge to edge; backward edges
/// (cycles) run from the caller's left to the callee's right; edges within
/// a column, and calls to oneself, bend out to the right of the boxes
/// instead of crossing the boxes between them.
fn route(from: (f64, f64), to: (f64, f64), w: f64, h: f64) -> (String, f64, f64) {
    const GAP: f64 = 3.0;
    const BEND: f64 = 46.0;
    let ((x1, y1), (x2, y2)) = (from, to);
    let lerp = |a: f64, b: f64, t: f64| a + (b - a) * t;
    if (x2 - x1).abs() > f64::EPSILON {
        let (ax, bx) = if x2 > x1 {
            (x1 + w, x2 - GAP)
        } else {
            (x1, x2 + w + GAP)
        };
        let (ay, by) = (y1 + h / 2.0, y2 + h / 2.0);
        // Labels sit past the middle, where edges fanning out of one
        // caller have already spread apart.
        (
            format!("M{ax:.0},{ay:.0}L{bx:.0},{by:.0}"),
            lerp(ax, bx, 0.55),
            lerp(ay, by, 0.55),
        )
    } else if (y2 - y1).abs() < f64::EPSILON {
        let (x, y) = (x1 + w, y1);
        (
            format!(
                "M{x:.0},{:.0}C{:.0},{:.0} {:.0},{:.0} {:.0},{:.0}",
                y + h * 0.25,
                x + BEND,
                y - h * 0.4,
                x + BEND,
                y + h * 1.4,
                x + GAP,
                y + h * 0.75
            ),
            x + BEND * 0.75,
            y - 10.0,
        )
    } else {
        let x = x1 + w;
        let (ay, by) = (y1 + h / 2.0, y2 + h / 2.0);
        (
            format!(
                "M{x:.0},{ay:.0}C{:.0},{ay:.0} {:.0},{by:.0} {:.0},{by:.0}",
                x + BEND,
                x + BEND,
                x + GAP
            ),
            x + BEND * 0.75 + 4.0,
            (ay + by) / 2.0,
        )
    }
}

fn marker(id: &str, color: &str) -> String {
    format!(
        "<marker id=\"{id}\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto\"><path d=\"M0,0L10,5L0,10z\" fill=\"{color}\"/></marker>"
    )
}

/// An inline SVG of the map: services as boxes in columns by call depth,
/// calls as arrows labelled with their rate and p99.
pub fn svg(edges: &[Edge]) -> String {
    const W: f64 = 200.0;
    const H: f64 = 34.0;
    const GAP_X: f64 = 110.0;
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
                20.0 + *row as f64 * (H + GAP_Y),
            ),
        );
        *row += 1;
    }
    let width = 20.0 + (columns.values().max().copied().unwrap_or(0) + 1) as f64 * (W + GAP_X);
    let height = 30.0 + rows.values().max().copied().unwrap_or(1) as f64 * (H + GAP_Y);
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" aria-label=\"service map\" width=\"{width:.0}\" height=\"{height:.0}\" viewBox=\"0 0 {width:.0} {height:.0}\">\
         <defs>{}{}</defs>",
        marker("arrow", "#555"),
        marker("arrow-err", "#b00020"),
    );
    let mut labels = String::new();
    for edge in edges {
        let (Some(&from), Some(&to)) = (at.get(edge.caller.as_str()), at.get(edge.callee.as_str()))
        else {
            continue;
        };
        let (color, arrow) = if edge.errors > 0 {
            ("#b00020", "arrow-err")
        } else {
            ("#555", "arrow")
        };
        let (path, lx, ly) = route(from, to, W, H);
        let _ = write!(
            out,
            "<path d=\"{path}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"1.5\" marker-end=\"url(#{arrow})\"/>"
        );
        // Labels go on top of every line, on a translucent white card, in
        // two short lines (rate above the arrow, p99 below) that fit
        // between columns.
        let (rate, p99) = (
            crate::view::rate(edge.rate),
            format!("p99 {:.1} ms", edge.p99_ms),
        );
        let card = rate.len().max(p99.len()) as f64 * 6.2 + 8.0;
        let _ = write!(
            labels,
            "<rect x=\"{:.0}\" y=\"{:.0}\" width=\"{card:.0}\" height=\"32\" rx=\"3\" fill=\"#fff\" fill-opacity=\"0.8\"/>\
             <text x=\"{lx:.0}\" y=\"{:.0}\" font-size=\"11\" text-anchor=\"middle\" fill=\"{color}\">{rate}<tspan x=\"{lx:.0}\" dy=\"16\">{p99}</tspan></text>",
            lx - card / 2.0,
            ly - 16.0,
            ly - 4.0,
        );
    }
    for (node, (x, y)) in &at {
        let _ = write!(
            out,
            "<rect x=\"{x:.0}\" y=\"{y:.0}\" width=\"{W}\" height=\"{H}\" rx=\"6\" fill=\"#eef3fb\" stroke=\"#4a7bd0\"/>\
             <text x=\"{:.0}\" y=\"{:.0}\" font-size=\"12\" text-anchor=\"middle\"{}>{}</text>",
            x + W / 2.0,
            y + H / 2.0 + 4.0,
            // Long names are squeezed into the box rather than spill out.
            if node.chars().count() > 28 {
                format!(" textLength=\"{:.0}\" lengthAdjust=\"spacingAndGlyphs\"", W - 12.0)
            } else {
                String::new()
            },
            escape(node),
        );
    }
    out.push_str(&labels);
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests;
