//! The IndexDB's filesystem fills up (SQLite on a small tmpfs; needs root to mount it, skipped
//! otherwise): the agent and /healthz are told "database or disk is full", not a broken
//! connection's error; once space returns every write succeeds at once; and a shutdown while
//! writes fail is prompt.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Backend, Harness, batch_files, corpus};
use kizuna_wire::{FileStatus, Heartbeat};

/// A small tmpfs mounted on a folder, unmounted (lazily: the store may still hold files) and the
/// folder removed on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// `None` (test skipped) when mounting is not allowed (not root); under `CI=true` a failure.
    fn mount(dir: &Path, size: &str) -> Option<Self> {
        std::fs::create_dir_all(dir).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = std::fs::remove_dir(dir);
            // CI runs as root: there a test that cannot mount fails instead of passing unseen.
            assert!(
                !std::env::var("CI").is_ok_and(|v| v == "true"),
                "CI=true but mounting a tmpfs failed (needs root)"
            );
            eprintln!("skipping: cannot mount a tmpfs (needs root)");
        }
        ok.then(|| Self(dir.to_owned()))
    }

    /// Fills the filesystem with `filler` until no byte fits.
    fn fill(&self) {
        let mut f = std::fs::File::create(self.0.join("filler")).unwrap();
        while f.write_all(&[0u8; 4096]).is_ok() {}
        while f.write_all(&[0u8; 1]).is_ok() {}
    }

    /// Gives the space back.
    fn free(&self) {
        std::fs::remove_file(self.0.join("filler")).unwrap();
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// A store whose IndexDB lives on its own 4 MiB tmpfs (the data folder does not).
async fn store_on_tmpfs() -> Option<(Tmpfs, Harness)> {
    let mount =
        std::env::temp_dir().join(format!("kizuna-disk-full-{}-{}", std::process::id(), rand_suffix()));
    let fs = Tmpfs::mount(&mount, "4m")?;
    let url = format!("sqlite://{}/index.sqlite", mount.display());
    let h = Harness::start(&Backend::Sqlite, |c| c.database_url = url).await;
    Some((fs, h))
}

fn rand_suffix() -> u32 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos()
}

/// Empties the WAL, so that the next commit has to grow it (a WAL reset after a checkpoint is
/// rewritten in place and would need no new space).
async fn truncate_wal(h: &Harness) {
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").fetch_all(&h.store.db.pool).await.unwrap();
}

async fn heartbeat(h: &Harness, token: &str) -> (u16, String) {
    let hb = Heartbeat {
        agent_version: "0.1.0".into(),
        queue_depth: 0,
        quarantined: 0,
        last_upload: None,
        quarantine: None,
        rerequests_done: vec![],
    };
    h.post_heartbeat(token, &hb).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_index_disk_is_named_and_writes_succeed_once_space_returns() {
    let Some((fs, h)) = store_on_tmpfs().await else { return };
    let c = corpus(41, 1, 2, 0);
    let (fac, files) = c.facilities.iter().next().unwrap();
    let token = h.add_site("s", &[fac], &[]).await;
    truncate_wal(&h).await;
    fs.fill();

    // More failed writes than the pool has connections: each would leave its connection broken.
    for i in 0..8 {
        let (status, body) = heartbeat(&h, &token).await;
        assert_eq!(status, 500, "heartbeat {i}: {body}");
        assert!(body.contains("database or disk is full"), "heartbeat {i} names the cause: {body}");
    }
    let (status, body) = h.get("/healthz").await;
    assert_eq!(status, 503, "{body}");
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["database"], "writes_failing", "{body}");
    let why = health["database_error"].as_str().unwrap_or_default();
    assert!(why.contains("database or disk is full") && why.contains("index.sqlite"), "{body}");

    // An upload while the disk is full waits in the records writer's retries; space returns.
    let upload = {
        let (base, token, fac) = (h.base.clone(), token.clone(), fac.clone());
        let body = kizuna_wire::encode_batch(&batch_files(files));
        tokio::spawn(async move {
            let r = reqwest::Client::new()
                .post(format!("{base}/api/v1/facilities/{fac}/batches"))
                .bearer_auth(token)
                .header("content-type", kizuna_wire::BATCH_CONTENT_TYPE)
                .body(body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        })
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    fs.free();
    let freed = Instant::now();
    let (status, body) = upload.await.unwrap();
    assert_eq!(status, 200, "the upload succeeds once space returns: {body}");
    assert!(freed.elapsed() < Duration::from_secs(10), "promptly: {:?}", freed.elapsed());
    let report: kizuna_wire::BatchReport = serde_json::from_str(&body).unwrap();
    assert!(report.results.iter().all(|r| r.status == FileStatus::Stored), "{report:?}");

    // No connection is left broken: every write after that succeeds, and the store is healthy.
    for i in 0..8 {
        let (status, body) = heartbeat(&h, &token).await;
        assert_eq!(status, 200, "heartbeat {i} after space returned: {body}");
    }
    h.store.search_caught_up().await;
    let (status, body) = h.get("/healthz").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""database":"ok""#), "{body}");
    h.stop().await;
    drop(fs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_while_index_writes_fail_is_prompt() {
    let Some((fs, h)) = store_on_tmpfs().await else { return };
    let c = corpus(42, 1, 2, 0);
    let (fac, files) = c.facilities.iter().next().unwrap();
    let token = h.add_site("s", &[fac], &[]).await;
    truncate_wal(&h).await;
    // The records commit; the disk fills before the search writer (behind the answer) writes.
    let report = h.upload(&token, fac, &batch_files(files)).await;
    assert!(report.results.iter().all(|r| r.status == FileStatus::Stored));
    fs.fill();
    let (status, body) = heartbeat(&h, &token).await;
    assert_eq!(status, 500, "{body}");

    let started = Instant::now();
    let (_dir, _config) = h.stop().await; // panics if the shutdown fails
    assert!(started.elapsed() < Duration::from_secs(10), "shutdown took {:?}", started.elapsed());
    drop(fs);
}
