//! Argon2id password hashing (OWASP parameters by default), run in blocking tasks behind a
//! semaphore so a burst of logins can neither stall the async workers nor exhaust memory.
//! Unknown users are verified against a dummy hash, so they cost the same time.
//!
//! Each hash needs `argon2_memory_kib` of working memory. It is allocated once per permit
//! and reused: freshly allocated 19 MiB blocks were kept by glibc's per-thread arenas
//! after each hash (its mmap threshold rises after the first free), so 50 clients logging
//! in drove the process to 1.2 GiB resident. Reused, the memory stays at
//! `max_concurrent_hashes × argon2_memory_kib`.

use std::sync::Arc;

use anyhow::Context;
use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
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
    /// Working memory, one buffer per permit in use at most (see the module docs).
    memory: Arc<std::sync::Mutex<Vec<Vec<Block>>>>,
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
        let mut memory = Vec::new();
        let dummy_hash = hash_with(&params, b"dummy password for unknown users", &mut memory)
            .context("hashing the dummy password")?;
        Ok(Self {
            params,
            permits: Arc::new(Semaphore::new(max_concurrent.max(1))),
            memory: Arc::new(std::sync::Mutex::new(vec![memory])),
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
        self.blocking("password.hash", move |memory| {
            hash_with(&params, password.expose_secret().as_bytes(), memory)
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
        let password = password.clone();
        let matches = self
            .blocking("password.verify", move |memory| {
                verify_with(password.expose_secret().as_bytes(), &hash, memory)
            })
            .await?;
        Ok(is_known && matches)
    }

    /// Runs `work` on a blocking thread, in a span named `name` (DEBUG: created only while
    /// spans are exported or the log level asks for it), waiting for a permit first.
    async fn blocking<T: Send + 'static>(
        &self,
        name: &'static str,
        work: impl FnOnce(&mut Vec<Block>) -> anyhow::Result<T> + Send + 'static,
    ) -> Result<T, AuthError> {
        let span = tracing::debug_span!("password", otel.name = name);
        self.blocking_in(work).instrument(span).await
    }

    async fn blocking_in<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Vec<Block>) -> anyhow::Result<T> + Send + 'static,
    ) -> Result<T, AuthError> {
        // Waiting for a permit bounds memory: each hash holds `argon2_memory_kib`.
        let _permit = self
            .permits
            .acquire()
            .await
            .context("password hashing semaphore closed")
            .map_err(AuthError::Hashing)?;
        // At most one buffer per permit exists; a poisoned lock only means a panic
        // elsewhere, and the buffers are plain memory.
        let pool = self.memory.clone();
        let mut memory = pool
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop()
            .unwrap_or_default();
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            let result = span.in_scope(|| work(&mut memory));
            pool.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(memory);
            result
        })
        .instrument(tracing::Span::current())
        .await
        .context("password hashing task failed")
        .and_then(|result| result)
        .map_err(AuthError::Hashing)
    }
}

/// Grows `memory` to what `params` needs and returns that part.
fn blocks<'m>(memory: &'m mut Vec<Block>, params: &Params) -> &'m mut [Block] {
    let needed = params.block_count();
    if memory.len() < needed {
        memory.resize(needed, Block::default());
    }
    &mut memory[..needed]
}

/// Argon2id of `password` with a fresh 16-byte salt, as a PHC string.
fn hash_with(params: &Params, password: &[u8], memory: &mut Vec<Block>) -> anyhow::Result<String> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| anyhow::anyhow!("no randomness for a salt: {e}"))?;
    let mut buffer = [0u8; Output::MAX_LENGTH];
    let out = &mut buffer[..params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN)];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password_into_with_memory(password, &salt, out, blocks(memory, params))
        .map_err(|e| anyhow::anyhow!("argon2: {e}"))?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params).map_err(|e| anyhow::anyhow!("argon2: {e}"))?,
        salt: Some(Salt::new(&salt).map_err(|e| anyhow::anyhow!("argon2: {e}"))?),
        hash: Some(Output::new(out).map_err(|e| anyhow::anyhow!("argon2: {e}"))?),
    };
    Ok(phc.to_string())
}

/// Whether `password` matches the PHC string `stored`, recomputed with the algorithm,
/// version, parameters and salt stored in it, compared in constant time. A malformed
/// stored hash never matches.
fn verify_with(password: &[u8], stored: &str, memory: &mut Vec<Block>) -> anyhow::Result<bool> {
    let Ok(hash) = PasswordHash::new(stored) else {
        return Ok(false);
    };
    let (Some(salt), Some(expected)) = (&hash.salt, &hash.hash) else {
        return Ok(false);
    };
    let (Ok(params), Ok(algorithm)) = (
        Params::try_from(&hash),
        Algorithm::try_from(hash.algorithm.as_str()),
    ) else {
        return Ok(false);
    };
    let version = match hash.version.map(Version::try_from).transpose() {
        Ok(version) => version.unwrap_or_default(),
        Err(_) => return Ok(false),
    };
    let mut buffer = [0u8; Output::MAX_LENGTH];
    let out = &mut buffer[..expected.len()];
    Argon2::new(algorithm, version, params.clone())
        .hash_password_into_with_memory(password, salt.as_ref(), out, blocks(memory, &params))
        .map_err(|e| anyhow::anyhow!("argon2: {e}"))?;
    // `Output`'s equality is constant-time.
    Ok(Output::new(out).is_ok_and(|computed| computed == *expected))
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

    /// Hashes stored before the memory was pooled (made by the argon2 crate's own hasher)
    /// still verify, and ours verify with the crate's verifier.
    #[test]
    fn hashes_agree_with_the_argon2_crate_both_ways() {
        use argon2::{PasswordHasher as _, PasswordVerifier as _};
        let params = Params::new(1024, 1, 1, None).unwrap();
        let crate_made = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
            .hash_password(b"an older password")
            .unwrap()
            .to_string();
        let mut memory = Vec::new();
        let ours = hash_with(&params, b"a newer password", &mut memory).unwrap();

        assert!(verify_with(b"an older password", &crate_made, &mut memory).unwrap());
        assert!(!verify_with(b"an older passwore", &crate_made, &mut memory).unwrap());
        assert!(
            Argon2::default()
                .verify_password(b"a newer password", ours.as_str())
                .is_ok()
        );
        assert!(!verify_with(b"anything", "$argon2id$garbage", &mut memory).unwrap());
        assert_eq!(memory.len(), params.block_count(), "one buffer, reused");
    }

    #[test]
    fn invalid_parameters_are_refused_at_start() {
        assert!(PasswordHasher::with_params(1, 0, 1, 1).is_err());
    }
}
