use std::time::Duration;

use workmesh::{Instant, LocalBoxFuture, Runtime};

/// The Workers runtime: `Date.now()` for the clock, `setTimeout` (through
/// [`worker::Delay`]) for sleeping, `crypto.getRandomValues` for randomness.
#[derive(Clone, Copy, Debug, Default)]
pub struct WorkerRuntime;

impl Runtime for WorkerRuntime {
    fn now(&self) -> Instant {
        // Date.now() is milliseconds since the Unix epoch, never negative.
        let millis = js_sys::Date::now().max(0.0);
        Instant::from_epoch(Duration::from_secs_f64(millis / 1000.0))
    }

    fn sleep(&self, duration: Duration) -> LocalBoxFuture<'static, ()> {
        Box::pin(worker::Delay::from(duration))
    }

    fn random(&self) -> f64 {
        let mut bytes = [0u8; 8];
        if getrandom::fill(&mut bytes).is_err() {
            // crypto.getRandomValues is always present in workerd; should it
            // ever fail, Math.random keeps jitter working rather than panicking.
            return js_sys::Math::random();
        }
        (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// 64 bits from `crypto.getRandomValues`, for trace and span ids.
    fn random_u64(&self) -> u64 {
        let mut bytes = [0u8; 8];
        if getrandom::fill(&mut bytes).is_err() {
            let high = (js_sys::Math::random() * 4_294_967_296.0) as u64;
            let low = (js_sys::Math::random() * 4_294_967_296.0) as u64;
            return (high << 32) | (low & 0xFFFF_FFFF);
        }
        u64::from_le_bytes(bytes)
    }
}
