//! Real-browser checks (Debian's Chromium through playwright-core, `tests/browser/`).
//!
//! They need `/usr/bin/chromium` and `npm ci --prefix tests/browser`. Without them the
//! tests skip with a printed reason, unless `STARSONGS_TEST_BROWSER=1` (set by `.ci/run`),
//! which turns a missing browser into a failure.

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use starsongs::domain::user::Role;

use crate::harness::{PASSWORD, TestApp};

/// The browser-test folder, or `None` (after printing why) when the tests cannot run here.
fn browser_tests() -> Option<&'static Path> {
    let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser"));
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let missing = if !Path::new(&chromium).exists() {
        Some(format!(
            "{chromium} is not installed (apt-get install chromium)"
        ))
    } else if !dir.join("node_modules/playwright-core").exists() {
        Some("playwright-core is not installed (npm ci --prefix tests/browser)".to_owned())
    } else {
        None
    };
    match missing {
        None => Some(dir),
        Some(reason) if std::env::var_os("STARSONGS_TEST_BROWSER").is_some() => {
            panic!("STARSONGS_TEST_BROWSER is set but {reason}")
        }
        Some(reason) => {
            println!("SKIPPED browser test: {reason}");
            None
        }
    }
}

#[tokio::test]
async fn swagger_ui_authorize_signs_in_with_a_password_and_calls_a_protected_endpoint() {
    let Some(dir) = browser_tests() else {
        return;
    };
    let app = TestApp::spawn().await;
    app.account("swagger-user", Role::Editor).await;
    let (base, script) = (app.base.clone(), dir.join("swagger-authorize.mjs"));

    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(script)
            .args([&base, "swagger-user", PASSWORD])
            .output()
            .unwrap()
    })
    .await
    .unwrap();

    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let shown: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(shown["status"], "200", "{shown}");
    let account: Value = serde_json::from_str(shown["body"].as_str().unwrap()).unwrap();
    assert_eq!(account["username"], "swagger-user");
    assert_eq!(account["role"], "editor");
}
