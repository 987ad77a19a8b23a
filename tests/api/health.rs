//! Probes: `/health`, `/health/live`, `/health/ready`.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{TestApp, parts};

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
