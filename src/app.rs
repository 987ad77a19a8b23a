//! `App`: builds the store, migrates and seeds as configured, binds the listener, and runs
//! the server until shutdown.

use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use axum_server::{Handle, Server};
use chrono::Utc;
use tokio::net::TcpListener;

use crate::clock::Clock;
use crate::config::Settings;
use crate::domain::idempotency::expiry_cutoff;
use crate::http::conn::{self, ConnAcceptor, ConnLimits, PeerAddr};
use crate::state::AppState;
use crate::storage::DynStore;
use crate::tls::TlsFiles;
use crate::{http, storage};

/// A bound, ready-to-run service.
pub struct App {
    listener: TcpListener,
    admin_listener: TcpListener,
    redirect_listener: Option<TcpListener>,
    tls: Option<(TlsFiles, RustlsConfig)>,
    limits: ConnLimits,
    router: Router,
    state: AppState,
}

impl App {
    /// Connects the store, applies migrations if `database.migrate_on_start`, seeds demo
    /// data if `database.seed_demo_data`, and binds `server.host:server.port` (port 0 picks
    /// a free one). Requests can be sent as soon as this returns.
    ///
    /// # Errors
    /// The database cannot be opened or migrated, or the address cannot be bound.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_with_clock(settings, Clock::default()).await
    }

    /// [`App::build`] with rate-limit budgets and caches on `clock` (tests advance it
    /// instead of sleeping).
    ///
    /// # Errors
    /// As [`App::build`].
    pub async fn build_with_clock(settings: Settings, clock: Clock) -> anyhow::Result<Self> {
        let store = storage::connect(&settings.database).await?;
        if settings.database.migrate_on_start {
            let applied = store.migrator().up().await.context("applying migrations")?;
            if !applied.is_empty() {
                tracing::info!(db.migrations = ?applied, "migrations applied");
            }
        }
        if settings.database.seed_demo_data {
            let catalog = crate::domain::demo::catalog()
                .map_err(|e| anyhow::anyhow!("the demo catalog is invalid: {e}"))?;
            if store.seed_demo_data(&catalog).await? {
                tracing::info!("demo data seeded");
            }
        }
        let address = (settings.server.host.as_str(), settings.server.port);
        let listener = TcpListener::bind(address)
            .await
            .with_context(|| format!("binding {}:{}", address.0, address.1))?;
        let tls = match TlsFiles::from_settings(&settings.server.tls) {
            Some(files) => {
                let config = files.load().await?;
                Some((files, config))
            }
            None => None,
        };
        let admin_address = (settings.admin.host.as_str(), settings.admin.port);
        let admin_listener = TcpListener::bind(admin_address).await.with_context(|| {
            format!(
                "binding the admin listener {}:{}",
                admin_address.0, admin_address.1
            )
        })?;
        crate::telemetry::metrics::install();
        let redirect_listener = match settings.server.tls.redirect_http_port {
            Some(port) => Some(
                TcpListener::bind((settings.server.host.as_str(), port))
                    .await
                    .with_context(|| format!("binding {}:{port}", address.0))?,
            ),
            None => None,
        };
        let listeners = 2 + usize::from(redirect_listener.is_some());
        let budget = conn::fit_to_file_limit(&settings, listeners);
        let limits = ConnLimits::new(&settings, budget.per_listener);
        let state = AppState::with_clock(store, settings, &clock)?;
        if state.settings.auth.create_dev_admin {
            announce_dev_admin(&state).await?;
        }
        let router = http::router(state.clone());
        Ok(Self {
            listener,
            admin_listener,
            redirect_listener,
            tls,
            limits,
            router,
            state,
        })
    }

    /// The bound address of the admin listener (`/metrics`).
    ///
    /// # Errors
    /// The socket cannot report its address.
    pub fn admin_addr(&self) -> anyhow::Result<SocketAddr> {
        self.admin_listener
            .local_addr()
            .context("reading the bound address")
    }

    /// The bound address of the HTTP-to-HTTPS redirect listener, if any.
    ///
    /// # Errors
    /// The socket cannot report its address.
    pub fn redirect_addr(&self) -> anyhow::Result<Option<SocketAddr>> {
        self.redirect_listener
            .as_ref()
            .map(|l| l.local_addr().context("reading the bound address"))
            .transpose()
    }

    /// The bound address.
    ///
    /// # Errors
    /// The socket cannot report its address.
    pub fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        self.listener
            .local_addr()
            .context("reading the bound address")
    }

    fn local_port(&self) -> anyhow::Result<u16> {
        Ok(self.local_addr()?.port())
    }

    /// The shared state (tests inspect the store through it).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves, then: readiness turns 503 at once; new requests
    /// are still accepted for `server.shutdown_delay_secs` (load balancers catch up); the
    /// listener closes; in-flight requests get `server.shutdown_grace_secs` to finish; the
    /// admin listener (metrics) closes; the pool closes.
    ///
    /// # Errors
    /// The server failed while serving.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let settings = self.state.settings.clone();
        let readiness = self.state.readiness.clone();
        let https_port = self.local_port()?;
        let handle: Handle<PeerAddr> = Handle::new();
        let redirect_handle: Handle<PeerAddr> = Handle::new();
        let admin_handle: Handle<PeerAddr> = Handle::new();
        let limits = self.limits;
        let delay = settings.server.shutdown_delay();
        let grace = settings.server.shutdown_grace();
        let stop = {
            let (handle, redirect_handle) = (handle.clone(), redirect_handle.clone());
            async move {
                shutdown.await;
                readiness.start_draining();
                tracing::info!(
                    delay_secs = delay.as_secs(),
                    "draining: readiness is now 503"
                );
                tokio::time::sleep(delay).await;
                tracing::info!("no longer accepting connections");
                redirect_handle.graceful_shutdown(Some(grace));
                handle.graceful_shutdown(Some(grace));
            }
        };
        let stopper = tokio::spawn(stop);
        let service = self
            .router
            .into_make_service_with_connect_info::<SocketAddr>();
        let pruner = tokio::spawn(prune_expired(self.state.store.clone()));
        // hyper's own buffer is the backstop; `server.max_header_bytes` is enforced by
        // middleware first, so an oversized head gets a problem document.
        let buffer = (settings.server.max_header_bytes + 64 * 1024).max(8192);
        let server = limited(self.listener, "public", limits, handle.clone())
            .context("preparing the listener")?;
        let serve: Pin<Box<dyn Future<Output = std::io::Result<()>> + Send>> = match self.tls {
            Some((files, config)) => {
                let watcher = tokio::spawn(files.watch(
                    config.clone(),
                    Duration::from_secs(settings.server.tls.reload_interval_secs),
                ));
                // The watchdog sits below TLS: the handshake counts toward the first head.
                let mut server = server.map(|conn| {
                    RustlsAcceptor::new(config)
                        .handshake_timeout(limits.header_read)
                        .acceptor(conn)
                });
                server.http_builder().http1().max_buf_size(buffer);
                Box::pin(async move {
                    let served = server.serve(service).await;
                    watcher.abort();
                    served
                })
            }
            None => {
                // SIGHUP would otherwise end the process; it only means something with TLS.
                #[cfg(unix)]
                tokio::spawn(async {
                    let Ok(mut hangup) =
                        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
                    else {
                        return;
                    };
                    while hangup.recv().await.is_some() {
                        tracing::info!("SIGHUP ignored: no TLS certificate to reload");
                    }
                });
                let mut server = server;
                server.http_builder().http1().max_buf_size(buffer);
                Box::pin(server.serve(service))
            }
        };
        let redirect = match self.redirect_listener {
            Some(listener) => {
                let server = limited(listener, "redirect", limits, redirect_handle)?;
                let router = crate::tls::redirect_router(https_port);
                Some(tokio::spawn(server.serve(router.into_make_service())))
            }
            None => None,
        };
        let admin = {
            let router = http::admin_listener::router(self.state.clone());
            let server = limited(self.admin_listener, "admin", limits, admin_handle.clone())?;
            tokio::spawn(server.serve(router.into_make_service_with_connect_info::<SocketAddr>()))
        };
        let served = serve.await;
        if let Some(redirect) = redirect {
            redirect.abort();
        }
        // The admin listener closes last, so metrics stay scrapeable while requests drain.
        admin_handle.graceful_shutdown(Some(Duration::from_secs(1)));
        let _ = tokio::time::timeout(Duration::from_secs(2), admin).await;
        stopper.abort();
        pruner.abort();
        self.state.store.close().await;
        tracing::info!("shutdown complete");
        served.context("server failed")
    }
}

/// A server on `listener` that applies `limits` (`http::conn`): the cap on open
/// connections, the header-read and keep-alive timeouts. hyper's own header timeout stays
/// off: its timer also runs while a keep-alive connection waits, so it would cut idle
/// connections at the header timeout.
fn limited(
    listener: TcpListener,
    name: &'static str,
    limits: ConnLimits,
    handle: Handle<PeerAddr>,
) -> anyhow::Result<Server<PeerAddr, ConnAcceptor>> {
    let listener = conn::Listener::new(listener.into_std()?, name, limits)?;
    let mut server = Server::<PeerAddr>::from_listener(listener)
        .acceptor(ConnAcceptor)
        .handle(handle)
        .accept_error_handler(move |peer, error| match peer {
            // accept(2) failed (for example EMFILE); axum-server retries after 50 ms.
            None => {
                tracing::warn!(listener = name, error = %error, "accepting a connection failed")
            }
            // A TLS handshake that failed or timed out.
            Some(_) => tracing::debug!(listener = name, error = %error, "connection refused"),
        });
    server.http_builder().http1().header_read_timeout(None);
    Ok(server)
}

/// Development only: creates the first admin and prints its password once, on stdout
/// (never through the logs).
async fn announce_dev_admin(state: &AppState) -> anyhow::Result<()> {
    use std::io::Write as _;

    use secrecy::ExposeSecret as _;

    if let Some((username, password)) = state.accounts.ensure_dev_admin().await? {
        tracing::warn!(username = %username, "development admin created; its password is printed once on stdout");
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "\n  Development admin created (shown once):\n    username: {username}\n    password: {}\n  \
             Sign in at /docs (Authorize) or POST /v1/auth/login.\n",
            password.expose_secret()
        )?;
        out.flush()?;
    }
    Ok(())
}

/// How often expired idempotency keys and credentials are deleted.
const PRUNE_INTERVAL: Duration = Duration::from_secs(3600);

/// Every hour, deletes expired idempotency keys, expired or long-revoked refresh tokens
/// and stale failed-login counters. Expired rows are already ignored where they are read;
/// this only bounds the tables' size. Safe to run on every replica.
#[tracing::instrument(skip_all)]
async fn prune_expired(store: DynStore) {
    let mut interval = tokio::time::interval(PRUNE_INTERVAL);
    loop {
        interval.tick().await;
        match store
            .prune_idempotency_keys(expiry_cutoff(Utc::now()))
            .await
        {
            Ok(0) => {}
            Ok(pruned) => tracing::info!(
                idempotency.pruned = pruned,
                "expired idempotency keys pruned"
            ),
            Err(error) => tracing::warn!(error = %error, "pruning idempotency keys failed"),
        }
        match store.prune_credentials(Utc::now()).await {
            Ok(0) => {}
            Ok(pruned) => tracing::info!(
                credentials.pruned = pruned,
                "expired refresh tokens and stale failed-login counters pruned"
            ),
            Err(error) => tracing::warn!(error = %error, "pruning credentials failed"),
        }
    }
}
