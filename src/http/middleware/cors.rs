//! CORS from `cors.allowed_origins` (tower-http), plus a guard that removes every
//! `Access-Control-*` header from answers to origins not on the list: tower-http adds the
//! allowed methods and headers to any preflight, and API.md wants foreign origins to get
//! none at all.

use std::time::Duration;

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::Response;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::config::CorsSettings;

/// How long browsers may cache a preflight answer.
const MAX_AGE: Duration = Duration::from_secs(600);

/// The CORS layer for these settings.
pub fn layer(settings: &CorsSettings) -> CorsLayer {
    let origins = &settings.allowed_origins;
    let allow_origin = if origins.iter().any(|o| o == "*") {
        // Never combined with credentials (they are not enabled): browsers forbid it.
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
            Method::OPTIONS,
        ])
        // Named explicitly: `*` never covers Authorization.
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::IF_MATCH,
            header::IF_NONE_MATCH,
            HeaderName::from_static("idempotency-key"),
            HeaderName::from_static("x-request-id"),
            HeaderName::from_static("x-api-key"),
        ])
        .expose_headers([
            header::ETAG,
            header::LOCATION,
            header::RETRY_AFTER,
            HeaderName::from_static("x-request-id"),
            HeaderName::from_static("ratelimit-limit"),
            HeaderName::from_static("ratelimit-remaining"),
            HeaderName::from_static("ratelimit-reset"),
            HeaderName::from_static("x-ratelimit-limit"),
            HeaderName::from_static("x-ratelimit-remaining"),
            HeaderName::from_static("x-ratelimit-reset"),
        ])
        .max_age(MAX_AGE)
}

/// Drops `Access-Control-*` headers unless the response allows the request's origin.
pub async fn strip_foreign(req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    let is_allowed = response
        .headers()
        .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN);
    if !is_allowed {
        let foreign: Vec<HeaderName> = response
            .headers()
            .keys()
            .filter(|name| name.as_str().starts_with("access-control-"))
            .cloned()
            .collect();
        for name in foreign {
            response.headers_mut().remove(name);
        }
    }
    response
}
