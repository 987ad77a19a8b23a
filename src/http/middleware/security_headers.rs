//! Security headers on every response, success or error (API.md "Cross-cutting headers").
//! The API's Content-Security-Policy allows nothing (its responses are JSON, never
//! rendered); the Swagger UI pages get only what they need (their own scripts, styles and
//! images, and calls back to this origin). Every `/v1/auth/*` response is
//! `Cache-Control: no-store` (tokens and account data).

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

use super::client_ip::OverHttps;

/// CSP of every response but the docs pages.
pub const API_CSP: &str =
    "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// CSP of `/docs`: Swagger UI's bundled script and styles (it sets inline styles), its
/// inline SVG images, and `fetch` to this origin for the document and "Try it out".
pub const DOCS_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; connect-src 'self'; font-src 'self' data:; frame-ancestors 'none'; \
     base-uri 'self'; form-action 'self'";

/// HSTS for responses to HTTPS requests: one year, subdomains included.
pub const HSTS: &str = "max-age=31536000; includeSubDomains";

/// Adds the headers once the response is ready.
pub async fn security_headers(req: Request, next: Next) -> Response {
    let is_docs = req.uri().path().starts_with("/docs");
    let is_auth = req.uri().path().starts_with("/v1/auth/");
    let https = req.extensions().get::<OverHttps>().is_some_and(|h| h.0);
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(if is_docs { DOCS_CSP } else { API_CSP }),
    );
    headers.insert(
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    if is_auth {
        // API.md: every /v1/auth/* response, including rejections from the layers.
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if https {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static(HSTS),
        );
    }
    response
}
