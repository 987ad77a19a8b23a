//! The middleware stack, built once, outermost first (DESIGN.md "Shape"). Route-specific
//! layers belong in each resource's `router()`, never here.

pub mod client_ip;
mod cors;
mod limits;
mod metrics;
mod problem;
mod rate_limit;
mod request_id;
mod security_headers;
mod trace;

use std::any::Any;

use axum::Router;
use axum::body::Body;
use axum::extract::DefaultBodyLimit;
use axum::http::Request;
use axum::http::StatusCode;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use sentry_tower::{NewSentryLayer, SentryHttpLayer};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;

use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::state::AppState;
pub use problem::OwnBody;
pub use request_id::RequestId;

/// Wraps `router` in the stack, outermost first: request id → client IP and scheme →
/// trace and access log → Sentry hub tagged with request id, route and method (only when
/// `sentry.dsn` is set) → metrics → security headers → problem rendering → panic
/// catcher → CORS →
/// header size → timeout → load shedding → rate limit → handler (whose extractors
/// authenticate). The body limit is axum's `DefaultBodyLimit`, enforced by the body
/// extractors (413 for a large `Content-Length` or a long stream).
pub fn apply(router: Router, state: &AppState) -> Router {
    let settings = &state.settings;
    let client_ip = Arc::new(client_ip::ClientIpConfig::new(
        &settings.server.trusted_proxies,
        settings.server.tls.is_enabled(),
    ));
    let in_flight = limits::InFlight(Arc::new(Semaphore::new(settings.server.max_in_flight)));
    let sentry_on = settings.sentry.dsn.is_some();
    let stack = ServiceBuilder::new()
        .layer(from_fn(request_id::request_id))
        .layer(from_fn_with_state(client_ip, client_ip::client_ip))
        .layer(from_fn(trace::trace))
        // A hub per request only when Sentry is on: it costs an allocation per request.
        .option_layer(sentry_on.then(NewSentryLayer::<Request<Body>>::new_from_top))
        .option_layer(sentry_on.then(|| SentryHttpLayer::new().enable_transaction()))
        .option_layer(sentry_on.then(|| from_fn(crate::telemetry::sentry::tag_request)))
        .layer(from_fn(metrics::record))
        .layer(from_fn(security_headers::security_headers))
        .layer(from_fn(problem::problem))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(from_fn(cors::strip_foreign))
        .layer(cors::layer(&settings.cors))
        .layer(from_fn_with_state(
            settings.server.max_header_bytes,
            limits::header_limit,
        ))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::GATEWAY_TIMEOUT,
            settings.server.request_timeout(),
        ))
        .layer(from_fn_with_state(in_flight, limits::shed_load))
        .layer(from_fn_with_state(state.clone(), rate_limit::rate_limit));
    router
        .layer(DefaultBodyLimit::max(settings.server.max_body_bytes))
        .layer(stack)
}

/// The admin listener's stack: request id → client IP → trace → Sentry hub → security
/// headers → problem rendering → panic catcher. No CORS, limits or authentication: the
/// listener must not be reachable from outside.
pub fn apply_admin(router: Router, state: &AppState) -> Router {
    let client_ip = Arc::new(client_ip::ClientIpConfig::new(
        &state.settings.server.trusted_proxies,
        false,
    ));
    let sentry_on = state.settings.sentry.dsn.is_some();
    let stack = ServiceBuilder::new()
        .layer(from_fn(request_id::request_id))
        .layer(from_fn_with_state(client_ip, client_ip::client_ip))
        .layer(from_fn(trace::trace))
        .option_layer(sentry_on.then(NewSentryLayer::<Request<Body>>::new_from_top))
        .option_layer(sentry_on.then(|| from_fn(crate::telemetry::sentry::tag_request)))
        .layer(from_fn(security_headers::security_headers))
        .layer(from_fn(problem::problem))
        .layer(CatchPanicLayer::custom(panic_response));
    router.layer(stack)
}

/// Marks a 500 made from a panic: the panic was already reported to Sentry by its panic
/// hook, so `problem` does not report it again.
#[derive(Debug, Clone, Copy)]
pub struct Panicked;

/// A panic becomes a bare 500, which `problem` renders and logs; the panic message is
/// logged here (the client sees only the fixed detail).
fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-text panic payload".to_owned());
    tracing::error!(panic.message = %message, "handler panicked");
    let mut response = StatusCode::INTERNAL_SERVER_ERROR.into_response();
    response.extensions_mut().insert(Panicked);
    response
}
