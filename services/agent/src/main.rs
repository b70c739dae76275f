//! `kizuna-agent`: runs the upload agent alone (netd hosts the same library on appliances).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use kizuna_agent::{Agent, Config, DEFAULT_CONFIG, OfflineStatus};

/// mimalloc: the upload path allocates many small, short-lived buffers across threads, where glibc
/// malloc took ~13 % of the upload benchmark's CPU.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "kizuna-agent", version, about = "Kizuna upload agent: ships SS-MIX2 exports to the store")]
struct Cli {
    /// Print the default configuration (with comments) and exit.
    #[arg(long)]
    print_default_config: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Watch the export folder and upload until SIGINT or SIGTERM.
    Run {
        #[arg(long, short)]
        config: PathBuf,
        /// Bind upload sockets to this network device, overriding the config's `bind_interface`
        /// (netd passes the upload segment's device when it hosts the agent). The device must
        /// exist at start.
        #[arg(long, value_name = "DEV")]
        bind_interface: Option<String>,
    },
    /// Print the state folder's status (outbox depth, quarantine, last upload, daily logs sent) as JSON.
    Status {
        #[arg(long, short)]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    match real_main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kizuna-agent: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn real_main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if cli.print_default_config {
        print!("{DEFAULT_CONFIG}");
        return Ok(());
    }
    match cli.command {
        None => anyhow::bail!(
            "nothing to do: use `run --config FILE`, `status --config FILE` or --print-default-config"
        ),
        Some(Command::Status { config }) => {
            let cfg = Config::load(&config)?;
            let status = OfflineStatus::read(&cfg)?;
            println!("{}", serde_json::to_string_pretty(&status)?);
            Ok(())
        }
        Some(Command::Run { config, bind_interface }) => {
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
                )
                .with_writer(std::io::stderr)
                .init();
            let mut cfg = Config::load(&config)?;
            if let Some(dev) = bind_interface {
                check_device(&dev)?;
                tracing::info!(device = %dev, "bind_interface from --bind-interface");
                cfg.bind_interface = Some(dev);
            }
            let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            rt.block_on(async {
                let agent = Agent::new(cfg)?;
                agent.run(shutdown_signal()).await?;
                Ok(())
            })
        }
    }
}

/// A device given on the command line must exist now: netd passes one only once it exists, so a
/// missing one is an error to report at once rather than a stream of failed uploads.
fn check_device(dev: &str) -> anyhow::Result<()> {
    if dev.is_empty() {
        anyhow::bail!("--bind-interface: empty device name");
    }
    nix::net::if_::if_nametoindex(dev)
        .map(|_| ())
        .with_context(|| format!("--bind-interface {dev}: no such network device"))
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
