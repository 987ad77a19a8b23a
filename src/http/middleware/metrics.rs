//! Request metrics: `http_requests_total`, `http_request_duration_seconds` and
//! `http_requests_in_flight`, labelled by method, route template and status (see
//! `telemetry::metrics`).
//!
//! The handles of each series are looked up once per worker thread and kept (route
//! templates, methods and statuses are bounded), so a request costs one map lookup and
//! a few atomic operations, not a label allocation and a registry lookup per metric.

use std::cell::RefCell;
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, ready};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::response::Response;
use metrics::{Counter, Gauge, Histogram, Label, SharedString};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use crate::telemetry::metrics::{
    HTTP_REQUEST_DURATION_SECONDS, HTTP_REQUESTS_IN_FLIGHT, HTTP_REQUESTS_TOTAL, UNMATCHED_ROUTE,
};

/// The method labels: standard methods by name, anything else as `other` (clients can
/// send arbitrary method tokens; they must not create series).
const METHODS: [&str; 8] = [
    "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "other",
];

/// Index of the method's label in [`METHODS`].
fn method_index(method: &Method) -> usize {
    match *method {
        Method::GET => 0,
        Method::POST => 1,
        Method::PUT => 2,
        Method::PATCH => 3,
        Method::DELETE => 4,
        Method::HEAD => 5,
        Method::OPTIONS => 6,
        _ => 7,
    }
}

/// Statuses whose series handles are kept; others (rare) are looked up per request.
const KEPT_STATUSES: [u16; 20] = [
    200, 201, 204, 304, 400, 401, 403, 404, 405, 409, 412, 413, 415, 422, 429, 431, 500, 503, 504,
    302,
];

fn kept_index(status: u16) -> Option<usize> {
    KEPT_STATUSES.iter().position(|&s| s == status)
}

/// The counter and histogram of one method, route and status.
#[derive(Clone)]
struct Outcome {
    total: Counter,
    duration: Histogram,
}

/// Every series of one method and route.
struct Series {
    method: &'static str,
    route: SharedString,
    in_flight: Gauge,
    outcomes: [OnceLock<Outcome>; KEPT_STATUSES.len()],
}

impl Series {
    fn new(method: &'static str, route: &str) -> Self {
        let route = SharedString::from_shared(Arc::<str>::from(route));
        let labels = [
            Label::from_static_parts("method", method),
            Label::new("route", route.clone()),
        ];
        Self {
            method,
            in_flight: metrics::gauge!(HTTP_REQUESTS_IN_FLIGHT, labels.iter()),
            route,
            outcomes: std::array::from_fn(|_| OnceLock::new()),
        }
    }

    fn outcome(&self, status: u16) -> Outcome {
        let build = || {
            let labels = [
                Label::from_static_parts("method", self.method),
                Label::new("route", self.route.clone()),
                Label::new("status", status.to_string()),
            ];
            Outcome {
                total: metrics::counter!(HTTP_REQUESTS_TOTAL, labels.iter()),
                duration: metrics::histogram!(HTTP_REQUEST_DURATION_SECONDS, labels.iter()),
            }
        };
        match kept_index(status) {
            Some(i) => self.outcomes[i].get_or_init(build).clone(),
            None => build(),
        }
    }
}

/// The series of one route, by method index.
type ByMethod = [Option<Arc<Series>>; METHODS.len()];

thread_local! {
    /// Route template → the series of each method, per worker thread.
    static SERIES: RefCell<HashMap<Box<str>, ByMethod>> = RefCell::new(HashMap::new());
}

fn series(method: usize, route: &str) -> Arc<Series> {
    SERIES.with_borrow_mut(|all| {
        if let Some(found) = all.get(route).and_then(|methods| methods[method].clone()) {
            return found;
        }
        let made = Arc::new(Series::new(METHODS[method], route));
        all.entry(route.into()).or_default()[method] = Some(made.clone());
        made
    })
}

/// Counts and times every request.
#[derive(Debug, Clone, Copy, Default)]
pub struct MetricsLayer;

impl<S> Layer<S> for MetricsLayer {
    type Service = MetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MetricsService { inner }
    }
}

/// See [`MetricsLayer`].
#[derive(Debug, Clone)]
pub struct MetricsService<S> {
    inner: S,
}

impl<S> Service<Request> for MetricsService<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Recorded<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let route = req
            .extensions()
            .get::<MatchedPath>()
            .map_or(UNMATCHED_ROUTE, MatchedPath::as_str);
        let series = series(method_index(req.method()), route);
        let started = Instant::now();
        Recorded {
            inner: self.inner.call(req),
            in_flight: InFlight::enter(series),
            started,
        }
    }
}

/// Holds one unit of `http_requests_in_flight` until the response is ready or, when the
/// client goes away and the request future is dropped unfinished, until dropped.
struct InFlight(Option<Arc<Series>>);

impl InFlight {
    fn enter(series: Arc<Series>) -> Self {
        series.in_flight.increment(1.0);
        Self(Some(series))
    }

    /// Gives the unit back (once) and returns the series.
    fn leave(&mut self) -> Option<Arc<Series>> {
        let series = self.0.take();
        if let Some(series) = &series {
            series.in_flight.decrement(1.0);
        }
        series
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.leave();
    }
}

pin_project! {
    /// The inner response, counted and timed when ready.
    pub struct Recorded<F> {
        #[pin]
        inner: F,
        in_flight: InFlight,
        started: Instant,
    }
}

impl<F, E> Future for Recorded<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        if let (Ok(response), Some(series)) = (&result, this.in_flight.leave()) {
            let outcome = series.outcome(response.status().as_u16());
            outcome.total.increment(1);
            outcome
                .duration
                .record(this.started.elapsed().as_secs_f64());
        }
        Poll::Ready(result)
    }
}
