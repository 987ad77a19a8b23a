//! `TestApp`: a running service on a free port with a fresh database, plus helpers that
//! make a new test a few lines.
//!
//! The backend is SQLite unless `STARSONGS_TEST_API_BACKEND=postgres`: then every
//! instance gets a fresh database on the server of `STARSONGS_TEST_POSTGRES_URL`, dropped
//! when the test ends. Tests that reach into SQLite itself (its file, its locks) check
//! [`sqlite_only`] and say why they skip on a server database.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use reqwest::{Client, Method, RequestBuilder, Response, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use starsongs::app::App;
use starsongs::clock::Clock;
use starsongs::config::Settings;
use starsongs::domain::user::{NewUser, Role};
use starsongs::state::AppState;
use starsongs::storage::migrate::MIGRATIONS;
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::server_db::{MSSQL_URL_VAR, POSTGRES_URL_VAR, TestDatabase, server_url};

/// The database behind the HTTP suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestBackend {
    /// A SQLite file per instance (the default).
    Sqlite,
    /// A database per instance on `STARSONGS_TEST_POSTGRES_URL`.
    Postgres,
    /// A database per instance on `STARSONGS_TEST_MSSQL_URL`.
    Mssql,
}

/// The backend `STARSONGS_TEST_API_BACKEND` selects (`sqlite` when unset).
///
/// # Panics
/// For an unknown name.
pub fn backend() -> TestBackend {
    match std::env::var("STARSONGS_TEST_API_BACKEND").as_deref() {
        Err(_) | Ok("" | "sqlite") => TestBackend::Sqlite,
        Ok("postgres") => TestBackend::Postgres,
        Ok("mssql") => TestBackend::Mssql,
        Ok(other) => {
            panic!("STARSONGS_TEST_API_BACKEND={other} is not sqlite, postgres or mssql")
        }
    }
}

/// True (after printing why) when the suite runs on a server database and the calling
/// test needs SQLite itself: the test then returns early.
pub fn sqlite_only(why: &str) -> bool {
    if backend() == TestBackend::Sqlite {
        return false;
    }
    println!("skipped on {:?}: SQLite only, {why}", backend());
    true
}
/// A running service; stopped and its files removed on drop.
///
/// `client` (and `app.get`, `app.post`, ...) sends a viewer's access token on every
/// request, so a missing role check cannot pass unnoticed; a test that writes says which
/// role it needs (`app.editor().post(...)`, `app.admin().delete(...)`). `anonymous` sends
/// no credentials. Budgets and caches run on `clock`: `app.advance(d)` instead of sleeping.
pub struct TestApp {
    pub base: String,
    /// A viewer's client.
    pub client: Client,
    pub anonymous: Client,
    /// The access token `client` sends (a viewer's).
    pub viewer_token: String,
    /// An editor's access token (`app.editor()` sends it).
    pub editor_token: String,
    /// An admin's access token (`app.admin()` sends it).
    pub admin_token: String,
    editor_client: Client,
    admin_client: Client,
    pub state: AppState,
    /// The clock of this instance's budgets and caches.
    pub clock: Clock,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<anyhow::Result<()>>>,
    /// Owns the database directory (replicas borrow the first instance's).
    _dir: Option<TempDir>,
    /// Owns the server database, when there is one (replicas borrow it).
    _database: Option<TestDatabase>,
    db_dir: std::path::PathBuf,
    db_url: String,
}

/// The HS256 secret every test instance signs with, so tests can forge tokens and
/// replicas accept each other's.
pub const JWT_SECRET: &str = "test-only HS256 secret, at least 32 bytes long";

/// Test settings: the test profile with a fresh SQLite file in `dir`.
pub fn settings_in(dir: &TempDir, overrides: &[(&str, &str)]) -> Settings {
    settings_for(&sqlite_url(dir.path()), overrides)
}

fn sqlite_url(dir: &std::path::Path) -> String {
    format!("sqlite://{}?mode=rwc", dir.join("test.db").display())
}

fn settings_for(url: &str, overrides: &[(&str, &str)]) -> Settings {
    let url = url.to_owned();
    let mut vars: HashMap<String, String> = HashMap::from([
        ("STARSONGS_ENV".to_owned(), "test".to_owned()),
        ("DATABASE_URL".to_owned(), url),
        (
            "STARSONGS__AUTH__JWT_SECRET".to_owned(),
            JWT_SECRET.to_owned(),
        ),
    ]);
    for (key, value) in overrides {
        vars.insert((*key).to_owned(), (*value).to_owned());
    }
    Settings::load_from(&vars).expect("test settings are valid")
}

fn init_logs() {
    // Logs only when asked: TEST_LOG=1 cargo test -- --nocapture
    if std::env::var_os("TEST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("debug")
            .with_test_writer()
            .try_init();
    }
}

impl TestApp {
    /// A service with the test profile.
    pub async fn spawn() -> Self {
        Self::spawn_with(&[]).await
    }

    /// A service with extra settings, as `STARSONGS__...` variables would give them.
    pub async fn spawn_with(overrides: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_owned();
        let database = match backend() {
            TestBackend::Sqlite => None,
            TestBackend::Postgres => {
                let admin_url = server_url(POSTGRES_URL_VAR, "postgres").expect(
                    "STARSONGS_TEST_API_BACKEND=postgres needs STARSONGS_TEST_POSTGRES_URL",
                );
                Some(TestDatabase::create(&admin_url).await)
            }
            TestBackend::Mssql => {
                let admin_url = server_url(MSSQL_URL_VAR, "mssql")
                    .expect("STARSONGS_TEST_API_BACKEND=mssql needs STARSONGS_TEST_MSSQL_URL");
                Some(TestDatabase::create_mssql(&admin_url).await)
            }
        };
        let url = database
            .as_ref()
            .map_or_else(|| sqlite_url(&path), |db| db.url.clone());
        let mut app = Self::start(&path, &url, overrides, None).await;
        app._dir = Some(dir);
        app._database = database;
        app
    }

    /// A service on the database at `url`, for tests that bring their own server.
    pub async fn spawn_on(url: &str, overrides: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_owned();
        let mut app = Self::start(&path, url, overrides, None).await;
        app._dir = Some(dir);
        app
    }

    /// A service on `url`, a restored copy of this instance's database: the copy already
    /// holds this instance's accounts, so its clients send the same tokens.
    pub async fn spawn_on_copy(&self, url: &str, overrides: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_owned();
        let mut app = Self::start(&path, url, overrides, Some(self.tokens())).await;
        app._dir = Some(dir);
        app
    }

    /// A second instance on the same database, as another replica behind a load balancer
    /// would be; its clients use the same tokens. It has its own clock.
    pub async fn replica(&self, overrides: &[(&str, &str)]) -> Self {
        Self::start(&self.db_dir, &self.db_url, overrides, Some(self.tokens())).await
    }

    fn tokens(&self) -> Tokens {
        Tokens {
            viewer: self.viewer_token.clone(),
            editor: self.editor_token.clone(),
            admin: self.admin_token.clone(),
        }
    }

    async fn start(
        dir: &std::path::Path,
        url: &str,
        overrides: &[(&str, &str)],
        tokens: Option<Tokens>,
    ) -> Self {
        init_logs();
        let settings = settings_for(url, overrides);
        let clock = Clock::default();
        let app = App::build_with_clock(settings, clock.clone())
            .await
            .expect("app builds");
        let base = format!("http://{}", app.local_addr().unwrap());
        let state = app.state().clone();
        let (tx, rx) = oneshot::channel::<()>();
        let server = tokio::spawn(app.run(async move {
            let _ = rx.await;
        }));
        let tokens = match tokens {
            Some(tokens) => tokens,
            None => Tokens {
                viewer: create_account(&state, "test-viewer", Role::Viewer).await.1,
                editor: create_account(&state, "test-editor", Role::Editor).await.1,
                admin: create_account(&state, "test-admin", Role::Admin).await.1,
            },
        };
        Self {
            base,
            client: client_with_token(&tokens.viewer),
            anonymous: client(),
            editor_client: client_with_token(&tokens.editor),
            admin_client: client_with_token(&tokens.admin),
            viewer_token: tokens.viewer,
            editor_token: tokens.editor,
            admin_token: tokens.admin,
            state,
            clock,
            shutdown: Some(tx),
            server: Some(server),
            _dir: None,
            _database: None,
            db_dir: dir.to_owned(),
            db_url: url.to_owned(),
        }
    }

    /// Moves this instance's clock forward: rate-limit budgets refill and cached grants,
    /// sessions and readiness checks age by `by`, without waiting.
    pub fn advance(&self, by: std::time::Duration) {
        self.clock.advance(by);
    }

    /// Requests as a viewer (the same as `app.get`, `app.post`, ...).
    pub fn viewer(&self) -> Caller<'_> {
        Caller {
            app: self,
            client: &self.client,
        }
    }

    /// Requests as an editor (catalog writes).
    pub fn editor(&self) -> Caller<'_> {
        Caller {
            app: self,
            client: &self.editor_client,
        }
    }

    /// Requests as an admin (`/v1/admin`).
    pub fn admin(&self) -> Caller<'_> {
        Caller {
            app: self,
            client: &self.admin_client,
        }
    }

    /// A new account with `role` (password [`PASSWORD`]) and an access token for it.
    pub async fn account(&self, username: &str, role: Role) -> (i64, String) {
        create_account(&self.state, username, role).await
    }

    /// A client that sends `Authorization: Bearer <token>`.
    pub fn client_for(&self, token: &str) -> Client {
        client_with_token(token)
    }

    /// The URL of this service's database (a SQLite file or a server database), for
    /// tests that open it directly or start the binary on it.
    pub fn database_url(&self) -> String {
        self.db_url.clone()
    }

    /// Runs `sql` (no parameters: test-made text only) on this service's database, behind
    /// the service's back, as an operator's maintenance script would.
    pub async fn execute_sql(&self, sql: &str) {
        use sqlx::Connection;
        let text = sql;
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        match backend() {
            TestBackend::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(&self.db_url).await.unwrap();
                sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
                conn.close().await.unwrap();
            }
            TestBackend::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&self.db_url).await.unwrap();
                sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
                conn.close().await.unwrap();
            }
            TestBackend::Mssql => crate::server_db::mssql_batch(&self.db_url, text)
                .await
                .unwrap(),
        }
    }

    /// Absolute URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A viewer's request builder for `method path`.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.viewer().request(method, path)
    }

    /// `GET path` as a viewer.
    pub async fn get(&self, path: &str) -> Response {
        self.viewer().get(path).await
    }

    /// Creates an artist as an editor and returns its body (asserts 201).
    pub async fn create_artist(&self, name: &str) -> Value {
        let response = self
            .editor()
            .post("/v1/artists", &json!({ "name": name }))
            .await;
        assert_eq!(
            response.status(),
            StatusCode::CREATED,
            "creating artist {name}"
        );
        response.json().await.unwrap()
    }

    /// Creates a song as an editor and returns its body (asserts 201).
    pub async fn create_song(&self, body: &Value) -> Value {
        let response = self.editor().post("/v1/songs", body).await;
        assert_eq!(
            response.status(),
            StatusCode::CREATED,
            "creating song {body}"
        );
        response.json().await.unwrap()
    }

    /// Asks the service to shut down and waits until `App::run` returns.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        self.trigger_shutdown();
        self.server.take().unwrap().await.unwrap()
    }

    /// Asks the service to shut down without waiting.
    pub fn trigger_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Waits for `App::run` to return after `trigger_shutdown`.
    pub async fn wait_stopped(mut self) -> anyhow::Result<()> {
        self.server.take().unwrap().await.unwrap()
    }
}

/// The tokens of the harness's three accounts (replicas and copies reuse them).
struct Tokens {
    viewer: String,
    editor: String,
    admin: String,
}

/// Requests to a [`TestApp`] with one role's token.
pub struct Caller<'a> {
    app: &'a TestApp,
    /// The client that carries the token.
    pub client: &'a Client,
}

impl Caller<'_> {
    /// A request builder for `method path`.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, self.app.url(path))
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Response {
        self.request(Method::GET, path).send().await.unwrap()
    }

    /// Sends `body` as `application/json`.
    pub async fn send_json(&self, method: Method, path: &str, body: &Value) -> Response {
        self.request(method, path)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap()
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> Response {
        self.send_json(Method::POST, path, body).await
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> Response {
        self.request(Method::DELETE, path).send().await.unwrap()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.trigger_shutdown();
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

/// A client builder. The crate's reqwest (shared with the Sentry transport) is built
/// without a TLS crypto provider of its own, so one is installed first.
pub fn client_builder() -> reqwest::ClientBuilder {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Client::builder()
}

/// A plain client.
pub fn client() -> Client {
    client_builder().build().unwrap()
}

/// Password of every account the harness creates.
pub const PASSWORD: &str = "correct horse battery staple";

/// Creates an account directly through the service's use cases and issues its token.
pub async fn create_account(state: &AppState, username: &str, role: Role) -> (i64, String) {
    let new = NewUser::parse(
        username,
        &format!("{username}@example.com"),
        &SecretString::from(PASSWORD.to_owned()),
        role,
    )
    .unwrap();
    let user = state.accounts.create_user(&new).await.unwrap();
    let pair = state.accounts.start_session(&user).await.unwrap();
    (user.id.get(), pair.access_token.expose_secret().to_owned())
}

/// A client whose every request carries `token`.
pub fn client_with_token(token: &str) -> Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    client_builder().default_headers(headers).build().unwrap()
}

/// Reads a response as `(status, content-type, JSON body)`.
pub async fn parts(response: Response) -> (StatusCode, String, Value) {
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, content_type, body)
}

/// Asserts a problem+json response with `status`, returning the body.
pub async fn problem(response: Response, status: StatusCode) -> Value {
    let request_id = response
        .headers()
        .get("x-request-id")
        .map(|v| v.to_str().unwrap().to_owned());
    let (got, content_type, body) = parts(response).await;
    assert_eq!(got, status, "body: {body}");
    assert_eq!(content_type, "application/problem+json", "body: {body}");
    assert_eq!(body["status"], status.as_u16(), "body: {body}");
    assert!(
        body["type"]
            .as_str()
            .unwrap()
            .starts_with("urn:starsongs:problem:")
    );
    assert!(
        body["title"].is_string() && body["detail"].is_string(),
        "body: {body}"
    );
    assert!(
        body["instance"].as_str().unwrap().starts_with('/'),
        "body: {body}"
    );
    assert_eq!(
        body["request_id"].as_str(),
        request_id.as_deref(),
        "body: {body}"
    );
    if status == StatusCode::UNPROCESSABLE_ENTITY {
        assert!(
            !body["errors"].as_array().unwrap().is_empty(),
            "body: {body}"
        );
    } else {
        assert!(body.get("errors").is_none(), "body: {body}");
    }
    body
}

/// The `field` of each entry of a 422 body's `errors`.
pub fn error_fields(body: &Value) -> Vec<String> {
    body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap().to_owned())
        .collect()
}

/// `value` without the generated members (`id`, timestamps), for whole-body comparisons.
pub fn without_generated(mut value: Value) -> Value {
    if let Some(object) = value.as_object_mut() {
        for key in ["id", "created_at", "updated_at"] {
            object.remove(key);
        }
    }
    value
}

/// The ETag header of a response.
pub fn etag(response: &Response) -> String {
    response
        .headers()
        .get("etag")
        .expect("response has an ETag")
        .to_str()
        .unwrap()
        .to_owned()
}

/// Makes a SQLite database file unreadable to connections opened from now on, the way a
/// failing disk would: the file moves aside and garbage takes its place. `restore` puts
/// it back. Connections already open keep the real file (same inode), so services using
/// this run with `database.max_lifetime_secs = 0`, which reopens a connection per use.
pub struct BrokenSqliteFile {
    /// `(file, where it went)` for the database, its WAL and its shared-memory index.
    moved: Vec<(std::path::PathBuf, std::path::PathBuf)>,
}

impl BrokenSqliteFile {
    /// Breaks the file a `sqlite://PATH[?...]` URL names.
    pub fn break_file(database_url: &str) -> Self {
        let path = database_url
            .strip_prefix("sqlite://")
            .and_then(|rest| rest.split('?').next())
            .map(std::path::PathBuf::from)
            .expect("a sqlite:// URL");
        // The WAL and its index go too: pages in the WAL would still be readable.
        let mut moved = Vec::new();
        for suffix in ["", "-wal", "-shm"] {
            let mut file = path.clone().into_os_string();
            file.push(suffix);
            let file = std::path::PathBuf::from(file);
            let mut aside = file.clone().into_os_string();
            aside.push(".aside");
            let aside = std::path::PathBuf::from(aside);
            if std::fs::rename(&file, &aside).is_ok() {
                moved.push((file, aside));
            }
        }
        std::fs::write(&path, vec![0x5a; 8192]).unwrap();
        Self { moved }
    }

    /// Puts the real files back.
    pub fn restore(self) {
        for (file, aside) in self.moved {
            let _ = std::fs::remove_file(&file);
            std::fs::rename(&aside, &file).unwrap();
        }
    }
}

/// Polls `url` (at most 200 times, 50 ms apart) until it answers `status`; returns the
/// last response.
pub async fn poll_until(http: &Client, url: &str, status: StatusCode) -> Response {
    let mut last = http.get(url).send().await.unwrap();
    for _ in 0..200 {
        if last.status() == status {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        last = http.get(url).send().await.unwrap();
    }
    last
}

/// `starsongs serve` (the binary under test) in the test profile on free ports, with the
/// suite's JWT secret and JSON logs at `info` on a piped stderr; add or override settings
/// with `.env` before [`ServiceProcess::spawn`].
pub fn service_command(database_url: &str) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_starsongs"));
    command
        .env_remove("RUST_LOG")
        .env("STARSONGS_ENV", "test")
        .env("DATABASE_URL", database_url)
        .env("STARSONGS__AUTH__JWT_SECRET", JWT_SECRET)
        .env("STARSONGS__LOG__FORMAT", "json")
        .env("STARSONGS__LOG__LEVEL", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    command
}

/// A running service binary whose stderr a thread reads line by line into `lines`.
pub struct ServiceProcess {
    pub child: std::process::Child,
    /// `host:port` of the API listener.
    pub address: String,
    /// `host:port` of the admin listener.
    pub admin: String,
    /// Every stderr line so far.
    pub lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl ServiceProcess {
    /// Spawns `command` (stderr piped, JSON logs) and waits, 60 s at most, for the line
    /// that logs the listeners' addresses.
    pub fn spawn(command: &mut std::process::Command) -> Self {
        use std::io::{BufRead, BufReader};

        let mut child = command.spawn().expect("the binary starts");
        let stderr = child.stderr.take().expect("stderr is piped");
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(value) = serde_json::from_str::<Value>(&line)
                    && let (Some(a), Some(b)) =
                        (value["address"].as_str(), value["admin_address"].as_str())
                {
                    let _ = tx.send((a.to_owned(), b.to_owned()));
                }
                sink.lock().unwrap().push(line);
            }
        });
        let (address, admin) = rx
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("the service logs its addresses");
        Self {
            child,
            address,
            admin,
            lines,
        }
    }
}

/// Runs the binary with `args` on the database at `url` (test profile), feeding `stdin`.
pub fn starsongs(args: &[&str], url: &str, stdin: Option<&str>) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_starsongs"))
        .args(args)
        .env_remove("RUST_LOG")
        .env("STARSONGS_ENV", "test")
        .env("DATABASE_URL", url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

/// Bytes of a command's output as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `migrate status|up|down --to 2`, `user create` and `backup` through the binary, on the
/// server database at `url`.
pub fn commands_work_on(url: &str) {
    let before = starsongs(&["migrate", "status"], url, None);
    let up = starsongs(&["migrate", "up"], url, None);
    let down = starsongs(&["migrate", "down", "--to", "2"], url, None);
    let partial = starsongs(&["migrate", "status"], url, None);
    let created = starsongs(
        &[
            "user",
            "create",
            "--username",
            "pgadmin",
            "--email",
            "pg@example.com",
            "--role",
            "admin",
            "--password-stdin",
        ],
        url,
        Some("correct horse battery staple\n"),
    );
    let backup = starsongs(&["backup", "--to", "/tmp/never-written.db"], url, None);

    assert!(
        text(&before.stdout).contains("0001 pending  create catalog"),
        "{}",
        text(&before.stdout)
    );
    let applied: String = MIGRATIONS
        .iter()
        .map(|(v, _)| format!("applied {v:04}\n"))
        .collect();
    assert_eq!(text(&up.stdout), applied, "{}", text(&up.stderr));
    let reverted: String = MIGRATIONS
        .iter()
        .rev()
        .filter(|(v, _)| *v > 2)
        .map(|(v, _)| format!("reverted {v:04}\n"))
        .collect();
    assert_eq!(text(&down.stdout), reverted, "{}", text(&down.stderr));
    assert!(text(&partial.stdout).contains("0002 applied"));
    assert!(text(&partial.stdout).contains("0003 pending"));
    // `user create` applies pending migrations first.
    assert!(created.status.success(), "{}", text(&created.stderr));
    assert!(text(&created.stdout).contains("created user pgadmin"));
    assert!(!backup.status.success());
    assert!(
        text(&backup.stderr).contains("SQLite databases only"),
        "{}",
        text(&backup.stderr)
    );
    assert!(!Path::new("/tmp/never-written.db").exists());
    // `serve` on the migrated database answers its probes.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let mut serve = Command::new(env!("CARGO_BIN_EXE_starsongs"))
        .arg("serve")
        .env_remove("RUST_LOG")
        .env("STARSONGS_ENV", "test")
        .env("DATABASE_URL", url)
        .env("STARSONGS__SERVER__PORT", port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let ready = loop {
        let probe = Command::new(env!("CARGO_BIN_EXE_starsongs"))
            .args(["healthcheck", "--url", &format!("http://127.0.0.1:{port}")])
            .output()
            .unwrap();
        if probe.status.success() || Instant::now() > deadline {
            break probe.status.success();
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    serve.kill().unwrap();
    serve.wait().unwrap();
    assert!(ready, "serve answered /health/live");
}
