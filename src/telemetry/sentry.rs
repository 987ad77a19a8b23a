//! Error reporting to Sentry (`sentry`, `sentry-tower`), on only when `sentry.dsn` is set.
//!
//! Each request gets its own hub (`sentry_tower::NewSentryLayer`) tagged with its
//! `request_id`, `route` and `method` ([`tag_request`]); panics are reported by the panic
//! integration, and 5xx answers by `middleware::problem`. Events carry `environment` and
//! `release` (`starsongs@<version>+<git sha>`); personal data is off (`send_default_pii`),
//! so no IP address, cookie or header value is sent.

use std::str::FromStr;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use secrecy::ExposeSecret;

use crate::config::Settings;
use crate::http::middleware::RequestId;

/// The release name events carry.
pub fn release() -> String {
    format!("starsongs@{}+{}", super::VERSION, super::GIT_SHA)
}

/// Whether `dsn` parses as a Sentry DSN (checked at start-up).
pub fn is_valid_dsn(dsn: &str) -> bool {
    sentry::types::Dsn::from_str(dsn).is_ok()
}

/// Starts the client when `sentry.dsn` is set; keep the guard until the process ends (it
/// flushes queued events on drop).
pub fn init(settings: &Settings) -> Option<sentry::ClientInitGuard> {
    let dsn = settings.sentry.dsn.as_ref()?;
    let dsn = dsn.expose_secret();
    if !is_valid_dsn(dsn) {
        return None;
    }
    // reqwest is built without a TLS provider of its own; use ring, as the server does.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let environment = settings
        .sentry
        .environment
        .clone()
        .unwrap_or_else(|| settings.env.name().to_owned());
    let options = sentry::ClientOptions::new()
        .dsn(dsn)
        .release(release())
        .environment(environment)
        .send_default_pii(false)
        .traces_sample_rate(settings.sentry.traces_sample_rate)
        .attach_stacktrace(true);
    Some(sentry::init(options))
}

/// Tags the request's hub with its request id, route template and method.
pub async fn tag_request(req: Request, next: Next) -> Response {
    let request_id = req
        .extensions()
        .get::<RequestId>()
        .map(|id| id.0.to_string())
        .unwrap_or_default();
    let route = req.extensions().get::<MatchedPath>().map_or_else(
        || super::metrics::UNMATCHED_ROUTE.to_owned(),
        |p| p.as_str().to_owned(),
    );
    let method = req.method().as_str().to_owned();
    sentry::configure_scope(|scope| {
        scope.set_tag("request_id", request_id);
        scope.set_tag("route", route);
        scope.set_tag("method", method);
    });
    next.run(req).await
}
