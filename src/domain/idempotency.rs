//! `Idempotency-Key` (API.md "Concurrency and retries"): the key rule, and what a store
//! needs to create a resource at most once per key and replay the original answer.

use chrono::{DateTime, Duration, Utc};

/// How long a key is remembered.
pub const KEY_LIFETIME_HOURS: i64 = 24;

/// A client's idempotency key: 1–255 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Validates a raw header value; `None` when it breaks the rule.
    pub fn parse(raw: &str) -> Option<Self> {
        let is_valid = (1..=255).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_graphic());
        is_valid.then(|| Self(raw.to_owned()))
    }

    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The response a creation produced, kept verbatim so a retry gets it again. Opaque to
/// the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedResponse {
    /// HTTP status.
    pub status: u16,
    /// JSON body.
    pub body: String,
    /// `Location` header, if any.
    pub location: Option<String>,
    /// `ETag` header, if any.
    pub etag: Option<String>,
}

/// What a store needs to make one creation idempotent.
pub struct Idempotency<'a, T> {
    /// Who asked (keys are scoped per principal).
    pub principal: &'a str,
    /// The client's key.
    pub key: &'a IdempotencyKey,
    /// Digest of the request (method, path and body) the key was first used with.
    pub fingerprint: &'a str,
    /// Renders the response for a newly created resource, to be saved with the key.
    pub render: &'a (dyn Fn(&T) -> SavedResponse + Send + Sync),
}

/// The outcome of an idempotent creation.
#[derive(Debug, Clone, PartialEq)]
pub enum Created<T> {
    /// Created now.
    New(T),
    /// The key was used before with the same request: the original response.
    Replayed(SavedResponse),
}

/// Keys created before this instant are expired and may be reused.
pub fn expiry_cutoff(now: DateTime<Utc>) -> DateTime<Utc> {
    now - Duration::hours(KEY_LIFETIME_HOURS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_rule() {
        for (raw, ok) in [
            ("a", true),
            ("8e03978e-40d5-43e8-bc93-6894a57f9324", true),
            ("~!@#$%^&*()_+{}|:<>?", true),
            (&"k".repeat(255), true),
            (&"k".repeat(256), false),
            ("", false),
            ("has space", false),
            ("tab\t", false),
            ("ключ", false),
        ] {
            assert_eq!(IdempotencyKey::parse(raw).is_some(), ok, "{raw:?}");
        }
    }
}
