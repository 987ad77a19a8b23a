//! Error reporting to Sentry (`sentry`, `sentry-tower`), on only when `sentry.dsn` is set.
//!
//! Each request gets its own hub (`sentry_tower::NewSentryLayer`) tagged with its
//! `request_id`, `route` and `method` (`http::middleware::sentry`); panics are reported by the panic
//! integration, and 5xx answers by `middleware::problem`. Events carry `environment` and
//! `release` (`starsongs@<version>+<git sha>`); personal data is off (`send_default_pii`)
//! and [`scrub`] removes header values, query strings, cookies and bodies that the HTTP
//! integration would attach, so no IP address, search term or user agent is sent.
//!
//! Performance transactions ([`http_layer`]) are started only when
//! `sentry.traces_sample_rate` is above 0, and sampled at that rate whatever a client's
//! `sentry-trace` or `baggage` header says (see [`init`]): a client may continue its own
//! trace id, never choose to be sampled. Every transaction passes [`scrub_transaction`] on
//! its way out (the SDK has no `before_send` for transactions, so the transport does it):
//! it carries its route template, status, duration and tags, and no header, query string,
//! cookie or user.

use std::sync::Arc;
use std::time::Duration;

use secrecy::ExposeSecret;
use sentry::protocol::{Envelope, EnvelopeItem};
use sentry::{Transport, TransportFactory, TransportOptions};
use sentry_tower::SentryHttpLayer;

use crate::config::Settings;

/// The release name events carry.
pub fn release() -> String {
    format!("starsongs@{}+{}", super::VERSION, super::GIT_SHA)
}

/// Starts the client when `sentry.dsn` is set; keep the guard until the process ends (it
/// flushes queued events on drop).
pub fn init(settings: &Settings) -> Option<sentry::ClientInitGuard> {
    let dsn = settings.sentry.dsn.as_ref()?;
    let dsn = dsn.expose_secret();
    if !crate::config::is_valid_dsn(dsn) {
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
        .attach_stacktrace(true)
        .before_send(|event| Some(scrub(event)))
        .transport(ScrubbingTransportFactory);
    // Left unset (tracing off) at 0: a fixed rate of 0 would still follow a client's
    // `sentry-trace: …-1`. Above 0, a sampler that never reads the parent's decision.
    let rate = settings.sentry.traces_sample_rate;
    let options = if rate > 0.0 {
        // The context carries the parent's decision (`sampled()`): deliberately unread.
        options.traces_sampler(move |_context| rate)
    } else {
        options
    };
    Some(sentry::init(options))
}

/// Whether performance transactions are on: a DSN and `traces_sample_rate` above 0.
pub fn traces_enabled(settings: &Settings) -> bool {
    settings.sentry.dsn.is_some() && settings.sentry.traces_sample_rate > 0.0
}

/// The HTTP integration of the public listener: attaches the request to events (which
/// [`scrub`] then empties) and, when [`traces_enabled`], starts a transaction per request.
/// Build it after [`init`] (it reads the client's `send_default_pii`).
pub fn http_layer(settings: &Settings) -> SentryHttpLayer {
    let layer = SentryHttpLayer::new();
    if traces_enabled(settings) {
        layer.enable_transaction()
    } else {
        layer
    }
}

/// Removes what could identify a person from an event's request: header values (user
/// agent, `Forwarded` with client addresses), the query string (search terms), cookies,
/// the body and the environment. Method and path stay; the request id tag finds the rest
/// in the logs.
pub fn scrub(mut event: sentry::protocol::Event<'static>) -> sentry::protocol::Event<'static> {
    if let Some(request) = event.request.as_mut() {
        scrub_request(request);
    }
    event.user = None;
    event
}

/// Keeps only a request's method and its URL without query, fragment or user info.
fn scrub_request(request: &mut sentry::protocol::Request) {
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

/// Reduces a transaction to what performance monitoring needs: its name becomes
/// `<method> <route template>` (from the tags `http::middleware::sentry` sets, so a path a client made
/// up is sent neither as the name nor as the URL), its request keeps only the method and
/// the URL without query, fragment or user info, and it loses any user, extra data and
/// span data.
pub fn scrub_transaction(
    mut transaction: sentry::protocol::Transaction<'static>,
) -> sentry::protocol::Transaction<'static> {
    let route = transaction.tags.get("route").cloned();
    if let (Some(method), Some(route)) = (transaction.tags.get("method"), route.as_deref()) {
        transaction.name = Some(format!("{method} {route}"));
    }
    if let Some(request) = transaction.request.as_mut() {
        if route.as_deref() == Some(super::metrics::UNMATCHED_ROUTE) {
            request.url = None;
        }
        scrub_request(request);
    }
    transaction.user = None;
    transaction.extra.clear();
    for span in &mut transaction.spans {
        span.data.clear();
    }
    transaction
}

/// Every envelope with its transactions scrubbed ([`scrub_transaction`]); events have
/// passed `before_send` already, and other items go as they are.
fn scrub_envelope(envelope: Envelope) -> Envelope {
    if !envelope
        .items()
        .any(|item| matches!(item, EnvelopeItem::Transaction(_)))
    {
        return envelope;
    }
    let mut scrubbed = Envelope::new().with_headers(envelope.headers().clone());
    for item in envelope.into_items() {
        match item {
            EnvelopeItem::Transaction(transaction) => {
                scrubbed.add_item(scrub_transaction(*transaction));
            }
            other => scrubbed.add_item(other),
        }
    }
    scrubbed
}

/// The SDK's default (HTTP) transport behind [`scrub_envelope`].
struct ScrubbingTransportFactory;

impl TransportFactory for ScrubbingTransportFactory {
    fn create_transport_with_options(&self, options: TransportOptions) -> Arc<dyn Transport> {
        Arc::new(ScrubbingTransport(
            sentry::transports::DefaultTransportFactory.create_transport_with_options(options),
        ))
    }
}

/// See [`ScrubbingTransportFactory`].
struct ScrubbingTransport(Arc<dyn Transport>);

impl Transport for ScrubbingTransport {
    fn send_envelope(&self, envelope: Envelope) {
        self.0.send_envelope(scrub_envelope(envelope));
    }

    fn flush(&self, timeout: Duration) -> bool {
        self.0.flush(timeout)
    }

    fn shutdown(&self, timeout: Duration) -> bool {
        self.0.shutdown(timeout)
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

    #[test]
    fn transactions_lose_headers_queries_users_and_made_up_paths() {
        let mut headers = std::collections::BTreeMap::new();
        headers.insert("x-forwarded-for".to_owned(), "198.51.100.7".to_owned());
        headers.insert("user-agent".to_owned(), "Mozilla/5.0".to_owned());
        let mut tags = std::collections::BTreeMap::new();
        tags.insert("method".to_owned(), "GET".to_owned());
        tags.insert("route".to_owned(), "unmatched".to_owned());
        let transaction = sentry::protocol::Transaction {
            name: Some("GET /v1/secret-token-in-path".to_owned()),
            tags,
            request: Some(sentry::protocol::Request {
                url: "https://user:pw@api.example.com/v1/x?access_token=t0k#frag"
                    .parse()
                    .ok(),
                query_string: Some("access_token=t0k".to_owned()),
                headers,
                ..Default::default()
            }),
            user: Some(sentry::User {
                ip_address: Some(sentry::protocol::IpAddress::Auto),
                ..Default::default()
            }),
            ..Default::default()
        };

        let scrubbed = scrub_transaction(transaction);

        assert_eq!(scrubbed.name.as_deref(), Some("GET unmatched"));
        let request = scrubbed.request.unwrap();
        assert!(request.headers.is_empty());
        assert_eq!(request.query_string, None);
        assert_eq!(request.url, None, "an unmatched path is not sent");
        assert!(scrubbed.user.is_none());
    }

    #[test]
    fn transactions_of_a_route_keep_its_path_without_query_or_user_info() {
        let mut tags = std::collections::BTreeMap::new();
        tags.insert("method".to_owned(), "GET".to_owned());
        tags.insert("route".to_owned(), "/v1/artists/{id}".to_owned());
        let transaction = sentry::protocol::Transaction {
            tags,
            request: Some(sentry::protocol::Request {
                url: "https://user:pw@api.example.com/v1/artists/7?token=t0k"
                    .parse()
                    .ok(),
                ..Default::default()
            }),
            ..Default::default()
        };

        let scrubbed = scrub_transaction(transaction);

        assert_eq!(scrubbed.name.as_deref(), Some("GET /v1/artists/{id}"));
        assert_eq!(
            scrubbed.request.unwrap().url.unwrap().as_str(),
            "https://api.example.com/v1/artists/7"
        );
    }

    #[test]
    fn envelopes_keep_their_items_with_transactions_scrubbed() {
        let mut envelope = Envelope::new();
        envelope.add_item(sentry::protocol::Transaction {
            request: Some(sentry::protocol::Request {
                query_string: Some("q=private".to_owned()),
                ..Default::default()
            }),
            ..Default::default()
        });
        envelope.add_item(sentry::protocol::Event::default());

        let scrubbed = scrub_envelope(envelope);

        let items: Vec<&EnvelopeItem> = scrubbed.items().collect();
        assert_eq!(items.len(), 2);
        let EnvelopeItem::Transaction(transaction) = items[0] else {
            panic!("the transaction comes first: {items:?}");
        };
        assert_eq!(transaction.request.as_ref().unwrap().query_string, None);
        assert!(matches!(items[1], EnvelopeItem::Event(_)));
    }
}
