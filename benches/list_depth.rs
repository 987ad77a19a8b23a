//! Cost of a list page by depth: offset paging (`page=N`) against keyset paging (`cursor`),
//! through the real SQLite store. Run with `cargo bench --bench list_depth`; the figures
//! are quoted in BENCHMARKS.md. `-- depth` or `-- totals` runs one of the two parts.
//!
//! Each measurement is the median of `RUNS` calls of `Store::list_songs` (count + page, as
//! the API does), on one database of `SONGS` songs, side by side in one process. The
//! `totals` part (#11) uses the shape of the data set instead (`TOTALS_SONGS` songs
//! of `TOTALS_ARTISTS` artists, titles like `../shared/bench/gen_data.py`) and the same
//! queries on a bare copy in the original schema, as the bench harness's ceiling runs them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, Instant};

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use starsongs::config::Settings;
use starsongs::domain::artist::NewArtist;
use starsongs::domain::artist::{ArtistFilter, ArtistSortField};
use starsongs::domain::ids::ArtistId;
use starsongs::domain::list::{ListQuery, Position, Sort};
use starsongs::domain::song::{NewSong, SongFields};
use starsongs::domain::song::{SongFilter, SongSortField};
use starsongs::storage::{self, DynStore, Store};

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

/// A fresh store on `path`, migrated.
async fn open_store(path: &std::path::Path) -> (Settings, DynStore) {
    let url = format!("sqlite://{}?mode=rwc", path.display());
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
    (settings, store)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let parts: Vec<String> = std::env::args().skip(1).collect();
    let wants = |part: &str| {
        !parts.iter().any(|a| a == "depth" || a == "totals") || parts.iter().any(|a| a == part)
    };
    if wants("depth") {
        depth_table().await;
    }
    if wants("totals") {
        totals_and_search().await;
    }
}

async fn depth_table() {
    let dir = tempfile::tempdir().unwrap();
    let (settings, store) = open_store(&dir.path().join("bench.db")).await;

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

const TOTALS_ARTISTS: u32 = 10_000;
const TOTALS_SONGS: u32 = 200_000;

const TITLE_A: [&str; 25] = [
    "Space",
    "Star",
    "Moon",
    "Sun",
    "Rocket",
    "Planet",
    "Satellite",
    "Comet",
    "Cosmic",
    "Interstellar",
    "Galactic",
    "Orbital",
    "Lunar",
    "Solar",
    "Astral",
    "Celestial",
    "Dark",
    "Blue",
    "Red",
    "Silver",
    "Final",
    "First",
    "Last",
    "Lonely",
    "Electric",
];
const TITLE_B: [&str; 25] = [
    "Oddity", "Man", "Dust", "Child", "Girl", "Boy", "Dance", "Dream", "Journey", "Voyage", "Love",
    "Song", "Blues", "Highway", "Station", "Odyssey", "Light", "Shadow", "Machine", "Signal",
    "Frontier", "Horizon", "Gravity", "Eclipse", "Rain",
];
const TITLE_C: [&str; 12] = [
    "",
    "",
    "",
    " (Live)",
    " (Remastered)",
    " Part II",
    " Reprise",
    " in the Sky",
    " of the Night",
    " Across the Universe",
    " on Mars",
    " to the Stars",
];
const FIRST: [&str; 8] = [
    "Nova", "Stellar", "Cosmic", "Lunar", "Solar", "Astro", "Orbit", "Comet",
];
const SECOND: [&str; 8] = [
    "Riders",
    "Dreamers",
    "Drifters",
    "Pilots",
    "Explorers",
    "Voyagers",
    "Kings",
    "Queens",
];

/// A small deterministic generator (SplitMix64): the same rows on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).unwrap()
    }
}

/// A row of the ceiling's song page.
type CeilingSong = (
    i64,
    String,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<f64>,
);

/// One generated song: title, artist index (1-based), release date, url, distance.
type Row = (String, u32, String, String, f64);

fn generated_songs() -> Vec<Row> {
    let mut rng = Rng(42);
    (0..TOTALS_SONGS)
        .map(|i| {
            let mut title = format!(
                "{} {}{}",
                TITLE_A[rng.below(TITLE_A.len())],
                TITLE_B[rng.below(TITLE_B.len())],
                TITLE_C[rng.below(TITLE_C.len())]
            );
            if rng.below(5) == 0 {
                title.push_str(&format!(" #{}", 2 + rng.below(98)));
            }
            let artist = 1 + u32::try_from(rng.below(TOTALS_ARTISTS as usize)).unwrap();
            let date = format!(
                "{}-{:02}-{:02}",
                1950 + rng.below(75),
                1 + rng.below(12),
                1 + rng.below(28)
            );
            let url = format!("https://www.youtube.com/watch?v={:011x}", rng.next() >> 20);
            let distance = f64::from(i) * 1.5 + 1.0;
            (title, artist, date, url, distance)
        })
        .collect()
}

fn artist_name(i: u32) -> String {
    let i = i as usize;
    format!(
        "The {} {} {i}",
        FIRST[i % FIRST.len()],
        SECOND[(i / 8) % SECOND.len()]
    )
}

/// Median of `RUNS` calls of `call`.
async fn time_it<F, Fut>(mut call: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut samples = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let started = Instant::now();
        call().await;
        samples.push(started.elapsed());
    }
    median(samples)
}

fn songs(
    page_size: u32,
    position: Position,
    filter: SongFilter,
) -> ListQuery<SongSortField, SongFilter> {
    ListQuery {
        sort: Sort::parse(Some("id")).unwrap(),
        page_size,
        position,
        filter,
    }
}

fn search(q: &str) -> SongFilter {
    SongFilter {
        q: Some(q.to_owned()),
        ..SongFilter::default()
    }
}

/// The S2 and S3 and the `q` search, through the store, next to the bare ceiling's
/// queries on the original schema holding the same rows.
async fn totals_and_search() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("totals.db");
    let (settings, store) = open_store(&path).await;
    let rows = generated_songs();

    let started = Instant::now();
    for i in 1..=TOTALS_ARTISTS {
        store
            .insert_artist(&NewArtist::parse(&artist_name(i)).unwrap())
            .await
            .unwrap();
    }
    for (title, artist, date, url, distance) in &rows {
        let new = NewSong::parse(SongFields {
            title,
            artist_id: Some(i64::from(*artist)),
            release_date: Some(date),
            url: Some(url),
            distance: Some(*distance),
        })
        .unwrap();
        store.insert_song(&new).await.unwrap();
    }
    println!(
        "\nloaded {TOTALS_ARTISTS} artists and {TOTALS_SONGS} songs one write at a time in {:.1?}",
        started.elapsed()
    );
    store.close().await;
    let store = storage::connect(&settings.database).await.unwrap();
    println!(
        "database file: {:.1} MiB",
        std::fs::metadata(&path).unwrap().len() as f64 / 1048576.0
    );

    // The ceiling: gen_data.py's schema and indexes, the same rows, the same pragmas.
    let ceiling_path = dir.path().join("ceiling.db");
    let ceiling = SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(
            SqliteConnectOptions::new()
                .filename(&ceiling_path)
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .foreign_keys(true),
        )
        .await
        .unwrap();
    sqlx::raw_sql(
        "create table Artist (id integer primary key autoincrement, name varchar(64) not null);
         create table Song (id integer primary key autoincrement, title varchar(64) not null,
             artistID integer null references Artist (id), released date null,
             URL varchar(1024) null, distance float null);
         create index IX_Song_ArtistID on Song (artistID);
         create index IX_Artist_Name on Artist (name);
         create index IX_Song_Title on Song (title);",
    )
    .execute(&ceiling)
    .await
    .unwrap();
    let mut tx = ceiling.begin().await.unwrap();
    for i in 1..=TOTALS_ARTISTS {
        sqlx::query("insert into Artist (id, name) values (?, ?)")
            .bind(i64::from(i))
            .bind(artist_name(i))
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    for (id, (title, artist, date, url, distance)) in (1_i64..).zip(&rows) {
        sqlx::query(
            "insert into Song (id, title, artistID, released, URL, distance) \
             values (?, ?, ?, ?, ?, ?)",
        )
        .bind(id)
        .bind(title)
        .bind(i64::from(*artist))
        .bind(date)
        .bind(url)
        .bind(distance)
        .execute(&mut *tx)
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    sqlx::raw_sql("analyze; vacuum;")
        .execute(&ceiling)
        .await
        .unwrap();

    let s2 = ListQuery {
        sort: Sort::<ArtistSortField>::parse(Some("id")).unwrap(),
        page_size: 10,
        position: Position::Page(1),
        filter: ArtistFilter::default(),
    };
    let s3_page = songs(20, Position::Page(5000), SongFilter::default());
    let before = store
        .list_songs(&songs(
            1,
            Position::Page(TOTALS_SONGS / 2),
            SongFilter::default(),
        ))
        .await
        .unwrap()
        .items
        .remove(0);
    let s3_cursor = songs(
        20,
        Position::After(s3_page.sort.values_of(&before)),
        SongFilter::default(),
    );
    let love = songs(20, Position::Page(1), search("love"));
    let love_deep = {
        let first = store.list_songs(&love).await.unwrap();
        songs(
            20,
            Position::After(love.sort.values_of(first.items.last().unwrap())),
            search("love"),
        )
    };
    let love_artist = songs(
        20,
        Position::Page(1),
        SongFilter {
            artist_id: Some(ArtistId::try_from(7_i64).unwrap()),
            ..search("love")
        },
    );
    let short = songs(20, Position::Page(1), search("lo"));
    let artist_q = ListQuery {
        filter: ArtistFilter {
            q: Some("nova".to_owned()),
        },
        ..s2.clone()
    };

    let page = store.list_songs(&love).await.unwrap();
    println!(
        "q=love matches {} of {TOTALS_SONGS} songs; q=lo {}",
        page.total_items,
        store.list_songs(&short).await.unwrap().total_items
    );

    let ceiling_s2 = time_it(|| async {
        let _: i64 = sqlx::query_scalar("select count(*) from Artist")
            .fetch_one(&ceiling)
            .await
            .unwrap();
        let rows: Vec<(i64, String)> =
            sqlx::query_as("select id, name from Artist order by id limit ? offset ?")
                .bind(10_i64)
                .bind(0_i64)
                .fetch_all(&ceiling)
                .await
                .unwrap();
        assert_eq!(rows.len(), 10);
    })
    .await;
    let ceiling_s3 = time_it(|| async {
        let _: i64 = sqlx::query_scalar("select count(*) from Song")
            .fetch_one(&ceiling)
            .await
            .unwrap();
        let rows: Vec<CeilingSong> = sqlx::query_as(
            "select id, title, artistID, released, URL, distance from Song \
                 order by id limit ? offset ?",
        )
        .bind(20_i64)
        .bind(4999_i64 * 20)
        .fetch_all(&ceiling)
        .await
        .unwrap();
        assert_eq!(rows.len(), 20);
    })
    .await;
    let service_s2 = time_it(|| async {
        assert_eq!(store.list_artists(&s2).await.unwrap().items.len(), 10);
    })
    .await;
    let mut lines = Vec::new();
    for (name, query) in [
        ("S3 `page=5000&page_size=20`", &s3_page),
        ("S3 by cursor at depth 100,000", &s3_cursor),
        ("`q=love&page_size=20`", &love),
        ("`q=love` by cursor, second page", &love_deep),
        ("`q=love&artist_id=7`", &love_artist),
        ("`q=lo` (2 characters: scan)", &short),
    ] {
        let took = time_it(|| async {
            store.list_songs(query).await.unwrap();
        })
        .await;
        lines.push((name, took));
    }
    let took = time_it(|| async {
        store.list_artists(&artist_q).await.unwrap();
    })
    .await;
    lines.push(("artists `q=nova&page_size=10`", took));

    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!("\n| request (store call) | median | vs ceiling S3 | vs service S2 |");
    println!("|---|---:|---:|---:|");
    println!(
        "| ceiling S2 `count(*)` + `limit 10` on Artist | {:.3} ms | | |",
        ms(ceiling_s2)
    );
    println!(
        "| ceiling S3 `count(*)` + `limit 20 offset 99980` on Song | {:.3} ms | 1.00 | |",
        ms(ceiling_s3)
    );
    println!(
        "| S2 `GET /v1/artists?page=1&page_size=10` | {:.3} ms | | 1.00 |",
        ms(service_s2)
    );
    for (name, took) in lines {
        println!(
            "| {name} | {:.3} ms | {:.2} | {:.2} |",
            ms(took),
            ceiling_s3.as_secs_f64() / took.as_secs_f64(),
            service_s2.as_secs_f64() / took.as_secs_f64()
        );
    }
    println!(
        "\n(ratios are throughput ratios: the reference's time divided by the row's; \
         above 1 means faster)"
    );
}
