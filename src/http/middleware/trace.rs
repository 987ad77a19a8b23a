//! A span per request carrying the request id (so every log line of the request has it),
//! and one access-log line when the response is ready.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use super::RequestId;
use super::client_ip::ClientIp;

/// Wraps the request in a span and logs its outcome once.
pub async fn trace(req: Request, next: Next) -> Response {
    let request_id = req
        .extensions()
        .get::<RequestId>()
        .map(|id| id.0.clone())
        .unwrap_or_else(|| "unknown".into());
    // The route template, never the raw path: ids and junk URLs stay out of the logs' keys.
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = req.method().clone();
    // The socket peer, or what a trusted proxy says (`client_ip` middleware).
    let client_ip = req
        .extensions()
        .get::<ClientIp>()
        .map_or_else(String::new, |ip| ip.0.to_string());
    // Truncated: a client must not be able to write long lines into the log.
    let user_agent: String = req
        .headers()
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .chars()
        .take(256)
        .collect();
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        http.method = %method,
        http.route = %route,
        client_ip = %client_ip,
        principal = tracing::field::Empty,
        user_agent = %user_agent,
    );
    let started = Instant::now();
    let response = next.run(req).instrument(span.clone()).await;
    let status = response.status().as_u16();
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    let _entered = span.enter();
    let is_probe = route.starts_with("/health") || route == "/metrics";
    match (is_probe, response.status()) {
        // A probe answering 503 while draining or while the database is down is expected:
        // worth a look in aggregate, not a page.
        (true, s) if s.is_success() => {
            tracing::debug!(http.status = status, latency_ms, "request completed")
        }
        (true, _) => tracing::warn!(http.status = status, latency_ms, "request completed"),
        (false, s) if s.is_server_error() => {
            tracing::error!(http.status = status, latency_ms, "request completed");
        }
        (false, _) => tracing::info!(http.status = status, latency_ms, "request completed"),
    }
    response
}
