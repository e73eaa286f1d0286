//! When an isolate's metrics go out.

use std::cell::Cell;
use std::time::Duration;

use crate::Instant;

/// Default minimum time between two metrics exports of one isolate.
pub const DEFAULT_EXPORT_INTERVAL: Duration = Duration::from_secs(5);

/// Throttles exports: Workers have no timers that outlive a request, so the
/// adapter asks after each request whether an export is [`due`](Self::due)
/// and, if so, sends the cumulative registry in that request's
/// `wait_until`. The first request of an isolate exports at once (the new
/// series becomes visible), later ones at most once per interval. An idle
/// isolate sends nothing — with cumulative values nothing is lost: the next
/// export carries the totals.
#[derive(Debug)]
pub struct ExportSchedule {
    interval: Duration,
    last: Cell<Option<Instant>>,
}

impl ExportSchedule {
    pub fn new(interval: Duration) -> Self {
        ExportSchedule {
            interval,
            last: Cell::new(None),
        }
    }

    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// True when nothing was exported yet or `interval` has passed since the
    /// last export; a `true` answer counts as exporting at `now`.
    pub fn due(&self, now: Instant) -> bool {
        let due = match self.last.get() {
            None => true,
            Some(last) => now.saturating_duration_since(last) >= self.interval,
        };
        if due {
            self.last.set(Some(now));
        }
        due
    }
}

impl Default for ExportSchedule {
    fn default() -> Self {
        ExportSchedule::new(DEFAULT_EXPORT_INTERVAL)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_call_is_due_then_at_most_once_per_interval() {
        let schedule = ExportSchedule::new(Duration::from_secs(5));
        let t0 = Instant::default() + Duration::from_secs(100);
        assert!(schedule.due(t0), "the first request exports");
        assert!(!schedule.due(t0));
        assert!(!schedule.due(t0 + Duration::from_millis(4999)));
        assert!(schedule.due(t0 + Duration::from_secs(5)));
        assert!(
            !schedule.due(t0 + Duration::from_secs(9)),
            "counted from the last export"
        );
        assert!(schedule.due(t0 + Duration::from_secs(10)));
        // A clock that steps back never exports early nor panics.
        assert!(!schedule.due(t0));
    }
}
