//! Per-client rate limiting on `/v1` (API.md "Cross-cutting headers"). The client is the
//! authenticated principal when the request carries a valid credential (so one user has
//! one budget wherever they connect from), otherwise the client IP. `/v1/auth/*` has its
//! own, stricter budget. Health, docs and the OpenAPI document are not limited, and
//! neither is any request from a client address in `rate_limit.exempt_clients` (trusted
//! server-side callers); the per-username login lockout is not a rate limit and still
//! applies to them.
//!
//! Limited responses carry `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset`
//! and their `X-RateLimit-*` twins; a refused request gets 429 with `Retry-After`.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::client_ip::ClientIp;
use crate::auth::accounts::Principal;
use crate::http::auth;
use crate::http::error::ApiError;
use crate::ratelimit::{Decision, Scope};
use crate::state::AppState;
use crate::telemetry::metrics::{RATE_LIMIT_BACKEND_ERRORS_TOTAL, RATE_LIMIT_REJECTIONS_TOTAL};

const HEADERS: [(&str, &str); 3] = [
    ("ratelimit-limit", "x-ratelimit-limit"),
    ("ratelimit-remaining", "x-ratelimit-remaining"),
    ("ratelimit-reset", "x-ratelimit-reset"),
];

fn add_headers(headers: &mut HeaderMap, decision: &Decision) {
    let values = [
        u64::from(decision.limit),
        u64::from(decision.remaining),
        decision.reset_secs,
    ];
    for ((name, twin), value) in HEADERS.iter().zip(values) {
        for header in [name, twin] {
            headers.insert(HeaderName::from_static(header), HeaderValue::from(value));
        }
    }
}

/// Spends one request of the client's budget, or refuses the request.
pub async fn rate_limit(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let limits = state.rate_limits.clone();
    let path = req.uri().path();
    if !limits.enabled || !path.starts_with("/v1/") {
        return next.run(req).await;
    }
    let scope = if path.starts_with("/v1/auth/") {
        Scope::Auth
    } else {
        Scope::Api
    };
    let ip = req.extensions().get::<ClientIp>().map(|c| c.0);
    if ip.is_some_and(|ip| limits.is_exempt(ip)) {
        return next.run(req).await;
    }
    let (mut parts, body) = req.into_parts();
    // An invalid credential is keyed by IP here and refused by the extractor later.
    let client = match auth::resolve(&mut parts, &state).await {
        Ok(principal) if principal != Principal::Anonymous => principal.scope(),
        _ => ip.map_or_else(|| "ip:unknown".to_owned(), |ip| format!("ip:{ip}")),
    };
    let req = Request::from_parts(parts, body);
    let key = format!("{}:{client}", scope.as_str());
    match limits.limiter.check(&key, limits.quota(scope)).await {
        Ok(decision) if decision.allowed => {
            let mut response = next.run(req).await;
            add_headers(response.headers_mut(), &decision);
            response
        }
        Ok(decision) => {
            tracing::info!(rate_limit.scope = scope.as_str(), "rate limit exceeded");
            metrics::counter!(RATE_LIMIT_REJECTIONS_TOTAL, "scope" => scope.as_str()).increment(1);
            let mut response = ApiError::too_many_requests(
                "Too many requests; slow down and retry after the time in Retry-After",
                decision.retry_after_secs,
            )
            .into_response();
            add_headers(response.headers_mut(), &decision);
            response
        }
        Err(error) => {
            metrics::counter!(RATE_LIMIT_BACKEND_ERRORS_TOTAL).increment(1);
            limits.report_failure(&error);
            if limits.fail_open {
                next.run(req).await
            } else {
                ApiError::unavailable("Rate limiting is unavailable; retry shortly", 1)
                    .into_response()
            }
        }
    }
}
