//! Restore drills (docs/operations/backup-restore.md): a backup taken while the service
//! writes is intact, and a service started on the restored copy serves what was there.

use std::collections::HashMap;
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Connection;
use tokio::sync::mpsc;

use crate::harness::{TestApp, parts, sqlite_only};
use crate::server_db::{POSTGRES_URL_VAR, TestDatabase, server_url};

/// Concurrent writers during the SQLite backup.
const WRITERS: usize = 4;
/// Rows written before the backup starts, so that it runs on a database under load.
const ROWS_BEFORE_BACKUP: usize = 40;

fn run(program: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(program);
    command
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("DATABASE_URL");
    for (key, value) in env {
        command.env(key, value);
    }
    command
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Every item of the list at `path` (`/v1/artists`, `/v1/songs`), page by page, by id.
async fn all_items(app: &TestApp, path: &str) -> Vec<Value> {
    let mut items = Vec::new();
    for page in 1.. {
        let (status, _, body) = parts(
            app.get(&format!("{path}?page={page}&page_size=100&sort=id"))
                .await,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{path} page {page}: {body}");
        items.extend(body["items"].as_array().unwrap().iter().cloned());
        if body["pagination"]["has_next"] != json!(true) {
            break;
        }
    }
    items
}

/// One created artist, and whether its POST had completed before the backup started.
struct Written {
    artist: Value,
    is_before_backup: bool,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_backup_under_concurrent_writes_restores_every_acknowledged_row() {
    if sqlite_only("the drill copies the SQLite file with `starsongs backup`") {
        return;
    }
    let app = Arc::new(TestApp::spawn().await);
    let backup_started = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, mut rx) = mpsc::unbounded_channel::<Written>();
    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let (app, backup_started, stop, tx) = (
            app.clone(),
            backup_started.clone(),
            stop.clone(),
            tx.clone(),
        );
        writers.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                let name = format!("Writer {writer} row {n}");
                let response = app
                    .editor()
                    .post("/v1/artists", &json!({ "name": name }))
                    .await;
                assert_eq!(response.status(), StatusCode::CREATED, "{name}");
                let artist: Value = response.json().await.unwrap();
                // Read after the 201 arrived: if the flag is still clear, the backup began
                // after this row was acknowledged.
                let is_before_backup = !backup_started.load(Ordering::SeqCst);
                tx.send(Written {
                    artist,
                    is_before_backup,
                })
                .unwrap();
                n += 1;
            }
        }));
    }
    drop(tx);
    let mut written = Vec::new();
    while written.len() < ROWS_BEFORE_BACKUP {
        written.push(rx.recv().await.expect("writers are running"));
    }
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("restored.db");
    let url = app.database_url();

    backup_started.store(true, Ordering::SeqCst);
    let to = copy.to_str().unwrap().to_owned();
    let backup = tokio::task::spawn_blocking(move || {
        run(
            env!("CARGO_BIN_EXE_starsongs"),
            &["backup", "--to", &to],
            &[("STARSONGS_ENV", "test"), ("DATABASE_URL", &url)],
        )
    })
    .await
    .unwrap();
    stop.store(true, Ordering::SeqCst);
    for writer in writers {
        writer.await.unwrap();
    }
    while let Some(row) = rx.recv().await {
        written.push(row);
    }

    assert!(backup.status.success(), "{}", text(&backup.stderr));
    let copy_url = format!("sqlite://{}", copy.display());
    let mut conn = sqlx::SqliteConnection::connect(&copy_url).await.unwrap();
    let integrity: Vec<String> = sqlx::query_scalar("pragma integrity_check")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    assert_eq!(integrity, ["ok"]);
    let restored = app.spawn_on_copy(&copy_url, &[]).await;
    let in_copy: HashMap<i64, Value> = all_items(&restored, "/v1/artists")
        .await
        .into_iter()
        .map(|a| (a["id"].as_i64().unwrap(), a))
        .collect();
    let by_id: HashMap<i64, &Value> = written
        .iter()
        .map(|w| (w.artist["id"].as_i64().unwrap(), &w.artist))
        .collect();
    for row in written.iter().filter(|w| w.is_before_backup) {
        let id = row.artist["id"].as_i64().unwrap();
        assert_eq!(in_copy.get(&id), Some(&row.artist), "acknowledged row {id}");
    }
    // Rows written during the backup may or may not be in it, but never half-written.
    for (id, artist) in &in_copy {
        assert_eq!(by_id.get(id).copied(), Some(artist), "row {id} in the copy");
    }
    let (status, _, _) = parts(
        restored
            .editor()
            .post("/v1/artists", &json!({"name": "After restore"}))
            .await,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "the restored copy takes writes"
    );
}

#[tokio::test]
async fn postgres_dump_restored_into_a_new_database_serves_the_same_catalog() {
    let Some(admin_url) = server_url(POSTGRES_URL_VAR, "postgres") else {
        return;
    };
    let source = TestDatabase::create(&admin_url).await;
    let app = TestApp::spawn_on(&source.url, &[]).await;
    for name in ["David Bowie", "Pink Floyd", "Nina Simone"] {
        let artist = app.create_artist(name).await;
        for title in ["First", "Second"] {
            app.create_song(&json!({
                "title": format!("{name}: {title}"),
                "artist_id": artist["id"],
                "release_date": "1969-07-11",
                "distance": 238900.5,
            }))
            .await;
        }
    }
    app.create_song(&json!({"title": "No artist"})).await;
    let artists = all_items(&app, "/v1/artists").await;
    let songs = all_items(&app, "/v1/songs").await;
    let target = TestDatabase::create(&admin_url).await;
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("starsongs.dump");
    let dump_path = dump.to_str().unwrap().to_owned();

    let (dumped, restored_db) = {
        let (source_url, target_url) = (source.url.clone(), target.url.clone());
        tokio::task::spawn_blocking(move || {
            let dumped = run(
                "pg_dump",
                &[
                    "--format=custom",
                    "--no-owner",
                    "--file",
                    &dump_path,
                    &source_url,
                ],
                &[],
            );
            let restored = run(
                "pg_restore",
                &[
                    "--no-owner",
                    "--exit-on-error",
                    "--dbname",
                    &target_url,
                    &dump_path,
                ],
                &[],
            );
            (dumped, restored)
        })
        .await
        .unwrap()
    };

    assert!(dumped.status.success(), "pg_dump: {}", text(&dumped.stderr));
    assert!(
        restored_db.status.success(),
        "pg_restore: {}",
        text(&restored_db.stderr)
    );
    let restored = app.spawn_on_copy(&target.url, &[]).await;
    assert_eq!(artists.len(), 3);
    assert_eq!(songs.len(), 7);
    assert_eq!(all_items(&restored, "/v1/artists").await, artists);
    assert_eq!(all_items(&restored, "/v1/songs").await, songs);
    // The sequences came along: a new row does not collide with a restored id.
    let (status, _, _) = parts(
        restored
            .editor()
            .post("/v1/artists", &json!({"name": "After restore"}))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
}
