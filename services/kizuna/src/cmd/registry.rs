//! `kizuna registry` (serve the mesh registry, list its sites) and the registry parts of
//! `kizuna site` (`provision`, `revoke`). The work is in `kizuna-registry`; these commands
//! write the registry database directly, and a running registry picks the change up within
//! `change_poll_ms`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use kizuna_audit::emitter::AdminChanges;
use kizuna_registry::config::DEFAULT_CONFIG;
use kizuna_registry::keys::CentreKeys;
use kizuna_registry::{Db, RegistryConfig, server, sites};

const DEFAULT_PATH: &str = "/etc/kizuna/registry.yaml";

#[derive(Args)]
pub struct ConfigArg {
    /// The registry's YAML configuration (default /etc/kizuna/registry.yaml when it exists,
    /// else the built-in defaults).
    #[arg(long, short, env = "KIZUNA_REGISTRY_CONFIG")]
    pub config: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum RegistryCommand {
    /// Run the site API (TLS): enrollment, signed views by long-poll, key registration.
    Serve(ConfigArg),
    /// List the registry's sites: status, keys, observed endpoint, last contact.
    Sites {
        #[command(flatten)]
        config: ConfigArg,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print the TLS key pin (`sha256//...`) and the view-signing public key.
    Keys(ConfigArg),
    /// Print the default configuration with every key explained.
    PrintDefaultConfig,
}

#[derive(Args)]
pub struct ProvisionArgs {
    /// Site name (as in the registry's policy).
    pub name: String,
    /// Token lifetime in seconds, 60 to 2592000 (30 days) (default: token_ttl_secs of the
    /// configuration).
    #[arg(long, value_parser = clap::value_parser!(u64).range(60..=2_592_000))]
    pub ttl_secs: Option<u64>,
    #[command(flatten)]
    pub config: ConfigArg,
}

#[derive(Args)]
pub struct RevokeArgs {
    /// Site name.
    pub name: String,
    #[command(flatten)]
    pub config: ConfigArg,
}

pub fn load_config(arg: &ConfigArg) -> anyhow::Result<RegistryConfig> {
    match &arg.config {
        Some(p) => Ok(RegistryConfig::load(p)?),
        None if Path::new(DEFAULT_PATH).exists() => Ok(RegistryConfig::load(Path::new(DEFAULT_PATH))?),
        None => Ok(RegistryConfig::default()),
    }
}

pub async fn open(cfg: &RegistryConfig) -> anyhow::Result<Db> {
    let url = cfg.effective_database_url();
    Db::open(&url).await.with_context(|| {
        format!("opening the registry database {}", url.split('@').next_back().unwrap_or(""))
    })
}

/// The audit sender of the admin commands, opened before their change: a bad `audit:` key
/// refuses the command with nothing changed (and no token printed).
pub fn admin_audit(cfg: &RegistryConfig) -> anyhow::Result<AdminChanges> {
    kizuna_registry::audit::admin_changes(&cfg.audit).context("the registry configuration's audit key")
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Runtime::new().context("starting the async runtime")
}

fn unix_to_text(t: Option<u64>) -> String {
    t.and_then(|t| jiff::Timestamp::from_second(t as i64).ok()).map_or("-".into(), |t| t.to_string())
}

pub fn run(cmd: RegistryCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        RegistryCommand::PrintDefaultConfig => {
            print!("{DEFAULT_CONFIG}");
            Ok(ExitCode::SUCCESS)
        }
        RegistryCommand::Keys(c) => {
            let cfg = load_config(&c)?;
            let keys = CentreKeys::load_or_generate(&cfg.data_dir)?;
            println!("tls_pin: {}\nsigning_key: {}", keys.pin, keys.signing_public());
            Ok(ExitCode::SUCCESS)
        }
        RegistryCommand::Serve(c) => {
            let cfg = load_config(&c)?;
            runtime()?.block_on(async {
                let db = open(&cfg).await?;
                let running = server::start(&cfg, db).await?;
                eprintln!("registry listening on {} (TLS pin {})", running.addr, running.pin);
                tokio::select! {
                    _ = running.wait() => {}
                    _ = super::shutdown::requested() => {}
                }
                Ok(ExitCode::SUCCESS)
            })
        }
        RegistryCommand::Sites { config, json } => {
            let cfg = load_config(&config)?;
            runtime()?.block_on(async {
                let db = open(&cfg).await?;
                let list = sites::list(&db).await?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&list)?);
                } else {
                    println!(
                        "{:<24} {:<12} {:<16} {:<26} segments",
                        "site", "status", "endpoint", "last seen"
                    );
                    for s in list {
                        println!(
                            "{:<24} {:<12} {:<16} {:<26} {}",
                            s.name,
                            s.status,
                            s.observed_endpoint.as_deref().unwrap_or("-"),
                            unix_to_text(s.last_seen_unix),
                            s.keys.keys().cloned().collect::<Vec<_>>().join(",")
                        );
                    }
                }
                Ok(ExitCode::SUCCESS)
            })
        }
    }
}

/// `kizuna site provision NAME`: print a one-time enrollment token.
pub fn provision(a: ProvisionArgs) -> anyhow::Result<ExitCode> {
    let cfg = load_config(&a.config)?;
    let keys = CentreKeys::load_or_generate(&cfg.data_dir)?;
    let ttl = a.ttl_secs.unwrap_or(cfg.token_ttl_secs);
    runtime()?.block_on(async {
        let audit = admin_audit(&cfg)?;
        let db = open(&cfg).await?;
        let token = sites::provision(&db, &a.name, ttl, &cfg.public_url, &keys.pin).await?;
        eprintln!(
            "enrollment token for site {} (one use, expires {}, registry {}); on the site router run:\n  netd enroll TOKEN",
            a.name,
            unix_to_text(Some(token.expires_unix)),
            cfg.public_url
        );
        println!("{}", token.encode());
        let change = format!("enrollment token issued, expires {}", unix_to_text(Some(token.expires_unix)));
        audit.record(&a.name, &change).await;
        Ok(ExitCode::SUCCESS)
    })
}

/// `kizuna site revoke NAME`: cut the site off from every view.
pub fn revoke(a: RevokeArgs) -> anyhow::Result<ExitCode> {
    let cfg = load_config(&a.config)?;
    runtime()?.block_on(async {
        let audit = admin_audit(&cfg)?;
        let db = open(&cfg).await?;
        let version = sites::revoke(&db, &a.name).await?;
        audit
            .record(
                &a.name,
                &format!("site revoked at version {version}: removed from every view, keys released"),
            )
            .await;
        println!(
            "site {} revoked: removed from every view at version {version}; its keys are released",
            a.name
        );
        Ok(ExitCode::SUCCESS)
    })
}
