//! SQLite durability under group commit: the real binary, 32 concurrent writers, killed
//! with SIGKILL at random moments, five times over one database file. Every write that
//! was answered 2xx must be in the database afterwards, and the file must be intact.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value, json};
use sqlx::ConnectOptions as _;
use sqlx::sqlite::SqliteConnectOptions;

use crate::harness::client;

const WRITERS: usize = 32;
const ROUNDS: usize = 5;
const PASSWORD: &str = "durability-test-password";

/// `serve` in the test profile on a free port, with `synchronous=FULL` (the default).
fn serve(database_url: &str) -> (Child, String) {
    let service =
        crate::harness::ServiceProcess::spawn(&mut crate::harness::service_command(database_url));
    let (child, address) = (service.child, service.address);
    (child, format!("http://{address}"))
}

/// A pseudo-random number in `range` (no seed to keep: every run may pick other moments).
fn random_in(range: std::ops::Range<usize>) -> usize {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).unwrap();
    range.start + usize::try_from(u64::from_le_bytes(bytes) % (range.len() as u64)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_answered_2xx_survive_sigkill_and_the_file_stays_intact() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("durable.db");
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let create = Command::new(env!("CARGO_BIN_EXE_starsongs"))
        .args(["user", "create", "--username", "writer", "--email"])
        .args(["writer@example.com", "--role", "editor", "--password-stdin"])
        .env("STARSONGS_ENV", "test")
        .env("DATABASE_URL", &url)
        .env(
            "STARSONGS__AUTH__JWT_SECRET",
            "durability-test-jwt-secret-0123456789",
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write as _;
            writeln!(child.stdin.take().unwrap(), "{PASSWORD}")?;
            child.wait()
        })
        .unwrap();
    assert!(create.success());
    // name -> id of every artist whose creation was answered 201.
    let mut acknowledged = BTreeMap::new();

    for round in 0..ROUNDS {
        let (mut child, base) = serve(&url);
        let http = client();
        let login = http
            .post(format!("{base}/v1/auth/login"))
            .json(&json!({"username": "writer", "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(login.status(), 200, "round {round}: login");
        let token = login.json::<Value>().await.unwrap()["access_token"]
            .as_str()
            .unwrap()
            .to_owned();
        // Kill after a random number of acknowledged writes, while the 32 writers keep
        // requests in flight.
        let kill_after = random_in(50..400);
        let answered = Arc::new(AtomicUsize::new(0));
        let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel();
        let mut writers = Vec::new();
        for writer in 0..WRITERS {
            let (http, base, token) = (http.clone(), base.clone(), token.clone());
            let (answered, done_tx) = (answered.clone(), done_tx.clone());
            writers.push(tokio::spawn(async move {
                for n in 0.. {
                    let name = format!("r{round} w{writer} n{n}");
                    let sent = http
                        .post(format!("{base}/v1/artists"))
                        .bearer_auth(&token)
                        .json(&json!({"name": name}))
                        .send()
                        .await;
                    let Ok(response) = sent else { return };
                    if response.status() != 201 {
                        return;
                    }
                    let Ok(body) = response.json::<Value>().await else {
                        return;
                    };
                    let _ = done_tx.send((name, body["id"].as_i64().unwrap()));
                    answered.fetch_add(1, Ordering::SeqCst);
                }
            }));
        }
        drop(done_tx);
        let mut this_round = 0;
        while let Some((name, id)) = done_rx.recv().await {
            acknowledged.insert(name, id);
            this_round += 1;
            if this_round == kill_after {
                child.kill().unwrap();
                child.wait().unwrap();
            }
        }
        for writer in writers {
            writer.await.unwrap();
        }
        assert!(
            this_round >= kill_after,
            "round {round}: the writers stopped after {this_round} writes, before the kill"
        );
    }

    let mut conn = SqliteConnectOptions::new()
        .filename(&path)
        .read_only(true)
        .connect()
        .await
        .unwrap();
    let integrity: String = sqlx::query_scalar("pragma integrity_check")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(integrity, "ok");
    let stored: BTreeMap<String, i64> = sqlx::query_as("select name, id from artist")
        .fetch_all(&mut conn)
        .await
        .unwrap()
        .into_iter()
        .collect();
    let missing: Vec<_> = acknowledged
        .iter()
        .filter(|(name, id)| stored.get(*name) != Some(id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged writes are missing, e.g. {:?}",
        missing.len(),
        acknowledged.len(),
        missing.first()
    );
    println!(
        "durability: {} acknowledged writes over {ROUNDS} SIGKILLs, all present; {} rows stored",
        acknowledged.len(),
        stored.len()
    );
}
