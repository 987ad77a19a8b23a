//! Distributed tracing: W3C trace context in every request's log lines, and spans exported
//! over OTLP/HTTP to a receiver the test starts (decoded with `opentelemetry-proto`), as a
//! collector would receive them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{ServiceProcess, client, service_command};

/// The caller's trace and span, as a frontend would send them.
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_SPAN_ID: &str = "00f067aa0ba902b7";

fn traceparent() -> String {
    format!("00-{TRACE_ID}-{PARENT_SPAN_ID}-01")
}

/// A stand-in for an OpenTelemetry collector: `POST /v1/traces` with a protobuf
/// `ExportTraceServiceRequest`, answered 200; every span received is kept.
struct Receiver {
    url: String,
    spans: Arc<Mutex<Vec<Span>>>,
    service_names: Arc<Mutex<Vec<String>>>,
}

impl Receiver {
    async fn start() -> Self {
        let spans = Arc::new(Mutex::new(Vec::new()));
        let service_names = Arc::new(Mutex::new(Vec::new()));
        let (sink, names) = (spans.clone(), service_names.clone());
        let app = axum::Router::new().route(
            "/v1/traces",
            axum::routing::post(move |body: Bytes| async move {
                let request = ExportTraceServiceRequest::decode(body)
                    .expect("the body is an OTLP ExportTraceServiceRequest");
                for resource_spans in request.resource_spans {
                    let resource = resource_spans.resource.unwrap_or_default();
                    names
                        .lock()
                        .unwrap()
                        .extend(attributes(&resource.attributes).remove("service.name"));
                    for scope in resource_spans.scope_spans {
                        sink.lock().unwrap().extend(scope.spans);
                    }
                }
                (
                    [("content-type", "application/x-protobuf")],
                    Vec::<u8>::new(),
                )
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            url: format!("http://{address}"),
            spans,
            service_names,
        }
    }

    /// The spans received so far once `done` holds for them; 15 s at most (the service
    /// exports every 100 ms in these tests).
    async fn wait_for(&self, done: impl Fn(&[Span]) -> bool) -> Vec<Span> {
        for _ in 0..150 {
            let spans = self.spans.lock().unwrap().clone();
            if done(&spans) {
                return spans;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "the receiver never got the spans: {:#?}",
            self.spans.lock().unwrap()
        );
    }
}

/// A span's attributes as text (numbers and booleans written out).
fn attributes(
    list: &[opentelemetry_proto::tonic::common::v1::KeyValue],
) -> HashMap<String, String> {
    list.iter()
        .map(|kv| {
            let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(AnyValue::StringValue(s)) => s.clone(),
                Some(AnyValue::IntValue(i)) => i.to_string(),
                Some(AnyValue::BoolValue(b)) => b.to_string(),
                Some(AnyValue::DoubleValue(d)) => d.to_string(),
                other => format!("{other:?}"),
            };
            (kv.key.clone(), value)
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `span` is below `ancestor` in `spans`.
fn descends_from(span: &Span, ancestor: &Span, spans: &[Span]) -> bool {
    let mut parent = span.parent_span_id.clone();
    for _ in 0..16 {
        if parent == ancestor.span_id {
            return true;
        }
        match spans.iter().find(|s| s.span_id == parent) {
            Some(next) => parent = next.parent_span_id.clone(),
            None => return false,
        }
    }
    false
}

/// The service on a fresh SQLite file, with `extra` settings.
fn service(dir: &tempfile::TempDir, extra: &[(&str, &str)]) -> ServiceProcess {
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("trace.db").display()
    );
    let mut command = service_command(&url);
    for (key, value) in extra {
        command.env(key, value);
    }
    ServiceProcess::spawn(&mut command)
}

/// Log lines so far, parsed.
fn log_lines(service: &ServiceProcess) -> Vec<Value> {
    service
        .lines
        .lock()
        .unwrap()
        .iter()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

/// The access-log line of the request with id `request_id`, once written (10 s at most).
async fn access_line(service: &ServiceProcess, request_id: &str) -> Value {
    for _ in 0..100 {
        if let Some(line) = log_lines(service).into_iter().find(|line| {
            line["message"] == "request completed" && line["span"]["request_id"] == request_id
        }) {
            return line;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no access line for {request_id}");
}

/// Sends SIGTERM and waits for the process to exit, off the test's runtime (which keeps
/// serving the receiver meanwhile).
async fn terminate(service: &mut ServiceProcess) -> std::process::ExitStatus {
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &service.child.id().to_string()])
        .status();
    tokio::task::block_in_place(|| service.child.wait().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_traceparent_is_continued_by_a_server_span_with_store_and_hashing_spans_below() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut service = service(
        &dir,
        &[
            (
                "STARSONGS__TRACING_EXPORT__OTLP_ENDPOINT",
                receiver.url.as_str(),
            ),
            ("STARSONGS__TRACING_EXPORT__SERVICE_NAME", "catalog-test"),
            // Nothing is sent before shutdown: graceful shutdown must send it all.
            ("OTEL_BSP_SCHEDULE_DELAY", "600000"),
        ],
    );
    let login = |query: &str| {
        client()
            .post(format!("http://{}/v1/auth/login{query}", service.address))
            .header("traceparent", traceparent())
            .header("x-request-id", "traced-login-1")
            .json(&json!({"username": "nobody", "password": "not the password 42"}))
            .send()
    };

    let response = login("?secret=in-the-query").await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    // Logs and trace join up: the access line carries the trace id.
    let line = access_line(&service, "traced-login-1").await;
    assert_eq!(line["span"]["trace_id"], TRACE_ID, "{line}");
    assert!(
        line["span"].get("otel.name").is_none(),
        "OpenTelemetry's own fields stay out of the log: {line}"
    );
    assert!(
        receiver.spans.lock().unwrap().is_empty(),
        "nothing sent yet"
    );
    assert!(terminate(&mut service).await.success());
    let spans = receiver
        .wait_for(|spans| {
            spans.iter().any(|s| s.kind == SpanKind::Server as i32)
                && spans.iter().any(|s| s.name == "password.verify")
                && spans.iter().any(|s| s.name == "claim_login_attempt")
        })
        .await;

    let server = spans
        .iter()
        .find(|s| s.kind == SpanKind::Server as i32)
        .unwrap();
    assert_eq!(hex(&server.trace_id), TRACE_ID, "the caller's trace");
    assert_eq!(
        hex(&server.parent_span_id),
        PARENT_SPAN_ID,
        "the caller's span"
    );
    assert_eq!(
        server.name, "POST /v1/auth/login",
        "named by the route template"
    );
    let server_attributes = attributes(&server.attributes);
    for (key, value) in [
        ("http.request.method", "POST"),
        ("http.route", "/v1/auth/login"),
        ("http.response.status_code", "401"),
        ("url.path", "/v1/auth/login"),
        ("client.address", "127.0.0.1"),
    ] {
        assert_eq!(
            server_attributes.get(key).map(String::as_str),
            Some(value),
            "{key}: {server_attributes:?}"
        );
    }
    // Store calls of this request (background jobs' calls are traces of their own).
    let store: Vec<&Span> = spans
        .iter()
        .filter(|s| {
            hex(&s.trace_id) == TRACE_ID
                && attributes(&s.attributes).contains_key("db.operation.name")
        })
        .collect();
    let names: Vec<&str> = store.iter().map(|s| s.name.as_str()).collect();
    assert!(names.contains(&"claim_login_attempt"), "{names:?}");
    assert!(names.contains(&"find_user_by_username"), "{names:?}");
    for span in &store {
        let attrs = attributes(&span.attributes);
        assert_eq!(span.kind, SpanKind::Client as i32, "{}", span.name);
        assert_eq!(attrs["db.system"], "sqlite");
        assert_eq!(attrs["db.operation.name"], span.name);
        assert!(
            descends_from(span, server, &spans),
            "{} below the request",
            span.name
        );
    }
    let hashing = spans.iter().find(|s| s.name == "password.verify").unwrap();
    assert!(descends_from(hashing, server, &spans));
    // No query, password or username reaches a span.
    for span in &spans {
        let text = format!("{span:?}");
        for secret in ["in-the-query", "not the password 42", "nobody"] {
            assert!(!text.contains(secret), "{secret} in {}", span.name);
        }
    }
    let names = receiver.service_names.lock().unwrap().clone();
    assert!(
        !names.is_empty() && names.iter().all(|name| name == "catalog-test"),
        "{names:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_collector_requests_are_answered_and_the_failure_is_logged_once() {
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let dir = tempfile::tempdir().unwrap();
    let mut service = service(
        &dir,
        &[
            (
                "STARSONGS__TRACING_EXPORT__OTLP_ENDPOINT",
                endpoint.as_str(),
            ),
            ("OTEL_BSP_SCHEDULE_DELAY", "50"),
        ],
    );
    let warnings = |service: &ServiceProcess| {
        log_lines(service)
            .iter()
            .filter(|line| {
                line["level"] == "WARN"
                    && line["message"]
                        .as_str()
                        .is_some_and(|m| m.starts_with("trace export failed"))
            })
            .count()
    };
    let wave = || async {
        for _ in 0..20 {
            let response = client()
                .get(format!("http://{}/health/ready", service.address))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK);
        }
    };

    wave().await;
    for _ in 0..150 {
        if warnings(&service) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(warnings(&service), 1, "the first failed export is logged");
    // More spans, exported (and failing) at the latest when the service stops.
    wave().await;
    let status = terminate(&mut service).await;

    assert!(status.success(), "shutdown finishes with a dead collector");
    assert_eq!(
        warnings(&service),
        1,
        "one warning, not one per export or request"
    );
}

#[tokio::test]
async fn every_log_line_of_a_request_carries_its_trace_id_without_export() {
    let dir = tempfile::tempdir().unwrap();
    let service = service(&dir, &[]);
    // `/`: probes log their access lines at DEBUG.
    let get = |request_id: &'static str, traceparent: Option<&'static str>| {
        let mut request = client()
            .get(format!("http://{}/", service.address))
            .header("x-request-id", request_id);
        if let Some(value) = traceparent {
            request = request.header("traceparent", value);
        }
        request.send()
    };
    let caller = format!("00-{TRACE_ID}-{PARENT_SPAN_ID}-01");
    let caller: &'static str = Box::leak(caller.into_boxed_str());

    for (request_id, header) in [
        ("with-parent", Some(caller)),
        ("malformed", Some("00-not-a-trace-01")),
        (
            "all-zero",
            Some("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
        ),
        ("no-header", None),
    ] {
        assert_eq!(
            get(request_id, header).await.unwrap().status(),
            StatusCode::OK
        );
    }
    let with_parent = access_line(&service, "with-parent").await;
    let malformed = access_line(&service, "malformed").await;
    let all_zero = access_line(&service, "all-zero").await;
    let no_header = access_line(&service, "no-header").await;

    assert_eq!(with_parent["span"]["trace_id"], TRACE_ID);
    let ids: Vec<&str> = [&malformed, &all_zero, &no_header]
        .iter()
        .map(|line| line["span"]["trace_id"].as_str().unwrap())
        .collect();
    for id in &ids {
        assert_eq!(id.len(), 32, "{id}");
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
        assert_ne!(*id, TRACE_ID);
        assert_ne!(*id, "00000000000000000000000000000000");
    }
    assert!(
        ids[0] != ids[1] && ids[1] != ids[2],
        "a new trace each: {ids:?}"
    );
}
