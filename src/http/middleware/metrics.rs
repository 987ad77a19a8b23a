//! Request metrics: `http_requests_total`, `http_request_duration_seconds` and
//! `http_requests_in_flight`, labelled by method, route template and status (see
//! `telemetry::metrics`).

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;

use crate::telemetry::metrics::{
    HTTP_REQUEST_DURATION_SECONDS, HTTP_REQUESTS_IN_FLIGHT, HTTP_REQUESTS_TOTAL, UNMATCHED_ROUTE,
};

/// The method label: standard methods by name, anything else as `other` (clients can send
/// arbitrary method tokens; they must not create series).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Holds one unit of `http_requests_in_flight` until dropped, also when the client goes
/// away and the request future is dropped unfinished.
struct InFlight(metrics::Gauge);

impl InFlight {
    fn enter(method: &'static str, route: &str) -> Self {
        let gauge = metrics::gauge!(HTTP_REQUESTS_IN_FLIGHT, "method" => method, "route" => route.to_owned());
        gauge.increment(1.0);
        Self(gauge)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

/// Counts and times every request.
pub async fn record(req: Request, next: Next) -> Response {
    let method = method_label(req.method());
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| UNMATCHED_ROUTE.to_owned(), |p| p.as_str().to_owned());
    let in_flight = InFlight::enter(method, &route);
    let started = Instant::now();
    let response = next.run(req).await;
    drop(in_flight);
    let status = response.status().as_u16().to_string();
    let labels = [
        ("method", method.to_owned()),
        ("route", route),
        ("status", status),
    ];
    metrics::counter!(HTTP_REQUESTS_TOTAL, &labels).increment(1);
    metrics::histogram!(HTTP_REQUEST_DURATION_SECONDS, &labels)
        .record(started.elapsed().as_secs_f64());
    response
}
