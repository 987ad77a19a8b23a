//! Two replicas on one database share everything a client can notice: refresh-token
//! rotation and idempotency keys (the lockout count is in `auth.rs`). With
//! `STARSONGS_TEST_API_BACKEND=postgres` this is the multi-replica deployment of DESIGN.md.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use starsongs::domain::user::Role;

use crate::harness::{PASSWORD, TestApp};

async fn sign_in(app: &TestApp, username: &str) -> String {
    let pair: Value = app
        .anonymous
        .post(app.url("/v1/auth/login"))
        .json(&json!({"username": username, "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    pair["refresh_token"].as_str().unwrap().to_owned()
}

async fn refresh(app: &TestApp, token: &str) -> (StatusCode, Value) {
    let response = app
        .anonymous
        .post(app.url("/v1/auth/refresh"))
        .json(&json!({"refresh_token": token}))
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_refresh_token_spent_on_one_replica_is_spent_on_the_other() {
    let a = TestApp::spawn().await;
    let b = a.replica(&[]).await;
    a.account("roamer", Role::Viewer).await;
    let first = sign_in(&a, "roamer").await;

    let (rotated, pair) = refresh(&a, &first).await;
    let (replayed, _) = refresh(&b, &first).await;
    let newer = pair["refresh_token"].as_str().unwrap();
    let (after_reuse, _) = refresh(&b, newer).await;

    assert_eq!(rotated, StatusCode::OK);
    assert_eq!(
        replayed,
        StatusCode::UNAUTHORIZED,
        "spent on the other replica"
    );
    assert_eq!(
        after_reuse,
        StatusCode::UNAUTHORIZED,
        "the reuse revoked the whole family, for both replicas"
    );
}

#[tokio::test]
async fn one_idempotency_key_on_two_replicas_creates_one_artist() {
    let a = TestApp::spawn().await;
    let b = a.replica(&[]).await;
    let post = |app: &TestApp| {
        app.request(Method::POST, "/v1/artists")
            .header("content-type", "application/json")
            .header("idempotency-key", "across-replicas")
            .body(r#"{"name": "Once"}"#)
            .send()
    };

    let (first, second) = tokio::join!(post(&a), post(&b));
    let (first, second) = (first.unwrap(), second.unwrap());

    assert_eq!(first.status(), StatusCode::CREATED);
    assert_eq!(second.status(), StatusCode::CREATED);
    let ids = [
        first.json::<Value>().await.unwrap()["id"].clone(),
        second.json::<Value>().await.unwrap()["id"].clone(),
    ];
    assert_eq!(ids[0], ids[1], "the replay names the same artist");
    let list: Value = b.get("/v1/artists").await.json().await.unwrap();
    assert_eq!(list["pagination"]["total_items"], 1);
}
