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
use crate::telemetry::metrics::{
    DB_POOL_CONNECTIONS, DB_POOL_MAX_CONNECTIONS, SQLITE_WAL_SIZE_BYTES,
};

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
    let pool = state.store.pool_stats();
    metrics::gauge!(DB_POOL_CONNECTIONS, "state" => "idle").set(f64::from(pool.idle));
    metrics::gauge!(DB_POOL_CONNECTIONS, "state" => "in_use")
        .set(f64::from(pool.size.saturating_sub(pool.idle)));
    metrics::gauge!(DB_POOL_MAX_CONNECTIONS).set(f64::from(pool.max));
    if let Some(bytes) = state.store.wal_size_bytes() {
        #[allow(
            clippy::cast_precision_loss,
            reason = "a gauge; exact below 2^53 bytes"
        )]
        metrics::gauge!(SQLITE_WAL_SIZE_BYTES).set(bytes as f64);
    }
    let body = telemetry::metrics::render();
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
