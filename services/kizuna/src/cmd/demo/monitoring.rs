//! The demo's monitoring part: one more site whose export holds the generator's known-bad files
//! (each breaks one SS-MIX2 rule), its agent quarantining them, and at the end the admin screen's
//! health of every site, with the command and URL to open the admin screen afterwards.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use kizuna_store::{FacilityId, Store, sites};
use tokio::sync::watch;

/// Known-bad files generated for the demo (one of each kind the generator knows).
pub const BAD_FILES: u32 = 14;
const SITE: &str = "site-demo-bad";
const FACILITY: &str = "0499999990";

/// The bad site's running agent.
pub struct BadSite {
    files: u64,
    status: kizuna_agent::StatusHandle,
    task: tokio::task::JoinHandle<Result<(), kizuna_agent::AgentError>>,
}

/// Adds the bad site, copies the known-bad files into its export folder and starts its agent.
pub async fn start_bad_site(
    store: &Store,
    url: &str,
    data: &Path,
    corpus: &Path,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<BadSite> {
    let dir = data.join("demo/sites").join(SITE);
    let token = sites::add_site(&store.db, SITE, &[FacilityId::new(FACILITY)?], &[]).await?;
    std::fs::create_dir_all(&dir)?;
    let token_file = dir.join("agent.token");
    super::write_secret(&token_file, &token)?;
    let export = dir.join("export");
    let files = tokio::task::block_in_place(|| super::copy_tree(&corpus.join("bad"), &export))?;
    let text = format!(
        "export_dir: {}\nstate_dir: {}\nstore_url: {url}\nfacility: \"{FACILITY}\"\ntoken_file: {}\nsettle_ms: 200\nrescan_interval_secs: 5\nheartbeat_interval_secs: 2\n",
        export.display(),
        dir.join("state").display(),
        token_file.display()
    );
    let agent = kizuna_agent::Agent::new(kizuna_agent::Config::parse(&text, &dir.join("agent.yaml"))?)?;
    let status = agent.status();
    let task = tokio::spawn(agent.run(async move {
        let _ = stop.wait_for(|s| *s).await;
    }));
    println!("    {SITE}: {files} known-bad files in its export folder (for the admin screen)");
    Ok(BadSite { files, status, task })
}

/// Waits until the bad site's agent has dealt with every file and the store has its quarantine list.
pub async fn wait_for_bad_site(bad: &BadSite, store: &Store) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let s = bad.status.get();
        let listed: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM agent_quarantine WHERE site = $1")
            .bind(SITE)
            .fetch_one(&store.db.pool)
            .await?;
        if s.files_uploaded + s.quarantined >= bad.files
            && s.queue_depth == 0
            && listed as u64 >= s.quarantined
        {
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(120) {
            bail!("the bad site's agent did not report its quarantine within 120 s");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Prints every site's health as the admin screen shows it, writes the configs to serve the admin
/// screen afterwards, and says how. Returns false unless the bad site shows as error.
pub async fn show(store: &Store, data: &Path, bad: BadSite) -> anyhow::Result<bool> {
    bad.task.await?.context("agent of the bad site")?;
    let store_yaml = data.join("centre/store.yaml");
    let admin_yaml = data.join("admin.yaml");
    write_new(&store_yaml, &format!("data_dir: {}\n", data.join("centre").display()))?;
    let cfg = kizuna_monitor::Config { store_config: store_yaml.clone(), ..Default::default() };
    write_new(&admin_yaml, &format!("store_config: {}\n", store_yaml.display()))?;
    let monitor = kizuna_monitor::Monitor::with_db(cfg.clone(), store.db.clone())?;
    println!("monitoring: each site's health on the admin screen");
    let mut bad_in_error = false;
    for (facts, findings) in monitor.sites_now().await? {
        let h = kizuna_monitor::health::health_of(&findings);
        let why = findings.first().map(|f| f.summary.as_str()).unwrap_or("");
        println!("    {:<20} {:<8} {why}", facts.site.name, h.as_str());
        if facts.site.name == SITE {
            bad_in_error = h == kizuna_monitor::health::Health::Error;
        }
    }
    println!(
        "admin screen: kizuna serve --config {} & kizuna admin serve --config {}  then open http://{}/sites/{SITE}",
        store_yaml.display(),
        admin_yaml.display(),
        cfg.listen
    );
    Ok(bad_in_error)
}

/// Writes a small config file the demo made (the data folder is new, so it never exists yet).
fn write_new(path: &PathBuf, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| path.display().to_string())
}
