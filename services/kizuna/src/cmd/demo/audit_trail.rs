//! The audit part of `kizuna demo`: an audit service (with a lab RFC 3161 TSA) that the demo's store
//! and patient index send their events to; a clinician's patient lookup through the index; and, at
//! the end, the answer to "who looked at this patient?", a verification of the log, and the
//! commands an auditor runs afterwards.

use std::path::{Path, PathBuf};

use anyhow::Context;
use kizuna_audit::AuditEvent;
use kizuna_audit::emitter::{AuditEmitter, SenderConfig};
use kizuna_audit::event::presets::Source;
use kizuna_audit::lab_tsa::LabTsa;
use kizuna_audit::server::RunningServer;
use kizuna_index::registry::Registry;
use kizuna_index::{CommonId, RecordKey};

/// Where the auditor's UI listens when the demo's audit service is run again.
pub(super) const AUDIT_LISTEN: &str = "127.0.0.1:7460";
/// The (pairwise) id of the demo's clinician, as the viewer would know them.
pub const DEMO_CLINICIAN: &str = "pw-demo-dr-yamada";

/// The demo's audit service and what its senders need.
pub struct DemoAudit {
    pub dir: PathBuf,
    pub config_file: PathBuf,
    server: RunningServer,
    _tsa: LabTsa,
    pub intake_url: String,
}

/// Starts a lab TSA and the audit service under `dir`, and writes `dir/audit.yaml` for later runs.
pub async fn start(dir: &Path) -> anyhow::Result<DemoAudit> {
    let tsa = LabTsa::start(&dir.join("tsa"))
        .await
        .context("starting the lab time-stamp authority (needs openssl)")?;
    let cfg = kizuna_audit::server::local_config(dir, "127.0.0.1:0", Some(&tsa))?;
    let server = kizuna_audit::server::start(&cfg).await.context("starting the audit service")?;
    // The file an auditor uses afterwards: the fixed UI port, and the lab TSA on its usual port
    // (`kizuna audit lab-tsa --dir <dir>/tsa` serves it with the same certificates).
    // (JSON strings are YAML strings: paths are quoted whatever they hold.)
    let q = |p: &Path| serde_json::to_string(&p.display().to_string()).expect("a string serializes");
    let yaml = format!(
        "# the audit service of `kizuna demo`; every key: kizuna audit print-default-config\n\
         data_dir: {}\nsigning_key_file: {}\ntsa_url: http://127.0.0.1:3161/\ntsa_ca_file: {}\nhttp_listen: {AUDIT_LISTEN}\n",
        q(&cfg.data_dir),
        q(&cfg.signing_key_file),
        q(&tsa.ca_cert)
    );
    let config_file = dir.join("audit.yaml");
    std::fs::write(&config_file, yaml).with_context(|| config_file.display().to_string())?;
    let intake_url = format!("http://{}/v1/events", server.http_addr);
    Ok(DemoAudit { dir: dir.to_owned(), config_file, server, _tsa: tsa, intake_url })
}

impl DemoAudit {
    /// The `audit:` config of a service spooling into `spool`.
    pub fn sender_config(&self, spool: &Path) -> SenderConfig {
        SenderConfig { retry_secs: 1, ..SenderConfig::new(&self.intake_url, spool) }
    }
}

/// Records an admin's site change (what `kizuna site add` records).
pub async fn site_added(emitter: &AuditEmitter, site: &str, facility: &str) {
    let src = Source::new("kizuna-site-admin");
    emitter
        .emit(AuditEvent::security_change(
            &src,
            "os:demo",
            site,
            &format!("site added: facilities {facility}"),
        ))
        .await;
}

/// Enrolls every patient the centre holds into the patient index (a matcher trained on them without
/// labels), then lets a clinician of the first facility look up the patient seen at the most
/// facilities. Returns that patient's common health ID and how many records it links.
pub async fn link_and_look_up(
    tree: &Path,
    facilities: &[String],
    index_url: &str,
    emitter: AuditEmitter,
) -> anyhow::Result<(CommonId, usize)> {
    let reg = Registry::open(index_url).await?.with_audit(emitter);
    // The same enrollment as `kizuna index link` on a deployed centre.
    let pass = tokio::task::block_in_place(|| {
        tokio::runtime::Handle::current().block_on(kizuna_index::tree_linkage::link_tree(&reg, tree))
    })?;
    if let kizuna_index::tree_linkage::MatcherState::BuiltIn { why: Some(e), .. } = &pass.matcher {
        println!("    (no matcher trained on so few patients: {e}; the built-in model linked them)");
    }
    let mut by_id: std::collections::BTreeMap<CommonId, Vec<RecordKey>> = Default::default();
    for (key, id) in reg.all_links().await? {
        by_id.entry(id).or_default().push(key);
    }
    let (patient, _) = by_id
        .iter()
        .max_by_key(|(id, keys)| (keys.len(), std::cmp::Reverse((*id).clone())))
        .context("the index holds no patient")?;
    let patient = patient.clone();
    let keys = reg.resolve_as(&patient, DEMO_CLINICIAN, facilities.first().map(String::as_str)).await?;
    println!(
        "    {} records linked to {} common health IDs; clinician {DEMO_CLINICIAN} looked up {patient} ({} records)",
        pass.enrolled,
        by_id.len(),
        keys.len()
    );
    reg.db().pool.close().await;
    Ok((patient, keys.len()))
}

/// Waits until every spool is delivered, stops the service (final signed, time-stamped
/// checkpoint), answers "who looked at `patient`", verifies the log and prints the auditor's commands.
pub async fn finish(audit: DemoAudit, spools: &[&Path], patient: &CommonId) -> anyhow::Result<bool> {
    for spool in spools {
        let s = kizuna_audit::sender::AuditSender::new(spool, &audit.intake_url)?;
        s.flush().await.with_context(|| format!("delivering {}", spool.display()))?;
    }
    let cfg = kizuna_audit::config::AuditConfig::load(&audit.config_file)?;
    let db = kizuna_audit::db::Db::open(&cfg.database_url()).await?;
    let filter =
        kizuna_audit::search::SearchFilter { patient: Some(patient.to_string()), ..Default::default() };
    let rows = kizuna_audit::search::search(&db, &filter).await?;
    let total =
        kizuna_audit::search::count(&db, &Default::default(), kizuna_audit::search::CountBy::Day).await?;
    db.pool.close().await;
    audit.server.shutdown().await?;
    println!(
        "    audit log: {} events; who looked at patient {patient}:",
        total.iter().map(|(_, n)| n).sum::<i64>()
    );
    for r in &rows {
        println!(
            "      {}  {:<20} {} via {} for facility {}",
            r.event_time,
            r.user_id.as_deref().unwrap_or("-"),
            match (r.event_code.as_str(), r.action.as_str()) {
                ("110112", _) => "searched for the patient",
                ("110110", "R") => "viewed the record",
                ("110110", _) => "changed the patient's links",
                _ => "accessed",
            },
            r.source_id,
            r.facility.as_deref().unwrap_or("-")
        );
    }
    let report = kizuna_audit::verify::verify(&kizuna_audit::verify::VerifyOptions {
        database_url: cfg.database_url(),
        data_dir: cfg.data_dir.clone(),
        public_key: kizuna_audit::checkpoint::load_signing_key(&cfg.signing_key_file)?.verifying_key(),
        tsa_trust: match &cfg.tsa_ca_file {
            Some(p) => Some(kizuna_audit::tsa::TsaTrust::from_pem_file(p)?),
            None => None,
        },
        max_inclusion_proofs: 10_000,
    })
    .await?;
    for f in &report.findings {
        println!("    FAIL: {f}");
    }
    println!(
        "    audit log verified: {} events, {} signed checkpoints, {} time stamps valid{}",
        report.events,
        report.checkpoints,
        report.timestamps_verified,
        if report.ok() { "" } else { " — FINDINGS ABOVE" }
    );
    let c = audit.config_file.display();
    println!("auditor: kizuna audit search -c {c} --patient {patient}");
    println!("         kizuna audit verify -c {c}");
    println!("         kizuna audit serve -c {c}   then open http://{AUDIT_LISTEN}/ui?patient={patient}");
    println!(
        "         (the TSA for new checkpoints: kizuna audit lab-tsa --dir {})",
        audit.dir.join("tsa").display()
    );
    Ok(report.ok() && !rows.is_empty())
}
