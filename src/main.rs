//! The `starsongs` binary: parse the command line, load settings, install logging, then
//! run the command on a Tokio runtime.

use std::process::ExitCode;

use clap::Parser;
use starsongs::cli::{self, Cli, Command};
use starsongs::config::Settings;
use starsongs::telemetry;

/// mimalloc instead of glibc's malloc: a request allocates and frees many small objects
/// across threads, and glibc's allocator was a quarter of a point read's user time;
/// with mimalloc the service answers 15-19 % more reads per second, for about 4-9 MiB
/// more resident memory. Built without transparent huge pages (feature `no_thp`),
/// which cost 30 MiB more. BENCHMARKS.md "SQLite at its limits (#11): second pass".
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let command = Cli::parse().command.unwrap_or(Command::Serve);
    if !cli::needs_settings(&command) {
        if let Command::Healthcheck { url: Some(base) } = &command {
            return block_on(cli::healthcheck(base));
        }
        return cli::print_openapi();
    }
    let settings = match Settings::load() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("starsongs: {error:#}");
            return ExitCode::from(2);
        }
    };
    // Kept until main returns: dropping it writes out the lines still queued.
    let mut logs = telemetry::init(&settings);
    telemetry::log_panics();
    // Before the runtime starts, and kept until main returns: dropping it flushes events.
    let _sentry = telemetry::sentry::init(&settings);
    // Spans still queued when the command ends are sent within this bound.
    let flush_within =
        std::time::Duration::from_secs(settings.server.shutdown_grace_secs.clamp(1, 5));
    let code = block_on(async move {
        match cli::run(command, settings).await {
            Ok(code) => code,
            Err(error) => {
                tracing::error!(error = format!("{error:#}"), "command failed");
                ExitCode::FAILURE
            }
        }
    });
    logs.flush_traces(flush_within);
    code
}

fn block_on(future: impl Future<Output = ExitCode>) -> ExitCode {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(future),
        Err(error) => {
            eprintln!("starsongs: cannot start the async runtime: {error}");
            ExitCode::FAILURE
        }
    }
}
