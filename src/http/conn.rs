//! Connection limits, the same on every listener (public, admin, HTTPS redirect; TLS or
//! not): a cap on open connections (`server.max_connections`), a header-read timeout
//! (`server.header_read_timeout_secs`) and a keep-alive idle timeout
//! (`server.keep_alive_timeout_secs`). API.md "Connections".
//!
//! - **The cap** is a semaphore per listener, taken *before* `accept(2)`: past it the
//!   listener stops accepting, so new connections wait in the kernel's listen backlog (their
//!   TCP handshake completes, their request waits unread) until a connection closes; once
//!   the backlog is full the kernel drops new SYNs and clients retry. No file descriptor is
//!   spent on a connection that is not served. A warning is logged (at most once a minute)
//!   while the cap holds connections back.
//! - **The timeouts** are a watchdog on each accepted socket ([`Conn`]), below TLS, shared
//!   with a service wrapper ([`Tracked`]) that knows when a request is in flight. While no
//!   request is in flight the connection has a deadline:
//!   - a new connection must complete its first request head (TLS handshake and HTTP/2
//!     preface included) within `header_read_timeout` of being accepted;
//!   - after a response, an HTTP/1 connection may stay idle for `keep_alive_timeout`; once
//!     the first byte of the next request arrives, its head must be complete within
//!     `header_read_timeout` of that byte;
//!   - an HTTP/2 connection with no stream in flight is closed `keep_alive_timeout` after
//!     its last response (PINGs and window updates do not count as requests).
//!
//!   At the deadline a read returns end-of-file (hyper then closes the connection as a
//!   client that went away) and a write that cannot progress fails; a response still
//!   being written to a slow HTTP/1 reader counts as activity. While a request is in
//!   flight no deadline applies: `server.request_timeout_secs` bounds the handler.
//!
//! hyper's own `http1().header_read_timeout` is left off: in hyper 1.x its timer also
//! runs while a keep-alive connection waits for its next request, so it would close idle
//! connections after the header timeout, and keep-alive could not be its own value.

use std::future::{Future, Ready};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::http::{Request, Version};
use axum_server::accept::Accept;
use axum_server::{AddrListener, Address};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tower::Service;

use crate::config::Settings;

/// The limits one listener applies to its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnLimits {
    /// A request head must be complete this long after the connection is accepted or the
    /// head's first byte arrives.
    pub header_read: Duration,
    /// An idle keep-alive connection is closed after this long.
    pub keep_alive: Duration,
    /// Open connections on the listener.
    pub max_connections: usize,
}

impl ConnLimits {
    /// The timeouts of `settings` with `max_connections` (the cap after
    /// [`fit_to_file_limit`]).
    pub fn new(settings: &Settings, max_connections: usize) -> Self {
        Self {
            header_read: settings.server.header_read_timeout(),
            keep_alive: settings.server.keep_alive_timeout(),
            max_connections: max_connections.max(1),
        }
    }
}

/// The peer address of a connection accepted by a [`Listener`]. The handlers'
/// `ConnectInfo<SocketAddr>` is this address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

impl Address for PeerAddr {
    type Stream = Conn;
    type Listener = Listener;
}

impl Connected<PeerAddr> for SocketAddr {
    fn connect_info(peer: PeerAddr) -> Self {
        peer.0
    }
}

/// A TCP listener that accepts only while fewer than `max_connections` of its
/// connections are open, and puts a watchdog on each one.
#[derive(Debug)]
pub struct Listener {
    inner: TcpListener,
    slots: Arc<Semaphore>,
    limits: ConnLimits,
    name: &'static str,
    last_warning: Mutex<Option<Instant>>,
}

/// How often, at most, a listener logs that its cap holds connections back.
const WARNING_INTERVAL: Duration = Duration::from_secs(60);

impl Listener {
    /// Wraps a bound listener; `name` (`public`, `admin`, `redirect`) labels its log lines.
    ///
    /// # Errors
    /// The socket cannot be registered with the runtime.
    pub fn new(
        listener: std::net::TcpListener,
        name: &'static str,
        limits: ConnLimits,
    ) -> io::Result<Self> {
        listener.set_nonblocking(true)?;
        Ok(Self {
            inner: TcpListener::from_std(listener)?,
            slots: Arc::new(Semaphore::new(limits.max_connections)),
            limits,
            name,
            last_warning: Mutex::new(None),
        })
    }

    /// Logs, at most once per [`WARNING_INTERVAL`], that the cap is reached.
    fn warn_saturated(&self) {
        let now = Instant::now();
        let mut last = self
            .last_warning
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if last.is_some_and(|at| now.duration_since(at) < WARNING_INTERVAL) {
            return;
        }
        *last = Some(now);
        tracing::warn!(
            listener = self.name,
            max_connections = self.limits.max_connections,
            "connection limit reached: new connections wait in the listen backlog until one \
             closes (server.max_connections)"
        );
    }
}

impl AddrListener<Conn, PeerAddr> for Listener {
    async fn bind_to(_addr: PeerAddr) -> io::Result<Self> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "a capped listener wraps an already bound socket",
        ))
    }

    async fn accept_stream(&self) -> io::Result<(Conn, PeerAddr)> {
        // The slot is taken before accept(2): without one the connection stays in the
        // kernel's backlog and costs this process nothing.
        let slot = match self.slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                self.warn_saturated();
                self.slots
                    .clone()
                    .acquire_owned()
                    .await
                    .map_err(io::Error::other)?
            }
        };
        let (io, peer) = self.inner.accept().await?;
        Ok((Conn::new(io, slot, self.limits), PeerAddr(peer)))
    }

    fn get_local_addr(&self) -> io::Result<PeerAddr> {
        self.inner.local_addr().map(PeerAddr)
    }
}

/// What the socket and the service know about one connection.
#[derive(Debug)]
struct Watch {
    limits: ConnLimits,
    state: Mutex<WatchState>,
}

#[derive(Debug)]
struct WatchState {
    /// Requests dispatched whose response has not been produced yet.
    in_flight: usize,
    /// At least one response was produced.
    served: bool,
    /// The connection speaks HTTP/2 (bytes read while idle are not a request head).
    h2: bool,
    /// Since when no request is in flight (the accept, the last response or the last
    /// write progress while idle).
    idle_since: Instant,
    /// When the first byte after `idle_since` arrived (HTTP/1: a request head started).
    head_started: Option<Instant>,
    /// The task last parked on a read, woken when the connection turns idle so that its
    /// deadline is armed.
    reader: Option<Waker>,
}

impl WatchState {
    fn new(now: Instant) -> Self {
        Self {
            in_flight: 0,
            served: false,
            h2: false,
            idle_since: now,
            head_started: None,
            reader: None,
        }
    }

    /// When the connection is closed if nothing changes; `None` while a request is in
    /// flight.
    fn deadline(&self, limits: &ConnLimits) -> Option<Instant> {
        if self.in_flight > 0 {
            None
        } else if !self.served {
            Some(self.idle_since + limits.header_read)
        } else if let (false, Some(started)) = (self.h2, self.head_started) {
            Some(started + limits.header_read)
        } else {
            Some(self.idle_since + limits.keep_alive)
        }
    }

    fn on_read(&mut self, now: Instant) {
        if self.in_flight == 0 && self.served && !self.h2 && self.head_started.is_none() {
            self.head_started = Some(now);
        }
    }

    fn on_write(&mut self, now: Instant) {
        // An HTTP/1 response still draining to a slow reader; HTTP/2 writes while idle
        // are control frames, which must not keep an idle connection open.
        if self.in_flight == 0 && self.served && !self.h2 {
            self.idle_since = now;
        }
    }

    fn begin(&mut self, version: Version) {
        self.in_flight += 1;
        self.h2 |= version == Version::HTTP_2;
        self.head_started = None;
    }

    /// Ends a request; returns the reader to wake when the connection turned idle.
    fn end(&mut self, now: Instant) -> Option<Waker> {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.served = true;
        if self.in_flight > 0 {
            return None;
        }
        self.idle_since = now;
        self.head_started = None;
        self.reader.take()
    }
}

impl Watch {
    fn lock(&self) -> std::sync::MutexGuard<'_, WatchState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// An accepted connection: the socket, its slot under the listener's cap (freed when the
/// connection is dropped) and its idle/header watchdog.
#[derive(Debug)]
pub struct Conn {
    io: TcpStream,
    watch: Arc<Watch>,
    timer: Pin<Box<Sleep>>,
    armed: Option<Instant>,
    expired: bool,
    _slot: OwnedSemaphorePermit,
}

impl Conn {
    fn new(io: TcpStream, slot: OwnedSemaphorePermit, limits: ConnLimits) -> Self {
        let now = Instant::now();
        Self {
            io,
            watch: Arc::new(Watch {
                limits,
                state: Mutex::new(WatchState::new(now)),
            }),
            timer: Box::pin(tokio::time::sleep_until(now + limits.header_read)),
            armed: None,
            expired: false,
            _slot: slot,
        }
    }

    /// Whether the deadline has passed; arms the timer (waking this task at the
    /// deadline) when it has not. `reader` is remembered to be woken when the connection
    /// turns idle.
    fn poll_expired(&mut self, cx: &mut Context<'_>, reader: bool) -> bool {
        if self.expired {
            return true;
        }
        let deadline = {
            let mut state = self.watch.lock();
            if reader
                && !state
                    .reader
                    .as_ref()
                    .is_some_and(|w| w.will_wake(cx.waker()))
            {
                state.reader = Some(cx.waker().clone());
            }
            state.deadline(&self.watch.limits)
        };
        let Some(deadline) = deadline else {
            return false;
        };
        if self.armed != Some(deadline) {
            self.timer.as_mut().reset(deadline);
            self.armed = Some(deadline);
        }
        if self.timer.as_mut().poll(cx).is_ready() {
            self.expired = true;
            tracing::debug!("connection closed: header read or keep-alive timeout");
        }
        self.expired
    }

    fn poll_write_with<T>(
        &mut self,
        cx: &mut Context<'_>,
        write: impl FnOnce(Pin<&mut TcpStream>, &mut Context<'_>) -> Poll<io::Result<T>>,
        progressed: impl FnOnce(&T) -> bool,
    ) -> Poll<io::Result<T>> {
        match write(Pin::new(&mut self.io), cx) {
            Poll::Ready(Ok(value)) => {
                if progressed(&value) {
                    self.watch.lock().on_write(Instant::now());
                }
                Poll::Ready(Ok(value))
            }
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            Poll::Pending if self.poll_expired(cx, false) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client stopped reading (keep-alive timeout)",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.expired {
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.watch.lock().on_read(Instant::now());
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            // End of file: hyper closes the connection as it would for a client that left.
            Poll::Pending if this.poll_expired(cx, true) => Poll::Ready(Ok(())),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .poll_write_with(cx, |io, cx| io.poll_write(cx, buf), |n| *n > 0)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .poll_write_with(cx, |io, cx| io.poll_write_vectored(cx, bufs), |n| *n > 0)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut()
            .poll_write_with(cx, |io, cx| io.poll_flush(cx), |()| false)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut()
            .poll_write_with(cx, |io, cx| io.poll_shutdown(cx), |()| false)
    }
}

/// The acceptor that hands each connection's watchdog to its service ([`Tracked`]). For
/// TLS it runs inside `RustlsAcceptor`, so the watchdog sees the encrypted bytes and
/// bounds the handshake too.
#[derive(Debug, Clone, Copy, Default)]
pub struct ConnAcceptor;

impl<S> Accept<Conn, S> for ConnAcceptor {
    type Stream = Conn;
    type Service = Tracked<S>;
    type Future = Ready<io::Result<(Conn, Tracked<S>)>>;

    fn accept(&self, stream: Conn, service: S) -> Self::Future {
        let watch = stream.watch.clone();
        std::future::ready(Ok((
            stream,
            Tracked {
                inner: service,
                watch,
            },
        )))
    }
}

/// A connection's service: marks a request in flight from its dispatch until its
/// response is produced (or the request is dropped), which suspends the watchdog.
#[derive(Debug, Clone)]
pub struct Tracked<S> {
    inner: S,
    watch: Arc<Watch>,
}

impl<S, B> Service<Request<B>> for Tracked<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = InFlight<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        self.watch.lock().begin(request.version());
        InFlight {
            inner: self.inner.call(request),
            _guard: Guard(self.watch.clone()),
        }
    }
}

/// Ends the request when dropped (response produced, failed, or the client left).
#[derive(Debug)]
struct Guard(Arc<Watch>);

impl Drop for Guard {
    fn drop(&mut self) {
        let reader = self.0.lock().end(Instant::now());
        if let Some(reader) = reader {
            reader.wake();
        }
    }
}

pin_project_lite::pin_project! {
    /// A response being produced; the request stays in flight until this resolves.
    #[derive(Debug)]
    pub struct InFlight<F> {
        #[pin]
        inner: F,
        _guard: Guard,
    }
}

impl<F: Future> Future for InFlight<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // The guard goes with the future: hyper drops it as soon as it is ready.
        self.project().inner.poll(cx)
    }
}

/// File descriptors kept for everything but client connections: the listeners, stdio,
/// the log file, Redis, Sentry, the runtime's epoll and wakers, the certificate files.
pub const RESERVED_FDS: u64 = 64;

/// File descriptors a database connection may hold (SQLite: the database, its `-wal` and
/// `-shm`; a server database: one socket).
const FDS_PER_DB_CONNECTION: u64 = 3;

/// How the connection cap fits the open-file limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdBudget {
    /// The cap each listener applies.
    pub per_listener: usize,
    /// Descriptors `server.max_connections` would need on every listener.
    pub needed: u64,
    /// The soft open-file limit.
    pub limit: u64,
}

impl FdBudget {
    /// The cap that fits `limit`: `max_connections` when `listeners` × `max_connections`
    /// plus the database's and [`RESERVED_FDS`] fit, else what does (at least 1).
    pub fn plan(max_connections: usize, listeners: usize, db_connections: u32, limit: u64) -> Self {
        let listeners = listeners.max(1) as u64;
        let fixed = u64::from(db_connections) * FDS_PER_DB_CONNECTION + RESERVED_FDS;
        let wanted = max_connections as u64;
        let needed = wanted.saturating_mul(listeners).saturating_add(fixed);
        let per_listener = if needed <= limit {
            wanted
        } else {
            (limit.saturating_sub(fixed) / listeners).max(1)
        };
        Self {
            per_listener: usize::try_from(per_listener).unwrap_or(usize::MAX),
            needed,
            limit,
        }
    }
}

/// Raises the soft open-file limit to the hard one (as Go's runtime does; containers often
/// start with a soft limit of 1024 under a far higher hard one), then returns the cap each
/// of `listeners` listeners applies: `server.max_connections`, or less, with a warning,
/// when the limit cannot hold that many connections on every listener besides the
/// database pool and [`RESERVED_FDS`]. A process that runs out of descriptors fails
/// requests at random; a lower cap only makes new connections wait.
pub fn fit_to_file_limit(settings: &Settings, listeners: usize) -> FdBudget {
    let limit = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(error) => {
            tracing::warn!(error = %error, "cannot raise the open-file limit");
            current_file_limit()
        }
    };
    let budget = FdBudget::plan(
        settings.server.max_connections,
        listeners,
        settings.database.max_connections,
        limit,
    );
    if budget.per_listener < settings.server.max_connections {
        tracing::warn!(
            open_file_limit = budget.limit,
            needed = budget.needed,
            max_connections = settings.server.max_connections,
            per_listener = budget.per_listener,
            "the open-file limit cannot hold server.max_connections on every listener; each \
             listener accepts fewer connections (raise the container's nofile limit or lower \
             server.max_connections)"
        );
    } else {
        tracing::debug!(
            open_file_limit = budget.limit,
            needed = budget.needed,
            "open-file limit fits server.max_connections"
        );
    }
    budget
}

fn current_file_limit() -> u64 {
    #[cfg(unix)]
    {
        rlimit::Resource::NOFILE
            .get()
            .map_or(u64::MAX, |(soft, _)| soft)
    }
    #[cfg(not(unix))]
    {
        u64::MAX
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: ConnLimits = ConnLimits {
        header_read: Duration::from_secs(10),
        keep_alive: Duration::from_secs(60),
        max_connections: 4,
    };

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn a_new_connection_must_finish_its_first_head_within_the_header_timeout() {
        let t0 = Instant::now();
        let mut state = WatchState::new(t0);

        state.on_read(t0 + secs(1));

        assert_eq!(state.deadline(&LIMITS), Some(t0 + secs(10)));
    }

    #[test]
    fn no_deadline_applies_while_a_request_is_in_flight() {
        let t0 = Instant::now();
        let mut state = WatchState::new(t0);

        state.begin(Version::HTTP_11);

        assert_eq!(state.deadline(&LIMITS), None);
    }

    #[test]
    fn an_idle_keep_alive_connection_gets_the_keep_alive_timeout_until_a_head_starts() {
        let t0 = Instant::now();
        let mut state = WatchState::new(t0);
        state.begin(Version::HTTP_11);
        let _ = state.end(t0 + secs(2));
        let idle = state.deadline(&LIMITS);

        state.on_read(t0 + secs(30));

        assert_eq!(idle, Some(t0 + secs(62)));
        assert_eq!(state.deadline(&LIMITS), Some(t0 + secs(40)));
    }

    #[test]
    fn http2_control_frames_neither_start_a_head_nor_extend_idleness() {
        let t0 = Instant::now();
        let mut state = WatchState::new(t0);
        state.begin(Version::HTTP_2);
        let _ = state.end(t0 + secs(2));

        state.on_read(t0 + secs(30));
        state.on_write(t0 + secs(30));

        assert_eq!(state.deadline(&LIMITS), Some(t0 + secs(62)));
    }

    #[test]
    fn a_response_draining_to_a_slow_reader_counts_as_activity() {
        let t0 = Instant::now();
        let mut state = WatchState::new(t0);
        state.begin(Version::HTTP_11);
        let _ = state.end(t0 + secs(2));

        state.on_write(t0 + secs(50));

        assert_eq!(state.deadline(&LIMITS), Some(t0 + secs(110)));
    }

    #[test]
    fn the_connection_turns_idle_only_when_its_last_request_ends() {
        let t0 = Instant::now();
        let mut state = WatchState::new(t0);
        state.begin(Version::HTTP_2);
        state.begin(Version::HTTP_2);

        let first = state.end(t0 + secs(1));

        assert!(first.is_none());
        assert_eq!(state.deadline(&LIMITS), None);
        let _ = state.end(t0 + secs(3));
        assert_eq!(state.deadline(&LIMITS), Some(t0 + secs(63)));
    }

    #[test]
    fn the_default_cap_is_kept_when_the_file_limit_holds_it() {
        let budget = FdBudget::plan(4096, 2, 10, 1_048_576);

        assert_eq!(budget.per_listener, 4096);
        assert_eq!(budget.needed, 2 * 4096 + 30 + RESERVED_FDS);
    }

    #[test]
    fn the_cap_shrinks_to_fit_a_small_file_limit() {
        let budget = FdBudget::plan(4096, 2, 10, 1024);

        assert_eq!(budget.per_listener, (1024 - 30 - RESERVED_FDS as usize) / 2);
        assert!(budget.needed > 1024);
    }

    #[test]
    fn a_file_limit_below_the_reserve_still_leaves_one_connection() {
        let budget = FdBudget::plan(4096, 3, 10, 16);

        assert_eq!(budget.per_listener, 1);
    }
}
