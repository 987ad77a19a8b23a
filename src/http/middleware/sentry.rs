//! Tags each request's Sentry hub with its request id, route template, method and trace
//! id, so an event or transaction says which request it came from.

use std::task::{Context, Poll};

use axum::extract::{MatchedPath, Request};
use tower::{Layer, Service};

use super::RequestId;

/// Tags the request's hub with its request id, route template and method.
#[derive(Debug, Clone, Copy, Default)]
pub struct TagRequestLayer;

impl<S> Layer<S> for TagRequestLayer {
    type Service = TagRequest<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TagRequest { inner }
    }
}

/// See [`TagRequestLayer`].
#[derive(Debug, Clone)]
pub struct TagRequest<S> {
    inner: S,
}

impl<S> Service<Request> for TagRequest<S>
where
    S: Service<Request>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let request_id = req
            .extensions()
            .get::<RequestId>()
            .map(|id| super::request_id::text(id).to_owned())
            .unwrap_or_default();
        let route = req.extensions().get::<MatchedPath>().map_or_else(
            || crate::telemetry::metrics::UNMATCHED_ROUTE.to_owned(),
            |p| p.as_str().to_owned(),
        );
        let method = req.method().as_str().to_owned();
        // The request's trace (the trace layer, outside this one): errors, log lines and
        // spans join up by it.
        let trace_id = req
            .extensions()
            .get::<crate::telemetry::otel::RequestTrace>()
            .map(|trace| trace.0.to_string());
        // The hub of this request (`NewSentryLayer`) is current while the outer layers'
        // futures are polled and while this call runs.
        sentry::configure_scope(|scope| {
            scope.set_tag("request_id", request_id);
            scope.set_tag("route", route);
            scope.set_tag("method", method);
            if let Some(trace_id) = trace_id {
                scope.set_tag("trace_id", trace_id);
            }
        });
        self.inner.call(req)
    }
}
