//! Housekeeping on PostgreSQL: idempotency-key pruning, the demo seed, the health ping,
//! the migrator and the pool's lifecycle.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{PgStore, SYSTEM, artists, now, retry, songs, timed};
use crate::domain::demo::DemoArtist;
use crate::domain::song::NewSong;
use crate::storage::metered;
use crate::storage::migrate::Migrator;
use crate::storage::{MaintenanceStore, PoolStats, StoreError, StoreResult};

#[async_trait]
impl MaintenanceStore for PgStore {
    /// Deletes keys created before `created_before`.
    async fn prune_idempotency_keys(&self, created_before: DateTime<Utc>) -> StoreResult<u64> {
        timed("prune_idempotency_keys", async {
            let done = sqlx::query("delete from idempotency_key where created_at < $1")
                .bind(created_before)
                .execute(&self.pool)
                .await?;
            Ok(done.rows_affected())
        })
        .await
    }

    /// Inserts `catalog` unless this database was ever seeded (even if the demo rows were
    /// deleted since). The marker and the rows commit together; a second process starting
    /// at the same time waits on the marker's primary key and then finds it taken.
    async fn seed_demo_data(&self, catalog: &[DemoArtist]) -> StoreResult<bool> {
        timed(
            "seed_demo_data",
            retry(|| async {
                let mut tx = self.pool.begin().await?;
                let marked = sqlx::query(
                    "insert into app_meta (name, value) values ('demo_data_seeded_at', $1) \
                     on conflict (name) do nothing",
                )
                .bind(now().to_rfc3339())
                .execute(&mut *tx)
                .await?;
                if marked.rows_affected() == 0 {
                    tx.rollback().await?;
                    return Ok(false);
                }
                for demo in catalog {
                    let artist = artists::insert_with(&mut tx, &demo.artist).await?;
                    for song in &demo.songs {
                        let song = NewSong {
                            artist_id: Some(artist.id),
                            ..song.clone()
                        };
                        songs::insert_with(&mut tx, &song).await?;
                    }
                }
                tx.commit().await?;
                Ok(true)
            }),
        )
        .await
    }

    async fn backup_to(&self, _destination: &std::path::Path) -> StoreResult<()> {
        timed("backup_to", async {
            Err(StoreError::Unsupported {
                operation: "backup",
                backend: "postgres",
            }
            .into())
        })
        .await
    }

    async fn ping(&self) -> StoreResult<()> {
        timed("ping", async {
            sqlx::query("select 1").execute(&self.pool).await?;
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

    async fn close(&self) {
        metered::timed(SYSTEM, "close", self.pool.close()).await;
    }
}
