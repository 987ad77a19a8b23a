//! Schema management shared by the backends: the `Migrator` trait used by `starsongs
//! migrate`, start-up and readiness, and the status it reports.

use async_trait::async_trait;
use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType};

use super::StoreResult;

/// How many migrations exist; every backend has one up and one down file for each.
pub const COUNT: usize = 7;

/// Every migration, oldest first: version and description. The same number means the same
/// change in every `migrations/<backend>/` folder (`NNNN_description_words.{up,down}.sql`);
/// a test checks each folder against this list.
pub const MIGRATIONS: [(i64, &str); COUNT] = [
    (1, "create catalog"),
    (2, "create idempotency key"),
    (3, "create app user"),
    (4, "create credentials"),
    (5, "rename reserved columns"),
    (6, "add search index and counts"),
    (7, "add session started at"),
];

/// sqlx's bookkeeping table, used by every backend (the SQL Server runner keeps the same
/// columns).
pub const TABLE: &str = "_sqlx_migrations";

/// A backend's migration SQL, `(up, down)` in [`MIGRATIONS`] order; the array length makes
/// a missing file a compile error.
pub type MigrationSql = [(&'static str, &'static str); COUNT];

/// sqlx migrations (with sqlx's checksums) for one backend's SQL.
pub fn sqlx_migrations(sql: &MigrationSql) -> Vec<Migration> {
    let mut migrations = Vec::with_capacity(2 * COUNT);
    for ((version, description), (up, down)) in MIGRATIONS.iter().zip(sql) {
        for (kind, text) in [
            (MigrationType::ReversibleUp, up),
            (MigrationType::ReversibleDown, down),
        ] {
            migrations.push(Migration::new(
                *version,
                (*description).into(),
                kind,
                text.into_sql_str(),
                false,
            ));
        }
    }
    migrations
}

/// Checks what a database has applied against what this build knows: every applied
/// version must be known, with the same checksum, and must have succeeded.
///
/// # Errors
/// An unknown version, a changed checksum, or a failed (dirty) migration, each named.
pub fn check_applied(known: &[Migration], applied: &[(i64, Vec<u8>, bool)]) -> anyhow::Result<()> {
    for (version, checksum, success) in applied {
        if !success {
            anyhow::bail!(
                "migration {version} failed part-way earlier (dirty); repair the schema by \
                 hand, delete its row from {TABLE}, and migrate again (docs/operations/migrations.md)"
            );
        }
        match known
            .iter()
            .find(|m| m.version == *version && m.migration_type.is_up_migration())
        {
            None => anyhow::bail!(
                "the database has migration {version}, which this build does not know"
            ),
            Some(m) if m.checksum.as_ref() != checksum.as_slice() => anyhow::bail!(
                "migration {version} was changed after it was applied (checksum differs)"
            ),
            Some(_) => {}
        }
    }
    Ok(())
}

/// One known migration and whether it is applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationStatus {
    /// Migration number (`0001` is 1).
    pub version: i64,
    /// Description from the file name.
    pub description: String,
    /// Whether the database has it applied.
    pub is_applied: bool,
}

/// Applies and reverts the numbered migrations of one backend.
#[async_trait]
pub trait Migrator: Send + Sync {
    /// Every known migration, oldest first, with its state.
    ///
    /// # Errors
    /// The database cannot be read, or it has applied a migration this build does not know
    /// or whose checksum differs.
    async fn status(&self) -> anyhow::Result<Vec<MigrationStatus>>;
    /// Applies every pending migration, each in its own transaction; returns their versions.
    ///
    /// # Errors
    /// A migration failed (it is rolled back) or an applied one was changed.
    async fn up(&self) -> anyhow::Result<Vec<i64>>;
    /// Reverts applied migrations newer than `target`, newest first; returns their versions.
    ///
    /// # Errors
    /// A down migration failed (it is rolled back).
    async fn down_to(&self, target: i64) -> anyhow::Result<Vec<i64>>;
    /// How many known migrations are not applied (0 when the schema is current).
    ///
    /// # Errors
    /// The database cannot be read.
    async fn pending_count(&self) -> StoreResult<usize>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_backend_folder_holds_exactly_the_shared_list() {
        let mut expected: Vec<String> = MIGRATIONS
            .iter()
            .flat_map(|(v, d)| {
                let stem = format!("{v:04}_{}", d.replace(' ', "_"));
                [format!("{stem}.down.sql"), format!("{stem}.up.sql")]
            })
            .collect();
        expected.sort();

        for backend in ["sqlite", "postgres", "mssql"] {
            let dir = format!("{}/migrations/{backend}", env!("CARGO_MANIFEST_DIR"));
            let mut files: Vec<String> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            files.sort();

            assert_eq!(files, expected, "{dir}");
        }
    }

    #[test]
    fn applied_migrations_are_checked_against_the_build() {
        let known = sqlx_migrations(&[("select 1;", "select 2;"); COUNT]);
        let checksum = known[0].checksum.to_vec();

        assert!(check_applied(&known, &[(1, checksum.clone(), true)]).is_ok());
        let changed = check_applied(&known, &[(1, vec![0; 48], true)]).unwrap_err();
        assert!(
            changed.to_string().contains("checksum differs"),
            "{changed}"
        );
        let unknown = check_applied(&known, &[(99, checksum.clone(), true)]).unwrap_err();
        assert!(unknown.to_string().contains("does not know"), "{unknown}");
        let dirty = check_applied(&known, &[(1, checksum, false)]).unwrap_err();
        assert!(dirty.to_string().contains("dirty"), "{dirty}");
    }
}
