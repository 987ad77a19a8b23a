//! The embedded SQLite backend (sqlx): pool, pragmas, error mapping and the `Store` impl,
//! which delegates each use case to `artists`, `songs` or `seed`.

mod artists;
mod credentials;
mod idempotency;
mod list;
mod migrate;
mod seed;
mod songs;
mod users;
mod writer;

use std::str::FromStr;

use anyhow::Context;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use sqlx::ConnectOptions as _;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

use super::check_expected;
use super::metered::timed;
use super::migrate::Migrator;
use super::{
    AccountStore, ArtistStore, ConflictKind, CredentialStore, MaintenanceStore, PoolStats,
    SongStore, StoreError, StoreResult,
};

/// `db.system` of this backend's spans.
const SYSTEM: &str = "sqlite";
use crate::config::{DatabaseSettings, SqliteSynchronous};
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

/// Maps a driver error to a [`StoreError`].
///
/// | SQLite primary code | meaning | mapped to |
/// |---|---|---|
/// | 5 `SQLITE_BUSY`, 6 `SQLITE_LOCKED` | lock not granted within `busy_timeout` | `Unavailable` |
/// | 10 `SQLITE_IOERR`, 13 `SQLITE_FULL`, 14 `SQLITE_CANTOPEN` | disk or file trouble | `Unavailable` |
/// | pool timeout, pool closed, I/O | no connection to be had | `Unavailable` |
/// | anything else | a bug | `Other` |
///
/// Foreign-key codes (787, 1811) are handled where the use case knows what they mean.
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

#[async_trait]
impl ArtistStore for SqliteStore {
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
            self.writer
                .write_statement(new, |conn, new| Box::pin(artists::insert(conn, new)))
                .await
        })
        .await
    }

    async fn insert_artist_once(
        &self,
        new: &NewArtist,
        idempotency: &Idempotency<'_, Artist>,
    ) -> StoreResult<Created<Artist>> {
        timed(SYSTEM, "insert_artist_once", async {
            self.writer
                .write(&(new, idempotency), |conn, (new, idempotency)| {
                    Box::pin(artists::insert_once(conn, new, idempotency))
                })
                .await
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
            let change = |_: &Artist| new.clone();
            self.writer
                .write(&(id, expected, &change), |conn, &(id, expected, change)| {
                    Box::pin(artists::update(conn, id, expected, change))
                })
                .await
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
            let change = |current: &Artist| changes.apply(current);
            self.writer
                .write(&(id, expected, &change), |conn, &(id, expected, change)| {
                    Box::pin(artists::update(conn, id, expected, change))
                })
                .await
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
            self.writer
                .write(
                    &(id, cascade, expected),
                    |conn, &(id, cascade, expected)| {
                        Box::pin(artists::delete(conn, id, cascade, expected))
                    },
                )
                .await
        })
        .await
    }
}

#[async_trait]
impl SongStore for SqliteStore {
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
            self.writer
                .write_statement(new, |conn, new| Box::pin(songs::insert(conn, new)))
                .await
        })
        .await
    }

    async fn insert_song_once(
        &self,
        new: &NewSong,
        idempotency: &Idempotency<'_, Song>,
    ) -> StoreResult<Created<Song>> {
        timed(SYSTEM, "insert_song_once", async {
            self.writer
                .write(&(new, idempotency), |conn, (new, idempotency)| {
                    Box::pin(songs::insert_once(conn, new, idempotency))
                })
                .await
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
            let change = |_: &Song| new.clone();
            self.writer
                .write(&(id, expected, &change), |conn, &(id, expected, change)| {
                    Box::pin(songs::update(conn, id, expected, change))
                })
                .await
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
            let change = |current: &Song| changes.apply(current);
            self.writer
                .write(&(id, expected, &change), |conn, &(id, expected, change)| {
                    Box::pin(songs::update(conn, id, expected, change))
                })
                .await
        })
        .await
    }

    async fn delete_song(
        &self,
        id: SongId,
        expected: Option<&ExpectedVersions>,
    ) -> StoreResult<()> {
        timed(SYSTEM, "delete_song", async {
            self.writer
                .write(&(id, expected), |conn, &(id, expected)| {
                    Box::pin(songs::delete(conn, id, expected))
                })
                .await
        })
        .await
    }
}

#[async_trait]
impl AccountStore for SqliteStore {
    async fn insert_user(&self, new: &NewUser, password_hash: &str) -> StoreResult<User> {
        timed(SYSTEM, "insert_user", async {
            self.writer
                .write(&(new, password_hash), |conn, &(new, password_hash)| {
                    Box::pin(users::insert(conn, new, password_hash))
                })
                .await
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
            self.writer
                .write(
                    &(id, changes, password_hash),
                    |conn, &(id, changes, password_hash)| {
                        Box::pin(users::update(conn, id, changes, password_hash))
                    },
                )
                .await
        })
        .await
    }

    async fn delete_user(&self, id: UserId) -> StoreResult<()> {
        timed(SYSTEM, "delete_user", async {
            let id = id.get();
            self.writer
                .write(&id, |conn, &id| Box::pin(users::delete(conn, id)))
                .await
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
impl CredentialStore for SqliteStore {
    async fn insert_refresh_token(&self, token: &NewRefreshToken) -> StoreResult<()> {
        timed(SYSTEM, "insert_refresh_token", async {
            self.writer
                .write(token, |conn, token| {
                    Box::pin(credentials::insert_refresh(conn, token))
                })
                .await
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
            self.writer
                .write(
                    &(presented, next_hash, next_expires_at, session_max),
                    |conn, &(presented, next_hash, next_expires_at, session_max)| {
                        Box::pin(credentials::rotate_refresh(
                            conn,
                            presented,
                            next_hash,
                            next_expires_at,
                            session_max,
                        ))
                    },
                )
                .await
        })
        .await
    }

    async fn revoke_refresh_family(&self, presented: &SecretDigest) -> StoreResult<Option<String>> {
        timed(SYSTEM, "revoke_refresh_family", async {
            self.writer
                .write(presented, |conn, presented| {
                    Box::pin(credentials::revoke_refresh(conn, presented))
                })
                .await
        })
        .await
    }

    async fn prune_credentials(&self, at: DateTime<Utc>) -> StoreResult<u64> {
        timed(SYSTEM, "prune_credentials", async {
            self.writer
                .write(&at, |conn, &at| Box::pin(credentials::prune(conn, at)))
                .await
        })
        .await
    }

    async fn is_session_active(&self, family_id: &str) -> StoreResult<bool> {
        timed(SYSTEM, "is_session_active", async {
            credentials::is_session_active(&self.pool, family_id).await
        })
        .await
    }

    async fn claim_login_attempt(
        &self,
        username_key: &UsernameKey,
        at: DateTime<Utc>,
    ) -> StoreResult<LoginGate> {
        timed(SYSTEM, "claim_login_attempt", async {
            self.writer
                .write(&(username_key, at), |conn, &(username_key, at)| {
                    Box::pin(credentials::claim_login_attempt(conn, username_key, at))
                })
                .await
        })
        .await
    }

    async fn clear_login_failures(&self, username_key: &UsernameKey) -> StoreResult<()> {
        timed(SYSTEM, "clear_login_failures", async {
            self.writer
                .write(username_key, |conn, username_key| {
                    Box::pin(credentials::clear_login_failures(conn, username_key))
                })
                .await
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
            self.writer
                .write(
                    &(new, key_hash, prefix),
                    |conn, &(new, key_hash, prefix)| {
                        Box::pin(credentials::insert_api_key(conn, new, key_hash, prefix))
                    },
                )
                .await
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
            self.writer
                .write(&id, |conn, &id| {
                    Box::pin(credentials::delete_api_key(conn, id))
                })
                .await
        })
        .await
    }
}

#[async_trait]
impl MaintenanceStore for SqliteStore {
    async fn prune_idempotency_keys(&self, created_before: DateTime<Utc>) -> StoreResult<u64> {
        timed(SYSTEM, "prune_idempotency_keys", async {
            self.writer
                .write(&created_before, |conn, &created_before| {
                    Box::pin(idempotency::prune(conn, created_before))
                })
                .await
        })
        .await
    }

    async fn seed_demo_data(&self, catalog: &[DemoArtist]) -> StoreResult<bool> {
        timed(SYSTEM, "seed_demo_data", async {
            self.writer
                .write(catalog, |conn, catalog| {
                    Box::pin(seed::seed_demo_data(conn, catalog))
                })
                .await
        })
        .await
    }

    async fn backup_to(&self, destination: &std::path::Path) -> StoreResult<()> {
        timed(SYSTEM, "backup_to", async {
            if destination.exists() {
                return Err(StoreError::Conflict(ConflictKind::BackupDestinationExists));
            }
            let path = destination.to_str().ok_or_else(|| {
                StoreError::Other(anyhow::anyhow!("the backup path is not UTF-8"))
            })?;
            // VACUUM INTO reads one snapshot (committed WAL content included) and writes a
            // compact, self-contained database file; writers carry on meanwhile.
            sqlx::query("vacuum into ?")
                .bind(path)
                .execute(&self.pool)
                .await
                .map(|_| ())
                .map_err(map_error)
        })
        .await
    }

    async fn ping(&self) -> StoreResult<()> {
        timed(SYSTEM, "ping", async {
            // Reads a page of the file (`select 1` alone would not), so a database that is
            // locked away or gone is noticed.
            sqlx::query("select count(*) from sqlite_schema")
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

    fn wal_size_bytes(&self) -> Option<u64> {
        self.writer.wal_size_bytes()
    }

    async fn close(&self) {
        timed(SYSTEM, "close", async {
            self.writer.close().await;
            self.pool.close().await;
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
