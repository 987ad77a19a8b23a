//! What operators see, checked on the real binary (its own process, so its logs, metrics
//! registry and Sentry client are its own): JSON access logs with request ids, no secret
//! in any log line at `trace`, Prometheus metrics on the admin port (parsed, counted, and
//! checked by `promtool` when present), readiness following the database, and a Sentry
//! event for a forced panic, received by a local HTTP server acting as the ingest.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::harness::client;

/// Password of the editors `Service::editor_token` creates.
const EDITOR_PASSWORD: &str = "a long passphrase!";

/// A `starsongs serve` process with JSON logs collected from stderr.
struct Service {
    child: Child,
    base: String,
    admin: String,
    logs: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

impl Service {
    fn start(extra: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("obs.db").display());
        let mut command = crate::harness::service_command(&url);
        for (key, value) in extra {
            command.env(key, value);
        }
        let crate::harness::ServiceProcess {
            child,
            address,
            admin,
            lines: logs,
        } = crate::harness::ServiceProcess::spawn(&mut command);
        Self {
            child,
            base: format!("http://{address}"),
            admin: format!("http://{admin}"),
            logs,
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn database_url(&self) -> String {
        format!("sqlite://{}", self._dir.path().join("obs.db").display())
    }

    /// Log lines so far, parsed (every line must be JSON).
    fn lines(&self) -> Vec<Value> {
        self.logs
            .lock()
            .unwrap()
            .iter()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
            .collect()
    }

    fn raw_logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    async fn metrics(&self) -> String {
        client()
            .get(format!("{}/metrics", self.admin))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Creates an editor through the CLI and signs it in; returns its access token.
    async fn editor_token(&self, username: &str) -> String {
        self.create_user(username, "editor", EDITOR_PASSWORD);
        let pair: Value = client()
            .post(self.url("/v1/auth/login"))
            .json(&json!({"username": username, "password": EDITOR_PASSWORD}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        pair["access_token"].as_str().unwrap().to_owned()
    }

    /// Creates an account through the CLI against the same database.
    fn create_user(&self, username: &str, role: &str, password: &str) {
        use std::io::Write;
        let mut child = Command::new(env!("CARGO_BIN_EXE_starsongs"))
            .env("STARSONGS_ENV", "test")
            .env("DATABASE_URL", self.database_url())
            .args(["user", "create", "--username", username, "--role", role])
            .args([
                "--email",
                &format!("{username}@example.com"),
                "--password-stdin",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
        assert!(child.wait().unwrap().success());
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until the collected logs satisfy `done` (the logger writes after the response).
async fn wait_for(service: &Service, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    // Bounded: 10 s at most, usually one or two rounds (lines are written by a writer
    // thread, shortly after the response).
    for _ in 0..200 {
        let lines = service.lines();
        if done(&lines) {
            return lines;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    service.lines()
}

fn access_lines<'a>(lines: &'a [Value], request_id: &str) -> Vec<&'a Value> {
    lines
        .iter()
        .filter(|l| l["message"] == "request completed" && l["span"]["request_id"] == request_id)
        .collect()
}

#[tokio::test]
async fn every_request_gets_exactly_one_access_line_with_its_fields() {
    let service = Service::start(&[("STARSONGS__LOG__LEVEL", "debug")]);
    let token = service.editor_token("logger").await;
    let user_id = 1;

    let response = client()
        .post(service.url("/v1/artists"))
        .bearer_auth(&token)
        .header("x-request-id", "obs-access-1")
        .header("user-agent", "observability-test/1.0")
        .json(&json!({"name": "Logged"}))
        .send()
        .await
        .unwrap();
    let missing = client()
        .get(service.url("/v1/artists/77"))
        .bearer_auth(&token)
        .header("x-request-id", "obs-access-2")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);

    let lines = wait_for(&service, |lines| {
        access_lines(lines, "obs-access-2").len() == 1
    })
    .await;
    let created = access_lines(&lines, "obs-access-1");
    assert_eq!(created.len(), 1, "exactly one access line");
    let line = created[0];
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["http.status"], 201);
    assert!(line["latency_ms"].as_f64().unwrap() >= 0.0);
    let span = &line["span"];
    assert_eq!(span["http.method"], "POST");
    assert_eq!(span["http.route"], "/v1/artists");
    assert_eq!(span["client_ip"], "127.0.0.1");
    assert_eq!(span["principal"], format!("user:{user_id}"));
    assert_eq!(span["user_agent"], "observability-test/1.0");
    let not_found = access_lines(&lines, "obs-access-2");
    assert_eq!(not_found[0]["level"], "INFO", "4xx is info");
    assert_eq!(not_found[0]["span"]["http.route"], "/v1/artists/{id}");
    // Lines from the storage layer carry the request's id too.
    let storage = lines.iter().any(|l| {
        l["target"].as_str().is_some_and(|t| t.starts_with("sqlx"))
            && l["span"]["request_id"] == "obs-access-1"
    });
    assert!(storage, "no storage line carries the request id");
}

#[tokio::test]
async fn no_secret_reaches_any_log_line_even_at_trace() {
    let service = Service::start(&[("STARSONGS__LOG__LEVEL", "trace")]);
    let password = "correct horse battery staple";
    service.create_user("secretive", "admin", password);
    let http = client();

    let pair: Value = http
        .post(service.url("/v1/auth/login"))
        .header("x-request-id", "secret-1")
        .json(&json!({"username": "secretive", "password": password}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = pair["access_token"].as_str().unwrap().to_owned();
    let refresh = pair["refresh_token"].as_str().unwrap().to_owned();
    let key: Value = http
        .post(service.url("/v1/admin/api-keys"))
        .header("x-request-id", "secret-2")
        .bearer_auth(&access)
        .json(&json!({"name": "logged key", "role": "viewer"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let api_key = key["key"].as_str().unwrap().to_owned();
    let with_key = http
        .get(service.url("/v1/songs"))
        .header("x-request-id", "secret-3")
        .header("x-api-key", &api_key)
        .send()
        .await
        .unwrap();
    let refreshed = http
        .post(service.url("/v1/auth/refresh"))
        .header("x-request-id", "secret-4")
        .json(&json!({"refresh_token": refresh}))
        .send()
        .await
        .unwrap();
    let wrong = http
        .post(service.url("/v1/auth/login"))
        .header("x-request-id", "secret-5")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "username=secretive&password={}x",
            password.replace(' ', "+")
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(with_key.status(), StatusCode::OK);
    assert_eq!(refreshed.status(), StatusCode::OK);
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    // Every request's own access line first: an empty or unfinished log proves nothing.
    let ids = ["secret-1", "secret-2", "secret-3", "secret-4", "secret-5"];
    let lines = wait_for(&service, |lines| {
        ids.iter().all(|id| access_lines(lines, id).len() == 1)
    })
    .await;
    for id in ids {
        assert_eq!(access_lines(&lines, id).len(), 1, "no access line for {id}");
    }

    let logs = service.raw_logs();
    assert!(
        logs.lines()
            .any(|l| l.contains(r#""level":"TRACE""#) || l.contains(r#""level":"DEBUG""#)),
        "trace logging is on"
    );
    let access_signature = access.rsplit('.').next().unwrap();
    for (name, secret) in [
        ("password", password),
        ("password (form-encoded)", "correct+horse+battery+staple"),
        ("access token", access.as_str()),
        ("access token signature", access_signature),
        ("refresh token", refresh.as_str()),
        ("API key", api_key.as_str()),
        ("API key body", &api_key[4..]),
    ] {
        assert!(!logs.contains(secret), "the {name} appears in the logs");
    }
}

/// Parsed samples: `name{labels}` → value.
fn samples(exposition: &str) -> HashMap<String, f64> {
    exposition
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap();
            (series.to_owned(), value.parse::<f64>().unwrap())
        })
        .collect()
}

fn sample(all: &HashMap<String, f64>, series: &str) -> f64 {
    all.get(series).copied().unwrap_or(0.0)
}

#[tokio::test]
async fn metrics_are_on_the_admin_port_only_and_count_what_happened() {
    let service = Service::start(&[]);
    let http = client();
    let songs_401 = r#"http_requests_total{method="GET",route="/v1/songs/{id}",status="401"}"#;
    let unmatched = r#"http_requests_total{method="GET",route="unmatched",status="404"}"#;
    let before = samples(&service.metrics().await);

    for id in 1..=7 {
        http.get(service.url(&format!("/v1/songs/{id}")))
            .send()
            .await
            .unwrap();
    }
    for junk in ["/a", "/b/c", "/wp-admin.php", "/.env", "/x/y/z"] {
        http.get(service.url(junk)).send().await.unwrap();
    }
    http.post(service.url("/v1/auth/login"))
        .json(&json!({"username": "nobody", "password": "wrong password"}))
        .send()
        .await
        .unwrap();
    let public = http.get(service.url("/metrics")).send().await.unwrap();
    let text = service.metrics().await;
    let after = samples(&text);

    assert_eq!(
        public.status(),
        StatusCode::NOT_FOUND,
        "metrics on the public port"
    );
    assert_eq!(sample(&after, songs_401) - sample(&before, songs_401), 7.0);
    // Five junk paths and /metrics on the public port: one label value for all of them.
    assert_eq!(sample(&after, unmatched) - sample(&before, unmatched), 6.0);
    assert!(!text.contains("wp-admin"), "a raw path became a label");
    assert_eq!(
        sample(&after, r#"auth_attempts_total{outcome="login_failure"}"#),
        1.0
    );
    for (name, kind) in [
        ("http_requests_total", "counter"),
        ("http_request_duration_seconds", "histogram"),
        ("http_requests_in_flight", "gauge"),
        ("db_pool_connections", "gauge"),
        ("db_pool_max_connections", "gauge"),
        ("db_query_duration_seconds", "histogram"),
        ("auth_attempts_total", "counter"),
        ("starsongs_build_info", "gauge"),
        ("process_resident_memory_bytes", "gauge"),
        ("process_cpu_seconds_total", "counter"),
        ("process_open_fds", "gauge"),
        ("process_start_time_seconds", "gauge"),
    ] {
        assert!(
            text.contains(&format!("# TYPE {name} {kind}")),
            "{name} {kind} missing"
        );
    }
    assert!(text.contains(r#"db_pool_connections{state="idle"}"#));
    assert!(text.contains(r#"db_pool_connections{state="in_use"}"#));
    assert!(text.contains(
        r#"db_query_duration_seconds_bucket{operation="find_user_by_username",le="0.0005"}"#
    ));
    assert!(text.contains(&format!(
        r#"starsongs_build_info{{version="{}",git_sha="#,
        env!("CARGO_PKG_VERSION")
    )));
    assert!(text.contains(
        r#"http_request_duration_seconds_bucket{method="GET",route="/v1/songs/{id}",status="401",le="5"}"#
    ));
    promtool_check(&text);
}

/// `promtool check metrics` on the exposition. Skips (printed) without promtool unless
/// `STARSONGS_TEST_PROMTOOL=1` (set by `.ci/run`, which installs it).
fn promtool_check(exposition: &str) {
    use std::io::Write;
    let spawned = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(error) if std::env::var_os("STARSONGS_TEST_PROMTOOL").is_some() => {
            panic!("STARSONGS_TEST_PROMTOOL is set but promtool cannot run: {error}")
        }
        Err(_) => {
            println!(
                "SKIPPED promtool check: promtool is not installed (Debian package prometheus)"
            );
            return;
        }
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(exposition.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn readiness_follows_the_database_and_liveness_never_asks_it() {
    // Each use opens a fresh connection, which fails once the file is unreadable.
    let service = Service::start(&[("STARSONGS__DATABASE__MAX_LIFETIME_SECS", "0")]);
    let http = client();
    let ready = service.url("/health/ready");
    assert_eq!(
        http.get(&ready).send().await.unwrap().status(),
        StatusCode::OK
    );

    let broken = crate::harness::BrokenSqliteFile::break_file(&service.database_url());
    let down = crate::harness::poll_until(&http, &ready, StatusCode::SERVICE_UNAVAILABLE).await;
    let live = http.get(service.url("/health/live")).send().await.unwrap();
    broken.restore();
    let back = crate::harness::poll_until(&http, &ready, StatusCode::OK).await;

    assert_eq!(down.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = down.json().await.unwrap();
    assert_eq!(body["status"], "not_ready");
    assert_eq!(body["checks"]["database"]["status"], "down");
    assert_eq!(
        live.status(),
        StatusCode::OK,
        "liveness does not touch the database"
    );
    assert_eq!(back.status(), StatusCode::OK);
}

/// A stand-in for Sentry's ingest: records every request body sent to it.
async fn ingest() -> (String, Arc<Mutex<Vec<Vec<u8>>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let received = Arc::new(Mutex::new(Vec::new()));
    let sink = received.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let sink = sink.clone();
            tokio::spawn(async move {
                let mut data = Vec::new();
                let mut buffer = [0u8; 65536];
                loop {
                    let Ok(n) = stream.read(&mut buffer).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    data.extend_from_slice(&buffer[..n]);
                    let text = String::from_utf8_lossy(&data);
                    let Some(head_end) = text.find("\r\n\r\n") else {
                        continue;
                    };
                    let length = text[..head_end]
                        .lines()
                        .find_map(|l| {
                            let (name, value) = l.split_once(':')?;
                            name.eq_ignore_ascii_case("content-length")
                                .then(|| value.trim().parse::<usize>().ok())?
                        })
                        .unwrap_or(0);
                    if data.len() >= head_end + 4 + length {
                        sink.lock().unwrap().push(data[head_end + 4..].to_vec());
                        let _ = stream
                            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
                            .await;
                        return;
                    }
                }
            });
        }
    });
    (format!("http://public@{address}/1"), received)
}

/// The first event payload received that satisfies `wanted` (envelopes are a header line,
/// then item-header / payload line pairs).
async fn wait_for_event(
    received: &Arc<Mutex<Vec<Vec<u8>>>>,
    wanted: impl Fn(&Value) -> bool,
) -> Option<Value> {
    for _ in 0..100 {
        let found = received.lock().unwrap().iter().find_map(|envelope| {
            let text = String::from_utf8_lossy(envelope).into_owned();
            let lines: Vec<&str> = text.lines().collect();
            lines.windows(2).find_map(|pair| {
                let header: Value = serde_json::from_str(pair[0]).ok()?;
                let payload: Value = serde_json::from_str(pair[1]).ok()?;
                (header["type"] == "event" && wanted(&payload)).then_some(payload)
            })
        });
        if found.is_some() {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

#[tokio::test]
async fn a_5xx_answer_becomes_an_event_without_personal_data() {
    let (dsn, received) = ingest().await;
    let service = Service::start(&[
        ("STARSONGS__SENTRY__DSN", dsn.as_str()),
        ("STARSONGS__SERVER__REQUEST_TIMEOUT_SECS", "1"),
        ("STARSONGS__DATABASE__SQLITE_BUSY_TIMEOUT_MS", "10000"),
    ]);
    let token = service.editor_token("writer").await;
    let http = client();
    let mut locker = <sqlx::SqliteConnection as sqlx::Connection>::connect(&service.database_url())
        .await
        .unwrap();
    sqlx::query("begin immediate")
        .execute(&mut locker)
        .await
        .unwrap();

    // The write waits on the other process's lock past the request timeout: 504.
    let timed_out = http
        .post(service.url("/v1/artists?note=private-search-term"))
        .bearer_auth(&token)
        .header("x-request-id", "timeout-request-1")
        .header(
            "traceparent",
            "00-5a7e0000000000000000000000000504-00f067aa0ba902b7-01",
        )
        .header("user-agent", "personal-agent/1.0")
        .header("forwarded", "for=198.51.100.77")
        .json(&json!({"name": "Too Late"}))
        .send()
        .await
        .unwrap();
    sqlx::query("rollback").execute(&mut locker).await.unwrap();
    let event = wait_for_event(&received, |e| {
        e["tags"]["request_id"] == "timeout-request-1"
    })
    .await;

    assert_eq!(timed_out.status(), StatusCode::GATEWAY_TIMEOUT);
    let event = event.expect("the ingest received an event for the 504");
    assert_eq!(event["tags"]["route"], "/v1/artists", "{event}");
    assert_eq!(event["tags"]["method"], "POST");
    assert_eq!(event["tags"]["http.status"], "504");
    assert_eq!(
        event["tags"]["trace_id"], "5a7e0000000000000000000000000504",
        "errors join their trace: {event}"
    );
    let text = event.to_string();
    for personal in [
        "personal-agent",
        "private-search-term",
        "198.51.100.77",
        "Bearer",
    ] {
        assert!(!text.contains(personal), "{personal} was sent: {event}");
    }
}

#[tokio::test]
async fn a_panic_becomes_a_500_problem_and_a_tagged_sentry_event_and_the_service_goes_on() {
    let (dsn, received) = ingest().await;
    let service = Service::start(&[
        ("STARSONGS__SENTRY__DSN", dsn.as_str()),
        ("STARSONGS__SENTRY__ENVIRONMENT", "ci"),
        ("STARSONGS__ADMIN__DEBUG_ENDPOINTS", "true"),
    ]);
    let http = client();

    let panicked = http
        .post(format!("{}/debug/panic", service.admin))
        .header("x-request-id", "panic-request-1")
        .send()
        .await
        .unwrap();
    let status = panicked.status();
    let content_type = panicked.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = panicked.json().await.unwrap();
    let still_serving = http.get(service.url("/health/live")).send().await.unwrap();
    let event = wait_for_event(&received, |_| true).await;

    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(content_type, "application/problem+json");
    assert_eq!(body["request_id"], "panic-request-1");
    assert!(
        !body.to_string().contains("deliberate panic"),
        "internals leaked: {body}"
    );
    assert_eq!(still_serving.status(), StatusCode::OK);
    let event = event.expect("the ingest received an event");
    let tags = &event["tags"];
    assert_eq!(tags["request_id"], "panic-request-1", "{event}");
    assert_eq!(tags["route"], "/debug/panic");
    assert_eq!(tags["method"], "POST");
    assert_eq!(event["environment"], "ci");
    let release = event["release"].as_str().unwrap();
    assert!(
        release.starts_with(&format!("starsongs@{}+", env!("CARGO_PKG_VERSION"))),
        "{release}"
    );
    assert!(
        event["user"]["ip_address"].is_null(),
        "personal data sent: {event}"
    );
    let exception = event["exception"]["values"][0]["value"]
        .as_str()
        .unwrap_or_default();
    assert!(exception.contains("deliberate panic"), "{event}");
}

/// Every envelope item received so far, in arrival order, as (type, payload). The SDK
/// sends envelopes one at a time, each after the previous one was answered, so arrival
/// order is sending order.
fn envelope_items(received: &Arc<Mutex<Vec<Vec<u8>>>>) -> Vec<(String, Value)> {
    received
        .lock()
        .unwrap()
        .iter()
        .flat_map(|envelope| {
            let text = String::from_utf8_lossy(envelope).into_owned();
            let lines: Vec<String> = text.lines().map(str::to_owned).collect();
            lines
                .windows(2)
                .filter_map(|pair| {
                    let header: Value = serde_json::from_str(&pair[0]).ok()?;
                    let payload: Value = serde_json::from_str(&pair[1]).ok()?;
                    let kind = header["type"].as_str()?.to_owned();
                    Some((kind, payload))
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Polls until the items received satisfy `done` (10 s at most); returns them.
async fn wait_for_items(
    received: &Arc<Mutex<Vec<Vec<u8>>>>,
    done: impl Fn(&[(String, Value)]) -> bool,
) -> Vec<(String, Value)> {
    for _ in 0..100 {
        let items = envelope_items(received);
        if done(&items) {
            return items;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    envelope_items(received)
}

/// A client's trace header asking to be sampled (`-1`) or not (`-0`).
const CLIENT_TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

fn client_trace(sampled: char) -> String {
    format!("{CLIENT_TRACE_ID}-00f067aa0ba902b7-{sampled}")
}

#[tokio::test]
async fn a_client_trace_header_cannot_make_the_service_send_transactions_at_rate_0() {
    let (dsn, received) = ingest().await;
    let service = Service::start(&[
        ("STARSONGS__SENTRY__DSN", dsn.as_str()),
        ("STARSONGS__SENTRY__TRACES_SAMPLE_RATE", "0"),
        ("STARSONGS__ADMIN__DEBUG_ENDPOINTS", "true"),
        ("STARSONGS__AUTH__PUBLIC_READ", "true"),
    ]);
    let http = client();

    let traced = http
        .get(service.url("/v1/artists"))
        .header("sentry-trace", client_trace('1'))
        .header(
            "baggage",
            format!("sentry-trace_id={CLIENT_TRACE_ID},sentry-sampled=true,sentry-sample_rate=1"),
        )
        .send()
        .await
        .unwrap();
    // A marker sent after the traced request: an event, which the SDK sends after
    // anything queued before it.
    let marker = http
        .post(format!("{}/debug/panic", service.admin))
        .header("x-request-id", "marker-after-trace")
        .send()
        .await
        .unwrap();
    let items = wait_for_items(&received, |items| {
        items
            .iter()
            .any(|(kind, e)| kind == "event" && e["tags"]["request_id"] == "marker-after-trace")
    })
    .await;

    assert_eq!(traced.status(), StatusCode::OK);
    assert_eq!(marker.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let kinds: Vec<&str> = items.iter().map(|(kind, _)| kind.as_str()).collect();
    assert!(
        kinds.contains(&"event"),
        "the marker event arrived: {kinds:?}"
    );
    assert!(
        !kinds.contains(&"transaction"),
        "a transaction was sent at traces_sample_rate 0: {items:?}"
    );
}

#[tokio::test]
async fn transactions_at_rate_1_ignore_the_client_decision_and_carry_no_personal_data() {
    let (dsn, received) = ingest().await;
    let service = Service::start(&[
        ("STARSONGS__SENTRY__DSN", dsn.as_str()),
        ("STARSONGS__SENTRY__TRACES_SAMPLE_RATE", "1.0"),
    ]);
    let token = service.editor_token("traced").await;
    let http = client();

    // A signed-in search with everything personal a request can carry, asking (`-0`)
    // not to be traced; then an unknown API key on a path the client made up.
    let searched = http
        .get(service.url("/v1/artists?q=private-search-term&access_token=url-token-secret#frag"))
        .bearer_auth(&token)
        .header("sentry-trace", client_trace('0'))
        .header("user-agent", "personal-agent/1.0")
        .header("x-forwarded-for", "198.51.100.77")
        .header("forwarded", "for=198.51.100.78")
        .header("x-real-ip", "198.51.100.79")
        .header("cookie", "session=cookie-secret")
        .header("x-request-id", "traced-search-1")
        .send()
        .await
        .unwrap();
    let keyed = http
        .get(service.url("/v1/key-ssk_madeUpSecretInPath?api_key=ssk_query-secret"))
        .header("x-api-key", "ssk_header-secret-key")
        .header("user-agent", "personal-agent/1.0")
        .header("x-request-id", "traced-key-1")
        .send()
        .await
        .unwrap();
    let traced = |items: &[(String, Value)], id: &str| {
        items
            .iter()
            .any(|(kind, t)| kind == "transaction" && t["tags"]["request_id"] == id)
    };
    let items = wait_for_items(&received, |items| {
        traced(items, "traced-search-1") && traced(items, "traced-key-1")
    })
    .await;

    assert_eq!(searched.status(), StatusCode::OK);
    assert!(keyed.status().is_client_error(), "{}", keyed.status());
    let transactions: Vec<&Value> = items
        .iter()
        .filter(|(kind, _)| kind == "transaction")
        .map(|(_, payload)| payload)
        .collect();
    let search = transactions
        .iter()
        .find(|t| t["tags"]["request_id"] == "traced-search-1")
        .expect("the search was traced although the client sent -0");
    assert_eq!(search["transaction"], "GET /v1/artists", "{search}");
    assert_eq!(search["tags"]["route"], "/v1/artists");
    let url = search["request"]["url"].as_str().unwrap_or_default();
    assert!(url.ends_with("/v1/artists"), "{url}");
    let made_up = transactions
        .iter()
        .find(|t| t["tags"]["request_id"] == "traced-key-1")
        .expect("the unknown path was traced");
    assert_eq!(made_up["transaction"], "GET unmatched", "{made_up}");
    for transaction in transactions {
        let text = transaction.to_string();
        for personal in [
            "private-search-term",
            "url-token-secret",
            "access_token",
            "ssk_",
            "personal-agent",
            "198.51.100.",
            "cookie-secret",
            "Bearer",
            token.as_str(),
            "user-agent",
            "x-forwarded-for",
            "forwarded",
        ] {
            assert!(
                !text.contains(personal),
                "{personal} was sent: {transaction}"
            );
        }
        assert!(transaction["user"].is_null(), "{transaction}");
    }
}

#[tokio::test]
async fn slow_statements_are_logged_at_warn_without_their_values() {
    let service = Service::start(&[("STARSONGS__DATABASE__SLOW_QUERY_MS", "0")]);
    let token = service.editor_token("writer").await;
    let http = client();

    let created = http
        .post(service.url("/v1/artists"))
        .bearer_auth(&token)
        .header("x-request-id", "slow-1")
        .json(&json!({"name": "Bound-Value-7Q"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);

    let lines = wait_for(&service, |lines| !access_lines(lines, "slow-1").is_empty()).await;
    let slow: Vec<&Value> = lines
        .iter()
        .filter(|l| {
            l["level"] == "WARN"
                && l["target"].as_str().is_some_and(|t| t.starts_with("sqlx"))
                && l["span"]["request_id"] == "slow-1"
        })
        .collect();
    assert!(
        slow.iter()
            .any(|l| l.to_string().contains("insert into artist")),
        "{slow:?}"
    );
    let all = service.raw_logs();
    assert!(
        !all.contains("Bound-Value-7Q"),
        "a bound value reached the logs"
    );
    assert!(
        !all.contains("bound-value-7q"),
        "a bound value reached the logs"
    );

    let info: Value = http
        .get(service.url("/"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));
    assert!(!info["git_sha"].as_str().unwrap().is_empty());
}

#[test]
fn a_development_run_logging_to_a_file_carries_no_escape_codes() {
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("dev.log");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("dev.db").display());
    let mut child = Command::new(env!("CARGO_BIN_EXE_starsongs"))
        .env_remove("RUST_LOG")
        .env_remove("NO_COLOR")
        .env_remove("STARSONGS__LOG__FORMAT")
        .env("STARSONGS_ENV", "development")
        .env("DATABASE_URL", url)
        .env("STARSONGS__SERVER__PORT", "0")
        .env("STARSONGS__ADMIN__PORT", "0")
        .env("STARSONGS__AUTH__ARGON2_MEMORY_KIB", "1024")
        .env("STARSONGS__AUTH__ARGON2_ITERATIONS", "1")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();

    // The pretty (development) format, written to a file: wait for the listener's line.
    let mut logs = String::new();
    for _ in 0..1200 {
        logs = std::fs::read_to_string(&log_path).unwrap();
        if logs.contains("listening") {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    let logs_after_stop = std::fs::read_to_string(&log_path).unwrap();

    assert!(logs.contains("listening"), "no listener line: {logs}");
    assert!(
        logs_after_stop.contains("INFO") && logs_after_stop.contains("shutdown complete"),
        "not the pretty format: {logs_after_stop}"
    );
    assert!(
        !logs_after_stop.contains('\u{1b}'),
        "escape codes in a log file: {logs_after_stop:?}"
    );
}

/// The `log_lines_dropped_total` sample of an exposition (absent: `None`).
fn dropped_lines(exposition: &str) -> Option<f64> {
    samples(exposition).get("log_lines_dropped_total").copied()
}

#[tokio::test]
async fn a_log_reader_that_stops_reading_costs_log_lines_never_requests() {
    // A service whose stderr is a pipe nobody reads after the first lines: once the pipe
    // and the writer's queue are full, lines must be dropped and counted, and requests
    // must go on being answered (a synchronous writer would block them all).
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("stall.db").display()
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_starsongs"))
        .env_remove("RUST_LOG")
        .env("STARSONGS_ENV", "test")
        .env("DATABASE_URL", url)
        .env("STARSONGS__LOG__LEVEL", "trace")
        .env("STARSONGS__AUTH__JWT_SECRET", crate::harness::JWT_SECRET)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let (address, admin) = {
        let mut line = String::new();
        loop {
            line.clear();
            assert!(
                stderr.read_line(&mut line).unwrap() > 0,
                "no address logged"
            );
            if let Ok(value) = serde_json::from_str::<Value>(&line)
                && let (Some(a), Some(b)) =
                    (value["address"].as_str(), value["admin_address"].as_str())
            {
                break (a.to_owned(), b.to_owned());
            }
        }
    };
    let http = client();
    let metrics = |http: Client| {
        let url = format!("http://{admin}/metrics");
        async move { http.get(url).send().await.unwrap().text().await.unwrap() }
    };
    let at_start = dropped_lines(&metrics(http.clone()).await);

    // Bounded: every request logs several lines at trace; stop once some were dropped.
    let mut dropped = 0.0;
    let mut answered = 0;
    for round in 0..100 {
        for i in 0..200 {
            let response = http
                .get(format!(
                    "http://{address}/v1/artists/{}",
                    round * 200 + i + 1
                ))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
            answered += 1;
        }
        dropped = dropped_lines(&metrics(http.clone()).await).unwrap_or(0.0);
        if dropped > 0.0 {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    drop(stderr);

    assert_eq!(
        at_start,
        Some(0.0),
        "the counter is exported from the start"
    );
    assert!(
        dropped > 0.0,
        "no line counted as dropped after {answered} requests"
    );
}
