//! `kizuna audit`: run the audit service, verify the tamper-evident log, search it, make keys, and
//! run a lab time-stamp authority. The work is in `kizuna-audit`.

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use kizuna_audit::config::{AuditConfig, DEFAULT_CONFIG};
use kizuna_audit::verify::{VerifyOptions, verify};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Run the audit service: HTTP intake/search/FHIR/UI, syslog over TLS and UDP, checkpoints.
    Serve(ConfigArg),
    /// Prove inclusion and consistency across all checkpoints, check signatures and time stamps, and
    /// name every event modified, deleted or reordered. Exit 0 = intact, 1 = tampering found.
    Verify(VerifyArgs),
    /// Search the log (CSV on stdout): who accessed whose data.
    Search(SearchArgs),
    /// Create an ed25519 checkpoint signing key (mode 0600) and print its public key.
    Keygen {
        #[arg(long)]
        out: PathBuf,
    },
    /// Print the default configuration with every key explained.
    PrintDefaultConfig,
    /// Run a lab RFC 3161 time-stamp authority (`openssl ts` behind HTTP) for demos and tests.
    LabTsa {
        /// Directory for its CA, key and certificate.
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value = "127.0.0.1:3161")]
        listen: String,
    },
}

#[derive(Args)]
pub struct ConfigArg {
    /// The audit service's YAML configuration.
    #[arg(long, short)]
    config: PathBuf,
}

#[derive(Args)]
pub struct VerifyArgs {
    #[arg(long, short)]
    config: PathBuf,
    /// The checkpoint signer's public key (64 hex digits); default: derived from signing_key_file.
    #[arg(long)]
    public_key: Option<String>,
    /// PEM of the trusted TSA certificate or CA; default: tsa_ca_file from the config.
    #[arg(long)]
    tsa_ca: Option<PathBuf>,
    /// Check explicit RFC 9162 inclusion proofs for at most this many events (root recomputation
    /// covers every event regardless).
    #[arg(long, default_value_t = 10_000)]
    max_inclusion_proofs: u64,
}

#[derive(Args)]
pub struct SearchArgs {
    #[arg(long, short)]
    config: PathBuf,
    #[arg(long)]
    user: Option<String>,
    #[arg(long)]
    patient: Option<String>,
    #[arg(long)]
    facility: Option<String>,
    /// EventID or EventTypeCode, e.g. 110110 (patient record) or 110122 (login).
    #[arg(long)]
    event_type: Option<String>,
    /// YYYY-MM-DD or RFC 3339.
    #[arg(long)]
    from: Option<String>,
    /// YYYY-MM-DD (inclusive) or RFC 3339 (exclusive).
    #[arg(long)]
    to: Option<String>,
    #[arg(long)]
    outcome: Option<i64>,
    #[arg(long, default_value_t = 1000)]
    limit: u32,
}

fn load(path: &std::path::Path) -> anyhow::Result<AuditConfig> {
    AuditConfig::load(path).with_context(|| format!("reading configuration {}", path.display()))
}

pub fn run(cmd: AuditCommand) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    match cmd {
        AuditCommand::PrintDefaultConfig => {
            print!("{DEFAULT_CONFIG}");
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Keygen { out } => {
            let vk = kizuna_audit::checkpoint::generate_key(&out)?;
            println!("{}", hex::encode(vk.as_bytes()));
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Serve(a) => {
            let cfg = load(&a.config)?;
            rt.block_on(async {
                let server = kizuna_audit::server::start(&cfg).await?;
                println!("audit service listening on http://{}", server.http_addr);
                super::shutdown::requested().await;
                tracing::info!("shutting down: final checkpoint");
                server.shutdown().await?;
                anyhow::Ok(())
            })?;
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Verify(a) => {
            let cfg = load(&a.config)?;
            let public_key = match &a.public_key {
                Some(h) => kizuna_audit::checkpoint::parse_public_key(h)?,
                None => kizuna_audit::checkpoint::load_signing_key(&cfg.signing_key_file)
                    .context("no --public-key given, so the signing key is needed to derive it")?
                    .verifying_key(),
            };
            let tsa_trust = match a.tsa_ca.or(cfg.tsa_ca_file.clone()) {
                Some(p) => Some(kizuna_audit::tsa::TsaTrust::from_pem_file(&p)?),
                None => None,
            };
            let opts = VerifyOptions {
                database_url: cfg.database_url(),
                data_dir: cfg.data_dir.clone(),
                public_key,
                tsa_trust,
                max_inclusion_proofs: a.max_inclusion_proofs,
            };
            let rep = rt.block_on(verify(&opts))?;
            println!(
                "events: {}  disk leaves: {}  checkpoints: {}  time stamps verified: {}  not time-stamped (no TSA trusted): {}  consistency proofs: {}  inclusion proofs: {}  not yet checkpointed: {}",
                rep.events,
                rep.disk_leaves,
                rep.checkpoints,
                rep.timestamps_verified,
                rep.unstamped,
                rep.consistency_proofs,
                rep.inclusion_proofs,
                rep.uncovered_events
            );
            for f in &rep.findings {
                println!("FAIL: {f}");
            }
            if rep.ok() {
                println!("OK: the audit log is intact");
                Ok(ExitCode::SUCCESS)
            } else {
                println!("TAMPERED: {} finding(s)", rep.findings.len());
                Ok(ExitCode::from(1))
            }
        }
        AuditCommand::Search(a) => {
            let cfg = load(&a.config)?;
            let mut pairs: Vec<(String, String)> = Vec::new();
            for (k, v) in [
                ("user", a.user),
                ("patient", a.patient),
                ("facility", a.facility),
                ("event_type", a.event_type),
                ("from", a.from),
                ("to", a.to),
            ] {
                if let Some(v) = v {
                    pairs.push((k.into(), v));
                }
            }
            if let Some(o) = a.outcome {
                pairs.push(("outcome".into(), o.to_string()));
            }
            pairs.push(("limit".into(), a.limit.to_string()));
            let f = match kizuna_audit::api::filter::from_pairs(&pairs) {
                Ok(f) => f,
                Err(e) => bail!("{e}"),
            };
            let csv = rt.block_on(async {
                let db = kizuna_audit::db::Db::open(&cfg.database_url()).await?;
                let rows = kizuna_audit::search::search(&db, &f).await?;
                db.pool.close().await;
                kizuna_audit::search::to_csv(&rows)
            })?;
            print!("{csv}");
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::LabTsa { dir, listen } => {
            rt.block_on(async {
                let tsa = kizuna_audit::lab_tsa::LabTsa::start_on(&dir, &listen).await?;
                println!("lab TSA: tsa_url: {}  tsa_ca_file: {}", tsa.url, tsa.ca_cert.display());
                super::shutdown::requested().await;
                anyhow::Ok(())
            })?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
