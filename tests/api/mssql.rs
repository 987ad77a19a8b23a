//! SQL Server only: the binary's commands on a SQL Server database, and adopting the
//! original system's database. Needs `STARSONGS_TEST_MSSQL_URL` (an `mssql://` URL of a
//! login that may create databases) and `STARSONGS_TEST_MSSQL_ADOPT_URL` (a database
//! loaded with `tests/fixtures/mssql/original-schema.sql`, not yet migrated); without
//! them the tests print why and skip. The GitHub workflow runs them against a SQL Server
//! 2022 service container.

use std::process::{Command, Output};

use reqwest::StatusCode;
use serde_json::{Value, json};
use starsongs::storage::migrate::MIGRATIONS;

use crate::harness::TestApp;
use crate::server_db::{MSSQL_URL_VAR, TestDatabase, mssql_client, server_url};

/// The variable naming the database to adopt (the workflow's `starsongs_adopt`).
const ADOPT_URL_VAR: &str = "STARSONGS_TEST_MSSQL_ADOPT_URL";

#[tokio::test]
async fn migrate_user_create_and_serve_work_on_sql_server() {
    let Some(admin_url) = server_url(MSSQL_URL_VAR, "mssql") else {
        return;
    };
    let database = TestDatabase::create_mssql(&admin_url).await;

    crate::harness::commands_work_on(&database.url);
}

fn migrate_up(url: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_starsongs"))
        .args(["migrate", "up"])
        .env_remove("RUST_LOG")
        .env("STARSONGS_ENV", "test")
        .env("DATABASE_URL", url)
        .output()
        .unwrap()
}

/// The first column of each row `sql` returns (text: CONCAT what is not), on `url`.
async fn texts(url: &str, sql: &str) -> Vec<String> {
    let mut client = mssql_client(url).await.unwrap();
    let rows = client
        .simple_query(sql)
        .await
        .unwrap()
        .into_first_result()
        .await
        .unwrap();
    client.close().await.unwrap();
    rows.iter()
        .map(|row| row.get::<&str, _>(0).unwrap_or_default().to_owned())
        .collect()
}

/// The rows of the fixture, as the API must serve them.
fn fixture_artists() -> Vec<Value> {
    vec![
        json!({"id": 3, "name": "Queen"}),
        json!({"id": 7, "name": "Björk"}),
        json!({"id": 12, "name": "Sigur Rós"}),
        json!({"id": 40, "name": "坂本龍一"}),
    ]
}

fn fixture_songs() -> Vec<Value> {
    vec![
        json!({"id": 5, "title": "Bohemian Rhapsody", "artist_id": 3,
               "release_date": "1975-10-31",
               "url": "https://example.com/queen/bohemian-rhapsody", "distance": 0.5}),
        json!({"id": 9, "title": "Jóga", "artist_id": 7, "release_date": "1997-09-15",
               "url": null, "distance": null}),
        json!({"id": 10, "title": "Hoppípolla", "artist_id": 12, "release_date": null,
               "url": "https://example.com/sigur-ros/hoppipolla", "distance": 0.25}),
        json!({"id": 21, "title": "戦場のメリークリスマス", "artist_id": 40,
               "release_date": "1983-05-28",
               "url": "https://example.com/sakamoto/merry-christmas", "distance": 1.75}),
        json!({"id": 33, "title": "Untitled demo", "artist_id": null, "release_date": null,
               "url": null, "distance": null}),
    ]
}

/// Asserts every member of `expected` is in `actual` with the same value.
fn assert_fields(actual: &Value, expected: &Value) {
    for (key, value) in expected.as_object().unwrap() {
        assert_eq!(&actual[key], value, "{key} of {actual}");
    }
}

async fn ids(app: &TestApp, path: &str) -> Vec<i64> {
    let response = app.get(path).await;
    assert_eq!(response.status(), StatusCode::OK, "{path}");
    let body: Value = response.json().await.unwrap();
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["id"].as_i64().unwrap())
        .collect()
}

/// Migration 0001 adopts the original schema (docs/operations/mssql.md, "Adopting the
/// original database"): the rows keep their ids and fields, new ids continue after the old ones,
/// and the indexes and statistics that blocked its ALTER COLUMNs are gone or recreated.
#[tokio::test]
async fn an_original_database_is_adopted_with_its_rows_and_ids() {
    let Some(url) = server_url(ADOPT_URL_VAR, "mssql") else {
        return;
    };

    let migrated = migrate_up(&url);
    let applied: String = MIGRATIONS
        .iter()
        .map(|(v, _)| format!("applied {v:04}\n"))
        .collect();
    assert_eq!(
        String::from_utf8_lossy(&migrated.stdout),
        applied,
        "{}",
        String::from_utf8_lossy(&migrated.stderr)
    );
    let app = TestApp::spawn_on(&url, &[]).await;

    for artist in fixture_artists() {
        let response = app.get(&format!("/v1/artists/{}", artist["id"])).await;
        assert_eq!(response.status(), StatusCode::OK, "{artist}");
        assert_fields(&response.json().await.unwrap(), &artist);
    }
    for song in fixture_songs() {
        let response = app.get(&format!("/v1/songs/{}", song["id"])).await;
        assert_eq!(response.status(), StatusCode::OK, "{song}");
        assert_fields(&response.json().await.unwrap(), &song);
    }
    let listed: Value = app
        .get("/v1/songs?include=artist&page_size=100")
        .await
        .json()
        .await
        .unwrap();
    let items = listed["items"].as_array().unwrap();
    assert_eq!(items.len(), fixture_songs().len(), "{listed}");
    for (item, song) in items.iter().zip(fixture_songs()) {
        assert_fields(item, &song);
        let artist = fixture_artists()
            .into_iter()
            .find(|a| a["id"] == song["artist_id"])
            .unwrap_or(Value::Null);
        assert_eq!(item["artist"], artist, "{item}");
    }
    assert_eq!(ids(&app, "/v1/artists?page_size=100").await, [3, 7, 12, 40]);
    // Names are now _BIN2 (code point order), and the search key was filled for old rows.
    assert_eq!(ids(&app, "/v1/artists?sort=name").await, [7, 3, 12, 40]);
    assert_eq!(ids(&app, "/v1/artists?q=QUEEN").await, [3]);
    assert_eq!(ids(&app, "/v1/artists?q=r%C3%B3s").await, [12]);
    assert_eq!(ids(&app, "/v1/songs?q=j%C3%B3ga").await, [9]);
    assert_eq!(ids(&app, "/v1/artists/40/songs").await, [21]);

    let new_artist = app.create_artist("New Order").await;
    let new_song = app
        .create_song(&json!({
            "title": "Blue Monday",
            "artist_id": new_artist["id"],
            "url": "https://example.com/new-order/blue-monday",
        }))
        .await;

    assert!(new_artist["id"].as_i64().unwrap() > 40, "{new_artist}");
    assert!(new_song["id"].as_i64().unwrap() > 33, "{new_song}");
    assert_eq!(ids(&app, "/v1/songs?artist_id=40").await, [21]);

    let indexes = texts(
        &url,
        "SELECT CONCAT(OBJECT_NAME(object_id), N'.', name) FROM sys.indexes \
         WHERE object_id IN (OBJECT_ID(N'dbo.Artist'), OBJECT_ID(N'dbo.Song')) \
         AND name IS NOT NULL ORDER BY 1",
    )
    .await;
    for gone in [
        "Artist.IX_Artist_Name",
        "Song.IX_Song_Title",
        "Song.IX_Song_Artist_Measured",
    ] {
        assert!(!indexes.iter().any(|i| i == gone), "{gone} in {indexes:?}");
    }
    for kept in [
        "Song.IX_Song_ArtistID",
        "Song.IX_Song_Artist_Released",
        "Artist.Artist_name_idx",
        "Song.Song_title_idx",
    ] {
        assert!(
            indexes.iter().any(|i| i == kept),
            "{kept} not in {indexes:?}"
        );
    }
    let recreated = texts(
        &url,
        "SELECT CONCAT(c.name, CASE WHEN ic.is_included_column = 1 THEN N' INCLUDE' \
         WHEN ic.is_descending_key = 1 THEN N' DESC' ELSE N' ASC' END) \
         FROM sys.indexes AS i \
         JOIN sys.index_columns AS ic ON ic.object_id = i.object_id AND ic.index_id = i.index_id \
         JOIN sys.columns AS c ON c.object_id = ic.object_id AND c.column_id = ic.column_id \
         WHERE i.object_id = OBJECT_ID(N'dbo.Song') AND i.name = N'IX_Song_Artist_Released' \
         ORDER BY ic.is_included_column, ic.key_ordinal, ic.index_column_id",
    )
    .await;
    let filter = texts(
        &url,
        "SELECT filter_definition FROM sys.indexes \
         WHERE object_id = OBJECT_ID(N'dbo.Song') AND name = N'IX_Song_Artist_Released'",
    )
    .await;
    assert_eq!(
        recreated,
        ["artistID ASC", "released DESC", "title INCLUDE"]
    );
    assert_eq!(filter, ["([URL] IS NOT NULL)"]);
    let user_statistics = texts(
        &url,
        "SELECT CONCAT(OBJECT_NAME(object_id), N'.', name) FROM sys.stats \
         WHERE object_id IN (OBJECT_ID(N'dbo.Artist'), OBJECT_ID(N'dbo.Song')) \
         AND user_created = 1",
    )
    .await;
    assert_eq!(user_statistics, Vec::<String>::new());
    let collations = texts(
        &url,
        "SELECT CONCAT(OBJECT_NAME(object_id), N'.', name COLLATE DATABASE_DEFAULT, N' ', \
         collation_name COLLATE DATABASE_DEFAULT) \
         FROM sys.columns WHERE (object_id = OBJECT_ID(N'dbo.Artist') AND name = N'name') \
         OR (object_id = OBJECT_ID(N'dbo.Song') AND name = N'title') ORDER BY 1",
    )
    .await;
    assert_eq!(
        collations,
        [
            "Artist.name Latin1_General_100_BIN2",
            "Song.title Latin1_General_100_BIN2"
        ]
    );
}
