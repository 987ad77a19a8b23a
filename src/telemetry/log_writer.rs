//! Where log lines go: a bounded buffer in memory, written to stderr in batches by one
//! thread, so that no request waits for the log's reader and a busy service does not pay
//! for a write and a thread wake-up per line.
//!
//! A line is appended whole to the buffer, or dropped whole (and counted) when the buffer
//! holds [`LOG_BUFFER_BYTES`] already. The writer thread sleeps while the buffer is
//! empty; the line that makes it non-empty wakes it, and it then waits
//! [`FLUSH_INTERVAL`] (or until the buffer passes [`FLUSH_BYTES`]) so that the lines of
//! that moment leave in one write. A line therefore reaches stderr at most about
//! `FLUSH_INTERVAL` after it was logged, unless the reader is slower than the service.
//!
//! Written here rather than taken from `tracing-appender`: its writer thread is woken
//! for every line and writes and flushes it alone whenever its queue runs empty (a
//! wake-up, an allocation and a `write` per line). Here a busy service pays one wake-up
//! and one `write` per batch. On S1 the difference was within the noise (BENCHMARKS.md
//! "second pass"): what a log line costs is its JSON formatting, not its writing.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// Most bytes of log lines held for the writer thread. When the reader of stderr cannot
/// keep up and the buffer is full, further lines are dropped, never waited for, and
/// counted in `log_lines_dropped_total`.
pub const LOG_BUFFER_BYTES: usize = 2 * 1024 * 1024;
/// How long the writer thread lets lines gather before it writes them.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(10);
/// A buffer this full is written at once, without waiting for [`FLUSH_INTERVAL`].
pub const FLUSH_BYTES: usize = 64 * 1024;
/// How long dropping the [`Flusher`] waits for the last lines to be written.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
struct State {
    lines: Vec<u8>,
    closed: bool,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    dropped: AtomicU64,
}

impl Shared {
    /// The buffer; a panic while it was held left only bytes in it, which are still fine.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The `MakeWriter` for the subscriber: cheap to clone, appends to the shared buffer.
#[derive(Debug, Clone)]
pub struct BatchedStderr {
    shared: Arc<Shared>,
}

impl BatchedStderr {
    /// Starts the writer thread (named `starsongs-log`) writing to `out`.
    ///
    /// # Errors
    /// The thread could not be started.
    pub fn start(out: impl Write + Send + 'static) -> std::io::Result<(Self, Flusher)> {
        let shared = Arc::new(Shared::default());
        let (done, finished) = mpsc::channel();
        let worker = shared.clone();
        thread::Builder::new()
            .name("starsongs-log".into())
            .spawn(move || {
                write_batches(&worker, out);
                let _ = done.send(());
            })?;
        Ok((
            Self {
                shared: shared.clone(),
            },
            Flusher { shared, finished },
        ))
    }

    /// Lines dropped so far because the buffer was full.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }
}

impl Write for BatchedStderr {
    /// Takes `line` whole (the subscriber writes one formatted event per call) or drops
    /// it whole; never blocks on the reader and never fails.
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        let mut state = self.shared.lock();
        let before = state.lines.len();
        if state.closed || before + line.len() > LOG_BUFFER_BYTES {
            drop(state);
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            return Ok(line.len());
        }
        state.lines.extend_from_slice(line);
        let after = state.lines.len();
        drop(state);
        if before == 0 || (before < FLUSH_BYTES && after >= FLUSH_BYTES) {
            self.shared.wake.notify_one();
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for BatchedStderr {
    type Writer = Self;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Writes out what is buffered when dropped (waiting at most a second for a stalled
/// reader). Hold it until the process ends.
#[derive(Debug)]
pub struct Flusher {
    shared: Arc<Shared>,
    finished: mpsc::Receiver<()>,
}

impl Drop for Flusher {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.wake.notify_one();
        let _ = self.finished.recv_timeout(SHUTDOWN_WAIT);
    }
}

/// The writer thread: sleeps while there is nothing to write, then writes what gathered
/// during [`FLUSH_INTERVAL`] in one go; returns once closed and empty.
fn write_batches(shared: &Shared, mut out: impl Write) {
    let mut batch = Vec::with_capacity(FLUSH_BYTES);
    loop {
        let mut state = shared.lock();
        while state.lines.is_empty() && !state.closed {
            state = shared
                .wake
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        if state.lines.is_empty() {
            return;
        }
        if !state.closed && state.lines.len() < FLUSH_BYTES {
            state = shared
                .wake
                .wait_timeout_while(state, FLUSH_INTERVAL, |s| {
                    !s.closed && s.lines.len() < FLUSH_BYTES
                })
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        std::mem::swap(&mut state.lines, &mut batch);
        drop(state);
        // Nowhere to report a failing stderr: the lines are lost either way.
        let _ = out.write_all(&batch).and_then(|()| out.flush());
        batch.clear();
        if batch.capacity() > LOG_BUFFER_BYTES / 4 {
            batch.shrink_to(FLUSH_BYTES);
        }
    }
}

#[cfg(test)]
mod tests {
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
    fn lines_reach_the_output_whole_and_in_order_by_the_time_the_flusher_is_dropped() {
        let sink = Sink::default();
        let (mut writer, flusher) = BatchedStderr::start(sink.clone()).unwrap();
        for i in 0..10_000 {
            writer.write_all(format!("line {i}\n").as_bytes()).unwrap();
        }
        drop(flusher);

        let text = String::from_utf8(sink.bytes.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 10_000);
        assert!(
            lines
                .iter()
                .enumerate()
                .all(|(i, l)| *l == format!("line {i}"))
        );
        assert_eq!(writer.dropped(), 0);
    }

    #[test]
    fn a_stalled_reader_costs_whole_lines_which_are_counted() {
        let sink = Sink::default();
        let stall = sink.gate.lock().unwrap();
        let (mut writer, flusher) = BatchedStderr::start(sink.clone()).unwrap();
        let line = format!("{}\n", "x".repeat(999));
        // Several buffers' worth: whatever the writer thread took before it blocked,
        // the rest cannot fit.
        let written = 3 * LOG_BUFFER_BYTES / line.len();
        for _ in 0..written {
            writer.write_all(line.as_bytes()).unwrap();
        }
        let dropped = writer.dropped();
        drop(stall);
        drop(flusher);

        let text = String::from_utf8(sink.bytes.lock().unwrap().clone()).unwrap();
        assert!(dropped > 0, "nothing dropped");
        assert!(text.lines().all(|l| l.len() == 999), "a line was cut");
        assert_eq!(
            text.lines().count() as u64 + dropped,
            written as u64,
            "every line was either written or counted"
        );
    }
}
