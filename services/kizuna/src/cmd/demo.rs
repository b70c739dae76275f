//! `kizuna demo`: the README's run command. It starts a centre on embedded defaults (SQLite and
//! local folders under `--data-dir`, listening on 127.0.0.1), generates a synthetic corpus for three
//! facilities, validates it, runs one upload agent per facility against the centre, shows their
//! progress, and checks the result: every file stored once, the tree valid, the index in step.

mod audit_trail;
mod monitoring;
mod viewer;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use kizuna_store::{FacilityId, Store, sites};
use ssmix2::validate::Validator;
use ssmix2::walk::validate_tree;
use tokio::sync::watch;

#[derive(Args)]
pub struct DemoArgs {
    /// Where the centre keeps its data, and the demo its sites (must be absent or empty).
    #[arg(long, default_value = "./kizuna-data")]
    pub data_dir: PathBuf,
    /// People in the synthetic population.
    #[arg(long, default_value_t = 60)]
    pub patients: u32,
    /// Seed of the synthetic corpus.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Give up if the uploads have not finished after this many seconds.
    #[arg(long, default_value_t = 600)]
    pub timeout_secs: u64,
}

pub fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let shown = args.data_dir.display();
    if args.data_dir.exists()
        && std::fs::read_dir(&args.data_dir)
            .with_context(|| format!("reading --data-dir {shown}"))?
            .next()
            .is_some()
    {
        bail!("{shown} is not empty; remove it or pass --data-dir to a new folder");
    }
    std::fs::create_dir_all(&args.data_dir).with_context(|| format!("creating --data-dir {shown}"))?;
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(demo(args))
}

async fn demo(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let data = std::path::absolute(&args.data_dir)?;
    let corpus = data.join("demo/corpus");

    // 1. A synthetic corpus, validated.
    println!("1/4 generating a corpus of {} people at three facilities and one pharmacy …", args.patients);
    let mut cfg = synth::GenConfig::new(
        args.seed,
        3,
        args.patients,
        "2024-04-01".parse().expect("date"),
        "2024-06-30".parse().expect("date"),
    );
    cfg.sync = false;
    cfg.pharmacies = 1;
    cfg.bad = monitoring::BAD_FILES;
    let summary = tokio::task::block_in_place(|| super::ssmix2::generate(&cfg, &corpus))?;
    let validator = Validator::from_default_tables().context("loading the NHO validation tables")?;
    let mut violations = 0u64;
    for f in summary.facilities.iter().filter(|f| f.kind != "pharmacy") {
        let root = synth::facility_root(&corpus, &f.id);
        tokio::task::block_in_place(|| {
            validate_tree(&root, &validator, |v| {
                violations += 1;
                eprintln!("  {v}");
            })
        })?;
    }
    println!(
        "    {} SS-MIX2 files at {} facilities, {} violations; {} NSIPS files at the pharmacy",
        summary.files,
        summary.facilities.len() - 1,
        violations,
        summary.nsips_files
    );

    // 2. The centre, with its audit service.
    let audit = audit_trail::start(&data.join("audit")).await?;
    let store_spool = data.join("centre/audit-spool");
    let config = kizuna_store::Config {
        data_dir: data.join("centre"),
        audit: audit.sender_config(&store_spool),
        ..Default::default()
    };
    let store = Store::open(config).await.context("opening the store")?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let (stop_tx, stop_rx) = watch::channel(false);
    let server = {
        let store = store.clone();
        let mut rx = stop_rx.clone();
        tokio::spawn(kizuna_store::serve_on(listener, store, async move {
            let _ = rx.wait_for(|s| *s).await;
        }))
    };
    println!("2/4 centre listening on {url}, data in {}", data.join("centre").display());

    // 3. One site and one agent per facility.
    let mut agents = Vec::new();
    for f in &summary.facilities {
        let site_dir = data.join("demo/sites").join(&f.id);
        let token = sites::add_site(&store.db, &format!("site-{}", f.id), &[FacilityId::new(&f.id)?], &[])
            .await
            .with_context(|| format!("adding the site of facility {}", f.id))?;
        audit_trail::site_added(&store.audit, &format!("site-{}", f.id), &f.id).await;
        std::fs::create_dir_all(&site_dir)?;
        let token_file = site_dir.join("agent.token");
        write_secret(&token_file, &token)?;
        let export = site_dir.join("export");
        std::fs::create_dir_all(&export)?;
        let mut text = format!(
            "export_dir: {}\nstate_dir: {}\nstore_url: {url}\nfacility: \"{}\"\ntoken_file: {}\nsettle_ms: 200\nrescan_interval_secs: 5\nheartbeat_interval_secs: 10\n",
            export.display(),
            site_dir.join("state").display(),
            f.id,
            token_file.display()
        );
        let copied = if f.kind == "pharmacy" {
            // The pharmacy's dispensing system exports NSIPS into the appliance's NSIPS folder; its
            // agent converts each file (`nsips` key) and uploads the SS-MIX2 prescriptions.
            let nsips = site_dir.join("nsips");
            let (files, messages) =
                tokio::task::block_in_place(|| copy_nsips(&corpus.join("nsips").join(&f.id), &nsips, &f.id))?;
            text.push_str(&format!("nsips:\n  dir: {}\n", nsips.display()));
            println!(
                "    pharmacy {}: {files} NSIPS files for its agent to convert into {messages} SS-MIX2 prescriptions",
                f.id
            );
            messages
        } else {
            tokio::task::block_in_place(|| copy_tree(&synth::facility_root(&corpus, &f.id), &export))?
        };
        let agent_cfg = kizuna_agent::Config::parse(&text, &site_dir.join("agent.yaml"))?;
        let agent = kizuna_agent::Agent::new(agent_cfg)?;
        let status = agent.status();
        let mut rx = stop_rx.clone();
        let task = tokio::spawn(agent.run(async move {
            let _ = rx.wait_for(|s| *s).await;
        }));
        agents.push((f.id.clone(), f.name.clone(), copied, status, task));
    }
    let bad_site = monitoring::start_bad_site(&store, &url, &data, &corpus, stop_rx.clone()).await?;
    println!("3/4 {} agents uploading …", agents.len());

    // 4. Progress until every file is acknowledged.
    let started = Instant::now();
    let bar = indicatif::MultiProgress::new();
    let style = indicatif::ProgressStyle::with_template("    {prefix:<28} [{bar:30}] {pos}/{len} files")
        .expect("valid template");
    let bars: Vec<_> = agents
        .iter()
        .map(|(id, name, n, _, _)| {
            let b = bar.add(indicatif::ProgressBar::new(*n).with_style(style.clone()));
            b.set_prefix(format!("{id} {name}"));
            b
        })
        .collect();
    loop {
        let mut done = true;
        for ((id, _, n, status, _), b) in agents.iter().zip(&bars) {
            let s = status.get();
            b.set_position(s.files_uploaded + s.quarantined);
            if let Some(e) = &s.last_error {
                tracing::debug!(facility = %id, "{e}");
            }
            done &= s.files_uploaded + s.quarantined >= *n && s.queue_depth == 0;
        }
        if done {
            break;
        }
        if started.elapsed() > Duration::from_secs(args.timeout_secs) {
            bail!("uploads did not finish within {} s", args.timeout_secs);
        }
        if bars[0].is_hidden() && started.elapsed().as_secs().is_multiple_of(5) {
            tracing::info!("uploading");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    for b in &bars {
        b.finish();
    }
    let secs = started.elapsed().as_secs_f64();

    monitoring::wait_for_bad_site(&bad_site, &store).await?;
    let _ = stop_tx.send(true);
    for (id, .., task) in agents.iter_mut().map(|a| (&a.0, &mut a.4)) {
        task.await?.with_context(|| format!("agent of {id}"))?;
    }
    server.await?.context("store")?;

    // Final counts: what each agent sent, what the tree holds, what the index holds.
    println!("4/4 done in {secs:.1} s");
    println!(
        "    {:<12} {:>8} {:>10} {:>12} {:>12} {:>10}",
        "facility", "sent", "uploaded", "quarantined", "in tree", "indexed"
    );
    let mut ok = true;
    for (id, _, n, status, _) in &agents {
        let s = status.get();
        let root = store.config.tree_dir().join(id);
        let mut bad = 0u64;
        let tree = tokio::task::block_in_place(|| validate_tree(&root, &validator, |_| bad += 1))?;
        let indexed: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM records WHERE facility_id = $1")
            .bind(id.as_str())
            .fetch_one(&store.db.pool)
            .await?;
        println!(
            "    {:<12} {:>8} {:>10} {:>12} {:>12} {:>10}",
            id, n, s.files_uploaded, s.quarantined, tree.files, indexed
        );
        ok &= tree.files == *n && indexed as u64 == *n && bad == 0 && s.quarantined == 0;
    }
    ok &= monitoring::show(&store, &data, bad_site).await?;
    if ok {
        println!("every file is stored once, the tree validates clean and the index agrees with it");
    }

    // The patient index links the patients; a clinician looks one up; an auditor sees who did.
    println!("then: patient index and audit trail ({})", data.join("audit").display());
    let index_spool = data.join("centre/index-audit-spool");
    let emitter = kizuna_audit::emitter::AuditEmitter::from_config(&audit.sender_config(&index_spool))?;
    let facilities: Vec<String> = agents.iter().map(|a| a.0.clone()).collect();
    let index_url = format!("sqlite://{}?mode=rwc", data.join("linkage.sqlite").display());
    let (patient, _) =
        audit_trail::link_and_look_up(&store.config.tree_dir(), &facilities, &index_url, emitter).await?;
    let audit_ok =
        audit_trail::finish(audit, &[store_spool.as_path(), index_spool.as_path()], &patient).await?;
    if ok && audit_ok {
        println!(
            "the centre's data stays in {}; run it again with: kizuna serve --config {}",
            data.join("centre").display(),
            data.join("centre/store.yaml").display()
        );
        // Last: single sign-on and the viewer on this data (kept running when interactive).
        let interactive = std::io::IsTerminal::is_terminal(&std::io::stdin());
        viewer::serve(&data, &store.config.data_dir, &index_url, &facilities, &patient, interactive).await?;
        Ok(ExitCode::SUCCESS)
    } else {
        if !ok {
            println!("MISMATCH: the centre does not hold exactly what the facilities sent");
        }
        if !audit_ok {
            println!("AUDIT: the log does not verify or does not show the lookup");
        }
        Ok(ExitCode::from(1))
    }
}

/// Copies every file below `from` into `to`, as an EHR would export them; returns the file count.
fn copy_tree(from: &Path, to: &Path) -> anyhow::Result<u64> {
    let mut n = 0;
    let mut stack = vec![from.to_owned()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).with_context(|| dir.display().to_string())? {
            let p = e?.path();
            let rel = p.strip_prefix(from).expect("below root");
            if p.is_dir() {
                stack.push(p);
            } else {
                let dest = to.join(rel);
                std::fs::create_dir_all(dest.parent().expect("has parent"))?;
                std::fs::copy(&p, &dest).with_context(|| dest.display().to_string())?;
                n += 1;
            }
        }
    }
    Ok(n)
}

/// Copies a pharmacy's NSIPS exports into its appliance's NSIPS folder, as its dispensing system
/// would; returns the file count and how many SS-MIX2 prescriptions they convert to.
fn copy_nsips(from: &Path, to: &Path, facility: &str) -> anyhow::Result<(u64, u64)> {
    std::fs::create_dir_all(to)?;
    let (mut files, mut messages) = (0, 0);
    for e in std::fs::read_dir(from).with_context(|| from.display().to_string())? {
        let p = e?.path();
        let bytes = std::fs::read(&p).with_context(|| p.display().to_string())?;
        messages += kizuna_nsips::convert_bytes(&bytes, &p, facility)?.files.len() as u64;
        std::fs::write(to.join(p.file_name().context("a file name")?), &bytes)?;
        files += 1;
    }
    Ok((files, messages))
}

/// Writes a secret with mode 0600.
fn write_secret(path: &Path, secret: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    f.write_all(secret.as_bytes())?;
    f.sync_all()?;
    Ok(())
}
