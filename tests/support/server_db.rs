//! Server databases for tests: a fresh database per test, created on the server named by
//! `STARSONGS_TEST_POSTGRES_URL` or `STARSONGS_TEST_MSSQL_URL` (an `mssql://` URL) and
//! dropped when the test ends.
//!
//! Without the variable a test prints `skipped: <VAR> unset` and returns, unless
//! `STARSONGS_TEST_REQUIRE` lists the backend (`postgres`, `mssql`; CI sets it): then a
//! missing server fails the test instead of letting it skip.

use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::Connection;

/// The variable naming the PostgreSQL server for tests.
pub const POSTGRES_URL_VAR: &str = "STARSONGS_TEST_POSTGRES_URL";
/// The variable naming the SQL Server for tests (`mssql://user:pass@host:1433/master?...`).
pub const MSSQL_URL_VAR: &str = "STARSONGS_TEST_MSSQL_URL";

/// Whether `STARSONGS_TEST_REQUIRE` (comma-separated) lists `backend`.
pub fn is_required(backend: &str) -> bool {
    std::env::var("STARSONGS_TEST_REQUIRE")
        .unwrap_or_default()
        .split(',')
        .any(|b| b.trim() == backend)
}

/// The server URL in `var`; `None` (after printing why) when the test should skip.
///
/// # Panics
/// When the variable is unset but the backend is required.
pub fn server_url(var: &str, backend: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                !is_required(backend),
                "{var} is unset but STARSONGS_TEST_REQUIRE lists {backend}"
            );
            println!("skipped: {var} unset");
            None
        }
    }
}

/// A database created for one test; dropped (connections and all) on drop.
pub struct TestDatabase {
    /// URL of the new database.
    pub url: String,
    admin_url: String,
    name: String,
    is_mssql: bool,
}

/// A SQL Server connection to the database of `url` (an `mssql://` URL).
pub async fn mssql_client(url: &str) -> Result<MssqlClient, String> {
    use tokio_util::compat::TokioAsyncWriteCompatExt;
    let config = starsongs::storage::mssql::parse_url(url).map_err(|e| e.to_string())?;
    let tcp = tokio::net::TcpStream::connect(config.get_addr())
        .await
        .map_err(|e| e.to_string())?;
    tiberius::Client::connect(config, tcp.compat_write())
        .await
        .map_err(|e| e.to_string())
}

/// What [`mssql_client`] returns.
pub type MssqlClient = tiberius::Client<tokio_util::compat::Compat<tokio::net::TcpStream>>;

/// Runs one T-SQL batch on the server of `url` (test-made text only).
pub async fn mssql_batch(url: &str, sql: &str) -> Result<(), String> {
    let mut client = mssql_client(url).await?;
    run(&mut client, sql).await.map_err(|e| e.to_string())?;
    client.close().await.map_err(|e| e.to_string())
}

/// Runs one batch on `client`, keeping the driver's error (and its number).
async fn run(client: &mut MssqlClient, sql: &str) -> Result<(), tiberius::error::Error> {
    client.simple_query(sql).await?.into_results().await?;
    Ok(())
}

/// Serialises `CREATE DATABASE` between this process's tests (threads and runtimes);
/// [`CREATE_LOCK`] does the same between processes.
static CREATING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Held (session-owned, in `master`) around `CREATE DATABASE` by every test process.
/// SQL Server copies `model` for a new database under an exclusive lock on it; creations
/// racing for that lock fail with error 1807.
const CREATE_LOCK: &str = "DECLARE @granted INT; \
     EXEC @granted = sys.sp_getapplock @Resource = N'starsongs_test_create_database', \
     @LockMode = N'Exclusive', @LockOwner = N'Session', @LockTimeout = 120000; \
     IF @granted < 0 THROW 50000, N'starsongs_test_create_database was not granted', 1;";
const CREATE_UNLOCK: &str = "EXEC sys.sp_releaseapplock \
     @Resource = N'starsongs_test_create_database', @LockOwner = N'Session'";
/// "Could not obtain exclusive lock on database 'model'": something else (a tool, a
/// creation outside these tests) held it. Retried a few times, with backoff.
const MODEL_LOCKED: u32 = 1807;
const CREATE_ATTEMPTS: u32 = 6;

/// Creates database `name` on the server of `admin_url`, with READ_COMMITTED_SNAPSHOT on
/// (the documented deployment, deploy/mssql/create-database.sql) before anyone uses it.
async fn create_mssql_database(admin_url: &str, name: &str) -> Result<(), String> {
    let _this_process = CREATING.lock().await;
    let mut master_url = url::Url::parse(admin_url).map_err(|e| e.to_string())?;
    master_url.set_path("/master");
    let mut master = mssql_client(master_url.as_str()).await?;
    run(&mut master, CREATE_LOCK)
        .await
        .map_err(|e| e.to_string())?;
    let mut attempt = 1;
    let created = loop {
        match run(&mut master, &format!("CREATE DATABASE [{name}]")).await {
            Err(tiberius::error::Error::Server(token))
                if token.code() == MODEL_LOCKED && attempt < CREATE_ATTEMPTS =>
            {
                eprintln!("CREATE DATABASE [{name}]: error 1807 (model is locked), retrying");
                tokio::time::sleep(std::time::Duration::from_millis(200 << attempt)).await;
                attempt += 1;
            }
            other => break other,
        }
    };
    let configured = match created {
        Ok(()) => run(
            &mut master,
            &format!("ALTER DATABASE [{name}] SET READ_COMMITTED_SNAPSHOT ON"),
        )
        .await
        .map_err(|e| format!("SET READ_COMMITTED_SNAPSHOT ON: {e}")),
        Err(e) => Err(format!("CREATE DATABASE after {attempt} attempt(s): {e}")),
    };
    // Closing the session would release the lock too; say so explicitly.
    let unlocked = run(&mut master, CREATE_UNLOCK).await;
    master.close().await.ok();
    configured?;
    unlocked.map_err(|e| e.to_string())
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl TestDatabase {
    /// A new empty database on the server of `admin_url`. Its name carries this run's
    /// prefix (`starsongs_test_<pid>_`), so leftovers of a killed run are recognisable.
    pub async fn create(admin_url: &str) -> Self {
        let name = Self::new_name();
        let mut admin = sqlx::PgConnection::connect(admin_url)
            .await
            .expect("the test PostgreSQL server answers");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("create database \"{name}\"")))
            .execute(&mut admin)
            .await
            .expect("creating a test database");
        admin.close().await.ok();
        let mut url = url::Url::parse(admin_url).expect("a valid postgres URL");
        url.set_path(&format!("/{name}"));
        Self {
            url: url.to_string(),
            admin_url: admin_url.to_owned(),
            name,
            is_mssql: false,
        }
    }

    fn new_name() -> String {
        let random = uuid::Uuid::new_v4().simple().to_string();
        format!(
            "starsongs_test_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            random.get(..8).unwrap_or_default()
        )
    }

    /// A new empty database on the SQL Server of `admin_url` (an `mssql://` URL), created
    /// one at a time across test threads and processes, with READ_COMMITTED_SNAPSHOT on.
    pub async fn create_mssql(admin_url: &str) -> Self {
        let name = Self::new_name();
        if let Err(e) = create_mssql_database(admin_url, &name).await {
            panic!("creating test database {name} on SQL Server: {e}");
        }
        let mut url = url::Url::parse(admin_url).expect("an mssql:// URL");
        url.set_path(&format!("/{name}"));
        Self {
            url: url.to_string(),
            admin_url: admin_url.to_owned(),
            name,
            is_mssql: true,
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        let is_mssql = self.is_mssql;
        // Drop runs inside the test's runtime, which cannot block on itself: use a thread
        // with its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async move {
                if is_mssql {
                    let drop = format!(
                        "ALTER DATABASE [{name}] SET SINGLE_USER WITH ROLLBACK IMMEDIATE; \
                         DROP DATABASE [{name}]"
                    );
                    return mssql_batch(&admin_url, &drop).await.ok();
                }
                let mut admin = sqlx::PgConnection::connect(&admin_url).await.ok()?;
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                    "drop database if exists \"{name}\" with (force)"
                )))
                .execute(&mut admin)
                .await
                .ok()?;
                admin.close().await.ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(()))) {
            eprintln!("warning: test database {} was not dropped", self.name);
        }
    }
}
