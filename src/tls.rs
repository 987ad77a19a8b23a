//! In-process TLS (rustls, TLS 1.2 and 1.3 only, rustls's default modern cipher suites):
//! loading the PEM files, reloading them on SIGHUP or when they change on disk, and the
//! plain-HTTP listener that only redirects to HTTPS.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum_server::tls_rustls::RustlsConfig;

use crate::config::TlsSettings;

/// The certificate and key files.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    cert: PathBuf,
    key: PathBuf,
}

impl TlsFiles {
    /// The files `settings` names, if TLS is configured.
    pub fn from_settings(settings: &TlsSettings) -> Option<Self> {
        match (&settings.cert_file, &settings.key_file) {
            (Some(cert), Some(key)) => Some(Self {
                cert: cert.clone(),
                key: key.clone(),
            }),
            _ => None,
        }
    }

    /// Loads the files into a server configuration.
    ///
    /// # Errors
    /// Unreadable files, or PEM that holds no certificate or no usable key.
    pub async fn load(&self) -> anyhow::Result<RustlsConfig> {
        RustlsConfig::from_pem_file(&self.cert, &self.key)
            .await
            .context("loading server.tls.cert_file and server.tls.key_file")
    }

    fn modified(&self) -> Option<(SystemTime, SystemTime)> {
        let time = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
        Some((time(&self.cert)?, time(&self.key)?))
    }

    /// Reloads `config` on SIGHUP and whenever either file's modification time changes
    /// (checked every `interval`). A reload that fails keeps the current certificate.
    pub async fn watch(self, config: RustlsConfig, interval: Duration) {
        #[cfg(unix)]
        let mut hangup =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        let mut seen = self.modified();
        let mut ticker = tokio::time::interval(interval);
        ticker.tick().await;
        loop {
            #[cfg(unix)]
            let reason = tokio::select! {
                _ = ticker.tick() => "file change",
                Some(()) = async {
                    match hangup.as_mut() {
                        Some(signal) => signal.recv().await,
                        None => std::future::pending().await,
                    }
                } => "SIGHUP",
            };
            #[cfg(not(unix))]
            let reason = {
                ticker.tick().await;
                "file change"
            };
            let now = self.modified();
            if reason == "file change" && now == seen {
                continue;
            }
            match config.reload_from_pem_file(&self.cert, &self.key).await {
                Ok(()) => {
                    seen = now;
                    tracing::info!(reason, "TLS certificate reloaded");
                }
                Err(error) => tracing::error!(
                    reason,
                    error = %error,
                    "TLS certificate reload failed; keeping the current certificate"
                ),
            }
        }
    }
}

/// A router that answers every request with 308 to the same path on HTTPS at `https_port`.
pub fn redirect_router(https_port: u16) -> Router {
    Router::new().fallback(move |req: Request| async move { redirect(&req, https_port) })
}

fn redirect(req: &Request, https_port: u16) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.parse::<axum::http::uri::Authority>().ok());
    let Some(host) = host else {
        return (StatusCode::BAD_REQUEST, "a Host header is required").into_response();
    };
    // `host()` keeps the brackets of an IPv6 literal.
    let authority = if https_port == 443 {
        host.host().to_owned()
    } else {
        format!("{}:{https_port}", host.host())
    };
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    match HeaderValue::from_str(&format!("https://{authority}{path}")) {
        Ok(location) => (
            StatusCode::PERMANENT_REDIRECT,
            [(header::LOCATION, location)],
        )
            .into_response(),
        Err(_) => StatusCode::BAD_REQUEST.into_response(),
    }
}
