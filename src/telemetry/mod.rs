//! Observability: the `tracing` subscriber (JSON lines or human-readable output, coloured
//! only on a terminal, filtered by `RUST_LOG` when set, else by `log.level`), distributed
//! tracing ([`otel`]), Prometheus metrics ([`metrics`]) and error reporting ([`sentry`]).

pub mod json;
pub mod log_writer;
pub mod metrics;
pub mod otel;
pub mod sentry;

use std::io::IsTerminal;
use std::sync::OnceLock;

use log_writer::{NonBlocking, WorkerGuard};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

/// The crate version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git commit of the build (`unknown` outside git; see `build.rs`).
pub const GIT_SHA: &str = env!("STARSONGS_GIT_SHA");

use crate::config::{LogFormat, Settings};

/// Counts the lines the writer dropped, for `/metrics`.
static WRITER: OnceLock<NonBlocking> = OnceLock::new();

/// Log lines dropped so far because the writer's queue was full
/// ([`log_writer::LOG_BUFFER_LINES`]).
pub fn dropped_log_lines() -> u64 {
    WRITER
        .get()
        .map_or(0, |writer| writer.error_counter().dropped_lines() as u64)
}

/// Keeps the log writer thread and the trace exporter; dropping it sends the spans still
/// queued, then writes out every buffered line. Hold it until the process ends.
#[must_use = "dropping the guard stops the log writer and the trace exporter"]
pub struct LogGuard {
    // Dropped first: its last warnings still reach the log.
    traces: Option<otel::Exporter>,
    _flusher: Option<WorkerGuard>,
}

impl LogGuard {
    /// Sends the spans still queued, within `timeout` (graceful shutdown).
    pub fn flush_traces(&mut self, timeout: std::time::Duration) {
        if let Some(traces) = self.traces.take() {
            traces.shutdown(timeout);
        }
    }
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        self.flush_traces(std::time::Duration::from_secs(5));
    }
}

/// Installs the global subscriber. Lines are formatted on the calling thread and written
/// to stderr by a writer thread ([`log_writer`]), so that no request waits
/// for the log's reader. When `tracing_export` names a collector, spans are exported too
/// ([`otel`]). A second call (tests) is ignored.
pub fn init(settings: &Settings) -> LogGuard {
    let log = &settings.log;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&log.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::stderr().is_terminal();
    let (writer, flusher) = log_writer::start(std::io::stderr());
    // Colour only for a person at a terminal: escape codes in a file or a pipe (systemd,
    // `2> dev.log`, `| less`) are noise that grep and log shippers choke on.
    macro_rules! lines {
        () => {
            tracing_subscriber::fmt::layer()
                .with_ansi(ansi)
                .with_writer(writer.clone())
        };
        (json) => {
            lines!()
                .fmt_fields(json::JsonFields)
                .event_format(json::JsonLines)
        };
    }
    let mut start_error = None;
    let (traces, tracer) = match settings.trace_export.as_ref().map(otel::Exporter::start) {
        None => (None, None),
        Some(Ok((exporter, tracer))) => (Some(exporter), Some(tracer)),
        Some(Err(error)) => {
            start_error = Some(error);
            (None, None)
        }
    };
    // The exporter takes every span of the service, not its events: those are log
    // lines, joined to the trace by `trace_id`.
    macro_rules! spans {
        ($tracer:expr) => {
            tracing_opentelemetry::layer()
                .with_tracer($tracer)
                .with_location(false)
                .with_threads(false)
                .with_filter(tracing_subscriber::filter::filter_fn(|meta| {
                    meta.is_span() && meta.target().starts_with("starsongs")
                }))
        };
    }
    let registry = tracing_subscriber::registry();
    // Without export, one global filter: spans below its level (store calls, password
    // hashing: DEBUG) are never created, so the request path pays nothing for them. With
    // export, the log keeps its filter and the exporter has its own.
    let installed = match (log.format, tracer) {
        (LogFormat::Json, None) => registry.with(filter).with(lines!(json)).try_init(),
        (LogFormat::Pretty, None) => registry.with(filter).with(lines!()).try_init(),
        (LogFormat::Json, Some(tracer)) => registry
            .with(lines!(json).with_filter(filter))
            .with(spans!(tracer))
            .try_init(),
        (LogFormat::Pretty, Some(tracer)) => registry
            .with(lines!().with_filter(filter))
            .with(spans!(tracer))
            .try_init(),
    };
    if installed.is_err() {
        return LogGuard {
            traces: None,
            _flusher: None,
        };
    }
    let _ = WRITER.set(writer);
    if let Some(error) = start_error {
        tracing::error!(error = %error, "trace export is off: the exporter did not start");
    }
    LogGuard {
        traces,
        _flusher: Some(flusher),
    }
}

/// Replaces Rust's default panic output (several plain-text lines on stderr) with one log
/// event, so JSON log pipelines stay parseable. Sentry's panic integration, installed
/// after this, calls it and then reports the panic.
pub fn log_panics() {
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "non-text panic payload".to_owned());
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        tracing::error!(panic.message = %message, panic.location = %location, "panicked");
    }));
}
