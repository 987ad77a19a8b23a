//! Prometheus metrics (`metrics` facade, `metrics-exporter-prometheus`), served on the
//! admin listener only. Names, labels and types follow DESIGN.md "Observability":
//!
//! | name | type | labels |
//! |---|---|---|
//! | `http_requests_total` | counter | `method`, `route`, `status` |
//! | `http_request_duration_seconds` | histogram | `method`, `route`, `status` |
//! | `http_requests_in_flight` | gauge | `method`, `route` |
//! | `db_pool_connections` | gauge | `state` (`idle`, `in_use`) |
//! | `db_pool_max_connections` | gauge | |
//! | `db_query_duration_seconds` | histogram | `operation` (the store method) |
//! | `rate_limit_rejections_total` | counter | `scope` (`api`, `auth`) |
//! | `rate_limit_backend_errors_total` | counter | |
//! | `load_shed_total` | counter | |
//! | `log_lines_dropped_total` | counter | |
//! | `auth_attempts_total` | counter | `outcome` |
//! | `starsongs_build_info` | gauge (1) | `version`, `git_sha` |
//! | `process_*` | | CPU seconds, resident memory, open fds, start time (`metrics-process`) |
//!
//! `route` is the matched route template (`/v1/artists/{id}`) or `unmatched`, so scanning
//! random URLs cannot create series.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// `http_requests_total`
pub const HTTP_REQUESTS_TOTAL: &str = "http_requests_total";
/// `http_request_duration_seconds`
pub const HTTP_REQUEST_DURATION_SECONDS: &str = "http_request_duration_seconds";
/// `http_requests_in_flight`
pub const HTTP_REQUESTS_IN_FLIGHT: &str = "http_requests_in_flight";
/// `db_pool_connections`
pub const DB_POOL_CONNECTIONS: &str = "db_pool_connections";
/// `db_pool_max_connections`
pub const DB_POOL_MAX_CONNECTIONS: &str = "db_pool_max_connections";
/// `sqlite_wal_size_bytes` (SQLite only)
pub const SQLITE_WAL_SIZE_BYTES: &str = "sqlite_wal_size_bytes";
/// `db_query_duration_seconds`
pub const DB_QUERY_DURATION_SECONDS: &str = "db_query_duration_seconds";
/// `rate_limit_rejections_total`
pub const RATE_LIMIT_REJECTIONS_TOTAL: &str = "rate_limit_rejections_total";
/// `rate_limit_backend_errors_total`
pub const RATE_LIMIT_BACKEND_ERRORS_TOTAL: &str = "rate_limit_backend_errors_total";
/// `load_shed_total`
pub const LOAD_SHED_TOTAL: &str = "load_shed_total";
/// `log_lines_dropped_total`
pub const LOG_LINES_DROPPED_TOTAL: &str = "log_lines_dropped_total";
/// `auth_attempts_total`
pub const AUTH_ATTEMPTS_TOTAL: &str = "auth_attempts_total";
/// `starsongs_build_info`
pub const BUILD_INFO: &str = "starsongs_build_info";

/// Histogram buckets in seconds: 0.5 ms to 5 s, roughly ×2.5 apart.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// `route` label of requests that matched no route.
pub const UNMATCHED_ROUTE: &str = "unmatched";

struct Exporter {
    handle: PrometheusHandle,
    process: metrics_process::Collector,
}

static EXPORTER: OnceLock<Exporter> = OnceLock::new();

/// How often histogram samples are folded into their buckets.
pub const UPKEEP_INTERVAL: Duration = Duration::from_secs(1);

/// Folds histogram samples into their buckets every [`UPKEEP_INTERVAL`], on a thread of
/// its own (`starsongs-metrics`).
///
/// The recorder keeps every observation of a histogram until something drains it; only a
/// scrape did, so a service nobody scraped grew by about 40 bytes per request, without
/// bound (BENCHMARKS.md "SQLite at its limits", memory). `PrometheusBuilder::install`
/// would run this upkeep, but it also starts its own listener, and `/metrics` is served
/// by the admin router.
fn spawn_upkeep(handle: PrometheusHandle) {
    let started = std::thread::Builder::new()
        .name("starsongs-metrics".into())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_INTERVAL);
                handle.run_upkeep();
            }
        });
    if let Err(error) = started {
        tracing::warn!(%error, "cannot start the metrics upkeep thread; histograms are drained only by scrapes");
    }
}

/// Installs the process-wide recorder once and returns its handle (later calls, e.g. from
/// tests that start several apps in one process, share it).
pub fn install() -> &'static PrometheusHandle {
    &EXPORTER
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), &LATENCY_BUCKETS)
                .map(PrometheusBuilder::build_recorder)
                .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
            let handle = recorder.handle();
            // Fails only when another recorder is installed; keep the handle either way.
            let _ = metrics::set_global_recorder(recorder);
            spawn_upkeep(handle.clone());
            describe();
            // Unlabelled counters exist from the start, so alert rules on them have a
            // series to evaluate before the first event.
            metrics::counter!(LOAD_SHED_TOTAL).absolute(0);
            metrics::counter!(RATE_LIMIT_BACKEND_ERRORS_TOTAL).absolute(0);
            let process = metrics_process::Collector::default();
            process.describe();
            metrics::gauge!(
                BUILD_INFO,
                "version" => super::VERSION,
                "git_sha" => super::GIT_SHA
            )
            .set(1.0);
            Exporter { handle, process }
        })
        .handle
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(HTTP_REQUESTS_TOTAL, "HTTP requests answered");
    describe_histogram!(
        HTTP_REQUEST_DURATION_SECONDS,
        Unit::Seconds,
        "Time from request to response head"
    );
    describe_gauge!(HTTP_REQUESTS_IN_FLIGHT, "HTTP requests being served");
    describe_gauge!(DB_POOL_CONNECTIONS, "Database pool connections by state");
    describe_gauge!(DB_POOL_MAX_CONNECTIONS, "Database pool maximum size");
    describe_gauge!(
        SQLITE_WAL_SIZE_BYTES,
        "Size of the SQLite write-ahead log file in bytes"
    );
    describe_histogram!(
        DB_QUERY_DURATION_SECONDS,
        Unit::Seconds,
        "Duration of each store operation (one transaction)"
    );
    describe_counter!(
        RATE_LIMIT_REJECTIONS_TOTAL,
        "Requests refused with 429 by the rate limiter"
    );
    describe_counter!(
        RATE_LIMIT_BACKEND_ERRORS_TOTAL,
        "Rate-limit checks that failed (Redis unreachable or slow)"
    );
    describe_counter!(
        LOAD_SHED_TOTAL,
        "Requests refused with 503 by load shedding"
    );
    describe_counter!(
        LOG_LINES_DROPPED_TOTAL,
        "Log lines dropped because the log writer's queue was full"
    );
    describe_counter!(
        AUTH_ATTEMPTS_TOTAL,
        "Sign-in and token refresh attempts by outcome"
    );
    describe_gauge!(BUILD_INFO, "Version and git commit of this build");
}

/// The exposition text, with dropped log lines and process metrics sampled now (the
/// admin listener sets the pool and WAL gauges just before).
pub fn render() -> String {
    let exporter = EXPORTER.get();
    if let Some(exporter) = exporter {
        exporter.process.collect();
    }
    metrics::counter!(LOG_LINES_DROPPED_TOTAL).absolute(super::dropped_log_lines());
    exporter.map_or_else(String::new, |e| e.handle.render())
}
