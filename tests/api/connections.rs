//! Connection limits (#19, API.md "Connections"), against the real binary over real
//! sockets: a request head must be complete within `server.header_read_timeout_secs`, an
//! idle keep-alive connection is closed after `server.keep_alive_timeout_secs`, and no
//! listener holds more than `server.max_connections` open connections; on the public, the
//! admin and the redirect listener, TLS included. Each timeout is set small here and the
//! tests wait for the close with a bound, never for a fixed time.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{ServiceProcess, TestBackend, backend, service_command};
use crate::server_db::{POSTGRES_URL_VAR, TestDatabase, server_url};

/// How long a test waits, at most, for a connection the service should close.
const CLOSE_BOUND: Duration = Duration::from_secs(20);

/// The service binary on its own database (a SQLite file, or a fresh PostgreSQL database
/// in the suite's PostgreSQL pass), stopped when dropped.
struct Service {
    process: ServiceProcess,
    _dir: tempfile::TempDir,
    _database: Option<TestDatabase>,
}

impl Service {
    async fn spawn(settings: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let database = match backend() {
            TestBackend::Postgres => {
                let admin_url = server_url(POSTGRES_URL_VAR, "postgres").expect(
                    "STARSONGS_TEST_API_BACKEND=postgres needs STARSONGS_TEST_POSTGRES_URL",
                );
                Some(TestDatabase::create(&admin_url).await)
            }
            TestBackend::Sqlite | TestBackend::Mssql => None,
        };
        let url = database.as_ref().map_or_else(
            || format!("sqlite://{}?mode=rwc", dir.path().join("conn.db").display()),
            |db| db.url.clone(),
        );
        let mut command = service_command(&url);
        for (key, value) in settings {
            command.env(key, value);
        }
        Self {
            process: ServiceProcess::spawn(&mut command),
            _dir: dir,
            _database: database,
        }
    }

    fn public(&self) -> &str {
        &self.process.address
    }

    fn admin(&self) -> &str {
        &self.process.admin
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.process.child.kill();
        let _ = self.process.child.wait();
    }
}

/// The head of `GET path` without the blank line that ends it.
fn half_head(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: slow\r\n")
}

fn full_request(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n")
}

/// Reads one response (head and `Content-Length` body) off a keep-alive connection.
async fn read_response(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let mut chunk = [0_u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&received).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if received.len() >= end + 4 + length {
                return text;
            }
        }
        let read = stream.read(&mut chunk).await.unwrap();
        assert!(read > 0, "closed mid-response: {text:?}");
        received.extend_from_slice(&chunk[..read]);
    }
}

/// Sends `GET path` on `stream` and returns the response.
async fn exchange(stream: &mut TcpStream, path: &str) -> String {
    stream
        .write_all(full_request(path).as_bytes())
        .await
        .unwrap();
    read_response(stream).await
}

/// Waits, at most `bound`, for the service to close `stream`; returns whatever it sent
/// first, or `None` if the connection was still open at the bound.
async fn closed_within(stream: &mut TcpStream, bound: Duration) -> Option<String> {
    let deadline = tokio::time::Instant::now() + bound;
    let mut received = Vec::new();
    let mut chunk = [0_u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(String::from_utf8_lossy(&received).into_owned()),
            Ok(Ok(read)) => received.extend_from_slice(&chunk[..read]),
        }
    }
}

/// Whether `stream` is still open with nothing to read (the service has not answered).
fn still_waiting(stream: &TcpStream) -> bool {
    let mut byte = [0_u8; 1];
    matches!(stream.try_read(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

#[tokio::test]
async fn a_half_sent_head_is_closed_after_header_read_timeout_secs_on_both_listeners() {
    let service = Service::spawn(&[("STARSONGS__SERVER__HEADER_READ_TIMEOUT_SECS", "1")]).await;
    let mut public = TcpStream::connect(service.public()).await.unwrap();
    let mut admin = TcpStream::connect(service.admin()).await.unwrap();
    let mut silent = TcpStream::connect(service.public()).await.unwrap();

    public
        .write_all(half_head("/health/live").as_bytes())
        .await
        .unwrap();
    admin
        .write_all(half_head("/metrics").as_bytes())
        .await
        .unwrap();

    let public = closed_within(&mut public, CLOSE_BOUND).await;
    let admin = closed_within(&mut admin, CLOSE_BOUND).await;
    let silent = closed_within(&mut silent, CLOSE_BOUND).await;
    assert_eq!(public.as_deref(), Some(""), "public listener");
    assert_eq!(admin.as_deref(), Some(""), "admin listener");
    assert_eq!(
        silent.as_deref(),
        Some(""),
        "a connection that sent nothing"
    );
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_keep_alive_timeout_secs() {
    let service = Service::spawn(&[
        ("STARSONGS__SERVER__HEADER_READ_TIMEOUT_SECS", "1"),
        ("STARSONGS__SERVER__KEEP_ALIVE_TIMEOUT_SECS", "2"),
    ])
    .await;
    let mut public = TcpStream::connect(service.public()).await.unwrap();
    let mut admin = TcpStream::connect(service.admin()).await.unwrap();

    let public_answer = exchange(&mut public, "/health/live").await;
    let admin_answer = exchange(&mut admin, "/metrics").await;

    assert!(public_answer.starts_with("HTTP/1.1 200"), "{public_answer}");
    assert!(admin_answer.starts_with("HTTP/1.1 200"), "{admin_answer}");
    let public = closed_within(&mut public, CLOSE_BOUND).await;
    let admin = closed_within(&mut admin, CLOSE_BOUND).await;
    assert_eq!(public.as_deref(), Some(""), "public listener");
    assert_eq!(admin.as_deref(), Some(""), "admin listener");
}

#[tokio::test]
async fn a_slow_but_steady_client_within_the_limits_is_not_cut() {
    // The head takes about half the header timeout; the pause between requests is longer
    // than the header timeout but shorter than the keep-alive timeout.
    let service = Service::spawn(&[
        ("STARSONGS__SERVER__HEADER_READ_TIMEOUT_SECS", "3"),
        ("STARSONGS__SERVER__KEEP_ALIVE_TIMEOUT_SECS", "10"),
    ])
    .await;
    for (address, path) in [
        (service.public(), "/health/live"),
        (service.admin(), "/metrics"),
    ] {
        let mut stream = TcpStream::connect(address).await.unwrap();

        let request = full_request(path);
        for piece in request.as_bytes().chunks(request.len().div_ceil(5)) {
            stream.write_all(piece).await.unwrap();
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let first = read_response(&mut stream).await;
        tokio::time::sleep(Duration::from_secs(4)).await;
        let second = exchange(&mut stream, path).await;

        assert!(first.starts_with("HTTP/1.1 200"), "{address}: {first}");
        assert!(second.starts_with("HTTP/1.1 200"), "{address}: {second}");
    }
}

#[tokio::test]
async fn two_thousand_half_sent_heads_do_not_stop_a_normal_client() {
    const STALLED: usize = 2000;
    // The default settings: a 10 s header timeout, 4096 connections per listener.
    let service = Service::spawn(&[]).await;
    let started = Instant::now();
    let mut stalled = Vec::with_capacity(STALLED);
    for _ in 0..STALLED {
        let mut stream = TcpStream::connect(service.public()).await.unwrap();
        stream
            .write_all(half_head("/v1/songs").as_bytes())
            .await
            .unwrap();
        stalled.push(stream);
    }
    let opened = started.elapsed();

    let asked = Instant::now();
    let response = crate::harness::client()
        .get(format!("http://{}/health/ready", service.public()))
        .send()
        .await
        .unwrap();
    let waited = asked.elapsed();
    let open_meanwhile = stalled.iter().filter(|s| still_waiting(s)).count();

    println!(
        "{STALLED} half-sent heads opened in {opened:?}; a normal client waited {waited:?} \
         for its answer while {open_meanwhile} of them were open"
    );
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    assert!(
        open_meanwhile > STALLED / 2,
        "the stalled connections were closed before the normal client asked \
         ({open_meanwhile} open): the test proved nothing"
    );
    let deadline = Instant::now() + CLOSE_BOUND;
    for (index, stream) in stalled.iter_mut().enumerate() {
        let left = deadline.saturating_duration_since(Instant::now());
        let closed = closed_within(stream, left).await;
        assert_eq!(closed.as_deref(), Some(""), "stalled connection {index}");
    }
}

#[tokio::test]
async fn past_max_connections_a_new_connection_is_served_only_when_one_closes() {
    let service = Service::spawn(&[("STARSONGS__SERVER__MAX_CONNECTIONS", "2")]).await;
    for (address, path) in [
        (service.public().to_owned(), "/health/live"),
        (service.admin().to_owned(), "/metrics"),
    ] {
        let mut first = TcpStream::connect(&address).await.unwrap();
        let mut second = TcpStream::connect(&address).await.unwrap();
        assert!(exchange(&mut first, path).await.starts_with("HTTP/1.1 200"));
        assert!(
            exchange(&mut second, path)
                .await
                .starts_with("HTTP/1.1 200")
        );

        // The kernel completes the handshake (backlog); the service does not accept yet.
        let mut third = TcpStream::connect(&address).await.unwrap();
        third
            .write_all(full_request(path).as_bytes())
            .await
            .unwrap();
        let early = tokio::time::timeout(Duration::from_secs(1), third.read(&mut [0_u8; 1])).await;
        assert!(
            early.is_err(),
            "{address}: the third connection was served while two were open: {early:?}"
        );

        drop(first);
        let answer = tokio::time::timeout(CLOSE_BOUND, read_response(&mut third))
            .await
            .expect("the third connection is served once one closes");
        assert!(answer.starts_with("HTTP/1.1 200"), "{address}: {answer}");
    }
}

#[tokio::test]
async fn the_cap_is_per_listener_so_a_full_public_listener_leaves_metrics_scrapeable() {
    let service = Service::spawn(&[("STARSONGS__SERVER__MAX_CONNECTIONS", "1")]).await;
    let mut held = TcpStream::connect(service.public()).await.unwrap();
    assert!(
        exchange(&mut held, "/health/live")
            .await
            .starts_with("HTTP/1.1 200")
    );
    let mut waiting = TcpStream::connect(service.public()).await.unwrap();
    waiting
        .write_all(full_request("/health/live").as_bytes())
        .await
        .unwrap();
    let early = tokio::time::timeout(Duration::from_secs(1), waiting.read(&mut [0_u8; 1])).await;

    let mut admin = TcpStream::connect(service.admin()).await.unwrap();
    let scrape = tokio::time::timeout(CLOSE_BOUND, exchange(&mut admin, "/metrics"))
        .await
        .expect("the admin listener answers while the public one is full");

    assert!(
        early.is_err(),
        "the public listener was not full: {early:?}"
    );
    assert!(scrape.starts_with("HTTP/1.1 200"), "{scrape}");
}

/// A self-signed certificate for localhost and 127.0.0.1, written as PEM files.
fn write_certificate(dir: &std::path::Path) -> (String, String) {
    let params =
        rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let (cert_path, key_path) = (dir.join("tls.crt"), dir.join("tls.key"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    (
        cert_path.display().to_string(),
        key_path.display().to_string(),
    )
}

/// `openssl s_client` on `address` that sends `input` after the handshake and keeps its
/// side open; killed when dropped.
struct TlsClient {
    child: std::process::Child,
    output: std::sync::Arc<std::sync::Mutex<String>>,
    _stdin: std::process::ChildStdin,
}

impl TlsClient {
    fn start(address: &str, input: &str) -> Self {
        use std::io::{Read, Write};

        let mut child = std::process::Command::new("openssl")
            .args(["s_client", "-quiet", "-connect", address])
            .args(["-servername", "localhost"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(input.as_bytes()).unwrap();
        stdin.flush().unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let output = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let sink = output.clone();
        std::thread::spawn(move || {
            let mut chunk = [0_u8; 4096];
            while let Ok(read) = stdout.read(&mut chunk) {
                if read == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&chunk[..read]));
            }
        });
        Self {
            child,
            output,
            _stdin: stdin,
        }
    }

    /// Waits, at most `bound`, until the service has closed the connection (the client
    /// then exits); returns what the service sent, or `None` if it was still open.
    async fn closed_within(&mut self, bound: Duration) -> Option<String> {
        let deadline = Instant::now() + bound;
        while Instant::now() < deadline {
            if self.child.try_wait().unwrap().is_some() {
                return Some(self.output.lock().unwrap().clone());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    /// Waits, at most `bound`, until the service's answer contains `text`.
    async fn received(&self, text: &str, bound: Duration) -> bool {
        let deadline = Instant::now() + bound;
        while Instant::now() < deadline {
            if self.output.lock().unwrap().contains(text) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }
}

impl Drop for TlsClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn tls_and_redirect_listeners_apply_the_same_timeouts() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = write_certificate(dir.path());
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let redirect_port = free.local_addr().unwrap().port().to_string();
    drop(free);
    let service = Service::spawn(&[
        ("STARSONGS__SERVER__TLS__CERT_FILE", &cert),
        ("STARSONGS__SERVER__TLS__KEY_FILE", &key),
        ("STARSONGS__SERVER__TLS__REDIRECT_HTTP_PORT", &redirect_port),
        ("STARSONGS__SERVER__HEADER_READ_TIMEOUT_SECS", "1"),
        ("STARSONGS__SERVER__KEEP_ALIVE_TIMEOUT_SECS", "2"),
    ])
    .await;
    let mut half = TlsClient::start(service.public(), &half_head("/health/live"));
    let mut idle = TlsClient::start(service.public(), &full_request("/health/live"));
    let mut no_handshake = TcpStream::connect(service.public()).await.unwrap();
    let mut redirect = TcpStream::connect(format!("127.0.0.1:{redirect_port}"))
        .await
        .unwrap();
    redirect
        .write_all(half_head("/v1/songs").as_bytes())
        .await
        .unwrap();

    let answered = idle.received("HTTP/1.1 200", CLOSE_BOUND).await;
    let half = half.closed_within(CLOSE_BOUND).await;
    let idle = idle.closed_within(CLOSE_BOUND).await;
    let no_handshake = closed_within(&mut no_handshake, CLOSE_BOUND).await;
    let redirect = closed_within(&mut redirect, CLOSE_BOUND).await;

    assert!(answered, "the TLS keep-alive request was not answered");
    let half = half.expect("a half-sent head over TLS is closed");
    assert!(!half.contains("HTTP/1.1"), "{half}");
    assert!(
        idle.is_some(),
        "an idle TLS keep-alive connection is closed"
    );
    assert!(
        no_handshake.is_some(),
        "a connection that never starts its TLS handshake is closed"
    );
    assert_eq!(redirect.as_deref(), Some(""), "redirect listener");
}
