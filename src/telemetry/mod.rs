//! Observability: the `tracing` subscriber (JSON lines or human-readable output, coloured
//! only on a terminal, filtered by `RUST_LOG` when set, else by `log.level`), Prometheus
//! metrics ([`metrics`]) and error reporting ([`sentry`]).

pub mod json;
pub mod log_writer;
pub mod metrics;
pub mod sentry;

use std::io::IsTerminal;
use std::sync::OnceLock;

use log_writer::{BatchedStderr, Flusher};
use tracing_subscriber::EnvFilter;

/// The crate version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git commit of the build (`unknown` outside git; see `build.rs`).
pub const GIT_SHA: &str = env!("STARSONGS_GIT_SHA");

use crate::config::{LogFormat, LogSettings};

/// Counts the lines the writer dropped, for `/metrics`.
static WRITER: OnceLock<BatchedStderr> = OnceLock::new();

/// Log lines dropped so far because the writer's buffer was full
/// ([`log_writer::LOG_BUFFER_BYTES`]).
pub fn dropped_log_lines() -> u64 {
    WRITER.get().map_or(0, BatchedStderr::dropped)
}

/// Keeps the log writer thread; dropping it writes out every buffered line. Hold it
/// until the process ends.
#[must_use = "dropping the guard stops the log writer"]
pub struct LogGuard {
    _flusher: Option<Flusher>,
}

/// Installs the global subscriber. Lines are formatted on the calling thread and written
/// to stderr in batches by a writer thread ([`log_writer`]), so that no request waits
/// for the log's reader. A second call (tests) is ignored.
pub fn init(settings: &LogSettings) -> LogGuard {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::stderr().is_terminal();
    let Ok((writer, flusher)) = BatchedStderr::start(std::io::stderr()) else {
        eprintln!("cannot start the log writer thread; logging is off");
        return LogGuard { _flusher: None };
    };
    // Colour only for a person at a terminal: escape codes in a file or a pipe (systemd,
    // `2> dev.log`, `| less`) are noise that grep and log shippers choke on.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(writer.clone());
    let installed = match settings.format {
        LogFormat::Json => builder
            .fmt_fields(json::JsonFields)
            .event_format(json::JsonLines)
            .try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
    if installed.is_err() {
        return LogGuard { _flusher: None };
    }
    let _ = WRITER.set(writer);
    LogGuard {
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
