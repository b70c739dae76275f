//! `kizuna site …`: the sites that may upload to the store (tokens, facilities, source networks).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use kizuna_audit::emitter::AdminChanges;
use kizuna_store::{Db, FacilityId, sites};

#[derive(Subcommand)]
pub enum SiteCommand {
    /// Add a site; prints its new upload token once (only its hash is kept).
    Add {
        /// Site name (letters, digits, '-', '_', '.').
        name: String,
        /// A facility ID the site uploads for (repeat for several).
        #[arg(long = "facility", required = true)]
        facilities: Vec<String>,
        /// A source network (CIDR) on the upload segment the site connects from (repeat for
        /// several). Default: loopback only.
        #[arg(long = "allow")]
        allow: Vec<ipnet::IpNet>,
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// List sites, their facilities and allowed networks.
    List {
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Give a site a new token; the old one stops working at once. Prints the new token once.
    RotateToken {
        name: String,
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Refuse a site's uploads (403) until enabled again.
    Disable {
        name: String,
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Accept a disabled site's uploads again.
    Enable {
        name: String,
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Mesh registry: print a one-time, expiring enrollment token for a site router
    /// (`netd enroll TOKEN`); `--config` is the registry's configuration.
    Provision(super::registry::ProvisionArgs),
    /// Mesh registry: remove a site from every view and release its keys.
    Revoke(super::registry::RevokeArgs),
}

async fn open(config: Option<&std::path::Path>) -> anyhow::Result<Db> {
    let c = super::serve::load_config(config)?;
    let url = c.effective_database_url();
    Db::open(&url)
        .await
        .with_context(|| format!("opening the IndexDB {}", url.split('@').next_back().unwrap_or("")))
}

/// Where site changes are recorded as Security Configuration audit events (the store's `audit:`
/// key; if the audit service is unreachable, an event stays in the spool, which the running store
/// delivers). Opened before the change: a bad key must not leave a committed change unrecorded,
/// or a new token committed and never shown.
fn audit(config: Option<&std::path::Path>) -> anyhow::Result<AdminChanges> {
    let c = super::serve::load_config(config)?;
    AdminChanges::open(&c.audit, "kizuna-site-admin").context("the store configuration's audit key")
}

pub fn run(cmd: SiteCommand) -> anyhow::Result<ExitCode> {
    let cmd = match cmd {
        SiteCommand::Provision(a) => return super::registry::provision(a),
        SiteCommand::Revoke(a) => return super::registry::revoke(a),
        other => other,
    };
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(async {
        match cmd {
            SiteCommand::Provision(_) | SiteCommand::Revoke(_) => unreachable!("handled before the runtime"),
            SiteCommand::Add { name, facilities, allow, config } => {
                let facilities =
                    facilities.iter().map(|f| FacilityId::new(f)).collect::<Result<Vec<_>, _>>()?;
                let db = open(config.as_deref()).await?;
                let audit = audit(config.as_deref())?;
                let token = sites::add_site(&db, &name, &facilities, &allow).await?;
                let fac: Vec<&str> = facilities.iter().map(|f| f.as_str()).collect();
                audit.record(&name, &format!("site added: facilities {}", fac.join(","))).await;
                if allow.is_empty() {
                    eprintln!("site {name}: no --allow given, so it may upload from loopback only");
                }
                eprintln!("site {name} added; its token (shown only now, keep it in a 0600 file):");
                println!("{token}");
            }
            SiteCommand::List { config, json } => {
                let db = open(config.as_deref()).await?;
                let list = sites::list_sites(&db).await?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&list)?);
                } else {
                    println!("{:<20} {:<8} {:<30} ALLOWED FROM", "SITE", "ENABLED", "FACILITIES");
                    for s in list {
                        let allow: Vec<String> = s.allow.iter().map(|n| n.to_string()).collect();
                        println!(
                            "{:<20} {:<8} {:<30} {}",
                            s.name,
                            s.enabled,
                            s.facilities.join(","),
                            allow.join(",")
                        );
                    }
                }
            }
            SiteCommand::RotateToken { name, config } => {
                let db = open(config.as_deref()).await?;
                let audit = audit(config.as_deref())?;
                let token = sites::rotate_token(&db, &name).await?;
                audit.record(&name, "token rotated").await;
                eprintln!("site {name}: new token (the old one no longer works):");
                println!("{token}");
            }
            SiteCommand::Disable { name, config } => {
                let audit = audit(config.as_deref())?;
                sites::set_enabled(&open(config.as_deref()).await?, &name, false).await?;
                audit.record(&name, "site disabled").await;
                eprintln!("site {name} disabled");
            }
            SiteCommand::Enable { name, config } => {
                let audit = audit(config.as_deref())?;
                sites::set_enabled(&open(config.as_deref()).await?, &name, true).await?;
                audit.record(&name, "site enabled").await;
                eprintln!("site {name} enabled");
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
