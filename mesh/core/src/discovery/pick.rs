//! Picking a version by weight; the rule is in the [module docs](super).

use std::collections::BTreeSet;

use super::Resolution;

/// Each routable version of `resolution` with its effective weight (> 0),
/// in version order. Empty when the answer lists no instance.
pub fn version_shares(resolution: &Resolution) -> Vec<(&str, u64)> {
    let versions: BTreeSet<&str> = resolution
        .instances
        .iter()
        .map(|i| i.version.as_str())
        .collect();
    let weighted: Vec<(&str, u64)> = versions
        .iter()
        .map(|v| {
            let weight = resolution.version_weights.get(*v).copied().unwrap_or(0);
            (*v, u64::from(weight))
        })
        .filter(|(_, w)| *w > 0)
        .collect();
    if resolution.version_weights.is_empty() || weighted.is_empty() {
        // No weights, or none that any routable version carries: every
        // routable version weighs the same.
        return versions.into_iter().map(|v| (v, 1)).collect();
    }
    weighted
}

/// The version a call goes to, given `random` uniform in `[0, 1)`; `None`
/// when the answer lists no instance.
pub fn pick_version(resolution: &Resolution, random: f64) -> Option<&str> {
    let shares = version_shares(resolution);
    let total: u64 = shares.iter().map(|(_, w)| w).sum();
    if total == 0 {
        return None;
    }
    let mut point = (random.clamp(0.0, 1.0) * total as f64) as u64;
    for (version, weight) in &shares {
        if point < *weight {
            return Some(version);
        }
        point -= weight;
    }
    // `random` was 1.0 (or rounding carried past the end): the last one.
    shares.last().map(|(v, _)| *v)
}
