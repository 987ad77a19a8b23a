//! Distributed tracing with OpenTelemetry.
//!
//! - **Trace context, always.** Every request belongs to a W3C trace: the caller's when it
//!   sends a valid `traceparent` (and `tracestate`), a new one otherwise (a malformed
//!   header is ignored). Its id is the `trace_id` field of the request span, so it is in
//!   every log line of the request, and a tag of its Sentry events, whether or not spans
//!   are exported.
//! - **Export, when `tracing_export` names a collector.** A `tracing-opentelemetry` layer
//!   turns the service's spans into OpenTelemetry spans: the request span (a server span
//!   named `METHOD /route/{template}`), one client span per store call
//!   (`storage::metered`) and one per password hash. A batch processor on its own thread
//!   sends them over OTLP/HTTP (protobuf) with a bounded queue (2,048 spans unless
//!   `OTEL_BSP_MAX_QUEUE_SIZE` says otherwise; beyond it spans are dropped), so a slow or
//!   dead collector never holds a request. A failing collector is logged once when
//!   export starts failing and once when it works again.
//!
//! Sentry keeps its own sampling and transactions (`telemetry::sentry`); it never reads
//! these spans, so nothing is counted twice.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::http::HeaderMap;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    BatchSpanProcessor, IdGenerator, RandomIdGenerator, Sampler, SdkTracer, SdkTracerProvider,
    SpanData, SpanExporter,
};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::config::{ParentlessSampler, TraceExport, TraceSampler};

pub use opentelemetry::trace::TraceId;

/// How long one export may take before it counts as failed.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// Set once when export starts: the request path reads it to decide whether to describe
/// its span for OpenTelemetry.
static EXPORTING: AtomicBool = AtomicBool::new(false);

/// Whether spans are being exported.
pub fn is_exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

/// A trace id as the 32 lowercase hex digits W3C Trace Context writes, without allocating.
#[derive(Clone, Copy)]
pub struct TraceHex([u8; 32]);

impl TraceHex {
    /// The hex form of `id`.
    pub fn of(id: TraceId) -> Self {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; 32];
        for (i, byte) in id.to_bytes().iter().enumerate() {
            out[2 * i] = DIGITS[usize::from(byte >> 4)];
            out[2 * i + 1] = DIGITS[usize::from(byte & 0x0f)];
        }
        Self(out)
    }

    /// The digits.
    pub fn as_str(&self) -> &str {
        // Only ASCII hex digits were written.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// The trace a request belongs to, kept in its extensions for the layers inside the trace
/// layer (Sentry's tags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestTrace(pub TraceId);

/// Reads `traceparent` and `tracestate` from request headers.
struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(axum::http::HeaderName::as_str).collect()
    }
}

/// The caller's trace context: its `traceparent` if valid (W3C Trace Context), else an
/// empty context (a new trace starts here).
pub fn incoming(headers: &HeaderMap) -> Context {
    if !headers.contains_key("traceparent") {
        return Context::new();
    }
    static PROPAGATOR: OnceLock<TraceContextPropagator> = OnceLock::new();
    PROPAGATOR
        .get_or_init(TraceContextPropagator::new)
        .extract(&Headers(headers))
}

/// Makes the request span `span` an OpenTelemetry server span with `parent` (the caller's
/// context, possibly empty) as its remote parent, and returns the trace id OpenTelemetry
/// gave it. For exported requests only ([`is_exporting`]).
pub fn join(span: &tracing::Span, parent: Context, attributes: ServerSpan<'_>) -> TraceId {
    span.record("otel.name", attributes.name());
    span.record("otel.kind", "server");
    let _ = span.set_parent(parent);
    span.set_attribute("http.request.method", attributes.method.to_owned());
    span.set_attribute("http.route", attributes.route.to_owned());
    span.set_attribute("url.path", attributes.path.to_owned());
    if let Some(address) = attributes.client_address {
        span.set_attribute("client.address", address.to_string());
    }
    let trace_id = span.context().span().span_context().trace_id();
    if trace_id == TraceId::INVALID {
        // No OpenTelemetry layer on this subscriber (a test's own): still one id.
        trace_id_of(&Context::new())
    } else {
        trace_id
    }
}

/// The trace a request joins when nothing is exported: the caller's (`parent`, if it is
/// valid), else a new random one.
pub fn trace_id_of(parent: &Context) -> TraceId {
    let remote = parent.span().span_context().trace_id();
    if remote == TraceId::INVALID {
        static IDS: OnceLock<RandomIdGenerator> = OnceLock::new();
        IDS.get_or_init(RandomIdGenerator::default).new_trace_id()
    } else {
        remote
    }
}

/// What the server span says of its request (semantic conventions for HTTP servers).
#[derive(Debug, Clone, Copy)]
pub struct ServerSpan<'a> {
    /// `http.request.method`.
    pub method: &'a str,
    /// `http.route`: the route template.
    pub route: &'a str,
    /// `url.path`: the path alone, never the query (it may carry search terms).
    pub path: &'a str,
    /// `client.address`, when known.
    pub client_address: Option<std::net::IpAddr>,
}

impl ServerSpan<'_> {
    /// `METHOD /route/{template}`.
    fn name(&self) -> String {
        format!("{} {}", self.method, self.route)
    }
}

/// Records the response status on an exported request span (an error status for 5xx).
pub fn record_status(span: &tracing::Span, status: u16) {
    if !is_exporting() {
        return;
    }
    span.set_attribute("http.response.status_code", i64::from(status));
    if status >= 500 {
        span.set_status(opentelemetry::trace::Status::error(""));
    }
}

/// The running exporter; shut it down (flushing what is queued) before the process ends.
#[derive(Debug)]
pub struct Exporter {
    provider: SdkTracerProvider,
}

impl Exporter {
    /// Starts the batch exporter for `export` and returns it with the tracer for the
    /// `tracing` layer.
    ///
    /// # Errors
    /// An endpoint the exporter cannot use.
    pub fn start(export: &TraceExport) -> anyhow::Result<(Self, SdkTracer)> {
        // reqwest is built without a TLS provider of its own; use ring, as the server does.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let otlp = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(export.traces_url.as_str())
            .with_timeout(EXPORT_TIMEOUT)
            .build()?;
        let processor = BatchSpanProcessor::builder(Reporting {
            inner: otlp,
            is_failing: AtomicBool::new(false),
        })
        .build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_sampler(sampler(export.sampler))
            .with_resource(
                Resource::builder()
                    .with_service_name(export.service_name.clone())
                    .with_attribute(KeyValue::new("service.version", crate::telemetry::VERSION))
                    .build(),
            )
            .build();
        let tracer = provider.tracer("starsongs");
        EXPORTING.store(true, Ordering::Relaxed);
        Ok((Self { provider }, tracer))
    }

    /// Sends the spans still queued and stops, within `timeout`.
    pub fn shutdown(&self, timeout: Duration) {
        if let Err(error) = self.provider.shutdown_with_timeout(timeout) {
            tracing::warn!(error = %error, "trace export did not finish at shutdown");
        }
    }
}

/// The SDK sampler for `sampler`.
fn sampler(sampler: TraceSampler) -> Sampler {
    let parentless = |inner: ParentlessSampler| match inner {
        ParentlessSampler::AlwaysOn => Sampler::AlwaysOn,
        ParentlessSampler::AlwaysOff => Sampler::AlwaysOff,
        ParentlessSampler::Ratio(ratio) => Sampler::TraceIdRatioBased(ratio),
    };
    match sampler {
        TraceSampler::AlwaysOn => Sampler::AlwaysOn,
        TraceSampler::AlwaysOff => Sampler::AlwaysOff,
        TraceSampler::Ratio(ratio) => Sampler::TraceIdRatioBased(ratio),
        TraceSampler::ParentBased(inner) => Sampler::ParentBased(Box::new(parentless(inner))),
    }
}

/// The OTLP exporter, logging when export starts failing and when it works again (not
/// once per batch).
#[derive(Debug)]
struct Reporting<E> {
    inner: E,
    is_failing: AtomicBool,
}

impl<E: SpanExporter> SpanExporter for Reporting<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let spans = batch.len();
        let result = self.inner.export(batch).await;
        let was_failing = self.is_failing.swap(result.is_err(), Ordering::Relaxed);
        match (&result, was_failing) {
            (Err(error), false) => tracing::warn!(
                error = %error,
                spans,
                "trace export failed; spans are dropped until the collector answers"
            ),
            (Ok(()), true) => tracing::info!("trace export works again"),
            _ => {}
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn a_valid_traceparent_is_continued_and_anything_else_starts_a_trace() {
        let caller = "4bf92f3577b34da6a3ce929d0e0e4736";
        let valid = incoming(&headers(&[(
            "traceparent",
            &format!("00-{caller}-00f067aa0ba902b7-01"),
        )]));
        assert_eq!(trace_id_of(&valid).to_string(), caller);
        for malformed in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "zz-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "garbage",
        ] {
            let context = incoming(&headers(&[("traceparent", malformed)]));
            let id = trace_id_of(&context);
            assert_ne!(id, TraceId::INVALID, "{malformed}");
            assert_ne!(id.to_string(), caller, "{malformed}");
        }
        let id = TraceId::from_hex(caller).unwrap();
        assert_eq!(TraceHex::of(id).as_str(), id.to_string(), "the W3C form");
        let first = trace_id_of(&incoming(&HeaderMap::new()));
        let second = trace_id_of(&incoming(&HeaderMap::new()));
        assert_ne!(first, second, "each new trace has its own id");
    }

    #[test]
    fn every_sampler_setting_maps_to_the_sdk_sampler() {
        let debug = |setting| format!("{:?}", sampler(setting));

        assert_eq!(
            debug(TraceSampler::ParentBased(ParentlessSampler::Ratio(0.25))),
            "ParentBased(TraceIdRatioBased(0.25))"
        );
        assert_eq!(
            debug(TraceSampler::ParentBased(ParentlessSampler::AlwaysOn)),
            "ParentBased(AlwaysOn)"
        );
        assert_eq!(debug(TraceSampler::AlwaysOff), "AlwaysOff");
        assert_eq!(debug(TraceSampler::Ratio(0.5)), "TraceIdRatioBased(0.5)");
    }
}
