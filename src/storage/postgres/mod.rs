//! The PostgreSQL backend (sqlx): pool, session settings and the error type. Each
//! resource trait is implemented where its SQL lives: `ArtistStore` in `artists`,
//! `SongStore` in `songs`, `AccountStore` in `users`, `CredentialStore` in `credentials`,
//! `MaintenanceStore` in `maintenance`. Writes run in READ COMMITTED transactions that lock
//! the rows they decide on (`for update`), so concurrent requests on several replicas
//! serialise per row.

mod artists;
mod credentials;
mod idempotency;
mod list;
mod maintenance;
mod migrate;
mod songs;
mod users;

use std::future::Future;
use std::str::FromStr;

use anyhow::Context;
use chrono::{DateTime, SubsecRound, Utc};
use secrecy::ExposeSecret;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{ConnectOptions as _, FromRow};

use super::check_expected;
use super::metered;
use super::{StoreError, StoreResult};
use crate::config::DatabaseSettings;
use crate::domain::version::ExpectedVersions;
pub use migrate::SQL;

/// `db.system` of this backend's spans.
const SYSTEM: &str = "postgresql";

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

/// This backend's error: a [`StoreError`] that `?` makes from a driver error (through
/// [`map_error`]'s table) or from a `StoreError`, and that each trait method hands back as
/// the `StoreError` it holds.
#[derive(Debug)]
struct Error(StoreError);

type Result<T, E = Error> = std::result::Result<T, E>;

impl From<sqlx::Error> for Error {
    fn from(error: sqlx::Error) -> Self {
        Self(map_error(error))
    }
}

impl From<StoreError> for Error {
    fn from(error: StoreError) -> Self {
        Self(error)
    }
}

impl From<Error> for StoreError {
    fn from(error: Error) -> Self {
        error.0
    }
}

/// Maps a driver error to a [`StoreError`] (the one mapping of this backend; `?` applies it
/// through `From<sqlx::Error> for Error`).
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
async fn retry<T, F, Fut>(mut attempt: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let result = super::retry(is_retryable, || {
        let attempt = attempt();
        async move { attempt.await.map_err(StoreError::from) }
    })
    .await;
    Ok(result?)
}

/// Runs one trait method's body as `operation` (the method's name) inside
/// [`metered::timed`]: its `db` span and `db_query_duration_seconds` sample.
async fn timed<T>(
    operation: &'static str,
    body: impl Future<Output = Result<T>>,
) -> StoreResult<T> {
    metered::timed(SYSTEM, operation, async { Ok(body.await?) }).await
}

/// Decodes a row of shape `R` and converts it to its domain type `T` (for `list::fetch_page`).
fn decode<R, T>(row: &PgRow) -> StoreResult<T>
where
    R: for<'r> FromRow<'r, PgRow>,
    T: TryFrom<R, Error = Error>,
{
    let row = R::from_row(row).map_err(Error::from)?;
    Ok(T::try_from(row)?)
}

/// A domain id out of range of its newtype: a bug or a corrupted row.
fn out_of_range(what: &str, raw: i64) -> Error {
    Error(StoreError::Other(anyhow::anyhow!(
        "{what} {raw} out of range"
    )))
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
