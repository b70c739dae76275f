//! Helpers shared by the monitor's tests: a real store on loopback, the NHO sample message, a real
//! SMTP server (aiosmtpd) writing into a maildir, and polling.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kizuna_store::{FacilityId, Store, sites};

pub const FACILITY: &str = "0411000017";
pub const NAME: &str = "9999013_-_ADT-00_999999999999999_20111220224447339_-_1";

/// The NHO validator's sample ADT message (valid).
pub fn sample() -> Vec<u8> {
    std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/external/nhoHQ-SSMIX2DataTestingTool/sampleData/999/901/9999013/-/ADT-00/",
        "9999013_-_ADT-00_999999999999999_20111220224447339_-_1"
    ))
    .expect("the NHO sample data beside the repository (../shared)")
}

/// The sample with PID-3 naming another patient: `patient-id-mismatch`.
pub fn bad_sample() -> Vec<u8> {
    let s = sample();
    let pat = b"PID|0001||9999013||";
    let at = s.windows(pat.len()).position(|w| w == pat).expect("PID-3 in the sample");
    let mut out = s.clone();
    out[at..at + pat.len()].copy_from_slice(b"PID|0001||9999099||");
    out
}

pub struct RunningStore {
    pub store: Arc<Store>,
    pub base: String,
    pub store_config: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl RunningStore {
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

/// Starts the real store with its data in `dir/centre` and writes its config to `dir/store.yaml`.
pub async fn start_store(dir: &Path) -> RunningStore {
    let config = kizuna_store::Config { data_dir: dir.join("centre"), ..kizuna_store::Config::default() };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    // The store's config names where it listens: the monitor asks its /healthz there.
    let store_config = dir.join("store.yaml");
    std::fs::write(
        &store_config,
        format!("listen: {}\ndata_dir: {}\n", listener.local_addr().unwrap(), dir.join("centre").display()),
    )
    .unwrap();
    let store = Store::open(config).await.expect("open store");
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let s = store.clone();
    let task = tokio::spawn(async move {
        kizuna_store::serve_on(listener, s, async {
            let _ = rx.await;
        })
        .await
        .expect("serve");
    });
    RunningStore { store, base, store_config, stop: Some(tx), task: Some(task) }
}

/// The admin screen, served by `kizuna_monitor::serve_on` until [`RunningMonitor::stop`].
pub struct RunningMonitor {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), kizuna_monitor::MonitorError>>,
}

/// Serves `m` on `listener` in the background.
pub fn serve_monitor(listener: tokio::net::TcpListener, m: Arc<kizuna_monitor::Monitor>) -> RunningMonitor {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(kizuna_monitor::serve_on(listener, m, async {
        let _ = stopped.await;
    }));
    RunningMonitor { stop, task }
}

impl RunningMonitor {
    /// Stops the server and checks that it ended without error.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap().unwrap();
    }
}

/// Adds a site for `facility` and returns its token.
pub async fn add_site(store: &Store, name: &str, facility: &str) -> String {
    sites::add_site(&store.db, name, &[FacilityId::new(facility).unwrap()], &[]).await.unwrap()
}

/// Uploads files straight to the store's API (as an agent would) and returns the report.
pub async fn upload(base: &str, token: &str, files: Vec<(String, Vec<u8>)>) -> kizuna_wire::BatchReport {
    let files: Vec<_> = files.into_iter().map(|(p, c)| kizuna_wire::BatchFile::new(p, c)).collect();
    let r = reqwest::Client::new()
        .post(format!("{base}/api/v1/facilities/{FACILITY}/batches"))
        .bearer_auth(token)
        .header("content-type", kizuna_wire::BATCH_CONTENT_TYPE)
        .body(kizuna_wire::encode_batch(&files))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    r.json().await.unwrap()
}

/// Polls `f` every 100 ms until it returns true or `secs` pass.
pub async fn wait_for<F, Fut>(what: &str, secs: u64, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !f().await {
        assert!(start.elapsed() < Duration::from_secs(secs), "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A real SMTP server (`python3 -m aiosmtpd`, installed by tests/run-all) that writes every mail it
/// accepts into a maildir. Killed on drop.
pub struct Smtp {
    pub port: u16,
    pub maildir: PathBuf,
    child: std::process::Child,
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the SMTP server, or returns `None` (outside CI only) when aiosmtpd is missing.
pub fn start_smtp(dir: &Path) -> Option<Smtp> {
    start_smtp_refusing(dir, &[], None)
}

/// An aiosmtpd server (its `Mailbox` handler, writing into `dir/maildir`) that answers `550` to
/// `RCPT TO` for each address in `refuse`, as a relay does for a mailbox that is gone. On `port`
/// when given (to restart a relay where it was), else on a free one.
pub fn start_smtp_refusing(dir: &Path, refuse: &[&str], port: Option<u16>) -> Option<Smtp> {
    let have = std::process::Command::new("python3")
        .args(["-c", "import aiosmtpd"])
        .status()
        .is_ok_and(|s| s.success());
    if !have {
        assert!(std::env::var("CI").is_err(), "aiosmtpd is required under CI (tests/run-all installs it)");
        eprintln!("SKIP: python3 -m aiosmtpd is not installed (pip install aiosmtpd)");
        return None;
    }
    let port = port
        .unwrap_or_else(|| std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port());
    let maildir = dir.join("maildir");
    let child = std::process::Command::new("python3")
        .args(["-c", SMTP_SERVER, &port.to_string()])
        .arg(&maildir)
        .arg(refuse.join(","))
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start aiosmtpd");
    let smtp = Smtp { port, maildir, child };
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(start.elapsed() < Duration::from_secs(20), "aiosmtpd did not start on port {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
    Some(smtp)
}

/// aiosmtpd's `Mailbox` handler on 127.0.0.1:PORT writing into MAILDIR, refusing the
/// comma-separated addresses of the third argument at `RCPT TO` with `550 5.1.1`.
const SMTP_SERVER: &str = r#"
import sys, threading
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox
port, maildir = int(sys.argv[1]), sys.argv[2]
refuse = {a.lower() for a in sys.argv[3].split(",") if a}
class Handler(Mailbox):
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower() in refuse:
            return "550 5.1.1 no such user " + address
        envelope.rcpt_tos.append(address)
        return "250 OK"
Controller(Handler(maildir), hostname="127.0.0.1", port=port).start()
threading.Event().wait()
"#;

impl Smtp {
    /// Every mail received so far, as text (headers and body), oldest first.
    pub fn mails(&self) -> Vec<String> {
        let mut files: Vec<_> = ["new", "cur"]
            .iter()
            .filter_map(|d| std::fs::read_dir(self.maildir.join(d)).ok())
            .flatten()
            .flatten()
            .map(|e| e.path())
            .collect();
        files.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
        files.iter().map(|p| decode(&std::fs::read_to_string(p).unwrap())).collect()
    }
}

/// Undoes quoted-printable soft line breaks and `=XX` escapes (lettre encodes long lines and
/// non-ASCII that way), so tests can search the text.
fn decode(raw: &str) -> String {
    let joined = raw.replace("=\r\n", "").replace("=\n", "");
    let b = joined.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'=' && i + 2 < b.len() && b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit() {
            out.push(u8::from_str_radix(&joined[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).replace("\r\n", "\n")
}

/// A monitor configuration against the store in `dir`.
pub fn monitor_config(store_config: &Path, smtp_port: Option<u16>) -> kizuna_monitor::Config {
    let mut c = kizuna_monitor::Config {
        store_config: store_config.to_owned(),
        public_url: "http://127.0.0.1:8441".into(),
        ..Default::default()
    };
    c.rules.dead_man.hours = 100.0;
    if let Some(p) = smtp_port {
        c.mail.smtp_host = "127.0.0.1".into();
        c.mail.smtp_port = p;
        c.mail.to = vec!["admin@centre.example".into(), "oncall@centre.example".into()];
        c.mail.from = "kizuna-monitor@centre.example".into();
    }
    c
}

/// Sends a heartbeat as a site's agent would, with `queue_depth` files in its outbox.
pub async fn heartbeat(base: &str, token: &str, queue_depth: u64) {
    let hb = kizuna_wire::Heartbeat {
        agent_version: "0.1.0".into(),
        queue_depth,
        quarantined: 0,
        last_upload: None,
        quarantine: None,
        rerequests_done: vec![],
    };
    let r = reqwest::Client::new()
        .post(format!("{base}/api/v1/heartbeat"))
        .bearer_auth(token)
        .json(&hb)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "heartbeat: {}", r.status());
}

/// Sets when a site was added (to age it past the new-site grace).
pub async fn set_created(store: &Store, site: &str, at: jiff::Timestamp) {
    sqlx::query("UPDATE sites SET created_at = $1 WHERE name = $2")
        .bind(at.to_string())
        .bind(site)
        .execute(&store.db.pool)
        .await
        .unwrap();
}
