//! SQLite schema management: sqlx's migration files and bookkeeping table, applied by a
//! small runner of ours. sqlx's own runner takes no lock on SQLite, so two processes
//! starting together could both apply a migration; here each migration runs in a
//! `begin immediate` transaction that re-checks the bookkeeping under SQLite's write lock,
//! so it is applied exactly once. The files are compiled in, so the binary migrates from
//! any working directory.

use std::time::Instant;

use async_trait::async_trait;
use sqlx::migrate::{Migrate, Migration};
use sqlx::{Row, SqliteConnection, SqlitePool};

use super::map_error;
use crate::storage::StoreResult;
use crate::storage::migrate::{
    MigrationSql, MigrationStatus, Migrator, TABLE, check_applied, sqlx_migrations,
};

/// This backend's SQL for every shared migration.
pub const SQL: MigrationSql = [
    (
        include_str!("../../../migrations/sqlite/0001_create_catalog.up.sql"),
        include_str!("../../../migrations/sqlite/0001_create_catalog.down.sql"),
    ),
    (
        include_str!("../../../migrations/sqlite/0002_create_idempotency_key.up.sql"),
        include_str!("../../../migrations/sqlite/0002_create_idempotency_key.down.sql"),
    ),
    (
        include_str!("../../../migrations/sqlite/0003_create_app_user.up.sql"),
        include_str!("../../../migrations/sqlite/0003_create_app_user.down.sql"),
    ),
    (
        include_str!("../../../migrations/sqlite/0004_create_credentials.up.sql"),
        include_str!("../../../migrations/sqlite/0004_create_credentials.down.sql"),
    ),
    (
        include_str!("../../../migrations/sqlite/0005_rename_reserved_columns.up.sql"),
        include_str!("../../../migrations/sqlite/0005_rename_reserved_columns.down.sql"),
    ),
    (
        include_str!("../../../migrations/sqlite/0006_add_search_index_and_counts.up.sql"),
        include_str!("../../../migrations/sqlite/0006_add_search_index_and_counts.down.sql"),
    ),
    (
        include_str!("../../../migrations/sqlite/0007_add_session_started_at.up.sql"),
        include_str!("../../../migrations/sqlite/0007_add_session_started_at.down.sql"),
    ),
];

impl SqliteMigrator {
    /// Closes every idle connection of the pool, so the next ones open on the new schema.
    /// A connection that had read the schema before migration 0006 (FTS5 external-content
    /// tables and their triggers) intermittently failed a later insert with "no such
    /// table: artist"; fresh connections never did. Connections in use at the time (none
    /// at start-up) finish their request first.
    fn retire_idle_connections(&self) {
        for _ in 0..self.pool.num_idle() {
            match self.pool.try_acquire() {
                Some(mut conn) => conn.close_on_drop(),
                None => break,
            }
        }
    }
}

/// The SQLite [`Migrator`].
pub(super) struct SqliteMigrator {
    pool: SqlitePool,
    known: Vec<Migration>,
}

/// `(version, checksum, success)` of every applied migration.
type Applied = Vec<(i64, Vec<u8>, bool)>;

async fn read_applied(conn: &mut SqliteConnection) -> Result<Applied, sqlx::Error> {
    let rows =
        sqlx::query("select version, checksum, success from _sqlx_migrations order by version")
            .fetch_all(conn)
            .await?;
    rows.iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?)))
        .collect()
}

async fn has_table(conn: &mut SqliteConnection) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "select exists (select 1 from sqlite_schema where type = 'table' and name = ?)",
    )
    .bind(TABLE)
    .fetch_one(conn)
    .await
}

impl SqliteMigrator {
    pub(super) fn new(pool: SqlitePool) -> Self {
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

    async fn checked(&self, conn: &mut SqliteConnection) -> anyhow::Result<Applied> {
        conn.ensure_migrations_table(TABLE).await?;
        let applied = read_applied(conn).await?;
        check_applied(&self.known, &applied)?;
        Ok(applied)
    }
}

#[async_trait]
impl Migrator for SqliteMigrator {
    async fn status(&self) -> anyhow::Result<Vec<MigrationStatus>> {
        let mut conn = self.pool.acquire().await?;
        let applied = self.checked(&mut conn).await?;
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
        let mut conn = self.pool.acquire().await?;
        self.checked(&mut conn).await?;
        let mut done = Vec::new();
        for migration in self.ups() {
            // The write lock first, then the check: another process that applied this
            // migration meanwhile has committed its bookkeeping row.
            let mut tx = sqlx::Connection::begin_with(&mut *conn, "begin immediate").await?;
            let applied = read_applied(&mut tx).await?;
            check_applied(&self.known, &applied)?;
            if applied.iter().any(|(v, _, _)| *v == migration.version) {
                tx.rollback().await?;
                continue;
            }
            let started = Instant::now();
            sqlx::raw_sql(migration.sql.clone())
                .execute(&mut *tx)
                .await
                .map_err(|e| anyhow::anyhow!("migration {} failed: {e}", migration.version))?;
            sqlx::query(
                "insert into _sqlx_migrations \
                 (version, description, success, checksum, execution_time) \
                 values (?, ?, true, ?, ?)",
            )
            .bind(migration.version)
            .bind(migration.description.as_ref())
            .bind(migration.checksum.as_ref())
            .bind(i64::try_from(started.elapsed().as_nanos()).unwrap_or(i64::MAX))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            done.push(migration.version);
        }
        if !done.is_empty() {
            conn.close_on_drop();
            self.retire_idle_connections();
        }
        Ok(done)
    }

    async fn down_to(&self, target: i64) -> anyhow::Result<Vec<i64>> {
        let mut conn = self.pool.acquire().await?;
        self.checked(&mut conn).await?;
        let mut done = Vec::new();
        for migration in self.ups().rev().filter(|m| m.version > target) {
            let mut tx = sqlx::Connection::begin_with(&mut *conn, "begin immediate").await?;
            let applied = read_applied(&mut tx).await?;
            if !applied.iter().any(|(v, _, _)| *v == migration.version) {
                tx.rollback().await?;
                continue;
            }
            let down = self.down_of(migration.version).ok_or_else(|| {
                anyhow::anyhow!("migration {} has no down file", migration.version)
            })?;
            sqlx::raw_sql(down.sql.clone())
                .execute(&mut *tx)
                .await
                .map_err(|e| anyhow::anyhow!("reverting migration {} failed: {e}", down.version))?;
            sqlx::query("delete from _sqlx_migrations where version = ?")
                .bind(migration.version)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            done.push(migration.version);
        }
        if !done.is_empty() {
            conn.close_on_drop();
            self.retire_idle_connections();
        }
        Ok(done)
    }

    async fn pending_count(&self) -> StoreResult<usize> {
        let mut conn = self.pool.acquire().await.map_err(map_error)?;
        // A database that was never migrated has no bookkeeping table yet: everything is
        // pending. Any other failure is reported, not taken for "nothing applied".
        let applied = if has_table(&mut conn).await.map_err(map_error)? {
            read_applied(&mut conn).await.map_err(map_error)?
        } else {
            Vec::new()
        };
        Ok(self
            .ups()
            .filter(|m| !applied.iter().any(|(v, _, _)| *v == m.version))
            .count())
    }
}
