//! `timed`: the one wrapper every backend's store methods run in. Each call is timed into
//! `db_query_duration_seconds{operation}` (the operation is the method name: one
//! transaction each) and runs inside a `db` span (an OpenTelemetry client span with
//! `db.system` and `db.operation.name`, never parameter values).

use std::future::Future;
use std::time::Instant;

use tracing::Instrument;

use crate::telemetry::metrics::DB_QUERY_DURATION_SECONDS;

/// Runs one store call in its span (DEBUG: created only while spans are exported or the
/// log level asks for it) and times it.
pub(crate) async fn timed<T>(
    system: &'static str,
    operation: &'static str,
    call: impl Future<Output = T>,
) -> T {
    let span = tracing::debug_span!(
        "db",
        otel.name = operation,
        otel.kind = "client",
        db.system = system,
        db.operation.name = operation,
    );
    let started = Instant::now();
    let result = call.instrument(span).await;
    metrics::histogram!(DB_QUERY_DURATION_SECONDS, "operation" => operation)
        .record(started.elapsed().as_secs_f64());
    result
}
