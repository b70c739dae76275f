//! `kizuna index …`: the patient index on a running centre. `link` enrolls the store's new
//! patients into the linkage database (`kizuna_index::tree_linkage`), once or, with `--follow`, as
//! uploads arrive (the centre image's `kizuna-linkage.service`). `review`, `unlink`, `link-to` and
//! `history` are the operator's tools for the registry's admin API: decide the review queue, split
//! a wrong link, move a record to a common ID by hand, and read who linked what, when and why. Each
//! change names `--actor` (with the OS user beside it) and `--reason` and is an audit event (the
//! `--audit-*` options, as `kizuna consent`'s); each read of link data is an audit event too.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use kizuna_audit::emitter::{AuditEmitter, SenderConfig, os_user};
use kizuna_index::registry::{LinkEvent, ReviewItem};
use kizuna_index::tree_linkage::{LinkPass, MatcherState, link_tree};
use kizuna_index::{CommonId, RecordKey, Registry};

use super::consent::IndexDb;

#[derive(Subcommand)]
pub enum IndexCommand {
    /// Enroll every stored patient not yet in the linkage database (training and installing a
    /// matcher first once there are enough patients; until then the built-in one). Idempotent.
    Link(LinkArgs),
    /// The review queue: pairs the matcher found likely but not sure enough to link.
    #[command(subcommand)]
    Review(ReviewCommand),
    /// Split a record off its common ID (a wrong link: twins, a clerk's mix-up). It gets a new
    /// common ID of its own with no consent on record (nothing leaves its facility until a clerk
    /// records the patient's own consent).
    Unlink {
        /// The record: FACILITY/PATIENT_ID (facility code, local patient ID).
        record: String,
        #[command(flatten)]
        who: Decision,
        #[command(flatten)]
        db: IndexDb,
    },
    /// Move a record to an existing common ID by hand. The ID's consent becomes the stricter of
    /// the two IDs' consents (as for an accepted review item).
    LinkTo {
        /// The record: FACILITY/PATIENT_ID.
        record: String,
        /// The common health ID to link it to (KZ + 12 digits).
        common_id: String,
        #[command(flatten)]
        who: Decision,
        #[command(flatten)]
        db: IndexDb,
    },
    /// The link history of a record (FACILITY/PATIENT_ID) or of a common health ID: every link,
    /// unlink and review decision with actor, reason, match weight and model.
    History {
        /// FACILITY/PATIENT_ID or a common health ID (KZ + 12 digits).
        subject: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: IndexDb,
    },
}

#[derive(Subcommand)]
pub enum ReviewCommand {
    /// The open review items, oldest first.
    List {
        /// At most this many.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(i64).range(1..))]
        limit: i64,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: IndexDb,
    },
    /// Accept an item: the record joins the candidate's common ID (under the stricter consent);
    /// the record's other open items are closed as superseded.
    Accept {
        /// The review item's number (from `review list`).
        id: i64,
        #[command(flatten)]
        who: Decision,
        #[command(flatten)]
        db: IndexDb,
    },
    /// Reject an item: the record keeps its own common ID.
    Reject {
        /// The review item's number (from `review list`).
        id: i64,
        #[command(flatten)]
        who: Decision,
        #[command(flatten)]
        db: IndexDb,
    },
}

/// Who makes a link change, and why (both recorded in the link history and the audit event).
#[derive(Args)]
pub struct Decision {
    /// Who decides (recorded with the OS user beside it).
    #[arg(long)]
    pub actor: String,
    /// Why (e.g. "twins: different given names, checked with the ward").
    #[arg(long)]
    pub reason: String,
}

impl Decision {
    /// The actor as recorded: the name given, with the OS user who ran the command beside it.
    /// A blank `--actor` or `--reason` is refused before anything is opened.
    pub fn checked(&self) -> anyhow::Result<(String, &str)> {
        super::consent::check_actor_reason(&self.actor, &self.reason)?;
        Ok((format!("{} ({})", self.actor.trim(), os_user()), self.reason.trim()))
    }
}

#[derive(Args)]
pub struct LinkArgs {
    /// The store's YAML configuration (for its data folder and so the SS-MIX2 tree); without it,
    /// the store's defaults (./kizuna-data).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// The linkage database (`sqlite://FILE?mode=rwc` or `postgres://…`); default: `linkage.sqlite`
    /// in the store's data folder, the file `kizuna consent` (without a store config) and the centre
    /// image's viewer use.
    #[arg(long, env = "KIZUNA_INDEX_DATABASE_URL")]
    pub index_url: Option<String>,
    /// Keep running: link again every `--interval-secs` (for a systemd unit). Errors of one pass
    /// are logged and the next pass tries again.
    #[arg(long)]
    pub follow: bool,
    /// Seconds between passes with `--follow`.
    #[arg(long, env = "KIZUNA_LINKAGE_INTERVAL_SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub interval_secs: u64,
    #[command(flatten)]
    pub audit: LinkageAudit,
}

/// Where the linkage database's audit events go: link decisions (`kizuna index link`), consent
/// changes and consent disclosures (`kizuna consent`).
#[derive(Args)]
pub struct LinkageAudit {
    /// The audit service's event intake (e.g. http://127.0.0.1:7460/v1/events) for link
    /// decisions and consent changes and reads; empty = they are only logged.
    #[arg(long, env = "KIZUNA_LINKAGE_AUDIT_URL", default_value = "")]
    pub audit_url: String,
    /// Where audit events wait until the audit service has them (needed with --audit-url).
    #[arg(long, env = "KIZUNA_LINKAGE_AUDIT_SPOOL_DIR")]
    pub audit_spool_dir: Option<PathBuf>,
    /// File holding the audit service's intake token, if it wants one.
    #[arg(long, env = "KIZUNA_LINKAGE_AUDIT_TOKEN_FILE")]
    pub audit_token_file: Option<PathBuf>,
}

impl LinkageAudit {
    /// The audit sender's settings.
    pub fn sender_config(&self) -> SenderConfig {
        SenderConfig {
            url: self.audit_url.clone(),
            spool_dir: self.audit_spool_dir.clone().unwrap_or_default(),
            token_file: self.audit_token_file.clone().unwrap_or_default(),
            ..Default::default()
        }
    }
}

/// Hands spooled events to the audit service before a one-shot command exits; those it could not
/// deliver stay spooled (the next run, or a following service, sends them).
pub async fn flush_audit(emitter: &AuditEmitter, audit: &SenderConfig) {
    if emitter.sender().is_some()
        && let Err(e) = emitter.flush().await
    {
        eprintln!("kizuna: audit events stay spooled in {}: {e:#}", audit.spool_dir.display());
    }
}

pub fn run(cmd: IndexCommand) -> anyhow::Result<ExitCode> {
    let args = match cmd {
        IndexCommand::Link(args) => args,
        other => return admin(other),
    };
    let store = super::serve::load_config(args.config.as_deref())?;
    let tree = store.tree_dir();
    let index_url = args.index_url.clone().unwrap_or_else(|| default_index_url(&store));
    let audit = args.audit.sender_config();
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(async {
        let emitter = if args.follow {
            AuditEmitter::from_config(&audit)
        } else {
            AuditEmitter::from_config_no_delivery(&audit)
        }
        .context("the audit options")?;
        let reg = Registry::open(&index_url)
            .await
            .with_context(|| {
                format!("opening the linkage database {}", index_url.split('@').next_back().unwrap_or(""))
            })?
            .with_audit(emitter.clone());
        if !args.follow {
            let pass = tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current().block_on(link_tree(&reg, &tree))
            })
            .with_context(|| format!("linking the patients of {}", tree.display()))?;
            println!("{}", describe(&pass));
            flush_audit(&emitter, &audit).await;
            reg.db().pool.close().await;
            return Ok(ExitCode::SUCCESS);
        }
        tracing::info!(tree = %tree.display(), interval_secs = args.interval_secs, "linking new patients as they arrive");
        let stop = super::shutdown::requested();
        tokio::pin!(stop);
        loop {
            let pass = tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current().block_on(link_tree(&reg, &tree))
            });
            match pass {
                Ok(p) if p.enrolled > 0
                    || matches!(p.matcher, MatcherState::Trained(_) | MatcherState::BuiltIn { installed_now: true, .. }) =>
                {
                    tracing::info!("{}", describe(&p))
                }
                Ok(p) => tracing::debug!("{}", describe(&p)),
                Err(e) => tracing::error!("linking the patients of {}: {e}", tree.display()),
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(args.interval_secs)) => {}
                _ = &mut stop => break,
            }
        }
        reg.db().pool.close().await;
        Ok(ExitCode::SUCCESS)
    })
}

/// `FACILITY/PATIENT_ID` as a record key.
fn parse_record(s: &str) -> anyhow::Result<RecordKey> {
    let Some((facility, local_id)) = s.split_once('/') else {
        bail!("record {s:?}: expected FACILITY/PATIENT_ID (e.g. 0411110089/0000012345)");
    };
    RecordKey::new(facility.trim(), local_id.trim()).with_context(|| format!("record {s:?}"))
}

fn parse_common_id(s: &str) -> anyhow::Result<CommonId> {
    CommonId::parse(s.trim()).with_context(|| format!("common health ID {s:?}"))
}

/// The registry operations on the linkage database: review, unlink, link-to, history.
fn admin(cmd: IndexCommand) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(async {
        match cmd {
            IndexCommand::Link(_) => unreachable!("handled by run"),
            IndexCommand::Review(ReviewCommand::List { limit, json, db }) => {
                let (reg, emitter) = open(&db).await?;
                let items = reg.open_reviews(limit).await?;
                // Spooled before anything is printed: the items name patients.
                let user = os_user();
                for i in &items {
                    let what = format!("review item {} ({} vs {})", i.id, i.key, i.candidate);
                    reg.audit_links_shown(&i.candidate_common_id, &user, &what).await;
                }
                flush_audit(&emitter, &db.audit.sender_config()).await;
                if json {
                    println!("{}", serde_json::to_string_pretty(&items)?);
                } else if items.is_empty() {
                    println!("no open review items");
                } else {
                    for i in &items {
                        println!("{}", describe_review(i));
                    }
                }
                reg.db().pool.close().await;
            }
            IndexCommand::Review(ReviewCommand::Accept { id, who, db }) => {
                let (actor, reason) = who.checked()?;
                let (reg, emitter) = open(&db).await?;
                let to = reg
                    .accept_review(id, &actor, reason)
                    .await
                    .with_context(|| format!("accepting review item {id}"))?;
                println!("review item {id} accepted: the record is on {to}");
                flush_audit(&emitter, &db.audit.sender_config()).await;
                reg.db().pool.close().await;
            }
            IndexCommand::Review(ReviewCommand::Reject { id, who, db }) => {
                let (actor, reason) = who.checked()?;
                let (reg, emitter) = open(&db).await?;
                let own = reg
                    .reject_review(id, &actor, reason)
                    .await
                    .with_context(|| format!("rejecting review item {id}"))?;
                println!("review item {id} rejected: the record stays on {own}");
                flush_audit(&emitter, &db.audit.sender_config()).await;
                reg.db().pool.close().await;
            }
            IndexCommand::Unlink { record, who, db } => {
                let key = parse_record(&record)?;
                let (actor, reason) = who.checked()?;
                let (reg, emitter) = open(&db).await?;
                let from = reg.find(&key).await?;
                let own = reg.unlink(&key, &actor, reason).await.with_context(|| format!("unlinking {key}"))?;
                println!(
                    "{key} split off {} to the new common ID {own} (no consent on record: nothing leaves {} until one is recorded)",
                    from.map_or_else(|| "its ID".to_owned(), |f| f.to_string()),
                    key.facility
                );
                flush_audit(&emitter, &db.audit.sender_config()).await;
                reg.db().pool.close().await;
            }
            IndexCommand::LinkTo { record, common_id, who, db } => {
                let key = parse_record(&record)?;
                let to = parse_common_id(&common_id)?;
                let (actor, reason) = who.checked()?;
                let (reg, emitter) = open(&db).await?;
                reg.link(&key, &to, &actor, reason).await.with_context(|| format!("linking {key} to {to}"))?;
                let consent = reg.consent(&to).await?;
                println!(
                    "{key} linked to {to} (consent now: {})",
                    consent.map_or_else(|| "none on record".to_owned(), |c| c.policy.to_string())
                );
                flush_audit(&emitter, &db.audit.sender_config()).await;
                reg.db().pool.close().await;
            }
            IndexCommand::History { subject, json, db } => {
                let (reg, emitter) = open(&db).await?;
                let (events, shown_under) = if subject.contains('/') {
                    let key = parse_record(&subject)?;
                    let Some(current) = reg.find(&key).await? else {
                        return Err(kizuna_index::IndexError::NotEnrolled {
                            facility: key.facility.clone(),
                            local_id: key.local_id.clone(),
                        }
                        .into());
                    };
                    (reg.history(&key).await?, current)
                } else {
                    let id = parse_common_id(&subject)?;
                    reg.resolve(&id).await?;
                    (reg.history_of(&id).await?, id)
                };
                reg.audit_links_shown(&shown_under, &os_user(), &format!("link history of {subject}")).await;
                flush_audit(&emitter, &db.audit.sender_config()).await;
                if json {
                    println!("{}", serde_json::to_string_pretty(&events)?);
                } else {
                    for e in &events {
                        println!("{}", describe_event(e));
                    }
                }
                reg.db().pool.close().await;
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// Opens the existing linkage database with its audit emitter (a one-shot command: events are
/// spooled, then handed over by [`flush_audit`]).
async fn open(db: &IndexDb) -> anyhow::Result<(Registry, AuditEmitter)> {
    let emitter =
        AuditEmitter::from_config_no_delivery(&db.audit.sender_config()).context("the audit options")?;
    Ok((super::consent::open_registry(&db.index_url).await?.with_audit(emitter.clone()), emitter))
}

/// One review item on a line: number, record, candidate, weight, and the fields that agreed.
fn describe_review(i: &ReviewItem) -> String {
    let fields: Vec<String> = i
        .explanation
        .iter()
        .map(|w| format!("{}={}", w.field.name(), w.level.map_or_else(|| "-".to_owned(), |l| l.to_string())))
        .collect();
    format!(
        "#{}  {}  {} -> {} (via {})  weight {:.1}  model {}  [{}]",
        i.id,
        i.created_at,
        i.key,
        i.candidate_common_id,
        i.candidate,
        i.match_weight,
        i.model_id,
        fields.join(" ")
    )
}

fn describe_event(e: &LinkEvent) -> String {
    let weight = e.match_weight.map_or_else(String::new, |w| format!("  weight {w:.1}"));
    let model = e.model_id.map_or_else(String::new, |m| format!("  model {m}"));
    format!(
        "{}  {:<6} {} {}  {:<6} by {}: {}{weight}{model}",
        e.at, e.action, e.key, e.common_id, e.method, e.actor, e.reason
    )
}

/// `linkage.sqlite` in the store's data folder.
fn default_index_url(store: &kizuna_store::Config) -> String {
    format!("sqlite://{}/linkage.sqlite?mode=rwc", store.data_dir.display())
}

/// One line saying what a pass did and which model linked: a trained one, or the built-in one and
/// why none could be trained yet.
pub fn describe(p: &LinkPass) -> String {
    let matcher = match &p.matcher {
        MatcherState::Installed(id) => format!("trained matcher {id}"),
        MatcherState::Trained(id) => format!("matcher {id} trained on the stored patients and installed"),
        MatcherState::BuiltIn { id, installed_now, why } => {
            let installed = if *installed_now { " installed now" } else { "" };
            match why {
                Some(why) => format!(
                    "built-in matcher {id}{installed} (no model trained on this register yet: {why}; tried again when patients arrive)"
                ),
                None => format!("built-in matcher {id}{installed}"),
            }
        }
        MatcherState::NotNeeded => "no matcher yet".to_owned(),
    };
    // Unreadable files are skipped, not fatal: the line says how many (each is logged).
    let skipped = match p.skipped.len() {
        0 => String::new(),
        n => format!("; {n} unreadable files skipped (see the log; tried again next pass)"),
    };
    format!(
        "{} facilities, {} patients already enrolled; {} enrolled now ({} linked to an existing ID, {} new IDs, {} for review); {matcher}{skipped}",
        p.facilities, p.known, p.enrolled, p.auto_linked, p.new_ids, p.reviews
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The log line names the model that linked: the built-in one and why none is trained yet, or
    /// a trained one.
    #[test]
    fn the_pass_line_says_which_model_linked() {
        let pass = |matcher| LinkPass {
            facilities: 2,
            known: 5,
            enrolled: 7,
            auto_linked: 3,
            new_ids: 4,
            reviews: 1,
            matcher,
            skipped: Vec::new(),
        };
        let why = "cannot train the matcher: 12 records are too few to estimate from".to_owned();
        let line =
            describe(&pass(MatcherState::BuiltIn { id: 1, installed_now: true, why: Some(why.clone()) }));
        assert!(
            line.contains("7 enrolled now (3 linked to an existing ID, 4 new IDs, 1 for review)"),
            "{line}"
        );
        assert!(line.contains("built-in matcher 1 installed now"), "{line}");
        assert!(line.contains(&why), "{line}");
        assert!(!line.contains("own common ID"), "{line}");
        let line = describe(&pass(MatcherState::Trained(2)));
        assert!(line.ends_with("matcher 2 trained on the stored patients and installed"), "{line}");
        assert!(describe(&pass(MatcherState::Installed(2))).ends_with("trained matcher 2"));
        let with_skipped =
            LinkPass { skipped: vec!["a: not HL7".into()], ..pass(MatcherState::Installed(2)) };
        assert!(
            describe(&with_skipped)
                .ends_with("1 unreadable files skipped (see the log; tried again next pass)")
        );
    }

    /// `kizuna consent`, `kizuna index link` and the centre image's viewer name one linkage database.
    #[test]
    fn the_default_linkage_database_is_the_one_consent_and_the_viewer_use() {
        assert_eq!(
            default_index_url(&kizuna_store::Config::default()),
            super::super::consent::DEFAULT_INDEX_URL
        );
        let rootfs = concat!(env!("CARGO_MANIFEST_DIR"), "/../../images/rootfs/centre");
        let store = kizuna_store::Config::load(&PathBuf::from(rootfs).join("etc/kizuna/store.yaml")).unwrap();
        let viewer =
            std::fs::read_to_string(PathBuf::from(rootfs).join("etc/kizuna/viewer.yaml.example")).unwrap();
        let url = default_index_url(&store);
        assert!(
            viewer.lines().any(|l| l == format!("index_database_url: {url}")),
            "viewer.yaml.example does not use {url}"
        );
        let unit =
            std::fs::read_to_string(PathBuf::from(rootfs).join("etc/systemd/system/kizuna-linkage.service"))
                .unwrap();
        assert!(
            unit.contains(&format!("Environment=KIZUNA_INDEX_DATABASE_URL={url}\n")),
            "the unit does not use {url}"
        );
        let profile = std::fs::read_to_string(PathBuf::from(rootfs).join("etc/profile.d/kizuna.sh")).unwrap();
        assert!(
            profile.contains(&format!("KIZUNA_INDEX_DATABASE_URL='{url}'")),
            "admin shells do not use {url}"
        );
    }
}
