//! Authentication: password hashing, access tokens, opaque secrets (refresh tokens, API
//! keys), the grant cache, the cache of verified tokens, and the account use cases in [`accounts::Accounts`]. Knows
//! nothing of HTTP.

pub mod accounts;
pub mod grants;
pub mod jwt;
pub mod password;
pub mod secret;

/// Why an authentication step failed.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Hashing or verification could not run (not a wrong password).
    #[error("password hashing failed")]
    Hashing(#[source] anyhow::Error),
    /// The token is not one this service issued, or it is expired or not yet valid.
    #[error("invalid token")]
    InvalidToken,
    /// A token could not be signed (a misconfigured key).
    #[error("token signing failed")]
    Signing(#[source] anyhow::Error),
}
