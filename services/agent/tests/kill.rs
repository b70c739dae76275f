//! The agent binary killed with SIGKILL at random points while uploading: afterwards the store
//! holds every file exactly as exported, and nothing is left behind.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use rand::{Rng, SeedableRng};

fn spawn_agent(config: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_kizuna-agent"))
        .args(["run", "--config"])
        .arg(config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting kizuna-agent")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_points_loses_nothing() {
    let (store, addr) = start_store().await;
    store.delay_ms.store(150, std::sync::atomic::Ordering::SeqCst);
    let mut site = Site::new(addr);
    site.cfg.batch_max_files = 10;
    let config = site.write_config();
    let msg = sample_message();
    let n = 400u32;
    let seed: u64 = rand::rng().random();
    eprintln!("seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut child = spawn_agent(&config);
    let mut dropped = 0;
    for round in 0..20 {
        // Keep exporting while the agent runs, so kills land in intake as well as in uploads.
        for _ in 0..n / 20 {
            site.drop_file(&format!("r{round}/{}", file_name(dropped)), &msg);
            dropped += 1;
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(100..600))).await;
        child.kill().unwrap();
        child.wait().unwrap();
        child = spawn_agent(&config);
    }
    for i in dropped..n {
        site.drop_file(&file_name(i), &msg);
    }
    let done = wait_for(60, || store.stored_count() == n as usize).await;
    // The last agent finishes acknowledging (deleting from its outbox) before it is stopped.
    let drained = wait_for(20, || {
        Site::files_below(&site.cfg.outbox_dir()).is_empty() && Site::files_below(&site.export()).is_empty()
    })
    .await;
    let _ = child.kill();
    let _ = child.wait();
    assert!(done, "stored {} of {n}", store.stored_count());
    assert!(
        drained,
        "files left: export {:?}, outbox {:?}",
        Site::files_below(&site.export()),
        Site::files_below(&site.cfg.outbox_dir())
    );
    let files = store.files.lock().unwrap();
    for i in 0..n {
        assert_eq!(files.get(&storage_path(&file_name(i))), Some(&msg), "file {i}");
    }
    let receipts = store.receipts.lock().unwrap().len();
    eprintln!("{n} files, {receipts} received (re-sent after kills: {})", receipts - n as usize);
    assert!(Site::files_below(&site.export()).is_empty(), "files left in the export folder");
    assert!(Site::files_below(&site.cfg.outbox_dir()).is_empty(), "files left in the outbox");
    assert!(Site::files_below(&site.cfg.quarantine_dir()).is_empty(), "files quarantined");
    let errors: Vec<_> = site.log_lines().into_iter().filter(|l| l["level"] == "ERROR").collect();
    assert!(errors.is_empty(), "errors logged: {errors:?}");
}
