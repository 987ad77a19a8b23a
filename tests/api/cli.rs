//! The binary's commands: `openapi`, `migrate`, `healthcheck`, and start-up validation.

use std::process::{Command, Output};

use serde_json::Value;

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
    assert_eq!(text(&up.stdout), "applied 0001\napplied 0002\n");
    assert_eq!(text(&again.stdout), "schema is up to date\n");
    assert!(text(&applied.stdout).contains("0001 applied  create catalog"));
    assert!(text(&applied.stdout).contains("0002 applied  create idempotency key"));
    assert_eq!(text(&down.stdout), "reverted 0002\nreverted 0001\n");
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
    for command in ["serve", "migrate", "openapi", "healthcheck"] {
        assert!(help.contains(command), "{help}");
    }
}
