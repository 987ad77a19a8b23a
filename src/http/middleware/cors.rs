//! CORS from `cors.allowed_origins` (tower-http), plus a guard that removes every
//! `Access-Control-*` header from answers to origins not on the list: tower-http adds the
//! allowed methods and headers to any preflight, and API.md wants foreign origins to get
//! none at all.

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::response::Response;
use pin_project_lite::pin_project;
use tower::{Layer, Service};
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
fn strip_foreign(response: &mut Response) {
    let headers = response.headers_mut();
    if headers.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN) {
        return;
    }
    let is_foreign = |name: &HeaderName| name.as_str().starts_with("access-control-");
    if !headers.keys().any(is_foreign) {
        return;
    }
    let foreign: Vec<HeaderName> = headers.keys().filter(|n| is_foreign(n)).cloned().collect();
    for name in foreign {
        headers.remove(name);
    }
}

/// See [`strip_foreign`].
#[derive(Debug, Clone, Copy, Default)]
pub struct StripForeignLayer;

impl<S> Layer<S> for StripForeignLayer {
    type Service = StripForeignService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        StripForeignService { inner }
    }
}

/// See [`strip_foreign`].
#[derive(Debug, Clone)]
pub struct StripForeignService<S> {
    inner: S,
}

impl<S> Service<Request> for StripForeignService<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Stripped<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        Stripped {
            inner: self.inner.call(req),
        }
    }
}

pin_project! {
    /// The inner response without foreign `Access-Control-*` headers.
    pub struct Stripped<F> {
        #[pin]
        inner: F,
    }
}

impl<F, E> Future for Stripped<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut response = ready!(self.project().inner.poll(cx))?;
        strip_foreign(&mut response);
        Poll::Ready(Ok(response))
    }
}
