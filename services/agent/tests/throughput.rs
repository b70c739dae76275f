//! Agent throughput: files already in the export folder until the test store acknowledged all of them.
//! Ignored by default (it is a measurement, not a check): run with
//! `cargo test --release -p kizuna-agent --test throughput -- --ignored --nocapture`
//! (`KIZUNA_AGENT_BENCH_FILES` sets the count, default 10000).

mod common;

use std::time::Instant;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement; run explicitly"]
async fn throughput_of_a_waiting_export_folder() {
    let n: u32 =
        std::env::var("KIZUNA_AGENT_BENCH_FILES").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let (store, addr) = start_store().await;
    let mut site = Site::new(addr);
    site.cfg.batch_max_files = 500;
    let msg = sample_message();
    for i in 0..n {
        let name = file_name(i);
        let p = site.export().join(storage_path(&name));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, &msg).unwrap();
    }
    // Files must look settled: their mtime is older than settle_ms.
    std::thread::sleep(std::time::Duration::from_millis(site.cfg.settle_ms + 50));
    let start = Instant::now();
    let agent = Running::start(site.cfg.clone());
    assert!(wait_for(600, || store.stored_count() == n as usize).await);
    let took = start.elapsed().as_secs_f64();
    eprintln!("agent throughput: {n} files in {took:.2} s = {:.0} files/s", n as f64 / took);
    agent.stop().await;
}
