//! Thin binary: `kizuna-backup serve|follow --config FILE`, the same as `kizuna backup serve|follow`.
//! The fault tests run it as a real process so that they can SIGKILL it.

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// The replica side.
    Serve {
        #[arg(long, short)]
        config: std::path::PathBuf,
    },
    /// The primary side.
    Follow {
        #[arg(long, short)]
        config: std::path::PathBuf,
    },
}

async fn stop_signal() {
    let mut term =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Cmd::Serve { config } => {
            let c = kizuna_backup::Config::load(&config)?.replica;
            let l = tokio::net::TcpListener::bind(c.listen)
                .await
                .with_context(|| format!("listening on {}", c.listen))?;
            kizuna_backup::serve::serve_on(l, &c, stop_signal()).await?;
        }
        Cmd::Follow { config } => {
            let c = kizuna_backup::Config::load(&config)?.follow;
            let l = tokio::net::TcpListener::bind(c.metrics_listen)
                .await
                .with_context(|| format!("listening on {}", c.metrics_listen))?;
            let f = kizuna_backup::follow::Follower::open(c).await?;
            let (tx, rx) = tokio::sync::watch::channel(false);
            tokio::spawn(async move {
                stop_signal().await;
                let _ = tx.send(true);
            });
            f.run(Some(l), rx).await?;
        }
    }
    Ok(())
}
