//! SQL Server schema management: our own runner with sqlx's bookkeeping, since sqlx has no
//! SQL Server driver.
//!
//! - The `_sqlx_migrations` table has sqlx's columns (version, description, installed_on,
//!   success, checksum, execution_time), and the checksum is the one sqlx computes for the
//!   same file (SHA-384 of its text), so the three backends keep one bookkeeping.
//! - The whole run holds an application lock (`sp_getapplock`, session-owned), so replicas
//!   starting together apply each migration once; each migration runs in one transaction
//!   (its `GO`-separated batches and its bookkeeping row commit together).
//! - A changed checksum, an unknown version or a failed (dirty) row stops start-up.

use std::time::Instant;

use async_trait::async_trait;
use sqlx::migrate::Migration;

use super::pool::Conn;
use super::sql::{Sql, applock, begin, finish, settle};
use super::{Pool, Result, map_error, other};
use crate::storage::StoreResult;
use crate::storage::migrate::{
    MigrationSql, MigrationStatus, Migrator, check_applied, sqlx_migrations,
};

/// This backend's SQL for every shared migration.
pub const SQL: MigrationSql = [
    (
        include_str!("../../../migrations/mssql/0001_create_catalog.up.sql"),
        include_str!("../../../migrations/mssql/0001_create_catalog.down.sql"),
    ),
    (
        include_str!("../../../migrations/mssql/0002_create_idempotency_key.up.sql"),
        include_str!("../../../migrations/mssql/0002_create_idempotency_key.down.sql"),
    ),
    (
        include_str!("../../../migrations/mssql/0003_create_app_user.up.sql"),
        include_str!("../../../migrations/mssql/0003_create_app_user.down.sql"),
    ),
    (
        include_str!("../../../migrations/mssql/0004_create_credentials.up.sql"),
        include_str!("../../../migrations/mssql/0004_create_credentials.down.sql"),
    ),
    (
        include_str!("../../../migrations/mssql/0005_rename_reserved_columns.up.sql"),
        include_str!("../../../migrations/mssql/0005_rename_reserved_columns.down.sql"),
    ),
    (
        include_str!("../../../migrations/mssql/0006_add_search_index_and_counts.up.sql"),
        include_str!("../../../migrations/mssql/0006_add_search_index_and_counts.down.sql"),
    ),
    (
        include_str!("../../../migrations/mssql/0007_add_session_started_at.up.sql"),
        include_str!("../../../migrations/mssql/0007_add_session_started_at.down.sql"),
    ),
];

const ENSURE_TABLE: &str = "IF OBJECT_ID(N'dbo._sqlx_migrations', N'U') IS NULL \
     CREATE TABLE dbo._sqlx_migrations (\
     version BIGINT NOT NULL PRIMARY KEY, \
     description NVARCHAR(MAX) NOT NULL, \
     installed_on DATETIMEOFFSET NOT NULL DEFAULT SYSDATETIMEOFFSET(), \
     success BIT NOT NULL, \
     checksum VARBINARY(MAX) NOT NULL, \
     execution_time BIGINT NOT NULL)";
const HAS_TABLE: &str = "SELECT CASE WHEN OBJECT_ID(N'dbo._sqlx_migrations', N'U') IS NULL \
     THEN 0 ELSE 1 END";
const APPLIED: &str =
    "SELECT version, checksum, success FROM dbo._sqlx_migrations ORDER BY version";
/// Waits as long as it takes (`@LockTimeout` -1 is bound): another replica is migrating.
/// Returns `sp_getapplock`'s return code (granted: 0 or 1).
const LOCK: &str = "DECLARE @granted INT; \
     EXEC @granted = sp_getapplock @Resource = N'starsongs_migrations', \
     @LockMode = N'Exclusive', @LockOwner = N'Session', @LockTimeout = @P1; \
     SELECT @granted";
/// Whether this session holds the lock: a refused `sp_getapplock` raises no error.
const HELD: &str = "SELECT APPLOCK_MODE(N'public', N'starsongs_migrations', N'Session')";
const UNLOCK: &str =
    "EXEC sp_releaseapplock @Resource = N'starsongs_migrations', @LockOwner = N'Session'";
const RECORD: &str = "INSERT INTO dbo._sqlx_migrations \
     (version, description, success, checksum, execution_time) \
     VALUES (@P1, @P2, 1, @P3, @P4)";
const FORGET: &str = "DELETE FROM dbo._sqlx_migrations WHERE version = @P1";

/// Every fixed statement, for the parse test.
#[cfg(test)]
pub(super) const STATEMENTS: &[&str] = &[
    ENSURE_TABLE,
    HAS_TABLE,
    APPLIED,
    LOCK,
    HELD,
    UNLOCK,
    RECORD,
    FORGET,
];

/// Splits a migration file into the batches `GO` separates. `GO` counts only alone on its
/// line (any case, surrounding blanks allowed), outside comments and quoted text;
/// empty batches are dropped.
pub fn split_batches(sql: &str) -> Vec<String> {
    #[derive(Clone, Copy, PartialEq)]
    enum State {
        Code,
        Block(u32),
        Quoted(char),
    }
    let mut batches = Vec::new();
    let mut current = String::new();
    let mut state = State::Code;
    for line in sql.split_inclusive('\n') {
        if state == State::Code && line.trim().eq_ignore_ascii_case("go") {
            batches.push(std::mem::take(&mut current));
            continue;
        }
        let chars: Vec<char> = line.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let (c, next) = (chars[i], chars.get(i + 1).copied());
            match state {
                State::Code => match (c, next) {
                    ('-', Some('-')) => break,
                    ('/', Some('*')) => {
                        state = State::Block(1);
                        i += 1;
                    }
                    ('\'' | '"' | '[', _) => state = State::Quoted(if c == '[' { ']' } else { c }),
                    _ => {}
                },
                State::Block(depth) => match (c, next) {
                    ('*', Some('/')) => {
                        state = if depth == 1 {
                            State::Code
                        } else {
                            State::Block(depth - 1)
                        };
                        i += 1;
                    }
                    ('/', Some('*')) => {
                        state = State::Block(depth + 1);
                        i += 1;
                    }
                    _ => {}
                },
                State::Quoted(close) => {
                    if c == close {
                        // A doubled closing character is an escaped one.
                        if next == Some(close) {
                            i += 1;
                        } else {
                            state = State::Code;
                        }
                    }
                }
            }
            i += 1;
        }
        current.push_str(line);
    }
    batches.push(current);
    batches
        .into_iter()
        .filter(|b| !b.trim().is_empty())
        .collect()
}

/// `(version, checksum, success)` of every applied migration.
type Applied = Vec<(i64, Vec<u8>, bool)>;

/// The SQL Server [`Migrator`].
pub(super) struct MssqlMigrator {
    pool: Pool,
    known: Vec<Migration>,
}

async fn read_applied(conn: &mut Conn) -> Result<Applied> {
    let exists = Sql::new(HAS_TABLE)
        .row(conn)
        .await?
        .and_then(|r| r.try_get::<i32, _>(0).ok().flatten())
        == Some(1);
    if !exists {
        return Ok(Vec::new());
    }
    Sql::new(APPLIED)
        .rows(conn)
        .await?
        .iter()
        .map(|row| {
            Ok((
                row.try_get::<i64, _>(0)?.unwrap_or_default(),
                row.try_get::<&[u8], _>(1)?.unwrap_or_default().to_vec(),
                row.try_get::<bool, _>(2)?.unwrap_or_default(),
            ))
        })
        .collect()
}

/// Runs every batch of `sql` on `conn` (inside the caller's transaction).
async fn run_batches(conn: &mut Conn, sql: &str) -> anyhow::Result<()> {
    for batch in split_batches(sql) {
        conn.start();
        let done = async { conn.client.simple_query(batch).await?.into_results().await }.await;
        settle(conn, done)?;
    }
    Ok(())
}

/// Runs the batches of `sql`, then the bookkeeping statement `record` (given the time the
/// batches took), in one transaction; on any failure rolls it all back.
async fn apply_one(
    conn: &mut Conn,
    sql: &str,
    what: &str,
    record: impl FnOnce(std::time::Duration) -> Sql,
) -> anyhow::Result<()> {
    let started = Instant::now();
    begin(conn).await?;
    let result = async {
        run_batches(conn, sql)
            .await
            .map_err(|e| anyhow::anyhow!("{what} failed: {e}"))?;
        record(started.elapsed()).execute(conn).await?;
        Ok::<_, anyhow::Error>(())
    }
    .await;
    let outcome = match &result {
        Ok(()) => Ok(()),
        Err(_) => Err(other(format!("{what} rolled back"))),
    };
    let finished = finish(conn, outcome).await;
    result?;
    Ok(finished?)
}

impl MssqlMigrator {
    pub(super) fn new(pool: Pool) -> Self {
        Self {
            pool,
            known: sqlx_migrations(&SQL),
        }
    }

    fn ups(&self) -> impl DoubleEndedIterator<Item = &Migration> {
        self.known
            .iter()
            .filter(|m| m.migration_type.is_up_migration())
    }

    fn down_of(&self, version: i64) -> Option<&Migration> {
        self.known
            .iter()
            .find(|m| m.version == version && m.migration_type.is_down_migration())
    }

    /// Runs `work` holding the migration lock; the lock is released whatever happens.
    async fn locked<T>(
        &self,
        work: impl for<'c> FnOnce(
            &'c mut Conn,
            Applied,
        ) -> std::pin::Pin<
            Box<dyn Future<Output = anyhow::Result<T>> + Send + 'c>,
        >,
    ) -> anyhow::Result<T> {
        let mut conn = self.pool.get().await.map_err(map_error)?;
        applock(&mut conn, &Sql::with(LOCK, vec![Box::new(-1_i32)])).await?;
        let mode = Sql::new(HELD)
            .row(&mut conn)
            .await?
            .and_then(|r| r.try_get::<&str, _>(0).ok().flatten().map(str::to_owned));
        if mode.as_deref() != Some("Exclusive") {
            anyhow::bail!("the migration lock was not granted (held: {mode:?})");
        }
        let result = async {
            Sql::new(ENSURE_TABLE).execute(&mut conn).await?;
            let applied = read_applied(&mut conn).await?;
            check_applied(&self.known, &applied)?;
            work(&mut conn, applied).await
        }
        .await;
        let unlocked = Sql::new(UNLOCK).execute(&mut conn).await;
        let value = result?;
        unlocked?;
        Ok(value)
    }
}

#[async_trait]
impl Migrator for MssqlMigrator {
    async fn status(&self) -> anyhow::Result<Vec<MigrationStatus>> {
        let mut conn = self.pool.get().await.map_err(map_error)?;
        let applied = read_applied(&mut conn).await?;
        check_applied(&self.known, &applied)?;
        Ok(self
            .ups()
            .map(|m| MigrationStatus {
                version: m.version,
                description: m.description.to_string(),
                is_applied: applied.iter().any(|(v, _, _)| *v == m.version),
            })
            .collect())
    }

    async fn up(&self) -> anyhow::Result<Vec<i64>> {
        let pending: Vec<Migration> = self.ups().cloned().collect();
        self.locked(move |conn, applied| {
            Box::pin(async move {
                let mut done = Vec::new();
                for migration in pending
                    .iter()
                    .filter(|m| !applied.iter().any(|(v, _, _)| *v == m.version))
                {
                    let what = format!("migration {}", migration.version);
                    apply_one(conn, migration.sql.as_str(), &what, |elapsed| {
                        Sql::with(
                            RECORD,
                            vec![
                                Box::new(migration.version),
                                Box::new(migration.description.to_string()),
                                Box::new(migration.checksum.to_vec()),
                                Box::new(i64::try_from(elapsed.as_nanos()).unwrap_or(i64::MAX)),
                            ],
                        )
                    })
                    .await?;
                    done.push(migration.version);
                }
                Ok(done)
            })
        })
        .await
    }

    async fn down_to(&self, target: i64) -> anyhow::Result<Vec<i64>> {
        let mut steps = Vec::new();
        for migration in self.ups().rev().filter(|m| m.version > target) {
            let down = self.down_of(migration.version).ok_or_else(|| {
                anyhow::anyhow!("migration {} has no down file", migration.version)
            })?;
            steps.push(down.clone());
        }
        self.locked(move |conn, applied| {
            Box::pin(async move {
                let mut done = Vec::new();
                for down in steps
                    .iter()
                    .filter(|m| applied.iter().any(|(v, _, _)| *v == m.version))
                {
                    let what = format!("reverting migration {}", down.version);
                    apply_one(conn, down.sql.as_str(), &what, |_| {
                        Sql::with(FORGET, vec![Box::new(down.version)])
                    })
                    .await?;
                    done.push(down.version);
                }
                Ok(done)
            })
        })
        .await
    }

    async fn pending_count(&self) -> StoreResult<usize> {
        let mut conn = self.pool.get().await.map_err(map_error)?;
        let applied = read_applied(&mut conn).await?;
        Ok(self
            .ups()
            .filter(|m| !applied.iter().any(|(v, _, _)| *v == m.version))
            .count())
    }
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha384};

    use super::*;

    #[test]
    fn checksums_are_the_ones_sqlx_computes_for_the_same_files() {
        let known = sqlx_migrations(&SQL);

        for (migration, (up, _)) in known
            .iter()
            .filter(|m| m.migration_type.is_up_migration())
            .zip(SQL.iter())
        {
            assert_eq!(
                migration.checksum.as_ref(),
                &Sha384::digest(up.as_bytes())[..],
                "migration {}",
                migration.version
            );
        }
        let versions: Vec<i64> = known.iter().map(|m| m.version).collect();
        assert!(
            versions.windows(2).all(|w| w[0] <= w[1]),
            "in order: {versions:?}"
        );
    }

    #[test]
    fn go_splits_batches_only_alone_on_its_line_outside_comments_and_text() {
        let sql = "CREATE TABLE a (x INT);\nGO\nSELECT 'GO\nGO' AS text;\n  go  \n\
                   /* a comment\nGO\n*/ SELECT 1;\n-- GO in a line comment\nGO\nGOOD;\n\nGO\n";

        let batches = split_batches(sql);

        assert_eq!(batches.len(), 4, "{batches:#?}");
        assert_eq!(batches[0], "CREATE TABLE a (x INT);\n");
        assert!(batches[1].contains("'GO\nGO'"));
        assert!(batches[2].contains("/* a comment\nGO\n*/ SELECT 1;"));
        assert_eq!(batches[3], "GOOD;\n\n");
    }
}
