//! Budgets in this process: one map from client key to its GCRA time. Each replica has
//! its own budgets (use the Redis backend to share them).
//!
//! Memory is bounded: a client whose budget is full again holds no information, so such
//! entries are dropped every [`SWEEP_EVERY`] checks; and the map never holds more than
//! [`MAX_KEYS`] clients. When it is full of clients still being limited, the least
//! recently seen are forgotten until a tenth is free: a new client is always limited, never
//! let through free (a flood of fresh addresses can only make old, quiet clients start
//! over with a full budget).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use async_trait::async_trait;

use crate::clock::Clock;

use super::{Decision, Limiter, LimiterUnavailable, Quota, gcra};

/// Most clients tracked at once (about 100 bytes each).
pub const MAX_KEYS: usize = 100_000;
/// Checks between two sweeps of idle clients.
pub const SWEEP_EVERY: u64 = 4096;
/// When the map is full, room is made for `MAX_KEYS / EVICT_DIVISOR` new clients.
const EVICT_DIVISOR: usize = 10;

/// The in-process limiter.
#[derive(Debug)]
pub struct MemoryLimiter {
    clock: Clock,
    /// Time zero of the limiter's milliseconds, on `clock`.
    started: Instant,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Client key → (theoretical arrival time, last seen), both in ms.
    tats: HashMap<String, (f64, f64)>,
    checks: u64,
}

impl Default for MemoryLimiter {
    fn default() -> Self {
        Self::new(Clock::default())
    }
}

impl MemoryLimiter {
    /// An empty limiter that reads the time from `clock`.
    pub fn new(clock: Clock) -> Self {
        Self {
            started: clock.now(),
            clock,
            state: Mutex::new(State::default()),
        }
    }

    /// Clients currently tracked.
    pub fn len(&self) -> usize {
        self.lock().tats.len()
    }

    /// Whether no client is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The synchronous check, now.
    pub fn check_now(&self, key: &str, quota: Quota) -> Decision {
        let now = (self.clock.now() - self.started).as_secs_f64() * 1000.0;
        self.check_at(key, quota, now)
    }

    /// The synchronous check, at `now` ms since this limiter started.
    pub fn check_at(&self, key: &str, quota: Quota, now: f64) -> Decision {
        let mut state = self.lock();
        state.checks += 1;
        if state.checks.is_multiple_of(SWEEP_EVERY) {
            // A time in the past means a full budget: nothing worth keeping.
            state.tats.retain(|_, (tat, _)| *tat > now);
        }
        let known = state.tats.get(key).map(|(tat, _)| *tat);
        let (next, decision) = gcra(known, now, quota);
        if let Some((tat, seen)) = state.tats.get_mut(key) {
            // A known client: no new key allocated.
            if let Some(next) = next {
                *tat = next;
            }
            *seen = now;
        } else if let Some(next) = next {
            if state.tats.len() >= MAX_KEYS {
                make_room(&mut state, now);
            }
            state.tats.insert(key.to_owned(), (next, now));
        }
        decision
    }
}

/// Drops the clients whose budget is full again; if that leaves the map above nine tenths
/// of [`MAX_KEYS`], also the least recently seen down to that mark. Freeing a tenth at once
/// keeps this O(n) pass rare (once per `MAX_KEYS / 10` new clients at most), even under a
/// flood of fresh addresses.
fn make_room(state: &mut State, now: f64) {
    state.tats.retain(|_, (tat, _)| *tat > now);
    let mark = MAX_KEYS - MAX_KEYS / EVICT_DIVISOR;
    let Some(excess) = state.tats.len().checked_sub(mark).filter(|n| *n > 0) else {
        return;
    };
    let mut seen: Vec<f64> = state.tats.values().map(|(_, seen)| *seen).collect();
    let (_, newest_dropped, _) = seen.select_nth_unstable_by(excess - 1, f64::total_cmp);
    let newest_dropped = *newest_dropped;
    // Ties at the cut go too, so at least `excess` are freed.
    state.tats.retain(|_, (_, seen)| *seen > newest_dropped);
    tracing::warn!(
        rate_limit.max_keys = MAX_KEYS,
        "rate limiter was tracking its maximum number of clients; forgot the least recently seen"
    );
}

#[async_trait]
impl Limiter for MemoryLimiter {
    async fn check(&self, key: &str, quota: Quota) -> Result<Decision, LimiterUnavailable> {
        Ok(self.check_now(key, quota))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUOTA: Quota = Quota {
        per_minute: 60,
        burst: 2,
    };

    #[test]
    fn clients_have_separate_budgets() {
        let limiter = MemoryLimiter::default();

        let a: Vec<bool> = (0..3)
            .map(|_| limiter.check_at("a", QUOTA, 0.0).allowed)
            .collect();
        let b = limiter.check_at("b", QUOTA, 0.0).allowed;

        assert_eq!(a, [true, true, false]);
        assert!(b);
    }

    #[test]
    fn idle_clients_are_swept_away() {
        let limiter = MemoryLimiter::default();
        for i in 0..1000 {
            limiter.check_at(&format!("client-{i}"), QUOTA, 0.0);
        }
        assert_eq!(limiter.len(), 1000);

        // Long after, every budget is full again; the next sweep drops them all.
        for _ in 0..SWEEP_EVERY {
            limiter.check_at("active", QUOTA, 1_000_000.0);
        }

        assert_eq!(limiter.len(), 1);
    }

    #[test]
    fn a_full_limiter_still_limits_new_clients_and_forgets_the_quietest() {
        let limiter = MemoryLimiter::default();
        for i in 0..MAX_KEYS {
            limiter.check_at(&format!("client-{i}"), QUOTA, 0.0);
        }
        // The first client is seen again, so it is not among the least recently seen.
        limiter.check_at("client-0", QUOTA, 1.0);

        let fresh: Vec<bool> = (0..3)
            .map(|_| limiter.check_at("fresh", QUOTA, 2.0).allowed)
            .collect();

        assert_eq!(fresh, [true, true, false]);
        assert!(limiter.len() <= MAX_KEYS, "{}", limiter.len());
        assert!(!limiter.check_at("client-0", QUOTA, 3.0).allowed);
        // A tenth was freed at once, so the next new clients need no second pass.
        assert!(
            limiter.len() <= MAX_KEYS - MAX_KEYS / 10 + 1,
            "{}",
            limiter.len()
        );
    }
}
