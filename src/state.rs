//! `AppState`: what handlers share. Cheap to clone; nothing in it differs between replicas
//! in a way a client could notice.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use axum::extract::FromRef;
use tokio::sync::Mutex;

use crate::auth::accounts::Accounts;
use crate::clock::Clock;
use crate::config::Settings;
use crate::ratelimit::RateLimits;
use crate::storage::DynStore;

/// Shared application state.
#[derive(Clone)]
pub struct AppState {
    /// The catalog store.
    pub store: DynStore,
    /// Settings as loaded at start-up.
    pub settings: Arc<Settings>,
    /// Readiness flags and the cached readiness check.
    pub readiness: Arc<Readiness>,
    /// Authentication and account use cases.
    pub accounts: Accounts,
    /// Rate-limit budgets and where they live.
    pub rate_limits: Arc<RateLimits>,
}

impl AppState {
    /// Bundles the parts.
    ///
    /// # Errors
    /// Invalid Argon2 parameters, token keys or Redis URL.
    pub fn new(store: DynStore, settings: Settings) -> anyhow::Result<Self> {
        Self::with_clock(store, settings, &Clock::default())
    }

    /// Bundles the parts; budgets and caches read the time from `clock`.
    ///
    /// # Errors
    /// Invalid Argon2 parameters, token keys or Redis URL.
    pub fn with_clock(store: DynStore, settings: Settings, clock: &Clock) -> anyhow::Result<Self> {
        Ok(Self {
            accounts: Accounts::new(store.clone(), &settings.auth, clock)?,
            rate_limits: Arc::new(RateLimits::from_settings(&settings.rate_limit, clock)?),
            store,
            settings: Arc::new(settings),
            readiness: Arc::new(Readiness::new(clock.clone())),
        })
    }
}

impl FromRef<AppState> for DynStore {
    fn from_ref(state: &AppState) -> Self {
        state.store.clone()
    }
}

/// The result of one database readiness check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DatabaseCheck {
    /// Whether the database answered within the deadline.
    pub is_up: bool,
    /// Round-trip time in milliseconds.
    pub latency_ms: u64,
    /// Migrations known to this build but not applied (`None` when it could not be read).
    pub pending_migrations: Option<usize>,
}

/// Shutdown flag and the last database check, shared by the readiness probe.
#[derive(Debug, Default)]
pub struct Readiness {
    is_draining: AtomicBool,
    /// The clock the cached check's age is measured on.
    clock: Clock,
    /// Held while a check runs, so concurrent probes share one database round trip.
    last_check: Mutex<Option<(Instant, DatabaseCheck)>>,
}

impl Readiness {
    /// Not draining, nothing checked yet; ages measured on `clock`.
    pub fn new(clock: Clock) -> Self {
        Self {
            clock,
            ..Self::default()
        }
    }

    /// Marks the start of shutdown: readiness answers 503 from now on.
    pub fn start_draining(&self) {
        self.is_draining.store(true, Ordering::SeqCst);
    }

    /// Whether shutdown has begun.
    pub fn is_draining(&self) -> bool {
        self.is_draining.load(Ordering::SeqCst)
    }

    /// The cached check if younger than `max_age`, otherwise the result of `run`, cached.
    pub async fn database_check<Fut>(
        &self,
        max_age: std::time::Duration,
        run: impl FnOnce() -> Fut,
    ) -> DatabaseCheck
    where
        Fut: Future<Output = DatabaseCheck>,
    {
        let mut last = self.last_check.lock().await;
        if let Some((at, check)) = *last
            && self.clock.now() - at < max_age
        {
            return check;
        }
        let check = run().await;
        *last = Some((self.clock.now(), check));
        check
    }
}
