//! Argon2id password hashing (OWASP parameters by default), run in blocking tasks behind a
//! semaphore so a burst of logins can neither stall the async workers nor exhaust memory.
//! Unknown users are verified against a dummy hash, so they cost the same time.

use std::sync::Arc;

use anyhow::Context;
use argon2::{Algorithm, Argon2, Params, PasswordHasher as _, PasswordVerifier as _, Version};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;
use tracing::Instrument;

use super::AuthError;
use crate::config::AuthSettings;

/// Hashes and verifies passwords.
#[derive(Clone)]
pub struct PasswordHasher {
    params: Params,
    permits: Arc<Semaphore>,
    dummy_hash: Arc<str>,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

impl PasswordHasher {
    /// Builds the hasher and its dummy hash (one hash at start-up).
    ///
    /// # Errors
    /// Parameters Argon2 refuses.
    pub fn new(settings: &AuthSettings) -> anyhow::Result<Self> {
        Self::with_params(
            settings.argon2_memory_kib,
            settings.argon2_iterations,
            settings.argon2_parallelism,
            settings.concurrent_hashes(),
        )
    }

    /// Builds the hasher from explicit Argon2id parameters (memory in KiB, passes, lanes)
    /// and the number of hashes computed at once.
    ///
    /// # Errors
    /// Parameters Argon2 refuses.
    pub fn with_params(
        memory_kib: u32,
        iterations: u32,
        parallelism: u32,
        max_concurrent: usize,
    ) -> anyhow::Result<Self> {
        let params = Params::new(memory_kib, iterations, parallelism, None)
            .map_err(|e| anyhow::anyhow!("auth.argon2_* settings are invalid: {e}"))?;
        let dummy_hash = argon2(&params)
            .hash_password(b"dummy password for unknown users")
            .map_err(|e| anyhow::anyhow!("hashing the dummy password: {e}"))?
            .to_string();
        Ok(Self {
            params,
            permits: Arc::new(Semaphore::new(max_concurrent.max(1))),
            dummy_hash: dummy_hash.into(),
        })
    }

    /// Hashes `password` into a PHC string (`$argon2id$v=19$m=...`).
    ///
    /// # Errors
    /// [`AuthError::Hashing`] if the blocking task fails.
    pub async fn hash(&self, password: &SecretString) -> Result<String, AuthError> {
        let params = self.params.clone();
        let password = password.clone();
        self.blocking(move || {
            argon2(&params)
                .hash_password(password.expose_secret().as_bytes())
                .map(|hash| hash.to_string())
                .map_err(|e| anyhow::anyhow!("argon2: {e}"))
        })
        .await
    }

    /// Whether `password` matches `stored`; with no stored hash (unknown user) it checks
    /// the dummy hash and answers false, taking the same time.
    ///
    /// # Errors
    /// [`AuthError::Hashing`] if the blocking task fails.
    pub async fn verify(
        &self,
        password: &SecretString,
        stored: Option<&str>,
    ) -> Result<bool, AuthError> {
        let is_known = stored.is_some();
        let hash: Arc<str> = stored.map_or_else(|| self.dummy_hash.clone(), Arc::from);
        let params = self.params.clone();
        let password = password.clone();
        let matches = self
            .blocking(move || {
                Ok(argon2(&params)
                    .verify_password(password.expose_secret().as_bytes(), &*hash)
                    .is_ok())
            })
            .await?;
        Ok(is_known && matches)
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
    ) -> Result<T, AuthError> {
        // Waiting for a permit bounds memory: each hash holds `argon2_memory_kib`.
        let _permit = self
            .permits
            .acquire()
            .await
            .context("password hashing semaphore closed")
            .map_err(AuthError::Hashing)?;
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || span.in_scope(work))
            .instrument(tracing::Span::current())
            .await
            .context("password hashing task failed")
            .and_then(|result| result)
            .map_err(AuthError::Hashing)
    }
}

fn argon2(params: &Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fast() -> PasswordHasher {
        // Small parameters keep the unit tests quick; production uses the OWASP defaults.
        PasswordHasher::with_params(1024, 1, 1, 2).unwrap()
    }

    fn secret(text: &str) -> SecretString {
        SecretString::from(text.to_owned())
    }

    #[tokio::test]
    async fn hashes_are_salted_argon2id_and_verify() {
        let hasher = fast();

        let first = hasher.hash(&secret("correct horse battery")).await.unwrap();
        let second = hasher.hash(&secret("correct horse battery")).await.unwrap();

        assert!(
            first.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"),
            "{first}"
        );
        assert_ne!(first, second, "each hash has its own salt");
        assert!(!first.contains("correct horse"));
        assert!(
            hasher
                .verify(&secret("correct horse battery"), Some(&first))
                .await
                .unwrap()
        );
        assert!(
            !hasher
                .verify(&secret("wrong horse battery"), Some(&first))
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn unknown_users_never_verify() {
        let hasher = fast();

        let verified = hasher
            .verify(&secret("dummy password for unknown users"), None)
            .await
            .unwrap();

        assert!(!verified);
    }

    #[test]
    fn invalid_parameters_are_refused_at_start() {
        assert!(PasswordHasher::with_params(1, 0, 1, 1).is_err());
    }
}
