//! Test harness: the real store served over real HTTP on 127.0.0.1 (ephemeral port), with its data
//! folder in a tempdir and its IndexDB in SQLite there or in a fresh database on a real PostgreSQL
//! (`KIZUNA_TEST_POSTGRES_URL`, see tests/pg-setup.sh).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kizuna_store::{Config, FacilityId, Store, sites};
use kizuna_wire::{BATCH_CONTENT_TYPE, BatchFile, BatchReport, encode_batch};

/// Which IndexDB a test runs against.
#[derive(Debug, Clone)]
pub enum Backend {
    Sqlite,
    /// The server URL; each harness makes its own database on it.
    Postgres(String),
}

impl Backend {
    /// The PostgreSQL backend, or `None` (test skipped) when no server is configured outside CI.
    /// Under `CI=true` a missing server is a failure, not a skip.
    pub fn postgres() -> Option<Self> {
        kizuna_db::test_postgres_server().map(Self::Postgres)
    }
}

/// A running store and what the test needs to talk to it.
pub struct Harness {
    pub dir: tempfile::TempDir,
    pub config: Config,
    pub store: Arc<Store>,
    pub base: String,
    pub client: reqwest::Client,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// Makes a fresh database on the PostgreSQL server and returns its URL.
pub async fn fresh_pg_database(server: &str) -> String {
    kizuna_db::create_test_database(server, "kizuna_store_test").await
}

impl Harness {
    /// Starts a store with default settings except what `tweak` changes.
    pub async fn start(backend: &Backend, tweak: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: dir.path().join("data"),
            ..Config::default()
        };
        if let Backend::Postgres(server) = backend {
            config.database_url = fresh_pg_database(server).await;
        }
        tweak(&mut config);
        Self::start_with(dir, config).await
    }

    /// Starts (or restarts) a store on an existing data folder.
    pub async fn start_with(dir: tempfile::TempDir, config: Config) -> Self {
        let store = Store::open(config.clone()).await.expect("open store");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
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
            client: reqwest::Client::new(),
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// Stops the server cleanly and gives back the data folder (for a restart).
    pub async fn stop(mut self) -> (tempfile::TempDir, Config) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.expect("server task");
        }
        self.store.db.pool.close().await;
        (self.dir, self.config)
    }

    pub fn tree(&self) -> PathBuf {
        self.config.tree_dir()
    }

    /// Adds a site and returns its token.
    pub async fn add_site(&self, name: &str, facilities: &[&str], allow: &[&str]) -> String {
        let f: Vec<FacilityId> = facilities.iter().map(|f| FacilityId::new(f).unwrap()).collect();
        let a: Vec<ipnet::IpNet> = allow.iter().map(|c| c.parse().unwrap()).collect();
        sites::add_site(&self.store.db, name, &f, &a).await.expect("add site")
    }

    /// Sends a raw batch body; returns the status and the JSON answer.
    pub async fn post_raw(&self, token: &str, facility: &str, body: Vec<u8>) -> (u16, serde_json::Value) {
        let r = self
            .client
            .post(format!("{}/api/v1/facilities/{facility}/batches", self.base))
            .bearer_auth(token)
            .header("content-type", BATCH_CONTENT_TYPE)
            .body(body)
            .send()
            .await
            .expect("request");
        let status = r.status().as_u16();
        let v = r.json().await.unwrap_or(serde_json::Value::Null);
        (status, v)
    }

    /// Uploads files as one batch and returns the report (panics on a non-200 answer).
    pub async fn upload(&self, token: &str, facility: &str, files: &[BatchFile]) -> BatchReport {
        let (status, v) = self.post_raw(token, facility, encode_batch(files)).await;
        assert_eq!(status, 200, "upload answered {status}: {v}");
        serde_json::from_value(v).expect("batch report")
    }

    /// Sends a heartbeat as the site of `token`: status and body.
    pub async fn post_heartbeat(&self, token: &str, hb: &kizuna_wire::Heartbeat) -> (u16, String) {
        let r = self
            .client
            .post(format!("{}/api/v1/heartbeat", self.base))
            .bearer_auth(token)
            .json(hb)
            .send()
            .await
            .expect("request");
        (r.status().as_u16(), r.text().await.unwrap())
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        let r = self.client.get(format!("{}{path}", self.base)).send().await.expect("request");
        (r.status().as_u16(), r.text().await.unwrap())
    }
}

/// A synthetic corpus: facility ID → (relative SS-MIX2 path → content).
pub struct Corpus {
    pub dir: tempfile::TempDir,
    pub facilities: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
}

/// Generates a small corpus with the project's generator (deterministic for a seed).
pub fn corpus(seed: u64, facilities: u32, patients: u32, bad: u32) -> Corpus {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = synth::GenConfig {
        seed,
        facilities,
        patients,
        from: synth::CivilDate::new(2024, 1, 1).unwrap(),
        to: synth::CivilDate::new(2024, 6, 30).unwrap(),
        bad,
        pharmacies: 0,
        sync: false,
    };
    let summary = synth::generate(&cfg, dir.path(), &|_| {}).expect("generate corpus");
    let mut out = BTreeMap::new();
    for f in &summary.facilities {
        let root = synth::facility_root(dir.path(), &f.id);
        out.insert(f.id.clone(), read_tree(&root));
    }
    Corpus { dir, facilities: out }
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
                let rel = p.strip_prefix(root).unwrap().to_str().unwrap().to_owned();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// Every file below `root`, as paths relative to it (for "nothing outside the root" checks).
pub fn all_files(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}

pub fn batch_files(files: &BTreeMap<String, Vec<u8>>) -> Vec<BatchFile> {
    files.iter().map(|(p, c)| BatchFile::new(p.clone(), c.clone())).collect()
}

/// The index rows of a facility as relative path → (sha256, flag).
pub async fn index_rows(store: &Store, facility: &str) -> BTreeMap<String, (String, String)> {
    use sqlx::Row;
    let rows = sqlx::query(
        "SELECT out_rel_directory, file_name, sha256, condition_flag FROM records WHERE facility_id = $1",
    )
    .bind(facility)
    .fetch_all(&store.db.pool)
    .await
    .unwrap();
    rows.iter()
        .map(|r| {
            let dir: String = r.get("out_rel_directory");
            let name: String = r.get("file_name");
            ((format!("{dir}/{name}")), (r.get::<String, _>("sha256"), r.get::<String, _>("condition_flag")))
        })
        .collect()
}

pub fn sha(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Asserts the index and the tree of `facility` hold exactly the same files with the same content.
pub async fn assert_index_matches_tree(h: &Harness, facility: &str) {
    let tree = read_tree(&h.tree().join(facility));
    let rows = index_rows(&h.store, facility).await;
    let from_tree: BTreeMap<String, (String, String)> =
        tree.iter().map(|(p, c)| (p.clone(), (sha(c), p.rsplit('_').next().unwrap().to_owned()))).collect();
    assert_eq!(rows, from_tree, "index and tree of {facility} differ");
}

pub async fn count(store: &Store, sql: &str) -> i64 {
    use sqlx::Row;
    sqlx::query(sqlx::AssertSqlSafe(sql.to_owned())).fetch_one(&store.db.pool).await.unwrap().get::<i64, _>(0)
}

/// Runs a test case against SQLite and, when configured, PostgreSQL.
#[macro_export]
macro_rules! both_backends {
    ($($case:ident),* $(,)?) => {
        $(
            mod $case {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$case(&super::common::Backend::Sqlite).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if let Some(b) = super::common::Backend::postgres() {
                        super::$case(&b).await
                    }
                }
            }
        )*
    };
}

/// Search rows per indexed file (`facility/dir/name` → rows in drugs, labs, diagnoses,
/// encounters); files without any are left out.
pub async fn search_counts(store: &Store) -> BTreeMap<String, [i64; 4]> {
    use sqlx::Row;
    let mut out: BTreeMap<String, [i64; 4]> = BTreeMap::new();
    for (i, table) in ["drugs", "labs", "diagnoses", "encounters"].into_iter().enumerate() {
        let q = format!(
            "SELECT r.facility_id, r.out_rel_directory, r.file_name, COUNT(*) FROM {table} x \
             JOIN records r ON r.id = x.record_id GROUP BY r.facility_id, r.out_rel_directory, r.file_name"
        );
        for r in sqlx::query(sqlx::AssertSqlSafe(q)).fetch_all(&store.db.pool).await.unwrap() {
            let key =
                format!("{}/{}/{}", r.get::<String, _>(0), r.get::<String, _>(1), r.get::<String, _>(2));
            out.entry(key).or_default()[i] = r.get::<i64, _>(3);
        }
    }
    out
}

/// What [`search_counts`] must be for these files of `facility` (relative path → content), from
/// the store's own extraction.
pub fn extracted_counts(facility: &str, files: &BTreeMap<String, Vec<u8>>) -> BTreeMap<String, [i64; 4]> {
    let mut out = BTreeMap::new();
    for (rel, bytes) in files {
        let name: ssmix2::FileName = rel.rsplit('/').next().unwrap().parse().unwrap();
        let text = ssmix2::hl7::decode_iso2022jp(bytes).unwrap();
        let x = kizuna_store::extract::extract(&ssmix2::hl7::MessageView::parse(&text).unwrap(), &name);
        let n = [x.drugs.len(), x.labs.len(), x.diagnoses.len(), x.encounters.len()].map(|n| n as i64);
        if n.iter().any(|&n| n > 0) {
            out.insert(format!("{facility}/{rel}"), n);
        }
    }
    out
}
