//! The embedded SQLite backend (sqlx): pool, pragmas and the error type with its one
//! mapping from driver codes. Each resource trait is implemented where its SQL lives
//! (`artists`, `songs`, `users`, `credentials`, `maintenance`).

mod artists;
mod credentials;
mod idempotency;
mod list;
mod maintenance;
mod migrate;
mod songs;
mod users;
mod writer;

use std::future::Future;
use std::str::FromStr;

use anyhow::Context;
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use sqlx::ConnectOptions as _;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
};

use super::check_expected;
use super::metered;
use super::{StoreError, StoreResult};
use crate::config::{DatabaseSettings, SqliteSynchronous};

/// `db.system` of this backend's spans.
const SYSTEM: &str = "sqlite";

/// The SQLite store.
pub struct SqliteStore {
    pool: SqlitePool,
    migrator: migrate::SqliteMigrator,
    /// SQLite has one writer at a time: every write goes through this one connection, in
    /// arrival order, and writes that arrive together share a transaction and its fsync
    /// (group commit, see `writer`). Queueing here instead of in SQLite's busy handler
    /// (which sleeps and retries with growing pauses) also keeps the tail latency low.
    /// Another process on the same file still waits on `busy_timeout`.
    writer: writer::Writer,
}

impl SqliteStore {
    /// Opens (creating if `mode=rwc`) the database file and its pool.
    ///
    /// Pragmas, applied to every connection:
    /// - `journal_mode=WAL`: readers never block the writer and vice versa.
    /// - `foreign_keys=ON`: SQLite enforces `song.artist_id` RESTRICT only when asked.
    /// - `busy_timeout`: wait for the write lock instead of failing at once.
    /// - `synchronous=FULL` (default): an acknowledged commit survives power loss.
    /// - `cache_size` ([`CACHE_SIZE_PRAGMA`], 1 MiB): bounds each connection's page cache.
    /// - `journal_size_limit` (64 MiB): a WAL that was reset is truncated back to this
    ///   size; the writer also truncates it when it passes 32 MiB and once writes pause.
    /// - `optimize` (with `analysis_limit`) when a connection opens and closes: keeps the
    ///   planner's statistics current, so keyset seeks use the sort indexes instead of
    ///   sorting the rest of the table. Connections are recycled every
    ///   `database.max_lifetime_secs`, which makes this periodic.
    ///
    /// # Errors
    /// A malformed URL or a file that cannot be opened.
    pub async fn connect(settings: &DatabaseSettings) -> anyhow::Result<Self> {
        let url = settings.url.as_ref().context("database.url is not set")?;
        // The parse error could echo the URL; replace it with a fixed message.
        let options = SqliteConnectOptions::from_str(url.expose_secret())
            .map_err(|_| anyhow::anyhow!("database.url is not a valid sqlite URL"))?
            .journal_mode(SqliteJournalMode::Wal)
            .foreign_keys(true)
            .busy_timeout(settings.sqlite_busy_timeout())
            .synchronous(match settings.sqlite_synchronous {
                SqliteSynchronous::Full => sqlx::sqlite::SqliteSynchronous::Full,
                SqliteSynchronous::Normal => sqlx::sqlite::SqliteSynchronous::Normal,
            })
            .pragma(
                "journal_size_limit",
                writer::JOURNAL_SIZE_LIMIT_BYTES.to_string(),
            )
            // 1 MiB of page cache per connection instead of SQLite's 2 MiB: with 11
            // connections that is 11 MiB of the process's memory at most
            // (docs/operations/sqlite.md, "Memory model"); pages beyond it come from the
            // OS's file cache.
            .pragma("cache_size", CACHE_SIZE_PRAGMA)
            .pragma("analysis_limit", "1000")
            .pragma("optimize", "0x10002")
            .optimize_on_close(true, 1000)
            // Every statement at debug, slow ones at warn: the SQL text with `?`
            // placeholders and the elapsed time, never the bound values.
            .log_statements(log::LevelFilter::Debug)
            .log_slow_statements(
                log::LevelFilter::Warn,
                std::time::Duration::from_millis(settings.slow_query_ms),
            );
        if let Some(parent) = options.get_filename().parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent).context("creating the database directory")?;
        }
        let pool = SqlitePoolOptions::new()
            // A file has no peer that could have hung up: pinging an idle connection
            // before handing it out (sqlx's default) only costs a round trip to the
            // connection's worker thread.
            .test_before_acquire(false)
            .max_connections(settings.max_connections)
            .min_connections(settings.min_connections)
            .acquire_timeout(settings.acquire_timeout())
            .idle_timeout(Some(settings.idle_timeout()))
            .max_lifetime(Some(settings.max_lifetime()))
            .connect_with(options.clone())
            .await
            .context("opening the sqlite database")?;
        let writer = writer::Writer::open(options)
            .await
            .context("opening the sqlite writer connection")?;
        Ok(Self {
            migrator: migrate::SqliteMigrator::new(pool.clone()),
            pool,
            writer,
        })
    }
}

/// `pragma cache_size` of every connection: negative means KiB, here 1 MiB.
pub const CACHE_SIZE_PRAGMA: &str = "-1024";

/// This backend's error: a [`StoreError`] that `?` makes from a driver error (through
/// [`map_error`], the one mapping table) and hands back at the trait boundary.
#[derive(Debug)]
struct Error(StoreError);

/// This backend's result.
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

/// Maps a driver error to a [`StoreError`].
///
/// | SQLite primary code | meaning | mapped to |
/// |---|---|---|
/// | 5 `SQLITE_BUSY`, 6 `SQLITE_LOCKED` | lock not granted within `busy_timeout` | `Unavailable` |
/// | 10 `SQLITE_IOERR`, 13 `SQLITE_FULL`, 14 `SQLITE_CANTOPEN` | disk or file trouble | `Unavailable` |
/// | pool timeout, pool closed, I/O | no connection to be had | `Unavailable` |
/// | anything else | a bug | `Other` |
///
/// Constraint codes are handled where the use case knows what they mean:
/// 2067 `SQLITE_CONSTRAINT_UNIQUE` ([`is_unique_violation`]: a name or email taken) and
/// 787 / 1811 ([`is_foreign_key_violation`]: a missing or still-referenced artist).
fn map_error(error: sqlx::Error) -> StoreError {
    let unavailable = match &error {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => true,
        sqlx::Error::Database(db) => db
            .code()
            .and_then(|code| code.parse::<i32>().ok())
            .is_some_and(|code| matches!(code & 0xff, 5 | 6 | 10 | 13 | 14)),
        _ => false,
    };
    if unavailable {
        StoreError::Unavailable(error.into())
    } else {
        StoreError::Other(error.into())
    }
}

/// Whether `error` is a foreign-key violation: extended code 787
/// (`SQLITE_CONSTRAINT_FOREIGNKEY`) for a missing parent, 1811 (`SQLITE_CONSTRAINT_TRIGGER`)
/// with "FOREIGN KEY constraint failed" for an `ON DELETE RESTRICT` action.
fn is_foreign_key_violation(error: &sqlx::Error) -> bool {
    error.as_database_error().is_some_and(|db| {
        db.kind() == sqlx::error::ErrorKind::ForeignKeyViolation
            || (db.code().as_deref() == Some("1811") && db.message().contains("FOREIGN KEY"))
    })
}

/// Whether `error` is a unique-constraint violation (2067, `SQLITE_CONSTRAINT_UNIQUE`).
fn is_unique_violation(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .is_some_and(|db| db.kind() == sqlx::error::ErrorKind::UniqueViolation)
}

/// A stored id that its domain type rejects.
fn out_of_range(what: &str, raw: i64) -> Error {
    Error(StoreError::Other(anyhow::anyhow!(
        "{what} {raw} out of range"
    )))
}

/// Runs the body of the store method `operation` in [`metered::timed`] (its `db` span and
/// duration) and hands its error back as a [`StoreError`].
async fn timed<T>(
    operation: &'static str,
    call: impl Future<Output = Result<T>>,
) -> StoreResult<T> {
    metered::timed(SYSTEM, operation, call)
        .await
        .map_err(StoreError::from)
}

/// Decodes one row through its row struct `R` into its domain type `T`: the one mapping
/// of that shape, in the form the list queries take.
fn decode<R, T>(row: &SqliteRow) -> StoreResult<T>
where
    R: for<'r> sqlx::FromRow<'r, SqliteRow>,
    T: TryFrom<R, Error = Error>,
{
    let row = R::from_row(row).map_err(map_error)?;
    Ok(T::try_from(row)?)
}

/// The current time in the fixed-width stored form.
fn now() -> String {
    timestamp_key(&Utc::now())
}

/// SQLite's storage form of a timestamp: fixed-width UTC text with microseconds, so that
/// text order is time order. Cursor values are typed; this encoding stays in this backend.
pub(crate) fn timestamp_key(at: &DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// SQLite's storage form of a date: ISO `YYYY-MM-DD`, which sorts as dates do.
fn date_key(date: chrono::NaiveDate) -> String {
    date.format("%Y-%m-%d").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::artist::{ArtistChanges, ArtistFilter, NewArtist};
    use crate::domain::list::ListQuery;
    use crate::storage::{ArtistStore, MaintenanceStore};

    async fn store_in(dir: &tempfile::TempDir) -> SqliteStore {
        let vars = std::collections::HashMap::from([
            ("STARSONGS_ENV".to_owned(), "test".to_owned()),
            (
                "DATABASE_URL".to_owned(),
                format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display()),
            ),
        ]);
        let settings = crate::config::Settings::load_from(&vars).unwrap();
        let store = SqliteStore::connect(&settings.database).await.unwrap();
        store.migrator().up().await.unwrap();
        store
    }

    /// A pooled connection that kept a statement or transaction open would go on reading
    /// the snapshot it started with. After every acknowledged write, every connection of
    /// the pool (all checked out at once, so each one answers) must see it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_pooled_connection_reads_a_snapshot_older_than_an_acknowledged_write() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_in(&dir).await;
        let max = store.pool.options().get_max_connections();
        let artist = store
            .insert_artist(&NewArtist::parse("Fresh").unwrap())
            .await
            .unwrap();

        for round in 0..20 {
            let written = store
                .patch_artist(artist.id, &ArtistChanges::default(), None)
                .await
                .unwrap();
            // Reads of all kinds on every connection first, as requests would leave them.
            let mut conns = Vec::new();
            for _ in 0..max {
                conns.push(store.pool.acquire().await.unwrap());
            }
            for (n, conn) in conns.iter_mut().enumerate() {
                let version: i64 = sqlx::query_scalar("select version from artist where id = ?")
                    .bind(artist.id.get())
                    .fetch_one(&mut **conn)
                    .await
                    .unwrap();
                assert_eq!(version, written.version, "round {round}, connection {n}");
            }
            drop(conns);
            // Leave a variety of finished statements behind on the pool's connections.
            let _ = store.get_artist(artist.id).await.unwrap();
            let _ = store
                .list_artists(&ListQuery {
                    sort: crate::domain::list::Sort::parse(None).unwrap(),
                    page_size: 1,
                    position: crate::domain::list::Position::Page(1),
                    filter: ArtistFilter::default(),
                })
                .await
                .unwrap();
        }
    }

    #[test]
    fn timestamp_key_is_fixed_width_and_ordered() {
        let whole = DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z")
            .unwrap()
            .to_utc();
        let fraction = DateTime::parse_from_rfc3339("2026-01-02T03:04:05.5Z")
            .unwrap()
            .to_utc();

        assert_eq!(timestamp_key(&whole), "2026-01-02T03:04:05.000000Z");
        assert!(timestamp_key(&whole) < timestamp_key(&fraction));
    }
}
