//! The pieces of the crash test: the corpus and what each EHR sends, the centre (`kizuna serve`) and
//! the sites (`kizuna-agent`) as real processes, and the checks' readers.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ssmix2::condition::{Step, Transition, plan};
use ssmix2::{ConditionFlag, FileName};

const NHO_TABLES: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/external/nhoHQ-SSMIX2DataTestingTool/include");

/// The generator's corpus: per facility, storage path → sha256 of the content, and the manifest's
/// flag counts.
pub struct Corpus {
    pub root: PathBuf,
    pub facilities: BTreeMap<String, BTreeMap<String, String>>,
    pub by_flag: BTreeMap<String, u64>,
    pub total: usize,
}

impl Corpus {
    /// Three facilities, 420 people over 2024: a little over 20,000 files.
    pub fn generate(root: &Path) -> Self {
        let mut cfg = synth::GenConfig::new(
            7,
            3,
            420,
            synth::CivilDate::new(2024, 1, 1).unwrap(),
            synth::CivilDate::new(2024, 12, 31).unwrap(),
        );
        cfg.sync = false;
        let summary = synth::generate(&cfg, root, &|_| {}).expect("generate the corpus");
        let manifest: serde_json::Value =
            serde_json::from_slice(&fs::read(root.join("manifest.json")).unwrap()).expect("manifest.json");
        let by_flag = manifest["by_flag"]
            .as_object()
            .expect("manifest by_flag")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
            .filter(|(_, n)| *n > 0)
            .collect();
        let mut facilities = BTreeMap::new();
        for f in &summary.facilities {
            facilities.insert(f.id.clone(), read_tree(&synth::facility_root(root, &f.id)));
        }
        let total = facilities.values().map(|f| f.len()).sum();
        assert_eq!(total as u64, manifest["files"].as_u64().unwrap(), "files vs manifest");
        Self { root: root.to_owned(), facilities, by_flag, total }
    }
}

/// The names the EHR sent, oldest first: every version as `_1` except each key's newest `_0` (the
/// delete message, which marks everything older `_0`). Checked against the generator: planning
/// these sends with `ssmix2::condition::plan` must give exactly the corpus's names.
fn sent_names(final_paths: &[&String]) -> Vec<(String, String)> {
    let mut by_key: BTreeMap<(String, ssmix2::DataKey), Vec<(FileName, String)>> = BTreeMap::new();
    for p in final_paths {
        let (dir, name) = p.rsplit_once('/').unwrap();
        let f: FileName = name.parse().unwrap();
        by_key.entry((dir.to_owned(), f.key())).or_default().push((f, (*p).clone()));
    }
    let mut out = Vec::new();
    for ((dir, _), mut versions) in by_key {
        versions.sort_by_key(|a| a.0.timestamp);
        let delete =
            versions.iter().filter(|(f, _)| f.flag == ConditionFlag::Deleted).map(|(f, _)| f.timestamp).max();
        let sends: Vec<FileName> =
            versions
                .iter()
                .map(|(f, _)| {
                    if Some(f.timestamp) == delete { f.clone() } else { f.with_flag(ConditionFlag::Current) }
                })
                .collect();
        // Replay in send order: the result must be the generator's names.
        let mut listing: Vec<FileName> = Vec::new();
        for s in &sends {
            let Transition::Apply(steps) = plan(&listing, s) else { panic!("{s} planned twice") };
            for step in steps {
                match step {
                    Step::Rename { from, to } => *listing.iter_mut().find(|f| **f == from).unwrap() = to,
                    Step::Write { name } => listing.push(name),
                }
            }
        }
        listing.sort_by_key(|a| a.timestamp);
        let expected: Vec<&FileName> = versions.iter().map(|(f, _)| f).collect();
        assert_eq!(
            listing.iter().collect::<Vec<_>>(),
            expected,
            "sent names of {dir} do not replay to the corpus"
        );
        for (s, (_, final_path)) in sends.iter().zip(&versions) {
            out.push((format!("{dir}/{s}"), final_path.clone()));
        }
    }
    out
}

/// The centre's configuration and its process.
pub struct Centre {
    pub config: kizuna_store::Config,
    config_path: PathBuf,
    log: PathBuf,
}

impl Centre {
    pub fn new(dir: &Path, postgres: Option<String>) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut config = kizuna_store::Config {
            listen: format!("127.0.0.1:{port}").parse().unwrap(),
            data_dir: dir.join("centre"),
            nho_tables: NHO_TABLES.into(),
            ..kizuna_store::Config::default()
        };
        if let Some(server) = postgres {
            config.database_url = fresh_pg_database(&server);
        }
        let config_path = dir.join("store.yaml");
        fs::write(&config_path, serde_norway::to_string(&config).unwrap()).unwrap();
        Self { config, log: dir.join("store.log"), config_path }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.config.listen)
    }

    /// `kizuna site add` for a facility; returns the token it prints.
    pub fn add_site(&self, facility: &str) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_kizuna"))
            .args(["site", "add", &format!("site-{facility}"), "--facility", facility, "--config"])
            .arg(&self.config_path)
            .output()
            .unwrap();
        assert!(out.status.success(), "kizuna site add: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    /// Starts `kizuna serve`; waits until it answers `/healthz` unless `wait` is false.
    pub fn start(&self, wait: bool) -> Proc {
        let child = Command::new(env!("CARGO_BIN_EXE_kizuna"))
            .args(["serve", "--config"])
            .arg(&self.config_path)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(append(&self.log))
            .spawn()
            .expect("start kizuna serve");
        if wait {
            let until = Instant::now() + Duration::from_secs(60);
            while !healthy(&self.config.listen.to_string()) {
                assert!(Instant::now() < until, "the store did not start; {}", tail(&self.log));
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Proc(child)
    }

    pub fn logs_hint(&self, sites: &[Site]) -> String {
        let mut s = format!("store log: {}", tail(&self.log));
        for site in sites {
            s += &format!("\nagent {} log: {}", site.facility, tail(&site.log));
        }
        s
    }
}

/// One facility's EHR, export folder and upload agent.
pub struct Site {
    pub facility: String,
    pub export_dir: PathBuf,
    pub state_dir: PathBuf,
    /// Where the EHR has written what it will export (the sent names), by storage path.
    ehr_dir: PathBuf,
    config_path: PathBuf,
    log: PathBuf,
    proc: Option<Proc>,
}

impl Site {
    pub fn new(dir: &Path, facility: &str, centre: &Centre, corpus: &Corpus) -> Self {
        let site = dir.join("sites").join(facility);
        let (export_dir, state_dir, ehr_dir) = (site.join("export"), site.join("state"), site.join("ehr"));
        fs::create_dir_all(&export_dir).unwrap();
        let finals: Vec<&String> = corpus.facilities[facility].keys().collect();
        let src = synth::facility_root(&corpus.root, facility);
        for (sent, final_path) in sent_names(&finals) {
            let to = ehr_dir.join(&sent);
            fs::create_dir_all(to.parent().unwrap()).unwrap();
            fs::rename(src.join(&final_path), &to).unwrap();
        }
        let token_file = site.join("token");
        {
            use std::os::unix::fs::OpenOptionsExt;
            let mut f =
                fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&token_file).unwrap();
            f.write_all(centre.add_site(facility).as_bytes()).unwrap();
        }
        let config_path = site.join("agent.yaml");
        let yaml = format!(
            "export_dir: {export}\nstate_dir: {state}\nstore_url: {url}\nfacility: \"{facility}\"\n\
             token_file: {token}\nnho_tables_dir: {NHO_TABLES}\nbatch_max_files: 100\nsettle_ms: 100\n\
             rescan_interval_secs: 1\nheartbeat_interval_secs: 5\nretry_base_ms: 50\nretry_max_ms: 400\n\
             request_timeout_secs: 60\n",
            export = export_dir.display(),
            state = state_dir.display(),
            url = centre.url(),
            token = token_file.display(),
        );
        fs::write(&config_path, yaml).unwrap();
        Self {
            facility: facility.to_owned(),
            export_dir,
            state_dir,
            ehr_dir,
            config_path,
            log: site.join("agent.log"),
            proc: None,
        }
    }

    /// Storage paths (sent names) the EHR has yet to export.
    pub fn pending(&self) -> Vec<String> {
        files_below(&self.ehr_dir)
            .iter()
            .map(|p| p.strip_prefix(&self.ehr_dir).unwrap().to_str().unwrap().to_owned())
            .collect()
    }

    /// The EHR exports one file: a rename into the export folder, as EHRs finish their writes.
    pub fn export(&self, rel: &str) {
        let to = self.export_dir.join(rel);
        fs::create_dir_all(to.parent().unwrap()).unwrap();
        fs::rename(self.ehr_dir.join(rel), to).unwrap();
    }

    pub fn start(&mut self, bin: &Path) {
        let child = Command::new(bin)
            .args(["run", "--config"])
            .arg(&self.config_path)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(append(&self.log))
            .spawn()
            .expect("start kizuna-agent");
        self.proc = Some(Proc(child));
    }

    pub fn kill(&mut self) {
        if let Some(p) = self.proc.take() {
            p.kill();
        }
    }

    /// Nothing left in the export folder or the outbox.
    fn done(&self) -> bool {
        files_below(&self.export_dir).is_empty() && files_below(&self.state_dir.join("outbox")).is_empty()
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn all_done(sites: &[Site]) -> bool {
    sites.iter().all(Site::done)
}

/// A child process, SIGKILLed when dropped (so a failing test leaves nothing running).
pub struct Proc(Child);

impl Proc {
    /// SIGKILL, then reap.
    pub fn kill(mut self) {
        self.0.kill().expect("SIGKILL");
        self.0.wait().unwrap();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The upload agent's binary, built like the test's own (same target folder and profile) by
/// `cargo test --workspace --no-run --test store_e2e`, which also builds `kizuna-agent` (a test
/// can only name the binaries of its own crate). Under `cargo nextest run --workspace` this finds it
/// already built.
pub fn agent_binary() -> PathBuf {
    let own = Path::new(env!("CARGO_BIN_EXE_kizuna"));
    let profile_dir = own.parent().unwrap();
    let mut target_dir = profile_dir.parent().unwrap().to_owned();
    let mut target = None;
    if !target_dir.join("CACHEDIR.TAG").exists() && target_dir.parent().unwrap().join("CACHEDIR.TAG").exists()
    {
        // target/<triple>/<profile>
        target = Some(target_dir.file_name().unwrap().to_owned());
        target_dir = target_dir.parent().unwrap().to_owned();
    }
    let profile: &[&str] = match profile_dir.file_name().unwrap().to_str().unwrap() {
        "debug" => &[],
        "release" => &["--release"],
        other => &["--profile", other],
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
    let mut cmd = Command::new(cargo);
    cmd.args(["test", "--workspace", "--no-run", "--test", "store_e2e", "--message-format", "json"])
        .args(profile)
        .arg("--target-dir")
        .arg(&target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stderr(Stdio::inherit());
    if let Some(t) = target {
        cmd.arg("--target").arg(t);
    }
    let out = cmd.output().expect("running cargo to build kizuna-agent");
    assert!(out.status.success(), "building kizuna-agent failed");
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        if msg["reason"] == "compiler-artifact"
            && msg["target"]["name"] == "kizuna-agent"
            && msg["target"]["kind"].as_array().is_some_and(|k| k.iter().any(|k| k == "bin"))
            && let Some(exe) = msg["executable"].as_str()
        {
            return exe.into();
        }
    }
    panic!("cargo did not report the kizuna-agent binary");
}

/// The PostgreSQL server for the second run, or `None` (skip) outside CI without one.
pub fn postgres_server() -> Option<String> {
    kizuna_db::test_postgres_server()
}

/// A new database on the PostgreSQL server; returns its URL.
fn fresh_pg_database(server: &str) -> String {
    tokio::runtime::Runtime::new().unwrap().block_on(kizuna_db::create_test_database(server, "kizuna_crash"))
}

/// The index rows of a facility as storage path → (sha256, flag).
pub async fn index_rows(store: &kizuna_store::Store, facility: &str) -> BTreeMap<String, (String, String)> {
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
            (format!("{dir}/{name}"), (r.get("sha256"), r.get("condition_flag")))
        })
        .collect()
}

/// Every file below `root` as relative path → sha256 (hex) of its content.
pub fn read_tree(root: &Path) -> BTreeMap<String, String> {
    use sha2::Digest;
    files_below(root)
        .into_iter()
        .map(|p| {
            let rel = p.strip_prefix(root).unwrap().to_str().unwrap().to_owned();
            (rel, hex::encode(sha2::Sha256::digest(fs::read(&p).unwrap())))
        })
        .collect()
}

/// Every non-directory below `dir` (none if it does not exist).
pub fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

/// A temp file of the agent (`.kizuna-tmp-…`), the store (`*.tmp`) or any other hidden file.
pub fn is_temp(p: &Path) -> bool {
    let name = p.file_name().unwrap().to_string_lossy();
    name.starts_with('.') || name.ends_with(".tmp")
}

/// Whether `GET /healthz` answers 200.
fn healthy(addr: &str) -> bool {
    let Ok(mut s) = std::net::TcpStream::connect(addr) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n").is_err() {
        return false;
    }
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    buf.starts_with(b"HTTP/1.0 200") || buf.starts_with(b"HTTP/1.1 200")
}

fn append(log: &Path) -> fs::File {
    fs::OpenOptions::new().create(true).append(true).open(log).unwrap()
}

/// The last lines of a log file.
fn tail(log: &Path) -> String {
    let text = fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    format!("{}:\n{}", log.display(), lines[lines.len().saturating_sub(30)..].join("\n"))
}
