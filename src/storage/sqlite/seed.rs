//! The original catalog's demo data (development only), inserted once per database.

use sqlx::SqlitePool;

use super::{map_error, now};
use crate::domain::validation::search_key;
use crate::storage::StoreResult;

/// A demo song: title, release date, distance, URL.
type DemoSong = (&'static str, &'static str, f64, &'static str);

/// `(artist, songs)` from the original service.
const DEMO: &[(&str, &[DemoSong])] = &[
    (
        "David Bowie",
        &[
            (
                "Space Oddity",
                "1969-07-11",
                238_900.0,
                "https://www.youtube.com/watch?v=iYYRH4apXDo",
            ),
            (
                "Starman",
                "1972-04-28",
                384_400.0,
                "https://www.youtube.com/watch?v=tRcPA7Fzebw",
            ),
        ],
    ),
    (
        "The Beatles",
        &[(
            "Across the Universe",
            "1970-02-06",
            40_000_000.0,
            "https://www.youtube.com/watch?v=90M60PzmxEE",
        )],
    ),
    (
        "Elton John",
        &[(
            "Rocket Man",
            "1972-04-17",
            384_400.0,
            "https://www.youtube.com/watch?v=DtVBCG6ThDk",
        )],
    ),
    (
        "Queen",
        &[(
            "'39",
            "1975-11-21",
            9_460_730_472_580.8,
            "https://www.youtube.com/watch?v=kn5xkFEEw5I",
        )],
    ),
    (
        "Pink Floyd",
        &[(
            "Astronomy Domine",
            "1967-08-05",
            4_000_000.0,
            "https://www.youtube.com/watch?v=pJh9OLlXenM",
        )],
    ),
];

/// Inserts the demo catalog unless this database was ever seeded (even if the demo rows
/// were deleted since). The marker and the rows commit together.
pub(super) async fn seed_demo_data(pool: &SqlitePool) -> StoreResult<bool> {
    let mut tx = pool
        .begin_with("begin immediate")
        .await
        .map_err(map_error)?;
    let at = now();
    // The write lock is held from the start, so two starting processes cannot both seed.
    let marked = sqlx::query(
        "insert into app_meta (key, value) values ('demo_data_seeded_at', ?) \
         on conflict (key) do nothing",
    )
    .bind(&at)
    .execute(&mut *tx)
    .await
    .map_err(map_error)?;
    if marked.rows_affected() == 0 {
        tx.rollback().await.map_err(map_error)?;
        return Ok(false);
    }
    for (artist, songs) in DEMO {
        let artist_id: i64 = sqlx::query_scalar(
            "insert into artist (name, name_key, version, created_at, updated_at) \
             values (?, ?, 1, ?, ?) returning id",
        )
        .bind(*artist)
        .bind(search_key(artist))
        .bind(&at)
        .bind(&at)
        .fetch_one(&mut *tx)
        .await
        .map_err(map_error)?;
        for (title, released, distance, url) in *songs {
            sqlx::query(
                "insert into song (title, title_key, artist_id, release_date, url, distance, \
                 version, created_at, updated_at) values (?, ?, ?, ?, ?, ?, 1, ?, ?)",
            )
            .bind(*title)
            .bind(search_key(title))
            .bind(artist_id)
            .bind(*released)
            .bind(*url)
            .bind(*distance)
            .bind(&at)
            .bind(&at)
            .execute(&mut *tx)
            .await
            .map_err(map_error)?;
        }
    }
    tx.commit().await.map_err(map_error)?;
    Ok(true)
}
