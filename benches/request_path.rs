//! The request path through the whole router (every layer of the production stack, the
//! extractors with a real bearer token, the handler and the SQLite store), in process:
//! `tower::ServiceExt::oneshot` on an in-memory request, so the figure is the service's own
//! cost per request without sockets or a load generator. Run with
//! `cargo bench --bench request_path 2>/dev/null` (the JSON access log goes to stderr,
//! through the same writer as in production); BENCHMARKS.md "The request path (#11)"
//! quotes it.
//!
//! The settings are those of the production profile with rate limiting on (budgets far
//! above the load), as `scripts/path-bench.py` runs the binary.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode, header};
use criterion::{Criterion, criterion_group, criterion_main};
use secrecy::{ExposeSecret, SecretString};
use starsongs::config::Settings;
use starsongs::domain::artist::NewArtist;
use starsongs::domain::user::{NewUser, Role};
use starsongs::state::AppState;
use starsongs::{http, storage, telemetry};
use tower::ServiceExt;

/// Artists in the catalog (S2 counts them all).
const ARTISTS: usize = 1000;

struct Fixture {
    router: Router,
    token: String,
    artist_id: i64,
    _dir: tempfile::TempDir,
}

fn settings(dir: &tempfile::TempDir) -> Settings {
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("bench.db").display()
    );
    let vars: HashMap<String, String> = [
        ("STARSONGS_ENV", "production"),
        ("STARSONGS__DATABASE__URL", url.as_str()),
        (
            "STARSONGS__AUTH__JWT_SECRET",
            "bench-only HS256 secret, at least 32 bytes long",
        ),
        ("STARSONGS__CORS__ALLOWED_ORIGINS", "https://app.example"),
        ("STARSONGS__RATE_LIMIT__ENABLED", "true"),
        ("STARSONGS__RATE_LIMIT__REQUESTS_PER_MINUTE", "100000000"),
        ("STARSONGS__RATE_LIMIT__BURST", "10000000"),
        ("STARSONGS__LOG__FORMAT", "json"),
        ("STARSONGS__LOG__LEVEL", "info"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    Settings::load_from(&vars).expect("bench settings are valid")
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let settings = settings(&dir);
    telemetry::metrics::install();
    let store = storage::connect(&settings.database).await.unwrap();
    store.migrator().up().await.unwrap();
    let mut artist_id = 0;
    for i in 0..ARTISTS {
        let new = NewArtist::parse(&format!("Bench Artist {i}")).unwrap();
        artist_id = store.insert_artist(&new).await.unwrap().id.get();
    }
    let state = AppState::new(store, settings).unwrap();
    let user = NewUser::parse(
        "bench",
        "bench@example.com",
        &SecretString::from("a long bench passphrase".to_owned()),
        Role::Admin,
    )
    .unwrap();
    let user = state.accounts.create_user(&user).await.unwrap();
    let pair = state.accounts.start_session(&user).await.unwrap();
    Fixture {
        router: http::router(state),
        token: pair.access_token.expose_secret().to_owned(),
        artist_id: artist_id / 2,
        _dir: dir,
    }
}

fn request(path: &str, token: &str) -> Request<Body> {
    let mut request = Request::get(path)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::USER_AGENT, "criterion")
        .body(Body::empty())
        .unwrap();
    request
        .extensions_mut()
        .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
    request
}

async fn send(router: &Router, path: &str, token: &str) {
    let response = router.clone().oneshot(request(path, token)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
}

fn request_path(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let _logs = telemetry::init(&settings(&tempfile::tempdir().unwrap()));
    let fixture = runtime.block_on(fixture());
    let s1 = format!("/v1/artists/{}", fixture.artist_id);
    let s2 = "/v1/artists?page=1&page_size=10";

    let mut group = c.benchmark_group("request_path");
    group.bench_function("S1 GET /v1/artists/{id}", |b| {
        b.iter(|| runtime.block_on(send(&fixture.router, &s1, &fixture.token)));
    });
    group.bench_function("S2 GET /v1/artists?page=1&page_size=10", |b| {
        b.iter(|| runtime.block_on(send(&fixture.router, s2, &fixture.token)));
    });
    group.finish();
}

criterion_group!(benches, request_path);
criterion_main!(benches);
