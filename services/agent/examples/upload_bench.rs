//! End-to-end upload benchmark: a synthetic SS-MIX2 corpus (100,000 files by default) waits in the
//! facilities' export folders; one upload agent per facility checks, queues and uploads it over HTTP
//! on 127.0.0.1 to the store, which checks it again and writes it durably into the tree, the change
//! journal and the IndexDB (SQLite). The clock runs from the agents' start until every agent's last
//! file is acknowledged (each acknowledgement comes after the store's fsyncs) and the search rows,
//! written behind the answers, are committed up to the journal's end. In the same run the
//! same tree is copied with `cp -a` followed by `sync`, the baseline. A run has `--rounds` rounds
//! (default 3) of a fresh corpus, the copy and the upload, and reports each round and the median
//! ratio: the copy's speed alone swings 2-3x between rounds on a shared disk.
//!
//! ```sh
//! cargo run --release -p kizuna-agent --example upload_bench -- [--rounds 3] [--patients 1600] [--facilities 10] [--batch 200] [--upload-concurrency 2] [--dir /tmp]
//! ```
//! With `RUST_LOG=kizuna_store::ingest=info` the store logs each batch's phase timings (check,
//! stage, journal, apply, index) to stderr. Everything is written below a fresh folder in `--dir` (default `$TMPDIR`) and deleted at the end.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use clap::Parser;
use kizuna_store::{FacilityId, Store, sites};

/// mimalloc: the upload path allocates many small, short-lived buffers across threads, where glibc
/// malloc took ~13 % of the upload benchmark's CPU.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
struct Args {
    /// People in the synthetic population (1,600 over one year with 10 facilities ≈ 100,000 files).
    #[arg(long, default_value_t = 1600)]
    patients: u32,
    #[arg(long, default_value_t = 10)]
    facilities: u32,
    /// Days of records, from 2024-01-01.
    #[arg(long, default_value_t = 366)]
    days: i32,
    /// Parent of the scratch folder (same filesystem for the copy and the store).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Files per upload batch (the agent's `batch_max_files`).
    #[arg(long, default_value_t = 200)]
    batch: usize,
    /// Batches each agent keeps in flight (the agent's `upload_concurrency`; its default, 2).
    #[arg(long, default_value_t = 2)]
    upload_concurrency: usize,
    /// Rounds of corpus, copy and upload; the summary gives each and the median ratio.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Keep the scratch folder.
    #[arg(long)]
    keep: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ensure!(args.rounds >= 1, "--rounds must be at least 1");
    // RUST_LOG (e.g. `kizuna_store::ingest=info`) shows the store's per-batch phase timings.
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .try_init();
    }
    let parent = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    let work = tempfile::Builder::new().prefix("kizuna-upload-bench-").tempdir_in(&parent)?;
    let result = bench(&args, work.path()).await;
    if args.keep {
        println!("kept {}", work.keep().display());
    }
    result
}

/// One round's measurements.
struct Round {
    files: u64,
    /// `cp -a` alone, then the `sync` after it.
    cp_secs: f64,
    sync_secs: f64,
    /// From the agents' start to the last acknowledgement, and to the search rows' catching up.
    acked_secs: f64,
    kizuna_secs: f64,
    user_secs: f64,
    sys_secs: f64,
    /// `syncfs(2)` calls the store made (concurrent batches share them).
    syncfs: u64,
}

impl Round {
    fn cp_rate(&self) -> f64 {
        self.files as f64 / (self.cp_secs + self.sync_secs)
    }
    fn kizuna_rate(&self) -> f64 {
        self.files as f64 / self.kizuna_secs
    }
    fn ratio(&self) -> f64 {
        self.kizuna_rate() / self.cp_rate()
    }
}

async fn bench(args: &Args, work: &Path) -> anyhow::Result<()> {
    let mut rounds = Vec::new();
    for n in 1..=args.rounds {
        println!("round {n} of {}", args.rounds);
        let dir = work.join(format!("round-{n}"));
        std::fs::create_dir(&dir)?;
        let r = round(args, &dir).await?;
        println!(
            "  cp -a {:.1} s + sync {:.1} s: {:.0} files/s; agents -> store: {:.1} s, {:.0} files/s ({} syncfs by the store); ratio {:.2}",
            r.cp_secs,
            r.sync_secs,
            r.cp_rate(),
            r.kizuna_secs,
            r.kizuna_rate(),
            r.syncfs,
            r.ratio()
        );
        rounds.push(r);
    }
    report(&rounds);
    Ok(())
}

/// The summary: each round, then the median ratio (the copy's speed swings 2-3x between runs on
/// a shared disk, so one round's ratio says little).
fn report(rounds: &[Round]) {
    println!();
    println!(
        "{:<6} {:>7} {:>10} {:>8} {:>10} {:>10} {:>8} {:>6} {:>9}",
        "round", "files", "cp+sync s", "cp/s", "kizuna s", "kizuna/s", "us/file", "cores", "ratio"
    );
    for (i, r) in rounds.iter().enumerate() {
        let cpu = r.user_secs + r.sys_secs;
        println!(
            "{:<6} {:>7} {:>10.1} {:>8.0} {:>10.1} {:>10.0} {:>8.0} {:>6.2} {:>9.2}",
            i + 1,
            r.files,
            r.cp_secs + r.sync_secs,
            r.cp_rate(),
            r.kizuna_secs,
            r.kizuna_rate(),
            cpu * 1e6 / r.files as f64,
            cpu / r.kizuna_secs,
            r.ratio()
        );
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        let m = v.len() / 2;
        if v.len() % 2 == 1 { v[m] } else { (v[m - 1] + v[m]) / 2.0 }
    };
    let per_file =
        |f: &dyn Fn(&Round) -> f64| median(rounds.iter().map(|r| f(r) * 1e6 / r.files as f64).collect());
    println!(
        "median over {} rounds: cp -a + sync {:.0} files/s, agents -> store -> tree + index (SQLite) {:.0} files/s",
        rounds.len(),
        median(rounds.iter().map(Round::cp_rate).collect()),
        median(rounds.iter().map(Round::kizuna_rate).collect()),
    );
    println!(
        "median ratio kizuna / cp: {:.2} (target >= 0.5); lowest {:.2}, highest {:.2}",
        median(rounds.iter().map(Round::ratio).collect()),
        rounds.iter().map(Round::ratio).fold(f64::INFINITY, f64::min),
        rounds.iter().map(Round::ratio).fold(0.0, f64::max),
    );
    println!(
        "median CPU of agents + store per file: {:.0} us ({:.0} user, {:.0} system); search rows caught up {:.1} s after the last acknowledgement (median)",
        per_file(&|r| r.user_secs + r.sys_secs),
        per_file(&|r| r.user_secs),
        per_file(&|r| r.sys_secs),
        median(rounds.iter().map(|r| r.kizuna_secs - r.acked_secs).collect()),
    );
}

/// One round in `work`: a fresh corpus, the copy, then the upload of the same corpus.
async fn round(args: &Args, work: &Path) -> anyhow::Result<Round> {
    // 0. Earlier runs' deletions flushed: ext4 (here without a journal) skips inodes freed in the
    // last 60 s, or 360 s while their inode-table block is dirty (`recently_deleted`), when it
    // allocates; profiles put 6-19 % of a run's CPU there. At the default size the corpus and the
    // copy take about a minute, so after this mostly what this run frees (the agents' acknowledged
    // files) costs.
    sync()?;
    // 1. The corpus, flushed so that neither measurement pays for the generator's writes.
    let corpus = work.join("corpus");
    let from = synth::CivilDate::new(2024, 1, 1)?;
    let mut to = from;
    for _ in 1..args.days {
        to = to.tomorrow()?;
    }
    let mut cfg = synth::GenConfig::new(11, args.facilities, args.patients, from, to);
    cfg.sync = false;
    let t = Instant::now();
    let summary = tokio::task::block_in_place(|| synth::generate(&cfg, &corpus, &|_| {}))?;
    sync()?;
    let files = summary.files;
    println!(
        "  corpus: {files} files, {:.1} MB, {} facilities ({:.1} s)",
        summary.bytes as f64 / 1e6,
        summary.facilities.len(),
        t.elapsed().as_secs_f64()
    );
    let roots: Vec<(String, PathBuf)> =
        summary.facilities.iter().map(|f| (f.id.clone(), synth::facility_root(&corpus, &f.id))).collect();

    // 2. Baseline: cp -a of the facility trees, then sync.
    let copy = work.join("copy");
    std::fs::create_dir(&copy)?;
    let t = Instant::now();
    let mut cp = Command::new("cp");
    cp.arg("-a").args(roots.iter().map(|(_, r)| r)).arg(&copy);
    ensure!(cp.status().context("running cp")?.success(), "cp -a failed");
    let cp_secs = t.elapsed().as_secs_f64();
    sync()?;
    let sync_secs = t.elapsed().as_secs_f64() - cp_secs;
    // The copy stays until the end: deleting its 100,000 inodes here would make ext4 skip them as
    // "recently deleted" (`find_inode_bit`/`recently_deleted`, up to 300 s) in every inode the
    // store allocates next, a cost the copy itself did not pay (a profile put 8 % of the run's CPU there).

    // 3. The centre on embedded defaults (SQLite, syncfs), and one agent per facility.
    let config = kizuna_store::Config {
        listen: "127.0.0.1:0".parse()?,
        data_dir: work.join("centre"),
        ..Default::default()
    };
    let store = Store::open(config).await.context("opening the store")?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let server = {
        let mut rx = stop_rx.clone();
        tokio::spawn(kizuna_store::serve_on(listener, store.clone(), async move {
            let _ = rx.wait_for(|s| *s).await;
        }))
    };
    let mut agents = Vec::new();
    for (id, root) in &roots {
        let site = work.join("sites").join(id);
        std::fs::create_dir_all(&site)?;
        let token = sites::add_site(&store.db, &format!("site-{id}"), &[FacilityId::new(id)?], &[]).await?;
        let token_file = site.join("token");
        std::fs::write(&token_file, token)?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600))?;
        let yaml = format!(
            "export_dir: {}\nstate_dir: {}\nstore_url: {url}\nfacility: \"{id}\"\ntoken_file: {}\nbatch_max_files: {}\nupload_concurrency: {}\n",
            root.display(),
            site.join("state").display(),
            token_file.display(),
            args.batch,
            args.upload_concurrency,
        );
        agents.push(kizuna_agent::Config::parse(&yaml, &site.join("agent.yaml"))?);
    }

    // 4. The clock runs from the agents' start to the last acknowledgement.
    let t = Instant::now();
    let (user_before, sys_before) = process_cpu_secs()?;
    let mut running = Vec::new();
    for cfg in agents {
        let agent = kizuna_agent::Agent::new(cfg)?;
        let status = agent.status();
        let mut rx = stop_rx.clone();
        let task = tokio::spawn(agent.run(async move {
            let _ = rx.wait_for(|s| *s).await;
        }));
        running.push((status, task));
    }
    let statuses: Vec<_> = running.iter().map(|(s, _)| s.clone()).collect();
    let mut last_report = Instant::now();
    loop {
        let (mut uploaded, mut queued, mut quarantined) = (0, 0, 0);
        for s in &statuses {
            let s = s.get();
            uploaded += s.files_uploaded;
            queued += s.queue_depth;
            quarantined += s.quarantined;
        }
        ensure!(quarantined == 0, "{quarantined} files quarantined");
        if uploaded >= files && queued == 0 {
            break;
        }
        if last_report.elapsed() > Duration::from_secs(10) {
            eprintln!(
                "  {uploaded}/{files} acknowledged, {queued} queued, {:.0} s",
                t.elapsed().as_secs_f64()
            );
            last_report = Instant::now();
        }
        if t.elapsed() > Duration::from_secs(3600) {
            bail!("not done after an hour");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The search rows are written behind the answers: the clock stops once they are durable too.
    let acked_secs = t.elapsed().as_secs_f64();
    store.search_caught_up().await;
    let kizuna_secs = t.elapsed().as_secs_f64();
    let (user_after, sys_after) = process_cpu_secs()?;
    let (user_secs, sys_secs) = (user_after - user_before, sys_after - sys_before);
    let _ = stop_tx.send(true);
    for (_, task) in running {
        task.await??;
    }
    server.await??;

    // 5. Everything is there: one index row per file, as many files in the tree.
    let indexed: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM records").fetch_one(&store.db.pool).await?;
    let in_tree = count_files(&store.config.tree_dir())?;
    let search_seq = kizuna_store::search::search_seq(&store.db).await?;
    ensure!(
        search_seq == store.journal.last_seq(),
        "search rows durable up to entry {search_seq}, journal at {}",
        store.journal.last_seq()
    );
    ensure!(
        indexed as u64 == files && in_tree == files,
        "indexed {indexed}, in tree {in_tree}, corpus {files}"
    );
    let syncfs = store.tree.syncfs_count();
    let store = Arc::into_inner(store);
    if let Some(s) = store {
        s.db.pool.close().await;
    }

    Ok(Round { files, cp_secs, sync_secs, acked_secs, kizuna_secs, user_secs, sys_secs, syncfs })
}

/// This process's user and system CPU time so far (`/proc/self/stat` fields 14 and 15, in clock
/// ticks of 1/100 s on Linux): tells a CPU-bound run from one that waits, and our code's work
/// from the kernel's.
fn process_cpu_secs() -> anyhow::Result<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/self/stat").context("reading /proc/self/stat")?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).context("no ')' in /proc/self/stat")?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).context("short /proc/self/stat");
    // rest starts at field 3 (state), so field 14 (utime) is index 11 and 15 (stime) index 12.
    Ok((ticks(11)? / 100.0, ticks(12)? / 100.0))
}

fn sync() -> anyhow::Result<()> {
    ensure!(Command::new("sync").status().context("running sync")?.success(), "sync failed");
    Ok(())
}

fn count_files(root: &Path) -> anyhow::Result<u64> {
    let mut n = 0;
    let mut stack = vec![root.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)? {
            let e = e?;
            if e.file_type()?.is_dir() {
                stack.push(e.path());
            } else {
                n += 1;
            }
        }
    }
    Ok(n)
}
