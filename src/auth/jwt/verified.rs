//! Access tokens already verified, so a client sending the same token on every request
//! pays for its signature and claims once (#11: verification was 7 % of the CPU of
//! `GET /v1/artists/{id}`).
//!
//! Only a token whose signature and claims verified is kept, keyed by the SHA-256 digest
//! of the whole token (the tokens themselves, bearer credentials, are not kept in
//! memory): a hit is an exact match, as strong as the verification it stands for. Its time claims
//! are checked again on every hit, under the same leeway, so an expired token is refused
//! as before. Made-up tokens never enter, so the entries are tokens this service issued
//! and that are still in use, at most [`MAX_ENTRIES`]. What a token may do now (the
//! account's role, deactivation) is still decided by the grant cache after this.
//!
//! Written here like `grants.rs`, for the same reason: a map, two time checks and a
//! bound do not need a cache crate.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Mutex, MutexGuard};

use super::AccessClaims;

/// Most tokens kept; beyond it a shard drops its expired tokens, then all of them.
pub const MAX_ENTRIES: usize = 4_096;
/// Independently locked parts.
const SHARDS: usize = 16;

/// The SHA-256 digest of a token.
type TokenDigest = [u8; 32];

/// One shard: verified tokens by the digest of their whole text.
type Shard = HashMap<TokenDigest, Verified>;

fn digest(token: &str) -> TokenDigest {
    use sha2::{Digest, Sha256};
    Sha256::digest(token.as_bytes()).into()
}

/// A verified token's claims and the window in which they hold.
#[derive(Debug)]
struct Verified {
    claims: AccessClaims,
    not_before: u64,
}

/// The cache; see the module documentation.
pub struct VerifiedTokens {
    leeway_secs: u64,
    hasher: RandomState,
    shards: Box<[Mutex<Shard>]>,
}

impl std::fmt::Debug for VerifiedTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The keys are bearer tokens: never printed.
        f.debug_struct("VerifiedTokens")
            .field("leeway_secs", &self.leeway_secs)
            .finish_non_exhaustive()
    }
}

impl VerifiedTokens {
    /// An empty cache whose time checks allow `leeway_secs` of clock skew.
    pub fn new(leeway_secs: u64) -> Self {
        Self {
            leeway_secs,
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }

    /// The claims of `token` if it was verified before and is current at `now` (seconds
    /// since the Unix epoch).
    pub fn get(&self, token: &str, now: u64) -> Option<AccessClaims> {
        let key = digest(token);
        let shard = self.shard(&key);
        let verified = shard.get(&key)?;
        self.is_current(verified, now)
            .then(|| verified.claims.clone())
    }

    /// Remembers that `token` verified with `claims`, valid from `not_before`.
    pub fn put(&self, token: &str, claims: &AccessClaims, not_before: u64, now: u64) {
        let key = digest(token);
        let mut shard = self.shard(&key);
        if shard.len() >= MAX_ENTRIES / SHARDS {
            shard.retain(|_, verified| self.is_current(verified, now));
            if shard.len() >= MAX_ENTRIES / SHARDS {
                shard.clear();
            }
        }
        shard.insert(
            key,
            Verified {
                claims: claims.clone(),
                not_before,
            },
        );
    }

    /// The rules of `jsonwebtoken`'s validation: expired when `exp < now - leeway`, not
    /// yet valid when `nbf > now + leeway`.
    fn is_current(&self, verified: &Verified, now: u64) -> bool {
        now <= verified.claims.expires_at.saturating_add(self.leeway_secs)
            && verified.not_before <= now.saturating_add(self.leeway_secs)
    }

    fn shard(&self, key: &TokenDigest) -> MutexGuard<'_, Shard> {
        #[allow(
            clippy::cast_possible_truncation,
            reason = "only the low bits pick a shard"
        )]
        let index = self.hasher.hash_one(key) as usize % SHARDS;
        // A panic while a shard was locked leaves a map that is still consistent.
        self.shards[index]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::user::Role;

    fn claims(expires_at: u64) -> AccessClaims {
        AccessClaims {
            user_id: 7,
            role: Role::Editor,
            token_id: "jti-1".to_owned(),
            session_id: "s-1".to_owned(),
            expires_at,
        }
    }

    #[test]
    fn a_verified_token_is_found_only_while_current() {
        let cache = VerifiedTokens::new(30);
        cache.put("token-a", &claims(1_000), 100, 100);

        assert_eq!(cache.get("token-a", 500), Some(claims(1_000)));
        assert_eq!(cache.get("token-a", 1_030), Some(claims(1_000)));
        assert_eq!(cache.get("token-a", 1_031), None);
        assert_eq!(cache.get("token-a", 69), None);
        assert_eq!(cache.get("token-b", 500), None);
        assert_eq!(cache.get("token-", 500), None);
    }

    #[test]
    fn a_full_cache_stays_bounded_and_keeps_working() {
        let cache = VerifiedTokens::new(30);

        for n in 0..MAX_ENTRIES * 3 {
            cache.put(&format!("token-{n}"), &claims(1_000), 0, 10);
        }

        let kept: usize = cache.shards.iter().map(|s| s.lock().unwrap().len()).sum();
        assert!(kept <= MAX_ENTRIES, "{kept} entries kept");
        let last = format!("token-{}", MAX_ENTRIES * 3 - 1);
        assert_eq!(cache.get(&last, 10), Some(claims(1_000)));
    }

    #[test]
    fn debug_output_holds_no_token() {
        let cache = VerifiedTokens::new(30);
        cache.put("secret-token", &claims(1_000), 0, 10);

        assert!(!format!("{cache:?}").contains("secret-token"));
    }
}
