//! The order a trace reads in: every span after its parent, siblings by
//! start time. Shared by the console's waterfall and `workmesh traces`.

use std::collections::{HashMap, HashSet};

/// What [`tree_order`] needs to know of one span.
pub struct TreeKey<'a, K> {
    pub span_id: &'a str,
    pub parent_span_id: Option<&'a str>,
    /// Sorts siblings (normally the start time); ties go by span id.
    pub start: K,
}

/// Spans in tree order with their depth. A span whose parent is not in the
/// trace (a caller outside the mesh, or one that did not export) is a root;
/// spans reachable only through a parent cycle come last, flat, so nothing a
/// collector received is ever hidden.
pub fn tree_order<'s, T, K: Ord>(
    spans: &'s [T],
    key: impl Fn(&'s T) -> TreeKey<'s, K>,
) -> Vec<(usize, &'s T)> {
    let keyed: Vec<(TreeKey<'s, K>, &'s T)> = spans.iter().map(|s| (key(s), s)).collect();
    let ids: HashSet<&str> = keyed.iter().map(|(k, _)| k.span_id).collect();
    let mut children: HashMap<Option<&str>, Vec<&(TreeKey<'s, K>, &'s T)>> = HashMap::new();
    for entry in &keyed {
        let parent = entry
            .0
            .parent_span_id
            .filter(|p| ids.contains(p) && *p != entry.0.span_id);
        children.entry(parent).or_default().push(entry);
    }
    for list in children.values_mut() {
        list.sort_by(|a, b| (&a.0.start, a.0.span_id).cmp(&(&b.0.start, b.0.span_id)));
    }
    let mut out = Vec::with_capacity(spans.len());
    let mut seen = HashSet::new();
    let mut stack: Vec<(usize, &(TreeKey<'s, K>, &'s T))> = children
        .get(&None)
        .map(|roots| roots.iter().rev().map(|e| (0, *e)).collect())
        .unwrap_or_default();
    while let Some((depth, entry)) = stack.pop() {
        if !seen.insert(entry.0.span_id) {
            continue;
        }
        out.push((depth, entry.1));
        if let Some(kids) = children.get(&Some(entry.0.span_id)) {
            stack.extend(kids.iter().rev().map(|e| (depth + 1, *e)));
        }
    }
    for (key, span) in &keyed {
        if seen.insert(key.span_id) {
            out.push((0, *span));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    struct S(&'static str, Option<&'static str>, u64);

    fn order(spans: &[S]) -> Vec<(usize, &'static str)> {
        tree_order(spans, |s| TreeKey {
            span_id: s.0,
            parent_span_id: s.1,
            start: s.2,
        })
        .into_iter()
        .map(|(d, s)| (d, s.0))
        .collect()
    }

    #[test]
    fn children_follow_parents_by_start_and_orphans_are_roots() {
        let spans = [
            S("c2", Some("root"), 30),
            S("root", None, 10),
            S("c1", Some("root"), 20),
            S("g", Some("c1"), 25),
            S("orphan", Some("missing"), 5),
        ];
        assert_eq!(
            order(&spans),
            vec![(0, "orphan"), (0, "root"), (1, "c1"), (2, "g"), (1, "c2")]
        );
    }

    #[test]
    fn cycles_and_self_parents_are_still_shown() {
        let spans = [
            S("a", Some("b"), 1),
            S("b", Some("a"), 2),
            S("s", Some("s"), 3),
        ];
        assert_eq!(order(&spans), vec![(0, "s"), (0, "a"), (0, "b")]);
    }
}
