//! SQLite schema management with sqlx's migrator. The migration files are compiled in, so
//! the binary migrates from any working directory.

use std::collections::HashMap;

use async_trait::async_trait;
use sqlx::SqlSafeStr;
use sqlx::SqlitePool;
use sqlx::migrate::{Migrate, Migration, MigrationType, Migrator as SqlxMigrator};

use super::map_error;
use crate::storage::StoreResult;
use crate::storage::migrate::{MigrationStatus, Migrator};

/// sqlx's bookkeeping table.
const TABLE: &str = "_sqlx_migrations";

/// One migration: version, description, up SQL, down SQL. A test checks that this list and
/// `migrations/sqlite/` agree.
pub const MIGRATIONS: &[(i64, &str, &str, &str)] = &[
    (
        1,
        "create catalog",
        include_str!("../../../migrations/sqlite/0001_create_catalog.up.sql"),
        include_str!("../../../migrations/sqlite/0001_create_catalog.down.sql"),
    ),
    (
        2,
        "create idempotency key",
        include_str!("../../../migrations/sqlite/0002_create_idempotency_key.up.sql"),
        include_str!("../../../migrations/sqlite/0002_create_idempotency_key.down.sql"),
    ),
    (
        3,
        "create app user",
        include_str!("../../../migrations/sqlite/0003_create_app_user.up.sql"),
        include_str!("../../../migrations/sqlite/0003_create_app_user.down.sql"),
    ),
    (
        4,
        "create credentials",
        include_str!("../../../migrations/sqlite/0004_create_credentials.up.sql"),
        include_str!("../../../migrations/sqlite/0004_create_credentials.down.sql"),
    ),
];

/// The SQLite [`Migrator`].
pub(super) struct SqliteMigrator {
    pool: SqlitePool,
    inner: SqlxMigrator,
}

impl SqliteMigrator {
    pub(super) fn new(pool: SqlitePool) -> Self {
        let mut migrations = Vec::new();
        for (version, description, up, down) in MIGRATIONS {
            for (kind, sql) in [
                (MigrationType::ReversibleUp, up),
                (MigrationType::ReversibleDown, down),
            ] {
                migrations.push(Migration::new(
                    *version,
                    (*description).into(),
                    kind,
                    sql.into_sql_str(),
                    false,
                ));
            }
        }
        Self {
            pool,
            inner: SqlxMigrator::with_migrations(migrations),
        }
    }

    /// Applied versions with their checksums.
    async fn applied(&self) -> anyhow::Result<HashMap<i64, Vec<u8>>> {
        let mut conn = self.pool.acquire().await?;
        conn.ensure_migrations_table(TABLE).await?;
        let applied = conn.list_applied_migrations(TABLE).await?;
        Ok(applied
            .into_iter()
            .map(|m| (m.version, m.checksum.into_owned()))
            .collect())
    }

    fn known_ups(&self) -> impl Iterator<Item = &Migration> {
        self.inner
            .iter()
            .filter(|m| m.migration_type == MigrationType::ReversibleUp)
    }
}

#[async_trait]
impl Migrator for SqliteMigrator {
    async fn status(&self) -> anyhow::Result<Vec<MigrationStatus>> {
        let applied = self.applied().await?;
        for (version, checksum) in &applied {
            match self.known_ups().find(|m| m.version == *version) {
                None => anyhow::bail!(
                    "the database has migration {version}, which this build does not know"
                ),
                Some(m) if m.checksum.as_ref() != checksum.as_slice() => anyhow::bail!(
                    "migration {version} was changed after it was applied (checksum differs)"
                ),
                Some(_) => {}
            }
        }
        Ok(self
            .known_ups()
            .map(|m| MigrationStatus {
                version: m.version,
                description: m.description.to_string(),
                is_applied: applied.contains_key(&m.version),
            })
            .collect())
    }

    async fn up(&self) -> anyhow::Result<Vec<i64>> {
        let before = self.applied().await?;
        self.inner.run(&self.pool).await?;
        let after = self.applied().await?;
        let mut applied: Vec<i64> = after
            .keys()
            .filter(|v| !before.contains_key(v))
            .copied()
            .collect();
        applied.sort_unstable();
        Ok(applied)
    }

    async fn down_to(&self, target: i64) -> anyhow::Result<Vec<i64>> {
        let before = self.applied().await?;
        self.inner.undo(&self.pool, target).await?;
        let after = self.applied().await?;
        let mut reverted: Vec<i64> = before
            .keys()
            .filter(|v| !after.contains_key(v))
            .copied()
            .collect();
        reverted.sort_unstable_by(|a, b| b.cmp(a));
        Ok(reverted)
    }

    async fn pending_count(&self) -> StoreResult<usize> {
        let mut conn = self.pool.acquire().await.map_err(map_error)?;
        let applied = conn
            .list_applied_migrations(TABLE)
            .await
            .map(|list| list.into_iter().map(|m| m.version).collect::<Vec<_>>())
            // A database that was never migrated has no bookkeeping table yet.
            .unwrap_or_default();
        Ok(self
            .known_ups()
            .filter(|m| !applied.contains(&m.version))
            .count())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiled_list_matches_the_migrations_folder() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        files.sort();

        let mut expected: Vec<String> = MIGRATIONS
            .iter()
            .flat_map(|(v, d, _, _)| {
                let stem = format!("{v:04}_{}", d.replace(' ', "_"));
                [format!("{stem}.down.sql"), format!("{stem}.up.sql")]
            })
            .collect();
        expected.sort();

        assert_eq!(files, expected);
    }
}
