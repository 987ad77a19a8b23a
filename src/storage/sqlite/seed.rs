//! Seeds the shared demo catalog ([`crate::domain::demo`]) once per SQLite database.

use sqlx::SqliteConnection;

use super::{artists, map_error, now, songs};
use crate::domain::demo::DemoArtist;
use crate::domain::song::NewSong;
use crate::storage::StoreResult;

/// Inserts `catalog` unless this database was ever seeded (even if the demo rows were
/// deleted since). The marker and the rows commit together, in the writer's batch.
pub(super) async fn seed_demo_data(
    conn: &mut SqliteConnection,
    catalog: &[DemoArtist],
) -> StoreResult<bool> {
    // The batch holds SQLite's write lock (`begin immediate`), so two starting processes
    // cannot both seed.
    let marked = sqlx::query(
        "insert into app_meta (name, value) values ('demo_data_seeded_at', ?) \
         on conflict (name) do nothing",
    )
    .bind(now())
    .execute(&mut *conn)
    .await
    .map_err(map_error)?;
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
}
