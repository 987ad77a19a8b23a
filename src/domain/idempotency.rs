//! How long an `Idempotency-Key` is remembered (API.md "Concurrency and retries").

use chrono::{DateTime, Duration, Utc};

/// How long a key is remembered.
pub const KEY_LIFETIME_HOURS: i64 = 24;

/// Keys created before this instant are expired and may be reused.
pub fn expiry_cutoff(now: DateTime<Utc>) -> DateTime<Utc> {
    now - Duration::hours(KEY_LIFETIME_HOURS)
}
