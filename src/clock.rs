//! The time that rate-limit budgets and caches are measured in: the monotonic clock, plus
//! a skew that only tests move ([`Clock::advance`]), so a test can let a budget refill or
//! a cache entry expire without sleeping. Real time keeps passing underneath (the service
//! still does real I/O with real timeouts), which tokio's paused time would not allow.
//!
//! `App::build` uses [`Clock::default`]; tests pass their own to `App::build_with_clock`
//! and keep a clone to advance. Clones share the skew.

use std::cell::RefCell;
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

    /// The clock set by [`Clock::install_while`] on this thread, else the plain one.
    ///
    /// For parts built by code that does not take a clock (the caches `Accounts::new`
    /// makes); everything else takes its clock as an argument.
    pub fn current() -> Self {
        BUILDING.with(|current| current.borrow().clone().unwrap_or_default())
    }

    /// Runs `build` (synchronous construction code) with `self` as [`Clock::current`].
    pub fn install_while<T>(&self, build: impl FnOnce() -> T) -> T {
        let previous = BUILDING.with(|current| current.replace(Some(self.clone())));
        let built = build();
        BUILDING.with(|current| *current.borrow_mut() = previous);
        built
    }
}

thread_local! {
    /// The clock of the parts being built on this thread (see [`Clock::install_while`]).
    static BUILDING: RefCell<Option<Clock>> = const { RefCell::new(None) };
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

    #[test]
    fn the_installed_clock_is_current_only_while_building() {
        let clock = Clock::default();
        clock.advance(Duration::from_secs(60));

        let inside = clock.install_while(Clock::current);

        assert!(inside.now() >= Instant::now() + Duration::from_secs(59));
        assert!(Clock::current().now() < Instant::now() + Duration::from_secs(59));
    }
}
