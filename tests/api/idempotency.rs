//! `Idempotency-Key` on POST: replay, mismatch, malformed keys, concurrency.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{TestApp, error_fields, etag, problem};

async fn post_with_key(app: &TestApp, path: &str, key: &str, body: &str) -> reqwest::Response {
    app.editor()
        .request(Method::POST, path)
        .header("content-type", "application/json")
        .header("idempotency-key", key)
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
}

async fn total(app: &TestApp, path: &str) -> Value {
    app.get(path).await.json::<Value>().await.unwrap()["pagination"]["total_items"].clone()
}

#[tokio::test]
async fn a_retry_with_the_same_key_and_body_replays_the_original_response() {
    let app = TestApp::spawn().await;

    let first = post_with_key(&app, "/v1/artists", "retry-1", r#"{"name": "Queen"}"#).await;
    let first_tag = etag(&first);
    let first_location = first.headers()["location"].clone();
    let first_body: Value = first.json().await.unwrap();
    // Same JSON, different formatting: still the same request.
    let again = post_with_key(&app, "/v1/artists", "retry-1", "{ \"name\" : \"Queen\" }").await;

    assert_eq!(again.status(), StatusCode::CREATED);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(etag(&again), first_tag);
    assert_eq!(again.headers()["location"], first_location);
    assert_eq!(again.json::<Value>().await.unwrap(), first_body);
    assert_eq!(total(&app, "/v1/artists").await, 1);
}

#[tokio::test]
async fn the_same_key_with_another_body_is_422_and_creates_nothing() {
    let app = TestApp::spawn().await;
    post_with_key(&app, "/v1/songs", "k", r#"{"title": "Starman"}"#).await;

    let other = post_with_key(&app, "/v1/songs", "k", r#"{"title": "Space Oddity"}"#).await;
    let other_route = post_with_key(&app, "/v1/artists", "k", r#"{"title": "Starman"}"#).await;

    let body = problem(other, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(error_fields(&body), ["Idempotency-Key"]);
    problem(other_route, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(total(&app, "/v1/songs").await, 1);
}

#[tokio::test]
async fn different_keys_create_different_resources() {
    let app = TestApp::spawn().await;

    let a = post_with_key(&app, "/v1/artists", "a", r#"{"name": "Twin"}"#).await;
    let b = post_with_key(&app, "/v1/artists", "b", r#"{"name": "Twin"}"#).await;

    assert_eq!(
        (a.status(), b.status()),
        (StatusCode::CREATED, StatusCode::CREATED)
    );
    assert!(b.headers().get("idempotent-replayed").is_none());
    assert_eq!(total(&app, "/v1/artists").await, 2);
}

#[tokio::test]
async fn malformed_keys_are_400_and_create_nothing() {
    let app = TestApp::spawn().await;
    let too_long = "k".repeat(256);

    for key in ["", "has space", too_long.as_str()] {
        let response = post_with_key(&app, "/v1/artists", key, r#"{"name": "X"}"#).await;
        let body = problem(response, StatusCode::BAD_REQUEST).await;
        assert!(body["detail"].as_str().unwrap().contains("Idempotency-Key"));
    }
    let max = post_with_key(&app, "/v1/artists", &"k".repeat(255), r#"{"name": "X"}"#).await;
    assert_eq!(max.status(), StatusCode::CREATED);
    assert_eq!(total(&app, "/v1/artists").await, 1);
}

#[tokio::test]
async fn a_failed_create_does_not_consume_the_key() {
    let app = TestApp::spawn().await;

    let missing_artist = post_with_key(
        &app,
        "/v1/songs",
        "once",
        r#"{"title": "x", "artist_id": 9}"#,
    )
    .await;
    let artist = app.create_artist("Now it exists").await;
    let body = json!({"title": "x", "artist_id": artist["id"]}).to_string();
    let fixed = post_with_key(&app, "/v1/songs", "once-more", &body).await;

    problem(missing_artist, StatusCode::NOT_FOUND).await;
    assert_eq!(fixed.status(), StatusCode::CREATED);
    let retry = post_with_key(
        &app,
        "/v1/songs",
        "once",
        r#"{"title": "x", "artist_id": 9}"#,
    )
    .await;
    problem(retry, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn concurrent_requests_with_one_key_create_exactly_one_resource() {
    let app = TestApp::spawn().await;

    let requests =
        (0..8).map(|_| post_with_key(&app, "/v1/songs", "burst", r#"{"title": "Only once"}"#));
    let mut bodies = Vec::new();
    for response in futures_util::future::join_all(requests).await {
        assert_eq!(response.status(), StatusCode::CREATED);
        bodies.push(response.json::<Value>().await.unwrap());
    }

    assert!(
        bodies.windows(2).all(|pair| pair[0] == pair[1]),
        "{bodies:?}"
    );
    assert_eq!(total(&app, "/v1/songs").await, 1);
}
