//! Budgets in this process: one map from client key to its GCRA time. Each replica has
//! its own budgets (use the Redis backend to share them).
//!
//! Memory is bounded: a client whose budget is full again holds no information, so such
//! entries are dropped every [`SWEEP_EVERY`] checks; and the map never holds more than
//! [`MAX_KEYS`] clients (a new client beyond that is let through unlimited, with a
//! warning, rather than evicting clients that are being limited).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use async_trait::async_trait;

use super::{Decision, Limiter, LimiterUnavailable, Quota, gcra};

/// Most clients tracked at once (about 100 bytes each).
pub const MAX_KEYS: usize = 100_000;
/// Checks between two sweeps of idle clients.
pub const SWEEP_EVERY: u64 = 4096;

/// The in-process limiter.
#[derive(Debug)]
pub struct MemoryLimiter {
    started: Instant,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    tats: HashMap<String, f64>,
    checks: u64,
    last_sweep: f64,
}

impl Default for MemoryLimiter {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            state: Mutex::new(State::default()),
        }
    }
}

impl MemoryLimiter {
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

    /// The synchronous check, at `now` ms since this limiter started.
    pub fn check_at(&self, key: &str, quota: Quota, now: f64) -> Decision {
        let mut state = self.lock();
        state.checks += 1;
        let full = state.tats.len() >= MAX_KEYS && now - state.last_sweep >= 1000.0;
        if state.checks.is_multiple_of(SWEEP_EVERY) || full {
            // A time in the past means a full budget: nothing worth keeping.
            state.tats.retain(|_, tat| *tat > now);
            state.last_sweep = now;
        }
        let known = state.tats.get(key).copied();
        let (next, decision) = gcra(known, now, quota);
        if let Some(next) = next {
            if let Some(tat) = state.tats.get_mut(key) {
                // A known client: no new key allocated.
                *tat = next;
            } else if state.tats.len() < MAX_KEYS {
                state.tats.insert(key.to_owned(), next);
            } else {
                tracing::warn!(
                    rate_limit.max_keys = MAX_KEYS,
                    "rate limiter is tracking its maximum number of clients; a new client is not limited"
                );
            }
        }
        decision
    }
}

#[async_trait]
impl Limiter for MemoryLimiter {
    async fn check(&self, key: &str, quota: Quota) -> Result<Decision, LimiterUnavailable> {
        let now = self.started.elapsed().as_secs_f64() * 1000.0;
        Ok(self.check_at(key, quota, now))
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
}
