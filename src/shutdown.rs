//! The shutdown signal: SIGTERM (Kubernetes, systemd) or Ctrl-C.

/// Registers the signal handlers at once and returns a future that resolves when the
/// process is asked to stop. Call it before the service announces that it listens: a
/// signal that arrives before its handler is registered takes the default action, which
/// ends the process on the spot.
///
/// SIGHUP is registered here too (tokio keeps a registration for the life of the process),
/// so it never ends the service: with TLS it reloads the certificate, without it is logged.
pub fn signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let interrupt = signal(SignalKind::interrupt()).ok();
        let terminate = signal(SignalKind::terminate()).ok();
        drop(signal(SignalKind::hangup()));
        async move {
            let wait = |stream: Option<tokio::signal::unix::Signal>| async move {
                match stream {
                    Some(mut stream) => {
                        stream.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = wait(interrupt) => tracing::info!(signal = "SIGINT", "shutdown signal received"),
                () = wait(terminate) => tracing::info!(signal = "SIGTERM", "shutdown signal received"),
            }
        }
    }
    #[cfg(not(unix))]
    async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
        tracing::info!(signal = "SIGINT", "shutdown signal received");
    }
}
