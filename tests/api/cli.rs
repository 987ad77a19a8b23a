//! The binary's commands: `openapi`, `migrate`, `healthcheck`, and start-up validation.

use std::process::{Command, Output};

use serde_json::Value;
use starsongs::storage::migrate::MIGRATIONS;

fn starsongs(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_starsongs"));
    command
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("DATABASE_URL");
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn openapi_prints_the_committed_document() {
    let output = starsongs(&["openapi"], &[]);

    assert!(output.status.success());
    let printed: Value = serde_json::from_slice(&output.stdout).unwrap();
    let committed: Value = serde_json::from_str(include_str!("../../openapi.json")).unwrap();
    assert_eq!(printed, committed);
}

#[test]
fn migrate_status_up_and_down_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("cli.db").display());
    let env = [("STARSONGS_ENV", "test"), ("DATABASE_URL", url.as_str())];

    let before = starsongs(&["migrate", "status"], &env);
    let up = starsongs(&["migrate", "up"], &env);
    let again = starsongs(&["migrate", "up"], &env);
    let applied = starsongs(&["migrate", "status"], &env);
    let down = starsongs(&["migrate", "down", "--to", "0"], &env);
    let after = starsongs(&["migrate", "status"], &env);

    assert!(
        text(&before.stdout).contains("0001 pending  create catalog"),
        "{}",
        text(&before.stdout)
    );
    let versions: Vec<String> = MIGRATIONS.iter().map(|m| format!("{:04}", m.0)).collect();
    let applied_lines: String = versions.iter().map(|v| format!("applied {v}\n")).collect();
    let reverted_lines: String = versions
        .iter()
        .rev()
        .map(|v| format!("reverted {v}\n"))
        .collect();
    assert_eq!(text(&up.stdout), applied_lines);
    assert_eq!(text(&again.stdout), "schema is up to date\n");
    assert!(text(&applied.stdout).contains("0001 applied  create catalog"));
    assert!(text(&applied.stdout).contains("0002 applied  create idempotency key"));
    assert_eq!(text(&down.stdout), reverted_lines);
    assert!(text(&after.stdout).contains("0001 pending"));
    for output in [before, up, again, applied, down, after] {
        assert!(output.status.success(), "{}", text(&output.stderr));
    }
}

#[test]
fn production_without_required_settings_exits_2_naming_each_setting() {
    let output = starsongs(
        &["serve"],
        &[
            ("STARSONGS_ENV", "production"),
            ("STARSONGS__CORS__ALLOWED_ORIGINS", "*"),
            ("STARSONGS__DATABASE__SEED_DEMO_DATA", "true"),
        ],
    );

    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    for setting in [
        "database.url",
        "cors.allowed_origins",
        "database.seed_demo_data",
    ] {
        assert!(stderr.contains(setting), "{setting} not named in: {stderr}");
    }
}

#[test]
fn healthcheck_fails_when_nothing_listens() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);

    let output = starsongs(
        &["healthcheck", "--url", &format!("http://127.0.0.1:{port}")],
        &[],
    );

    assert_eq!(output.status.code(), Some(1));
}

#[test]
fn help_lists_every_command() {
    let output = starsongs(&["--help"], &[]);

    let help = text(&output.stdout);
    for command in [
        "serve",
        "migrate",
        "user",
        "backup",
        "openapi",
        "healthcheck",
    ] {
        assert!(help.contains(command), "{help}");
    }
}

fn starsongs_with_stdin(args: &[&str], env: &[(&str, &str)], stdin: &str) -> Output {
    use std::io::Write;
    use std::process::Stdio;

    let mut command = Command::new(env!("CARGO_BIN_EXE_starsongs"));
    command
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("DATABASE_URL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[tokio::test]
async fn user_create_reads_the_password_from_stdin_and_stores_only_a_hash() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("users.db").display()
    );
    let env = [("STARSONGS_ENV", "test"), ("DATABASE_URL", url.as_str())];
    let args = [
        "user",
        "create",
        "--username",
        "root.admin",
        "--email",
        "root@example.com",
        "--role",
        "admin",
        "--password-stdin",
    ];

    let created = starsongs_with_stdin(&args, &env, "a long enough secret\n");
    let duplicate = starsongs_with_stdin(&args, &env, "a long enough secret\n");
    let mut weak_args = args;
    weak_args[3] = "weak.admin";
    weak_args[5] = "weak@example.com";
    let weak = starsongs_with_stdin(&weak_args, &env, "tooshort\n");

    assert!(created.status.success(), "{}", text(&created.stderr));
    assert!(
        text(&created.stdout).contains("created user root.admin"),
        "{}",
        text(&created.stdout)
    );
    assert_eq!(duplicate.status.code(), Some(1));
    assert!(
        text(&duplicate.stderr).contains("already registered"),
        "{}",
        text(&duplicate.stderr)
    );
    assert_eq!(weak.status.code(), Some(1));
    assert!(text(&weak.stderr).contains("password: must be at least 12 characters"));
    for output in [&created, &duplicate, &weak] {
        let all = format!("{}{}", text(&output.stdout), text(&output.stderr));
        assert!(
            !all.contains("a long enough secret") && !all.contains("tooshort"),
            "{all}"
        );
    }
    let settings = crate::harness::settings_in(&dir, &[("DATABASE_URL", &url)]);
    let store = starsongs::storage::connect(&settings.database)
        .await
        .unwrap();
    let starsongs::domain::user::UserWithPassword {
        user,
        password_hash: hash,
    } = store
        .find_user_by_username(&starsongs::domain::user::UsernameKey::fold("root.admin"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(user.role.as_str(), "admin");
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(
        store
            .find_user_by_username(&starsongs::domain::user::UsernameKey::fold("weak.admin"))
            .await
            .unwrap()
            .is_none()
    );
}

#[test]
fn user_create_refuses_a_password_on_the_command_line() {
    let output = starsongs(
        &[
            "user",
            "create",
            "--username",
            "x",
            "--email",
            "x@example.com",
        ],
        &[],
    );

    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("--password-stdin"));
}

#[tokio::test]
async fn backup_writes_a_consistent_copy_while_the_service_runs() {
    if crate::harness::sqlite_only(
        "`starsongs backup` copies SQLite files (postgres: tests/api/postgres.rs)",
    ) {
        return;
    }
    let app = crate::harness::TestApp::spawn().await;
    app.create_artist("Backed Up").await;
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("copy.db");
    let url = app.database_url();
    let env = [("STARSONGS_ENV", "test"), ("DATABASE_URL", url.as_str())];

    let first = starsongs(&["backup", "--to", target.to_str().unwrap()], &env);
    let again = starsongs(&["backup", "--to", target.to_str().unwrap()], &env);

    assert!(first.status.success(), "{}", text(&first.stderr));
    assert!(text(&first.stdout).starts_with("backup written to"));
    assert_eq!(again.status.code(), Some(1));
    assert!(
        text(&again.stderr).contains("already exists"),
        "{}",
        text(&again.stderr)
    );
    let copy_url = format!("sqlite://{}", target.display());
    let settings = crate::harness::settings_in(&dir, &[("DATABASE_URL", &copy_url)]);
    let copy = starsongs::storage::connect(&settings.database)
        .await
        .unwrap();
    assert_eq!(copy.migrator().pending_count().await.unwrap(), 0);
    let names: Vec<String> = copy
        .list_artists(&starsongs::domain::list::ListQuery {
            sort: starsongs::domain::list::Sort::parse(None).unwrap(),
            page_size: 10,
            position: starsongs::domain::list::Position::Page(1),
            filter: starsongs::domain::artist::ArtistFilter::default(),
        })
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|a| a.name)
        .collect();
    assert_eq!(names, ["Backed Up"]);
}

/// A `serve` process in the development profile on a free port; its stdout and stderr
/// are collected by threads until it is stopped.
struct DevServer {
    child: std::process::Child,
    address: String,
    stdout: std::thread::JoinHandle<String>,
    stderr: std::thread::JoinHandle<String>,
}

impl DevServer {
    fn start(database_url: &str) -> Self {
        use std::io::{BufRead, BufReader, Read};
        use std::process::Stdio;

        let mut child = Command::new(env!("CARGO_BIN_EXE_starsongs"))
            .env_remove("RUST_LOG")
            .env_remove("STARSONGS__AUTH__JWT_SECRET")
            .env("STARSONGS_ENV", "development")
            .env("DATABASE_URL", database_url)
            .env("STARSONGS__SERVER__PORT", "0")
            .env("STARSONGS__ADMIN__PORT", "0")
            .env("STARSONGS__LOG__FORMAT", "json")
            .env("STARSONGS__LOG__LEVEL", "trace")
            .env("STARSONGS__AUTH__ARGON2_MEMORY_KIB", "1024")
            .env("STARSONGS__AUTH__ARGON2_ITERATIONS", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let stdout = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stdout.read_to_string(&mut text);
            text
        });
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut all = String::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(address) = serde_json::from_str::<Value>(&line)
                    .ok()
                    .and_then(|v| v["address"].as_str().map(str::to_owned))
                {
                    let _ = tx.send(address);
                }
                all.push_str(&line);
                all.push('\n');
            }
            all
        });
        let address = rx
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("the service logs its address");
        Self {
            child,
            address,
            stdout,
            stderr,
        }
    }

    /// Stops the process; returns (stdout, stderr).
    fn stop(mut self) -> (String, String) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        (self.stdout.join().unwrap(), self.stderr.join().unwrap())
    }
}

#[tokio::test]
async fn development_creates_an_admin_once_and_prints_its_password_only_on_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("dev.db").display());

    let first = DevServer::start(&url);
    let address = first.address.clone();
    // The password is printed before the listener's address is logged, so it is in the
    // pipe already; `stop` reads the pipe to its end.
    let (stdout, stderr) = first.stop();
    let password = stdout
        .lines()
        .find_map(|line| line.trim().strip_prefix("password: "))
        .unwrap_or_else(|| panic!("no password on stdout: {stdout}"))
        .to_owned();
    assert!(password.len() >= 20, "{password}");
    assert!(!stderr.contains(&password), "the password reached the logs");
    assert!(!address.is_empty());

    let second = DevServer::start(&url);
    let login = crate::harness::client()
        .post(format!("http://{}/v1/auth/login", second.address))
        .json(&serde_json::json!({"username": "admin", "password": password}))
        .send()
        .await
        .unwrap();
    let status = login.status();
    let body: Value = login.json().await.unwrap();
    let me = crate::harness::client()
        .get(format!("http://{}/v1/auth/me", second.address))
        .bearer_auth(body["access_token"].as_str().unwrap_or_default())
        .send()
        .await
        .unwrap();
    let me: Value = me.json().await.unwrap();
    let (stdout, stderr) = second.stop();

    assert_eq!(status, reqwest::StatusCode::OK);
    assert_eq!(me["role"], "admin");
    assert!(!stdout.contains("password:"), "printed again: {stdout}");
    for secret in [
        password.as_str(),
        body["refresh_token"].as_str().unwrap(),
        body["access_token"].as_str().unwrap(),
    ] {
        assert!(
            !stderr.contains(secret),
            "a secret reached the trace-level logs"
        );
    }
}
