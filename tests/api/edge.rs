//! Everything a request meets before a handler: security headers, rate limits (in memory
//! and in a real Redis), client IPs behind proxies, header size, load shedding, and TLS.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use starsongs::domain::user::Role;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::client_ip::{Binary, access_line};
use crate::harness::{TestApp, client, problem};

fn header(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
}

fn limit_headers(response: &reqwest::Response) -> (u64, u64) {
    let number = |name: &str| header(response, name).unwrap().parse::<u64>().unwrap();
    for (name, twin) in [
        ("ratelimit-limit", "x-ratelimit-limit"),
        ("ratelimit-remaining", "x-ratelimit-remaining"),
        ("ratelimit-reset", "x-ratelimit-reset"),
    ] {
        assert_eq!(number(name), number(twin), "{name}");
    }
    (number("ratelimit-limit"), number("ratelimit-remaining"))
}

const SMALL_LIMITS: [(&str, &str); 4] = [
    ("STARSONGS__RATE_LIMIT__BURST", "3"),
    ("STARSONGS__RATE_LIMIT__REQUESTS_PER_MINUTE", "60"),
    ("STARSONGS__RATE_LIMIT__AUTH_BURST", "2"),
    ("STARSONGS__RATE_LIMIT__AUTH_REQUESTS_PER_MINUTE", "60"),
];

#[tokio::test]
async fn security_headers_are_on_every_response_and_docs_get_their_own_csp() {
    let app = TestApp::spawn().await;

    let ok = app.get("/v1/songs").await;
    let not_found = app.get("/v1/songs/999").await;
    let unauthorized = app
        .anonymous
        .get(app.url("/v1/songs"))
        .send()
        .await
        .unwrap();
    let invalid = app.editor().post("/v1/artists", &json!({"name": ""})).await;
    let probe = app.get("/health/live").await;
    let docs = app.get("/docs/").await;

    for response in [&ok, &not_found, &unauthorized, &invalid, &probe] {
        assert_eq!(
            header(response, "x-content-type-options").as_deref(),
            Some("nosniff")
        );
        assert_eq!(header(response, "x-frame-options").as_deref(), Some("DENY"));
        assert_eq!(
            header(response, "referrer-policy").as_deref(),
            Some("no-referrer")
        );
        let csp = header(response, "content-security-policy").unwrap();
        assert!(csp.starts_with("default-src 'none'"), "{csp}");
        assert!(!csp.contains("script-src"), "{csp}");
        assert!(
            header(response, "strict-transport-security").is_none(),
            "plain HTTP"
        );
    }
    let docs_csp = header(&docs, "content-security-policy").unwrap();
    assert!(
        docs_csp.contains("script-src 'self'") && !docs_csp.contains("unsafe-eval"),
        "{docs_csp}"
    );
    assert_eq!(header(&docs, "x-frame-options").as_deref(), Some("DENY"));
}

#[tokio::test]
async fn hsts_follows_a_trusted_proxys_https_and_ignores_anyone_elses() {
    let trusting =
        TestApp::spawn_with(&[("STARSONGS__SERVER__TRUSTED_PROXIES", "127.0.0.1/32")]).await;
    let distrusting = TestApp::spawn().await;
    let https = |app: &TestApp| {
        app.client
            .get(app.url("/v1/songs"))
            .header("x-forwarded-proto", "https")
            .send()
    };

    let trusted = https(&trusting).await.unwrap();
    let untrusted = https(&distrusting).await.unwrap();

    assert_eq!(
        header(&trusted, "strict-transport-security").as_deref(),
        Some("max-age=31536000; includeSubDomains")
    );
    assert!(header(&untrusted, "strict-transport-security").is_none());
}

#[tokio::test]
async fn the_budget_runs_out_with_429_and_comes_back_after_the_window() {
    let app = TestApp::spawn_with(&SMALL_LIMITS).await;

    let mut remaining = Vec::new();
    for _ in 0..3 {
        let response = app.get("/v1/songs").await;
        assert_eq!(response.status(), StatusCode::OK);
        let (limit, left) = limit_headers(&response);
        assert_eq!(limit, 3);
        remaining.push(left);
    }
    let refused = app.get("/v1/songs").await;
    assert_eq!(limit_headers(&refused), (3, 0));
    assert_eq!(header(&refused, "retry-after").as_deref(), Some("1"));
    problem(refused, StatusCode::TOO_MANY_REQUESTS).await;
    // Probes and docs are never limited.
    for path in ["/health/live", "/health/ready", "/openapi.json"] {
        let response = app.get(path).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert!(header(&response, "ratelimit-limit").is_none(), "{path}");
    }

    app.advance(Duration::from_millis(1100));

    assert_eq!(remaining, [2, 1, 0]);
    assert_eq!(app.get("/v1/songs").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn auth_routes_have_their_own_stricter_budget() {
    let app = TestApp::spawn_with(&SMALL_LIMITS).await;
    let login = || {
        app.anonymous
            .post(app.url("/v1/auth/login"))
            .json(&json!({"username": "nobody", "password": "whatever it is"}))
            .send()
    };

    let first = login().await.unwrap();
    let second = login().await.unwrap();
    let third = login().await.unwrap();

    assert_eq!(limit_headers(&first), (2, 1));
    assert_eq!(second.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(header(&third, "cache-control").as_deref(), Some("no-store"));
    problem(third, StatusCode::TOO_MANY_REQUESTS).await;
    assert_eq!(
        app.get("/v1/songs").await.status(),
        StatusCode::OK,
        "the API budget is separate"
    );
}

#[tokio::test]
async fn principals_have_their_own_budgets_and_anonymous_callers_share_their_ips() {
    let app = TestApp::spawn_with(&SMALL_LIMITS).await;
    let (_, other) = app.account("other", Role::Viewer).await;
    for _ in 0..3 {
        app.get("/v1/songs").await;
    }

    let same_user = app.get("/v1/songs").await;
    let other_user = app
        .client_for(&other)
        .get(app.url("/v1/songs"))
        .send()
        .await
        .unwrap();

    assert_eq!(same_user.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(other_user.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_spoofed_x_forwarded_for_does_not_buy_a_new_budget() {
    let untrusted = TestApp::spawn_with(&SMALL_LIMITS).await;
    let mut overrides = SMALL_LIMITS.to_vec();
    overrides.push(("STARSONGS__SERVER__TRUSTED_PROXIES", "127.0.0.1"));
    let behind_proxy = TestApp::spawn_with(&overrides).await;
    let anonymous_login = |app: &TestApp, forwarded_for: String| {
        app.anonymous
            .post(app.url("/v1/auth/login"))
            .header("x-forwarded-for", forwarded_for)
            .json(&json!({"username": "x-nobody", "password": "whatever it is"}))
            .send()
    };

    let mut spoofed = Vec::new();
    let mut proxied = Vec::new();
    for i in 0..4 {
        spoofed.push(
            anonymous_login(&untrusted, format!("198.51.100.{i}"))
                .await
                .unwrap()
                .status(),
        );
        proxied.push(
            anonymous_login(&behind_proxy, format!("198.51.100.{i}"))
                .await
                .unwrap()
                .status(),
        );
    }

    assert_eq!(
        spoofed[2..],
        [StatusCode::TOO_MANY_REQUESTS; 2],
        "{spoofed:?}"
    );
    assert!(
        proxied.iter().all(|s| *s == StatusCode::UNAUTHORIZED),
        "{proxied:?}"
    );
}

/// Behind a trusted proxy on loopback, a public catalog with a burst of 3 (slow refill);
/// plus `extra`.
async fn public_behind_proxy(extra: &[(&'static str, &'static str)]) -> TestApp {
    let mut overrides = vec![
        ("STARSONGS__SERVER__TRUSTED_PROXIES", "127.0.0.1/32"),
        ("STARSONGS__AUTH__PUBLIC_READ", "true"),
        ("STARSONGS__RATE_LIMIT__BURST", "3"),
        ("STARSONGS__RATE_LIMIT__REQUESTS_PER_MINUTE", "1"),
        ("STARSONGS__RATE_LIMIT__AUTH_BURST", "2"),
        ("STARSONGS__RATE_LIMIT__AUTH_REQUESTS_PER_MINUTE", "1"),
    ];
    overrides.extend_from_slice(extra);
    TestApp::spawn_with(&overrides).await
}

/// A catalog read from the client the proxy names in X-Forwarded-For.
async fn read_as(app: &TestApp, client: &str) -> reqwest::Response {
    app.anonymous
        .get(app.url("/v1/songs"))
        .header("x-forwarded-for", client)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn addresses_of_one_ipv6_64_share_a_budget_but_exemption_is_per_address() {
    let app = public_behind_proxy(&[(
        "STARSONGS__RATE_LIMIT__EXEMPT_CLIENTS",
        "2001:db8:1:2::ee/128",
    )])
    .await;

    let mut same_host = Vec::new();
    for client in [
        "2001:db8:1:2::1",
        "2001:db8:1:2::2",
        "2001:db8:1:2:aaaa:bbbb:cccc:dddd",
        "2001:db8:1:2:ffff:ffff:ffff:ffff",
    ] {
        same_host.push(read_as(&app, client).await.status());
    }
    let next_network = read_as(&app, "2001:db8:1:3::1").await;
    let exempt = read_as(&app, "2001:db8:1:2::ee").await;

    assert_eq!(
        same_host,
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
    assert_eq!(next_network.status(), StatusCode::OK);
    assert_eq!(exempt.status(), StatusCode::OK);
    assert!(header(&exempt, "ratelimit-limit").is_none(), "not limited");
}

#[tokio::test]
async fn the_auth_budget_is_per_address_whatever_credential_the_request_carries() {
    let app = public_behind_proxy(&[]).await;
    let mut tokens = Vec::new();
    for name in ["auth-budget-a", "auth-budget-b", "auth-budget-c"] {
        tokens.push(app.account(name, Role::Viewer).await.1);
    }

    let mut statuses = Vec::new();
    for token in &tokens {
        let response = app
            .anonymous
            .post(app.url("/v1/auth/login"))
            .bearer_auth(token)
            .json(&json!({"username": "auth-budget-a", "password": "not the password"}))
            .send()
            .await
            .unwrap();
        statuses.push(response.status());
    }
    let refresh = app
        .anonymous
        .post(app.url("/v1/auth/refresh"))
        .header(
            "x-api-key",
            "ssk_made-up-key-of-the-right-shape-1234567890abc",
        )
        .json(&json!({"refresh_token": "ssr_not-a-real-one"}))
        .send()
        .await
        .unwrap();
    // Another client behind the same proxy still has its whole auth budget.
    let other_client = app
        .anonymous
        .post(app.url("/v1/auth/login"))
        .header("x-forwarded-for", "198.51.100.9")
        .json(&json!({"username": "auth-budget-a", "password": "not the password"}))
        .send()
        .await
        .unwrap();

    assert_eq!(
        statuses,
        [
            StatusCode::UNAUTHORIZED,
            StatusCode::UNAUTHORIZED,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
    assert_eq!(refresh.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(other_client.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_known_api_key_spends_its_own_budget_and_an_unknown_one_the_addresss() {
    let app = public_behind_proxy(&[]).await;
    let created: Value = app
        .admin()
        .post(
            "/v1/admin/api-keys",
            &json!({"name": "importer", "role": "viewer"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let key = created["key"].as_str().unwrap().to_owned();
    let with_key = |key: &str| {
        app.anonymous
            .get(app.url("/v1/songs"))
            .header("x-forwarded-for", "198.51.100.20")
            .header("x-api-key", key.to_owned())
            .send()
    };

    // The first use finds the key in the database; from then on this replica knows it.
    let first = with_key(&key).await.unwrap();
    let mut anonymous = Vec::new();
    for _ in 0..4 {
        anonymous.push(read_as(&app, "198.51.100.20").await.status());
    }
    let known = with_key(&key).await.unwrap();
    let made_up = with_key("ssk_made-up-key-of-the-right-shape-1234567890abc")
        .await
        .unwrap();

    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(
        anonymous.last(),
        Some(&StatusCode::TOO_MANY_REQUESTS),
        "{anonymous:?}"
    );
    assert_eq!(known.status(), StatusCode::OK, "the key's own budget");
    assert_eq!(
        made_up.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "the address's budget, refused before any lookup"
    );
}

#[tokio::test]
async fn a_flood_of_made_up_api_keys_costs_at_most_the_budget_in_lookups() {
    let binary = Binary::start(&[
        ("STARSONGS__RATE_LIMIT__BURST", "5"),
        ("STARSONGS__RATE_LIMIT__REQUESTS_PER_MINUTE", "1"),
    ])
    .await;
    let lookups = r#"db_query_duration_seconds_count{operation="find_api_key"}"#;
    let before = binary.metric(lookups).await;

    let mut statuses = Vec::new();
    for _ in 0..50 {
        let key = format!("ssk_{}", uuid::Uuid::new_v4().simple());
        let response = client()
            .get(binary.url("/v1/songs"))
            .header("x-api-key", key)
            .send()
            .await
            .unwrap();
        statuses.push(response.status());
    }
    let after = binary.metric(lookups).await;

    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    let unauthorized = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    assert_eq!((unauthorized, refused), (5, 45), "{statuses:?}");
    assert!(after - before <= 5.0, "{} lookups", after - before);
}

/// The Next.js frontend's pattern, as it renders one page on its server: the song list,
/// then one artist per song. Returns every status it got.
async fn frontend_page_view(app: &TestApp) -> Vec<StatusCode> {
    let list = app
        .anonymous
        .get(app.url("/v1/songs"))
        .send()
        .await
        .unwrap();
    let mut statuses = vec![list.status()];
    if list.status() != StatusCode::OK {
        return statuses;
    }
    let page: Value = list.json().await.unwrap();
    for song in page["items"].as_array().unwrap() {
        let artist = app
            .anonymous
            .get(app.url(&format!("/v1/artists/{}", song["artist_id"])))
            .send()
            .await
            .unwrap();
        statuses.push(artist.status());
    }
    statuses
}

/// A public catalog of ten songs by ten artists, with the default burst (60) and a slow
/// refill, so that whether a client runs out does not depend on the machine's speed.
async fn public_catalog(exempt_clients: Option<&str>) -> TestApp {
    let mut overrides = vec![
        ("STARSONGS__AUTH__PUBLIC_READ", "true"),
        ("STARSONGS__RATE_LIMIT__BURST", "60"),
        ("STARSONGS__RATE_LIMIT__REQUESTS_PER_MINUTE", "1"),
    ];
    if let Some(clients) = exempt_clients {
        overrides.push(("STARSONGS__RATE_LIMIT__EXEMPT_CLIENTS", clients));
    }
    let app = TestApp::spawn_with(&overrides).await;
    for i in 0..10 {
        let artist = app.create_artist(&format!("Artist {i}")).await;
        app.create_song(&json!({"title": format!("Song {i}"), "artist_id": artist["id"]}))
            .await;
    }
    app
}

#[tokio::test]
async fn an_exempt_frontend_renders_forty_pages_while_a_non_exempt_one_is_limited() {
    let exempt = public_catalog(Some("10.9.8.0/24, 127.0.0.1/32")).await;
    let limited = public_catalog(None).await;

    let mut exempt_statuses = Vec::new();
    let mut limited_statuses = Vec::new();
    for _ in 0..40 {
        exempt_statuses.extend(frontend_page_view(&exempt).await);
        limited_statuses.extend(frontend_page_view(&limited).await);
    }
    let unlimited = exempt
        .anonymous
        .get(exempt.url("/v1/songs"))
        .send()
        .await
        .unwrap();

    assert_eq!(exempt_statuses.len(), 40 * 11);
    assert!(
        exempt_statuses.iter().all(|s| *s == StatusCode::OK),
        "{exempt_statuses:?}"
    );
    assert!(
        header(&unlimited, "ratelimit-limit").is_none(),
        "an exempt client is not limited, so it gets no budget headers"
    );
    assert_eq!(
        limited_statuses
            .iter()
            .filter(|s| **s == StatusCode::OK)
            .count(),
        60,
        "the burst, then 429s: {limited_statuses:?}"
    );
    assert!(limited_statuses.contains(&StatusCode::TOO_MANY_REQUESTS));
}

#[tokio::test]
async fn exemption_follows_the_address_trusted_proxies_resolve() {
    let app = public_catalog_behind_proxy().await;
    let get = |forwarded_for: &'static str| {
        app.anonymous
            .get(app.url("/v1/songs"))
            .header("x-forwarded-for", forwarded_for)
            .send()
    };

    let mut frontend = Vec::new();
    let mut visitor = Vec::new();
    for _ in 0..4 {
        frontend.push(get("203.0.113.10").await.unwrap().status());
        visitor.push(get("198.51.100.20").await.unwrap().status());
    }

    assert_eq!(frontend, [StatusCode::OK; 4]);
    assert_eq!(
        visitor,
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
}

/// Behind a trusted proxy on 127.0.0.1; only the frontend at 203.0.113.10 is exempt.
async fn public_catalog_behind_proxy() -> TestApp {
    let mut overrides = SMALL_LIMITS.to_vec();
    overrides.extend([
        ("STARSONGS__AUTH__PUBLIC_READ", "true"),
        ("STARSONGS__SERVER__TRUSTED_PROXIES", "127.0.0.1"),
        ("STARSONGS__RATE_LIMIT__EXEMPT_CLIENTS", "203.0.113.10/32"),
    ]);
    TestApp::spawn_with(&overrides).await
}

#[tokio::test]
async fn an_exempt_client_escapes_the_auth_budget_but_not_the_login_lockout() {
    let mut overrides = SMALL_LIMITS.to_vec();
    overrides.push(("STARSONGS__RATE_LIMIT__EXEMPT_CLIENTS", "127.0.0.1/32"));
    let app = TestApp::spawn_with(&overrides).await;
    app.account("frontend-user", Role::Viewer).await;
    let login = |password: &'static str| {
        app.anonymous
            .post(app.url("/v1/auth/login"))
            .json(&json!({"username": "frontend-user", "password": password}))
            .send()
    };

    // The auth burst is 2: a limited client would get 429 from the third attempt on.
    let mut failures = Vec::new();
    for _ in 0..5 {
        failures.push(login("wrong password!").await.unwrap().status());
    }
    let locked = login(crate::harness::PASSWORD).await.unwrap();

    assert_eq!(failures, [StatusCode::UNAUTHORIZED; 5]);
    assert!(header(&locked, "retry-after").is_some());
    assert!(
        header(&locked, "ratelimit-limit").is_none(),
        "not the rate limit"
    );
    let body = problem(locked, StatusCode::TOO_MANY_REQUESTS).await;
    assert_eq!(
        body["detail"],
        "Too many failed logins for this username; try again later"
    );
}

/// The Redis URL for tests, or `None` after printing why they skip (a failure when
/// `STARSONGS_TEST_REQUIRE` lists `redis`).
fn redis_url() -> Option<String> {
    crate::server_db::server_url("STARSONGS_TEST_REDIS_URL", "redis")
}

#[tokio::test]
async fn two_instances_share_one_budget_in_redis() {
    let Some(url) = redis_url() else {
        return;
    };
    let prefix = format!("starsongs-test:{}:", uuid::Uuid::new_v4());
    let mut overrides = SMALL_LIMITS.to_vec();
    overrides.extend([
        ("STARSONGS__RATE_LIMIT__BACKEND", "redis"),
        ("STARSONGS__RATE_LIMIT__REDIS_URL", url.as_str()),
        ("STARSONGS__RATE_LIMIT__REDIS_KEY_PREFIX", prefix.as_str()),
    ]);
    let a = TestApp::spawn_with(&overrides).await;
    let b = a.replica(&overrides).await;

    let statuses = [
        a.get("/v1/songs").await.status(),
        b.get("/v1/songs").await.status(),
        a.get("/v1/songs").await.status(),
        b.get("/v1/songs").await.status(),
        a.get("/v1/songs").await.status(),
    ];

    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
    // The budget is kept on Redis's own clock, which a test cannot move: poll until the
    // next request is due (about a second), within a deadline.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut back = b.get("/v1/songs").await.status();
    while back == StatusCode::TOO_MANY_REQUESTS && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        back = b.get("/v1/songs").await.status();
    }
    assert_eq!(back, StatusCode::OK);
}

/// A loopback port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A public catalog with a burst of 3 and a slow refill, its budgets in Redis at
/// `redis_url`.
fn redis_limited(redis_url: &str, prefix: &str) -> Vec<(String, String)> {
    [
        ("STARSONGS__AUTH__PUBLIC_READ", "true"),
        ("STARSONGS__RATE_LIMIT__BURST", "3"),
        ("STARSONGS__RATE_LIMIT__REQUESTS_PER_MINUTE", "1"),
        ("STARSONGS__RATE_LIMIT__BACKEND", "redis"),
        ("STARSONGS__RATE_LIMIT__REDIS_URL", redis_url),
        ("STARSONGS__RATE_LIMIT__REDIS_KEY_PREFIX", prefix),
        ("STARSONGS__RATE_LIMIT__REDIS_TIMEOUT_MS", "200"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

fn as_overrides(owned: &[(String, String)]) -> Vec<(&str, &str)> {
    owned
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

fn messages<'a>(lines: &'a [Value], text: &str) -> Vec<&'a Value> {
    lines
        .iter()
        .filter(|l| l["message"].as_str().is_some_and(|m| m.contains(text)))
        .collect()
}

const OUTAGE_STARTS: &str = "rate limiter unavailable";
const OUTAGE_ENDS: &str = "rate limiter answers again";

#[tokio::test]
async fn an_unreachable_redis_still_limits_and_is_logged_once_and_counted() {
    let url = format!("redis://127.0.0.1:{}/", closed_port());
    let settings = redis_limited(&url, "starsongs-test:");
    let binary = Binary::start(&as_overrides(&settings)).await;

    let mut statuses = Vec::new();
    for i in 0..6 {
        let response = client()
            .get(binary.url("/v1/songs"))
            .header("x-request-id", format!("outage-{i}"))
            .send()
            .await
            .unwrap();
        statuses.push(response.status());
    }
    let live = client()
        .get(binary.url("/health/live"))
        .send()
        .await
        .unwrap();
    let errors = binary.metric("rate_limit_backend_errors_total").await;
    let lines = binary
        .wait_for_logs(|lines| access_line(lines, "outage-5").is_some())
        .await;

    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::TOO_MANY_REQUESTS
        ],
        "limited by the replica's own budget, never unlimited, never 503"
    );
    assert_eq!(live.status(), StatusCode::OK);
    assert_eq!(errors, 6.0, "every check Redis did not decide is counted");
    let outage = messages(&lines, OUTAGE_STARTS);
    assert_eq!(outage.len(), 1, "logged once, not per request: {outage:?}");
    assert_eq!(outage[0]["level"], "ERROR");
    assert!(messages(&lines, OUTAGE_ENDS).is_empty());
}

#[tokio::test]
async fn a_redis_that_never_answers_is_asked_once_a_second_not_per_request() {
    // Accepts connections, records what it is sent, never answers.
    let blackhole = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("redis://{}/", blackhole.local_addr().unwrap());
    let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
    let connections = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (sink, accepted) = (received.clone(), connections.clone());
    let hole = tokio::spawn(async move {
        while let Ok((mut socket, _)) = blackhole.accept().await {
            accepted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let sink = sink.clone();
            tokio::spawn(async move {
                let mut buffer = [0_u8; 4096];
                while let Ok(n) = socket.read(&mut buffer).await {
                    if n == 0 {
                        break;
                    }
                    sink.lock().unwrap().extend_from_slice(&buffer[..n]);
                }
            });
        }
    });
    let settings = redis_limited(&url, "starsongs-test:");
    let app = TestApp::spawn_with(&as_overrides(&settings)).await;

    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(app.get("/v1/songs").await.status());
    }
    let sent = String::from_utf8_lossy(&received.lock().unwrap()).to_uppercase();
    let scripts = sent.matches("EVAL").count();
    let connected = connections.load(std::sync::atomic::Ordering::Relaxed);
    hole.abort();

    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
    // Asked per request, Redis would have seen six connections or six scripts. Six
    // requests take about one Redis timeout (200 ms) here, well within one probe
    // interval (1 s); two probes are allowed for a slow machine.
    assert!(
        connected + scripts <= 4,
        "Redis was asked per request: {connected} connections, {scripts} scripts: {sent}"
    );
}

/// Forwards every connection to `127.0.0.1:port` to `target` until dropped.
async fn forward(port: u16, target: String) -> tokio::task::JoinHandle<()> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let target = target.clone();
            tokio::spawn(async move {
                if let Ok(mut outbound) = TcpStream::connect(target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    })
}

#[tokio::test]
async fn a_redis_outage_is_logged_when_it_starts_and_when_it_ends() {
    let Some(real) = redis_url() else {
        return;
    };
    let real = url::Url::parse(&real).unwrap();
    let target = format!(
        "{}:{}",
        real.host_str().unwrap(),
        real.port().unwrap_or(6379)
    );
    let port = closed_port();
    let mut through_proxy = real.clone();
    through_proxy.set_host(Some("127.0.0.1")).unwrap();
    through_proxy.set_port(Some(port)).unwrap();
    let prefix = format!("starsongs-test:{}:", uuid::Uuid::new_v4());
    let settings = redis_limited(through_proxy.as_str(), &prefix);
    let binary = Binary::start(&as_overrides(&settings)).await;
    let get = || client().get(binary.url("/v1/songs")).send();

    // Redis is away: served from this replica's budget.
    let during = get().await.unwrap().status();
    let proxy = forward(port, target).await;
    // Back: the next probe (once a second) finds it. Bounded: 10 s at most.
    let mut lines = binary.logs();
    for _ in 0..100 {
        if !messages(&lines, OUTAGE_ENDS).is_empty() {
            break;
        }
        assert_ne!(
            get().await.unwrap().status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        lines = binary.logs();
    }
    let starts = messages(&lines, OUTAGE_STARTS);
    let ends = messages(&lines, OUTAGE_ENDS);
    proxy.abort();

    assert_eq!(during, StatusCode::OK);
    assert_eq!(starts.len(), 1, "{starts:?}");
    assert_eq!(ends.len(), 1, "{ends:?}");
    assert_eq!(ends[0]["level"], "WARN");
}

#[tokio::test]
async fn oversized_headers_are_a_431_problem() {
    let app = TestApp::spawn_with(&[("STARSONGS__SERVER__MAX_HEADER_BYTES", "4096")]).await;

    let response = app
        .client
        .get(app.url("/v1/songs"))
        .header("x-padding", "p".repeat(5000))
        .send()
        .await
        .unwrap();

    problem(response, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE).await;
}

/// Sends the head and half the body of a create, and leaves the request waiting.
async fn half_sent_create(app: &TestApp) -> TcpStream {
    let address = app.base.trim_start_matches("http://").to_owned();
    let mut stream = TcpStream::connect(&address).await.unwrap();
    let head = format!(
        "POST /v1/artists HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
         Authorization: Bearer {}\r\nContent-Length: 16\r\nConnection: close\r\n\r\n{{\"name\":",
        app.editor_token
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream
}

#[tokio::test]
async fn above_the_in_flight_limit_requests_are_shed_at_once_with_503() {
    let app = TestApp::spawn_with(&[("STARSONGS__SERVER__MAX_IN_FLIGHT", "2")]).await;
    let mut held = vec![half_sent_create(&app).await, half_sent_create(&app).await];
    // Both are inside the service (waiting for their bodies) once a third is refused.
    let mut shed = None;
    for _ in 0..50 {
        let response = app.get("/v1/songs").await;
        if response.status() == StatusCode::SERVICE_UNAVAILABLE {
            shed = Some(response);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let shed = shed.expect("a third request was shed");
    assert_eq!(header(&shed, "retry-after").as_deref(), Some("1"));
    problem(shed, StatusCode::SERVICE_UNAVAILABLE).await;
    for probe in ["/health/live", "/health/ready", "/health"] {
        assert_eq!(
            app.get(probe).await.status(),
            StatusCode::OK,
            "probes are never shed: {probe}"
        );
    }
    assert_eq!(
        app.get("/v1/no-such-route").await.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "unknown paths are shed like the API"
    );

    for stream in &mut held {
        stream.write_all(b" \"Held\"}").await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    }
    assert_eq!(app.get("/v1/songs").await.status(), StatusCode::OK);
}

/// A self-signed certificate for 127.0.0.1 and localhost, written as PEM files.
fn write_certificate(dir: &std::path::Path, common_name: &str) -> (String, String) {
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, common_name);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let (cert_path, key_path) = (dir.join("tls.crt"), dir.join("tls.key"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    (
        cert_path.display().to_string(),
        key_path.display().to_string(),
    )
}

/// `openssl s_client` against `address` with extra flags: (handshake succeeded, output).
fn s_client(address: &str, flags: &[&str]) -> (bool, String) {
    let output = std::process::Command::new("openssl")
        .args(["s_client", "-connect", address, "-servername", "localhost"])
        .args(flags)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let ok =
        output.status.success() && text.contains("Cipher is") && !text.contains("Cipher is (NONE)");
    (ok, text)
}

#[tokio::test]
async fn tls_speaks_1_2_and_1_3_only_and_reloads_a_changed_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = write_certificate(dir.path(), "first certificate");
    let app = TestApp::spawn_with(&[
        ("STARSONGS__SERVER__TLS__CERT_FILE", &cert),
        ("STARSONGS__SERVER__TLS__KEY_FILE", &key),
        ("STARSONGS__SERVER__TLS__RELOAD_INTERVAL_SECS", "1"),
    ])
    .await;
    let address = app.base.trim_start_matches("http://").to_owned();

    let handshakes = tokio::task::spawn_blocking({
        let address = address.clone();
        move || {
            [
                s_client(&address, &["-tls1_3"]),
                s_client(&address, &["-tls1_2"]),
                s_client(&address, &["-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0"]),
                s_client(&address, &["-tls1", "-cipher", "DEFAULT:@SECLEVEL=0"]),
            ]
        }
    })
    .await
    .unwrap();
    assert!(
        handshakes[0].0 && handshakes[0].1.contains("TLSv1.3"),
        "{}",
        handshakes[0].1
    );
    assert!(
        handshakes[1].0 && handshakes[1].1.contains("TLSv1.2"),
        "{}",
        handshakes[1].1
    );
    assert!(
        handshakes[0].1.contains("CN = first certificate"),
        "{}",
        handshakes[0].1
    );
    // The client offers TLS 1.1 / 1.0 (SECLEVEL=0 lets OpenSSL 3 do so); the server
    // answers with an alert, so it is the server that refuses.
    for (ok, text) in &handshakes[2..] {
        assert!(!ok, "a legacy handshake succeeded: {text}");
        assert!(text.contains("alert"), "no alert from the server: {text}");
    }

    let url = format!("https://{address}/health/live");
    let https = tokio::task::spawn_blocking(move || {
        std::process::Command::new("curl")
            .args([
                "-sk",
                "--max-time",
                "10",
                "-D",
                "-",
                "-o",
                "/dev/null",
                &url,
            ])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let https_head = String::from_utf8_lossy(&https.stdout).to_lowercase();
    assert!(https_head.starts_with("http/"), "{https_head}");
    assert!(https_head.contains(" 200"), "{https_head}");
    assert!(
        https_head.contains("strict-transport-security: max-age=31536000"),
        "{https_head}"
    );
    let plain = crate::harness::client()
        .get(app.url("/health/live"))
        .send()
        .await;
    assert!(
        plain.is_err() || !plain.unwrap().status().is_success(),
        "plain HTTP on the TLS port"
    );

    write_certificate(dir.path(), "second certificate");
    let mut reloaded = String::new();
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let address = address.clone();
        reloaded = tokio::task::spawn_blocking(move || s_client(&address, &["-tls1_3"]).1)
            .await
            .unwrap();
        if reloaded.contains("CN = second certificate") {
            break;
        }
    }
    assert!(reloaded.contains("CN = second certificate"), "{reloaded}");
}

#[tokio::test]
async fn the_plain_http_listener_only_redirects_to_https() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = write_certificate(dir.path(), "redirect test");
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let redirect_port = free.local_addr().unwrap().port();
    drop(free);
    let app = TestApp::spawn_with(&[
        ("STARSONGS__SERVER__TLS__CERT_FILE", &cert),
        ("STARSONGS__SERVER__TLS__KEY_FILE", &key),
        (
            "STARSONGS__SERVER__TLS__REDIRECT_HTTP_PORT",
            &redirect_port.to_string(),
        ),
    ])
    .await;
    let https_port = app.base.rsplit(':').next().unwrap().to_owned();
    let no_redirects = crate::harness::client_builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    let response = no_redirects
        .post(format!("http://127.0.0.1:{redirect_port}/v1/songs?page=2"))
        .body("{}")
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(
        header(&response, "location").unwrap(),
        format!("https://127.0.0.1:{https_port}/v1/songs?page=2")
    );
    let body: Value = serde_json::from_str("{}").unwrap();
    assert!(body.is_object());
}

#[tokio::test]
async fn the_binary_reloads_its_certificate_on_sighup() {
    use std::process::Command;

    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = write_certificate(dir.path(), "before hangup");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("bin.db").display());
    let crate::harness::ServiceProcess {
        mut child,
        address,
        lines,
        ..
    } = crate::harness::ServiceProcess::spawn(
        crate::harness::service_command(&url)
            .env("STARSONGS__SERVER__TLS__CERT_FILE", &cert)
            .env("STARSONGS__SERVER__TLS__KEY_FILE", &key)
            // Long enough that only the signal can explain a reload.
            .env("STARSONGS__SERVER__TLS__RELOAD_INTERVAL_SECS", "3600"),
    );
    let subject =
        |address: String| tokio::task::spawn_blocking(move || s_client(&address, &["-tls1_3"]).1);
    assert!(
        subject(address.clone())
            .await
            .unwrap()
            .contains("CN = before hangup")
    );

    write_certificate(dir.path(), "after hangup");
    let hup = Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    let mut reloaded = false;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if lines
            .lock()
            .unwrap()
            .iter()
            .any(|line| line.contains("TLS certificate reloaded") && line.contains("SIGHUP"))
        {
            reloaded = true;
            break;
        }
    }
    let after = subject(address).await.unwrap();
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();

    assert!(hup.success());
    assert!(reloaded, "no reload logged");
    assert!(after.contains("CN = after hangup"), "{after}");
    assert_eq!(status.code(), Some(0), "SIGHUP must not end the process");
}
