//! Graceful shutdown: readiness turns 503 at once, in-flight requests finish, the process
//! exits 0 on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::TestApp;

#[tokio::test]
async fn draining_turns_readiness_503_and_lets_in_flight_requests_finish() {
    let mut app = TestApp::spawn_with(&[("STARSONGS__SERVER__SHUTDOWN_DELAY_SECS", "3")]).await;
    let body = br#"{"name": "Late Arrival"}"#;
    let address = app.base.trim_start_matches("http://").to_owned();
    let mut in_flight = TcpStream::connect(&address).await.unwrap();
    let head = format!(
        "POST /v1/artists HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
         Authorization: Bearer {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        app.editor_token,
        body.len()
    );
    in_flight.write_all(head.as_bytes()).await.unwrap();
    in_flight.write_all(&body[..5]).await.unwrap();

    app.trigger_shutdown();
    let mut ready_status = StatusCode::OK;
    for _ in 0..100 {
        ready_status = app.get("/health/ready").await.status();
        if ready_status == StatusCode::SERVICE_UNAVAILABLE {
            break;
        }
    }
    in_flight.write_all(&body[5..]).await.unwrap();
    let mut answer = String::new();
    in_flight.read_to_string(&mut answer).await.unwrap();

    assert_eq!(ready_status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    assert!(answer.contains("Late Arrival"), "{answer}");
    app.wait_stopped().await.unwrap();
}

#[tokio::test]
async fn shutdown_with_nothing_in_flight_completes() {
    let app = TestApp::spawn().await;
    let base = app.base.clone();

    app.shutdown().await.unwrap();

    assert!(
        crate::harness::client()
            .get(format!("{base}/health/live"))
            .send()
            .await
            .is_err()
    );
}

#[test]
fn the_binary_exits_0_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("bin.db").display());
    let mut child = Command::new(env!("CARGO_BIN_EXE_starsongs"))
        .env("STARSONGS_ENV", "test")
        .env("DATABASE_URL", url)
        .env("STARSONGS__LOG__LEVEL", "info")
        .env_remove("RUST_LOG")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let address = lines
        .by_ref()
        .map_while(Result::ok)
        .filter_map(|line| serde_json::from_str::<Value>(&line).ok())
        .find_map(|line| line["address"].as_str().map(str::to_owned))
        .expect("the service logs its address");
    // SIGHUP (certificate reload) must not end a service that has no TLS.
    let hangup = Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    let healthcheck = Command::new(env!("CARGO_BIN_EXE_starsongs"))
        .args(["healthcheck", "--url", &format!("http://{address}")])
        .status()
        .unwrap();

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();

    assert!(hangup.success());
    assert!(healthcheck.success(), "the service died on SIGHUP");
    assert!(killed.success());
    assert_eq!(status.code(), Some(0));
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(
        rest.iter().any(|l| l.contains("shutdown complete")),
        "{rest:?}"
    );
}
