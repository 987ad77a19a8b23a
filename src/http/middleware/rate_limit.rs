//! Per-client rate limiting on `/v1` (API.md "Cross-cutting headers"). Health, docs and
//! the OpenAPI document are not limited, and neither is any request from a client address
//! in `rate_limit.exempt_clients` (trusted server-side callers); the per-username login
//! lockout is not a rate limit and still applies to them.
//!
//! Whose budget a request spends is decided before any credential lookup, without the
//! database, so a request the limiter refuses costs no database work:
//!
//! - `/v1/auth/*` (login, registration, refresh; the stricter budget): always the client
//!   address, whatever credential the request carries;
//! - elsewhere, an `Authorization: Bearer` token whose signature verifies: its account
//!   (one user has one budget wherever they connect from); an `X-API-Key` this replica
//!   found in the database within the grant cache's lifetime: that key; anything else (no
//!   credential, a made-up or uncached key, a bad token): the client address.
//!
//! The client address is counted by network: IPv4 as it is, IPv6 per
//! `rate_limit.ipv6_prefix_len` bits (a /64 by default), since one host usually holds a
//! whole /64. The exemption and the access log use the full address. The extractors
//! resolve the principal afterwards, only for requests let through.
//!
//! Limited responses carry `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset`
//! and their `X-RateLimit-*` twins; a refused request gets 429 with `Retry-After`.

use std::convert::Infallible;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use super::client_ip::ClientIp;
use crate::auth::accounts::Accounts;
use crate::http::auth;
use crate::http::error::ApiError;
use crate::ratelimit::{Decision, RateLimits, Scope};
use crate::state::AppState;
use crate::telemetry::metrics::RATE_LIMIT_REJECTIONS_TOTAL;

const HEADERS: [(&str, &str); 3] = [
    ("ratelimit-limit", "x-ratelimit-limit"),
    ("ratelimit-remaining", "x-ratelimit-remaining"),
    ("ratelimit-reset", "x-ratelimit-reset"),
];

fn add_headers(headers: &mut HeaderMap, decision: &Decision) {
    let values = [
        u64::from(decision.limit),
        u64::from(decision.remaining),
        decision.reset_secs,
    ];
    for ((name, twin), value) in HEADERS.iter().zip(values) {
        for header in [name, twin] {
            headers.insert(HeaderName::from_static(header), HeaderValue::from(value));
        }
    }
}

/// Whose budget a request spends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Client {
    /// The account of a verified access token.
    User(i64),
    /// An API key known to this replica's grant cache.
    ApiKey(i64),
    /// A client network ([`RateLimits::client_network`]).
    Network(IpAddr),
    /// No client address (no socket peer: only in tests that call the router directly).
    Unknown,
}

/// The budget key of `client` in `scope` (`api:user:7`, `api:api_key:3`,
/// `auth:ip:2001:db8::`), built in one allocation.
fn budget_key(scope: Scope, client: Client) -> String {
    use std::fmt::Write as _;

    let mut key = String::with_capacity(48);
    key.push_str(scope.as_str());
    let _ = match client {
        Client::User(id) => write!(key, ":user:{id}"),
        Client::ApiKey(id) => write!(key, ":api_key:{id}"),
        Client::Network(network) => write!(key, ":ip:{network}"),
        Client::Unknown => write!(key, ":ip:unknown"),
    };
    key
}

/// The account or API key a request's credential names, when that is known without a
/// lookup: a bearer token whose signature and claims verify, or an API key in this
/// replica's grant cache. A request carrying both is refused later (400); the token is
/// used here.
fn credential_client(accounts: &Accounts, headers: &HeaderMap) -> Option<Client> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        return value
            .to_str()
            .ok()
            .and_then(auth::bearer_token)
            .and_then(|token| accounts.token_user(token))
            .map(Client::User);
    }
    headers
        .get(&auth::X_API_KEY)?
        .to_str()
        .ok()
        .and_then(|key| accounts.known_api_key(key.trim()))
        .map(Client::ApiKey)
}

/// What the rate limiter needs: the budgets, and the accounts for lookup-free credential
/// checks.
struct Shared {
    limits: Arc<RateLimits>,
    accounts: Accounts,
}

/// Spends one request of the client's budget, or refuses the request.
#[derive(Clone)]
pub struct RateLimitLayer {
    shared: Arc<Shared>,
}

impl RateLimitLayer {
    /// The layer for the state's budgets and accounts.
    pub fn new(state: &AppState) -> Self {
        Self {
            shared: Arc::new(Shared {
                limits: state.rate_limits.clone(),
                accounts: state.accounts.clone(),
            }),
        }
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimit {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// See [`RateLimitLayer`].
#[derive(Clone)]
pub struct RateLimit<S> {
    inner: S,
    shared: Arc<Shared>,
}

type Checked = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

impl<S> Service<Request> for RateLimit<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Limited<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let limits = &self.shared.limits;
        let path = req.uri().path();
        if !limits.enabled || !path.starts_with("/v1/") {
            return Limited::Passed {
                inner: self.inner.call(req),
            };
        }
        let scope = if path.starts_with("/v1/auth/") {
            Scope::Auth
        } else {
            Scope::Api
        };
        let ip = req.extensions().get::<ClientIp>().map(|c| c.0);
        if ip.is_some_and(|ip| limits.is_exempt(ip)) {
            return Limited::Passed {
                inner: self.inner.call(req),
            };
        }
        let credential = match scope {
            Scope::Auth => None,
            Scope::Api => credential_client(&self.shared.accounts, req.headers()),
        };
        let client = credential.unwrap_or_else(|| {
            ip.map_or(Client::Unknown, |ip| {
                Client::Network(limits.client_network(ip))
            })
        });
        let key = budget_key(scope, client);
        // The inner service is ready; a fresh clone takes its place for the next call.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let shared = self.shared.clone();
        Limited::Checked {
            checked: Box::pin(check(shared, inner, req, scope, key)),
        }
    }
}

pin_project! {
    /// The inner response: at once for requests that are not limited, after the check
    /// for the others.
    #[project = LimitedProj]
    #[allow(missing_docs)] // the variants' fields: pin-project-lite takes no docs there
    pub enum Limited<F> {
        /// Not limited (disabled, not `/v1`, or an exempt client).
        Passed { #[pin] inner: F },
        /// Checked against the client's budget.
        Checked { checked: Checked },
    }
}

impl<F> Future for Limited<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            LimitedProj::Passed { inner } => inner.poll(cx),
            LimitedProj::Checked { checked } => checked.as_mut().poll(cx),
        }
    }
}

async fn check<S>(
    shared: Arc<Shared>,
    mut inner: S,
    req: Request,
    scope: Scope,
    key: String,
) -> Result<Response, Infallible>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    let limits = &shared.limits;
    let decision = limits.check(&key, limits.quota(scope)).await;
    if decision.allowed {
        let mut response = inner.call(req).await?;
        add_headers(response.headers_mut(), &decision);
        return Ok(response);
    }
    tracing::info!(rate_limit.scope = scope.as_str(), "rate limit exceeded");
    metrics::counter!(RATE_LIMIT_REJECTIONS_TOTAL, "scope" => scope.as_str()).increment(1);
    let mut response = ApiError::too_many_requests(
        "Too many requests; slow down and retry after the time in Retry-After",
        decision.retry_after_secs,
    )
    .into_response();
    add_headers(response.headers_mut(), &decision);
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_keys_name_the_scope_and_the_client() {
        let ip: IpAddr = "203.0.113.9".parse().unwrap();
        let network: IpAddr = "2001:db8:1:2::".parse().unwrap();

        assert_eq!(budget_key(Scope::Api, Client::User(7)), "api:user:7");
        assert_eq!(budget_key(Scope::Auth, Client::ApiKey(3)), "auth:api_key:3");
        assert_eq!(
            budget_key(Scope::Api, Client::Network(ip)),
            "api:ip:203.0.113.9"
        );
        assert_eq!(
            budget_key(Scope::Auth, Client::Network(network)),
            "auth:ip:2001:db8:1:2::"
        );
        assert_eq!(budget_key(Scope::Api, Client::Unknown), "api:ip:unknown");
    }
}
