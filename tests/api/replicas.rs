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
        app.editor()
            .request(Method::POST, "/v1/artists")
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

#[tokio::test]
async fn requests_cancelled_mid_flight_leave_no_connection_inside_a_transaction() {
    let app = TestApp::spawn().await;
    let seed = app.create_artist("Before").await;
    // Clients that give up after a few hundred microseconds, as browsers and load
    // balancers do: the service drops those requests wherever they are, some while a
    // `BEGIN` is on its way to the database.
    for round in 0..50u64 {
        let give_ups = (0..16u64).map(|i| {
            let request = app.request(Method::GET, "/v1/artists?page_size=5").send();
            let patience = std::time::Duration::from_micros(100 + (round * 16 + i) * 37 % 2_000);
            tokio::time::timeout(patience, request)
        });
        futures_util::future::join_all(give_ups).await;
    }

    // Every connection the pool hands out afterwards is clean: writes commit and are seen.
    for i in 0..40 {
        let created = app.create_artist(&format!("After {i}")).await;
        let read = app.get(&format!("/v1/artists/{}", created["id"])).await;
        assert_eq!(read.status(), StatusCode::OK, "artist {i} is visible");
    }
    let list: Value = app
        .get("/v1/artists?page_size=100")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["pagination"]["total_items"], 41);
    assert_eq!(list["items"][0]["id"], seed["id"]);
    if crate::harness::backend() == crate::harness::TestBackend::Postgres {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&app.database_url())
            .await
            .unwrap();
        let stranded: i64 = sqlx::query_scalar(
            "select count(*) from pg_stat_activity where datname = current_database() \
             and application_name = 'starsongs' and state like 'idle in transaction%'",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap();
        assert_eq!(stranded, 0, "sessions left inside a transaction");
    }
}
