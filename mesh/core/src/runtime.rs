//! The runtime seam: clock, sleep and randomness.
//!
//! Workers have no tokio, no threads and no `std::time` (both `Instant::now`
//! and `SystemTime::now` panic on wasm32-unknown-unknown). Every layer that
//! waits, reads a clock or rolls a die takes a [`Runtime`] instead: Workers get
//! one built on `Date.now()`, `setTimeout` and `crypto.getRandomValues`
//! (`workmesh_worker::WorkerRuntime`); native code and tests get
//! [`TokioRuntime`], whose clock is tokio's, so tests under paused time are
//! exact and instant.
//!
//! Futures are `!Send` here on purpose: nothing in a Worker is `Send`.

use std::future::Future;
use std::ops::{Add, Sub};
use std::pin::Pin;
use std::time::Duration;

/// A boxed future that need not be `Send` (Workers futures never are).
pub type LocalBoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// A point in time on a runtime's clock: the time since the runtime's epoch.
///
/// Only differences between two `Instant`s of the same runtime mean anything.
/// In Workers the epoch is the Unix epoch and the clock is `Date.now()`, which
/// advances only across I/O (a Spectre mitigation), so durations measured
/// around pure computation read as zero; they are never negative.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(Duration);

impl Instant {
    pub const fn from_epoch(since_epoch: Duration) -> Self {
        Instant(since_epoch)
    }

    pub const fn since_epoch(self) -> Duration {
        self.0
    }

    /// The time from `earlier` to `self`, or zero if `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Instant) -> Duration {
        self.0.saturating_sub(earlier.0)
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, rhs: Duration) -> Instant {
        Instant(self.0.saturating_add(rhs))
    }
}

impl Sub<Duration> for Instant {
    type Output = Instant;
    fn sub(self, rhs: Duration) -> Instant {
        Instant(self.0.saturating_sub(rhs))
    }
}

/// Clock, timer and randomness for one isolate or one native process.
pub trait Runtime: Clone + 'static {
    /// Now, on this runtime's clock.
    fn now(&self) -> Instant;

    /// Completes after `duration`.
    fn sleep(&self, duration: Duration) -> LocalBoxFuture<'static, ()>;

    /// A uniformly distributed number in `[0, 1)`.
    fn random(&self) -> f64;

    /// 64 random bits, for trace and span ids. The default joins the top 32
    /// bits of two [`random`](Self::random) draws; a runtime with a native
    /// source of random words (`crypto.getRandomValues`) should override it.
    fn random_u64(&self) -> u64 {
        let high = (self.random() * 4_294_967_296.0) as u64;
        let low = (self.random() * 4_294_967_296.0) as u64;
        (high << 32) | (low & 0xFFFF_FFFF)
    }
}

#[cfg(feature = "tokio")]
pub use self::tokio_runtime::TokioRuntime;

#[cfg(feature = "tokio")]
mod tokio_runtime {
    use super::*;
    use std::cell::Cell;
    use std::rc::Rc;

    /// The native runtime: tokio's clock (pausable in tests) and a seeded
    /// xorshift generator, so test runs are reproducible.
    #[derive(Clone, Debug)]
    pub struct TokioRuntime {
        epoch: tokio::time::Instant,
        rng: Rc<Cell<u64>>,
    }

    impl TokioRuntime {
        /// A runtime whose random numbers follow from `seed`.
        pub fn with_seed(seed: u64) -> Self {
            TokioRuntime {
                epoch: tokio::time::Instant::now(),
                rng: Rc::new(Cell::new(seed.max(1))),
            }
        }
    }

    impl Default for TokioRuntime {
        fn default() -> Self {
            Self::with_seed(0x9E37_79B9_7F4A_7C15)
        }
    }

    impl Runtime for TokioRuntime {
        fn now(&self) -> Instant {
            Instant::from_epoch(self.epoch.elapsed())
        }

        fn sleep(&self, duration: Duration) -> LocalBoxFuture<'static, ()> {
            Box::pin(tokio::time::sleep(duration))
        }

        fn random(&self) -> f64 {
            // xorshift64*: fast, good enough for jitter and sampling.
            let mut x = self.rng.get();
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            self.rng.set(x);
            let out = x.wrapping_mul(0x2545_F491_4F6C_DD1D);
            (out >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[tokio::test(start_paused = true)]
        async fn clock_follows_paused_tokio_time() {
            let rt = TokioRuntime::default();
            let start = rt.now();
            rt.sleep(Duration::from_millis(250)).await;
            assert_eq!(
                rt.now().saturating_duration_since(start),
                Duration::from_millis(250)
            );
        }

        #[test]
        fn random_is_in_unit_interval() {
            let rt = TokioRuntime::with_seed(7);
            for _ in 0..10_000 {
                let x = rt.random();
                assert!((0.0..1.0).contains(&x));
            }
        }
    }
}
