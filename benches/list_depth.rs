//! Cost of a list page by depth: offset paging (`page=N`) against keyset paging (`cursor`),
//! through the real SQLite store. Run with `cargo bench --bench list_depth`; the figures
//! are quoted in BENCHMARKS.md.
//!
//! Each measurement is the median of `RUNS` calls of `Store::list_songs` (count + page, as
//! the API does), on one database of `SONGS` songs, side by side in one process.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use starsongs::config::Settings;
use starsongs::domain::list::{ListQuery, Position, SongFilter, SongSortField, Sort};
use starsongs::domain::song::{NewSong, SongFields};
use starsongs::storage::{self, Store};

const SONGS: u32 = 100_000;
const PAGE_SIZE: u32 = 20;
const RUNS: usize = 31;
const DEPTHS: [u32; 4] = [0, 10_000, 50_000, 99_000];

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

async fn time_query(store: &dyn Store, query: &ListQuery<SongSortField, SongFilter>) -> Duration {
    let mut samples = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let started = Instant::now();
        let page = store.list_songs(query).await.unwrap();
        samples.push(started.elapsed());
        assert_eq!(page.items.len(), PAGE_SIZE as usize);
    }
    median(samples)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("bench.db").display()
    );
    let vars = HashMap::from([
        ("STARSONGS_ENV".to_owned(), "test".to_owned()),
        ("DATABASE_URL".to_owned(), url),
        // Loading speed only; the measured reads do not depend on it.
        (
            "STARSONGS__DATABASE__SQLITE_SYNCHRONOUS".to_owned(),
            "normal".to_owned(),
        ),
    ]);
    let settings = Settings::load_from(&vars).unwrap();
    let store = storage::connect(&settings.database).await.unwrap();
    store.migrator().up().await.unwrap();

    let started = Instant::now();
    for i in 0..SONGS {
        let title = format!("Song {:06}", (i * 7919) % SONGS);
        let date = format!("19{:02}-{:02}-{:02}", 50 + i % 50, 1 + i % 12, 1 + i % 28);
        let new = NewSong::parse(SongFields {
            title: &title,
            release_date: (i % 10 != 0).then_some(date.as_str()),
            distance: Some(f64::from(i % 1000)),
            ..SongFields::default()
        })
        .unwrap();
        store.insert_song(&new).await.unwrap();
    }
    println!("loaded {SONGS} songs in {:.1?}\n", started.elapsed());
    // Reopen, as connection recycling does in a running service: new connections run
    // `pragma optimize`, which gathers the planner statistics.
    store.close().await;
    let store = storage::connect(&settings.database).await.unwrap();

    println!("| sort | depth | offset (`page`) | keyset (`cursor`) | offset / keyset |");
    println!("|---|---:|---:|---:|---:|");
    for sort in [
        "id",
        "-id",
        "title",
        "-release_date",
        "distance",
        "-release_date,title",
    ] {
        for depth in DEPTHS {
            let sort_spec = Sort::<SongSortField>::parse(Some(sort)).unwrap();
            let offset_query = ListQuery {
                sort: sort_spec.clone(),
                page_size: PAGE_SIZE,
                position: Position::Page(depth / PAGE_SIZE + 1),
                filter: SongFilter::default(),
            };
            let keyset_query = if depth == 0 {
                offset_query.clone()
            } else {
                // The cursor of the item just before this depth, as a client would hold it.
                let previous = ListQuery {
                    page_size: 1,
                    position: Position::Page(depth),
                    ..offset_query.clone()
                };
                let before = store.list_songs(&previous).await.unwrap().items.remove(0);
                ListQuery {
                    position: Position::After(sort_spec.values_of(&before)),
                    ..offset_query.clone()
                }
            };
            let first_offset = store.list_songs(&offset_query).await.unwrap();
            let first_keyset = store.list_songs(&keyset_query).await.unwrap();
            assert_eq!(
                first_offset.items.iter().map(|s| s.id).collect::<Vec<_>>(),
                first_keyset.items.iter().map(|s| s.id).collect::<Vec<_>>(),
                "both modes return the same page"
            );
            let offset = time_query(store.as_ref(), &offset_query).await;
            let keyset = time_query(store.as_ref(), &keyset_query).await;
            println!(
                "| `{sort}` | {depth} | {:.2} ms | {:.2} ms | {:.1}x |",
                offset.as_secs_f64() * 1e3,
                keyset.as_secs_f64() * 1e3,
                offset.as_secs_f64() / keyset.as_secs_f64()
            );
        }
    }
}
