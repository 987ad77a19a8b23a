//! The command line (clap): `serve`, `migrate`, `user`, `backup`, `openapi`, `healthcheck`.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use secrecy::SecretString;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::app::App;
use crate::auth::password::PasswordHasher;
use crate::config::Settings;
use crate::domain::user::{NewUser, Role};
use crate::{http, shutdown, storage};

/// Star Songs: a music catalog REST API.
///
/// Configuration comes from config/<env>.toml (built in), STARSONGS_ENV
/// (development | test | production), DATABASE_URL and STARSONGS__SECTION__KEY variables;
/// see docs/configuration.md.
#[derive(Debug, Parser)]
#[command(name = "starsongs", version, about)]
pub struct Cli {
    /// What to do; `serve` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP service (default). Applies pending migrations first when
    /// database.migrate_on_start is true; stops gracefully on SIGTERM or Ctrl-C.
    Serve,
    /// Manage the database schema.
    Migrate {
        /// Migration action.
        #[command(subcommand)]
        action: MigrateAction,
    },
    /// Manage accounts (bootstrap and break-glass).
    User {
        /// Account action.
        #[command(subcommand)]
        action: UserAction,
    },
    /// Write a consistent online copy of the SQLite database to a new file (the service may
    /// keep running). For PostgreSQL and SQL Server, see docs/operations/backup-restore.md.
    Backup {
        /// Destination file; must not exist yet.
        #[arg(long, value_name = "FILE")]
        to: std::path::PathBuf,
    },
    /// Print the OpenAPI 3.1 document (JSON) to standard output. Needs no database.
    Openapi,
    /// Exit 0 if BASE/health/live answers 200 within 5 s, 1 otherwise (for container
    /// health checks in images without curl).
    Healthcheck {
        /// Base URL of the service (http only).
        /// [default: http://127.0.0.1:<server.port>]
        #[arg(long, value_name = "BASE")]
        url: Option<String>,
    },
}

/// `starsongs migrate` actions.
#[derive(Debug, Subcommand)]
pub enum MigrateAction {
    /// Apply every pending migration, each in its own transaction.
    Up,
    /// Revert applied migrations newer than version N, newest first (N = 0 reverts all).
    Down {
        /// Version to keep; everything after it is reverted.
        #[arg(long, value_name = "N")]
        to: i64,
    },
    /// List known migrations and whether each is applied.
    Status,
}

/// `starsongs user` actions.
#[derive(Debug, Subcommand)]
pub enum UserAction {
    /// Create an account, applying pending migrations first. The password is read as one
    /// line from standard input (never from the command line, where `ps` would show it).
    Create {
        /// Login name: 3-32 characters of letters, digits, `_`, `.` or `-`.
        #[arg(long)]
        username: String,
        /// Email address.
        #[arg(long)]
        email: String,
        /// Role to grant.
        #[arg(long, default_value = "viewer", value_parser = ["viewer", "editor", "admin"])]
        role: String,
        /// Read the password from standard input (required).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
}

/// Whether `command` needs the configuration to be loaded.
pub fn needs_settings(command: &Command) -> bool {
    !matches!(
        command,
        Command::Openapi | Command::Healthcheck { url: Some(_) }
    )
}

/// Prints the OpenAPI document.
#[allow(clippy::print_stdout, reason = "the document is the command's output")]
pub fn print_openapi() -> ExitCode {
    match http::openapi().to_pretty_json() {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("starsongs: cannot render the OpenAPI document: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Runs a command that needs settings (every one but `openapi` and `healthcheck --url`).
///
/// # Errors
/// Whatever the command failed on, with context.
pub async fn run(command: Command, settings: Settings) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve => {
            let stop = shutdown::signal();
            let app = App::build(settings).await?;
            tracing::info!(
                address = %app.local_addr()?,
                admin_address = %app.admin_addr()?,
                version = crate::telemetry::VERSION,
                git_sha = crate::telemetry::GIT_SHA,
                "listening"
            );
            app.run(stop).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate { action } => migrate(action, &settings).await,
        Command::User { action } => user(action, &settings).await,
        Command::Backup { to } => backup(&to, &settings).await,
        Command::Openapi => Ok(print_openapi()),
        Command::Healthcheck { url } => {
            let base = url.unwrap_or_else(|| format!("http://127.0.0.1:{}", settings.server.port));
            Ok(healthcheck(&base).await)
        }
    }
}

#[allow(
    clippy::print_stdout,
    reason = "migration results are the command's output"
)]
async fn migrate(action: MigrateAction, settings: &Settings) -> anyhow::Result<ExitCode> {
    let store = storage::connect(&settings.database).await?;
    let migrator = store.migrator();
    match action {
        MigrateAction::Up => {
            let applied = migrator.up().await.context("applying migrations")?;
            if applied.is_empty() {
                println!("schema is up to date");
            }
            for version in applied {
                println!("applied {version:04}");
            }
        }
        MigrateAction::Down { to } => {
            let reverted = migrator.down_to(to).await.context("reverting migrations")?;
            if reverted.is_empty() {
                println!("nothing to revert");
            }
            for version in reverted {
                println!("reverted {version:04}");
            }
        }
        MigrateAction::Status => {
            for m in migrator
                .status()
                .await
                .context("reading migration status")?
            {
                let state = if m.is_applied { "applied" } else { "pending" };
                println!("{:04} {state:8} {}", m.version, m.description);
            }
        }
    }
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

#[allow(
    clippy::print_stdout,
    reason = "the created account is the command's output"
)]
async fn user(action: UserAction, settings: &Settings) -> anyhow::Result<ExitCode> {
    let UserAction::Create {
        username,
        email,
        role,
        password_stdin: _,
    } = action;
    let mut line = String::new();
    BufReader::new(tokio::io::stdin())
        .read_line(&mut line)
        .await
        .context("reading the password from standard input")?;
    let password = SecretString::from(
        line.strip_suffix('\n')
            .map(|l| l.strip_suffix('\r').unwrap_or(l))
            .unwrap_or(&line)
            .to_owned(),
    );
    let role =
        Role::parse("role", &role).map_err(|e| anyhow::anyhow!("{}: {}", e.field, e.message))?;
    let new = NewUser::parse(&username, &email, &password, role)
        .map_err(|errors| anyhow::anyhow!("invalid account: {errors}"))?;
    let hasher = PasswordHasher::new(&settings.auth)?;
    let store = storage::connect(&settings.database).await?;
    store.migrator().up().await.context("applying migrations")?;
    let hash = hasher.hash(new.password.secret()).await?;
    let created = store.insert_user(&new, &hash).await;
    store.close().await;
    let user = created.context("creating the account")?;
    println!(
        "created user {} (id {}, role {})",
        user.username, user.id, user.role
    );
    Ok(ExitCode::SUCCESS)
}

#[allow(
    clippy::print_stdout,
    reason = "the backup's location is the command's output"
)]
async fn backup(to: &std::path::Path, settings: &Settings) -> anyhow::Result<ExitCode> {
    let store = storage::connect(&settings.database).await?;
    let result = store.backup_to(to).await;
    store.close().await;
    if let Err(storage::StoreError::Unsupported { backend, .. }) = &result {
        anyhow::bail!(
            "`starsongs backup` copies SQLite databases only; for {backend} use the database's \
             own tools (docs/operations/backup-restore.md)"
        );
    }
    result.with_context(|| format!("writing the backup to {}", to.display()))?;
    let size = std::fs::metadata(to).map(|m| m.len()).unwrap_or_default();
    println!("backup written to {} ({size} bytes)", to.display());
    Ok(ExitCode::SUCCESS)
}

/// GET `base/health/live` with a bare HTTP/1.1 request: the binary stays free of an HTTP
/// client for this one probe.
pub async fn healthcheck(base: &str) -> ExitCode {
    match tokio::time::timeout(Duration::from_secs(5), probe(base)).await {
        Ok(Ok(200)) => ExitCode::SUCCESS,
        Ok(Ok(status)) => {
            eprintln!("starsongs: {base}/health/live answered {status}");
            ExitCode::FAILURE
        }
        Ok(Err(error)) => {
            eprintln!("starsongs: health check failed: {error:#}");
            ExitCode::FAILURE
        }
        Err(_) => {
            eprintln!("starsongs: health check timed out");
            ExitCode::FAILURE
        }
    }
}

async fn probe(base: &str) -> anyhow::Result<u16> {
    let url = url::Url::parse(base).context("--url is not a URL")?;
    anyhow::ensure!(url.scheme() == "http", "--url must be an http:// URL");
    let host = url.host_str().context("--url has no host")?;
    let port = url.port().unwrap_or(80);
    let path = format!("{}/health/live", url.path().trim_end_matches('/'));
    let mut stream = TcpStream::connect((host, port))
        .await
        .with_context(|| format!("connecting to {host}:{port}"))?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut head = vec![0_u8; 64];
    let n = stream.read(&mut head).await?;
    let line = String::from_utf8_lossy(&head[..n]);
    line.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .context("the answer was not HTTP")
}
