//! The admin listener (`admin.host`, `admin.port`): `GET /metrics` in the Prometheus text
//! format, and with `admin.debug_endpoints`, `POST /debug/panic` to check error reporting
//! end to end. Not part of the public API or its OpenAPI document.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::state::AppState;
use crate::telemetry;

/// The admin routes, with their middleware.
pub fn router(state: AppState) -> Router {
    let mut routes = Router::new().route("/metrics", get(metrics));
    if state.settings.admin.debug_endpoints {
        routes = routes.route("/debug/panic", post(panic));
    }
    let app = routes
        .fallback(|| async {
            super::error::ApiError::from_status(axum::http::StatusCode::NOT_FOUND)
        })
        .with_state(state.clone());
    super::middleware::apply_admin(app, &state)
}

/// The exposition, with pool and process figures sampled now.
async fn metrics(State(state): State<AppState>) -> Response {
    let body = telemetry::metrics::render(state.store.pool_stats(), state.store.wal_size_bytes());
    let mut response = body.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

/// Panics on purpose (the service answers 500 and keeps serving).
#[allow(clippy::panic, reason = "the endpoint exists to panic")]
async fn panic() -> Response {
    panic!("deliberate panic from POST /debug/panic");
}
