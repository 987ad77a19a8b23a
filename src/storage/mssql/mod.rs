//! The SQL Server / Azure SQL backend (tiberius over rustls, pooled by bb8): connection
//! settings from either URL form, the pool, this backend's error type and its one mapping
//! from driver codes. Each resource trait is implemented in the file with its SQL
//! (`artists.rs`, `songs.rs`, ...).
//!
//! Every statement is T-SQL written for this backend with `@Pn` parameters; the fixed ones
//! are constants in the use-case modules, and a unit test parses each with sqlparser's
//! MsSql dialect. The only text ever spliced in is a sort column from a closed enum.

mod artists;
mod credentials;
mod idempotency;
mod list;
mod maintenance;
pub mod migrate;
mod pool;
mod songs;
mod sql;
mod users;

use std::future::Future;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, SubsecRound, Utc};
use secrecy::ExposeSecret;
use tiberius::{AuthMethod, Config, EncryptionLevel};

use super::check_expected;
use super::{StoreError, StoreResult};
use crate::config::DatabaseSettings;

/// `db.system` of this backend's spans.
const SYSTEM: &str = "mssql";

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
/// The application name the server shows for the service's sessions (`program_name` in
/// `sys.dm_exec_sessions`) unless the URL names one (`application_name=` or
/// `Application Name=`).
pub const DEFAULT_APPLICATION_NAME: &str = "starsongs";

/// # Errors
/// A malformed value or an unknown parameter. No error carries the URL or its password.
pub fn parse_url(raw: &str) -> anyhow::Result<Config> {
    if !raw
        .get(..8)
        .is_some_and(|s| s.eq_ignore_ascii_case("mssql://"))
    {
        let mut config = Config::from_ado_string(raw).map_err(|_| {
            anyhow::anyhow!("database.url is not a valid ADO.NET connection string")
        })?;
        if !ado_names_application(raw) {
            config.application_name(DEFAULT_APPLICATION_NAME);
        }
        return Ok(config);
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
    config.application_name(DEFAULT_APPLICATION_NAME);
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

/// Whether an ADO.NET connection string sets the application name (`Application Name` or
/// `ApplicationName`, any case: the keys tiberius reads). A value that itself contains
/// `;key=` would need quoting and is not looked into.
fn ado_names_application(raw: &str) -> bool {
    raw.split(';').any(|pair| {
        pair.split_once('=').is_some_and(|(key, _)| {
            let key = key.trim();
            key.eq_ignore_ascii_case("application name")
                || key.eq_ignore_ascii_case("applicationname")
        })
    })
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
        let config = parse_url(url.expose_secret())?;
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
        warn_without_row_versioning(&pool).await;
        Ok(Self {
            migrator: migrate::MssqlMigrator::new(pool.clone()),
            max_connections: settings.max_connections.max(1),
            pool,
            operation_timeout: (settings.statement_timeout_ms > 0)
                .then(|| Duration::from_millis(settings.statement_timeout_ms)),
        })
    }

    /// Runs one use case within the operation bound, again after a lost deadlock
    /// ([`retry`]): reads too, since without `READ_COMMITTED_SNAPSHOT` they take shared
    /// locks and can be chosen as deadlock victims. Each attempt is a whole statement or
    /// transaction, rolled back when it lost, so running it again is safe.
    async fn run<T, F, Fut>(&self, attempt: F) -> StoreResult<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        self.bounded(retry(attempt)).await
    }

    /// Runs one use case within the operation bound.
    async fn bounded<T, E: Into<StoreError>>(
        &self,
        call: impl Future<Output = Result<T, E>>,
    ) -> StoreResult<T> {
        match self.operation_timeout {
            Some(limit) => match tokio::time::timeout(limit, call).await {
                Ok(result) => result.map_err(Into::into),
                Err(_) => Err(StoreError::Unavailable(anyhow::anyhow!(
                    "the operation ran longer than database.statement_timeout_ms"
                ))),
            },
            None => call.await.map_err(Into::into),
        }
    }
}

/// Whether the database reads row versions at READ COMMITTED (`READ_COMMITTED_SNAPSHOT`).
const READS_ROW_VERSIONS: &str = "SELECT CAST(is_read_committed_snapshot_on AS INT) \
     FROM sys.databases WHERE database_id = DB_ID()";

/// Logs one WARN at start-up when the database has `READ_COMMITTED_SNAPSHOT` off (an
/// installed SQL Server's default): reads then take shared locks, wait for writers and
/// may be chosen as deadlock victims (retried, then 503). docs/operations/mssql.md says
/// how to turn it on; the service cannot, since it needs the database to itself.
async fn warn_without_row_versioning(pool: &Pool) {
    let setting = async {
        let mut conn = pool.get().await?;
        let row = sql::Sql::new(READS_ROW_VERSIONS).row(&mut conn).await?;
        Ok::<_, Error>(row.and_then(|r| r.try_get::<i32, _>(0).ok().flatten()))
    }
    .await;
    if let Ok(Some(0)) = setting {
        tracing::warn!(
            "the database has READ_COMMITTED_SNAPSHOT off: reads wait for writers' locks and \
             may be chosen as deadlock victims; turn it on (docs/operations/mssql.md)"
        );
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
    /// `sp_getapplock` did not grant an application lock (it reports that as a return
    /// code, not an error).
    #[error("the application lock {0}")]
    Applock(ApplockRefusal),
}

/// Why `sp_getapplock` refused a lock, from its return code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ApplockRefusal {
    /// -1: not granted within the lock timeout.
    #[error("was not granted in time")]
    TimedOut,
    /// -2: the request was cancelled.
    #[error("request was cancelled")]
    Cancelled,
    /// -3: chosen as deadlock victim.
    #[error("request was chosen as deadlock victim")]
    Deadlock,
    /// -999 or anything else: a parameter or call error.
    #[error("call failed (return code {0})")]
    Failed(i32),
}

impl ApplockRefusal {
    /// `Ok` for a granted lock (0 at once, 1 after waiting), the refusal otherwise.
    pub(crate) fn check(code: i32) -> Result<(), Self> {
        match code {
            0 | 1 => Ok(()),
            -1 => Err(Self::TimedOut),
            -2 => Err(Self::Cancelled),
            -3 => Err(Self::Deadlock),
            other => Err(Self::Failed(other)),
        }
    }

    /// A timeout or deadlock is the database being busy (503, a deadlock retried first);
    /// anything else is a bug.
    fn is_unavailable(self) -> bool {
        matches!(self, Self::TimedOut | Self::Deadlock)
    }
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

/// Server errors that mean "the database cannot serve this now; try again later" (503),
/// not a bug (500):
///
/// | error | meaning |
/// |---|---|
/// | 1205 | chosen as deadlock victim (retried up to [`super::MAX_ATTEMPTS`] times by [`retry`] first) |
/// | 1222 | `LOCK_TIMEOUT` exceeded |
/// | 4060, 18456 | database unavailable to this login, login failed |
/// | 4221 | Azure SQL geo-replica: login to the read-only secondary failed during redo |
/// | 18401 | server in script-upgrade mode (after patching): logins refused for a while |
/// | 10928, 10929 | Azure SQL resource limit (workers, sessions) reached |
/// | 40143, 40197, 40501, 40540, 40613 | Azure SQL: replica failing over, service error, service busy, database being reconfigured, database unavailable |
/// | 42108, 42109 | Azure SQL serverless: the database is resuming or paused |
/// | 49918, 49919, 49920 | Azure SQL: too many operations in progress |
pub(crate) const UNAVAILABLE_ERRORS: &[u32] = &[
    1205, 1222, 4060, 4221, 10928, 10929, 18401, 18456, 40143, 40197, 40501, 40540, 40613, 42108,
    42109, 49918, 49919, 49920,
];

/// Maps a driver error to a [`StoreError`].
///
/// | error | mapped to |
/// |---|---|
/// | 2627, 2601 (unique or primary key), 547 (foreign key or check) | handled by the use case (conflict, not found); `Other` if not |
/// | a server error in [`UNAVAILABLE_ERRORS`] | `Unavailable` (503) |
/// | I/O, TLS, routing, no pooled connection in time | `Unavailable` |
/// | anything else | `Other` (a bug: 500) |
pub(super) fn map_error(error: impl Into<DbError>) -> StoreError {
    let error = error.into();
    let unavailable = match &error {
        DbError::PoolTimedOut => true,
        DbError::Driver(
            tiberius::error::Error::Io { .. }
            | tiberius::error::Error::Tls(_)
            | tiberius::error::Error::Routing { .. },
        ) => true,
        DbError::Driver(tiberius::error::Error::Server(token)) => {
            UNAVAILABLE_ERRORS.contains(&token.code())
        }
        DbError::Driver(_) => false,
        DbError::Applock(outcome) => outcome.is_unavailable(),
    };
    if unavailable {
        StoreError::Unavailable(error.into())
    } else {
        StoreError::Other(error.into())
    }
}

/// This backend's error: a [`StoreError`] already mapped by [`map_error`] from the
/// driver's codes, so that `?` maps a driver, pool or statement error through that one
/// table. Use cases that know what a constraint means match the [`DbError`] first
/// ([`is_unique_violation`], [`is_foreign_key_violation`]).
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub(super) struct Error(StoreError);

/// A result with this backend's [`Error`].
pub(super) type Result<T, E = Error> = std::result::Result<T, E>;

impl From<DbError> for Error {
    fn from(error: DbError) -> Self {
        Self(map_error(error))
    }
}

impl From<tiberius::error::Error> for Error {
    fn from(error: tiberius::error::Error) -> Self {
        Self(map_error(error))
    }
}

impl From<bb8::RunError<tiberius::error::Error>> for Error {
    fn from(error: bb8::RunError<tiberius::error::Error>) -> Self {
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

/// A failure that is neither the driver's nor the client's: a row the schema should not
/// allow, a statement that returned nothing.
fn other(message: impl std::fmt::Display) -> Error {
    Error(StoreError::Other(anyhow::anyhow!("{message}")))
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
    match source.downcast_ref::<DbError>() {
        Some(DbError::Applock(ApplockRefusal::Deadlock)) => true,
        Some(other) => error_number(other) == Some(1205),
        None => false,
    }
}

/// Runs the transaction `attempt` again after a lost race ([`is_retryable`]), at most
/// [`super::MAX_ATTEMPTS`] times in all.
async fn retry<T, F, Fut>(mut attempt: F) -> StoreResult<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    super::retry(is_retryable, || {
        let call = attempt();
        async move { Ok(call.await?) }
    })
    .await
}

/// The current time at the precision the columns keep (`datetimeoffset(6)`).
fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_and_transient_server_errors_are_unavailable_and_others_are_bugs() {
        // The Azure SQL transient errors of its retry guidance, the lock and login errors.
        for code in [
            1205, 1222, 4060, 4221, 10928, 10929, 18401, 18456, 40143, 40197, 40501, 40540, 40613,
            42108, 42109, 49918, 49919, 49920,
        ] {
            assert!(UNAVAILABLE_ERRORS.contains(&code), "{code}");
        }
        // Constraint violations are the use case's to map; conversion, syntax and
        // permission errors are bugs.
        for code in [547, 2601, 2627, 245, 102, 229, 1934, 8114] {
            assert!(!UNAVAILABLE_ERRORS.contains(&code), "{code}");
        }
        let io = tiberius::error::Error::Io {
            kind: std::io::ErrorKind::ConnectionReset,
            message: "reset".into(),
        };
        assert!(matches!(map_error(io), StoreError::Unavailable(_)));
        assert!(matches!(
            map_error(DbError::PoolTimedOut),
            StoreError::Unavailable(_)
        ));
        let conversion = tiberius::error::Error::Conversion("year 0".into());
        assert!(matches!(map_error(conversion), StoreError::Other(_)));
    }

    #[test]
    fn an_applock_refusal_is_an_error_and_a_deadlock_is_retried() {
        assert_eq!(ApplockRefusal::check(0), Ok(()));
        assert_eq!(ApplockRefusal::check(1), Ok(()), "granted after waiting");
        let refused = |code| map_error(DbError::Applock(ApplockRefusal::check(code).unwrap_err()));

        let timed_out = refused(-1);
        assert!(matches!(timed_out, StoreError::Unavailable(_)));
        assert!(!is_retryable(&timed_out), "a lock timeout is not retried");
        let deadlock = refused(-3);
        assert!(matches!(deadlock, StoreError::Unavailable(_)));
        assert!(is_retryable(&deadlock));
        assert!(matches!(refused(-999), StoreError::Other(_)));
        assert!(matches!(refused(-2), StoreError::Other(_)));
    }

    #[test]
    fn both_url_forms_parse_keep_their_application_name_and_never_echo_the_password() {
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

        for (url, name) in [
            ("mssql://u:p@h/db", "starsongs"),
            ("mssql://u:p@h/db?application_name=catalog-eu", "catalog-eu"),
            (
                "Server=tcp:h,1433;Database=db;User Id=u;Password=p",
                "starsongs",
            ),
            (
                "Server=tcp:h,1433;Database=db;User Id=u;Password=p;Application Name=reports",
                "reports",
            ),
            (
                "Server=tcp:h,1433;Database=db;User Id=u;Password=p;applicationname=etl",
                "etl",
            ),
        ] {
            let debug = format!("{:?}", parse_url(url).unwrap());
            assert!(
                debug.contains(&format!("application_name: Some(\"{name}\")")),
                "{url}: {debug}"
            );
        }

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
