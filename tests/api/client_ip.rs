//! The client address behind a trusted proxy (API.md "Cross-cutting headers"): read from
//! the one header `server.client_ip_header` names, walked from the right past the trusted
//! proxies, every other forwarding header ignored. What the address decides is observed
//! from outside: the rate-limit budget, the exemption and the access log's `client_ip`
//! (on the real binary, whose log is its own). Also [`Binary`], the service as its own
//! process on the suite's backend, for the edge tests that read its log or metrics.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::harness::{TestApp, TestBackend, backend, client};
use crate::server_db::{MSSQL_URL_VAR, POSTGRES_URL_VAR, TestDatabase, server_url};

/// A proxy on loopback is trusted; burst 3 on `/v1`.
const BEHIND_PROXY: [(&str, &str); 4] = [
    ("STARSONGS__SERVER__TRUSTED_PROXIES", "127.0.0.1/32"),
    ("STARSONGS__AUTH__PUBLIC_READ", "true"),
    ("STARSONGS__RATE_LIMIT__BURST", "3"),
    ("STARSONGS__RATE_LIMIT__REQUESTS_PER_MINUTE", "1"),
];

/// `starsongs serve` in its own process (its own log and metrics registry) on a fresh
/// database of the suite's backend, with extra settings; killed on drop.
pub struct Binary {
    child: std::process::Child,
    /// `http://host:port` of the API listener.
    pub base: String,
    /// `http://host:port` of the admin listener.
    pub admin: String,
    logs: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    _dir: TempDir,
    _database: Option<TestDatabase>,
}

impl Binary {
    /// Starts the binary with `overrides` (as `STARSONGS__...` variables).
    pub async fn start(overrides: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let database = match backend() {
            TestBackend::Sqlite => None,
            TestBackend::Postgres => {
                Some(TestDatabase::create(&server_url(POSTGRES_URL_VAR, "postgres").unwrap()).await)
            }
            TestBackend::Mssql => {
                Some(TestDatabase::create_mssql(&server_url(MSSQL_URL_VAR, "mssql").unwrap()).await)
            }
        };
        let url = database.as_ref().map_or_else(
            || format!("sqlite://{}?mode=rwc", dir.path().join("edge.db").display()),
            |db| db.url.clone(),
        );
        let mut command = crate::harness::service_command(&url);
        for (key, value) in overrides {
            command.env(key, value);
        }
        let crate::harness::ServiceProcess {
            child,
            address,
            admin,
            lines,
        } = crate::harness::ServiceProcess::spawn(&mut command);
        Self {
            child,
            base: format!("http://{address}"),
            admin: format!("http://{admin}"),
            logs: lines,
            _dir: dir,
            _database: database,
        }
    }

    /// The URL of `path` on the API listener.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The JSON log lines so far.
    pub fn logs(&self) -> Vec<Value> {
        self.logs
            .lock()
            .unwrap()
            .iter()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    /// Waits (10 s at most) until the log satisfies `done`; returns the lines.
    pub async fn wait_for_logs(&self, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        for _ in 0..200 {
            let lines = self.logs();
            if done(&lines) {
                return lines;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.logs()
    }

    /// The value of the series `series` (exactly as exported, labels included) on
    /// `/metrics`, 0 when absent.
    pub async fn metric(&self, series: &str) -> f64 {
        let exposition = client()
            .get(format!("{}/metrics", self.admin))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        exposition
            .lines()
            .filter(|line| !line.starts_with('#'))
            .filter_map(|line| line.rsplit_once(' '))
            .find(|(name, _)| *name == series)
            .map_or(0.0, |(_, value)| value.parse().unwrap())
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The access line of the request with `request_id`, if logged yet.
pub fn access_line<'a>(lines: &'a [Value], request_id: &str) -> Option<&'a Value> {
    lines
        .iter()
        .find(|l| l["message"] == "request completed" && l["span"]["request_id"] == request_id)
}

/// `n` catalog reads, each with the headers `headers(i)` gives; their statuses.
async fn reads(
    app: &TestApp,
    n: usize,
    headers: impl Fn(usize) -> Vec<(&'static str, String)>,
) -> Vec<StatusCode> {
    let mut statuses = Vec::new();
    for i in 0..n {
        let mut request = app.anonymous.get(app.url("/v1/songs"));
        for (name, value) in headers(i) {
            request = request.header(name, value);
        }
        statuses.push(request.send().await.unwrap().status());
    }
    statuses
}

const THREE_THEN_REFUSED: [StatusCode; 4] = [
    StatusCode::OK,
    StatusCode::OK,
    StatusCode::OK,
    StatusCode::TOO_MANY_REQUESTS,
];

#[tokio::test]
async fn a_forged_forwarded_header_does_not_reset_the_auth_budget() {
    // The production auth budget (the test profile's is huge): a burst of 10.
    let app = TestApp::spawn_with(&[
        ("STARSONGS__SERVER__TRUSTED_PROXIES", "127.0.0.1/32"),
        ("STARSONGS__RATE_LIMIT__AUTH_BURST", "10"),
        ("STARSONGS__RATE_LIMIT__AUTH_REQUESTS_PER_MINUTE", "20"),
    ])
    .await;

    let mut statuses = Vec::new();
    for i in 0..11 {
        let response = app
            .anonymous
            .post(app.url("/v1/auth/login"))
            .header("forwarded", format!("for=198.51.100.{i}"))
            .json(&json!({"username": format!("nobody-{i}"), "password": "a wrong guess"}))
            .send()
            .await
            .unwrap();
        statuses.push(response.status());
    }

    assert_eq!(
        statuses[..10],
        [StatusCode::UNAUTHORIZED; 10],
        "{statuses:?}"
    );
    assert_eq!(statuses[10], StatusCode::TOO_MANY_REQUESTS, "{statuses:?}");
}

#[tokio::test]
async fn a_forged_forwarded_header_cannot_claim_an_exempt_address() {
    let mut overrides = BEHIND_PROXY.to_vec();
    overrides.push(("STARSONGS__RATE_LIMIT__EXEMPT_CLIENTS", "203.0.113.10/32"));
    let app = TestApp::spawn_with(&overrides).await;

    let forged = reads(&app, 4, |_| {
        vec![
            ("forwarded", "for=203.0.113.10".to_owned()),
            ("x-real-ip", "203.0.113.10".to_owned()),
        ]
    })
    .await;
    // The proxy's own X-Forwarded-For does name the exempt frontend: that one counts.
    let proxied = reads(&app, 4, |_| {
        vec![("x-forwarded-for", "203.0.113.10".to_owned())]
    })
    .await;

    assert_eq!(forged, THREE_THEN_REFUSED);
    assert_eq!(proxied, [StatusCode::OK; 4]);
}

#[tokio::test]
async fn x_forwarded_for_is_walked_from_the_right_so_the_client_cannot_choose() {
    let mut overrides = BEHIND_PROXY.to_vec();
    overrides[0] = (
        "STARSONGS__SERVER__TRUSTED_PROXIES",
        "127.0.0.1/32, 10.0.0.0/8",
    );
    let app = TestApp::spawn_with(&overrides).await;

    // Each request's client-written part differs; the two proxies appended the same
    // client (198.51.100.7) and the inner proxy's own address.
    let prepended = reads(&app, 4, |i| {
        vec![(
            "x-forwarded-for",
            format!("192.0.2.{i}, 198.51.100.7, 10.1.2.3"),
        )]
    })
    .await;
    let appended_lines = reads(&app, 1, |_| {
        vec![
            ("x-forwarded-for", "192.0.2.99".to_owned()),
            ("x-forwarded-for", "198.51.100.7".to_owned()),
        ]
    })
    .await;
    let another_client = reads(&app, 1, |_| {
        vec![("x-forwarded-for", "192.0.2.1, 198.51.100.8".to_owned())]
    })
    .await;

    assert_eq!(prepended, THREE_THEN_REFUSED);
    assert_eq!(
        appended_lines,
        [StatusCode::TOO_MANY_REQUESTS],
        "a second header line is part of the same chain"
    );
    assert_eq!(another_client, [StatusCode::OK]);
}

#[tokio::test]
async fn with_client_ip_header_forwarded_only_forwarded_is_read() {
    let mut overrides = BEHIND_PROXY.to_vec();
    overrides.push(("STARSONGS__SERVER__CLIENT_IP_HEADER", "forwarded"));
    let app = TestApp::spawn_with(&overrides).await;

    // Six different clients by `Forwarded`, one by X-Forwarded-For: six budgets.
    let by_forwarded = reads(&app, 6, |i| {
        vec![
            (
                "forwarded",
                format!("for=192.0.2.1, for=\"198.51.100.{i}\""),
            ),
            ("x-forwarded-for", "203.0.113.50".to_owned()),
        ]
    })
    .await;
    // One client by `Forwarded`, six by X-Forwarded-For and X-Real-IP: one budget.
    let by_others = reads(&app, 4, |i| {
        vec![
            (
                "forwarded",
                "for=\"[2001:db8::1]:4711\";proto=https".to_owned(),
            ),
            ("x-forwarded-for", format!("203.0.113.{i}")),
            ("x-real-ip", format!("203.0.113.{i}")),
        ]
    })
    .await;

    assert_eq!(by_forwarded, [StatusCode::OK; 6]);
    assert_eq!(by_others, THREE_THEN_REFUSED);
}

#[tokio::test]
async fn the_access_log_names_the_address_the_trusted_proxy_saw() {
    let binary = Binary::start(&[("STARSONGS__SERVER__TRUSTED_PROXIES", "127.0.0.1/32")]).await;
    let get = |id: &'static str, headers: &[(&'static str, &'static str)]| {
        let mut request = client()
            .get(binary.url("/v1/songs"))
            .header("x-request-id", id);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send()
    };

    get(
        "client-ip-1",
        &[
            ("forwarded", "for=198.51.100.66"),
            ("x-real-ip", "198.51.100.77"),
            ("x-forwarded-for", "6.6.6.6, 203.0.113.7"),
        ],
    )
    .await
    .unwrap();
    get("client-ip-2", &[("forwarded", "for=198.51.100.66")])
        .await
        .unwrap();
    let lines = binary
        .wait_for_logs(|lines| {
            access_line(lines, "client-ip-1").is_some()
                && access_line(lines, "client-ip-2").is_some()
        })
        .await;

    let proxied = access_line(&lines, "client-ip-1").unwrap();
    let forged = access_line(&lines, "client-ip-2").unwrap();
    assert_eq!(proxied["span"]["client_ip"], "203.0.113.7");
    assert_eq!(forged["span"]["client_ip"], "127.0.0.1");
}
