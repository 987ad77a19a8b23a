//! Real-browser checks (Debian's Chromium through playwright-core, `tests/browser/`).
//!
//! They need `/usr/bin/chromium` and `npm ci --prefix tests/browser`. Without them the
//! tests skip with a printed reason, unless `STARSONGS_TEST_BROWSER=1` (set by `.ci/run`),
//! which turns a missing browser into a failure.

use std::path::{Path, PathBuf};
use std::process::Command;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

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

/// Runs `script` with `args` under node and returns its stdout as JSON (asserts success).
async fn node(script: PathBuf, args: Vec<String>) -> Value {
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(script)
            .args(args)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap()
}

/// The page a frontend would be: it calls `GET /v1/auth/me` on the API named in its URL
/// fragment with the bearer token given there, and puts the outcome in its title.
const PAGE: &str = r#"<!doctype html><html><head><title>waiting</title></head><body><script>
const [api, token] = decodeURIComponent(location.hash.slice(1)).split('|');
fetch(api + '/v1/auth/me', { headers: { Authorization: 'Bearer ' + token } })
  .then((r) => r.json().then((b) => { document.title = 'ok:' + r.status + ':' + b.username; }))
  .catch((e) => { document.title = 'blocked:' + e.name; });
</script></body></html>"#;

/// Serves [`PAGE`] on a new port of 127.0.0.1 (a distinct origin); returns its origin.
async fn serve_page() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buffer = [0u8; 4096];
                let _ = stream.read(&mut buffer).await;
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\
                     Connection: close\r\n\r\n{PAGE}",
                    PAGE.len()
                );
                let _ = stream.write_all(answer.as_bytes()).await;
            });
        }
    });
    origin
}

#[tokio::test]
async fn a_page_on_an_allowed_origin_can_call_the_api_and_a_foreign_one_cannot() {
    let Some(dir) = browser_tests() else {
        return;
    };
    let allowed = serve_page().await;
    let foreign = serve_page().await;
    let app = TestApp::spawn_with(&[("STARSONGS__CORS__ALLOWED_ORIGINS", allowed.as_str())]).await;
    let (_, token) = app.account("frontend-user", Role::Viewer).await;
    let script = dir.join("cors-fetch.mjs");
    let page = |origin: &str| format!("{origin}/#{}|{token}", app.base);

    let from_allowed = node(script.clone(), vec![page(&allowed)]).await;
    let from_foreign = node(script, vec![page(&foreign)]).await;

    assert_eq!(from_allowed["title"], "ok:200:frontend-user");
    assert_eq!(from_foreign["title"], "blocked:TypeError");
}
