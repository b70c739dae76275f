//! `kizuna consent …`: a patient's consent to share their records with other facilities
//! (disclosure control), kept with its history in the linkage database of `kizuna-index`. A
//! change and a `show` are personal-data accesses: each is an audit event (the `--audit-*` options,
//! the same as `kizuna index link`'s), naming the OS user who ran the command.

use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use kizuna_audit::emitter::{AuditEmitter, os_user};
use kizuna_index::{CommonId, ConsentPolicy, FacilityCode, Registry};

use super::index::{LinkageAudit, flush_audit};

/// The linkage database the viewer reads too (its `index_database_url`): `linkage.sqlite` in the
/// store's default data folder, as `kizuna index link` derives it from the store's config.
pub const DEFAULT_INDEX_URL: &str = "sqlite://./kizuna-data/linkage.sqlite?mode=rwc";

#[derive(Args)]
pub struct IndexDb {
    /// The linkage database: `sqlite://FILE?mode=rwc` or `postgres://user@host/db`.
    #[arg(long, env = "KIZUNA_INDEX_DATABASE_URL", default_value = DEFAULT_INDEX_URL)]
    pub index_url: String,
    #[command(flatten)]
    pub audit: LinkageAudit,
}

#[derive(Subcommand)]
pub enum ConsentCommand {
    /// Record a patient's consent (replaces the current one; the old one stays in the history).
    Set {
        /// The patient's common health ID (KZ + 12 digits).
        common_id: String,
        /// Every facility of the network may see the patient's records.
        #[arg(long, conflicts_with_all = ["facility", "opt_out"])]
        all: bool,
        /// Only this facility may see them (repeat for several).
        #[arg(long, conflicts_with = "opt_out")]
        facility: Vec<String>,
        /// The patient opts out: no facility sees another's records.
        #[arg(long)]
        opt_out: bool,
        /// Who records the consent.
        #[arg(long)]
        actor: String,
        /// Why (e.g. the signed form's reference).
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        db: IndexDb,
    },
    /// Show a patient's consent, its history and break-glass grants.
    Show {
        common_id: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: IndexDb,
    },
}

pub fn run(cmd: ConsentCommand) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(async {
        match cmd {
            ConsentCommand::Set { common_id, all, facility, opt_out, actor, reason, db } => {
                let id = CommonId::parse(&common_id)?;
                // Checked before the OS user is added beside it: " " would pass as "  (os:NAME)".
                check_actor_reason(&actor, &reason)?;
                let policy = if all {
                    ConsentPolicy::All
                } else if opt_out {
                    ConsentPolicy::OptOut
                } else if !facility.is_empty() {
                    ConsentPolicy::Listed(
                        facility.iter().map(|f| facility_code(f)).collect::<Result<_, _>>()?,
                    )
                } else {
                    bail!("say what the patient consented to: --all, --facility F (repeatable) or --opt-out");
                };
                let (reg, emitter) = open(&db).await?;
                // Who typed the command, beside the name they gave.
                let actor = format!("{} ({})", actor.trim(), os_user());
                let rec = reg.set_consent(&id, &policy, &actor, &reason).await?;
                println!(
                    "{}: {} (recorded by {} at {})",
                    rec.common_id, rec.policy, rec.recorded_by, rec.recorded_at
                );
                flush_audit(&emitter, &db.audit.sender_config()).await;
            }
            ConsentCommand::Show { common_id, json, db } => {
                let id = CommonId::parse(&common_id)?;
                let (reg, emitter) = open(&db).await?;
                reg.resolve(&id).await?;
                let current = reg.consent(&id).await?;
                let history = reg.consent_history(&id).await?;
                let grants = reg.break_glass_history(&id).await?;
                // Spooled before anything is printed.
                reg.audit_consent_shown(&id, &os_user()).await;
                flush_audit(&emitter, &db.audit.sender_config()).await;
                if json {
                    let v = serde_json::json!({
                        "common_id": id, "consent": current, "history": history, "break_glass": grants
                    });
                    println!("{}", serde_json::to_string_pretty(&v)?);
                } else {
                    match &current {
                        Some(c) => println!(
                            "{id}: {} (recorded by {} at {}: {})",
                            c.policy, c.recorded_by, c.recorded_at, c.reason
                        ),
                        None => {
                            println!("{id}: no consent recorded (nothing shared beyond the holding facility)")
                        }
                    }
                    for e in &history {
                        println!("  {}  {:<32} {}  {}", e.at, e.policy.to_string(), e.actor, e.reason);
                    }
                    for g in &grants {
                        println!(
                            "  BREAK-GLASS {}  facility {} user {}  {}  (until unix {})",
                            g.at, g.facility, g.user, g.reason, g.expires_unix
                        );
                    }
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// `--actor` and `--reason` must say something: refused when blank, naming the argument.
pub(crate) fn check_actor_reason(actor: &str, reason: &str) -> anyhow::Result<()> {
    if actor.trim().is_empty() {
        bail!("--actor is blank: name who records this (it is kept in the history and the audit log)");
    }
    if reason.trim().is_empty() {
        bail!("--reason is blank: say why (e.g. the signed form's reference)");
    }
    Ok(())
}

/// A `--facility` value: a medical-institution (or pharmacy) code is 10 digits (prefecture 2,
/// point table 1, institution 7). Anything else is a typo, and a consent listing a facility that
/// cannot exist would silently leave the intended one seeing nothing.
fn facility_code(f: &str) -> anyhow::Result<FacilityCode> {
    let f = f.trim();
    if f.len() != 10 || !f.bytes().all(|b| b.is_ascii_digit()) {
        bail!(
            "--facility {f:?} is not a facility code: expected the 10-digit medical-institution code (e.g. 0411110089)"
        );
    }
    FacilityCode::parse(f).with_context(|| format!("--facility {f:?}"))
}

/// Opens the linkage database with its audit emitter.
async fn open(db: &IndexDb) -> anyhow::Result<(Registry, AuditEmitter)> {
    let emitter =
        AuditEmitter::from_config_no_delivery(&db.audit.sender_config()).context("the audit options")?;
    Ok((open_registry(&db.index_url).await?.with_audit(emitter.clone()), emitter))
}

/// Opens the existing linkage database: a SQLite file that is not there is a mistyped
/// `--index-url` (or a centre that never linked), not a database to create empty.
pub(crate) async fn open_registry(url: &str) -> anyhow::Result<Registry> {
    if let Some(file) = kizuna_db::sqlite_file(url)
        && !file.exists()
    {
        bail!(
            "no linkage database at {} (--index-url / KIZUNA_INDEX_DATABASE_URL): check the path, or run `kizuna index link` first",
            file.display()
        );
    }
    Registry::open(url)
        .await
        .with_context(|| format!("opening the linkage database {}", url.split('@').next_back().unwrap_or("")))
}
