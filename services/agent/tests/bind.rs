//! `bind_interface`: upload sockets are bound to the configured device (Linux SO_BINDTODEVICE).
//! Binding needs CAP_NET_RAW on older kernels: without root the test skips, unless `CI` is set.

mod common;

use std::time::Duration;

use common::*;

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_go_through_the_bound_device_only() {
    if !is_root() {
        assert!(std::env::var_os("CI").is_none(), "CI=true: the bind test must run as root");
        eprintln!("skipping: binding to a device needs root");
        return;
    }
    let (store, addr) = start_store().await;
    let msg = sample_message();

    // Bound to a device that does not exist: nothing can leave, and the log says why.
    let mut site = Site::new(addr);
    site.cfg.bind_interface = Some("kzagt-none0".into());
    let agent = Running::start(site.cfg.clone());
    site.drop_file(&file_name(1), &msg);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(store.stored_count(), 0, "an upload bypassed the bound device");
    assert!(wait_for(5, || site.log_lines().iter().any(|l| l["event"] == "upload_failed")).await);
    let failed = site.log_lines().into_iter().find(|l| l["event"] == "upload_failed").unwrap();
    assert!(failed["message"].as_str().unwrap().contains("No such device"), "{failed}");
    agent.stop().await;

    // Bound to the loopback device, which reaches the store: the same outbox is delivered.
    site.cfg.bind_interface = Some("lo".into());
    let agent = Running::start(site.cfg.clone());
    assert!(wait_for(10, || store.stored_count() == 1).await);
    agent.stop().await;
}
