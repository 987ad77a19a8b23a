//! Opaque secrets (refresh tokens, API keys, generated passwords): 256 random bits from the
//! operating system's CSPRNG, base64url-encoded behind a short type prefix, and their
//! SHA-256 digests, which are all the database ever stores.
//!
//! A fast digest is right here, unlike for passwords: the secrets are uniformly random and
//! 256 bits long, so there is nothing to brute-force, and a digest lets the store find the
//! row by equality.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::{ExposeSecret, SecretString};

use crate::domain::credential::SecretDigest;

/// Prefix of refresh tokens (lets secret scanners recognise a leaked one).
pub const REFRESH_TOKEN_PREFIX: &str = "ssr_";
/// Prefix of API keys.
pub const API_KEY_PREFIX: &str = "ssk_";
/// Characters of an API key kept in clear to tell keys apart (prefix + 8).
pub const API_KEY_SHOWN_CHARS: usize = 12;

/// A freshly generated secret and its digest.
#[derive(Debug, Clone)]
pub struct Generated {
    /// The secret, to hand to the client once.
    pub secret: SecretString,
    /// SHA-256 of the secret, to store.
    pub digest: SecretDigest,
}

/// `bytes` random bytes from the OS.
///
/// # Errors
/// The OS random source failed (practically never; treated as a server error).
pub fn random_bytes<const N: usize>() -> anyhow::Result<[u8; N]> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("the OS random source failed: {e}"))?;
    Ok(bytes)
}

/// A new `prefix` + 43-character secret (256 bits) and its digest.
///
/// # Errors
/// The OS random source failed.
pub fn generate(prefix: &str) -> anyhow::Result<Generated> {
    let bytes = random_bytes::<32>()?;
    let secret = format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes));
    Ok(Generated {
        digest: digest(&secret),
        secret: SecretString::from(secret),
    })
}

/// A random password for generated accounts: 24 base64url characters (144 bits).
///
/// # Errors
/// The OS random source failed.
pub fn generate_password() -> anyhow::Result<SecretString> {
    let bytes = random_bytes::<18>()?;
    Ok(SecretString::from(URL_SAFE_NO_PAD.encode(bytes)))
}

/// SHA-256 of `secret`.
pub fn digest(secret: &str) -> SecretDigest {
    SecretDigest::of(secret)
}

/// SHA-256 of a secret held in a [`SecretString`].
pub fn digest_secret(secret: &SecretString) -> SecretDigest {
    digest(secret.expose_secret())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_prefixed_unique_and_stored_only_as_digests() {
        let a = generate(API_KEY_PREFIX).unwrap();
        let b = generate(API_KEY_PREFIX).unwrap();

        let text = a.secret.expose_secret();
        assert!(text.starts_with("ssk_") && text.len() == 4 + 43, "{text}");
        assert_ne!(text, b.secret.expose_secret());
        assert_eq!(a.digest, digest(text));
        assert_eq!(a.digest.as_str().len(), 64);
        assert!(!a.digest.as_str().contains(&text[4..]));
    }

    #[test]
    fn generated_passwords_meet_the_policy_length() {
        let password = generate_password().unwrap();

        assert_eq!(password.expose_secret().chars().count(), 24);
    }
}
