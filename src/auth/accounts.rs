//! `Accounts`: the authentication use cases (login, refresh, logout, registration, account
//! and API-key administration) and resolving a presented credential to a [`Principal`].
//! Uses the store, the password hasher and the token keys; knows nothing of HTTP.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};

use super::AuthError;
use super::grants::{Grant, GrantCache, SessionCache, Subject};
use super::jwt::TokenKeys;
use super::password::PasswordHasher;
use super::secret::{self, API_KEY_PREFIX, API_KEY_SHOWN_CHARS, REFRESH_TOKEN_PREFIX};
use crate::clock::Clock;
use crate::config::AuthSettings;
use crate::domain::credential::{ApiKey, LoginGate, NewApiKey, NewRefreshToken, Rotation};
use crate::domain::ids::{ApiKeyId, UserId};
use crate::domain::user::{
    NewUser, Role, User, UserPatch, UserWithPassword, Username, UsernameKey,
};
use crate::storage::{ConflictKind, DynStore, StoreError};
use crate::telemetry::metrics::AUTH_ATTEMPTS_TOTAL;

/// Counts one sign-in or refresh attempt in `auth_attempts_total{outcome}`.
fn attempt(outcome: &'static str) {
    metrics::counter!(AUTH_ATTEMPTS_TOTAL, "outcome" => outcome).increment(1);
}

/// The key failed logins are counted under: the case-folded username (a digest for names
/// too long to be valid).
fn failure_key(username: &str) -> UsernameKey {
    UsernameKey::fold(username)
}

/// `secs` as a chrono duration (validated settings are far below the bound).
fn seconds(secs: u64) -> chrono::Duration {
    chrono::Duration::seconds(i64::try_from(secs).unwrap_or(i64::MAX / 1000))
}

/// Who is making a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Principal {
    /// Nobody authenticated (only for reads with `auth.public_read`).
    Anonymous,
    /// A signed-in account, with its current role.
    User {
        /// Account id.
        id: i64,
        /// Current role (never more than the token's).
        role: Role,
    },
    /// An API key, with its role (viewer or editor).
    ApiKey {
        /// Key id.
        id: i64,
        /// Role.
        role: Role,
    },
}

impl Principal {
    /// The role, if authenticated.
    pub fn role(&self) -> Option<Role> {
        match self {
            Self::Anonymous => None,
            Self::User { role, .. } | Self::ApiKey { role, .. } => Some(*role),
        }
    }

    /// A stable name for scoping (idempotency keys) and logs: `user:7`, `api_key:3`,
    /// `anonymous`.
    pub fn scope(&self) -> String {
        match self {
            Self::Anonymous => "anonymous".to_owned(),
            Self::User { id, .. } => format!("user:{id}"),
            Self::ApiKey { id, .. } => format!("api_key:{id}"),
        }
    }
}

/// An access and refresh token pair.
#[derive(Debug)]
pub struct TokenPair {
    /// Signed JWT.
    pub access_token: SecretString,
    /// Opaque refresh token.
    pub refresh_token: SecretString,
    /// Access-token lifetime in seconds.
    pub expires_in: u64,
}

/// Why a login failed.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Unknown user, wrong password or inactive account: one answer for all.
    #[error("invalid username or password")]
    BadCredentials,
    /// Too many failures for this username; retry after this instant.
    #[error("too many failed logins")]
    Locked(DateTime<Utc>),
    /// Storage or hashing failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Hashing or signing failed.
    #[error(transparent)]
    Auth(#[from] AuthError),
}

/// Why a presented credential was refused, or could not be checked.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// An access token or API key that is not valid, expired or revoked, or whose account
    /// is inactive.
    #[error("invalid credential")]
    Invalid,
    /// A refresh token that is unknown, spent, expired or revoked, of a login past its
    /// maximum age, or of an inactive account.
    #[error("invalid refresh token")]
    InvalidRefreshToken,
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Hashing or signing failed.
    #[error(transparent)]
    Auth(#[from] AuthError),
}

/// Why an account could not be created or changed.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// Storage failed, or the change conflicts (taken email, last admin).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Hashing failed.
    #[error(transparent)]
    Auth(#[from] AuthError),
}

/// A new API key and its secret, shown once.
#[derive(Debug)]
pub struct CreatedApiKey {
    /// The stored key.
    pub key: ApiKey,
    /// The secret (`ssk_...`).
    pub secret: SecretString,
}

/// The account use cases.
#[derive(Clone)]
pub struct Accounts {
    store: DynStore,
    hasher: PasswordHasher,
    keys: Arc<TokenKeys>,
    grants: Arc<GrantCache>,
    sessions: Arc<SessionCache>,
    refresh_ttl: chrono::Duration,
    session_max: chrono::Duration,
}

impl std::fmt::Debug for Accounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accounts")
            .field("keys", &self.keys)
            .field("hasher", &self.hasher)
            .finish_non_exhaustive()
    }
}

impl Accounts {
    /// Builds the use cases from `auth` settings; the caches measure time on `clock`.
    ///
    /// # Errors
    /// Invalid Argon2 parameters or token keys.
    pub fn new(store: DynStore, auth: &AuthSettings, clock: &Clock) -> anyhow::Result<Self> {
        Ok(Self {
            store,
            hasher: PasswordHasher::new(auth)?,
            keys: Arc::new(TokenKeys::from_settings(auth)?),
            grants: Arc::new(GrantCache::new(
                std::time::Duration::from_secs(auth.grant_cache_secs),
                clock.clone(),
            )),
            sessions: Arc::new(SessionCache::new(
                std::time::Duration::from_secs(auth.grant_cache_secs),
                clock.clone(),
            )),
            refresh_ttl: seconds(auth.refresh_ttl_secs),
            session_max: seconds(auth.session_max_secs),
        })
    }

    /// The token keys (tests and tools issue tokens with them).
    pub fn keys(&self) -> &TokenKeys {
        &self.keys
    }

    /// The password hasher.
    pub fn hasher(&self) -> &PasswordHasher {
        &self.hasher
    }

    /// Signs in with a username and password. Every outcome but a lockout costs one
    /// Argon2 verification, so an unknown user looks like a wrong password, in body and in
    /// time. Five failures for one username within 15 minutes lock it for 15 minutes after
    /// the last failure; a success clears the count. The attempt is counted before the
    /// password is checked, atomically in the database, so concurrent attempts and other
    /// replicas share the count: of any burst at most five passwords are checked, and a
    /// correct one is refused too while the lockout lasts.
    ///
    /// # Errors
    /// [`LoginError`].
    #[tracing::instrument(name = "auth.login", skip_all)]
    pub async fn login(
        &self,
        username: &str,
        password: &SecretString,
    ) -> Result<TokenPair, LoginError> {
        let key = failure_key(username);
        if let LoginGate::LockedUntil(until) =
            self.store.claim_login_attempt(&key, Utc::now()).await?
        {
            attempt("login_locked");
            return Err(LoginError::Locked(until));
        }
        // A name that cannot exist is not looked up, but is verified all the same.
        let found = match Username::parse(username) {
            Ok(valid) => self.store.find_user_by_username(&valid.key()).await?,
            Err(_) => None,
        };
        let hash = found.as_ref().map(|found| found.password_hash.as_str());
        let verified = self.hasher.verify(password, hash).await?;
        match found {
            Some(UserWithPassword { user, .. }) if verified && user.is_active => {
                self.store.clear_login_failures(&key).await?;
                let pair = self.start_session(&user).await?;
                attempt("login_success");
                Ok(pair)
            }
            _ => {
                // Already counted when the attempt was claimed.
                attempt("login_failure");
                Err(LoginError::BadCredentials)
            }
        }
    }

    /// Starts a login for `user` without a password (the password sign-in above, and
    /// tools and tests that act for an account): a new refresh-token family, whose id the
    /// access token carries as `sid`.
    ///
    /// # Errors
    /// Storage or signing failure.
    pub async fn start_session(&self, user: &User) -> Result<TokenPair, LoginError> {
        let refresh = secret::generate(REFRESH_TOKEN_PREFIX).map_err(StoreError::Other)?;
        let family_id = uuid::Uuid::new_v4().to_string();
        let started = Utc::now();
        self.store
            .insert_refresh_token(&NewRefreshToken {
                token_hash: refresh.digest,
                family_id: family_id.clone(),
                user_id: user.id,
                expires_at: (started + self.refresh_ttl).min(started + self.session_max),
                session_started_at: started,
            })
            .await?;
        let access = self.keys.issue(user.id.get(), user.role, &family_id)?;
        Ok(TokenPair {
            access_token: access.token,
            refresh_token: refresh.secret,
            expires_in: access.expires_in,
        })
    }

    /// Exchanges a refresh token for a new pair; the presented token is spent. Presenting
    /// a spent token revokes every token of its login, its access tokens included (at
    /// once on this replica, within the grant cache's lifetime on the others). A login
    /// ends `auth.session_max_secs` after its password sign-in, however often it is
    /// refreshed.
    ///
    /// # Errors
    /// [`CredentialError::InvalidRefreshToken`] for an unknown, spent, expired or revoked
    /// token, a login past its maximum age, or an inactive account.
    #[tracing::instrument(name = "auth.refresh", skip_all)]
    pub async fn refresh(&self, token: &SecretString) -> Result<TokenPair, CredentialError> {
        let next = secret::generate(REFRESH_TOKEN_PREFIX).map_err(StoreError::Other)?;
        let rotation = self
            .store
            .rotate_refresh_token(
                &secret::digest_secret(token),
                &next.digest,
                Utc::now() + self.refresh_ttl,
                self.session_max,
            )
            .await?;
        match rotation {
            Rotation::Rotated { user, family_id } => {
                attempt("refresh_success");
                let access = self.keys.issue(user.id.get(), user.role, &family_id)?;
                Ok(TokenPair {
                    access_token: access.token,
                    refresh_token: next.secret,
                    expires_in: access.expires_in,
                })
            }
            Rotation::Reused { family_id } => {
                self.sessions.forget(&family_id);
                attempt("refresh_reuse");
                tracing::warn!("a spent refresh token was presented again; its family is revoked");
                Err(CredentialError::InvalidRefreshToken)
            }
            Rotation::Rejected => {
                attempt("refresh_rejected");
                Err(CredentialError::InvalidRefreshToken)
            }
        }
    }

    /// Ends the login of a refresh token: its whole family is revoked, and the login's
    /// access tokens are refused (at once on this replica, within the grant cache's
    /// lifetime on the others). Other logins of the user go on.
    ///
    /// # Errors
    /// [`CredentialError::InvalidRefreshToken`] for a token this service never issued (or
    /// long pruned).
    #[tracing::instrument(name = "auth.logout", skip_all)]
    pub async fn logout(&self, token: &SecretString) -> Result<(), CredentialError> {
        let family = self
            .store
            .revoke_refresh_family(&secret::digest_secret(token))
            .await?
            .ok_or(CredentialError::InvalidRefreshToken)?;
        self.sessions.forget(&family);
        Ok(())
    }

    /// Creates an account (registration with role viewer, or an admin's choice).
    ///
    /// # Errors
    /// A taken username or email is [`StoreError::Conflict`]; the password is hashed first,
    /// so a taken name costs the same time as a new one.
    #[tracing::instrument(name = "auth.create_user", skip_all, fields(user.role = %new.role))]
    pub async fn create_user(&self, new: &NewUser) -> Result<User, AccountError> {
        let hash = self.hasher.hash(new.password.secret()).await?;
        Ok(self.store.insert_user(new, &hash).await?)
    }

    /// Applies an admin's change of an account in one store call (one transaction): the
    /// change is parsed against the account as stored, so a new password is checked
    /// against the username and email it is written next to, and an unknown account is
    /// reported before an invalid change. A new password is hashed first, outside the
    /// transaction, when it fits the length rule. Deactivation, a new password or a new
    /// role end the account's sessions and take effect at once on this replica.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for an unknown account, [`StoreError::Invalid`] with every
    /// field problem, otherwise as [`crate::storage::Store::update_user`].
    #[tracing::instrument(name = "auth.patch_user", skip_all, fields(user.id = id.get()))]
    pub async fn patch_user(
        &self,
        id: UserId,
        patch: &UserPatch<'_>,
    ) -> Result<User, AccountError> {
        let hash = match patch.password_to_hash() {
            Some(password) => Some(self.hasher.hash(password).await?),
            None => None,
        };
        let user = self
            .store
            .update_user(id, &|current: &User| patch.parse(current), hash.as_deref())
            .await?;
        self.grants.forget(&Subject::User(id.get()));
        if patch.revokes_sessions() {
            self.sessions.forget_user(id.get());
        }
        Ok(user)
    }

    /// Deletes an account; its tokens stop working at once on this replica.
    ///
    /// # Errors
    /// As [`crate::storage::Store::delete_user`].
    #[tracing::instrument(name = "auth.delete_user", skip_all, fields(user.id = id.get()))]
    pub async fn delete_user(&self, id: UserId) -> Result<(), StoreError> {
        self.store.delete_user(id).await?;
        self.grants.forget(&Subject::User(id.get()));
        self.sessions.forget_user(id.get());
        Ok(())
    }

    /// Creates an API key; the secret is returned here only.
    ///
    /// # Errors
    /// Storage failure.
    #[tracing::instrument(name = "auth.create_api_key", skip_all, fields(api_key.role = %new.role))]
    pub async fn create_api_key(&self, new: &NewApiKey) -> Result<CreatedApiKey, StoreError> {
        let generated = secret::generate(API_KEY_PREFIX).map_err(StoreError::Other)?;
        let shown: String = generated
            .secret
            .expose_secret()
            .chars()
            .take(API_KEY_SHOWN_CHARS)
            .collect();
        let key = self
            .store
            .insert_api_key(new, &generated.digest, &shown)
            .await?;
        Ok(CreatedApiKey {
            key,
            secret: generated.secret,
        })
    }

    /// Revokes an API key; it stops working at once on this replica.
    ///
    /// # Errors
    /// As [`crate::storage::Store::delete_api_key`].
    #[tracing::instrument(name = "auth.revoke_api_key", skip_all, fields(api_key.id = id.get()))]
    pub async fn revoke_api_key(&self, id: ApiKeyId) -> Result<(), StoreError> {
        self.store.delete_api_key(id).await?;
        self.grants.forget_api_keys();
        Ok(())
    }

    /// The account an access token names, when its signature and claims verify: no
    /// database read. The rate limiter keys a budget by it before any lookup (API.md: a
    /// request the limiter refuses costs no database work).
    pub fn token_user(&self, token: &str) -> Option<i64> {
        self.keys.verify(token).ok().map(|claims| claims.user_id)
    }

    /// The id of an API key that this replica found in the database within the grant
    /// cache's lifetime: no database read. `None` for a key not seen recently, unknown or
    /// revoked (such a request is budgeted by its address, so made-up keys cannot buy
    /// lookups beyond that budget).
    pub fn known_api_key(&self, key: &str) -> Option<i64> {
        if !key.starts_with(API_KEY_PREFIX) || key.len() > 128 {
            return None;
        }
        match self.grants.get(&Subject::ApiKey(secret::digest(key))) {
            Some(Some((id, _))) => Some(id),
            _ => None,
        }
    }

    /// The principal of a bearer access token: the token must verify, its account must
    /// still be active, and its login must still go on (not logged out, not revoked by
    /// reuse of a spent refresh token, a password change or deactivation); the role is the
    /// lower of the token's and the account's current one. Both facts are read at most
    /// once per grant-cache lifetime per replica.
    ///
    /// # Errors
    /// [`CredentialError::Invalid`], or a storage failure while reading the account.
    pub async fn authenticate_token(&self, token: &str) -> Result<Principal, CredentialError> {
        let claims = self
            .keys
            .verify(token)
            .map_err(|_| CredentialError::Invalid)?;
        let subject = Subject::User(claims.user_id);
        let grant = match self.grants.get(&subject) {
            Some(grant) => grant,
            None => {
                let grant: Grant = match self
                    .store
                    .get_user(
                        UserId::try_from(claims.user_id).map_err(|()| CredentialError::Invalid)?,
                    )
                    .await
                {
                    Ok(user) => user.is_active.then_some((user.id.get(), user.role)),
                    Err(StoreError::NotFound { .. }) => None,
                    Err(error) => return Err(error.into()),
                };
                self.grants.put(subject, grant);
                grant
            }
        };
        let (id, current) = grant.ok_or(CredentialError::Invalid)?;
        let is_active = match self.sessions.get(&claims.session_id) {
            Some(is_active) => is_active,
            None => {
                let is_active = self.store.is_session_active(&claims.session_id).await?;
                self.sessions.put(&claims.session_id, id, is_active);
                is_active
            }
        };
        if !is_active {
            return Err(CredentialError::Invalid);
        }
        Ok(Principal::User {
            id,
            role: current.min(claims.role),
        })
    }

    /// The principal of an `X-API-Key` value.
    ///
    /// # Errors
    /// [`CredentialError::Invalid`] for an unknown or revoked key, or a storage failure.
    pub async fn authenticate_api_key(&self, key: &str) -> Result<Principal, CredentialError> {
        if !key.starts_with(API_KEY_PREFIX) || key.len() > 128 {
            return Err(CredentialError::Invalid);
        }
        let subject = Subject::ApiKey(secret::digest(key));
        let grant = match self.grants.get(&subject) {
            Some(grant) => grant,
            None => {
                let Subject::ApiKey(digest) = &subject else {
                    return Err(CredentialError::Invalid);
                };
                let grant: Grant = self
                    .store
                    .find_api_key(digest)
                    .await?
                    .map(|k| (k.id.get(), k.role));
                self.grants.put(subject, grant);
                grant
            }
        };
        let (id, role) = grant.ok_or(CredentialError::Invalid)?;
        Ok(Principal::ApiKey { id, role })
    }

    /// Development only: when no active admin exists, creates `admin` with a random
    /// password and returns the password (to be shown once). `None` when an admin exists.
    ///
    /// # Errors
    /// Storage or hashing failure, or a non-admin account already named `admin`.
    pub async fn ensure_dev_admin(&self) -> anyhow::Result<Option<(String, SecretString)>> {
        if self.store.has_active_admin().await? {
            return Ok(None);
        }
        let password = secret::generate_password()?;
        let new = NewUser::parse("admin", "admin@starsongs.invalid", &password, Role::Admin)
            .map_err(|e| anyhow::anyhow!("the development admin is invalid: {e}"))?;
        self.create_user(&new).await.map_err(|e| match e {
            AccountError::Store(StoreError::Conflict(ConflictKind::UsernameOrEmailTaken)) => {
                anyhow::anyhow!(
                    "an account named `admin` exists but is not an active admin; \
                 use `starsongs user create` to make one"
                )
            }
            other => anyhow::anyhow!(other),
        })?;
        Ok(Some(("admin".to_owned(), password)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_keys_fold_case_and_bound_their_length() {
        assert_eq!(failure_key("Ziggy").as_str(), "ziggy");
        let long = failure_key(&"X".repeat(10_000));
        assert!(
            long.as_str().starts_with("sha256:") && long.as_str().len() == 7 + 64,
            "{long:?}"
        );
        assert_eq!(long, failure_key(&"x".repeat(10_000)));
    }

    #[test]
    fn principals_scope_idempotency_keys_and_logs() {
        assert_eq!(Principal::Anonymous.scope(), "anonymous");
        assert_eq!(
            Principal::User {
                id: 7,
                role: Role::Viewer
            }
            .scope(),
            "user:7"
        );
        assert_eq!(
            Principal::ApiKey {
                id: 3,
                role: Role::Editor
            }
            .scope(),
            "api_key:3"
        );
        assert_eq!(Principal::Anonymous.role(), None);
    }
}
