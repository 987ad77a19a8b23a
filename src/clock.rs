//! The time that rate-limit budgets and caches are measured in: the monotonic clock, plus
//! a skew that only tests move ([`Clock::advance`]), so a test can let a budget refill or
//! a cache entry expire without sleeping. Real time keeps passing underneath (the service
//! still does real I/O with real timeouts), which tokio's paused time would not allow.
//!
//! `App::build` uses [`Clock::default`]; tests pass their own to `App::build_with_clock`
//! and keep a clone to advance. Clones share the skew.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A monotonic clock that can be moved forward.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    /// Nanoseconds added to the monotonic clock.
    skew: Arc<AtomicU64>,
}

impl Clock {
    /// Now, as this clock sees it.
    pub fn now(&self) -> Instant {
        Instant::now() + Duration::from_nanos(self.skew.load(Ordering::Relaxed))
    }

    /// Moves this clock (and every clone of it) forward by `by`.
    pub fn advance(&self, by: Duration) {
        let nanos = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.skew.fetch_add(nanos, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_advanced_clock_and_its_clones_are_ahead_of_real_time() {
        let clock = Clock::default();
        let clone = clock.clone();

        clock.advance(Duration::from_secs(60));

        assert!(clone.now() >= Instant::now() + Duration::from_secs(59));
    }
}
