//! Renders every error response as `application/problem+json`: the handler's `Problem`
//! when there is one, a generic one for statuses from the router or a layer. Adds
//! `instance` and `request_id`, and logs 5xx once with the cause.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

use super::RequestId;
use crate::http::error::{PROBLEM_JSON, Problem, ProblemExtension};

/// Marks an error-status response whose body is its own documented format (the readiness
/// document on 503), which must not be replaced.
#[derive(Debug, Clone, Copy)]
pub struct OwnBody;

/// Sends a 5xx to Sentry (a no-op when Sentry is off), on the request's hub, which carries
/// its request id, route and method.
fn report(status: u16, detail: &str, cause: Option<&anyhow::Error>) {
    sentry::with_scope(
        |scope| scope.set_tag("http.status", status),
        || match cause {
            Some(cause) => {
                sentry::capture_error(AsRef::<dyn std::error::Error>::as_ref(cause));
            }
            None => {
                sentry::capture_message(&format!("HTTP {status}: {detail}"), sentry::Level::Error);
            }
        },
    );
}

/// Replaces the body of any 4xx/5xx response with its problem document.
pub async fn problem(req: Request, next: Next) -> Response {
    let instance = req.uri().path().to_owned();
    let request_id = req
        .extensions()
        .get::<RequestId>()
        .map(|id| id.0.to_string());
    let response = next.run(req).await;
    let status = response.status();
    let is_error = status.is_client_error() || status.is_server_error();
    if !is_error || response.extensions().get::<OwnBody>().is_some() {
        return response;
    }
    let (mut parts, _body) = response.into_parts();
    let (mut problem, source) = match parts.extensions.remove::<ProblemExtension>() {
        Some(found) => ((*found.problem).clone(), found.source),
        None => (Problem::for_status(status), None),
    };
    problem.instance = Some(instance);
    problem.request_id = request_id;
    if status.is_server_error() {
        match &source {
            Some(cause) => {
                tracing::error!(http.status = status.as_u16(), error = ?cause, "request failed")
            }
            None => tracing::error!(http.status = status.as_u16(), "request failed"),
        }
        // Panics were reported by the panic hook. 503s (overload, database or rate
        // limiter unavailable, shutdown) are operational, not bugs: metrics and logs show
        // them, and reporting each would flood Sentry exactly when things are busiest.
        if parts.extensions.get::<super::Panicked>().is_none()
            && status != axum::http::StatusCode::SERVICE_UNAVAILABLE
        {
            report(status.as_u16(), &problem.detail, source.as_deref());
        }
    } else {
        tracing::debug!(http.status = status.as_u16(), detail = %problem.detail, "request rejected");
    }
    let body = serde_json::to_vec(&problem).unwrap_or_default();
    parts
        .headers
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body))
}
