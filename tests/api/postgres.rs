//! PostgreSQL only: the binary's commands on a server database, a server that goes away
//! and comes back, and `statement_timeout`. These need `STARSONGS_TEST_POSTGRES_URL`
//! (the outage test also PostgreSQL's server binaries, to run a private cluster it may
//! stop); without it they print why and skip.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{TestApp, problem, text};
use crate::server_db::{POSTGRES_URL_VAR, TestDatabase, server_url};

#[tokio::test]
async fn migrate_and_user_create_work_on_postgres() {
    let Some(admin_url) = server_url(POSTGRES_URL_VAR, "postgres") else {
        return;
    };
    let database = TestDatabase::create(&admin_url).await;
    crate::harness::commands_work_on(&database.url);
}

#[tokio::test]
async fn a_statement_over_statement_timeout_is_503_and_the_service_goes_on() {
    if crate::harness::backend() != crate::harness::TestBackend::Postgres {
        println!("skipped: needs STARSONGS_TEST_API_BACKEND=postgres");
        return;
    }
    let app = TestApp::spawn_with(&[("STARSONGS__DATABASE__STATEMENT_TIMEOUT_MS", "300")]).await;
    app.create_artist("Waiting").await;
    // A maintenance job holds an exclusive lock on the table; the service's read waits
    // on it until statement_timeout cancels it.
    use sqlx::Connection;
    let mut locker = sqlx::PgConnection::connect(&app.database_url())
        .await
        .unwrap();
    sqlx::raw_sql("begin; lock table artist in access exclusive mode")
        .execute(&mut locker)
        .await
        .unwrap();

    let blocked = app.get("/v1/artists").await;
    let retry_after = blocked.headers().get("retry-after").cloned();
    let body = problem(blocked, StatusCode::SERVICE_UNAVAILABLE).await;
    sqlx::raw_sql("rollback")
        .execute(&mut locker)
        .await
        .unwrap();
    let after = app.get("/v1/artists").await;

    assert!(retry_after.is_some());
    assert!(
        !body["detail"].as_str().unwrap().contains("statement"),
        "{body}"
    );
    assert_eq!(after.status(), StatusCode::OK);
}

/// A PostgreSQL cluster of this test's own, on a spare port, that it may stop and start.
struct PrivateCluster {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    _dir: tempfile::TempDir,
}

impl PrivateCluster {
    /// Creates and starts a cluster; `None` when PostgreSQL's server binaries are missing.
    fn start() -> Option<Self> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .find(|bin| bin.join("initdb").exists() && bin.join("pg_ctl").exists())?;
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        // initdb and the server refuse to run as root: run them as `postgres` then.
        if is_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(status.success());
        }
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let cluster = Self {
            bin,
            data,
            port,
            _dir: dir,
        };
        let initdb = cluster.run(
            "initdb",
            &[
                "-D",
                cluster.data.to_str().unwrap(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
        );
        assert!(initdb.status.success(), "{}", text(&initdb.stderr));
        cluster.pg_ctl("start");
        Some(cluster)
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn run(&self, program: &str, args: &[&str]) -> Output {
        let path = self.bin.join(program);
        let mut command = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&path);
            c
        } else {
            Command::new(&path)
        };
        command.args(args).stdin(Stdio::null()).output().unwrap()
    }

    fn pg_ctl(&self, action: &str) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off",
            self.port,
            self.data.parent().unwrap().display()
        );
        let log = self.data.parent().unwrap().join("server.log");
        let mut args = vec![action, "-D", self.data.to_str().unwrap(), "-w", "-t", "30"];
        match action {
            "start" => args.extend(["-o", &options, "-l", log.to_str().unwrap()]),
            _ => args.extend(["-m", "fast"]),
        }
        let output = self.run("pg_ctl", &args);
        assert!(
            output.status.success(),
            "pg_ctl {action}: {}{}",
            text(&output.stdout),
            text(&output.stderr)
        );
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let _ = self.run(
            "pg_ctl",
            &["stop", "-D", self.data.to_str().unwrap(), "-m", "immediate"],
        );
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| text(&o.stdout).trim() == "0")
}

#[tokio::test]
async fn an_outage_is_503_without_hanging_and_service_resumes_by_itself() {
    if server_url(POSTGRES_URL_VAR, "postgres").is_none() {
        return;
    }
    let cluster = tokio::task::spawn_blocking(PrivateCluster::start)
        .await
        .unwrap()
        .expect("PostgreSQL's server binaries (initdb, pg_ctl) are installed");
    let app = TestApp::spawn_on(
        &cluster.url(),
        &[("STARSONGS__DATABASE__ACQUIRE_TIMEOUT_SECS", "2")],
    )
    .await;
    let artist = app.create_artist("Survivor").await;
    let path = format!("/v1/artists/{}", artist["id"]);
    // Longer than acquire_timeout + the request timeout would allow a hang to pass unseen.
    let bounded = crate::harness::client_builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();

    let cluster = tokio::task::spawn_blocking(move || {
        cluster.pg_ctl("stop");
        cluster
    })
    .await
    .unwrap();
    let started = Instant::now();
    let down = app
        .request(reqwest::Method::GET, &path)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("answered, not hung");
    let waited = started.elapsed();
    let retry_after = down.headers().get("retry-after").cloned();
    let down_body = problem(down, StatusCode::SERVICE_UNAVAILABLE).await;
    let write = app
        .editor()
        .request(reqwest::Method::POST, "/v1/artists")
        .timeout(Duration::from_secs(10))
        .json(&json!({"name": "Lost"}))
        .send()
        .await
        .expect("answered, not hung");
    let write_status = write.status();
    let ready = bounded.get(app.url("/health/ready")).send().await.unwrap();
    let ready_status = ready.status();
    let ready_body: Value = ready.json().await.unwrap();
    // The Python API's probes, which its monitors read by field.
    let old_db = bounded.get(app.url("/health/db")).send().await.unwrap();
    let old_db_status = old_db.status();
    let old_db_body: Value = old_db.json().await.unwrap();
    let old_pool: Value = bounded
        .get(app.url("/health/pool"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    let cluster = tokio::task::spawn_blocking(move || {
        cluster.pg_ctl("start");
        cluster
    })
    .await
    .unwrap();
    // The service reconnects on its own: poll until it answers, within a deadline.
    let deadline = Instant::now() + Duration::from_secs(30);
    let back = loop {
        let response = app.get(&path).await;
        if response.status() == StatusCode::OK || Instant::now() > deadline {
            break response;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    assert!(
        waited < Duration::from_secs(8),
        "503 within the acquire timeout, took {waited:?}"
    );
    assert!(retry_after.is_some());
    assert_eq!(
        down_body["detail"],
        "The database is temporarily unavailable; retry later"
    );
    assert_eq!(write_status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready_status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready_body["status"], "not_ready", "{ready_body}");
    assert_eq!(old_db_status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(old_db_body["status"], "unhealthy", "{old_db_body}");
    assert_eq!(old_db_body["database"], "disconnected", "{old_db_body}");
    assert!(old_pool["pool_size"].is_u64(), "{old_pool}");
    assert_eq!(back.status(), StatusCode::OK, "service resumed");
    assert_eq!(back.json::<Value>().await.unwrap()["name"], "Survivor");
    drop(cluster);
}
