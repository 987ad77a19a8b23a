//! Where log lines go: tracing-appender's non-blocking writer, a bounded queue of lines
//! written to stderr by one thread (`starsongs-log`), so that no request waits for the
//! log's reader.
//!
//! Lossy: when the reader of stderr cannot keep up and [`LOG_BUFFER_LINES`] lines are
//! already queued, further lines are dropped whole, never waited for, and counted
//! (tracing-appender's error counter, exported as `log_lines_dropped_total`). Dropping
//! the [`WorkerGuard`] writes out the queued lines (waiting at most a second for a
//! stalled reader).
//!
//! Until #21 this was a hand-written batched writer (one wake-up and one `write` per
//! batch instead of per line); on S1 the difference was within the noise (BENCHMARKS.md
//! "second pass"): what a log line costs is its JSON formatting, not its writing.

use std::io::Write;

use tracing_appender::non_blocking::NonBlockingBuilder;
pub use tracing_appender::non_blocking::{NonBlocking, WorkerGuard};

/// Most log lines queued for the writer thread: about 2 MiB of access lines (~500 bytes
/// each). Further lines are dropped and counted in `log_lines_dropped_total`.
pub const LOG_BUFFER_LINES: usize = 4096;

/// Starts the writer thread writing to `out`: the `MakeWriter` for the subscriber, whose
/// `error_counter()` counts the dropped lines, and the guard that flushes on drop.
pub fn start(out: impl Write + Send + 'static) -> (NonBlocking, WorkerGuard) {
    NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(LOG_BUFFER_LINES)
        .thread_name("starsongs-log")
        .finish(out)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    /// A `Write` whose bytes the test can read, and which can be made to block.
    #[derive(Clone, Default)]
    struct Sink {
        bytes: Arc<Mutex<Vec<u8>>>,
        gate: Arc<Mutex<()>>,
    }

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let _open = self.gate.lock().unwrap();
            self.bytes.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_reach_the_output_whole_and_in_order_by_the_time_the_guard_is_dropped() {
        let sink = Sink::default();
        let (writer, guard) = start(sink.clone());
        for i in 0..1_000 {
            writer
                .make_writer()
                .write_all(format!("line {i}\n").as_bytes())
                .unwrap();
        }
        drop(guard);

        let text = String::from_utf8(sink.bytes.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1_000);
        assert!(
            lines
                .iter()
                .enumerate()
                .all(|(i, l)| *l == format!("line {i}"))
        );
        assert_eq!(writer.error_counter().dropped_lines(), 0);
    }

    #[test]
    fn a_stalled_reader_costs_whole_lines_which_are_counted() {
        let sink = Sink::default();
        let stall = sink.gate.lock().unwrap();
        let (writer, guard) = start(sink.clone());
        let line = format!("{}\n", "x".repeat(999));
        // Several queues' worth: whatever the writer thread took before it blocked, the
        // rest cannot fit.
        let written = 3 * LOG_BUFFER_LINES;
        for _ in 0..written {
            writer.make_writer().write_all(line.as_bytes()).unwrap();
        }
        let dropped = writer.error_counter().dropped_lines();
        drop(stall);
        drop(guard);

        let text = String::from_utf8(sink.bytes.lock().unwrap().clone()).unwrap();
        assert!(dropped > 0, "nothing dropped");
        assert!(text.lines().all(|l| l.len() == 999), "a line was cut");
        assert_eq!(
            text.lines().count() + dropped,
            written,
            "every line was either written or counted"
        );
    }
}
