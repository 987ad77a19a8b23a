//! Schema management shared by the backends: the `Migrator` trait used by `starsongs
//! migrate`, start-up and readiness, and the status it reports.

use async_trait::async_trait;

use super::StoreResult;

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
