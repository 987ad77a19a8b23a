//! `/v1/artists`: create, read, replace, patch, delete, ETags and preconditions.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::harness::{TestApp, error_fields, etag, parts, problem, without_generated};

#[tokio::test]
async fn create_returns_201_with_location_etag_and_the_artist() {
    let app = TestApp::spawn().await;

    let response = app
        .editor()
        .post("/v1/artists", &json!({"name": "  David Bowie  "}))
        .await;

    assert_eq!(response.status(), StatusCode::CREATED);
    let tag = etag(&response);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let (_, content_type, body) = parts(response).await;
    assert_eq!(content_type, "application/json");
    assert_eq!(
        without_generated(body.clone()),
        json!({"name": "David Bowie"})
    );
    assert_eq!(location, format!("/v1/artists/{}", body["id"]));
    assert_eq!(body["created_at"], body["updated_at"]);
    let fetched = app.get(&location).await;
    assert_eq!(etag(&fetched), tag);
    assert_eq!(fetched.json::<serde_json::Value>().await.unwrap(), body);
}

#[tokio::test]
async fn get_unknown_artist_is_404_with_the_legacy_detail() {
    let app = TestApp::spawn().await;

    let body = problem(app.get("/v1/artists/7").await, StatusCode::NOT_FOUND).await;

    assert_eq!(body["detail"], "Artist with id 7 not found");
    assert_eq!(body["instance"], "/v1/artists/7");
    assert_eq!(body["title"], "Not Found");
}

#[tokio::test]
async fn get_with_matching_if_none_match_is_304() {
    let app = TestApp::spawn().await;
    let artist = app.create_artist("Queen").await;
    let path = format!("/v1/artists/{}", artist["id"]);
    let tag = etag(&app.get(&path).await);

    let same = app
        .request(Method::GET, &path)
        .header("if-none-match", &tag)
        .send()
        .await
        .unwrap();
    let weak = app
        .request(Method::GET, &path)
        .header("if-none-match", format!("\"0.0\", W/{tag}"))
        .send()
        .await
        .unwrap();
    let other = app
        .request(Method::GET, &path)
        .header("if-none-match", "\"0.0\"")
        .send()
        .await
        .unwrap();

    assert_eq!(same.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(etag(&same), tag);
    assert_eq!(same.text().await.unwrap(), "");
    assert_eq!(weak.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(other.status(), StatusCode::OK);
}

#[tokio::test]
async fn put_replaces_and_changes_the_etag_even_when_content_is_unchanged() {
    let app = TestApp::spawn().await;
    let artist = app.create_artist("Queen").await;
    let path = format!("/v1/artists/{}", artist["id"]);
    let first = etag(&app.get(&path).await);

    let same = app
        .editor()
        .send_json(Method::PUT, &path, &json!({"name": "Queen"}))
        .await;
    let second = etag(&same);
    let renamed = app
        .editor()
        .send_json(Method::PUT, &path, &json!({"name": "Queen II"}))
        .await;

    assert_eq!(same.status(), StatusCode::OK);
    assert_ne!(first, second);
    assert_eq!(renamed.status(), StatusCode::OK);
    assert_ne!(etag(&renamed), second);
    let body: serde_json::Value = renamed.json().await.unwrap();
    assert_eq!(body["name"], "Queen II");
    assert_eq!(body["created_at"], artist["created_at"]);
    assert_ne!(body["updated_at"], artist["updated_at"]);
}

#[tokio::test]
async fn put_unknown_artist_is_404_and_creates_nothing() {
    let app = TestApp::spawn().await;

    let response = app
        .editor()
        .send_json(Method::PUT, "/v1/artists/42", &json!({"name": "Ghost"}))
        .await;

    problem(response, StatusCode::NOT_FOUND).await;
    let list: serde_json::Value = app.get("/v1/artists").await.json().await.unwrap();
    assert_eq!(list["pagination"]["total_items"], 0);
    assert_eq!(
        app.get("/v1/artists/42").await.status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn stale_if_match_is_412_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let artist = app.create_artist("Pink Floyd").await;
    let path = format!("/v1/artists/{}", artist["id"]);
    let old = etag(&app.get(&path).await);
    app.editor()
        .send_json(
            Method::PUT,
            &path,
            &json!({"name": "Pink Floyd (remastered)"}),
        )
        .await;

    let put = app
        .editor()
        .request(Method::PUT, &path)
        .header("content-type", "application/json")
        .header("if-match", &old)
        .body(json!({"name": "Overwritten"}).to_string())
        .send()
        .await
        .unwrap();
    let patch = app
        .editor()
        .request(Method::PATCH, &path)
        .header("content-type", "application/merge-patch+json")
        .header("if-match", &old)
        .body(json!({"name": "Overwritten"}).to_string())
        .send()
        .await
        .unwrap();
    let delete = app
        .editor()
        .request(Method::DELETE, &path)
        .header("if-match", &old)
        .send()
        .await
        .unwrap();

    for response in [put, patch, delete] {
        problem(response, StatusCode::PRECONDITION_FAILED).await;
    }
    let current: serde_json::Value = app.get(&path).await.json().await.unwrap();
    assert_eq!(current["name"], "Pink Floyd (remastered)");
}

#[tokio::test]
async fn matching_if_match_allows_the_change() {
    let app = TestApp::spawn().await;
    let artist = app.create_artist("Elton John").await;
    let path = format!("/v1/artists/{}", artist["id"]);
    let tag = etag(&app.get(&path).await);

    let response = app
        .editor()
        .request(Method::PUT, &path)
        .header("content-type", "application/json")
        .header("if-match", format!("\"9.9\", {tag}"))
        .body(json!({"name": "Reginald Dwight"}).to_string())
        .send()
        .await
        .unwrap();
    let star = app
        .editor()
        .request(Method::DELETE, &path)
        .header("if-match", "*")
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(star.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn weak_or_malformed_if_match_never_matches() {
    let app = TestApp::spawn().await;
    let artist = app.create_artist("The Beatles").await;
    let path = format!("/v1/artists/{}", artist["id"]);
    let tag = etag(&app.get(&path).await);

    let weak = app
        .editor()
        .request(Method::DELETE, &path)
        .header("if-match", format!("W/{tag}"))
        .send()
        .await
        .unwrap();
    let malformed = app
        .editor()
        .request(Method::DELETE, &path)
        .header("if-match", "not-quoted")
        .send()
        .await
        .unwrap();

    problem(weak, StatusCode::PRECONDITION_FAILED).await;
    problem(malformed, StatusCode::BAD_REQUEST).await;
    assert_eq!(app.get(&path).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn patch_is_a_merge_patch_with_either_json_media_type() {
    let app = TestApp::spawn().await;
    let artist = app.create_artist("Bowie").await;
    let path = format!("/v1/artists/{}", artist["id"]);

    let empty = app
        .editor()
        .request(Method::PATCH, &path)
        .header("content-type", "application/merge-patch+json")
        .body("{}")
        .send()
        .await
        .unwrap();
    let renamed = app
        .editor()
        .send_json(Method::PATCH, &path, &json!({"name": "David Bowie"}))
        .await;
    let null_name = app
        .editor()
        .send_json(Method::PATCH, &path, &json!({"name": null}))
        .await;

    assert_eq!(empty.status(), StatusCode::OK);
    assert_eq!(renamed.status(), StatusCode::OK);
    assert_eq!(
        renamed.json::<serde_json::Value>().await.unwrap()["name"],
        "David Bowie"
    );
    let body = problem(null_name, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(error_fields(&body), ["name"]);
}

#[tokio::test]
async fn deleting_an_artist_with_songs_is_409_until_cascade() {
    let app = TestApp::spawn().await;
    let artist = app.create_artist("David Bowie").await;
    let id = artist["id"].as_i64().unwrap();
    let song = app
        .create_song(&json!({"title": "Starman", "artist_id": id}))
        .await;
    let path = format!("/v1/artists/{id}");

    let refused = app.editor().delete(&path).await;
    let body = problem(refused, StatusCode::CONFLICT).await;
    assert!(
        body["detail"].as_str().unwrap().contains("1 song"),
        "{body}"
    );
    assert_eq!(
        app.get(&format!("/v1/songs/{}", song["id"])).await.status(),
        StatusCode::OK
    );

    let cascaded = app.admin().delete(&format!("{path}?cascade=true")).await;

    assert_eq!(cascaded.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.get(&path).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        app.get(&format!("/v1/songs/{}", song["id"])).await.status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn deleting_an_artist_without_songs_is_204_then_404() {
    let app = TestApp::spawn().await;
    let artist = app.create_artist("One-hit wonder").await;
    let path = format!("/v1/artists/{}", artist["id"]);

    let first = app.editor().delete(&path).await;
    let second = app.editor().delete(&path).await;

    assert_eq!(first.status(), StatusCode::NO_CONTENT);
    assert_eq!(first.text().await.unwrap(), "");
    problem(second, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn invalid_cascade_value_is_422() {
    let app = TestApp::spawn().await;
    let artist = app.create_artist("Queen").await;

    let response = app
        .editor()
        .delete(&format!("/v1/artists/{}?cascade=yes", artist["id"]))
        .await;

    let body = problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(error_fields(&body), ["cascade"]);
    assert_eq!(
        app.get(&format!("/v1/artists/{}", artist["id"]))
            .await
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn artist_songs_lists_only_that_artists_songs() {
    let app = TestApp::spawn().await;
    let bowie = app.create_artist("David Bowie").await["id"]
        .as_i64()
        .unwrap();
    let queen = app.create_artist("Queen").await["id"].as_i64().unwrap();
    app.create_song(&json!({"title": "Starman", "artist_id": bowie}))
        .await;
    app.create_song(&json!({"title": "'39", "artist_id": queen}))
        .await;
    app.create_song(&json!({"title": "Space Oddity", "artist_id": bowie}))
        .await;

    let (status, _, body) = parts(
        app.get(&format!(
            "/v1/artists/{bowie}/songs?sort=title&include=artist"
        ))
        .await,
    )
    .await;
    let missing = app.get("/v1/artists/999/songs").await;

    assert_eq!(status, StatusCode::OK);
    let titles: Vec<&str> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["Space Oddity", "Starman"]);
    assert_eq!(
        body["items"][0]["artist"],
        json!({"id": bowie, "name": "David Bowie"})
    );
    assert_eq!(body["pagination"]["total_items"], 2);
    let body = problem(missing, StatusCode::NOT_FOUND).await;
    assert_eq!(body["detail"], "Artist with id 999 not found");
}

#[tokio::test]
async fn artist_name_rules_are_enforced_on_every_write() {
    let app = TestApp::spawn().await;
    let artist = app.create_artist("Valid").await;
    let path = format!("/v1/artists/{}", artist["id"]);
    let long = "x".repeat(65);
    let huge = "x".repeat(10 * 1024);
    let invalid = [
        json!({"name": ""}),
        json!({"name": "   "}),
        json!({"name": long}),
        json!({"name": huge}),
        json!({"name": "bell\u{7}"}),
        json!({"name": "line\nbreak"}),
        json!({"name": 123}),
        json!({"name": null}),
        json!({}),
    ];

    for body in &invalid {
        for method in [Method::POST, Method::PUT] {
            let target = if method == Method::POST {
                "/v1/artists"
            } else {
                &path
            };
            let response = app.editor().send_json(method.clone(), target, body).await;
            let problem_body = problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
            assert_eq!(error_fields(&problem_body), ["name"], "{method} {body}");
        }
    }
    let exactly_64 = app
        .editor()
        .post("/v1/artists", &json!({"name": "é".repeat(64)}))
        .await;
    assert_eq!(exactly_64.status(), StatusCode::CREATED);
    let list: serde_json::Value = app.get("/v1/artists").await.json().await.unwrap();
    assert_eq!(list["pagination"]["total_items"], 2);
    assert_eq!(
        app.get(&path)
            .await
            .json::<serde_json::Value>()
            .await
            .unwrap()["name"],
        "Valid"
    );
}

#[tokio::test]
async fn read_only_and_unknown_fields_are_rejected() {
    let app = TestApp::spawn().await;

    for field in ["id", "created_at", "updated_at", "role", "nmae"] {
        let response = app
            .editor()
            .post("/v1/artists", &json!({"name": "X", field: 1}))
            .await;

        let body = problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(error_fields(&body), [field]);
    }
    let list: serde_json::Value = app.get("/v1/artists").await.json().await.unwrap();
    assert_eq!(list["pagination"]["total_items"], 0);
}

#[tokio::test]
async fn get_modify_put_of_the_artists_own_representation_replaces_it() {
    let app = TestApp::spawn().await;
    let created = app.create_artist("Queen").await;
    let path = format!("/v1/artists/{}", created["id"]);
    let mut body: serde_json::Value = app.get(&path).await.json().await.unwrap();
    body["name"] = json!("Queen + Adam Lambert");
    // Server-managed: whatever the client sends back is ignored.
    body["created_at"] = json!("2000-01-01T00:00:00Z");

    let response = app.editor().send_json(Method::PUT, &path, &body).await;

    assert_eq!(response.status(), StatusCode::OK);
    let replaced: serde_json::Value = response.json().await.unwrap();
    assert_eq!(replaced["id"], created["id"]);
    assert_eq!(replaced["name"], "Queen + Adam Lambert");
    assert_eq!(replaced["created_at"], created["created_at"]);
    assert_ne!(replaced["updated_at"], created["updated_at"]);
    let read: serde_json::Value = app.get(&path).await.json().await.unwrap();
    assert_eq!(read, replaced);
}

#[tokio::test]
async fn put_with_another_artists_id_is_422_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let artist = app.create_artist("Queen").await;
    let other = app.create_artist("Abba").await;
    let path = format!("/v1/artists/{}", artist["id"]);
    let before = app.get(&path).await;
    let tag = etag(&before);
    let mut body: serde_json::Value = before.json().await.unwrap();
    body["id"] = other["id"].clone();
    body["name"] = json!("Renamed");

    let response = app.editor().send_json(Method::PUT, &path, &body).await;

    let problem_body = problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(
        problem_body["errors"],
        json!([{"field": "id", "message": "must equal the id in the path"}])
    );
    let after = app.get(&path).await;
    assert_eq!(etag(&after), tag);
    assert_eq!(after.json::<serde_json::Value>().await.unwrap(), artist);
    let untouched: serde_json::Value = app
        .get(&format!("/v1/artists/{}", other["id"]))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(untouched, other);
}

#[tokio::test]
async fn put_refuses_unknown_null_or_malformed_members_and_patch_refuses_read_only_ones() {
    let app = TestApp::spawn().await;
    let artist = app.create_artist("Queen").await;
    let path = format!("/v1/artists/{}", artist["id"]);

    for (member, value, message) in [
        ("nmae", json!("x"), "is not a known field"),
        ("songs", json!([]), "is not a known field"),
        ("id", json!(null), "must be an integer in range"),
        ("id", json!("1"), "must be an integer in range"),
        ("created_at", json!(null), "must be a string"),
        (
            "updated_at",
            json!("yesterday"),
            "must be an RFC 3339 date-time",
        ),
    ] {
        let mut body = artist.clone();
        body[member] = value;
        let response = app.editor().send_json(Method::PUT, &path, &body).await;
        let body = problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(
            body["errors"],
            json!([{"field": member, "message": message}]),
            "{member}"
        );
    }
    for member in ["id", "created_at", "updated_at"] {
        let response = app
            .editor()
            .send_json(
                Method::PATCH,
                &path,
                &json!({"name": "Y", member: artist[member]}),
            )
            .await;
        let body = problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(error_fields(&body), [member]);
    }

    assert_eq!(
        app.get(&path)
            .await
            .json::<serde_json::Value>()
            .await
            .unwrap(),
        artist
    );
}

#[tokio::test]
async fn if_match_lists_may_hold_tags_with_commas_and_empty_elements() {
    let app = TestApp::spawn().await;
    let artist = app.create_artist("Queen").await;
    let path = format!("/v1/artists/{}", artist["id"]);
    let tag = etag(&app.get(&path).await);

    let stale = app
        .editor()
        .request(Method::PATCH, &path)
        .header("content-type", "application/json")
        .header("if-match", r#""a,b", , W/"c,d""#)
        .body(json!({"name": "Stale"}).to_string())
        .send()
        .await
        .unwrap();
    let current = app
        .editor()
        .request(Method::PATCH, &path)
        .header("content-type", "application/json")
        .header("if-match", format!(r#""a,b", ,{tag},"#))
        .body(json!({"name": "Current"}).to_string())
        .send()
        .await
        .unwrap();

    problem(stale, StatusCode::PRECONDITION_FAILED).await;
    assert_eq!(current.status(), StatusCode::OK);
    assert_eq!(
        current.json::<serde_json::Value>().await.unwrap()["name"],
        "Current"
    );
}

/// An `If-Match` as long as the head limit allows: thousands of copies of one tag, or
/// thousands of distinct tags (more than SQL Server's 2,100 parameters a statement), is
/// answered 412 or 2xx like a short one, never 5xx.
#[tokio::test]
async fn an_if_match_of_thousands_of_tags_is_answered_like_a_short_one() {
    // An operator may raise the head limit; 64 KiB holds over 3,000 distinct tags.
    let app = TestApp::spawn_with(&[("STARSONGS__SERVER__MAX_HEADER_BYTES", "65536")]).await;
    let artist = app.create_artist("Queen").await;
    let id = artist["id"].as_i64().unwrap();
    let path = format!("/v1/artists/{id}");
    let current = etag(&app.get(&path).await);
    // 2,600 copies of a stale tag fit in the default 16 KiB head, as a client may send.
    let copies = vec![format!(r#""{id}.9""#); 2_600].join(",");
    let distinct = (2..3_200)
        .map(|version| format!(r#""{id}.{version}""#))
        .collect::<Vec<_>>()
        .join(",");
    let send = |if_match: String, name: &str| {
        app.editor()
            .request(Method::PUT, &path)
            .header("content-type", "application/json")
            .header("if-match", if_match)
            .body(json!({"name": name}).to_string())
            .send()
    };

    let copied = send(copies, "Copies").await.unwrap();
    let stale = send(distinct.clone(), "Stale").await.unwrap();
    let patch = app
        .editor()
        .request(Method::PATCH, &path)
        .header("content-type", "application/merge-patch+json")
        .header("if-match", &distinct)
        .body(json!({"name": "Stale"}).to_string())
        .send()
        .await
        .unwrap();
    let delete = app
        .editor()
        .request(Method::DELETE, &path)
        .header("if-match", &distinct)
        .send()
        .await
        .unwrap();
    problem(copied, StatusCode::PRECONDITION_FAILED).await;
    problem(stale, StatusCode::PRECONDITION_FAILED).await;
    problem(patch, StatusCode::PRECONDITION_FAILED).await;
    problem(delete, StatusCode::PRECONDITION_FAILED).await;
    let matching = send(format!("{distinct},{current}"), "Queen II")
        .await
        .unwrap();

    assert_eq!(matching.status(), StatusCode::OK);
    let now: serde_json::Value = app.get(&path).await.json().await.unwrap();
    assert_eq!(
        now["name"], "Queen II",
        "only the matching write changed it"
    );
}
