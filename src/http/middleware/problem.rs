//! Renders every error response as `application/problem+json`: the handler's `Problem`
//! when there is one, a generic one for statuses from the router or a layer. Adds
//! `instance` and `request_id`, and logs 5xx once with the cause. Nothing is built for a
//! successful response: the request's URI and id are kept (two reference counts) and
//! turned into fields only for an error.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum::BoxError;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::Request;
use axum::http::{HeaderValue, Uri, header};
use axum::response::Response;
use pin_project_lite::pin_project;
use tower::{Layer, Service};

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
fn render<B>(response: Response<B>, instance: &Uri, request_id: Option<&RequestId>) -> Response
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let status = response.status();
    let is_error = status.is_client_error() || status.is_server_error();
    if !is_error || response.extensions().get::<OwnBody>().is_some() {
        return response.map(Body::new);
    }
    let (mut parts, _body) = response.into_parts();
    let (mut problem, source) = match parts.extensions.remove::<ProblemExtension>() {
        Some(found) => ((*found.problem).clone(), found.source),
        None => (Problem::for_status(status), None),
    };
    problem.instance = Some(instance.path().to_owned());
    problem.request_id = request_id.map(|id| super::request_id::text(id).to_owned());
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

/// Renders error responses as problem documents.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProblemLayer;

impl<S> Layer<S> for ProblemLayer {
    type Service = ProblemService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ProblemService { inner }
    }
}

/// See [`ProblemLayer`].
#[derive(Debug, Clone)]
pub struct ProblemService<S> {
    inner: S,
}

impl<S, B> Service<Request> for ProblemService<S>
where
    S: Service<Request, Response = Response<B>>,
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Rendered<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let instance = req.uri().clone();
        let request_id = req.extensions().get::<RequestId>().cloned();
        Rendered {
            inner: self.inner.call(req),
            instance,
            request_id,
        }
    }
}

pin_project! {
    /// The inner response, rendered as a problem when it is an error.
    pub struct Rendered<F> {
        #[pin]
        inner: F,
        instance: Uri,
        request_id: Option<RequestId>,
    }
}

impl<F, B, E> Future for Rendered<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = ready!(this.inner.poll(cx))?;
        Poll::Ready(Ok(render(
            response,
            this.instance,
            this.request_id.as_ref(),
        )))
    }
}
