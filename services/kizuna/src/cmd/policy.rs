//! `kizuna policy`: the registry's versioned mesh policy. `apply` checks a file with netd's
//! checker, shows what changes and activates it; `rollback N` makes version N's body the new
//! version; `list` and `show` read the history.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use kizuna_registry::{RegistryError, policies};

use super::registry::{ConfigArg, admin_audit, load_config, open};

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Check FILE (netd's rules; keys come from enrollment, so it names none), print the changes
    /// against the active version and activate it. Exit 1 when the file is invalid.
    Apply {
        file: PathBuf,
        /// Show the changes only.
        #[arg(long)]
        dry_run: bool,
        /// A note kept with the version.
        #[arg(long, default_value = "")]
        note: String,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Return to version N: its body becomes a new version (versions only grow).
    Rollback {
        version: u64,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// List the versions.
    List(ConfigArg),
    /// Print a version's body (default: the active one).
    Show {
        version: Option<u64>,
        #[command(flatten)]
        config: ConfigArg,
    },
}

fn print_applied(a: &policies::Applied, dry_run: bool) {
    if a.diff.is_empty() {
        println!("no changes");
    }
    for l in &a.diff {
        println!("{l}");
    }
    for s in &a.released {
        if dry_run {
            println!("site {s} would leave the policy: its keys and enrollment would be released");
        } else {
            println!("site {s} left the policy: its keys and enrollment are released");
        }
    }
    // A rollback restores the policy, not a released enrollment (services/registry/README.md).
    for s in &a.reenroll {
        println!(
            "site {s} is in the policy but its enrollment was released: it stays cut off until it enrolls again. \
             Run `kizuna site provision {s}`; on its router remove state_dir/enrollment.json and run `netd enroll TOKEN`"
        );
    }
}

/// ", sites released: a, b" when the change released sites, for the audit event.
fn released_text(a: &policies::Applied) -> String {
    if a.released.is_empty() {
        String::new()
    } else {
        format!(
            ", sites released: {}",
            a.released.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(",")
        )
    }
}

pub fn run(cmd: PolicyCommand) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(async {
        match cmd {
            PolicyCommand::Apply { file, dry_run, note, config } => {
                let cfg = load_config(&config)?;
                // Opened before anything changes (a dry run changes nothing and records nothing).
                let audit = if dry_run { None } else { Some(admin_audit(&cfg)?) };
                let text =
                    std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
                let db = open(&cfg).await?;
                match policies::apply(&db, &text, &file, &note, dry_run).await {
                    Ok(a) => {
                        print_applied(&a, dry_run);
                        match a.version {
                            Some(v) => {
                                println!("activated policy version {v}");
                                let change = format!(
                                    "policy version {v} activated from {} ({} changes{}): {note}",
                                    file.display(),
                                    a.diff.len(),
                                    released_text(&a)
                                );
                                if let Some(audit) = &audit {
                                    audit.record("policy", &change).await;
                                }
                            }
                            None if dry_run => println!("dry run: nothing activated"),
                            None => println!("unchanged: version {} stays active", a.previous.unwrap_or(0)),
                        }
                        Ok(ExitCode::SUCCESS)
                    }
                    Err(RegistryError::Policy(lines)) => {
                        for l in &lines {
                            eprintln!("{l}");
                        }
                        eprintln!(
                            "{}: invalid ({} problems); nothing activated",
                            file.display(),
                            lines.len()
                        );
                        Ok(ExitCode::from(1))
                    }
                    Err(e) => Err(e.into()),
                }
            }
            PolicyCommand::Rollback { version, config } => {
                let cfg = load_config(&config)?;
                let audit = admin_audit(&cfg)?;
                let db = open(&cfg).await?;
                let a = policies::rollback(&db, version).await?;
                print_applied(&a, false);
                match a.version {
                    Some(v) => {
                        println!("activated policy version {v} (the body of version {version})");
                        let change = format!(
                            "policy rolled back: version {v} activated with the body of version {version} ({} changes{})",
                            a.diff.len(),
                            released_text(&a)
                        );
                        audit.record("policy", &change).await;
                    }
                    None => println!("version {version} is already what is active"),
                }
                Ok(ExitCode::SUCCESS)
            }
            PolicyCommand::List(config) => {
                let db = open(&load_config(&config)?).await?;
                for v in policies::list(&db).await? {
                    let when = jiff::Timestamp::from_second(v.created_unix as i64)
                        .map(|t| t.to_string())
                        .unwrap_or_default();
                    println!(
                        "{}{:>4}  {}  {}  {}  {}",
                        if v.active { "*" } else { " " },
                        v.version,
                        when,
                        &v.sha256[..12],
                        v.source,
                        v.note
                    );
                }
                Ok(ExitCode::SUCCESS)
            }
            PolicyCommand::Show { version, config } => {
                let db = open(&load_config(&config)?).await?;
                let n = match version {
                    Some(n) => n,
                    None => policies::list(&db)
                        .await?
                        .into_iter()
                        .find(|v| v.active)
                        .map(|v| v.version)
                        .context("no policy yet")?,
                };
                print!("{}", policies::body(&db, n).await?);
                Ok(ExitCode::SUCCESS)
            }
        }
    })
}
