//! Test harness: a real store (in-process, over HTTP on 127.0.0.1), replicas and followers (in
//! process, or as real `kizuna-backup` processes that a test can SIGKILL), a TCP proxy the test can
//! cut, and the comparisons a user relies on (tree, journal, index).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use kizuna_backup::config::{FollowConfig, ReplicaConfig, ReplicaTarget};
use kizuna_store::{Config as StoreConfig, FacilityId, Store, sites};
use kizuna_wire::{BATCH_CONTENT_TYPE, BatchFile, encode_batch};
use sha2::Digest;

pub fn sha(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

/// The validator tables from the shared folder beside the repository.
pub fn nho_tables() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/external/nhoHQ-SSMIX2DataTestingTool/include")
        .to_owned()
}

/// A synthetic corpus as (facility, batch of files).
pub fn corpus_batches(
    seed: u64,
    facilities: u32,
    patients: u32,
    per_batch: usize,
) -> (tempfile::TempDir, Vec<(String, Vec<BatchFile>)>, usize) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = synth::GenConfig {
        seed,
        facilities,
        patients,
        from: synth::CivilDate::new(2024, 1, 1).unwrap(),
        to: synth::CivilDate::new(2024, 6, 30).unwrap(),
        bad: 0,
        pharmacies: 0,
        sync: false,
    };
    let summary = synth::generate(&cfg, dir.path(), &|_| {}).expect("generate corpus");
    let mut batches = Vec::new();
    let mut total = 0;
    for f in &summary.facilities {
        let files: BTreeMap<String, Vec<u8>> = read_tree(&synth::facility_root(dir.path(), &f.id));
        total += files.len();
        let all: Vec<BatchFile> = files.into_iter().map(|(p, c)| BatchFile::new(p, c)).collect();
        for chunk in all.chunks(per_batch) {
            batches.push((f.id.clone(), chunk.to_vec()));
        }
    }
    // Interleave facilities.
    batches.sort_by_key(|(f, b)| (b.first().map(|x| x.path.clone()), f.clone()));
    (dir, batches, total)
}

/// Every file below `root` as relative path → content.
pub fn read_tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd {
            let e = e.unwrap();
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                stack.push(p);
            } else {
                out.insert(
                    p.strip_prefix(root).unwrap().to_str().unwrap().to_owned(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    out
}

/// Every file below `root` as relative path → sha256.
pub fn tree_digests(root: &Path) -> BTreeMap<String, String> {
    read_tree(root).into_iter().map(|(p, c)| (p, sha(&c))).collect()
}

/// A running primary store.
pub struct Centre {
    pub dir: tempfile::TempDir,
    pub config: StoreConfig,
    pub store: Arc<Store>,
    pub base: String,
    pub token: String,
    pub client: reqwest::Client,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Centre {
    /// Starts a store (SQLite) whose one site may upload for `facilities`.
    pub async fn start(facilities: &[String]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = StoreConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: dir.path().join("data"),
            nho_tables: nho_tables(),
            ..StoreConfig::default()
        };
        Self::start_in(dir, config, facilities).await
    }

    pub async fn start_in(dir: tempfile::TempDir, config: StoreConfig, facilities: &[String]) -> Self {
        let store = Store::open(config.clone()).await.expect("open store");
        let ids: Vec<FacilityId> = facilities.iter().map(|f| FacilityId::new(f).unwrap()).collect();
        let token = if ids.is_empty() {
            String::new()
        } else {
            sites::add_site(&store.db, "clinic", &ids, &[]).await.expect("add site")
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let s = store.clone();
        let task = tokio::spawn(async move {
            kizuna_store::serve_on(listener, s, async {
                let _ = rx.await;
            })
            .await
            .expect("serve");
        });
        Self {
            dir,
            config,
            store,
            base: format!("http://{addr}"),
            token,
            client: reqwest::Client::new(),
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.unwrap();
        }
        self.store.db.pool.close().await;
    }

    pub fn tree(&self) -> PathBuf {
        self.config.tree_dir()
    }

    /// Uploads one batch; panics unless every file is stored or a duplicate.
    pub async fn upload(&self, facility: &str, files: &[BatchFile]) {
        let r = self
            .client
            .post(format!("{}/api/v1/facilities/{facility}/batches", self.base))
            .bearer_auth(&self.token)
            .header("content-type", BATCH_CONTENT_TYPE)
            .body(encode_batch(files))
            .send()
            .await
            .unwrap();
        let status = r.status();
        let body: serde_json::Value = r.json().await.unwrap();
        assert!(status.is_success(), "upload: {status} {body}");
        for res in body["results"].as_array().unwrap() {
            assert!(res["status"] == "stored" || res["status"] == "duplicate", "{res}");
        }
    }

    pub fn applied(&self) -> u64 {
        kizuna_store::journal::read_applied(&self.config.journal_dir())
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Writes a token file (0600) and returns its path.
pub fn token_file(dir: &Path, token: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join("replica.token");
    std::fs::write(&p, token).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p
}

pub const TOKEN: &str = "test-token-0123456789abcdef";

/// A replica's configuration on a fixed port.
pub fn replica_config(dir: &Path, port: u16) -> ReplicaConfig {
    std::fs::create_dir_all(dir).unwrap();
    ReplicaConfig {
        listen: format!("127.0.0.1:{port}").parse().unwrap(),
        data_dir: dir.join("data"),
        token_file: token_file(dir, TOKEN),
        ..ReplicaConfig::default()
    }
}

/// A follower's configuration for `centre` shipping to `replicas` (name, url).
pub fn follow_config(centre: &Centre, state: &Path, replicas: &[(&str, String)]) -> FollowConfig {
    std::fs::create_dir_all(state).unwrap();
    let token = token_file(state, TOKEN);
    FollowConfig {
        store_data_dir: centre.config.data_dir.clone(),
        state_dir: state.to_owned(),
        metrics_listen: format!("127.0.0.1:{}", free_port()).parse().unwrap(),
        replicas: replicas
            .iter()
            .map(|(n, u)| ReplicaTarget {
                name: (*n).into(),
                url: u.clone(),
                token_file: token.clone(),
                ca_file: PathBuf::new(),
            })
            .collect(),
        retry_min_ms: 50,
        retry_max_ms: 1000,
        request_timeout_s: 10,
        batch_max_entries: 200,
        ..FollowConfig::default()
    }
}

/// An in-process replica server.
pub struct ReplicaServer {
    pub config: ReplicaConfig,
    pub url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl ReplicaServer {
    pub async fn start(dir: &Path) -> Self {
        Self::start_with(replica_config(dir, 0)).await
    }

    /// A replica on a configuration the test adjusted (from `replica_config`; its port is ignored).
    pub async fn start_with(config: ReplicaConfig) -> Self {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let scheme = if config.tls() { "https" } else { "http" };
        let url = format!("{scheme}://{}", l.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let c = config.clone();
        let task = tokio::spawn(async move {
            kizuna_backup::serve::serve_on(l, &c, async {
                let _ = rx.await;
            })
            .await
            .expect("replica serve");
        });
        Self { config, url, stop: Some(tx), task: Some(task) }
    }

    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap();
    }

    pub fn tree(&self) -> PathBuf {
        self.config.data_dir.join("tree")
    }
}

/// An in-process follower.
pub struct FollowerTask {
    pub metrics: Arc<kizuna_backup::follow::metrics::Metrics>,
    /// The follower's own view of the primary (its manifest), for verifications beside it.
    pub primary: Arc<kizuna_backup::primary::Primary>,
    pub metrics_url: String,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl FollowerTask {
    pub async fn start(config: FollowConfig) -> Self {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let metrics_url = format!("http://{}/metrics", l.local_addr().unwrap());
        let f = kizuna_backup::follow::Follower::open(config).await.expect("follower");
        let (metrics, primary) = (f.metrics.clone(), f.primary.clone());
        let (tx, rx) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move { f.run(Some(l), rx).await.expect("follower run") });
        Self { metrics, primary, metrics_url, stop: tx, task }
    }

    pub async fn stop(self) {
        let _ = self.stop.send(true);
        self.task.await.unwrap();
    }
}

/// Runs `kizuna-backup serve|follow --config FILE` as a real process (log next to the config).
pub fn spawn_process(cmd: &str, config_path: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_kizuna-backup"))
        .arg(cmd)
        .arg("--config")
        .arg(config_path)
        .env("RUST_LOG", "info")
        .env("KIZUNA_NHO_TABLES", nho_tables())
        .stdout(Stdio::null())
        .stderr(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(config_path.with_extension("log"))
                .unwrap(),
        )
        .spawn()
        .expect("start kizuna-backup")
}

/// Writes a backup configuration file with these sections.
pub fn write_config(path: &Path, replica: Option<&ReplicaConfig>, follow: Option<&FollowConfig>) {
    let c = kizuna_backup::Config {
        replica: replica.cloned().unwrap_or_default(),
        follow: follow.cloned().unwrap_or_default(),
    };
    std::fs::write(path, serde_norway::to_string(&c).unwrap()).unwrap();
}

/// The replica's acknowledged journal position, asked over HTTP (None while unreachable).
pub async fn replica_applied(url: &str) -> Option<u64> {
    let r = reqwest::Client::new()
        .get(format!("{url}/api/v1/state"))
        .bearer_auth(TOKEN)
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .ok()?;
    let v: serde_json::Value = r.json().await.ok()?;
    v["applied_seq"].as_u64()
}

/// Waits until `cond` holds, or panics with `what` after `secs`.
pub async fn wait_until<F, Fut>(secs: u64, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if cond().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out after {secs} s waiting for: {what}");
}

/// A TCP proxy on 127.0.0.1 the test can cut (every connection dropped, new ones refused).
pub struct Proxy {
    pub addr: SocketAddr,
    cut: Arc<AtomicBool>,
    generation: tokio::sync::watch::Sender<u64>,
}

impl Proxy {
    pub async fn start(target: SocketAddr) -> Self {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let cut = Arc::new(AtomicBool::new(false));
        let (generation, _) = tokio::sync::watch::channel(0u64);
        let (c, g) = (cut.clone(), generation.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = l.accept().await else { continue };
                if c.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let mut rx = g.subscribe();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await else { return };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = rx.changed() => {}
                    }
                });
            }
        });
        Self { addr, cut, generation }
    }

    /// Drops every connection and refuses new ones until [`Proxy::restore`].
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }

    pub fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

/// A TCP proxy on 127.0.0.1 that holds every `POST /api/v1/batches` request for `delay` before
/// passing it on (other requests, such as digests and state, pass at once): a follower shipping
/// through it keeps its replica `delay` behind the primary while uploads flow.
pub async fn delaying_proxy(target: SocketAddr, delay: Duration) -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((inbound, _)) = l.accept().await else { continue };
            tokio::spawn(async move {
                let Ok(outbound) = tokio::net::TcpStream::connect(target).await else { return };
                let (mut in_r, mut in_w) = inbound.into_split();
                let (mut out_r, mut out_w) = outbound.into_split();
                let up = async move {
                    let mut buf = vec![0u8; 64 << 10];
                    loop {
                        let n = match in_r.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        let chunk = &buf[..n];
                        // A batch's request line comes first in its first chunk; its body follows.
                        if chunk.starts_with(b"POST /api/v1/batches") {
                            tokio::time::sleep(delay).await;
                        }
                        if out_w.write_all(chunk).await.is_err() {
                            break;
                        }
                    }
                    let _ = out_w.shutdown().await;
                };
                let down = async move {
                    let _ = tokio::io::copy(&mut out_r, &mut in_w).await;
                    let _ = in_w.shutdown().await;
                };
                tokio::join!(up, down);
            });
        }
    });
    addr
}

/// The index of a store as comparable rows: one per record with its search-row counts.
pub async fn index_rows(pool: &sqlx::AnyPool) -> Vec<String> {
    use sqlx::Row;
    let rows = sqlx::query(
        "SELECT r.facility_id, r.out_rel_directory, r.file_name, r.sha256, r.condition_flag, r.processing_type, \
         r.patient_id, r.journal_seq, r.received_at, r.update_datetime, r.site, r.message_type, \
         (SELECT count(*) FROM drugs d WHERE d.record_id = r.id) AS drugs, \
         (SELECT count(*) FROM labs l WHERE l.record_id = r.id) AS labs, \
         (SELECT count(*) FROM diagnoses g WHERE g.record_id = r.id) AS diagnoses, \
         (SELECT count(*) FROM encounters e WHERE e.record_id = r.id) AS encounters \
         FROM records r ORDER BY r.facility_id, r.out_rel_directory, r.file_name",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    rows.iter()
        .map(|r| {
            format!(
                "{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}",
                r.get::<String, _>(0),
                r.get::<String, _>(1),
                r.get::<String, _>(2),
                r.get::<String, _>(3),
                r.get::<String, _>(4),
                r.get::<String, _>(5),
                r.get::<String, _>(6),
                r.get::<i64, _>(7),
                r.get::<String, _>(8),
                r.get::<String, _>(9),
                r.get::<String, _>(10),
                r.get::<String, _>(11),
                r.get::<i64, _>(12),
                r.get::<i64, _>(13),
                r.get::<i64, _>(14),
                r.get::<i64, _>(15)
            )
        })
        .collect()
}

/// Every journal entry in `dir`, as JSON text.
pub fn journal_entries(dir: &Path) -> Vec<String> {
    let mut r = kizuna_store::journal::JournalReader::new(dir, 1);
    let mut out = Vec::new();
    loop {
        let got = r.poll(10_000).unwrap();
        if got.is_empty() {
            return out;
        }
        out.extend(got.iter().map(|e| serde_json::to_string(e).unwrap()));
    }
}

/// Waits until the trees under `a` and `b` hold the same files with the same contents; on
/// timeout, panics naming the paths that differ.
pub async fn wait_same_trees(secs: u64, what: &str, a: &std::path::Path, b: &std::path::Path) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let (da, db) = (tree_digests(a), tree_digests(b));
        if da == db {
            return;
        }
        if Instant::now() >= deadline {
            let mut diff: Vec<String> = Vec::new();
            for (p, d) in &da {
                if db.get(p) != Some(d) {
                    diff.push(format!(
                        "{p}: {} vs {:?}",
                        &d[..8.min(d.len())],
                        db.get(p).map(|x| &x[..8.min(x.len())])
                    ));
                }
            }
            for p in db.keys().filter(|p| !da.contains_key(*p)) {
                diff.push(format!("{p}: only in {}", b.display()));
            }
            panic!(
                "timed out after {secs} s waiting for: {what}; {} paths differ: {:?}",
                diff.len(),
                &diff[..diff.len().min(20)]
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
