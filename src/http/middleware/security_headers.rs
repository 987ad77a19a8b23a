//! Security headers on every response, success or error (API.md "Cross-cutting headers").
//! The API's Content-Security-Policy allows nothing (its responses are JSON, never
//! rendered); the Swagger UI pages get only what they need (their own scripts, styles and
//! images, and calls back to this origin). Every `/v1/auth/*` response is
//! `Cache-Control: no-store` (tokens and account data).

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::Response;
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use super::client_ip::OverHttps;

/// CSP of every response but the docs pages.
pub const API_CSP: &str =
    "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// CSP of `/docs`: Swagger UI's bundled script and styles (it sets inline styles), its
/// inline SVG images, and `fetch` to this origin for the document and "Try it out".
pub const DOCS_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; connect-src 'self'; font-src 'self' data:; frame-ancestors 'none'; \
     base-uri 'self'; form-action 'self'";

/// HSTS for responses to HTTPS requests: one year, subdomains included.
pub const HSTS: &str = "max-age=31536000; includeSubDomains";

const CROSS_ORIGIN_OPENER_POLICY: HeaderName =
    HeaderName::from_static("cross-origin-opener-policy");

/// What the response needs, decided from the request.
#[derive(Debug, Clone, Copy)]
struct Needs {
    is_docs: bool,
    is_auth: bool,
    https: bool,
}

impl Needs {
    fn of(req: &Request) -> Self {
        let path = req.uri().path();
        Self {
            is_docs: path.starts_with("/docs"),
            is_auth: path.starts_with("/v1/auth/"),
            https: req.extensions().get::<OverHttps>().is_some_and(|h| h.0),
        }
    }

    fn apply(self, response: &mut Response) {
        let headers = response.headers_mut();
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(if self.is_docs { DOCS_CSP } else { API_CSP }),
        );
        headers.insert(
            CROSS_ORIGIN_OPENER_POLICY,
            HeaderValue::from_static("same-origin"),
        );
        if self.is_auth {
            // API.md: every /v1/auth/* response, including rejections from the layers.
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
        if self.https {
            headers.insert(
                header::STRICT_TRANSPORT_SECURITY,
                HeaderValue::from_static(HSTS),
            );
        }
    }
}

/// Adds the headers once the response is ready.
#[derive(Debug, Clone, Copy, Default)]
pub struct SecurityHeadersLayer;

impl<S> Layer<S> for SecurityHeadersLayer {
    type Service = SecurityHeadersService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SecurityHeadersService { inner }
    }
}

/// See [`SecurityHeadersLayer`].
#[derive(Debug, Clone)]
pub struct SecurityHeadersService<S> {
    inner: S,
}

impl<S> Service<Request> for SecurityHeadersService<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = WithHeaders<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let needs = Needs::of(&req);
        WithHeaders {
            inner: self.inner.call(req),
            needs,
        }
    }
}

pin_project! {
    /// The inner response with the security headers.
    pub struct WithHeaders<F> {
        #[pin]
        inner: F,
        needs: Needs,
    }
}

impl<F, E> Future for WithHeaders<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = ready!(this.inner.poll(cx))?;
        this.needs.apply(&mut response);
        Poll::Ready(Ok(response))
    }
}
