//! Disk full: the state folder on a 1 MiB tmpfs the test mounts (needs root; under `CI=true` a
//! missing root is a failure, elsewhere the test skips).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::Ordering;

use common::*;

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

/// Unmounts the test's tmpfs however the test ends.
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(dir: &Path, size: &str) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "kizuna-agent-test"])
            .arg(dir)
            .output()
            .expect("running mount");
        assert!(out.status.success(), "mount tmpfs: {}", String::from_utf8_lossy(&out.stderr));
        Self(dir.to_owned())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_state_disk_keeps_files_in_export_and_resumes_when_space_returns() {
    if !is_root() {
        assert!(std::env::var_os("CI").is_none(), "CI=true: the disk-full test must run as root");
        eprintln!("skipping: the disk-full test needs root to mount a tmpfs");
        return;
    }
    let (store, addr) = start_store().await;
    store.down.store(true, Ordering::SeqCst);
    let site = Site::new(addr);
    let _mount = Mount::tmpfs(&site.cfg.state_dir, "1m");
    let msg = sample_message();
    let agent = Running::start(site.cfg.clone());
    let n = 400u32;
    for i in 0..n {
        site.drop_file(&format!("d{}/{}", i % 5, file_name(i)), &msg);
    }
    // Each file takes a 4 KiB page on the tmpfs: the outbox fills after about 250.
    // The flag turns before the error is recorded: wait for both.
    let noticed = wait_for(30, || {
        let s = agent.status.get();
        s.disk_full && s.last_error.is_some_and(|e| !e.is_empty())
    });
    assert!(noticed.await, "the agent never noticed the full disk");
    let err = agent.status.get().last_error.unwrap_or_default();
    assert!(err.contains("no space left") && err.contains("export folder"), "unclear error: {err}");
    // Let it keep retrying for a while against the full disk.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let left = Site::files_below(&site.export());
    let queued = Site::files_below(&site.cfg.outbox_dir());
    eprintln!(
        "disk full: {} files queued in the outbox, {} kept in the export folder",
        queued.len(),
        left.len()
    );
    assert!(!left.is_empty() && !queued.is_empty());
    assert_eq!(left.len() + queued.len(), n as usize, "a file was lost or doubled");
    for f in &left {
        assert_eq!(std::fs::read(f).unwrap(), msg, "{} was changed", f.display());
    }
    assert!(queued.iter().all(|f| !f.file_name().unwrap().to_string_lossy().starts_with(".kizuna-tmp-")));
    assert_eq!(agent.status.get().quarantined, 0, "a full disk is not a reason to quarantine");

    // The store comes back, the outbox drains, space returns, and the rest follows by itself.
    store.down.store(false, Ordering::SeqCst);
    assert!(wait_for(60, || store.stored_count() == n as usize).await, "stored {}", store.stored_count());
    assert!(wait_for(10, || Site::files_below(&site.export()).is_empty()).await);
    assert!(wait_for(10, || !agent.status.get().disk_full).await);
    assert!(store.files.lock().unwrap().values().all(|c| *c == msg));
    agent.stop().await;
    let log = site.log_lines();
    assert!(
        log.iter().any(|l| l["event"] == "disk_full" && l["level"] == "ERROR"),
        "the error is not in the agent's log"
    );
    assert!(log.iter().any(|l| l["event"] == "disk_space_back"));
}
