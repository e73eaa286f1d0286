use std::time::Duration;

use crate::Instant;

/// A peak-sensitive exponentially weighted moving average of latency.
#[derive(Clone, Debug)]
pub struct PeakEwma {
    estimate_ms: f64,
    decay_ms: f64,
    updated: Instant,
}

impl PeakEwma {
    pub fn new(seed: Duration, decay: Duration, now: Instant) -> Self {
        PeakEwma {
            estimate_ms: seed.as_secs_f64() * 1e3,
            decay_ms: (decay.as_secs_f64() * 1e3).max(1.0),
            updated: now,
        }
    }

    /// The estimate in milliseconds.
    pub fn estimate_ms(&self) -> f64 {
        self.estimate_ms
    }

    /// Records a latency: a peak replaces the estimate, a lower value is
    /// blended in by how long it has been since the last update.
    pub fn observe(&mut self, rtt: Duration, now: Instant) {
        let rtt_ms = rtt.as_secs_f64() * 1e3;
        if rtt_ms > self.estimate_ms {
            self.estimate_ms = rtt_ms;
        } else {
            let elapsed_ms = now.saturating_duration_since(self.updated).as_secs_f64() * 1e3;
            let keep = (-elapsed_ms / self.decay_ms).exp();
            self.estimate_ms = self.estimate_ms * keep + rtt_ms * (1.0 - keep);
        }
        self.updated = now;
    }

    /// Records a latency that may only raise the estimate (for failures).
    pub fn observe_peak(&mut self, rtt: Duration, now: Instant) {
        let rtt_ms = rtt.as_secs_f64() * 1e3;
        if rtt_ms > self.estimate_ms {
            self.estimate_ms = rtt_ms;
            self.updated = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Instant {
        Instant::from_epoch(Duration::from_millis(ms))
    }

    #[test]
    fn peaks_replace_and_lower_values_decay_in() {
        let mut e = PeakEwma::new(Duration::from_millis(30), Duration::from_secs(10), at(0));
        assert_eq!(e.estimate_ms(), 30.0);
        e.observe(Duration::from_millis(100), at(10));
        assert_eq!(e.estimate_ms(), 100.0);
        // 10 s later (one time constant), a 0 ms sample keeps e^-1 of the estimate.
        e.observe(Duration::ZERO, at(10_010));
        assert!((e.estimate_ms() - 100.0 / std::f64::consts::E).abs() < 1e-9);
        // A sample right after barely moves it.
        let before = e.estimate_ms();
        e.observe(Duration::ZERO, at(10_011));
        assert!(before - e.estimate_ms() < 0.01);
        e.observe_peak(Duration::from_millis(1), at(10_012));
        assert!(e.estimate_ms() > 30.0, "a fast failure must not lower it");
    }
}
