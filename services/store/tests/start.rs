//! Starting the store: one store per data folder (a second start is refused at once, and a crashed
//! holder never blocks the next start), a plain relative `data_dir`, and refused starts that leave
//! the data folder as they found it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use kizuna_store::{Config, Store, StoreError};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Runs `kizuna-store --config CONFIG` (what `kizuna serve` runs) in `cwd`, its stderr in `log`.
fn spawn(cwd: &Path, config: &Path, log: &Path) -> Child {
    let tables =
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/external/nhoHQ-SSMIX2DataTestingTool/include");
    Command::new(env!("CARGO_BIN_EXE_kizuna-store"))
        .arg("--config")
        .arg(config)
        .current_dir(cwd)
        .env("KIZUNA_NHO_TABLES", tables)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("start kizuna-store")
}

fn write_config(path: &Path, port: u16, data_dir: &str) {
    std::fs::write(path, format!("listen: 127.0.0.1:{port}\ndata_dir: '{data_dir}'\n")).unwrap();
}

fn healthy(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else { return false };
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let req = format!("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    let mut answer = String::new();
    s.write_all(req.as_bytes()).is_ok()
        && s.read_to_string(&mut answer).is_ok()
        && answer.starts_with("HTTP/1.1 200")
}

/// Waits until the store answers `/healthz`; panics with its log if it exits or takes a minute.
fn wait_ready(child: &mut Child, port: u16, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("store exited ({status}); its log:\n{}", std::fs::read_to_string(log).unwrap_or_default());
        }
        if healthy(port) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("store did not become ready; its log:\n{}", std::fs::read_to_string(log).unwrap_or_default());
}

/// Waits up to `limit` for the process to exit; kills it and panics if it does not.
fn wait_exit(child: &mut Child, limit: Duration, log: &Path) -> ExitStatus {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().ok();
    child.wait().ok();
    panic!(
        "the second store was not refused within {limit:?}; its log:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

fn stop(mut child: Child) {
    child.kill().ok();
    child.wait().ok();
}

#[test]
fn a_second_store_on_the_same_data_dir_is_refused_at_once_and_a_crash_releases_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (port_a, port_b) = (free_port(), free_port());
    let (a_yaml, b_yaml) = (dir.path().join("a.yaml"), dir.path().join("b.yaml"));
    write_config(&a_yaml, port_a, data.to_str().unwrap());
    write_config(&b_yaml, port_b, data.to_str().unwrap());
    let (a_log, b_log) = (dir.path().join("a.log"), dir.path().join("b.log"));

    let mut a = spawn(dir.path(), &a_yaml, &a_log);
    wait_ready(&mut a, port_a, &a_log);
    assert_eq!(
        std::fs::read_to_string(data.join(kizuna_store::data_lock::LOCK_FILE)).unwrap().trim(),
        a.id().to_string(),
        "the holder's pid is in the lock file"
    );

    // Another port, the same folder: refused at once, naming the folder, the lock and the holder.
    let mut b = spawn(dir.path(), &b_yaml, &b_log);
    let status = wait_exit(&mut b, Duration::from_secs(20), &b_log);
    let said = std::fs::read_to_string(&b_log).unwrap();
    assert_eq!(status.code(), Some(2), "{said}");
    assert!(said.contains(&format!("data_dir {} is in use", data.display())), "{said}");
    assert!(said.contains(&format!("(pid {})", a.id())), "{said}");
    assert!(said.contains("store.lock"), "{said}");
    assert!(!healthy(port_b), "the refused store never served");
    assert!(healthy(port_a), "the first store is untouched");

    // A crash (SIGKILL) releases the lock: the OS holds it, no stale file blocks the next start.
    stop(a);
    let mut b = spawn(dir.path(), &b_yaml, &b_log);
    wait_ready(&mut b, port_b, &b_log);
    stop(b);
}

#[tokio::test]
async fn a_second_store_in_one_process_is_refused_until_the_first_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config { data_dir: dir.path().join("data"), ..Config::default() };
    let first = Store::open(config.clone()).await.unwrap();
    let Err(e) = Store::open(config.clone()).await else { panic!("two stores opened one data_dir") };
    assert!(matches!(e, StoreError::DataDirInUse { holder: Some(p), .. } if p == std::process::id()), "{e}");
    // Readers never take the lock: the viewer and the admin screen open the IndexDB
    // (`kizuna_store::Db::open`), `kizuna site …` too, and the backup reads the journal.
    let reader = kizuna_store::Db::open(&config.effective_database_url()).await.expect("a reader opens");
    assert!(kizuna_store::sites::list_sites(&reader).await.unwrap().is_empty());
    reader.pool.close().await;
    assert!(kizuna_store::journal::JournalReader::new(&config.journal_dir(), 1).poll(10).unwrap().is_empty());
    first.db.pool.close().await;
    drop(first);
    let again = Store::open(config).await.expect("free once the first store is gone");
    again.db.pool.close().await;
}

#[test]
fn a_plain_relative_data_dir_is_below_the_current_directory() {
    for data_dir in ["d", "d/"] {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let yaml = dir.path().join("store.yaml");
        write_config(&yaml, port, data_dir);
        let log = dir.path().join("store.log");
        let mut child = spawn(dir.path(), &yaml, &log);
        wait_ready(&mut child, port, &log);
        stop(child);
        for made in ["tree", "staging", "journal", "index.sqlite", "store.lock"] {
            assert!(dir.path().join("d").join(made).exists(), "data_dir {data_dir:?}: no d/{made}");
        }
    }
}

/// Everything below `dir` (relative paths), or `None` when `dir` does not exist.
fn contents(dir: &Path) -> Option<Vec<PathBuf>> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            out.push(p.strip_prefix(root).unwrap().to_owned());
            if p.is_dir() {
                walk(root, &p, out);
            }
        }
    }
    dir.exists().then(|| {
        let mut out = Vec::new();
        walk(dir, dir, &mut out);
        out
    })
}

/// Runs `kizuna_store::serve` (as `kizuna serve` does), which must fail; returns its message.
async fn refused(config: Config) -> String {
    match tokio::time::timeout(Duration::from_secs(30), kizuna_store::serve(config)).await {
        Ok(Err(e)) => e.to_string(),
        Ok(Ok(())) => panic!("the store started and stopped"),
        Err(_) => panic!("the store started"),
    }
}

fn base() -> Config {
    Config { listen: "127.0.0.1:0".parse().unwrap(), ..Config::default() }
}

#[tokio::test]
async fn a_start_refused_for_a_bad_database_url_creates_no_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let e = refused(Config { data_dir: data.clone(), database_url: "mysql://x/y".into(), ..base() }).await;
    assert!(e.contains("mysql"), "{e}");
    assert_eq!(contents(&data), None, "{e}");
}

#[tokio::test]
async fn a_start_refused_for_a_port_in_use_leaves_an_empty_data_dir_empty() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let e = refused(Config { data_dir: data.clone(), listen: taken.local_addr().unwrap(), ..base() }).await;
    assert!(e.contains(&taken.local_addr().unwrap().to_string()), "{e}");
    assert_eq!(contents(&data), Some(vec![]), "{e}");
}

#[tokio::test]
async fn a_start_refused_for_missing_validator_tables_creates_no_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let tables = dir.path().join("no-such-tables").display().to_string();
    let e = refused(Config { data_dir: data.clone(), nho_tables: tables, ..base() }).await;
    assert!(e.contains("no-such-tables"), "{e}");
    assert_eq!(contents(&data), None, "{e}");
}

#[tokio::test]
async fn a_start_refused_for_an_unreachable_postgres_names_it_and_creates_no_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let t = Instant::now();
    // Nothing listens on port 1.
    let url = "postgres://nobody:sekret@127.0.0.1:1/kizuna";
    let e = refused(Config { data_dir: data.clone(), database_url: url.into(), ..base() }).await;
    assert!(t.elapsed() < Duration::from_secs(15), "{e}");
    assert!(e.contains("127.0.0.1:1/kizuna") && e.contains("refused") && !e.contains("sekret"), "{e}");
    assert_eq!(contents(&data), None, "{e}");
}

/// `kizuna-store --help` prints its usage and a mistyped argument is a usage error: neither starts
/// a store on the defaults (before, both did, creating `./kizuna-data` and taking port 8440).
#[test]
fn help_and_unknown_arguments_start_nothing() {
    let cwd = tempfile::tempdir().unwrap();
    for (args, code) in [(vec!["--help"], 0), (vec!["--confg", "x.yaml"], 2), (vec!["serve"], 2)] {
        let out = Command::new(env!("CARGO_BIN_EXE_kizuna-store"))
            .args(&args)
            .current_dir(cwd.path())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(code), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        let text =
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(text.contains("Usage: kizuna-store"), "{args:?}: {text}");
        assert_eq!(std::fs::read_dir(cwd.path()).unwrap().count(), 0, "{args:?} created files");
    }
}
