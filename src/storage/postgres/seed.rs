//! Seeds the shared demo catalog ([`crate::domain::demo`]) once per PostgreSQL database.

use sqlx::PgPool;

use super::{artists, map_error, songs};
use crate::domain::demo::DemoArtist;
use crate::domain::song::NewSong;
use crate::storage::StoreResult;

/// Inserts `catalog` unless this database was ever seeded (even if the demo rows were
/// deleted since). The marker and the rows commit together; a second process starting at
/// the same time waits on the marker's primary key and then finds it taken.
pub(super) async fn seed_demo_data(pool: &PgPool, catalog: &[DemoArtist]) -> StoreResult<bool> {
    let mut tx = pool.begin().await.map_err(map_error)?;
    let marked = sqlx::query(
        "insert into app_meta (name, value) values ('demo_data_seeded_at', $1) \
         on conflict (name) do nothing",
    )
    .bind(super::now().to_rfc3339())
    .execute(&mut *tx)
    .await
    .map_err(map_error)?;
    if marked.rows_affected() == 0 {
        tx.rollback().await.map_err(map_error)?;
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
    tx.commit().await.map_err(map_error)?;
    Ok(true)
}
