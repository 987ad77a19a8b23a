//! `/v1/songs`: writes, the missing-artist rule, merge patch and field validation.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{TestApp, error_fields, etag, parts, problem, without_generated};

fn space_oddity(artist_id: i64) -> Value {
    json!({
        "title": "Space Oddity",
        "artist_id": artist_id,
        "release_date": "1969-07-11",
        "url": "https://www.youtube.com/watch?v=iYYRH4apXDo",
        "distance": 238900.0
    })
}

#[tokio::test]
async fn create_returns_the_song_with_location_and_etag() {
    let app = TestApp::spawn().await;
    let artist = app.create_artist("David Bowie").await["id"]
        .as_i64()
        .unwrap();

    let response = app.editor().post("/v1/songs", &space_oddity(artist)).await;

    assert_eq!(response.status(), StatusCode::CREATED);
    let tag = etag(&response);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let body: Value = response.json().await.unwrap();
    assert_eq!(without_generated(body.clone()), space_oddity(artist));
    assert_eq!(location, format!("/v1/songs/{}", body["id"]));
    let fetched = app.get(&location).await;
    assert_eq!(etag(&fetched), tag);
    assert_eq!(fetched.json::<Value>().await.unwrap(), body);
}

#[tokio::test]
async fn optional_fields_may_be_absent_or_null() {
    let app = TestApp::spawn().await;

    let minimal = app.create_song(&json!({"title": "Untitled"})).await;
    let nulls = app
        .create_song(&json!({"title": "Nulls", "artist_id": null, "release_date": null, "url": null, "distance": null}))
        .await;

    for (song, title) in [(minimal, "Untitled"), (nulls, "Nulls")] {
        assert_eq!(
            without_generated(song),
            json!({"title": title, "artist_id": null, "release_date": null, "url": null, "distance": null})
        );
    }
}

#[tokio::test]
async fn missing_artist_is_404_with_the_legacy_detail_and_creates_nothing() {
    let app = TestApp::spawn().await;

    let response = app
        .editor()
        .post("/v1/songs", &json!({"title": "Orphan", "artist_id": 77}))
        .await;

    let body = problem(response, StatusCode::NOT_FOUND).await;
    assert_eq!(body["detail"], "Artist with id 77 not found");
    let list: Value = app.get("/v1/songs").await.json().await.unwrap();
    assert_eq!(list["pagination"]["total_items"], 0);
}

#[tokio::test]
async fn put_replaces_every_field_and_never_creates() {
    let app = TestApp::spawn().await;
    let artist = app.create_artist("David Bowie").await["id"]
        .as_i64()
        .unwrap();
    let song = app.create_song(&space_oddity(artist)).await;
    let path = format!("/v1/songs/{}", song["id"]);

    let replaced = app
        .editor()
        .send_json(Method::PUT, &path, &json!({"title": "Space Oddity (mono)"}))
        .await;
    let unknown = app
        .editor()
        .send_json(Method::PUT, "/v1/songs/999", &json!({"title": "Ghost"}))
        .await;
    let bad_artist = app
        .editor()
        .send_json(Method::PUT, &path, &json!({"title": "x", "artist_id": 999}))
        .await;

    assert_eq!(replaced.status(), StatusCode::OK);
    assert_eq!(
        without_generated(replaced.json().await.unwrap()),
        json!({"title": "Space Oddity (mono)", "artist_id": null, "release_date": null, "url": null, "distance": null})
    );
    problem(unknown, StatusCode::NOT_FOUND).await;
    let body = problem(bad_artist, StatusCode::NOT_FOUND).await;
    assert_eq!(body["detail"], "Artist with id 999 not found");
    assert_eq!(
        app.get(&path).await.json::<Value>().await.unwrap()["title"],
        "Space Oddity (mono)"
    );
    let list: Value = app.get("/v1/songs").await.json().await.unwrap();
    assert_eq!(list["pagination"]["total_items"], 1);
}

#[tokio::test]
async fn patch_keeps_absent_members_and_clears_null_ones() {
    let app = TestApp::spawn().await;
    let artist = app.create_artist("David Bowie").await["id"]
        .as_i64()
        .unwrap();
    let song = app.create_song(&space_oddity(artist)).await;
    let path = format!("/v1/songs/{}", song["id"]);

    let response = app
        .editor()
        .request(Method::PATCH, &path)
        .header("content-type", "application/merge-patch+json")
        .body(json!({"release_date": null, "distance": 1.5}).to_string())
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        without_generated(response.json().await.unwrap()),
        json!({
            "title": "Space Oddity", "artist_id": artist, "release_date": null,
            "url": "https://www.youtube.com/watch?v=iYYRH4apXDo", "distance": 1.5
        })
    );
}

#[tokio::test]
async fn patch_validates_every_member_and_changes_nothing_on_error() {
    let app = TestApp::spawn().await;
    let song = app.create_song(&json!({"title": "Keep me"})).await;
    let path = format!("/v1/songs/{}", song["id"]);

    let response = app
        .editor()
        .send_json(
            Method::PATCH,
            &path,
            &json!({"title": null, "url": "ftp://x", "release_date": "1969-13-01", "artist_id": 0}),
        )
        .await;

    let body = problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(
        error_fields(&body),
        ["title", "artist_id", "release_date", "url"]
    );
    assert_eq!(app.get(&path).await.json::<Value>().await.unwrap(), song);
}

#[tokio::test]
async fn song_field_rules_are_enforced() {
    let app = TestApp::spawn().await;
    let too_long_url = format!("https://example.com/{}", "a".repeat(1010));
    let cases = [
        (json!({"title": ""}), "title"),
        (json!({"title": "x".repeat(65)}), "title"),
        (json!({"title": "tab\tinside"}), "title"),
        (json!({"title": "ok", "artist_id": 0}), "artist_id"),
        (json!({"title": "ok", "artist_id": -1}), "artist_id"),
        (
            json!({"title": "ok", "artist_id": 2147483648_i64}),
            "artist_id",
        ),
        (json!({"title": "ok", "artist_id": "1"}), "artist_id"),
        (json!({"title": "ok", "artist_id": 1.5}), "artist_id"),
        (
            json!({"title": "ok", "artist_id": 99999999999999999999.0}),
            "artist_id",
        ),
        (
            json!({"title": "ok", "release_date": "1969-7-11"}),
            "release_date",
        ),
        (
            json!({"title": "ok", "release_date": "2023-02-29"}),
            "release_date",
        ),
        (
            json!({"title": "ok", "release_date": 19690711}),
            "release_date",
        ),
        (
            json!({"title": "ok", "release_date": "0000-01-01"}),
            "release_date",
        ),
        (json!({"title": "ok", "url": "ftp://example.com"}), "url"),
        (json!({"title": "ok", "url": "javascript:alert(1)"}), "url"),
        (json!({"title": "ok", "url": "/relative"}), "url"),
        (json!({"title": "ok", "url": too_long_url}), "url"),
        (json!({"title": "ok", "distance": "far"}), "distance"),
        (json!({"title": "ok", "version": 3}), "version"),
    ];

    for (body, field) in cases {
        let response = app.editor().post("/v1/songs", &body).await;
        let problem_body = problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(error_fields(&problem_body), [field], "{body}");
    }
    let list: Value = app.get("/v1/songs").await.json().await.unwrap();
    assert_eq!(list["pagination"]["total_items"], 0);
}

#[tokio::test]
async fn out_of_range_numbers_are_rejected_as_bad_json() {
    let app = TestApp::spawn().await;

    // JSON has no NaN or Infinity; a literal beyond f64 is refused by the parser.
    for raw in [
        r#"{"title": "x", "distance": 1e999}"#,
        r#"{"title": "x", "distance": NaN}"#,
    ] {
        let response = app
            .editor()
            .request(Method::POST, "/v1/songs")
            .header("content-type", "application/json")
            .body(raw)
            .send()
            .await
            .unwrap();
        problem(response, StatusCode::BAD_REQUEST).await;
    }
}

#[tokio::test]
async fn every_field_error_is_reported_at_once() {
    let app = TestApp::spawn().await;

    let response = app
        .editor().post("/v1/songs", &json!({"title": " ", "artist_id": 0, "release_date": "no", "url": "x", "distance": null}))
        .await;

    let (_, _, body) = parts(response).await;
    assert_eq!(
        error_fields(&body),
        ["title", "artist_id", "release_date", "url"]
    );
}

#[tokio::test]
async fn delete_song_is_204_then_404() {
    let app = TestApp::spawn().await;
    let song = app.create_song(&json!({"title": "Brief"})).await;
    let path = format!("/v1/songs/{}", song["id"]);

    assert_eq!(
        app.editor().delete(&path).await.status(),
        StatusCode::NO_CONTENT
    );
    let body = problem(app.editor().delete(&path).await, StatusCode::NOT_FOUND).await;
    assert_eq!(
        body["detail"],
        format!("Song with id {} not found", song["id"])
    );
}

#[tokio::test]
async fn get_modify_put_of_the_songs_own_representation_replaces_it() {
    let app = TestApp::spawn().await;
    let artist = app.create_artist("David Bowie").await["id"]
        .as_i64()
        .unwrap();
    let created = app.create_song(&space_oddity(artist)).await;
    let path = format!("/v1/songs/{}", created["id"]);
    let mut body: Value = app.get(&path).await.json().await.unwrap();
    body["title"] = json!("Space Oddity (2019 mix)");
    body["distance"] = json!(null);
    // Server-managed: whatever the client sends back is ignored.
    body["updated_at"] = json!("2099-12-31T23:59:59+01:00");

    let response = app.editor().send_json(Method::PUT, &path, &body).await;

    assert_eq!(response.status(), StatusCode::OK);
    let replaced: Value = response.json().await.unwrap();
    assert_eq!(
        without_generated(replaced.clone()),
        json!({
            "title": "Space Oddity (2019 mix)", "artist_id": artist, "release_date": "1969-07-11",
            "url": "https://www.youtube.com/watch?v=iYYRH4apXDo", "distance": null
        })
    );
    assert_eq!(replaced["id"], created["id"]);
    assert_eq!(replaced["created_at"], created["created_at"]);
    assert_ne!(replaced["updated_at"], "2099-12-31T23:59:59+01:00");
    assert_ne!(replaced["updated_at"], created["updated_at"]);
    assert_eq!(
        app.get(&path).await.json::<Value>().await.unwrap(),
        replaced
    );
}

#[tokio::test]
async fn put_with_another_songs_id_is_422_with_the_other_errors_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let song = app.create_song(&json!({"title": "Keep me"})).await;
    let path = format!("/v1/songs/{}", song["id"]);
    let tag = etag(&app.get(&path).await);
    let mut body = song.clone();
    body["id"] = json!(song["id"].as_i64().unwrap() + 1);
    body["url"] = json!("ftp://example.com/song");

    let response = app.editor().send_json(Method::PUT, &path, &body).await;

    let problem_body = problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(error_fields(&problem_body), ["id", "url"]);
    assert_eq!(
        problem_body["errors"][0]["message"],
        "must equal the id in the path"
    );
    let after = app.get(&path).await;
    assert_eq!(etag(&after), tag);
    assert_eq!(after.json::<Value>().await.unwrap(), song);
    let list: Value = app.get("/v1/songs").await.json().await.unwrap();
    assert_eq!(list["pagination"]["total_items"], 1);
}

#[tokio::test]
async fn post_and_patch_still_refuse_a_songs_read_only_members() {
    let app = TestApp::spawn().await;
    let song = app.create_song(&json!({"title": "Keep me"})).await;
    let path = format!("/v1/songs/{}", song["id"]);

    for member in ["id", "created_at", "updated_at"] {
        let posted = app
            .editor()
            .post("/v1/songs", &json!({"title": "New", member: song[member]}))
            .await;
        let patched = app
            .editor()
            .send_json(
                Method::PATCH,
                &path,
                &json!({"title": "Y", member: song[member]}),
            )
            .await;

        assert_eq!(
            error_fields(&problem(posted, StatusCode::UNPROCESSABLE_ENTITY).await),
            [member]
        );
        assert_eq!(
            error_fields(&problem(patched, StatusCode::UNPROCESSABLE_ENTITY).await),
            [member]
        );
    }
    let list: Value = app.get("/v1/songs").await.json().await.unwrap();
    assert_eq!(list["items"], json!([song]));
}

#[tokio::test]
async fn an_artist_id_written_as_a_number_without_a_fraction_is_that_integer() {
    let app = TestApp::spawn().await;
    let artist = app.create_artist("David Bowie").await["id"]
        .as_i64()
        .unwrap();

    // JSON Schema's `integer` (what the OpenAPI document says) includes 7.0.
    let created = app
        .editor()
        .request(Method::POST, "/v1/songs")
        .header("content-type", "application/json")
        .body(format!(
            r#"{{"title": "Starman", "artist_id": {artist}.0}}"#
        ))
        .send()
        .await
        .unwrap();
    let fractional = app
        .editor()
        .request(Method::POST, "/v1/songs")
        .header("content-type", "application/json")
        .body(format!(
            r#"{{"title": "Starman", "artist_id": {artist}.5}}"#
        ))
        .send()
        .await
        .unwrap();

    assert_eq!(created.status(), StatusCode::CREATED);
    assert_eq!(created.json::<Value>().await.unwrap()["artist_id"], artist);
    let body = problem(fractional, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(
        body["errors"],
        json!([{"field": "artist_id", "message": "must be an integer in range"}])
    );
}

/// Years 0001–9999 on every backend (API.md): year 0000 is refused wherever a date is
/// read, and the first and last storable days round-trip and sort.
#[tokio::test]
async fn year_0000_is_refused_everywhere_and_0001_and_9999_are_stored() {
    let app = TestApp::spawn().await;
    let first = app
        .create_song(&json!({"title": "First day", "release_date": "0001-01-01"}))
        .await;
    let last = app
        .create_song(&json!({"title": "Last day", "release_date": "9999-12-31"}))
        .await;
    let path = format!("/v1/songs/{}", first["id"]);

    let patch = app
        .editor()
        .request(Method::PATCH, &path)
        .header("content-type", "application/merge-patch+json")
        .body(json!({"release_date": "0000-12-31"}).to_string())
        .send()
        .await
        .unwrap();
    let put = app
        .editor()
        .send_json(
            Method::PUT,
            &path,
            &json!({"title": "First day", "release_date": "0000-01-01"}),
        )
        .await;
    let from = app.get("/v1/songs?released_from=0000-01-01").await;
    let to = app.get("/v1/songs?released_to=0000-06-30").await;
    for response in [patch, put, from, to] {
        let body = problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
        let fields = error_fields(&body);
        assert_eq!(fields.len(), 1, "{body}");
        assert!(
            ["release_date", "released_from", "released_to"].contains(&fields[0].as_str()),
            "{body}"
        );
    }

    assert_eq!(first["release_date"], "0001-01-01");
    assert_eq!(last["release_date"], "9999-12-31");
    let stored: Value = app.get(&path).await.json().await.unwrap();
    assert_eq!(
        stored["release_date"], "0001-01-01",
        "unchanged by the refusals"
    );
    let sorted: Value = app
        .get("/v1/songs?sort=-release_date")
        .await
        .json()
        .await
        .unwrap();
    let dates: Vec<&str> = sorted["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|song| song["release_date"].as_str().unwrap())
        .collect();
    assert_eq!(dates, ["9999-12-31", "0001-01-01"]);
}
