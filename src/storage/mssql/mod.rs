//! The SQL Server / Azure SQL backend (tiberius over rustls, pooled by bb8): connection
//! settings from either URL form, the statement helpers every use case goes through,
//! error mapping and the `Store` impl.
//!
//! Every statement is T-SQL written for this backend with `@Pn` parameters; the fixed ones
//! are constants in the use-case modules, and a unit test parses each with sqlparser's
//! MsSql dialect. The only text ever spliced in is a sort column from a closed enum.

mod artists;
mod credentials;
mod idempotency;
mod list;
pub mod migrate;
mod pool;
mod seed;
mod songs;
mod sql;
mod users;

use std::future::Future;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use chrono::{DateTime, SubsecRound, Utc};
use secrecy::ExposeSecret;
use tiberius::{AuthMethod, Config, EncryptionLevel};

use super::check_expected;
use super::migrate::Migrator;
use super::{PoolStats, Store, StoreError, StoreResult};
use crate::config::DatabaseSettings;
use crate::domain::artist::{Artist, ArtistChanges, NewArtist};
use crate::domain::credential::{
    ApiKey, ApiKeySortField, LoginGate, NewApiKey, NewRefreshToken, Rotation, SecretDigest,
};
use crate::domain::demo::DemoArtist;
use crate::domain::etag::ExpectedVersions;
use crate::domain::idempotency::{Created, Idempotency};
use crate::domain::ids::{ArtistId, SongId};
use crate::domain::list::{
    ArtistFilter, ArtistSortField, ListQuery, Page, SongFilter, SongSortField,
};
use crate::domain::song::{NewSong, Song, SongChanges};
use crate::domain::user::{NewUser, User, UserChanges, UserSortField, UsernameKey};

/// The pool.
pub(crate) type Pool = bb8::Pool<pool::Manager>;

/// The SQL Server store.
pub struct MssqlStore {
    pool: Pool,
    /// Client-side bound on one use case (the driver has no statement timeout); the
    /// server-side `LOCK_TIMEOUT` bounds lock waits with the same figure.
    operation_timeout: Option<Duration>,
    max_connections: u32,
    migrator: migrate::MssqlMigrator,
}

/// Parses either URL form into a tiberius [`Config`]:
/// - `mssql://user:password@host:1433/database?encrypt=true&trust_server_certificate=false`
///   (user and password percent-encoded; `encrypt` is `true` (default), `false` or
///   `strict`; `trust_server_certificate_ca=/path/ca.pem` trusts one CA);
/// - an ADO.NET connection string (`Server=tcp:host,1433;Database=db;User Id=u;
///   Password=p;Encrypt=True;TrustServerCertificate=False`), as Azure SQL shows it.
///
/// # Errors
/// A malformed value or an unknown parameter. No error carries the URL or its password.
pub fn parse_url(raw: &str) -> anyhow::Result<Config> {
    if !raw
        .get(..8)
        .is_some_and(|s| s.eq_ignore_ascii_case("mssql://"))
    {
        return Config::from_ado_string(raw)
            .map_err(|_| anyhow::anyhow!("database.url is not a valid ADO.NET connection string"));
    }
    let url = url::Url::parse(raw)
        .map_err(|_| anyhow::anyhow!("database.url is not a valid mssql:// URL"))?;
    let decode = |s: &str| {
        percent_decode(s)
            .ok_or_else(|| anyhow::anyhow!("database.url has invalid percent-encoding"))
    };
    let mut config = Config::new();
    config.host(
        url.host_str()
            .ok_or_else(|| anyhow::anyhow!("database.url names no host"))?,
    );
    config.port(url.port().unwrap_or(1433));
    let database = url.path().trim_start_matches('/');
    if !database.is_empty() {
        config.database(decode(database)?);
    }
    if !url.username().is_empty() {
        config.authentication(AuthMethod::sql_server(
            decode(url.username())?,
            decode(url.password().unwrap_or_default())?,
        ));
    }
    config.encryption(EncryptionLevel::Required);
    for (key, value) in url.query_pairs() {
        match (key.as_ref(), value.as_ref()) {
            ("encrypt", "true") => config.encryption(EncryptionLevel::Required),
            ("encrypt", "strict") => config.encryption(EncryptionLevel::Strict),
            ("encrypt", "false") => config.encryption(EncryptionLevel::Off),
            ("trust_server_certificate", "true") => config.trust_cert(),
            ("trust_server_certificate", "false") => {}
            ("trust_server_certificate_ca", path) => config.trust_cert_ca(path),
            ("application_name", name) => config.application_name(name),
            (key, _) => anyhow::bail!(
                "database.url has an unknown or invalid parameter `{key}` (known: encrypt=true|false|strict, \
                 trust_server_certificate=true|false, trust_server_certificate_ca, application_name)"
            ),
        }
    }
    Ok(config)
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

impl MssqlStore {
    /// Builds the pool for the server named by `settings.url` and opens the first
    /// connection, so that a wrong address or password fails start-up.
    ///
    /// # Errors
    /// A malformed URL, or a server that cannot be reached or refuses the login.
    pub async fn connect(settings: &DatabaseSettings) -> anyhow::Result<Self> {
        let url = settings.url.as_ref().context("database.url is not set")?;
        let mut config = parse_url(url.expose_secret())?;
        config.application_name("starsongs");
        let manager = pool::Manager::new(config, settings.statement_timeout_ms);
        let nonzero = |secs: u64| (secs > 0).then(|| Duration::from_secs(secs));
        let pool = bb8::Pool::builder()
            .max_size(settings.max_connections.max(1))
            .min_idle(Some(settings.min_connections))
            .connection_timeout(settings.acquire_timeout().max(Duration::from_millis(1)))
            .idle_timeout(nonzero(settings.idle_timeout_secs))
            .max_lifetime(nonzero(settings.max_lifetime_secs))
            .test_on_check_out(true)
            .build(manager)
            .await
            // tiberius's errors name the server and the SQL Server error, never the password.
            .context("connecting to the SQL Server database")?;
        Ok(Self {
            migrator: migrate::MssqlMigrator::new(pool.clone()),
            max_connections: settings.max_connections.max(1),
            pool,
            operation_timeout: (settings.statement_timeout_ms > 0)
                .then(|| Duration::from_millis(settings.statement_timeout_ms)),
        })
    }

    /// Runs one use case within the operation bound.
    async fn bounded<T>(&self, call: impl Future<Output = StoreResult<T>>) -> StoreResult<T> {
        match self.operation_timeout {
            Some(limit) => tokio::time::timeout(limit, call).await.unwrap_or_else(|_| {
                Err(StoreError::Unavailable(anyhow::anyhow!(
                    "the operation ran longer than database.statement_timeout_ms"
                )))
            }),
            None => call.await,
        }
    }
}

/// What went wrong talking to SQL Server: a driver error or no connection in time.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DbError {
    /// The driver or the server failed.
    #[error(transparent)]
    Driver(#[from] tiberius::error::Error),
    /// No pooled connection within `database.acquire_timeout_secs`.
    #[error("no database connection available in time")]
    PoolTimedOut,
}

impl From<bb8::RunError<tiberius::error::Error>> for DbError {
    fn from(error: bb8::RunError<tiberius::error::Error>) -> Self {
        match error {
            bb8::RunError::User(error) => Self::Driver(error),
            bb8::RunError::TimedOut => Self::PoolTimedOut,
        }
    }
}

/// The SQL Server error number of a server error.
fn error_number(error: &DbError) -> Option<u32> {
    match error {
        DbError::Driver(tiberius::error::Error::Server(token)) => Some(token.code()),
        _ => None,
    }
}

/// Maps a driver error to a [`StoreError`].
///
/// | error | meaning | mapped to |
/// |---|---|---|
/// | 2627, 2601 | unique or primary key violation | handled by the use case (conflict); `Other` if not |
/// | 547 | foreign key (or check) constraint | handled by the use case (not found, conflict); `Other` if not |
/// | 1205 | chosen as deadlock victim | retried up to [`super::MAX_ATTEMPTS`] times by [`retry`], then `Unavailable` |
/// | 1222 | `LOCK_TIMEOUT` exceeded | `Unavailable` |
/// | 4060, 18456 | database unavailable to this login, login failed | `Unavailable` |
/// | 40613, 40501, 40197, 49918-49920, 10928, 10929 | Azure SQL: database unavailable, busy, failing over, resource limits | `Unavailable` |
/// | I/O, TLS, routing, pool timeout | no usable connection | `Unavailable` |
/// | anything else | a bug | `Other` |
fn map_error(error: impl Into<DbError>) -> StoreError {
    let error = error.into();
    let unavailable = match &error {
        DbError::PoolTimedOut => true,
        DbError::Driver(
            tiberius::error::Error::Io { .. }
            | tiberius::error::Error::Tls(_)
            | tiberius::error::Error::Routing { .. },
        ) => true,
        DbError::Driver(tiberius::error::Error::Server(token)) => matches!(
            token.code(),
            1205 | 1222
                | 4060
                | 18456
                | 40613
                | 40501
                | 40197
                | 49918
                | 49919
                | 49920
                | 10928
                | 10929
        ),
        DbError::Driver(_) => false,
    };
    if unavailable {
        StoreError::Unavailable(error.into())
    } else {
        StoreError::Other(error.into())
    }
}

/// Whether `error` is a unique or primary-key violation (2627, 2601).
fn is_unique_violation(error: &DbError) -> bool {
    matches!(error_number(error), Some(2627 | 2601))
}

/// Whether `error` is a foreign-key violation (547).
fn is_foreign_key_violation(error: &DbError) -> bool {
    error_number(error) == Some(547)
}

/// Whether a transaction failed as a deadlock victim, so that running it again may work.
fn is_retryable(error: &StoreError) -> bool {
    let StoreError::Unavailable(source) = error else {
        return false;
    };
    source
        .downcast_ref::<DbError>()
        .and_then(error_number)
        .is_some_and(|code| code == 1205)
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

/// The current time at the precision the columns keep (`datetimeoffset(6)`).
fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

#[async_trait]
impl Store for MssqlStore {
    async fn list_artists(
        &self,
        query: &ListQuery<ArtistSortField, ArtistFilter>,
    ) -> StoreResult<Page<Artist>> {
        self.bounded(artists::list(&self.pool, query)).await
    }

    async fn get_artist(&self, id: ArtistId) -> StoreResult<Artist> {
        self.bounded(artists::get(&self.pool, id)).await
    }

    async fn insert_artist(&self, new: &NewArtist) -> StoreResult<Artist> {
        self.bounded(artists::insert(&self.pool, new)).await
    }

    async fn insert_artist_once(
        &self,
        new: &NewArtist,
        idempotency: &Idempotency<'_, Artist>,
    ) -> StoreResult<Created<Artist>> {
        self.bounded(retry(|| artists::insert_once(&self.pool, new, idempotency)))
            .await
    }

    async fn replace_artist(
        &self,
        id: ArtistId,
        new: &NewArtist,
        expected: Option<&ExpectedVersions>,
    ) -> StoreResult<Artist> {
        self.bounded(artists::replace(&self.pool, id, new, expected))
            .await
    }

    async fn patch_artist(
        &self,
        id: ArtistId,
        changes: &ArtistChanges,
        expected: Option<&ExpectedVersions>,
    ) -> StoreResult<Artist> {
        self.bounded(retry(|| artists::patch(&self.pool, id, changes, expected)))
            .await
    }

    async fn delete_artist(
        &self,
        id: ArtistId,
        cascade: bool,
        expected: Option<&ExpectedVersions>,
    ) -> StoreResult<()> {
        self.bounded(retry(|| artists::delete(&self.pool, id, cascade, expected)))
            .await
    }

    async fn list_songs(
        &self,
        query: &ListQuery<SongSortField, SongFilter>,
    ) -> StoreResult<Page<Song>> {
        self.bounded(songs::list(&self.pool, query)).await
    }

    async fn get_song(&self, id: SongId) -> StoreResult<Song> {
        self.bounded(songs::get(&self.pool, id)).await
    }

    async fn insert_song(&self, new: &NewSong) -> StoreResult<Song> {
        self.bounded(songs::insert(&self.pool, new)).await
    }

    async fn insert_song_once(
        &self,
        new: &NewSong,
        idempotency: &Idempotency<'_, Song>,
    ) -> StoreResult<Created<Song>> {
        self.bounded(retry(|| songs::insert_once(&self.pool, new, idempotency)))
            .await
    }

    async fn replace_song(
        &self,
        id: SongId,
        new: &NewSong,
        expected: Option<&ExpectedVersions>,
    ) -> StoreResult<Song> {
        self.bounded(songs::replace(&self.pool, id, new, expected))
            .await
    }

    async fn patch_song(
        &self,
        id: SongId,
        changes: &SongChanges,
        expected: Option<&ExpectedVersions>,
    ) -> StoreResult<Song> {
        self.bounded(retry(|| songs::patch(&self.pool, id, changes, expected)))
            .await
    }

    async fn delete_song(
        &self,
        id: SongId,
        expected: Option<&ExpectedVersions>,
    ) -> StoreResult<()> {
        self.bounded(songs::delete(&self.pool, id, expected)).await
    }

    async fn insert_user(&self, new: &NewUser, password_hash: &str) -> StoreResult<User> {
        self.bounded(users::insert(&self.pool, new, password_hash))
            .await
    }

    async fn find_user_by_username(
        &self,
        username: &UsernameKey,
    ) -> StoreResult<Option<(User, String)>> {
        self.bounded(users::find_by_username(&self.pool, username))
            .await
    }

    async fn get_user(&self, id: i64) -> StoreResult<User> {
        self.bounded(users::get(&self.pool, id)).await
    }

    async fn list_users(&self, query: &ListQuery<UserSortField, ()>) -> StoreResult<Page<User>> {
        self.bounded(users::list(&self.pool, query)).await
    }

    async fn update_user(
        &self,
        id: i64,
        changes: &UserChanges,
        password_hash: Option<&str>,
    ) -> StoreResult<User> {
        self.bounded(retry(|| {
            users::update(&self.pool, id, changes, password_hash)
        }))
        .await
    }

    async fn delete_user(&self, id: i64) -> StoreResult<()> {
        self.bounded(retry(|| users::delete(&self.pool, id))).await
    }

    async fn has_active_admin(&self) -> StoreResult<bool> {
        self.bounded(users::has_active_admin(&self.pool)).await
    }

    async fn insert_refresh_token(&self, token: &NewRefreshToken) -> StoreResult<()> {
        self.bounded(credentials::insert_refresh(&self.pool, token))
            .await
    }

    async fn rotate_refresh_token(
        &self,
        presented: &SecretDigest,
        next_hash: &SecretDigest,
        next_expires_at: DateTime<Utc>,
        session_max: chrono::Duration,
    ) -> StoreResult<Rotation> {
        self.bounded(retry(|| {
            credentials::rotate_refresh(
                &self.pool,
                presented,
                next_hash,
                next_expires_at,
                session_max,
            )
        }))
        .await
    }

    async fn revoke_refresh_family(&self, presented: &SecretDigest) -> StoreResult<Option<String>> {
        self.bounded(retry(|| credentials::revoke_refresh(&self.pool, presented)))
            .await
    }

    async fn is_session_active(&self, family_id: &str) -> StoreResult<bool> {
        self.bounded(credentials::is_session_active(&self.pool, family_id))
            .await
    }

    async fn prune_credentials(&self, at: DateTime<Utc>) -> StoreResult<u64> {
        self.bounded(retry(|| credentials::prune(&self.pool, at)))
            .await
    }

    async fn claim_login_attempt(
        &self,
        username_key: &UsernameKey,
        at: DateTime<Utc>,
    ) -> StoreResult<LoginGate> {
        self.bounded(retry(|| {
            credentials::claim_login_attempt(&self.pool, username_key, at)
        }))
        .await
    }

    async fn clear_login_failures(&self, username_key: &UsernameKey) -> StoreResult<()> {
        self.bounded(credentials::clear_login_failures(&self.pool, username_key))
            .await
    }

    async fn insert_api_key(
        &self,
        new: &NewApiKey,
        key_hash: &SecretDigest,
        prefix: &str,
    ) -> StoreResult<ApiKey> {
        self.bounded(credentials::insert_api_key(
            &self.pool, new, key_hash, prefix,
        ))
        .await
    }

    async fn list_api_keys(
        &self,
        query: &ListQuery<ApiKeySortField, ()>,
    ) -> StoreResult<Page<ApiKey>> {
        self.bounded(credentials::list_api_keys(&self.pool, query))
            .await
    }

    async fn find_api_key(&self, key_hash: &SecretDigest) -> StoreResult<Option<ApiKey>> {
        self.bounded(credentials::find_api_key(&self.pool, key_hash))
            .await
    }

    async fn delete_api_key(&self, id: i64) -> StoreResult<()> {
        self.bounded(credentials::delete_api_key(&self.pool, id))
            .await
    }

    async fn prune_idempotency_keys(&self, created_before: DateTime<Utc>) -> StoreResult<u64> {
        self.bounded(idempotency::prune(&self.pool, created_before))
            .await
    }

    async fn seed_demo_data(&self, catalog: &[DemoArtist]) -> StoreResult<bool> {
        retry(|| seed::seed_demo_data(&self.pool, catalog)).await
    }

    async fn backup_to(&self, _destination: &std::path::Path) -> StoreResult<()> {
        Err(StoreError::Unsupported {
            operation: "backup",
            backend: "mssql",
        })
    }

    async fn ping(&self) -> StoreResult<()> {
        self.bounded(async {
            let mut conn = self.pool.get().await.map_err(map_error)?;
            sql::Sql::new(sql::PING)
                .execute(&mut conn)
                .await
                .map(|_| ())
        })
        .await
    }

    fn migrator(&self) -> &dyn Migrator {
        &self.migrator
    }

    fn pool_stats(&self) -> PoolStats {
        let state = self.pool.state();
        PoolStats {
            size: state.connections,
            idle: state.idle_connections,
            max: self.max_connections,
        }
    }

    async fn close(&self) {
        // bb8 closes connections as the pool is dropped; nothing waits for in-use ones.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_url_forms_parse_and_errors_never_echo_the_password() {
        let url = parse_url(
            "mssql://app%40user:s%3Dcr3t@db.example.com:14330/starsongs?encrypt=true&trust_server_certificate=false",
        )
        .unwrap();
        assert_eq!(url.get_addr(), "db.example.com:14330");
        let ado = parse_url(
            "Server=tcp:example.database.windows.net,1433;Database=starsongs;User Id=app;\
             Password=s3cr3t;Encrypt=True;TrustServerCertificate=False",
        )
        .unwrap();
        assert_eq!(ado.get_addr(), "example.database.windows.net:1433");
        assert_eq!(
            parse_url("mssql://u:p@h/db").unwrap().get_addr(),
            "h:1433",
            "1433 by default"
        );

        for bad in [
            "mssql://u:hunter2@h/db?sslmode=require",
            "mssql://u:hunter2@/db",
            "mssql://u:hunter2%zz@h/db",
        ] {
            let message = parse_url(bad).unwrap_err().to_string();
            assert!(!message.contains("hunter2"), "{message}");
        }
    }
}
