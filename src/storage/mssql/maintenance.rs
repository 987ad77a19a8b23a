//! Housekeeping on SQL Server: the demo seed, idempotency-key pruning, readiness and pool
//! figures. No resource's rules live here.

use std::path::Path;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::artists::insert_artist_in;
use super::songs::insert_song_in;
use super::sql::{Sql, begin, finish};
use super::{Error, MssqlStore, SYSTEM, now, retry};
use crate::domain::demo::DemoArtist;
use crate::domain::song::NewSong;
use crate::storage::metered::timed;
use crate::storage::migrate::Migrator;
use crate::storage::{MaintenanceStore, PoolStats, StoreError, StoreResult};

/// The cheapest round trip, for readiness.
const PING: &str = "SELECT 1";
const PRUNE_IDEMPOTENCY_KEYS: &str = "DELETE FROM dbo.idempotency_key WHERE created_at < @P1";
/// The marker, inserted unless present; `UPDLOCK, HOLDLOCK` make a second process that
/// starts at the same time wait, then find it.
const MARK_SEEDED: &str = "INSERT INTO dbo.app_meta (name, value) \
     SELECT N'demo_data_seeded_at', @P1 WHERE NOT EXISTS \
     (SELECT 1 FROM dbo.app_meta WITH (UPDLOCK, HOLDLOCK) WHERE name = N'demo_data_seeded_at')";

/// Every fixed statement, for the parse test.
#[cfg(test)]
pub(super) const STATEMENTS: &[&str] = &[PING, PRUNE_IDEMPOTENCY_KEYS, MARK_SEEDED];

#[async_trait]
impl MaintenanceStore for MssqlStore {
    async fn prune_idempotency_keys(&self, created_before: DateTime<Utc>) -> StoreResult<u64> {
        timed(
            SYSTEM,
            "prune_idempotency_keys",
            self.run(|| async move {
                let mut conn = self.pool.get().await?;
                Sql::with(
                    PRUNE_IDEMPOTENCY_KEYS,
                    vec![Box::new(created_before.fixed_offset())],
                )
                .execute(&mut conn)
                .await
            }),
        )
        .await
    }

    /// Inserts `catalog` unless this database was ever seeded. The marker and the rows
    /// commit together. Not bounded by the operation timeout: the catalog is inserted
    /// once, at start-up.
    async fn seed_demo_data(&self, catalog: &[DemoArtist]) -> StoreResult<bool> {
        timed(
            SYSTEM,
            "seed_demo_data",
            retry(|| async move {
                let mut conn = self.pool.get().await?;
                begin(&mut conn).await?;
                let result = async {
                    let marked = Sql::with(MARK_SEEDED, vec![Box::new(now().to_rfc3339())])
                        .execute(&mut conn)
                        .await?;
                    if marked == 0 {
                        return Ok(false);
                    }
                    for demo in catalog {
                        let artist = insert_artist_in(&mut conn, &demo.artist).await?;
                        for song in &demo.songs {
                            let song = NewSong {
                                artist_id: Some(artist.id),
                                ..song.clone()
                            };
                            insert_song_in(&mut conn, &song).await?;
                        }
                    }
                    Ok(true)
                }
                .await;
                finish(&mut conn, result).await
            }),
        )
        .await
    }

    async fn backup_to(&self, _destination: &Path) -> StoreResult<()> {
        timed(SYSTEM, "backup_to", async {
            Err(StoreError::Unsupported {
                operation: "backup",
                backend: "mssql",
            })
        })
        .await
    }

    async fn ping(&self) -> StoreResult<()> {
        timed(
            SYSTEM,
            "ping",
            self.bounded(async {
                let mut conn = self.pool.get().await?;
                Sql::new(PING).execute(&mut conn).await?;
                Ok::<_, Error>(())
            }),
        )
        .await
    }

    fn migrator(&self) -> &dyn Migrator {
        &self.migrator
    }

    fn pool_stats(&self) -> PoolStats {
        let state = self.pool.state();
        PoolStats {
            size: state.connections,
            idle: state.idle_connections,
            max: self.max_connections,
        }
    }

    async fn close(&self) {
        timed(SYSTEM, "close", async {
            // bb8 closes connections as the pool is dropped; nothing waits for in-use ones.
        })
        .await;
    }
}
