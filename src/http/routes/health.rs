//! Probes: `/health` (legacy), `/health/live` (process only) and `/health/ready`
//! (database round trip within 1 s, schema current, not shutting down), plus the Python
//! API's `/health/db` and `/health/pool`, kept for old monitors with that API's fields
//! (API.md): the same database check and pool figures as readiness, in the old shape,
//! with this service's figures beside them.

use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::middleware::OwnBody;
use crate::state::{AppState, DatabaseCheck};

/// Deadline of the readiness database round trip (API.md).
const DATABASE_DEADLINE: Duration = Duration::from_secs(1);
/// Probes are answered from a check at most this old, so probe floods cost no database load.
const CHECK_MAX_AGE: Duration = Duration::from_secs(1);

/// The probe routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(live))
        .routes(routes!(ready))
        .routes(routes!(health_db))
        .routes(routes!(health_pool))
}

/// A bare status document.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthStatus {
    /// `healthy` or `alive`.
    #[schema(example = "healthy")]
    pub status: &'static str,
}

/// One dependency check.
#[derive(Debug, Serialize, ToSchema)]
pub struct CheckOut {
    /// `up` or `down`.
    #[schema(example = "up")]
    pub status: &'static str,
    /// Round-trip time in milliseconds.
    pub latency_ms: u64,
}

/// Schema state.
#[derive(Debug, Serialize, ToSchema)]
pub struct MigrationsOut {
    /// `up` when current, `pending` when migrations are missing, `unknown` if unreadable.
    #[schema(example = "up")]
    pub status: &'static str,
    /// Migrations not applied.
    pub pending: Option<usize>,
}

/// Checks behind readiness.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReadyChecks {
    /// Database round trip.
    pub database: CheckOut,
    /// Schema migrations.
    pub migrations: MigrationsOut,
}

/// Connection pool figures.
#[derive(Debug, Serialize, ToSchema)]
pub struct PoolOut {
    /// Open connections.
    pub size: u32,
    /// Open and idle.
    pub idle: u32,
    /// Open and in use.
    pub in_use: u32,
    /// Configured maximum.
    pub max: u32,
}

/// The Python API's `/health/db` document, with the round-trip time beside its fields.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "status": "healthy", "database": "connected",
    "message": "Database connection successful", "latency_ms": 1
}))]
pub struct LegacyDatabaseOut {
    /// `healthy` or `unhealthy` (the old API's words; monitors read them).
    pub status: &'static str,
    /// `connected` or `disconnected`.
    pub database: &'static str,
    /// A sentence for people; never carries a connection string or a server's error text.
    pub message: &'static str,
    /// Round-trip time in milliseconds (new).
    pub latency_ms: u64,
}

/// The Python API's `/health/pool` document (SQLAlchemy's pool figures), with the
/// readiness pool figures beside its fields.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "pool_size": 10, "checked_out": 1, "overflow": 0, "total_connections": 1,
    "status": "healthy", "size": 2, "idle": 1, "in_use": 1, "max": 10
}))]
pub struct LegacyPoolOut {
    /// Connections the pool may hold (`database.max_connections`).
    pub pool_size: u32,
    /// Connections in use by requests.
    pub checked_out: u32,
    /// Connections beyond `pool_size`: always 0 here, the pool never overflows its size.
    pub overflow: u32,
    /// `checked_out` + `overflow`.
    pub total_connections: u32,
    /// `healthy`, or `degraded` while every connection is in use.
    pub status: &'static str,
    /// Open connections (new).
    pub size: u32,
    /// Open and idle (new).
    pub idle: u32,
    /// Open and in use (new; the same figure as `checked_out`).
    pub in_use: u32,
    /// Configured maximum (new; the same figure as `pool_size`).
    pub max: u32,
}

/// The readiness document.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "status": "ready", "draining": false,
    "checks": {"database": {"status": "up", "latency_ms": 1}, "migrations": {"status": "up", "pending": 0}},
    "pool": {"size": 2, "idle": 2, "in_use": 0, "max": 10}
}))]
pub struct ReadyOut {
    /// `ready` or `not_ready`.
    pub status: &'static str,
    /// True once shutdown has begun.
    pub draining: bool,
    /// Individual checks.
    pub checks: ReadyChecks,
    /// Pool figures.
    pub pool: PoolOut,
}

/// Legacy probe kept for old monitors.
#[utoipa::path(get, path = "/health", tag = "operations",
    responses((status = 200, description = "The process is up", body = HealthStatus)))]
pub async fn health() -> Json<HealthStatus> {
    Json(HealthStatus { status: "healthy" })
}

/// Liveness: answers while the process can serve; never touches the database.
#[utoipa::path(get, path = "/health/live", tag = "operations",
    responses((status = 200, description = "The process can serve", body = HealthStatus)))]
pub async fn live() -> Json<HealthStatus> {
    Json(HealthStatus { status: "alive" })
}

/// Legacy database probe (the Python API's fields): the readiness database check alone.
/// 200 `healthy`/`connected` while the database answers within 1 s; 503
/// `unhealthy`/`disconnected` (with `Retry-After`) while it does not. (The Python API
/// answered 200 even when down; a monitor that reads the body works with both.)
#[utoipa::path(get, path = "/health/db", tag = "operations",
    responses(
        (status = 200, description = "The database answers", body = LegacyDatabaseOut),
        (status = 503, description = "The database does not answer within 1 s", body = LegacyDatabaseOut,
            headers(("Retry-After" = u32, description = "Seconds before probing again"))),
    ))]
pub async fn health_db(State(state): State<AppState>) -> Response {
    let check = database_check(&state).await;
    if check.is_up {
        let body = LegacyDatabaseOut {
            status: "healthy",
            database: "connected",
            message: "Database connection successful",
            latency_ms: check.latency_ms,
        };
        (StatusCode::OK, Json(body)).into_response()
    } else {
        unavailable(LegacyDatabaseOut {
            status: "unhealthy",
            database: "disconnected",
            message: "The database did not answer within 1 s",
            latency_ms: check.latency_ms,
        })
    }
}

/// Legacy pool probe (the Python API's fields, with the readiness pool figures beside
/// them). Always 200: the figures are read from the pool, not the database, and matter
/// most while it is down.
#[utoipa::path(get, path = "/health/pool", tag = "operations",
    responses((status = 200, description = "Connection pool figures", body = LegacyPoolOut)))]
pub async fn health_pool(State(state): State<AppState>) -> Json<LegacyPoolOut> {
    Json(LegacyPoolOut::from(pool_figures(&state)))
}

impl From<PoolOut> for LegacyPoolOut {
    fn from(pool: PoolOut) -> Self {
        Self {
            pool_size: pool.max,
            checked_out: pool.in_use,
            overflow: 0,
            total_connections: pool.in_use,
            status: if pool.in_use >= pool.max {
                "degraded"
            } else {
                "healthy"
            },
            size: pool.size,
            idle: pool.idle,
            in_use: pool.in_use,
            max: pool.max,
        }
    }
}

/// Readiness: 200 when the database answers within 1 s, the schema is current and shutdown
/// has not begun; 503 otherwise (with `Retry-After`).
#[utoipa::path(get, path = "/health/ready", tag = "operations",
    responses(
        (status = 200, description = "Ready for traffic", body = ReadyOut),
        (status = 503, description = "Not ready: database down, migrations pending, or draining", body = ReadyOut,
            headers(("Retry-After" = u32, description = "Seconds before probing again"))),
    ))]
pub async fn ready(State(state): State<AppState>) -> Response {
    let check = database_check(&state).await;
    let draining = state.readiness.is_draining();
    let is_ready = !draining && check.is_up && check.pending_migrations == Some(0);
    let body = ReadyOut {
        status: if is_ready { "ready" } else { "not_ready" },
        draining,
        checks: ReadyChecks {
            database: CheckOut::from(&check),
            migrations: MigrationsOut {
                status: match check.pending_migrations {
                    Some(0) => "up",
                    Some(_) => "pending",
                    None => "unknown",
                },
                pending: check.pending_migrations,
            },
        },
        pool: pool_figures(&state),
    };
    if is_ready {
        (StatusCode::OK, Json(body)).into_response()
    } else {
        unavailable(body)
    }
}

impl From<&DatabaseCheck> for CheckOut {
    fn from(check: &DatabaseCheck) -> Self {
        Self {
            status: if check.is_up { "up" } else { "down" },
            latency_ms: check.latency_ms,
        }
    }
}

/// The database round trip (and, when it answers, the pending migrations), shared by every
/// probe and at most [`CHECK_MAX_AGE`] old.
async fn database_check(state: &AppState) -> DatabaseCheck {
    let store = state.store.clone();
    state
        .readiness
        .database_check(CHECK_MAX_AGE, || async move {
            let started = Instant::now();
            let ping = tokio::time::timeout(DATABASE_DEADLINE, store.ping()).await;
            let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            let is_up = matches!(ping, Ok(Ok(())));
            let pending = if is_up {
                tokio::time::timeout(DATABASE_DEADLINE, store.migrator().pending_count())
                    .await
                    .ok()
                    .and_then(Result::ok)
            } else {
                None
            };
            DatabaseCheck {
                is_up,
                latency_ms,
                pending_migrations: pending,
            }
        })
        .await
}

fn pool_figures(state: &AppState) -> PoolOut {
    let stats = state.store.pool_stats();
    PoolOut {
        size: stats.size,
        idle: stats.idle,
        in_use: stats.size.saturating_sub(stats.idle),
        max: stats.max,
    }
}

/// A 503 probe answer with `Retry-After`.
fn unavailable(body: impl Serialize) -> Response {
    // A probe body, not an error: a probe answers its own document, not a problem.
    let mut response = (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    response.extensions_mut().insert(OwnBody);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_old_pool_probe_is_degraded_while_every_connection_is_in_use() {
        let figures = |in_use| PoolOut {
            size: 4,
            idle: 4 - in_use,
            in_use,
            max: 4,
        };

        let busy = LegacyPoolOut::from(figures(3));
        let full = LegacyPoolOut::from(figures(4));

        assert_eq!(
            (busy.status, busy.checked_out, busy.pool_size),
            ("healthy", 3, 4)
        );
        assert_eq!((full.status, full.total_connections), ("degraded", 4));
    }
}
