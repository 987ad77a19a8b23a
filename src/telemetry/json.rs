//! JSON log lines, written field by field into the line buffer.
//!
//! The line has the shape of tracing-subscriber's JSON format with `flatten_event` and
//! `with_current_span`: `timestamp`, `level`, the event's fields, `target`, and `span`
//! (the current span's fields and `name`; inside a nested span, the outermost span's
//! fields first, so a request's `request_id` and `trace_id` are in all its lines). That
//! format keeps each span's fields as a JSON text, parses it back into a value tree for
//! every event inside the span and again for every `Span::record`; per access-log line
//! this was most of the log's cost (#11). Here a span's fields are kept as the inside of
//! a JSON object (`"k":v,"k":v`) and copied into each line verbatim; recording a field
//! appends to it.
//!
//! Kept rather than taken from a crate (#21): neither stock formatter writes this line.
//! tracing-subscriber's `json` format puts only the current span's own fields in `span`
//! (a nested span such as `auth.login` would lose the request's `request_id` and
//! `trace_id`, which the HTTP tests look for in every line of a request) or adds a
//! `spans` array instead, and has no way to leave out the `otel.*` fields.
//! `json-subscriber` can flatten the span list into the top level of the line, which is
//! another line shape than the tested `span` object, and documents no way to drop fields
//! by name either.

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// Stores span fields as JSON object members without the braces, for [`JsonLines`].
///
/// A field recorded twice on one span appears twice in its lines; JSON parsers keep the
/// last one. The service records each span field at most once.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonFields;

impl<'writer> FormatFields<'writer> for JsonFields {
    fn format_fields<R: tracing_subscriber::field::RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> fmt::Result {
        let mut members = Members::new(&mut writer, false);
        fields.record(&mut members);
        members.result
    }

    fn add_fields(
        &self,
        current: &'writer mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        let has_members = !current.fields.is_empty();
        let mut members = Members::new(&mut current.fields, has_members);
        fields.record(&mut members);
        members.result
    }
}

/// Formats each event as one JSON object on one line (see the module documentation).
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonLines;

impl<S> FormatEvent<S, JsonFields> for JsonLines
where
    S: Subscriber + for<'lookup> LookupSpan<'lookup>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        writer.write_str("{\"timestamp\":\"")?;
        SystemTime.format_time(&mut writer)?;
        write!(writer, "\",\"level\":\"{}\"", meta.level())?;
        let mut members = Members::new(&mut writer, true);
        event.record(&mut members);
        members.result?;
        writer.write_str(",\"target\":")?;
        quoted(&mut writer, meta.target())?;
        let span = event
            .parent()
            .and_then(|id| ctx.span(id))
            .or_else(|| ctx.lookup_current());
        if let Some(span) = span {
            writer.write_str(",\"span\":{")?;
            // Inside a nested span (`auth.login`, say) the outermost span's fields come
            // first: the request's id and trace id are in every line of the request.
            let root = span
                .scope()
                .from_root()
                .next()
                .filter(|root| root.id() != span.id());
            for span in root.iter().chain(std::iter::once(&span)) {
                if let Some(fields) = span.extensions().get::<FormattedFields<JsonFields>>()
                    && !fields.is_empty()
                {
                    writer.write_str(fields)?;
                    writer.write_char(',')?;
                }
            }
            writer.write_str("\"name\":")?;
            quoted(&mut writer, span.name())?;
            writer.write_char('}')?;
        }
        writer.write_str("}\n")
    }
}

/// Writes visited fields as `"name":value` members, comma-separated.
struct Members<'a, W: fmt::Write> {
    out: &'a mut W,
    needs_comma: bool,
    result: fmt::Result,
}

impl<'a, W: fmt::Write> Members<'a, W> {
    fn new(out: &'a mut W, needs_comma: bool) -> Self {
        Self {
            out,
            needs_comma,
            result: Ok(()),
        }
    }

    fn member(&mut self, field: &Field, value: impl FnOnce(&mut W) -> fmt::Result) {
        // `otel.*` fields describe the span to OpenTelemetry (its name and kind), not the
        // request: they stay out of the log.
        if self.result.is_err() || field.name().starts_with("otel.") {
            return;
        }
        self.result = (|| {
            if self.needs_comma {
                self.out.write_char(',')?;
            }
            self.needs_comma = true;
            quoted(self.out, field.name())?;
            self.out.write_char(':')?;
            value(self.out)
        })();
    }
}

impl<W: fmt::Write> Visit for Members<'_, W> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        // JSON has no NaN or infinity; serde_json writes those as null too.
        self.member(field, |out| {
            if value.is_finite() {
                write!(out, "{value:?}")
            } else {
                out.write_str("null")
            }
        });
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.member(field, |out| write!(out, "{value}"));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.member(field, |out| write!(out, "{value}"));
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        self.member(field, |out| write!(out, "{value}"));
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        self.member(field, |out| write!(out, "{value}"));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.member(field, |out| write!(out, "{value}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.member(field, |out| quoted(out, value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.member(field, |out| {
            out.write_char('"')?;
            write!(Escaped(&mut *out), "{value:?}")?;
            out.write_char('"')
        });
    }
}

/// Writes `text` as a JSON string.
fn quoted(out: &mut impl fmt::Write, text: &str) -> fmt::Result {
    out.write_char('"')?;
    Escaped(&mut *out).write_str(text)?;
    out.write_char('"')
}

/// A writer that escapes what passes through it for a JSON string, as serde_json does:
/// the quote, the backslash and the control characters U+0000 to U+001F.
struct Escaped<'a, W: fmt::Write>(&'a mut W);

impl<W: fmt::Write> fmt::Write for Escaped<'_, W> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        // Most text (ids, routes, numbers as text) needs no escaping: one pass to check,
        // one write.
        if !text
            .bytes()
            .any(|byte| byte < 0x20 || byte == b'"' || byte == b'\\')
        {
            return self.0.write_str(text);
        }
        let mut clean_from = 0;
        for (at, byte) in text.bytes().enumerate() {
            let escape = match byte {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b'\t' => "\\t",
                0x08 => "\\b",
                0x0c => "\\f",
                0x00..=0x1f => "",
                _ => continue,
            };
            // `byte` is ASCII, so `at` is a character boundary.
            self.0.write_str(&text[clean_from..at])?;
            if escape.is_empty() {
                write!(self.0, "\\u{byte:04x}")?;
            } else {
                self.0.write_str(escape)?;
            }
            clean_from = at + 1;
        }
        self.0.write_str(&text[clean_from..])
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use proptest::prelude::*;
    use serde_json::{Value, json};
    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    /// Collects what the subscriber writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Self;

        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    fn lines_of(emit: impl FnOnce()) -> Vec<Value> {
        let captured = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(captured.clone())
            .fmt_fields(JsonFields)
            .event_format(JsonLines)
            .finish();
        tracing::subscriber::with_default(subscriber, emit);
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert!(
            text.ends_with('\n'),
            "every line ends with a newline: {text:?}"
        );
        text.lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    #[test]
    fn an_event_in_a_span_has_the_shape_of_tracing_subscribers_json() {
        let lines = lines_of(|| {
            let span = tracing::info_span!(
                "request",
                request_id = %"r-1",
                http.route = "/v1/artists/{id}",
                principal = tracing::field::Empty,
            );
            let _entered = span.enter();
            span.record("principal", "user:7");
            tracing::info!(http.status = 200u16, latency_ms = 1.5, "request completed");
        });

        let line = &lines[0];
        assert!(line["timestamp"].as_str().unwrap().ends_with('Z'));
        let mut without_time = line.clone();
        without_time.as_object_mut().unwrap().remove("timestamp");
        assert_eq!(
            without_time,
            json!({
                "level": "INFO",
                "message": "request completed",
                "http.status": 200,
                "latency_ms": 1.5,
                "target": module_path!(),
                "span": {
                    "request_id": "r-1",
                    "http.route": "/v1/artists/{id}",
                    "principal": "user:7",
                    "name": "request",
                },
            })
        );
    }

    #[test]
    fn values_of_every_kind_are_valid_json() {
        let lines = lines_of(|| {
            tracing::warn!(
                a = -3i64,
                b = u64::MAX,
                c = true,
                d = f64::NAN,
                e = 1e300,
                f = ?("quote\" and \\ and \n"),
                g = 170_141_183_460_469_231_731_687_303_715_884_105_727i128,
                "tab\there"
            );
            tracing::error!("outside any span");
        });

        assert_eq!(lines[0]["level"], "WARN");
        assert_eq!(lines[0]["a"], -3);
        assert_eq!(lines[0]["b"], u64::MAX);
        assert_eq!(lines[0]["c"], true);
        assert_eq!(lines[0]["d"], Value::Null);
        assert_eq!(lines[0]["e"], 1e300);
        assert_eq!(lines[0]["f"], "\"quote\\\" and \\\\ and \\n\"");
        assert_eq!(lines[0]["message"], "tab\there");
        assert!(lines[0]["g"].is_number());
        assert!(lines[1].get("span").is_none());
    }

    proptest! {
        #[test]
        fn strings_are_escaped_as_serde_json_escapes_them(text in any::<String>()) {
            let mut out = String::new();
            quoted(&mut out, &text).unwrap();
            prop_assert_eq!(out, serde_json::to_string(&text).unwrap());
        }
    }
}
