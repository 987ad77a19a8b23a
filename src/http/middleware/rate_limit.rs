//! Per-client rate limiting on `/v1` (API.md "Cross-cutting headers"). The client is the
//! authenticated principal when the request carries a valid credential (so one user has
//! one budget wherever they connect from), otherwise the client IP. `/v1/auth/*` has its
//! own, stricter budget. Health, docs and the OpenAPI document are not limited, and
//! neither is any request from a client address in `rate_limit.exempt_clients` (trusted
//! server-side callers); the per-username login lockout is not a rate limit and still
//! applies to them.
//!
//! Limited responses carry `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset`
//! and their `X-RateLimit-*` twins; a refused request gets 429 with `Retry-After`.

use std::convert::Infallible;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use super::client_ip::ClientIp;
use crate::auth::accounts::{Accounts, Principal};
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

/// The budget key of a request: `<scope>:<principal>` (`api:user:7`, `api:api_key:3`) for
/// a valid credential, `<scope>:ip:<address>` otherwise, built in one allocation.
fn budget_key(scope: Scope, principal: Option<Principal>, ip: Option<IpAddr>) -> String {
    use std::fmt::Write as _;

    let mut key = String::with_capacity(48);
    key.push_str(scope.as_str());
    let _ = match (principal, ip) {
        (Some(Principal::User { id, .. }), _) => write!(key, ":user:{id}"),
        (Some(Principal::ApiKey { id, .. }), _) => write!(key, ":api_key:{id}"),
        (_, Some(ip)) => write!(key, ":ip:{ip}"),
        (_, None) => write!(key, ":ip:unknown"),
    };
    key
}

/// What the rate limiter needs: the budgets and the credential lookup.
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
        // The inner service is ready; a fresh clone takes its place for the next call.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let shared = self.shared.clone();
        Limited::Checked {
            checked: Box::pin(check(shared, inner, req, scope, ip)),
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
    ip: Option<IpAddr>,
) -> Result<Response, Infallible>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    let limits = &shared.limits;
    let (mut parts, body) = req.into_parts();
    // An invalid credential is keyed by IP here and refused by the extractor later (the
    // refusal is remembered in the request, so the token is not verified twice).
    let principal = auth::resolve(&mut parts, &shared.accounts)
        .await
        .ok()
        .filter(|p| *p != Principal::Anonymous);
    let req = Request::from_parts(parts, body);
    let key = budget_key(scope, principal, ip);
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
    use crate::domain::user::Role;

    #[test]
    fn budget_keys_name_the_scope_and_the_client() {
        let user = Principal::User {
            id: 7,
            role: Role::Editor,
        };
        let key = Principal::ApiKey {
            id: 3,
            role: Role::Viewer,
        };
        let ip: IpAddr = "203.0.113.9".parse().unwrap();

        assert_eq!(budget_key(Scope::Api, Some(user), Some(ip)), "api:user:7");
        assert_eq!(budget_key(Scope::Auth, Some(key), None), "auth:api_key:3");
        assert_eq!(budget_key(Scope::Api, None, Some(ip)), "api:ip:203.0.113.9");
        assert_eq!(budget_key(Scope::Api, None, None), "api:ip:unknown");
        assert_eq!(
            budget_key(Scope::Api, Some(user), None),
            format!("api:{}", user.scope())
        );
    }
}
