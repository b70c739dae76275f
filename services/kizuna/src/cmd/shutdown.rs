//! When a long-running subcommand stops: SIGINT (Ctrl-C) or SIGTERM (`systemctl stop`), so that
//! every service shuts down gracefully under systemd too.

use tokio::signal::unix::{SignalKind, signal};

/// Resolves at the first SIGINT or SIGTERM. If the SIGTERM handler cannot be installed, it waits
/// for SIGINT alone (and says so).
pub async fn requested() {
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
                _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "no SIGTERM handler: only Ctrl-C stops this process gracefully");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
