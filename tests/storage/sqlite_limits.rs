//! SQLite under sustained writes (not contract cases: they look at SQLite's files and its
//! single-writer batching): the WAL stays bounded and is truncated once writes pause, and
//! writes that fail inside a shared batch fail alone.

use std::time::Duration;

use starsongs::domain::artist::ArtistFilter;
use starsongs::domain::artist::{ArtistChanges, NewArtist};
use starsongs::domain::ids::ArtistId;
use starsongs::domain::list::{ListQuery, Position, Sort};
use starsongs::domain::song::SongFilter;
use starsongs::domain::song::{NewSong, SongFields};
use starsongs::domain::version::ExpectedVersions;
use starsongs::storage::{Entity, Store, StoreError};

use crate::backends;

const MIB: u64 = 1024 * 1024;

async fn totals(store: &dyn Store) -> (u64, u64) {
    let artists = store
        .list_artists(&ListQuery {
            sort: Sort::parse(None).unwrap(),
            page_size: 1,
            position: Position::Page(1),
            filter: ArtistFilter::default(),
        })
        .await
        .unwrap();
    let songs = store
        .list_songs(&ListQuery {
            sort: Sort::parse(None).unwrap(),
            page_size: 1,
            position: Position::Page(1),
            filter: SongFilter::default(),
        })
        .await
        .unwrap();
    (artists.total_items, songs.total_items)
}

fn file_size(path: &std::path::Path) -> u64 {
    std::fs::metadata(path).map_or(0, |meta| meta.len())
}

/// A song of about 1.2 KB: a long title and a 1,000-character URL.
fn long_song(writer: usize, n: usize) -> NewSong {
    let title = format!("writer {writer} song {n} {}", "x".repeat(40));
    let url = format!("https://example.com/{writer}/{n}/{}", "y".repeat(980));
    NewSong::parse(SongFields {
        title: &title,
        artist_id: None,
        release_date: Some("2001-02-03"),
        url: Some(&url),
        distance: Some(1.5),
    })
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wal_stays_under_64_mib_while_writes_keep_coming_and_is_truncated_after() {
    const WRITERS: usize = 16;
    const SONGS_EACH: usize = 3_000;
    let backend = backends::sqlite().await.unwrap();
    let store = backend.store.clone();
    let db = backends::sqlite_path(&backend);
    let wal = db.with_extension("db-wal");
    let start_size = file_size(&db);

    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let store = store.clone();
        let wal = wal.clone();
        writers.push(tokio::spawn(async move {
            let mut largest_wal = 0;
            for n in 0..SONGS_EACH {
                store.insert_song(&long_song(writer, n)).await.unwrap();
                largest_wal = largest_wal.max(file_size(&wal));
            }
            largest_wal
        }));
    }
    let mut largest_wal = 0;
    for writer in writers {
        largest_wal = largest_wal.max(writer.await.unwrap());
    }
    let loaded_size = file_size(&db);

    // 48,000 songs of 1.2 KB passed through the WAL (the old per-request autocommit grew
    // it by about 30 KB per write and never reset it).
    assert!(
        largest_wal < 64 * MIB,
        "the WAL reached {} MiB",
        largest_wal / MIB
    );
    assert!(
        loaded_size > start_size + 48 * MIB,
        "the database file grew from {start_size} to {loaded_size} bytes only: checkpoints stalled"
    );
    // Once writes pause, the WAL is checkpointed and truncated (within about a second);
    // wait for that, bounded.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while file_size(&wal) > 0 || store.wal_size_bytes() != Some(0) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the WAL is still {} bytes (gauge {:?}) 30 s after the writes stopped",
            file_size(&wal),
            store.wal_size_bytes()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_failing_inside_a_shared_batch_fail_alone() {
    let backend = backends::sqlite().await.unwrap();
    let store = backend.store.clone();
    let target = store
        .insert_artist(&NewArtist::parse("Target").unwrap())
        .await
        .unwrap();
    let missing = ArtistId::try_from(999_999).unwrap();

    // 60 writes at once: they queue for the writer and share batches. Every fifth song
    // names a missing artist; every seventh patch carries a stale version.
    let mut tasks = Vec::new();
    for n in 0..60 {
        let store = store.clone();
        let target = target.id;
        tasks.push(tokio::spawn(async move {
            match n % 3 {
                0 => store
                    .insert_artist(&NewArtist::parse(&format!("Artist {n}")).unwrap())
                    .await
                    .map(|_| ()),
                1 => {
                    let artist_id = (n % 5 == 1).then_some(missing);
                    let song = NewSong::parse(SongFields {
                        title: &format!("Song {n}"),
                        artist_id: Some(artist_id.unwrap_or(target).get()),
                        release_date: None,
                        url: None,
                        distance: None,
                    })
                    .unwrap();
                    store.insert_song(&song).await.map(|_| ())
                }
                _ => {
                    let expected = (n % 7 == 2).then(|| ExpectedVersions::new(vec![-1]));
                    store
                        .patch_artist(target, &ArtistChanges::default(), expected.as_ref())
                        .await
                        .map(|_| ())
                }
            }
        }));
    }
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }

    let mut expected_songs = 0;
    let mut expected_patches = 0;
    for (n, outcome) in outcomes.iter().enumerate() {
        match (n % 3, outcome) {
            (0, Ok(())) => {}
            (
                1,
                Err(StoreError::NotFound {
                    entity: Entity::Artist,
                    id: 999_999,
                }),
            ) if n % 5 == 1 => {}
            (1, Ok(())) if n % 5 != 1 => expected_songs += 1,
            (2, Err(StoreError::PreconditionFailed)) if n % 7 == 2 => {}
            (2, Ok(())) if n % 7 != 2 => expected_patches += 1,
            other => panic!("write {n}: unexpected outcome {other:?}"),
        }
    }
    let (artists, songs) = totals(store.as_ref()).await;
    let patched = store.get_artist(target.id).await.unwrap();
    assert_eq!(artists, 1 + 20);
    assert_eq!(songs, expected_songs);
    assert_eq!(patched.version, 1 + expected_patches);
}
