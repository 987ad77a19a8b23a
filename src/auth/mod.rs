//! Authentication building blocks: password hashing and access tokens now; refresh
//! tokens, API keys, principals and lockout arrive with the rest of issue #3. Knows nothing
//! of HTTP.

pub mod jwt;
pub mod password;

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
