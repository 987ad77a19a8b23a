//! Seeds the shared demo catalog ([`crate::domain::demo`]) once per SQL Server database.

use super::sql::{Sql, begin, finish};
use super::{Pool, artists, map_error, now, songs};
use crate::domain::demo::DemoArtist;
use crate::domain::song::NewSong;
use crate::storage::StoreResult;

/// The marker, inserted unless present; `UPDLOCK, HOLDLOCK` make a second process that
/// starts at the same time wait, then find it.
const MARK: &str = "INSERT INTO dbo.app_meta (name, value) \
     SELECT N'demo_data_seeded_at', @P1 WHERE NOT EXISTS \
     (SELECT 1 FROM dbo.app_meta WITH (UPDLOCK, HOLDLOCK) WHERE name = N'demo_data_seeded_at')";

/// Every fixed statement, for the parse test.
#[cfg(test)]
pub(super) const STATEMENTS: &[&str] = &[MARK];

/// Inserts `catalog` unless this database was ever seeded. The marker and the rows commit
/// together.
pub(super) async fn seed_demo_data(pool: &Pool, catalog: &[DemoArtist]) -> StoreResult<bool> {
    let mut conn = pool.get().await.map_err(map_error)?;
    begin(&mut conn).await?;
    let result = async {
        let marked = Sql::with(MARK, vec![Box::new(now().to_rfc3339())])
            .execute(&mut conn)
            .await?;
        if marked == 0 {
            return Ok(false);
        }
        for demo in catalog {
            let artist = artists::insert_with(&mut conn, &demo.artist).await?;
            for song in &demo.songs {
                let song = NewSong {
                    artist_id: Some(artist.id),
                    ..song.clone()
                };
                songs::insert_with(&mut conn, &song).await?;
            }
        }
        Ok(true)
    }
    .await;
    finish(&mut conn, result).await
}
