//! Limits applied before any handler work: the size of the request head, and load
//! shedding (a bounded number of requests in flight; the rest get 503 at once instead of
//! queueing without bound). Health probes are never shed, so an overloaded instance is
//! not restarted for being busy.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;

use crate::http::error::ApiError;
use crate::telemetry::metrics::LOAD_SHED_TOTAL;

/// Size of the request line and headers, as sent (near enough: separators counted).
fn head_size(req: &Request) -> usize {
    let line = req.method().as_str().len() + req.uri().to_string().len() + 12;
    let headers: usize = req
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    line + headers
}

/// 431 for a request head larger than `max` bytes.
pub async fn header_limit(State(max): State<usize>, req: Request, next: Next) -> Response {
    if head_size(&req) > max {
        return ApiError::from_status(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE).into_response();
    }
    next.run(req).await
}

/// The in-flight budget.
#[derive(Debug, Clone)]
pub struct InFlight(pub Arc<Semaphore>);

/// Seconds a shed client is asked to wait.
pub const SHED_RETRY_AFTER_SECS: u64 = 1;

/// 503 with `Retry-After` when `server.max_in_flight` requests are already running.
pub async fn shed_load(State(in_flight): State<InFlight>, req: Request, next: Next) -> Response {
    if req.uri().path().starts_with("/health") {
        return next.run(req).await;
    }
    let Ok(_permit) = in_flight.0.try_acquire() else {
        tracing::warn!("load shed: too many requests in flight");
        metrics::counter!(LOAD_SHED_TOTAL).increment(1);
        return ApiError::unavailable(
            "The service is overloaded; retry shortly",
            SHED_RETRY_AFTER_SECS,
        )
        .into_response();
    };
    next.run(req).await
}
