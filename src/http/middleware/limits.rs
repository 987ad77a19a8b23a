//! Limits applied before any handler work: the size of the request head, and load
//! shedding (a bounded number of requests in flight; the rest get 503 at once instead of
//! queueing without bound). Health probes are never shed, so an overloaded instance is
//! not restarted for being busy.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum::extract::Request;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use pin_project_lite::pin_project;
use tower::limit::concurrency::future::ResponseFuture;
use tower::limit::{ConcurrencyLimit, GlobalConcurrencyLimitLayer};
use tower::load_shed::{self, LoadShed};
use tower::{Layer, Service};

use super::Shortcut;
use crate::http::error::ApiError;
use crate::telemetry::metrics::LOAD_SHED_TOTAL;

/// Length of the URI as written in the request line (what `uri.to_string()` would be),
/// without formatting it.
fn uri_len(uri: &Uri) -> usize {
    uri.scheme_str().map_or(0, |s| s.len() + 3)
        + uri.authority().map_or(0, |a| a.as_str().len())
        + uri.path().len()
        + uri.query().map_or(0, |q| q.len() + 1)
}

/// Size of the request line and headers, as sent (near enough: separators counted).
fn head_size(req: &Request) -> usize {
    let line = req.method().as_str().len() + uri_len(req.uri()) + 12;
    let headers: usize = req
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    line + headers
}

/// 431 for a request head larger than `max` bytes.
#[derive(Debug, Clone, Copy)]
pub struct HeaderLimitLayer {
    max: usize,
}

impl HeaderLimitLayer {
    /// At most `max` bytes of request line and headers.
    pub fn new(max: usize) -> Self {
        Self { max }
    }
}

impl<S> Layer<S> for HeaderLimitLayer {
    type Service = HeaderLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        HeaderLimit {
            inner,
            max: self.max,
        }
    }
}

/// See [`HeaderLimitLayer`].
#[derive(Debug, Clone)]
pub struct HeaderLimit<S> {
    inner: S,
    max: usize,
}

impl<S> Service<Request> for HeaderLimit<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Shortcut<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        if head_size(&req) > self.max {
            return Shortcut::answer(
                ApiError::from_status(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE).into_response(),
            );
        }
        Shortcut::inner(self.inner.call(req))
    }
}

/// Seconds a shed client is asked to wait.
pub const SHED_RETRY_AFTER_SECS: u64 = 1;

/// 503 with `Retry-After` when `server.max_in_flight` requests are already running:
/// tower's `GlobalConcurrencyLimit` (one semaphore shared by every route) under
/// `LoadShed`, which refuses at once instead of waiting for a permit. Health probes are
/// routed around this layer (see [`super::apply`]).
#[derive(Debug, Clone)]
pub struct ShedLoadLayer {
    limit: GlobalConcurrencyLimitLayer,
}

impl ShedLoadLayer {
    /// At most `max_in_flight` requests at once.
    pub fn new(max_in_flight: usize) -> Self {
        Self {
            limit: GlobalConcurrencyLimitLayer::new(max_in_flight),
        }
    }
}

impl<S> Layer<S> for ShedLoadLayer {
    type Service = ShedLoad<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ShedLoad {
            limited: LoadShed::new(self.limit.layer(inner)),
        }
    }
}

/// See [`ShedLoadLayer`].
#[derive(Debug, Clone)]
pub struct ShedLoad<S> {
    limited: LoadShed<ConcurrencyLimit<S>>,
}

impl<S> Service<Request> for ShedLoad<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Shed<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // `LoadShed` is ready once its inner service is: it takes a permit now, or notes
        // that there is none and refuses the next call. It fails only when `S` does.
        ready!(self.limited.poll_ready(cx)).ok();
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> Self::Future {
        Shed {
            inner: self.limited.call(req),
        }
    }
}

pin_project! {
    /// The limited request's response, or 503 when it was shed.
    pub struct Shed<F> {
        #[pin]
        inner: load_shed::future::ResponseFuture<ResponseFuture<F>>,
    }
}

impl<F> Future for Shed<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match ready!(self.project().inner.poll(cx)) {
            Ok(response) => Poll::Ready(Ok(response)),
            // `Overloaded`: the inner service cannot fail.
            Err(_) => {
                tracing::warn!("load shed: too many requests in flight");
                metrics::counter!(LOAD_SHED_TOTAL).increment(1);
                let refused = ApiError::unavailable(
                    "The service is overloaded; retry shortly",
                    SHED_RETRY_AFTER_SECS,
                );
                Poll::Ready(Ok(refused.into_response()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_uri_length_is_that_of_its_text() {
        for text in [
            "/",
            "/v1/artists/7",
            "/v1/artists?page=1&page_size=10",
            "/v1/artists?",
            "http://example.com/v1/songs?q=a%20b",
            "https://example.com:8443/",
            "example.com:443",
            "*",
        ] {
            let uri: Uri = text.parse().unwrap();

            assert_eq!(uri_len(&uri), uri.to_string().len(), "{text}");
        }
    }
}
