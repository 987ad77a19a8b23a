//! A short-lived, bounded cache of what each credential may do right now: the current role
//! of an account (None when deactivated or deleted) and of an API key (None when revoked).
//!
//! It is what makes "a deactivated or deleted user loses access within 60 seconds" cheap:
//! a request with a valid access token costs a database read at most once per
//! [`GRANT_TTL`] per account and replica. The replica that makes a change drops the entry
//! at once; the others notice within the TTL.
//!
//! Written here rather than taken from a cache crate: it needs one map, one TTL and a size
//! bound (about 60 lines), and `moka` would add a dozen crates to the build for that.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::domain::credential::SecretDigest;
use crate::domain::user::Role;

/// Default of `auth.grant_cache_secs`: how long a grant is trusted before it is read
/// again (well inside the 60 s promise).
pub const GRANT_TTL: Duration = Duration::from_secs(30);
/// Most entries kept; beyond it, expired entries are dropped, then everything.
pub const MAX_ENTRIES: usize = 10_000;

/// What a cache entry is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    /// An account, by id.
    User(i64),
    /// An API key, by the digest of its secret.
    ApiKey(SecretDigest),
}

/// The current grant of a subject: its role, or `None` when it may do nothing.
pub type Grant = Option<(i64, Role)>;

/// The cache.
#[derive(Debug)]
pub struct GrantCache {
    ttl: Duration,
    entries: Mutex<HashMap<Subject, (Instant, Grant)>>,
}

impl Default for GrantCache {
    fn default() -> Self {
        Self::new(GRANT_TTL)
    }
}

impl GrantCache {
    /// A cache whose entries live `ttl`.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The cached grant if fresh.
    pub fn get(&self, subject: &Subject) -> Option<Grant> {
        let entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        entries
            .get(subject)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, grant)| *grant)
    }

    /// Remembers `grant` for `subject`.
    pub fn put(&self, subject: Subject, grant: Grant) {
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if entries.len() >= MAX_ENTRIES {
            let ttl = self.ttl;
            entries.retain(|_, (at, _)| at.elapsed() < ttl);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(subject, (Instant::now(), grant));
    }

    /// Forgets one subject (after a change on this replica).
    pub fn forget(&self, subject: &Subject) {
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        entries.remove(subject);
    }

    /// Forgets every API key (after a revocation: entries are keyed by digest, not id).
    pub fn forget_api_keys(&self) {
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        entries.retain(|subject, _| !matches!(subject, Subject::ApiKey(_)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_can_be_forgotten() {
        let cache = GrantCache::new(Duration::from_millis(50));
        cache.put(Subject::User(1), Some((1, Role::Admin)));
        cache.put(
            Subject::ApiKey(SecretDigest::of("d")),
            Some((2, Role::Viewer)),
        );

        assert_eq!(cache.get(&Subject::User(1)), Some(Some((1, Role::Admin))));
        cache.forget_api_keys();
        assert_eq!(cache.get(&Subject::ApiKey(SecretDigest::of("d"))), None);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(cache.get(&Subject::User(1)), None);
    }

    #[test]
    fn the_cache_never_grows_past_its_bound() {
        let cache = GrantCache::new(Duration::from_secs(60));
        for id in 0..(MAX_ENTRIES as i64 + 10) {
            cache.put(Subject::User(id), None);
        }

        let len = cache.entries.lock().unwrap().len();
        assert!(len <= MAX_ENTRIES, "{len}");
    }
}
