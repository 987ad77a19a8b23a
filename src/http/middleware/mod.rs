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
mod sentry;
mod trace;

use std::any::Any;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::Router;
use axum::body::Body;
use axum::extract::DefaultBodyLimit;
use axum::http::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use pin_project_lite::pin_project;
use sentry_tower::NewSentryLayer;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;

use crate::state::AppState;
pub use problem::OwnBody;
pub use request_id::RequestId;

/// Wraps `api` and `probes` in the stack, outermost first: request id → client IP and
/// scheme → trace and access log → Sentry hub tagged with request id, route and method
/// (only when `sentry.dsn` is set) → metrics → security headers → problem rendering →
/// panic catcher → CORS → header size → timeout → load shedding → rate limit → handler
/// (whose extractors authenticate). Load shedding and the rate limit wrap only `api`, its
/// fallback included: a health probe is never shed, and the rate limit covers only `/v1`
/// anyway. The body limit is
/// axum's `DefaultBodyLimit`, enforced by the body extractors (413 for a large
/// `Content-Length` or a long stream).
///
/// Every layer is a plain `tower::Layer` holding only what it needs (STYLE §3): no layer
/// clones the application state or boxes a future per request, except the rate limiter,
/// whose check may wait for Redis.
pub fn apply(api: Router, probes: Router, state: &AppState) -> Router {
    let settings = &state.settings;
    let client_ip = client_ip::ClientIpLayer::new(client_ip::ClientIpConfig::new(
        &settings.server.trusted_proxies,
        settings.server.client_ip_header,
        settings.server.tls.is_enabled(),
    ));
    let sentry_on = settings.sentry.dsn.is_some();
    let stack = ServiceBuilder::new()
        .layer(request_id::layers())
        .layer(client_ip)
        .layer(trace::TraceLayer)
        // A hub per request only when Sentry is on: it costs an allocation per request.
        .option_layer(sentry_on.then(NewSentryLayer::<Request<Body>>::new_from_top))
        .option_layer(sentry_on.then(|| crate::telemetry::sentry::http_layer(settings)))
        .option_layer(sentry_on.then_some(sentry::TagRequestLayer))
        .layer(metrics::MetricsLayer)
        .layer(security_headers::SecurityHeadersLayer)
        .layer(problem::ProblemLayer)
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(cors::StripForeignLayer)
        .layer(cors::layer(&settings.cors))
        .layer(limits::HeaderLimitLayer::new(
            settings.server.max_header_bytes,
        ))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::GATEWAY_TIMEOUT,
            settings.server.request_timeout(),
        ));
    // One `Router::layer` call per part: each call boxes every route once more, which
    // costs an allocation and a clone per request.
    let body_limit = DefaultBodyLimit::max(settings.server.max_body_bytes);
    let limited = ServiceBuilder::new()
        .layer(limits::ShedLoadLayer::new(settings.server.max_in_flight))
        .layer(rate_limit::RateLimitLayer::new(state))
        .layer(body_limit);
    api.layer(limited)
        .merge(probes.layer(body_limit))
        .layer(stack)
}

/// The admin listener's stack: request id → client IP → trace → Sentry hub → security
/// headers → problem rendering → panic catcher. No CORS, limits or authentication: the
/// listener must not be reachable from outside.
pub fn apply_admin(router: Router, state: &AppState) -> Router {
    let client_ip = client_ip::ClientIpLayer::new(client_ip::ClientIpConfig::new(
        &state.settings.server.trusted_proxies,
        state.settings.server.client_ip_header,
        false,
    ));
    let sentry_on = state.settings.sentry.dsn.is_some();
    let stack = ServiceBuilder::new()
        .layer(request_id::layers())
        .layer(client_ip)
        .layer(trace::TraceLayer)
        .option_layer(sentry_on.then(NewSentryLayer::<Request<Body>>::new_from_top))
        .option_layer(sentry_on.then_some(sentry::TagRequestLayer))
        .layer(security_headers::SecurityHeadersLayer)
        .layer(problem::ProblemLayer)
        .layer(CatchPanicLayer::custom(panic_response));
    router.layer(stack)
}

pin_project! {
    /// A layer's future: its own answer, ready at once, or the inner service's.
    #[project = ShortcutProj]
    #[allow(missing_docs)] // the variants' fields: pin-project-lite takes no docs there
    pub enum Shortcut<F> {
        /// Answered by the layer.
        Answered { response: Option<Response> },
        /// Passed on.
        Inner { #[pin] inner: F },
    }
}

impl<F> Shortcut<F> {
    /// The layer's own answer.
    pub fn answer(response: Response) -> Self {
        Self::Answered {
            response: Some(response),
        }
    }

    /// The inner service's answer.
    pub fn inner(inner: F) -> Self {
        Self::Inner { inner }
    }
}

impl<F, E> Future for Shortcut<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            // Polled again after completion only by a broken caller: answer again, emptily.
            ShortcutProj::Answered { response } => {
                Poll::Ready(Ok(response.take().unwrap_or_default()))
            }
            ShortcutProj::Inner { inner } => inner.poll(cx),
        }
    }
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
