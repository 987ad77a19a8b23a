//! A span per request carrying the request id and the trace id (so every log line of the
//! request has them), joined to the caller's W3C trace (`telemetry::otel`), and one
//! access-log line when the response is ready.

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::StatusCode;
use axum::response::Response;
use pin_project_lite::pin_project;
use tower::{Layer, Service};
use tracing::Instrument;
use tracing::instrument::Instrumented;

use super::RequestId;
use super::client_ip::ClientIp;
use crate::telemetry::metrics::UNMATCHED_ROUTE;
use crate::telemetry::otel::{self, RequestTrace, ServerSpan};

/// Longest user agent logged, in characters: a client must not be able to write long
/// lines into the log.
const USER_AGENT_CHARS: usize = 256;

/// `text` cut to at most `chars` characters, without copying.
fn truncated(text: &str, chars: usize) -> &str {
    text.char_indices()
        .nth(chars)
        .map_or(text, |(end, _)| &text[..end])
}

/// An IP address, or nothing when the request has none (logged as an empty string).
struct MaybeIp(Option<ClientIp>);

impl std::fmt::Display for MaybeIp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(ClientIp(ip)) => ip.fmt(f),
            None => Ok(()),
        }
    }
}

/// Wraps each request in a span and logs its outcome once.
#[derive(Debug, Clone, Copy, Default)]
pub struct TraceLayer;

impl<S> Layer<S> for TraceLayer {
    type Service = TraceService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TraceService { inner }
    }
}

/// See [`TraceLayer`].
#[derive(Debug, Clone)]
pub struct TraceService<S> {
    inner: S,
}

impl<S> Service<Request> for TraceService<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = AccessLog<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        let extensions = req.extensions();
        let request_id = extensions
            .get::<RequestId>()
            .map_or("unknown", super::request_id::text);
        // The route template, never the raw path: ids and junk URLs stay out of the logs'
        // keys.
        let route = extensions
            .get::<MatchedPath>()
            .map_or(UNMATCHED_ROUTE, MatchedPath::as_str);
        let is_probe = route.starts_with("/health") || route == "/metrics";
        // The socket peer, or what a trusted proxy says (`client_ip` layer).
        let client_ip = MaybeIp(extensions.get::<ClientIp>().copied());
        let user_agent = req
            .headers()
            .get(axum::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map_or("", |agent| truncated(agent, USER_AGENT_CHARS));
        macro_rules! request_span {
            ($trace_id:expr) => {
                tracing::info_span!(
                    "request",
                    request_id = %request_id,
                    http.method = %req.method(),
                    http.route = route,
                    client_ip = %client_ip,
                    principal = tracing::field::Empty,
                    user_agent = user_agent,
                    trace_id = $trace_id,
                    otel.name = tracing::field::Empty,
                    otel.kind = tracing::field::Empty,
                )
            };
        }
        let parent = otel::incoming(req.headers());
        let (span, trace_id) = if otel::is_exporting() {
            // OpenTelemetry gives the span its trace id (the caller's, or a new one) once
            // the span exists.
            let span = request_span!(tracing::field::Empty);
            let trace_id = otel::join(
                &span,
                parent,
                ServerSpan {
                    method: req.method().as_str(),
                    route,
                    path: req.uri().path(),
                    client_address: client_ip.0.map(|ClientIp(ip)| ip),
                },
            );
            span.record("trace_id", otel::TraceHex::of(trace_id).as_str());
            (span, trace_id)
        } else {
            // Known before the span: given at its creation, not recorded after.
            let trace_id = otel::trace_id_of(&parent);
            let hex = otel::TraceHex::of(trace_id);
            (request_span!(hex.as_str()), trace_id)
        };
        req.extensions_mut().insert(RequestTrace(trace_id));
        let started = Instant::now();
        let inner = {
            let _entered = span.enter();
            self.inner.call(req)
        };
        AccessLog {
            inner: inner.instrument(span),
            started,
            is_probe,
        }
    }
}

pin_project! {
    /// The inner response, polled inside the request's span, logged once when ready.
    pub struct AccessLog<F> {
        #[pin]
        inner: Instrumented<F>,
        started: Instant,
        is_probe: bool,
    }
}

impl<F, E> Future for AccessLog<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let result = ready!(this.inner.as_mut().poll(cx));
        if let Ok(response) = &result {
            let latency_ms = this.started.elapsed().as_secs_f64() * 1000.0;
            let span = this.inner.span();
            otel::record_status(span, response.status().as_u16());
            let _entered = span.enter();
            log(*this.is_probe, response.status(), latency_ms);
        }
        Poll::Ready(result)
    }
}

/// The access-log line, at the level its outcome deserves.
fn log(is_probe: bool, status: StatusCode, latency_ms: f64) {
    let code = status.as_u16();
    match (is_probe, status) {
        // A probe answering 503 while draining or while the database is down is expected:
        // worth a look in aggregate, not a page.
        (true, s) if s.is_success() => {
            tracing::debug!(http.status = code, latency_ms, "request completed");
        }
        (true, _) => tracing::warn!(http.status = code, latency_ms, "request completed"),
        (false, s) if s.is_server_error() => {
            tracing::error!(http.status = code, latency_ms, "request completed");
        }
        (false, _) => tracing::info!(http.status = code, latency_ms, "request completed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_agents_are_cut_at_a_character_boundary() {
        assert_eq!(truncated("curl/8", 256), "curl/8");
        assert_eq!(truncated(&"é".repeat(300), 256), "é".repeat(256));
        assert_eq!(truncated("abc", 2), "ab");
        assert_eq!(truncated("", 2), "");
    }
}
