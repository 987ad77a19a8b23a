//! PostgreSQL schema management with sqlx's migrator: each migration in its own
//! transaction, the whole run under a session advisory lock (`pg_advisory_lock`, keyed by
//! the database name), so replicas starting together apply each migration exactly once.
//! The files are compiled in.

use async_trait::async_trait;
use sqlx::PgPool;
use sqlx::migrate::{MigrateError, Migrator as SqlxMigrator};
use sqlx::postgres::PgPoolOptions;

use super::map_error;
use crate::storage::StoreResult;
use crate::storage::migrate::{
    MigrationSql, MigrationStatus, Migrator, TABLE, check_applied, sqlx_migrations,
};

/// This backend's SQL for every shared migration.
pub const SQL: MigrationSql = [
    (
        include_str!("../../../migrations/postgres/0001_create_catalog.up.sql"),
        include_str!("../../../migrations/postgres/0001_create_catalog.down.sql"),
    ),
    (
        include_str!("../../../migrations/postgres/0002_create_idempotency_key.up.sql"),
        include_str!("../../../migrations/postgres/0002_create_idempotency_key.down.sql"),
    ),
    (
        include_str!("../../../migrations/postgres/0003_create_app_user.up.sql"),
        include_str!("../../../migrations/postgres/0003_create_app_user.down.sql"),
    ),
    (
        include_str!("../../../migrations/postgres/0004_create_credentials.up.sql"),
        include_str!("../../../migrations/postgres/0004_create_credentials.down.sql"),
    ),
    (
        include_str!("../../../migrations/postgres/0005_rename_reserved_columns.up.sql"),
        include_str!("../../../migrations/postgres/0005_rename_reserved_columns.down.sql"),
    ),
    (
        include_str!("../../../migrations/postgres/0006_add_search_index_and_counts.up.sql"),
        include_str!("../../../migrations/postgres/0006_add_search_index_and_counts.down.sql"),
    ),
    (
        include_str!("../../../migrations/postgres/0007_add_session_started_at.up.sql"),
        include_str!("../../../migrations/postgres/0007_add_session_started_at.down.sql"),
    ),
];

/// How often a migration run that lost a deadlock or serialization race against live
/// traffic (the service's own pruning, other replicas' requests) is started again. sqlx
/// applies each migration in its own transaction, so a lost one left nothing behind.
const MAX_RUNS: u32 = 3;

/// Whether `error` is a deadlock (40P01) or serialization failure (40001).
fn lost_a_race(error: &MigrateError) -> bool {
    match error {
        MigrateError::Execute(source) | MigrateError::ExecuteMigration(source, _) => {
            super::sqlstate(source).is_some_and(|code| code == "40P01" || code == "40001")
        }
        _ => false,
    }
}

/// `(version, checksum, success)` of every applied migration.
type Applied = Vec<(i64, Vec<u8>, bool)>;

/// The PostgreSQL [`Migrator`].
pub(super) struct PgMigrator {
    pool: PgPool,
    inner: SqlxMigrator,
}

impl PgMigrator {
    pub(super) fn new(pool: PgPool) -> Self {
        let mut inner = SqlxMigrator::with_migrations(sqlx_migrations(&SQL));
        // The default, stated: without the advisory lock two replicas could both apply.
        inner.set_locking(true);
        Self { pool, inner }
    }

    /// Applied migrations; none when the bookkeeping table does not exist yet.
    async fn applied(&self) -> Result<Applied, sqlx::Error> {
        let mut conn = self.pool.acquire().await?;
        let exists: bool = sqlx::query_scalar("select to_regclass($1) is not null")
            .bind(TABLE)
            .fetch_one(&mut *conn)
            .await?;
        if !exists {
            return Ok(Vec::new());
        }
        let rows: Vec<(i64, Vec<u8>, bool)> = sqlx::query_as(
            "select version, checksum, success from _sqlx_migrations order by version",
        )
        .fetch_all(&mut *conn)
        .await?;
        Ok(rows)
    }

    /// A one-connection pool without the service's `statement_timeout`: a migration (an
    /// index built over a large table) may take longer than any request should, and a
    /// cancelled migration stops start-up. The request pool keeps its bound.
    fn unbounded_pool(&self) -> PgPool {
        let options = (*self.pool.connect_options())
            .clone()
            .options([("statement_timeout", "0")]);
        PgPoolOptions::new()
            .max_connections(1)
            .connect_lazy_with(options)
    }

    fn known_ups(&self) -> impl Iterator<Item = &sqlx::migrate::Migration> {
        self.inner
            .iter()
            .filter(|m| m.migration_type.is_up_migration())
    }
}

#[async_trait]
impl Migrator for PgMigrator {
    async fn status(&self) -> anyhow::Result<Vec<MigrationStatus>> {
        let applied = self.applied().await?;
        check_applied(self.inner.migrations.as_ref(), &applied)?;
        Ok(self
            .known_ups()
            .map(|m| MigrationStatus {
                version: m.version,
                description: m.description.to_string(),
                is_applied: applied.iter().any(|(v, _, _)| *v == m.version),
            })
            .collect())
    }

    async fn up(&self) -> anyhow::Result<Vec<i64>> {
        let before = self.applied().await?;
        check_applied(self.inner.migrations.as_ref(), &before)?;
        // sqlx creates the bookkeeping table under the lock as well (two `create table if
        // not exists` at once can collide in the catalog).
        let pool = self.unbounded_pool();
        let mut runs = 1;
        while let Err(error) = self.inner.run(&pool).await {
            if runs == MAX_RUNS || !lost_a_race(&error) {
                return Err(error.into());
            }
            tracing::warn!(
                db.attempt = runs,
                "migration lost a deadlock; running it again"
            );
            runs += 1;
        }
        pool.close().await;
        let after = self.applied().await?;
        Ok(after
            .iter()
            .map(|(v, _, _)| *v)
            .filter(|v| !before.iter().any(|(b, _, _)| b == v))
            .collect())
    }

    async fn down_to(&self, target: i64) -> anyhow::Result<Vec<i64>> {
        let before = self.applied().await?;
        check_applied(self.inner.migrations.as_ref(), &before)?;
        let pool = self.unbounded_pool();
        let mut runs = 1;
        while let Err(error) = self.inner.undo(&pool, target).await {
            if runs == MAX_RUNS || !lost_a_race(&error) {
                return Err(error.into());
            }
            tracing::warn!(
                db.attempt = runs,
                "migration lost a deadlock; running it again"
            );
            runs += 1;
        }
        pool.close().await;
        let after = self.applied().await?;
        let mut reverted: Vec<i64> = before
            .iter()
            .map(|(v, _, _)| *v)
            .filter(|v| !after.iter().any(|(a, _, _)| a == v))
            .collect();
        reverted.sort_unstable_by(|a, b| b.cmp(a));
        Ok(reverted)
    }

    async fn pending_count(&self) -> StoreResult<usize> {
        let applied = self.applied().await.map_err(map_error)?;
        Ok(self
            .known_ups()
            .filter(|m| !applied.iter().any(|(v, _, _)| *v == m.version))
            .count())
    }
}
