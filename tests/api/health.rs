//! Probes: `/health`, `/health/live`, `/health/ready`, and the Python API's `/health/db`
//! and `/health/pool`.

use reqwest::StatusCode;
use serde_json::{Value, json};

use reqwest::Method;

use crate::harness::{TestApp, parts, problem};

#[tokio::test]
async fn legacy_and_liveness_probes_answer_200() {
    let app = TestApp::spawn().await;

    let (status, _, legacy) = parts(app.get("/health").await).await;
    let (live_status, _, live) = parts(app.get("/health/live").await).await;

    assert_eq!(
        (status, legacy),
        (StatusCode::OK, json!({"status": "healthy"}))
    );
    assert_eq!(live_status, StatusCode::OK);
    assert_eq!(live["status"], "alive");
}

#[tokio::test]
async fn readiness_reports_database_migrations_and_pool() {
    let app = TestApp::spawn().await;

    let (status, content_type, body) = parts(app.get("/health/ready").await).await;

    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "application/json");
    assert_eq!(body["status"], "ready");
    assert_eq!(body["checks"]["database"]["status"], "up");
    assert!(body["checks"]["database"]["latency_ms"].is_u64());
    assert_eq!(
        body["checks"]["migrations"],
        json!({"status": "up", "pending": 0})
    );
    for key in ["size", "idle", "in_use", "max"] {
        assert!(body["pool"][key].is_u64(), "{key}: {body}");
    }
    assert_eq!(body["pool"]["max"], 10);
}

#[tokio::test]
async fn readiness_is_503_while_migrations_are_pending() {
    let app = TestApp::spawn().await;
    app.state.store.migrator().down_to(0).await.unwrap();

    let response = app.get("/health/ready").await;

    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().contains_key("retry-after"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "not_ready");
    assert_eq!(
        body["checks"]["migrations"],
        json!({"status": "pending", "pending": starsongs::storage::migrate::MIGRATIONS.len()})
    );
    assert_eq!(app.get("/health/live").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn old_database_and_pool_probes_answer_unauthenticated_like_readiness() {
    let app = TestApp::spawn().await;

    let (db_status, db_type, db) = parts(
        app.anonymous
            .get(app.url("/health/db"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let (pool_status, pool_type, pool) = parts(
        app.anonymous
            .get(app.url("/health/pool"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let (_, _, ready) = parts(app.get("/health/ready").await).await;

    assert_eq!(
        (db_status, db_type.as_str()),
        (StatusCode::OK, "application/json")
    );
    // The Python API's fields, which its monitors read, with the new figure beside them.
    assert_eq!(db["status"], "healthy", "{db}");
    assert_eq!(db["database"], "connected", "{db}");
    assert!(
        db["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{db}"
    );
    assert_eq!(
        db["latency_ms"], ready["checks"]["database"]["latency_ms"],
        "the readiness check itself"
    );
    assert_eq!(
        (pool_status, pool_type.as_str()),
        (StatusCode::OK, "application/json")
    );
    for key in [
        "pool_size",
        "checked_out",
        "overflow",
        "total_connections",
        "size",
        "idle",
        "in_use",
        "max",
    ] {
        assert!(pool[key].is_u64(), "{key}: {pool}");
    }
    assert_eq!(pool["pool_size"], 10, "database.max_connections");
    assert_eq!(pool["max"], 10);
    assert_eq!(
        pool["total_connections"].as_u64(),
        Some(pool["checked_out"].as_u64().unwrap() + pool["overflow"].as_u64().unwrap())
    );
    assert_eq!(pool["status"], "healthy", "{pool}");
}

#[tokio::test]
async fn old_probes_refuse_other_methods_with_a_405_problem() {
    let app = TestApp::spawn().await;

    for path in ["/health/db", "/health/pool"] {
        for method in [Method::POST, Method::PUT, Method::DELETE] {
            let response = app
                .anonymous
                .request(method.clone(), app.url(path))
                .send()
                .await
                .unwrap();
            let allow = response.headers().get("allow").cloned();

            problem(response, StatusCode::METHOD_NOT_ALLOWED).await;
            assert!(
                allow.is_some_and(|v| v.to_str().unwrap().contains("GET")),
                "{method} {path}"
            );
        }
    }
}

#[tokio::test]
async fn the_old_database_probe_is_503_while_the_database_does_not_answer() {
    if crate::harness::sqlite_only("it breaks the SQLite file under the service") {
        return;
    }
    // Each use opens a fresh connection, which fails once the file is unreadable.
    let app = TestApp::spawn_with(&[("STARSONGS__DATABASE__MAX_LIFETIME_SECS", "0")]).await;
    let probe = app.url("/health/db");
    assert_eq!(
        app.anonymous.get(&probe).send().await.unwrap().status(),
        StatusCode::OK
    );

    let broken = crate::harness::BrokenSqliteFile::break_file(&app.database_url());
    let down =
        crate::harness::poll_until(&app.anonymous, &probe, StatusCode::SERVICE_UNAVAILABLE).await;
    let retry_after = down.headers().get("retry-after").cloned();
    let (down_status, down_type, down_body) = parts(down).await;
    let pool_while_down = app
        .anonymous
        .get(app.url("/health/pool"))
        .send()
        .await
        .unwrap();
    let (pool_status, _, pool_body) = parts(pool_while_down).await;
    broken.restore();
    let back = crate::harness::poll_until(&app.anonymous, &probe, StatusCode::OK).await;

    assert_eq!(down_status, StatusCode::SERVICE_UNAVAILABLE, "{down_body}");
    assert_eq!(down_type, "application/json");
    assert_eq!(down_body["status"], "unhealthy", "{down_body}");
    assert_eq!(down_body["database"], "disconnected", "{down_body}");
    assert!(retry_after.is_some(), "a 503 carries Retry-After");
    assert_eq!(
        pool_status,
        StatusCode::OK,
        "the pool figures need no database"
    );
    assert!(pool_body["pool_size"].is_u64(), "{pool_body}");
    assert_eq!(
        back.status(),
        StatusCode::OK,
        "the probe recovers by itself"
    );
}

/// Group commit: writes run on the writer's own connection, so a write waiting for
/// another process's write lock leaves the pool to the readers, and the probes stay up.
#[tokio::test]
async fn a_write_waiting_for_another_process_leaves_reads_and_probes_up() {
    if crate::harness::sqlite_only("it holds SQLite's write lock from another connection") {
        return;
    }
    let app = TestApp::spawn_with(&[
        ("STARSONGS__DATABASE__MAX_CONNECTIONS", "1"),
        ("STARSONGS__DATABASE__SQLITE_BUSY_TIMEOUT_MS", "10000"),
    ])
    .await;
    let existing = app.create_artist("Readable").await;
    let mut locker = <sqlx::SqliteConnection as sqlx::Connection>::connect(&app.database_url())
        .await
        .unwrap();
    sqlx::query("begin immediate")
        .execute(&mut locker)
        .await
        .unwrap();
    let write = tokio::spawn(
        app.editor()
            .request(Method::POST, "/v1/artists")
            .json(&json!({"name": "Waiting"}))
            .send(),
    );

    // Twenty rounds of reads while the lock is held: the write is queued by the first few.
    let mut answers = Vec::new();
    for _ in 0..20 {
        let db = app
            .anonymous
            .get(app.url("/health/db"))
            .send()
            .await
            .unwrap();
        let read = app.get(&format!("/v1/artists/{}", existing["id"])).await;
        answers.push((db.status(), read.status()));
    }
    let write_was_waiting = !write.is_finished();
    sqlx::query("rollback").execute(&mut locker).await.unwrap();
    let written = write.await.unwrap().unwrap();

    assert!(
        answers
            .iter()
            .all(|answer| *answer == (StatusCode::OK, StatusCode::OK)),
        "{answers:?}"
    );
    assert!(
        write_was_waiting,
        "the write waited for the other process's lock"
    );
    assert_eq!(written.status(), StatusCode::CREATED);
}
