//! How long the console keeps what it receives.
//!
//! Spans (by start time) and metric points (by time) older than
//! `WORKMESH_CONSOLE_RETENTION_HOURS` (default 24; fractions allowed) are
//! deleted in two places: every ingest deletes up to [`INGEST_BATCH`] rows
//! of each table in the same D1 batch as its inserts (before them), so a
//! busy console never grows past its window even without cron; and the
//! Cron Trigger (`[triggers] crons` in wrangler/console.toml) deletes in
//! rounds of [`CRON_BATCH`] until nothing old is left (at most
//! [`CRON_ROUNDS`] rounds a run), so an idle console is emptied too.

/// The var that sets the window.
pub const RETENTION_VAR: &str = "WORKMESH_CONSOLE_RETENTION_HOURS";
pub const DEFAULT_HOURS: f64 = 24.0;
/// Rows per table one ingest may delete.
pub const INGEST_BATCH: u32 = 500;
/// Rows per table one cron round deletes, and the rounds per run.
pub const CRON_BATCH: u32 = 5_000;
pub const CRON_ROUNDS: u32 = 20;

/// Deletes the oldest spans that started before `?1`, at most `?2`.
pub const DELETE_SPANS: &str = "DELETE FROM spans WHERE rowid IN \
     (SELECT rowid FROM spans WHERE start_ns < ?1 ORDER BY start_ns LIMIT ?2)";
/// Deletes the oldest metric points taken before `?1`, at most `?2`.
pub const DELETE_POINTS: &str = "DELETE FROM metric_points WHERE rowid IN \
     (SELECT rowid FROM metric_points WHERE time_ns < ?1 ORDER BY time_ns LIMIT ?2)";

/// The window in hours from the var's value (`None` when unset).
pub fn hours(var: Option<&str>) -> Result<f64, String> {
    let Some(text) = var.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(DEFAULT_HOURS);
    };
    text.parse::<f64>()
        .ok()
        .filter(|h| h.is_finite() && *h > 0.0 && *h <= 24.0 * 366.0)
        .ok_or_else(|| {
            format!(
                "{RETENTION_VAR} must be a number of hours above 0 (at most 8784), got {text:?}"
            )
        })
}

/// The oldest time kept, in Unix nanoseconds, at `now_ms`.
pub fn cutoff_ns(now_ms: u64, hours: f64) -> u64 {
    let keep_ns = (hours * 3_600.0 * 1e9) as u64;
    now_ms.saturating_mul(1_000_000).saturating_sub(keep_ns)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_window_defaults_to_a_day_and_rejects_nonsense() {
        assert_eq!(hours(None), Ok(24.0));
        assert_eq!(hours(Some(" ")), Ok(24.0));
        assert_eq!(hours(Some("0.5")), Ok(0.5));
        assert_eq!(hours(Some("72")), Ok(72.0));
        for bad in ["0", "-1", "NaN", "inf", "a day", "9000"] {
            let error = hours(Some(bad)).unwrap_err();
            assert!(error.contains(RETENTION_VAR), "{bad}: {error}");
        }
    }

    #[test]
    fn the_cutoff_counts_back_from_now() {
        let now_ms = 1_800_000_000_000;
        assert_eq!(cutoff_ns(now_ms, 24.0), (now_ms - 86_400_000) * 1_000_000);
        assert_eq!(cutoff_ns(now_ms, 0.5), (now_ms - 1_800_000) * 1_000_000);
        assert_eq!(cutoff_ns(1_000, 24.0), 0, "never before the epoch");
    }
}
