//! Authentication building blocks: password hashing now; tokens, API keys, principals and
//! lockout arrive with the rest of issue #3. Knows nothing of HTTP.

pub mod password;

/// Why an authentication step failed.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Hashing or verification could not run (not a wrong password).
    #[error("password hashing failed")]
    Hashing(#[source] anyhow::Error),
}
