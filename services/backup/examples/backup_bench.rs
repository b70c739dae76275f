//! Backup benchmarks (see README.md, "Benchmarks"). Build once, then run the steps:
//!
//! ```sh
//! cargo build --release -p kizuna-backup --bins --examples
//! B=target/release/examples/backup_bench
//! $B gen-trees /tmp/kzb 1000000        # two identical SS-MIX2-shaped trees + their manifests
//! $B verify-vs-rsync /tmp/kzb          # (a) time and peak memory: verify vs rsync -a --dry-run --delete
//! $B gen-manifests /tmp/kzb10m 10000000 # (b) 10M recorded digests on each side (no files)
//! $B verify-recorded /tmp/kzb10m       # (b) peak memory of verify at 10M
//! $B verify-only /tmp/kzb             # verify alone (stat check), for profiling
//! $B lag 30 1200                       # (c) replication lag p50/p99 under 1,200 files/s for 30 s
//! ```
//!
//! Peak memory is each process's VmHWM (resident high-water mark) from /proc, or GNU time's
//! "Maximum resident set size" for rsync (its largest process).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kizuna_backup::config::{FollowConfig, ReplicaConfig, ReplicaTarget};
use sha2::Digest;

const TOKEN: &str = "bench-token-0123456789abcdef";

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let a = |i: usize| args.get(i).cloned().unwrap_or_default();
    match a(0).as_str() {
        "gen-trees" => gen_trees(Path::new(&a(1)), a(2).parse()?),
        "verify-vs-rsync" => verify_vs_rsync(Path::new(&a(1))),
        "gen-manifests" => gen_manifests(Path::new(&a(1)), a(2).parse()?),
        "verify-recorded" => verify_alone(Path::new(&a(1)), "recorded"),
        "verify-only" => verify_alone(Path::new(&a(1)), "stat"),
        "verify-child" => verify_child(Path::new(&a(1)), &a(2)),
        "lag" => lag(a(1).parse()?, a(2).parse()?),
        _ => {
            anyhow::bail!("usage: backup_bench gen-trees|verify-vs-rsync|gen-manifests|verify-recorded|lag …")
        }
    }
}

/// The SS-MIX2 shape: facility/PID3/PID3/PID/date/type/file; per patient 5 care dates x 2 data
/// types x 1 file (so 1.6 folders per file).
fn file_path(i: u64) -> (String, String) {
    let patient = i / 10;
    let date = (i / 2) % 5;
    let kind = ["OMP-01", "OML-11"][(i % 2) as usize];
    let pid = format!("{:010}", patient + 1);
    let dir = format!("0411000017/{}/{}/{pid}/2024010{}/{kind}", &pid[..3], &pid[3..6], date + 1);
    let name = format!("{pid}_2024010{}_{kind}_{:012}_20240101120000000_01_1", date + 1, i);
    (dir, name)
}

fn content(i: u64) -> Vec<u8> {
    format!("MSH|^~\\&|HIS||||20240101120000||RDE^O11^RDE_O11|{i}|P|2.5||||||~ISO IR87||ISO 2022-1994\rPID|||{i}\r")
        .repeat(4)
        .into_bytes()
}

fn state_dirs(root: &Path) -> (PathBuf, PathBuf) {
    (root.join("primary"), root.join("replica"))
}

fn token_file(dir: &Path) -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join("bench.token");
    std::fs::write(&p, TOKEN)?;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600))?;
    Ok(p)
}

/// Inserts manifest rows (dkey, name, sha, size, mtime) in big transactions.
async fn fill_manifest(
    path: &Path,
    n: u64,
    rows: impl Fn(u64) -> (String, String, String, u64, i64),
) -> anyhow::Result<()> {
    let m = kizuna_backup::manifest::Manifest::open(path, false).await?;
    let mut i = 0;
    while i < n {
        let mut tx = m.pool.begin().await?;
        let end = (i + 100_000).min(n);
        for j in i..end {
            let (dir, name, sha, size, mtime) = rows(j);
            let p = kizuna_backup::paths::TreePath::parse(&format!("{dir}/{name}"))?;
            kizuna_backup::manifest::upsert(
                &mut tx,
                &p,
                &sha,
                size,
                mtime,
                kizuna_backup::manifest::Origin::Journal,
            )
            .await?;
        }
        tx.commit().await?;
        i = end;
        if i % 1_000_000 == 0 {
            eprintln!("  {} rows", i);
        }
    }
    m.pool.close().await;
    Ok(())
}

/// Fixed modification time of every generated file (both trees), so rsync's quick check and the
/// replica's stat check both see unchanged files.
const MTIME_S: u64 = 1_704_067_200;

fn gen_trees(root: &Path, n: u64) -> anyhow::Result<()> {
    let (p, r) = state_dirs(root);
    let started = Instant::now();
    let mtime = std::time::UNIX_EPOCH + Duration::from_secs(MTIME_S);
    // KZB_MANIFESTS_ONLY=1: the files were written by another run (or tools/backup-bench-gen.py).
    let files = std::env::var("KZB_MANIFESTS_ONLY").is_err();
    for i in (0..n).filter(|_| files) {
        let (dir, name) = file_path(i);
        let c = content(i);
        for side in [p.join("store/tree"), r.join("data/tree")] {
            let d = side.join(&dir);
            std::fs::create_dir_all(&d)?;
            let f = std::fs::File::create(d.join(&name))?;
            std::io::Write::write_all(&mut &f, &c)?;
            f.set_modified(mtime)?;
        }
        if i % 100_000 == 0 {
            eprintln!("  {i} files x 2 ({:.0} s)", started.elapsed().as_secs_f64());
        }
    }
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let rows = |i: u64| {
            let (dir, name) = file_path(i);
            let c = content(i);
            (
                dir,
                name,
                hex::encode(sha2::Sha256::digest(&c)),
                c.len() as u64,
                (MTIME_S * 1_000_000_000) as i64,
            )
        };
        fill_manifest(&p.join("state/manifest.sqlite"), n, rows).await
    })?;
    std::fs::create_dir_all(r.join("data/backup"))?;
    std::fs::copy(p.join("state/manifest.sqlite"), r.join("data/backup/manifest.sqlite"))?;
    eprintln!("generated {n} files in each tree in {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}

fn gen_manifests(root: &Path, n: u64) -> anyhow::Result<()> {
    let (p, r) = state_dirs(root);
    let started = Instant::now();
    tokio::runtime::Runtime::new()?.block_on(fill_manifest(&p.join("state/manifest.sqlite"), n, |i| {
        let (dir, name) = file_path(i);
        (dir, name, hex::encode(sha2::Sha256::digest(i.to_be_bytes())), 600, 0)
    }))?;
    std::fs::create_dir_all(r.join("data/backup"))?;
    std::fs::copy(p.join("state/manifest.sqlite"), r.join("data/backup/manifest.sqlite"))?;
    eprintln!("generated {n} manifest rows on each side in {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}

fn peak_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Starts the replica server as its own process and writes a config for the verify child.
fn start_replica(root: &Path) -> anyhow::Result<(std::process::Child, PathBuf)> {
    let (p, r) = state_dirs(root);
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let token = token_file(root)?;
    std::fs::create_dir_all(p.join("store/journal"))?;
    let config = kizuna_backup::Config {
        replica: ReplicaConfig {
            listen: format!("127.0.0.1:{port}").parse()?,
            data_dir: r.join("data"),
            token_file: token.clone(),
            ..Default::default()
        },
        follow: FollowConfig {
            store_data_dir: p.join("store"),
            state_dir: p.join("state"),
            replicas: vec![ReplicaTarget {
                name: "bench".into(),
                url: format!("http://127.0.0.1:{port}"),
                token_file: token,
                ca_file: PathBuf::new(),
            }],
            request_timeout_s: 3600,
            ..Default::default()
        },
    };
    let path = root.join("bench.yaml");
    std::fs::write(&path, serde_norway::to_string(&config)?)?;
    let bin = std::env::current_exe()?
        .parent()
        .and_then(|d| d.parent())
        .map(|d| d.join("kizuna-backup"))
        .expect("target dir");
    let child = Command::new(&bin).arg("serve").arg("--config").arg(&path).stderr(Stdio::null()).spawn()?;
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok((child, path));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    anyhow::bail!("replica server did not start ({})", bin.display())
}

/// Runs the verify child; returns (seconds, its peak KiB, report line).
fn run_verify(config: &Path, check: &str) -> anyhow::Result<(f64, u64, String)> {
    let started = Instant::now();
    let out = Command::new("/usr/bin/time")
        .args(["-f", "MAXRSS_KIB %M"])
        .arg(std::env::current_exe()?)
        .arg("verify-child")
        .arg(config)
        .arg(check)
        .output()?;
    let secs = started.elapsed().as_secs_f64();
    let err = String::from_utf8_lossy(&out.stderr);
    let kib = err
        .lines()
        .find_map(|l| l.strip_prefix("MAXRSS_KIB "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    anyhow::ensure!(out.status.success(), "verify failed: {err}");
    Ok((secs, kib, String::from_utf8_lossy(&out.stdout).trim().to_owned()))
}

fn verify_child(config: &Path, check: &str) -> anyhow::Result<()> {
    let c = kizuna_backup::Config::load(config)?.follow;
    let check = match check {
        "recorded" => kizuna_backup::replica::digests::Check::Recorded,
        "content" => kizuna_backup::replica::digests::Check::Content,
        _ => kizuna_backup::replica::digests::Check::Stat,
    };
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?.block_on(async {
        let primary = std::sync::Arc::new(kizuna_backup::primary::Primary::open(&c).await?);
        let client = kizuna_backup::client::ReplicaClient::new(&c.replicas[0], Duration::from_secs(3600))?;
        let r = kizuna_backup::verify::verify(
            &primary,
            &client,
            kizuna_backup::verify::Options { check, ..Default::default() },
        )
        .await?;
        println!(
            "files {} differences {} requests {} seconds {:.2}",
            r.files, r.differences, r.requests, r.seconds
        );
        anyhow::ensure!(r.clean(), "differences: {:?}", r.findings);
        Ok(())
    })
}

fn verify_vs_rsync(root: &Path) -> anyhow::Result<()> {
    let (p, r) = state_dirs(root);
    // rsync first (its no-change pass over the same pair).
    let started = Instant::now();
    let out = Command::new("/usr/bin/time")
        .args(["-f", "MAXRSS_KIB %M"])
        .args(["rsync", "-a", "--dry-run", "--delete"])
        .arg(format!("{}/", p.join("store/tree").display()))
        .arg(format!("{}/", r.join("data/tree").display()))
        .output()?;
    let rsync_s = started.elapsed().as_secs_f64();
    let err = String::from_utf8_lossy(&out.stderr);
    let rsync_kib: u64 = err
        .lines()
        .find_map(|l| l.strip_prefix("MAXRSS_KIB "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    anyhow::ensure!(out.status.success(), "rsync failed: {err}");
    println!(
        "rsync -a --dry-run --delete: {rsync_s:.1} s, peak {} MiB (largest rsync process)",
        rsync_kib / 1024
    );
    let (mut server, config) = start_replica(root)?;
    let (secs, kib, line) = run_verify(&config, "stat")?;
    let server_kib = peak_kib(server.id());
    server.kill()?;
    server.wait()?;
    println!(
        "kizuna backup verify (stat check): {secs:.1} s, peak {} MiB primary side + {} MiB replica side ({line})",
        kib / 1024,
        server_kib / 1024
    );
    println!(
        "ratio: {:.1}x faster, memory {:.1}% of rsync's",
        rsync_s / secs,
        100.0 * (kib + server_kib) as f64 / rsync_kib.max(1) as f64
    );
    Ok(())
}

/// Verify alone against a replica server started here, with `check` (`stat` or `recorded`):
/// `verify-only` (stat, for profiling without the rsync pass) and `verify-recorded` ((b), 10 M).
fn verify_alone(root: &Path, check: &str) -> anyhow::Result<()> {
    let (mut server, config) = start_replica(root)?;
    let (secs, kib, line) = run_verify(&config, check)?;
    let server_kib = peak_kib(server.id());
    server.kill()?;
    server.wait()?;
    println!(
        "verify ({check} check): {secs:.1} s, peak {} MiB primary side + {} MiB replica side ({line})",
        kib / 1024,
        server_kib / 1024
    );
    Ok(())
}

/// (c): a store, a replica and a follower in this process; uploaders keep `rate` files/s for
/// `secs` seconds; every entry's commit-to-acknowledgement time is collected.
fn lag(secs: u64, rate: u64) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(async move {
        let work = tempfile::tempdir_in("/tmp")?;
        let need = (secs * rate) as usize + 2000;
        eprintln!("generating a corpus of at least {need} files");
        let corpus = work.path().join("corpus");
        let mut patients = 100;
        let (summary, files) = loop {
            let cfg = synth::GenConfig {
                seed: 3,
                facilities: 2,
                patients,
                from: synth::CivilDate::new(2024, 1, 1).unwrap(),
                to: synth::CivilDate::new(2024, 12, 31).unwrap(),
                bad: 0,
                pharmacies: 0,
                sync: false,
            };
            let _ = std::fs::remove_dir_all(&corpus);
            let s = synth::generate(&cfg, &corpus, &|_| {})?;
            let n: usize = s.facilities.iter().map(|f| f.files as usize).sum();
            if n >= need {
                break (s, n);
            }
            patients = patients * need as u32 / n.max(1) as u32 + 10;
        };
        eprintln!("corpus: {files} files");
        let tables = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/external/nhoHQ-SSMIX2DataTestingTool/include");
        let store_cfg = kizuna_store::Config { data_dir: work.path().join("store"), nho_tables: tables.into(), ..Default::default() };
        let store = kizuna_store::Store::open(store_cfg.clone()).await?;
        let ids: Vec<_> = summary.facilities.iter().map(|f| kizuna_store::FacilityId::new(&f.id).unwrap()).collect();
        let token = kizuna_store::sites::add_site(&store.db, "bench", &ids, &[]).await?;
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", l.local_addr()?);
        tokio::spawn(kizuna_store::serve_on(l, store.clone(), std::future::pending()));
        let rdir = work.path().join("replica");
        std::fs::create_dir_all(&rdir)?;
        let tok = token_file(work.path())?;
        let rcfg = ReplicaConfig { data_dir: rdir.join("data"), token_file: tok.clone(), ..Default::default() };
        let rl = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let rurl = format!("http://{}", rl.local_addr()?);
        let rc = rcfg.clone();
        tokio::spawn(async move { kizuna_backup::serve::serve_on(rl, &rc, std::future::pending()).await });
        let fcfg = FollowConfig {
            store_data_dir: store_cfg.data_dir.clone(),
            state_dir: work.path().join("state"),
            replicas: vec![ReplicaTarget { name: "r".into(), url: rurl, token_file: tok, ca_file: PathBuf::new() }],
            ..Default::default()
        };
        let mut follower = kizuna_backup::follow::Follower::open(fcfg).await?;
        let sink = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        follower.latencies = Some(sink.clone());
        let (_stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(follower.run(None, stop_rx));
        // Batches of 50 files, sent on a fixed schedule by 4 uploaders.
        let mut batches = Vec::new();
        for f in &summary.facilities {
            let root = synth::facility_root(&corpus, &f.id);
            let mut all = Vec::new();
            let mut stack = vec![root.clone()];
            while let Some(d) = stack.pop() {
                for e in std::fs::read_dir(&d)? {
                    let e = e?;
                    if e.file_type()?.is_dir() {
                        stack.push(e.path());
                    } else {
                        let rel = e.path().strip_prefix(&root)?.to_str().unwrap().to_owned();
                        all.push(kizuna_wire::BatchFile::new(rel, std::fs::read(e.path())?));
                    }
                }
            }
            all.sort_by(|a, b| a.path.cmp(&b.path));
            for c in all.chunks(50) {
                batches.push((f.id.clone(), kizuna_wire::encode_batch(c), c.len()));
            }
        }
        let per_batch = 50.0;
        let interval = Duration::from_secs_f64(per_batch / rate as f64);
        let client = reqwest::Client::new();
        let started = Instant::now();
        let deadline = started + Duration::from_secs(secs);
        let mut sent = 0usize;
        let mut inflight = tokio::task::JoinSet::new();
        let mut next = Instant::now();
        for (fac, body, n) in batches {
            if Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep_until(next.into()).await;
            next += interval;
            while inflight.len() >= 8 {
                inflight.join_next().await;
            }
            let (c, url, t) = (client.clone(), format!("{base}/api/v1/facilities/{fac}/batches"), token.clone());
            inflight.spawn(async move {
                let r = c.post(url).bearer_auth(t).header("content-type", kizuna_wire::BATCH_CONTENT_TYPE).body(body).send().await;
                assert!(r.is_ok_and(|r| r.status().is_success()), "upload failed");
            });
            sent += n;
        }
        while inflight.join_next().await.is_some() {}
        let took = started.elapsed().as_secs_f64();
        let applied = kizuna_store::journal::read_applied(&store_cfg.journal_dir());
        let wait = Instant::now();
        while sink.lock().unwrap().len() < applied as usize && wait.elapsed() < Duration::from_secs(60) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut l = sink.lock().unwrap().clone();
        l.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let q = |p: f64| l[((l.len() as f64 - 1.0) * p) as usize];
        println!(
            "ingest: {sent} files in {took:.1} s = {:.0} files/s; replicated entries {}; lag p50 {:.3} s, p99 {:.3} s, max {:.3} s",
            sent as f64 / took, l.len(), q(0.5), q(0.99), l[l.len() - 1]
        );
        anyhow::Ok(())
    })
}
