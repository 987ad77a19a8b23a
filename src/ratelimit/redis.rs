//! Budgets in Redis, shared by every replica: the same GCRA as [`super::gcra`], run
//! atomically by a Lua script on Redis's own clock (so replica clocks do not matter). Each
//! key expires when its budget is full again, so Redis holds only active clients.
//!
//! Every call is bounded by `rate_limit.redis_timeout_ms`; the connection is made on first
//! use and re-made by the connection manager after a failure, so the service starts and
//! keeps serving while Redis is away ([`super::RateLimits::check`] then limits with this
//! replica's own budgets).

use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::OnceCell;

use super::{Decision, Limiter, LimiterUnavailable, Quota};

/// GCRA in Lua. KEYS[1]: the client's key. ARGV: emission interval (ms), burst.
/// Returns {allowed (0/1), remaining, reset_ms, retry_after_ms}.
const GCRA_SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local capacity = interval * burst
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local next = tat + interval
if next - now <= capacity then
  redis.call('SET', KEYS[1], next, 'PX', math.max(1, math.ceil(next - now)))
  return {1, math.floor((now + capacity - next) / interval), math.ceil(next - now), 0}
end
return {0, 0, math.ceil(tat - now), math.ceil(next - capacity - now)}
";

/// The Redis limiter.
pub struct RedisLimiter {
    client: redis::Client,
    connection: OnceCell<ConnectionManager>,
    script: redis::Script,
    prefix: String,
    timeout: Duration,
}

impl std::fmt::Debug for RedisLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLimiter")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisLimiter {
    /// A limiter for `url` (not connected yet). Keys are `prefix` + the caller's key.
    ///
    /// # Errors
    /// A URL the client cannot parse (the message does not contain it).
    pub fn new(url: &SecretString, prefix: &str, timeout: Duration) -> anyhow::Result<Self> {
        let client = redis::Client::open(url.expose_secret())
            .map_err(|_| anyhow::anyhow!("rate_limit.redis_url is not a valid Redis URL"))?;
        Ok(Self {
            client,
            connection: OnceCell::new(),
            script: redis::Script::new(GCRA_SCRIPT),
            prefix: prefix.to_owned(),
            timeout,
        })
    }

    async fn connection(&self) -> anyhow::Result<ConnectionManager> {
        let connection = self
            .connection
            .get_or_try_init(|| async {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(self.timeout))
                    .set_response_timeout(Some(self.timeout))
                    .set_number_of_retries(1);
                ConnectionManager::new_with_config(self.client.clone(), config)
                    .await
                    .context("connecting to Redis")
            })
            .await?;
        Ok(connection.clone())
    }

    async fn run(&self, key: &str, quota: Quota) -> anyhow::Result<Decision> {
        let mut connection = self.connection().await?;
        let interval = quota.emission_ms().round().max(1.0) as u64;
        let (allowed, remaining, reset_ms, retry_ms): (i64, i64, i64, i64) = self
            .script
            .key(format!("{}{key}", self.prefix))
            .arg(interval)
            .arg(quota.burst)
            .invoke_async(&mut connection)
            .await
            .context("running the rate-limit script")?;
        let secs = |ms: i64| u64::try_from(ms.max(0)).unwrap_or(0).div_ceil(1000);
        Ok(Decision {
            allowed: allowed == 1,
            limit: quota.burst,
            remaining: u32::try_from(remaining.max(0)).unwrap_or(0),
            reset_secs: secs(reset_ms),
            retry_after_secs: if allowed == 1 {
                0
            } else {
                secs(retry_ms).max(1)
            },
        })
    }
}

#[async_trait]
impl Limiter for RedisLimiter {
    async fn check(&self, key: &str, quota: Quota) -> Result<Decision, LimiterUnavailable> {
        match tokio::time::timeout(self.timeout, self.run(key, quota)).await {
            Ok(Ok(decision)) => Ok(decision),
            Ok(Err(error)) => Err(LimiterUnavailable(error)),
            Err(_) => Err(LimiterUnavailable(anyhow::anyhow!(
                "Redis did not answer within {} ms",
                self.timeout.as_millis()
            ))),
        }
    }
}
