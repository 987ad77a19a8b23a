//! Housekeeping on SQLite: `impl MaintenanceStore` (idempotency-key pruning, the demo
//! seed, backup, readiness, pool and WAL figures, shutdown).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{SYSTEM, SqliteStore, artists, metered, now, songs, timed, timestamp_key};
use crate::domain::demo::DemoArtist;
use crate::domain::song::NewSong;
use crate::storage::migrate::Migrator;
use crate::storage::{ConflictKind, MaintenanceStore, PoolStats, StoreError, StoreResult};

#[async_trait]
impl MaintenanceStore for SqliteStore {
    /// Deletes keys created before `created_before`.
    async fn prune_idempotency_keys(&self, created_before: DateTime<Utc>) -> StoreResult<u64> {
        timed("prune_idempotency_keys", async {
            self.writer
                .write(&created_before, |conn, &created_before| {
                    Box::pin(async move {
                        Ok(
                            sqlx::query("delete from idempotency_key where created_at < ?")
                                .bind(timestamp_key(&created_before))
                                .execute(conn)
                                .await?
                                .rows_affected(),
                        )
                    })
                })
                .await
        })
        .await
    }

    /// Inserts `catalog` unless this database was ever seeded (even if the demo rows were
    /// deleted since). The marker and the rows commit together, in the writer's batch.
    async fn seed_demo_data(&self, catalog: &[DemoArtist]) -> StoreResult<bool> {
        timed("seed_demo_data", async {
            self.writer
                .write(catalog, |conn, catalog| {
                    Box::pin(async move {
                        // The batch holds SQLite's write lock (`begin immediate`), so two
                        // starting processes cannot both seed.
                        let marked = sqlx::query(
                            "insert into app_meta (name, value) \
                             values ('demo_data_seeded_at', ?) on conflict (name) do nothing",
                        )
                        .bind(now())
                        .execute(&mut *conn)
                        .await?;
                        if marked.rows_affected() == 0 {
                            return Ok(false);
                        }
                        for demo in catalog {
                            let artist = artists::insert(conn, &demo.artist).await?;
                            for song in &demo.songs {
                                let song = NewSong {
                                    artist_id: Some(artist.id),
                                    ..song.clone()
                                };
                                songs::insert(conn, &song).await?;
                            }
                        }
                        Ok(true)
                    })
                })
                .await
        })
        .await
    }

    async fn backup_to(&self, destination: &std::path::Path) -> StoreResult<()> {
        timed("backup_to", async {
            if destination.exists() {
                return Err(StoreError::Conflict(ConflictKind::BackupDestinationExists).into());
            }
            let path = destination.to_str().ok_or_else(|| {
                StoreError::Other(anyhow::anyhow!("the backup path is not UTF-8"))
            })?;
            // VACUUM INTO reads one snapshot (committed WAL content included) and writes a
            // compact, self-contained database file; writers carry on meanwhile.
            sqlx::query("vacuum into ?")
                .bind(path)
                .execute(&self.pool)
                .await?;
            Ok(())
        })
        .await
    }

    async fn ping(&self) -> StoreResult<()> {
        timed("ping", async {
            // Reads a page of the file (`select 1` alone would not), so a database that is
            // locked away or gone is noticed.
            sqlx::query("select count(*) from sqlite_schema")
                .execute(&self.pool)
                .await?;
            Ok(())
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
        metered::timed(SYSTEM, "close", async {
            self.writer.close().await;
            self.pool.close().await;
        })
        .await;
    }
}
