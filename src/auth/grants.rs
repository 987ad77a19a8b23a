//! A short-lived, bounded cache of what each credential may do right now: the current role
//! of an account (None when deactivated or deleted) and of an API key (None when revoked).
//!
//! It is what makes "a deactivated or deleted user loses access within 60 seconds" cheap:
//! a request with a valid access token costs a database read at most once per
//! [`GRANT_TTL`] per account and replica. The replica that makes a change drops the entry
//! at once; the others notice within the TTL.
//!
//! Every request with a credential reads it, so it is split into [`SHARDS`] independently
//! locked parts (no process-wide lock on the request path). Anyone can present a made-up
//! API key, so refusals of unknown keys are kept apart from grants, with their own bound:
//! a flood of junk keys evicts only other junk, never a real grant. Only signed tokens and
//! real keys create grant entries, so their number is that of real accounts and keys.
//!
//! [`SessionCache`] does the same for logins (refresh-token families): whether the login an
//! access token names still goes on, so logout, reuse of a spent refresh token and a
//! password change end that login's access tokens within the same bound.
//!
//! Written here rather than taken from a cache crate: it needs a map, a TTL and two bounds
//! (about 150 lines with tests), and `moka` would add a dozen crates to the build for that.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::clock::Clock;
use crate::domain::credential::SecretDigest;
use crate::domain::user::Role;

/// Default of `auth.grant_cache_secs`: how long a grant is trusted before it is read
/// again (well inside the 60 s promise).
pub const GRANT_TTL: Duration = Duration::from_secs(30);
/// Most grants kept (accounts and existing API keys); beyond it, expired entries are
/// dropped, then the older half of a shard.
pub const MAX_ENTRIES: usize = 10_000;
/// Most refusals of unknown API keys kept; beyond it, expired ones are dropped, then the
/// shard's refusals (never its grants).
pub const MAX_REFUSED: usize = 10_000;
/// Independently locked parts.
pub const SHARDS: usize = 16;

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

#[derive(Debug, Default)]
struct Shard {
    /// Grants of accounts (also refused ones: only a signed token names an account) and of
    /// API keys that exist.
    grants: HashMap<Subject, (Instant, Grant)>,
    /// API keys that were not found (or are revoked): anyone can add to these.
    refused: HashMap<Subject, Instant>,
}

/// The cache.
#[derive(Debug)]
pub struct GrantCache {
    ttl: Duration,
    clock: Clock,
    hasher: RandomState,
    shards: Box<[Mutex<Shard>]>,
}

impl Default for GrantCache {
    fn default() -> Self {
        Self::new(GRANT_TTL, Clock::default())
    }
}

impl GrantCache {
    /// A cache whose entries live `ttl` on `clock`.
    pub fn new(ttl: Duration, clock: Clock) -> Self {
        Self {
            ttl,
            clock,
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }

    fn shard(&self, subject: &Subject) -> MutexGuard<'_, Shard> {
        let index = (self.hasher.hash_one(subject) % SHARDS as u64) as usize;
        lock(&self.shards[index])
    }

    /// The cached grant if fresh.
    pub fn get(&self, subject: &Subject) -> Option<Grant> {
        let shard = self.shard(subject);
        let now = self.clock.now();
        let fresh = |at: &Instant| now - *at < self.ttl;
        if let Some((at, grant)) = shard.grants.get(subject) {
            return fresh(at).then_some(*grant);
        }
        shard
            .refused
            .get(subject)
            .filter(|at| fresh(at))
            .map(|_| None)
    }

    /// Remembers `grant` for `subject`.
    pub fn put(&self, subject: Subject, grant: Grant) {
        let ttl = self.ttl;
        let mut shard = self.shard(&subject);
        let now = self.clock.now();
        if grant.is_none() && matches!(subject, Subject::ApiKey(_)) {
            shard.grants.remove(&subject);
            if shard.refused.len() >= MAX_REFUSED / SHARDS {
                shard.refused.retain(|_, at| now - *at < ttl);
                if shard.refused.len() >= MAX_REFUSED / SHARDS {
                    shard.refused.clear();
                }
            }
            shard.refused.insert(subject, now);
            return;
        }
        shard.refused.remove(&subject);
        if shard.grants.len() >= MAX_ENTRIES / SHARDS && !shard.grants.contains_key(&subject) {
            shard.grants.retain(|_, (at, _)| now - *at < ttl);
            if shard.grants.len() >= MAX_ENTRIES / SHARDS {
                // Still full of live grants: keep the younger half.
                let mut ages: Vec<Instant> = shard.grants.values().map(|(at, _)| *at).collect();
                let middle = ages.len() / 2;
                let (_, median, _) = ages.select_nth_unstable(middle);
                let median = *median;
                shard.grants.retain(|_, (at, _)| *at > median);
            }
        }
        shard.grants.insert(subject, (now, grant));
    }

    /// Forgets one subject (after a change on this replica).
    pub fn forget(&self, subject: &Subject) {
        let mut shard = self.shard(subject);
        shard.grants.remove(subject);
        shard.refused.remove(subject);
    }

    /// Forgets every API key (after a revocation: entries are keyed by digest, not id).
    pub fn forget_api_keys(&self) {
        for shard in &self.shards {
            let mut shard = lock(shard);
            shard
                .grants
                .retain(|subject, _| !matches!(subject, Subject::ApiKey(_)));
            shard.refused.clear();
        }
    }

    /// Entries kept, grants and refusals.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| {
                let shard = lock(shard);
                shard.grants.len() + shard.refused.len()
            })
            .sum()
    }

    /// Whether nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One shard of [`SessionCache`]: `(read at, owner, active)` by family id.
type SessionShard = HashMap<Box<str>, (Instant, i64, bool)>;

/// Whether each login still goes on, as last read. Only verified tokens name a login, so
/// the entries are real logins.
#[derive(Debug)]
pub struct SessionCache {
    ttl: Duration,
    clock: Clock,
    hasher: RandomState,
    shards: Box<[Mutex<SessionShard>]>,
}

impl SessionCache {
    /// A cache whose entries live `ttl` on `clock`.
    pub fn new(ttl: Duration, clock: Clock) -> Self {
        Self {
            ttl,
            clock,
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }

    fn shard(&self, family_id: &str) -> MutexGuard<'_, SessionShard> {
        let index = (self.hasher.hash_one(family_id) % SHARDS as u64) as usize;
        self.shards[index]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether the login is active, if read within the TTL.
    pub fn get(&self, family_id: &str) -> Option<bool> {
        let shard = self.shard(family_id);
        let now = self.clock.now();
        shard
            .get(family_id)
            .filter(|(at, _, _)| now - *at < self.ttl)
            .map(|(_, _, active)| *active)
    }

    /// Remembers whether the login `family_id` of `user_id` is active.
    pub fn put(&self, family_id: &str, user_id: i64, active: bool) {
        let ttl = self.ttl;
        let now = self.clock.now();
        let mut shard = self.shard(family_id);
        if shard.len() >= MAX_ENTRIES / SHARDS && !shard.contains_key(family_id) {
            shard.retain(|_, (at, _, _)| now - *at < ttl);
            if shard.len() >= MAX_ENTRIES / SHARDS {
                shard.clear();
            }
        }
        shard.insert(family_id.into(), (now, user_id, active));
    }

    /// Forgets one login (it ended on this replica).
    pub fn forget(&self, family_id: &str) {
        self.shard(family_id).remove(family_id);
    }

    /// Forgets every login of `user_id` (a password change or deactivation on this
    /// replica).
    pub fn forget_user(&self, user_id: i64) {
        for shard in &self.shards {
            shard
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .retain(|_, (_, owner, _)| *owner != user_id);
        }
    }
}

fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    shard
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn junk(i: usize) -> Subject {
        Subject::ApiKey(SecretDigest::of(&format!("ssk_junk-{i}")))
    }

    #[test]
    fn entries_expire_and_can_be_forgotten() {
        let clock = Clock::default();
        let cache = GrantCache::new(Duration::from_secs(30), clock.clone());
        cache.put(Subject::User(1), Some((1, Role::Admin)));
        cache.put(
            Subject::ApiKey(SecretDigest::of("d")),
            Some((2, Role::Viewer)),
        );

        assert_eq!(cache.get(&Subject::User(1)), Some(Some((1, Role::Admin))));
        cache.forget_api_keys();
        assert_eq!(cache.get(&Subject::ApiKey(SecretDigest::of("d"))), None);
        clock.advance(Duration::from_secs(30));
        assert_eq!(cache.get(&Subject::User(1)), None);
    }

    #[test]
    fn the_cache_never_grows_past_its_bound() {
        let cache = GrantCache::new(Duration::from_secs(60), Clock::default());
        for id in 0..(MAX_ENTRIES as i64 + 10) {
            cache.put(Subject::User(id), None);
        }
        for i in 0..(MAX_REFUSED + 10) {
            cache.put(junk(i), None);
        }

        let len = cache.len();
        assert!(len <= MAX_ENTRIES + MAX_REFUSED, "{len}");
    }

    #[test]
    fn junk_api_keys_cannot_evict_a_real_grant() {
        let cache = GrantCache::new(Duration::from_secs(60), Clock::default());
        let key = Subject::ApiKey(SecretDigest::of("ssk_real"));
        cache.put(Subject::User(7), Some((7, Role::Editor)));
        cache.put(key.clone(), Some((3, Role::Viewer)));

        for i in 0..(3 * MAX_REFUSED) {
            cache.put(junk(i), None);
        }

        assert_eq!(cache.get(&Subject::User(7)), Some(Some((7, Role::Editor))));
        assert_eq!(cache.get(&key), Some(Some((3, Role::Viewer))));
        assert_eq!(cache.get(&junk(3 * MAX_REFUSED - 1)), Some(None));
        assert!(cache.len() <= 2 + MAX_REFUSED, "{}", cache.len());
    }

    #[test]
    fn a_revoked_key_is_refused_and_a_refusal_is_replaced_by_a_grant() {
        let cache = GrantCache::new(Duration::from_secs(60), Clock::default());
        let key = Subject::ApiKey(SecretDigest::of("ssk_k"));

        cache.put(key.clone(), Some((3, Role::Viewer)));
        cache.put(key.clone(), None);
        assert_eq!(cache.get(&key), Some(None));
        cache.put(key.clone(), Some((3, Role::Editor)));
        assert_eq!(cache.get(&key), Some(Some((3, Role::Editor))));
        cache.forget(&key);
        assert_eq!(cache.get(&key), None);
    }

    #[test]
    fn a_full_shard_of_live_grants_keeps_the_younger_half() {
        let cache = GrantCache::new(Duration::from_secs(60), Clock::default());
        for id in 0..(2 * MAX_ENTRIES as i64) {
            cache.put(Subject::User(id), Some((id, Role::Viewer)));
        }
        let newest = 2 * MAX_ENTRIES as i64 - 1;

        assert!(cache.len() <= MAX_ENTRIES, "{}", cache.len());
        assert_eq!(
            cache.get(&Subject::User(newest)),
            Some(Some((newest, Role::Viewer)))
        );
    }

    #[test]
    fn sessions_are_remembered_until_forgotten_by_login_or_by_user() {
        let cache = SessionCache::new(Duration::from_secs(60), Clock::default());
        cache.put("family-a", 7, true);
        cache.put("family-b", 7, true);
        cache.put("family-c", 8, true);

        cache.forget("family-a");
        assert_eq!(cache.get("family-a"), None);
        assert_eq!(cache.get("family-b"), Some(true));
        cache.forget_user(7);

        assert_eq!(cache.get("family-b"), None);
        assert_eq!(cache.get("family-c"), Some(true));
    }

    #[test]
    fn the_session_cache_stays_bounded() {
        let cache = SessionCache::new(Duration::from_secs(60), Clock::default());

        for n in 0..(3 * MAX_ENTRIES) {
            cache.put(&format!("family-{n}"), 1, true);
        }

        let kept: usize = cache.shards.iter().map(|s| s.lock().unwrap().len()).sum();
        assert!(kept <= MAX_ENTRIES, "{kept}");
        assert_eq!(
            cache.get(&format!("family-{}", 3 * MAX_ENTRIES - 1)),
            Some(true)
        );
    }
}
