//! Per-client request budgets with the generic cell rate algorithm (GCRA): a client may
//! make `burst` requests at once, then one every `60 / per_minute` seconds. One number per
//! client (its "theoretical arrival time") is the whole state, so the same algorithm runs
//! in process ([`memory::MemoryLimiter`]) and in Redis ([`redis::RedisLimiter`], a Lua
//! script), and every replica computes the same headers.
//!
//! Written here rather than taken from `governor`: the Redis backend needs the algorithm
//! as a script anyway, and one shared definition keeps the two backends and their
//! `RateLimit-*` numbers identical; the arithmetic is a dozen lines with unit tests.

pub mod memory;
pub mod redis;

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use ipnet::IpNet;

use crate::clock::Clock;
use crate::config::{RateLimitBackend, RateLimitSettings, parse_cidr};

/// While the configured limiter fails, it is asked again at most this often; the checks
/// in between are decided by this replica's own budgets at once, so a Redis that does not
/// answer does not add `rate_limit.redis_timeout_ms` to every request.
pub const OUTAGE_PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// A budget: `burst` requests at once, `per_minute` sustained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Sustained requests per minute.
    pub per_minute: u32,
    /// Requests allowed at once after idling.
    pub burst: u32,
}

impl Quota {
    /// Milliseconds between two requests at the sustained rate.
    pub fn emission_ms(&self) -> f64 {
        60_000.0 / f64::from(self.per_minute.max(1))
    }
}

/// The outcome of one check, with what the `RateLimit-*` headers report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// The burst size (`RateLimit-Limit`).
    pub limit: u32,
    /// Requests still allowed at once (`RateLimit-Remaining`).
    pub remaining: u32,
    /// Seconds until the budget is full again (`RateLimit-Reset`).
    pub reset_secs: u64,
    /// When refused: seconds until the next request is allowed (`Retry-After`).
    pub retry_after_secs: u64,
}

/// One GCRA step. `tat` is the stored theoretical arrival time (ms, same clock as `now`),
/// `None` for an unknown client. Returns the new time to store (only when allowed) and
/// the decision.
pub fn gcra(tat: Option<f64>, now: f64, quota: Quota) -> (Option<f64>, Decision) {
    let interval = quota.emission_ms();
    let capacity = interval * f64::from(quota.burst.max(1));
    let tat = tat.map_or(now, |t| t.max(now));
    let next = tat + interval;
    let secs = |ms: f64| (ms.max(0.0) / 1000.0).ceil() as u64;
    if next - now <= capacity + 1e-6 {
        let remaining = ((now + capacity - next) / interval + 1e-6).floor().max(0.0) as u32;
        (
            Some(next),
            Decision {
                allowed: true,
                limit: quota.burst,
                remaining,
                reset_secs: secs(next - now),
                retry_after_secs: 0,
            },
        )
    } else {
        (
            None,
            Decision {
                allowed: false,
                limit: quota.burst,
                remaining: 0,
                reset_secs: secs(tat - now),
                retry_after_secs: secs(next - capacity - now).max(1),
            },
        )
    }
}

/// Why a limiter could not decide.
#[derive(Debug, thiserror::Error)]
#[error("rate limiter unavailable")]
pub struct LimiterUnavailable(#[source] pub anyhow::Error);

/// A place where budgets are kept.
#[async_trait]
pub trait Limiter: Send + Sync + 'static {
    /// Spends one request of `key`'s budget under `quota`.
    ///
    /// # Errors
    /// The backing store failed (Redis unreachable or slow).
    async fn check(&self, key: &str, quota: Quota) -> Result<Decision, LimiterUnavailable>;
}

/// Which budget a request spends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// `/v1` except `/v1/auth`.
    Api,
    /// `/v1/auth/*` (stricter: login and registration).
    Auth,
}

impl Scope {
    /// The scope's name in keys and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::Auth => "auth",
        }
    }
}

/// The configured limiter and budgets, as the HTTP layer uses them.
pub struct RateLimits {
    /// Whether limiting is on.
    pub enabled: bool,
    /// Where budgets live.
    pub limiter: Arc<dyn Limiter>,
    /// `/v1` budget.
    pub api: Quota,
    /// `/v1/auth` budget.
    pub auth: Quota,
    /// Budgets kept in this process while the configured limiter does not answer (a
    /// Redis outage): each replica then limits on its own, never unlimited.
    fallback: memory::MemoryLimiter,
    /// Whether the configured limiter is failing (an outage is logged once, not per
    /// request).
    in_outage: AtomicBool,
    /// During an outage: when (ms after `started`) the configured limiter may be asked
    /// again.
    next_probe_ms: AtomicU64,
    /// The clock of `next_probe_ms` and of the in-process budgets.
    clock: Clock,
    /// Time zero of `next_probe_ms`, on `clock`.
    started: Instant,
    /// Client networks that are never limited (`rate_limit.exempt_clients`).
    exempt: Vec<IpNet>,
    /// IPv6 clients are counted per network of this prefix length.
    ipv6_prefix_len: u8,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits")
            .field("enabled", &self.enabled)
            .field("api", &self.api)
            .field("auth", &self.auth)
            .field("ipv6_prefix_len", &self.ipv6_prefix_len)
            .field("exempt", &self.exempt)
            .finish_non_exhaustive()
    }
}

impl RateLimits {
    /// Builds the limiter `settings` name (Redis is connected on first use); in-process
    /// budgets and the outage probe read the time from `clock` (Redis uses its own).
    ///
    /// # Errors
    /// An invalid Redis URL.
    pub fn from_settings(settings: &RateLimitSettings, clock: &Clock) -> anyhow::Result<Self> {
        let limiter: Arc<dyn Limiter> = match (settings.backend, &settings.redis_url) {
            (RateLimitBackend::Redis, Some(url)) => Arc::new(redis::RedisLimiter::new(
                url,
                &settings.redis_key_prefix,
                Duration::from_millis(settings.redis_timeout_ms),
            )?),
            (RateLimitBackend::Redis, None) => {
                anyhow::bail!("rate_limit.redis_url must be set when rate_limit.backend is redis")
            }
            (RateLimitBackend::Memory, _) => Arc::new(memory::MemoryLimiter::new(clock.clone())),
        };
        Ok(Self {
            enabled: settings.enabled,
            limiter,
            api: Quota {
                per_minute: settings.requests_per_minute,
                burst: settings.burst,
            },
            auth: Quota {
                per_minute: settings.auth_requests_per_minute,
                burst: settings.auth_burst,
            },
            fallback: memory::MemoryLimiter::new(clock.clone()),
            in_outage: AtomicBool::new(false),
            next_probe_ms: AtomicU64::new(0),
            started: clock.now(),
            clock: clock.clone(),
            ipv6_prefix_len: settings.ipv6_prefix_len,
            // Entries were validated at start-up; nothing unparsable is left to drop.
            exempt: settings
                .exempt_clients
                .iter()
                .filter_map(|client| parse_cidr(client))
                .collect(),
        })
    }

    /// Whether requests from `client` (a resolved client address) are never limited.
    pub fn is_exempt(&self, client: IpAddr) -> bool {
        // `::ffff:1.2.3.4` is 1.2.3.4, so IPv4 entries match on dual-stack sockets.
        let client = match client {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(client, IpAddr::V4),
            v4 => v4,
        };
        self.exempt.iter().any(|net| net.contains(&client))
    }

    /// The budget of `scope`.
    pub fn quota(&self, scope: Scope) -> Quota {
        match scope {
            Scope::Api => self.api,
            Scope::Auth => self.auth,
        }
    }

    /// The budget client of an address: IPv4 as it is, IPv6 by its network of
    /// `rate_limit.ipv6_prefix_len` bits (one host usually holds a whole /64, so counting
    /// per /128 would give it unlimited fresh budgets).
    pub fn client_network(&self, client: IpAddr) -> IpAddr {
        match client {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => ipnet::Ipv6Net::new(v6, self.ipv6_prefix_len)
                    .map_or(client, |net| IpAddr::V6(net.network())),
            },
            v4 => v4,
        }
    }

    /// Spends one request of `key`'s budget under `quota`: with the configured limiter,
    /// or, while it does not answer, with this replica's own budgets (never unlimited,
    /// never refused for that reason). During an outage the configured limiter is asked
    /// again once per [`OUTAGE_PROBE_INTERVAL`]. An outage is logged once when it starts
    /// (error) and once when it ends (warning); every check it did not decide is counted
    /// on `rate_limit_backend_errors_total`.
    pub async fn check(&self, key: &str, quota: Quota) -> Decision {
        if self.in_outage.load(Ordering::Relaxed) && !self.may_probe() {
            return self.fall_back(key, quota);
        }
        match self.limiter.check(key, quota).await {
            Ok(decision) => {
                if self.in_outage.swap(false, Ordering::Relaxed) {
                    tracing::warn!("rate limiter answers again; shared budgets are back");
                }
                decision
            }
            Err(error) => {
                self.next_probe_ms.store(
                    self.now_ms().saturating_add(probe_interval_ms()),
                    Ordering::Relaxed,
                );
                if !self.in_outage.swap(true, Ordering::Relaxed) {
                    tracing::error!(
                        error = ?error.0,
                        "rate limiter unavailable; each replica limits with its own budgets \
                         until it answers"
                    );
                }
                self.fall_back(key, quota)
            }
        }
    }

    /// Whether this check may ask the failing limiter again (one check per interval wins).
    fn may_probe(&self) -> bool {
        let now = self.now_ms();
        let due = self.next_probe_ms.load(Ordering::Relaxed);
        now >= due
            && self
                .next_probe_ms
                .compare_exchange(
                    due,
                    now.saturating_add(probe_interval_ms()),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
    }

    fn fall_back(&self, key: &str, quota: Quota) -> Decision {
        metrics::counter!(crate::telemetry::metrics::RATE_LIMIT_BACKEND_ERRORS_TOTAL).increment(1);
        self.fallback.check_now(key, quota)
    }

    fn now_ms(&self) -> u64 {
        u64::try_from((self.clock.now() - self.started).as_millis()).unwrap_or(u64::MAX)
    }
}

fn probe_interval_ms() -> u64 {
    u64::try_from(OUTAGE_PROBE_INTERVAL.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUOTA: Quota = Quota {
        per_minute: 60,
        burst: 3,
    };

    fn run(times: &[f64]) -> Vec<Decision> {
        let mut tat = None;
        times
            .iter()
            .map(|&now| {
                let (next, decision) = gcra(tat, now, QUOTA);
                if next.is_some() {
                    tat = next;
                }
                decision
            })
            .collect()
    }

    #[test]
    fn a_burst_is_allowed_then_one_per_interval() {
        let decisions = run(&[0.0, 0.0, 0.0, 0.0, 999.0, 1000.0, 1000.0]);

        let allowed: Vec<bool> = decisions.iter().map(|d| d.allowed).collect();
        assert_eq!(allowed, [true, true, true, false, false, true, false]);
        let remaining: Vec<u32> = decisions.iter().map(|d| d.remaining).collect();
        assert_eq!(remaining, [2, 1, 0, 0, 0, 0, 0]);
        assert_eq!(decisions[3].retry_after_secs, 1);
        assert_eq!(decisions[2].reset_secs, 3);
    }

    #[test]
    fn an_idle_client_gets_its_whole_burst_back() {
        let decisions = run(&[0.0, 0.0, 0.0, 3000.0, 3000.0, 3000.0, 3000.0]);

        let allowed: Vec<bool> = decisions.iter().map(|d| d.allowed).collect();
        assert_eq!(allowed, [true, true, true, true, true, true, false]);
    }

    #[test]
    fn exempt_clients_match_by_network_and_as_ipv4_mapped_addresses() {
        let settings = crate::config::Settings::load_from(&std::collections::HashMap::from([(
            "STARSONGS__RATE_LIMIT__EXEMPT_CLIENTS".to_owned(),
            "10.1.2.3/32, 2001:db8::/64, 192.0.2.7".to_owned(),
        )]))
        .unwrap();
        let limits = RateLimits::from_settings(&settings.rate_limit, &Clock::default()).unwrap();
        let ip = |text: &str| text.parse::<IpAddr>().unwrap();

        for (client, exempt) in [
            ("10.1.2.3", true),
            ("::ffff:10.1.2.3", true),
            ("10.1.2.4", false),
            ("2001:db8::42", true),
            ("2001:db8:1::42", false),
            ("192.0.2.7", true),
            ("127.0.0.1", false),
        ] {
            assert_eq!(limits.is_exempt(ip(client)), exempt, "{client}");
        }
    }

    /// A limiter that always fails, counting how often it was asked.
    #[derive(Default)]
    struct Failing(std::sync::atomic::AtomicUsize);

    #[async_trait]
    impl Limiter for Failing {
        async fn check(&self, _: &str, _: Quota) -> Result<Decision, LimiterUnavailable> {
            self.0.fetch_add(1, Ordering::Relaxed);
            Err(LimiterUnavailable(anyhow::anyhow!("connection refused")))
        }
    }

    #[tokio::test]
    async fn a_failing_limiter_is_replaced_by_local_budgets_and_asked_once_per_interval() {
        let settings = crate::config::Settings::load_from(&std::collections::HashMap::new())
            .unwrap()
            .rate_limit;
        let clock = Clock::default();
        let mut limits = RateLimits::from_settings(&settings, &clock).unwrap();
        let failing = Arc::new(Failing::default());
        limits.limiter = failing.clone() as Arc<dyn Limiter>;

        let mut allowed = Vec::new();
        for _ in 0..4 {
            allowed.push(limits.check("api:ip:192.0.2.1", QUOTA).await.allowed);
        }
        let other = limits.check("api:ip:192.0.2.2", QUOTA).await.allowed;

        assert_eq!(allowed, [true, true, true, false], "limited, not unlimited");
        assert!(other, "clients keep separate budgets");
        // The whole test runs well within one probe interval.
        assert_eq!(failing.0.load(Ordering::Relaxed), 1);
        clock.advance(OUTAGE_PROBE_INTERVAL);
        limits.check("api:ip:192.0.2.3", QUOTA).await;
        assert_eq!(
            failing.0.load(Ordering::Relaxed),
            2,
            "asked again after the interval"
        );
    }

    #[test]
    fn ipv6_clients_are_counted_per_network_and_ipv4_as_they_are() {
        let settings = crate::config::Settings::load_from(&std::collections::HashMap::new())
            .unwrap()
            .rate_limit;
        let limits = RateLimits::from_settings(&settings, &Clock::default()).unwrap();
        let ip = |text: &str| text.parse::<IpAddr>().unwrap();

        assert_eq!(
            limits.client_network(ip("2001:db8:1:2:aaaa::1")),
            ip("2001:db8:1:2::")
        );
        assert_eq!(
            limits.client_network(ip("2001:db8:1:2:ffff:ffff:ffff:ffff")),
            ip("2001:db8:1:2::")
        );
        assert_ne!(
            limits.client_network(ip("2001:db8:1:3::1")),
            ip("2001:db8:1:2::")
        );
        assert_eq!(limits.client_network(ip("192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(
            limits.client_network(ip("::ffff:192.0.2.7")),
            ip("192.0.2.7")
        );
    }

    #[test]
    fn refused_requests_do_not_spend_budget() {
        // Hammering while refused must not push the next allowed time further out.
        let mut times = vec![0.0; 3];
        times.extend(std::iter::repeat_n(10.0, 100));
        times.push(1000.0);

        let last = *run(&times).last().unwrap();

        assert!(last.allowed);
    }
}
