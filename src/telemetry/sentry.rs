//! Error reporting to Sentry (`sentry`, `sentry-tower`), on only when `sentry.dsn` is set.
//!
//! Each request gets its own hub (`sentry_tower::NewSentryLayer`) tagged with its
//! `request_id`, `route` and `method` ([`tag_request`]); panics are reported by the panic
//! integration, and 5xx answers by `middleware::problem`. Events carry `environment` and
//! `release` (`starsongs@<version>+<git sha>`); personal data is off (`send_default_pii`)
//! and [`scrub`] removes header values, query strings, cookies and bodies that the HTTP
//! integration would attach, so no IP address, search term or user agent is sent.

use std::str::FromStr;

use std::task::{Context, Poll};

use axum::extract::{MatchedPath, Request};
use secrecy::ExposeSecret;
use tower::{Layer, Service};

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
        .attach_stacktrace(true)
        .before_send(|event| Some(scrub(event)));
    Some(sentry::init(options))
}

/// Removes what could identify a person from an event's request: header values (user
/// agent, `Forwarded` with client addresses), the query string (search terms), cookies,
/// the body and the environment. Method and path stay; the request id tag finds the rest
/// in the logs.
pub fn scrub(mut event: sentry::protocol::Event<'static>) -> sentry::protocol::Event<'static> {
    if let Some(request) = event.request.as_mut() {
        request.headers.clear();
        request.query_string = None;
        request.cookies = None;
        request.data = None;
        request.env.clear();
        if let Some(url) = request.url.as_mut() {
            url.set_query(None);
            url.set_fragment(None);
            let _ = url.set_username("");
            let _ = url.set_password(None);
        }
    }
    event.user = None;
    event
}

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
            .map(|id| id.0.to_string())
            .unwrap_or_default();
        let route = req.extensions().get::<MatchedPath>().map_or_else(
            || super::metrics::UNMATCHED_ROUTE.to_owned(),
            |p| p.as_str().to_owned(),
        );
        let method = req.method().as_str().to_owned();
        // The hub of this request (`NewSentryLayer`) is current while the outer layers'
        // futures are polled and while this call runs.
        sentry::configure_scope(|scope| {
            scope.set_tag("request_id", request_id);
            scope.set_tag("route", route);
            scope.set_tag("method", method);
        });
        self.inner.call(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_lose_headers_queries_and_users() {
        let mut headers = std::collections::BTreeMap::new();
        headers.insert("forwarded".to_owned(), "for=203.0.113.9".to_owned());
        headers.insert("user-agent".to_owned(), "Mozilla/5.0".to_owned());
        let event = sentry::protocol::Event {
            request: Some(sentry::protocol::Request {
                url: "https://api.example.com/v1/artists?q=secret+search"
                    .parse()
                    .ok(),
                method: Some("GET".to_owned()),
                query_string: Some("q=secret+search".to_owned()),
                headers,
                ..Default::default()
            }),
            user: Some(sentry::User {
                ip_address: Some(sentry::protocol::IpAddress::Auto),
                ..Default::default()
            }),
            ..Default::default()
        };

        let scrubbed = scrub(event);

        let request = scrubbed.request.unwrap();
        assert!(request.headers.is_empty());
        assert_eq!(request.query_string, None);
        assert_eq!(
            request.url.unwrap().as_str(),
            "https://api.example.com/v1/artists"
        );
        assert_eq!(request.method.as_deref(), Some("GET"));
        assert!(scrubbed.user.is_none());
    }
}
