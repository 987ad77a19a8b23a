//! The PostgreSQL backend (sqlx): pool, session settings, error mapping and the `Store`
//! impl, which delegates each use case to `artists`, `songs`, `users`, `credentials` or
//! `seed`. Writes run in READ COMMITTED transactions that lock the rows they decide on
//! (`for update`), so concurrent requests on several replicas serialise per row.

mod artists;
mod credentials;
mod idempotency;
mod list;
mod migrate;
mod seed;
mod songs;
mod users;

use std::future::Future;
use std::str::FromStr;

use anyhow::Context;
use async_trait::async_trait;
use chrono::{DateTime, SubsecRound, Utc};
use secrecy::ExposeSecret;
use sqlx::ConnectOptions as _;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use super::check_expected;
use super::metered::timed;
use super::migrate::Migrator;
use super::{
    AccountStore, ArtistStore, CredentialStore, MaintenanceStore, PoolStats, SongStore, StoreError,
    StoreResult,
};

/// `db.system` of this backend's spans.
const SYSTEM: &str = "postgresql";
use crate::config::DatabaseSettings;
use crate::domain::artist::{Artist, ArtistChanges, NewArtist};
use crate::domain::artist::{ArtistFilter, ArtistSortField};
use crate::domain::credential::{
    ApiKey, ApiKeySortField, LoginGate, NewApiKey, NewRefreshToken, Rotation, SecretDigest,
};
use crate::domain::demo::DemoArtist;
use crate::domain::ids::{ApiKeyId, ArtistId, SongId, UserId};
use crate::domain::list::{ListQuery, Page};
use crate::domain::song::{NewSong, Song, SongChanges};
use crate::domain::song::{SongFilter, SongSortField};
use crate::domain::user::{NewUser, User, UserChanges, UserSortField, UsernameKey};
use crate::domain::version::ExpectedVersions;
use crate::storage::{Created, Idempotency};
pub use migrate::SQL;

/// The PostgreSQL store.
pub struct PgStore {
    pool: PgPool,
    migrator: migrate::PgMigrator,
}

impl PgStore {
    /// Connects the pool to the server named by `settings.url`.
    ///
    /// Per connection:
    /// - `statement_timeout` = `database.statement_timeout_ms`: a runaway statement is
    ///   cancelled (SQLSTATE 57014, a 503) instead of holding a connection and its locks.
    /// - `application_name` = `starsongs`, so `pg_stat_activity` shows whose sessions they
    ///   are.
    /// - TLS as the URL's `sslmode` says (`verify-full` checks the certificate against the
    ///   system's CA store or `sslrootcert`).
    ///
    /// Pool: `database.max_connections`, `min_connections`, `acquire_timeout_secs` (a
    /// request that waits longer gets 503), `idle_timeout_secs`, `max_lifetime_secs`.
    ///
    /// Every connection going back to the pool first runs `begin; rollback`. A request
    /// cancelled while its `BEGIN` is in flight (the client went away, or the request
    /// timed out) leaves the session inside a transaction that sqlx does not know of
    /// (sqlx 0.9 counts a transaction only once the server has answered the `BEGIN`):
    /// reused, that connection served stale reads, refused writes in a read-only
    /// transaction, and would have lost writes in a read-write one (found by the backend
    /// benchmark under wrk). On a clean session the pair costs one round trip and logs
    /// nothing; on a stranded one PostgreSQL warns "there is already a transaction in
    /// progress" and the `ROLLBACK` ends it; on an aborted one it fails and sqlx closes the
    /// connection. sqlx then pings the connection on release as well, so the ping before
    /// each acquire is off: a connection broken while idle fails one request (503) and is
    /// dropped.
    ///
    /// # Errors
    /// A malformed URL or a server that cannot be reached.
    pub async fn connect(settings: &DatabaseSettings) -> anyhow::Result<Self> {
        let url = settings.url.as_ref().context("database.url is not set")?;
        // The parse error could echo the URL (and its password); replace it.
        let options = PgConnectOptions::from_str(url.expose_secret())
            .map_err(|_| anyhow::anyhow!("database.url is not a valid postgres URL"))?
            .application_name("starsongs")
            .options([("statement_timeout", settings.statement_timeout_ms)])
            // Every statement at debug, slow ones at warn: the SQL text with `$n`
            // placeholders and the elapsed time, never the bound values.
            .log_statements(log::LevelFilter::Debug)
            .log_slow_statements(
                log::LevelFilter::Warn,
                std::time::Duration::from_millis(settings.slow_query_ms),
            );
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections)
            .min_connections(settings.min_connections)
            .acquire_timeout(settings.acquire_timeout())
            .idle_timeout(Some(settings.idle_timeout()))
            .max_lifetime(Some(settings.max_lifetime()))
            .test_before_acquire(false)
            .after_release(|conn, _| {
                Box::pin(async move {
                    sqlx::raw_sql("begin; rollback").execute(&mut *conn).await?;
                    Ok(true)
                })
            })
            .connect_with(options)
            .await
            // sqlx's connection errors name the host, never the password.
            .context("connecting to the postgres database")?;
        Ok(Self {
            migrator: migrate::PgMigrator::new(pool.clone()),
            pool,
        })
    }
}

/// Maps a driver error to a [`StoreError`].
///
/// | SQLSTATE / error | meaning | mapped to |
/// |---|---|---|
/// | 23505 `unique_violation`, 23503 `foreign_key_violation` | a rule of other rows | handled by the use case (conflict, not found); `Other` if not |
/// | 40001 `serialization_failure`, 40P01 `deadlock_detected` | lost a race | retried up to [`super::MAX_ATTEMPTS`] times by [`retry`], then `Unavailable` |
/// | 57014 `query_canceled` | `statement_timeout` hit | `Unavailable` |
/// | 57P01-57P03 `admin_shutdown`, `crash_shutdown`, `cannot_connect_now` | server stopping or starting | `Unavailable` |
/// | class 08 `connection_exception`, class 53 `insufficient_resources` (too many connections, disk full) | server or link trouble | `Unavailable` |
/// | pool timeout, pool closed, I/O, TLS, protocol | no usable connection | `Unavailable` |
/// | anything else | a bug | `Other` |
fn map_error(error: sqlx::Error) -> StoreError {
    let unavailable = match &error {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            matches!(
                code.as_ref(),
                "40001" | "40P01" | "57014" | "57P01" | "57P02" | "57P03"
            ) || code.starts_with("08")
                || code.starts_with("53")
        }),
        _ => false,
    };
    if unavailable {
        StoreError::Unavailable(error.into())
    } else {
        StoreError::Other(error.into())
    }
}

/// The SQLSTATE of a database error, if `error` is one.
fn sqlstate(error: &sqlx::Error) -> Option<String> {
    error
        .as_database_error()
        .and_then(|db| db.code())
        .map(|code| code.into_owned())
}

/// Whether `error` is a unique violation (23505).
fn is_unique_violation(error: &sqlx::Error) -> bool {
    sqlstate(error).as_deref() == Some("23505")
}

/// Whether `error` is a foreign-key violation (23503).
fn is_foreign_key_violation(error: &sqlx::Error) -> bool {
    sqlstate(error).as_deref() == Some("23503")
}

/// Whether a transaction failed for a serialization failure or a deadlock, so that running
/// it again may succeed.
fn is_retryable(error: &StoreError) -> bool {
    let StoreError::Unavailable(source) = error else {
        return false;
    };
    source
        .downcast_ref::<sqlx::Error>()
        .and_then(sqlstate)
        .is_some_and(|code| code == "40001" || code == "40P01")
}

/// Runs the transaction `attempt` again after a lost race ([`is_retryable`]), at most
/// [`super::MAX_ATTEMPTS`] times in all.
async fn retry<T, F, Fut>(attempt: F) -> StoreResult<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = StoreResult<T>>,
{
    super::retry(is_retryable, attempt).await
}

/// The current time at the precision PostgreSQL stores (microseconds), so what a write
/// binds is what a read returns.
fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// The accepted versions as a bindable array; `None` binds NULL, "any version".
fn versions_param(expected: Option<&ExpectedVersions>) -> Option<Vec<i64>> {
    expected.map(|e| e.versions().to_vec())
}

#[async_trait]
impl ArtistStore for PgStore {
    async fn list_artists(
        &self,
        query: &ListQuery<ArtistSortField, ArtistFilter>,
    ) -> StoreResult<Page<Artist>> {
        timed(SYSTEM, "list_artists", async {
            artists::list(&self.pool, query).await
        })
        .await
    }

    async fn get_artist(&self, id: ArtistId) -> StoreResult<Artist> {
        timed(SYSTEM, "get_artist", async {
            artists::get(&self.pool, id).await
        })
        .await
    }

    async fn insert_artist(&self, new: &NewArtist) -> StoreResult<Artist> {
        timed(SYSTEM, "insert_artist", async {
            artists::insert(&self.pool, new).await
        })
        .await
    }

    async fn insert_artist_once(
        &self,
        new: &NewArtist,
        idempotency: &Idempotency<'_, Artist>,
    ) -> StoreResult<Created<Artist>> {
        timed(SYSTEM, "insert_artist_once", async {
            retry(|| artists::insert_once(&self.pool, new, idempotency)).await
        })
        .await
    }

    async fn replace_artist(
        &self,
        id: ArtistId,
        new: &NewArtist,
        expected: Option<&ExpectedVersions>,
    ) -> StoreResult<Artist> {
        timed(SYSTEM, "replace_artist", async {
            artists::replace(&self.pool, id, new, expected).await
        })
        .await
    }

    async fn patch_artist(
        &self,
        id: ArtistId,
        changes: &ArtistChanges,
        expected: Option<&ExpectedVersions>,
    ) -> StoreResult<Artist> {
        timed(SYSTEM, "patch_artist", async {
            retry(|| artists::patch(&self.pool, id, changes, expected)).await
        })
        .await
    }

    async fn delete_artist(
        &self,
        id: ArtistId,
        cascade: bool,
        expected: Option<&ExpectedVersions>,
    ) -> StoreResult<()> {
        timed(SYSTEM, "delete_artist", async {
            retry(|| artists::delete(&self.pool, id, cascade, expected)).await
        })
        .await
    }
}

#[async_trait]
impl SongStore for PgStore {
    async fn list_songs(
        &self,
        query: &ListQuery<SongSortField, SongFilter>,
    ) -> StoreResult<Page<Song>> {
        timed(SYSTEM, "list_songs", async {
            songs::list(&self.pool, query).await
        })
        .await
    }

    async fn get_song(&self, id: SongId) -> StoreResult<Song> {
        timed(SYSTEM, "get_song", async {
            songs::get(&self.pool, id).await
        })
        .await
    }

    async fn insert_song(&self, new: &NewSong) -> StoreResult<Song> {
        timed(SYSTEM, "insert_song", async {
            songs::insert(&self.pool, new).await
        })
        .await
    }

    async fn insert_song_once(
        &self,
        new: &NewSong,
        idempotency: &Idempotency<'_, Song>,
    ) -> StoreResult<Created<Song>> {
        timed(SYSTEM, "insert_song_once", async {
            retry(|| songs::insert_once(&self.pool, new, idempotency)).await
        })
        .await
    }

    async fn replace_song(
        &self,
        id: SongId,
        new: &NewSong,
        expected: Option<&ExpectedVersions>,
    ) -> StoreResult<Song> {
        timed(SYSTEM, "replace_song", async {
            songs::replace(&self.pool, id, new, expected).await
        })
        .await
    }

    async fn patch_song(
        &self,
        id: SongId,
        changes: &SongChanges,
        expected: Option<&ExpectedVersions>,
    ) -> StoreResult<Song> {
        timed(SYSTEM, "patch_song", async {
            retry(|| songs::patch(&self.pool, id, changes, expected)).await
        })
        .await
    }

    async fn delete_song(
        &self,
        id: SongId,
        expected: Option<&ExpectedVersions>,
    ) -> StoreResult<()> {
        timed(SYSTEM, "delete_song", async {
            songs::delete(&self.pool, id, expected).await
        })
        .await
    }
}

#[async_trait]
impl AccountStore for PgStore {
    async fn insert_user(&self, new: &NewUser, password_hash: &str) -> StoreResult<User> {
        timed(SYSTEM, "insert_user", async {
            users::insert(&self.pool, new, password_hash).await
        })
        .await
    }

    async fn find_user_by_username(
        &self,
        username: &UsernameKey,
    ) -> StoreResult<Option<(User, String)>> {
        timed(SYSTEM, "find_user_by_username", async {
            users::find_by_username(&self.pool, username).await
        })
        .await
    }

    async fn get_user(&self, id: UserId) -> StoreResult<User> {
        timed(SYSTEM, "get_user", async {
            let id = id.get();
            users::get(&self.pool, id).await
        })
        .await
    }

    async fn list_users(&self, query: &ListQuery<UserSortField, ()>) -> StoreResult<Page<User>> {
        timed(SYSTEM, "list_users", async {
            users::list(&self.pool, query).await
        })
        .await
    }

    async fn update_user(
        &self,
        id: UserId,
        changes: &UserChanges,
        password_hash: Option<&str>,
    ) -> StoreResult<User> {
        timed(SYSTEM, "update_user", async {
            let id = id.get();
            retry(|| users::update(&self.pool, id, changes, password_hash)).await
        })
        .await
    }

    async fn delete_user(&self, id: UserId) -> StoreResult<()> {
        timed(SYSTEM, "delete_user", async {
            let id = id.get();
            retry(|| users::delete(&self.pool, id)).await
        })
        .await
    }

    async fn has_active_admin(&self) -> StoreResult<bool> {
        timed(SYSTEM, "has_active_admin", async {
            users::has_active_admin(&self.pool).await
        })
        .await
    }
}

#[async_trait]
impl CredentialStore for PgStore {
    async fn insert_refresh_token(&self, token: &NewRefreshToken) -> StoreResult<()> {
        timed(SYSTEM, "insert_refresh_token", async {
            credentials::insert_refresh(&self.pool, token).await
        })
        .await
    }

    async fn rotate_refresh_token(
        &self,
        presented: &SecretDigest,
        next_hash: &SecretDigest,
        next_expires_at: DateTime<Utc>,
        session_max: chrono::Duration,
    ) -> StoreResult<Rotation> {
        timed(SYSTEM, "rotate_refresh_token", async {
            retry(|| {
                credentials::rotate_refresh(
                    &self.pool,
                    presented,
                    next_hash,
                    next_expires_at,
                    session_max,
                )
            })
            .await
        })
        .await
    }

    async fn revoke_refresh_family(&self, presented: &SecretDigest) -> StoreResult<Option<String>> {
        timed(SYSTEM, "revoke_refresh_family", async {
            retry(|| credentials::revoke_refresh(&self.pool, presented)).await
        })
        .await
    }

    async fn is_session_active(&self, family_id: &str) -> StoreResult<bool> {
        timed(SYSTEM, "is_session_active", async {
            credentials::is_session_active(&self.pool, family_id).await
        })
        .await
    }

    async fn prune_credentials(&self, at: DateTime<Utc>) -> StoreResult<u64> {
        timed(SYSTEM, "prune_credentials", async {
            retry(|| credentials::prune(&self.pool, at)).await
        })
        .await
    }

    async fn claim_login_attempt(
        &self,
        username_key: &UsernameKey,
        at: DateTime<Utc>,
    ) -> StoreResult<LoginGate> {
        timed(SYSTEM, "claim_login_attempt", async {
            retry(|| credentials::claim_login_attempt(&self.pool, username_key, at)).await
        })
        .await
    }

    async fn clear_login_failures(&self, username_key: &UsernameKey) -> StoreResult<()> {
        timed(SYSTEM, "clear_login_failures", async {
            credentials::clear_login_failures(&self.pool, username_key).await
        })
        .await
    }

    async fn insert_api_key(
        &self,
        new: &NewApiKey,
        key_hash: &SecretDigest,
        prefix: &str,
    ) -> StoreResult<ApiKey> {
        timed(SYSTEM, "insert_api_key", async {
            credentials::insert_api_key(&self.pool, new, key_hash, prefix).await
        })
        .await
    }

    async fn list_api_keys(
        &self,
        query: &ListQuery<ApiKeySortField, ()>,
    ) -> StoreResult<Page<ApiKey>> {
        timed(SYSTEM, "list_api_keys", async {
            credentials::list_api_keys(&self.pool, query).await
        })
        .await
    }

    async fn find_api_key(&self, key_hash: &SecretDigest) -> StoreResult<Option<ApiKey>> {
        timed(SYSTEM, "find_api_key", async {
            credentials::find_api_key(&self.pool, key_hash).await
        })
        .await
    }

    async fn delete_api_key(&self, id: ApiKeyId) -> StoreResult<()> {
        timed(SYSTEM, "delete_api_key", async {
            let id = id.get();
            credentials::delete_api_key(&self.pool, id).await
        })
        .await
    }
}

#[async_trait]
impl MaintenanceStore for PgStore {
    async fn prune_idempotency_keys(&self, created_before: DateTime<Utc>) -> StoreResult<u64> {
        timed(SYSTEM, "prune_idempotency_keys", async {
            idempotency::prune(&self.pool, created_before).await
        })
        .await
    }

    async fn seed_demo_data(&self, catalog: &[DemoArtist]) -> StoreResult<bool> {
        timed(SYSTEM, "seed_demo_data", async {
            retry(|| seed::seed_demo_data(&self.pool, catalog)).await
        })
        .await
    }

    async fn backup_to(&self, _destination: &std::path::Path) -> StoreResult<()> {
        timed(SYSTEM, "backup_to", async {
            Err(StoreError::Unsupported {
                operation: "backup",
                backend: "postgres",
            })
        })
        .await
    }

    async fn ping(&self) -> StoreResult<()> {
        timed(SYSTEM, "ping", async {
            sqlx::query("select 1")
                .execute(&self.pool)
                .await
                .map(|_| ())
                .map_err(map_error)
        })
        .await
    }

    fn migrator(&self) -> &dyn Migrator {
        &self.migrator
    }

    fn pool_stats(&self) -> PoolStats {
        PoolStats {
            size: self.pool.size(),
            idle: u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX),
            max: self.pool.options().get_max_connections(),
        }
    }

    async fn close(&self) {
        timed(SYSTEM, "close", async {
            self.pool.close().await;
        })
        .await
    }
}
