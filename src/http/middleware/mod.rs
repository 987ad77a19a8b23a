//! The middleware stack, built once, outermost first (DESIGN.md "Shape"). Route-specific
//! layers belong in each resource's `router()`, never here.

mod cors;
mod problem;
mod request_id;
mod trace;

use std::any::Any;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::middleware::from_fn;
use axum::response::{IntoResponse, Response};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;

use crate::config::Settings;
pub use problem::OwnBody;
pub use request_id::RequestId;

/// Wraps `router` in the stack: request id → trace and access log → problem rendering →
/// panic catcher → CORS → timeout → handler. The body limit is axum's `DefaultBodyLimit`,
/// enforced by the body extractors (413 for a large `Content-Length` or a long stream).
pub fn apply(router: Router, settings: &Settings) -> Router {
    let stack = ServiceBuilder::new()
        .layer(from_fn(request_id::request_id))
        .layer(from_fn(trace::trace))
        .layer(from_fn(problem::problem))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(from_fn(cors::strip_foreign))
        .layer(cors::layer(&settings.cors))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::GATEWAY_TIMEOUT,
            settings.server.request_timeout(),
        ));
    router
        .layer(DefaultBodyLimit::max(settings.server.max_body_bytes))
        .layer(stack)
}

/// A panic becomes a bare 500, which `problem` renders and logs; the panic message is
/// logged here (the client sees only the fixed detail).
fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-text panic payload".to_owned());
    tracing::error!(panic.message = %message, "handler panicked");
    StatusCode::INTERNAL_SERVER_ERROR.into_response()
}
