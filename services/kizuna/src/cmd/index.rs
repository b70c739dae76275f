//! `kizuna index …`: the patient index on a running centre. `link` enrolls the store's new
//! patients into the linkage database (`kizuna_index::tree_linkage`), once or, with `--follow`, as
//! uploads arrive (the centre image's `kizuna-linkage.service`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use kizuna_audit::emitter::{AuditEmitter, SenderConfig};
use kizuna_index::Registry;
use kizuna_index::tree_linkage::{LinkPass, MatcherState, link_tree};

#[derive(Subcommand)]
pub enum IndexCommand {
    /// Enroll every stored patient not yet in the linkage database (training and installing a
    /// matcher first once there are enough patients; until then the built-in one). Idempotent.
    Link(LinkArgs),
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
    let IndexCommand::Link(args) = cmd;
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
