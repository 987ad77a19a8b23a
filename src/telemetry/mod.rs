//! Observability: the `tracing` subscriber (JSON lines or human-readable output, filtered
//! by `RUST_LOG` when set, else by `log.level`), Prometheus metrics ([`metrics`]) and error
//! reporting ([`sentry`]).

pub mod metrics;
pub mod sentry;

use tracing_subscriber::EnvFilter;

/// The crate version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git commit of the build (`unknown` outside git; see `build.rs`).
pub const GIT_SHA: &str = env!("STARSONGS_GIT_SHA");

use crate::config::{LogFormat, LogSettings};

/// Installs the global subscriber. A second call (tests) is ignored.
pub fn init(settings: &LogSettings) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match settings.format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
}
