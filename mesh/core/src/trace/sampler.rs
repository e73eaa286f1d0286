//! Head sampling: the decision is made once, at the root of a trace, and
//! travels in the `sampled` flag of `traceparent`; every later hop follows it.

use super::context::TraceId;

/// Decides whether a new trace is recorded.
///
/// The decision is a pure function of the trace id, as OpenTelemetry's
/// `TraceIdRatioBased`: the low 56 bits of the id, read as a number, are
/// compared with `ratio * 2^56`. Any service that sees the same id with the
/// same ratio makes the same call, with no coordination.
///
/// `keep_errors` (default on) is workmesh's "tail-keep errors" rule: spans
/// of an unsampled trace are still recorded provisionally in the request's
/// collector, and kept if any of them ends with an error status; otherwise
/// they are discarded when the collector is drained. It costs unsampled
/// requests the recording work (see `benches/trace.rs`) and buys every
/// failing request's spans. Other hops keep their own spans only if they
/// themselves failed or sampled, so a kept unsampled trace may be partial.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sampler {
    ratio: f64,
    keep_errors: bool,
}

impl Default for Sampler {
    /// Everything sampled; errors kept (moot at ratio 1).
    fn default() -> Self {
        Sampler::ratio(1.0)
    }
}

impl Sampler {
    /// Samples `ratio` of new traces (clamped to `[0, 1]`; NaN is 0) and
    /// keeps unsampled requests that fail.
    pub fn ratio(ratio: f64) -> Self {
        let ratio = if ratio.is_nan() {
            0.0
        } else {
            ratio.clamp(0.0, 1.0)
        };
        Sampler {
            ratio,
            keep_errors: true,
        }
    }

    /// Records nothing that was not sampled, even errors: the cheapest
    /// setting for unsampled requests.
    pub fn without_error_keeping(mut self) -> Self {
        self.keep_errors = false;
        self
    }

    pub fn sampling_ratio(&self) -> f64 {
        self.ratio
    }

    /// Whether unsampled spans are recorded provisionally (tail-keep errors).
    pub fn keeps_errors(&self) -> bool {
        self.keep_errors
    }

    /// The head decision for a new root trace.
    pub fn should_sample(&self, trace_id: TraceId) -> bool {
        const SPAN: u64 = 1 << 56;
        let value = (trace_id.to_u128() as u64) & (SPAN - 1);
        // ratio 1 must sample every id, including the largest.
        if self.ratio >= 1.0 {
            return true;
        }
        value < (self.ratio * SPAN as f64) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extremes_are_all_or_nothing() {
        for id in [1u128, 42, u128::MAX, 1 << 100] {
            assert!(Sampler::ratio(1.0).should_sample(TraceId::from_u128(id)));
            assert!(!Sampler::ratio(0.0).should_sample(TraceId::from_u128(id)));
            assert!(!Sampler::ratio(f64::NAN).should_sample(TraceId::from_u128(id)));
        }
    }

    #[test]
    fn ratio_is_deterministic_and_close_to_the_target() {
        let sampler = Sampler::ratio(0.25);
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut sampled = 0;
        for _ in 0..20_000 {
            // splitmix64 ids, so the low bits are uniform
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            let id = TraceId::from_u128(u128::from(z ^ (z >> 31)));
            let decision = sampler.should_sample(id);
            assert_eq!(decision, sampler.should_sample(id));
            sampled += usize::from(decision);
        }
        let ratio = sampled as f64 / 20_000.0;
        assert!((0.23..0.27).contains(&ratio), "{ratio}");
    }
}
