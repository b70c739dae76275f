//! The `kizuna-agent` binary's commands.

mod common;

use std::process::Command;
use std::sync::atomic::Ordering;

use common::*;

fn agent_cmd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kizuna-agent"))
}

#[test]
fn print_default_config_is_a_loadable_config() {
    let out = agent_cmd().arg("--print-default-config").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let cfg = kizuna_agent::Config::parse(&text, std::path::Path::new("stdout")).unwrap();
    assert_eq!(cfg.settle_ms, 2000);
}

#[test]
fn bad_config_fails_with_one_line_naming_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("agent.yaml");
    std::fs::write(&p, kizuna_agent::DEFAULT_CONFIG.replace("settle_ms: 2000", "settle_ms: soon")).unwrap();
    let out = agent_cmd().args(["run", "--config"]).arg(&p).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("agent.yaml") && err.contains("settle_ms"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reports_the_waiting_outbox() {
    let (store, addr) = start_store().await;
    store.down.store(true, Ordering::SeqCst);
    let site = Site::new(addr);
    let agent = Running::start(site.cfg.clone());
    let msg = sample_message();
    for i in 0..6 {
        site.drop_file(&file_name(i), &msg);
    }
    site.drop_file("bad-name", &msg);
    assert!(
        wait_for(10, || agent.status.get().queue_depth == 6 && agent.status.get().quarantined == 1).await
    );
    agent.stop().await;
    let config = site.write_config();
    let out = agent_cmd().args(["status", "--config"]).arg(&config).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["queue_depth"], 6);
    assert_eq!(status["quarantined"], 1);
    assert!(status["last_upload"].is_null());
}

#[test]
fn bind_interface_flag_naming_a_missing_device_fails_at_once_naming_it() {
    let site = Site::new("127.0.0.1:9".parse().unwrap());
    let config = site.write_config();
    let out = agent_cmd()
        .args(["run", "--config"])
        .arg(&config)
        .args(["--bind-interface", "kzagt-nosuch"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("--bind-interface kzagt-nosuch") && err.contains("no such network device"), "{err}");
}

/// The config binds to a device that does not exist (nothing could leave through it); the flag's
/// device replaces it, so the file reaches the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bind_interface_flag_overrides_the_config() {
    let (store, addr) = start_store().await;
    let mut site = Site::new(addr);
    site.cfg.bind_interface = Some("kzagt-none0".into());
    let config = site.write_config();
    let mut child = agent_cmd()
        .args(["run", "--config"])
        .arg(&config)
        .args(["--bind-interface", "lo"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    site.drop_file(&file_name(1), &sample_message());
    let delivered = wait_for(15, || store.stored_count() == 1).await;
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let out = tokio::task::spawn_blocking(move || {
        let mut err = String::new();
        std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
        (child.wait().unwrap(), err)
    })
    .await
    .unwrap();
    assert!(delivered, "the flag's device was not used: {}", out.1);
    assert!(out.0.success(), "{}", out.1);
    assert!(out.1.contains("bind_interface from --bind-interface"), "{}", out.1);
}
