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

/// Writes `agent.yaml` in the site's folder with the folders as given (relative ones count from
/// the site's folder, the agent's working directory in these tests).
fn config_with_folders(site: &Site, export: &str, state: &str, store_url: &str) -> std::path::PathBuf {
    let p = site.dir.path().join("agent.yaml");
    let yaml = format!(
        "export_dir: {export}\nstate_dir: {state}\nstore_url: {store_url}\nfacility: \"{FACILITY}\"\n\
         token_file: {token}\nsettle_ms: 200\nrescan_interval_secs: 1\nheartbeat_interval_secs: 1\n\
         retry_base_ms: 100\nretry_max_ms: 1000\n",
        token = site.dir.path().join("token").display(),
    );
    std::fs::write(&p, yaml).unwrap();
    p
}

/// Runs the agent in `cwd`; kills it after `secs` if it has not exited (`None`, with its stderr).
fn run_for(cwd: &std::path::Path, config: &std::path::Path, secs: u64) -> (Option<i32>, String) {
    let mut child = agent_cmd()
        .current_dir(cwd)
        .args(["run", "--config"])
        .arg(config)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let until = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        if std::time::Instant::now() > until {
            child.kill().unwrap();
            child.wait().unwrap();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    (code, err)
}

/// The reviewer's data loss: `export_dir: ./exp5` with `state_dir: exp5/st` (the state folder
/// inside the export folder, written differently). It was accepted; the rescans offered the
/// outbox's files again and deleted them as duplicates of themselves, so all 48 files were gone
/// with nothing uploaded. Now the agent refuses to start (`run` and `status`), naming both keys,
/// and touches nothing.
#[test]
fn state_dir_inside_export_dir_written_differently_is_refused_and_no_file_is_lost() {
    let site = Site::new("127.0.0.1:9".parse().unwrap());
    let cwd = site.dir.path();
    let msg = sample_message();
    std::fs::create_dir(cwd.join("exp5")).unwrap();
    for i in 0..48 {
        std::fs::write(cwd.join("exp5").join(file_name(i)), &msg).unwrap();
    }
    // The store is unreachable: every file must stay, in the export folder or the outbox.
    let config = config_with_folders(&site, "./exp5", "exp5/st", "http://127.0.0.1:9");
    let (code, err) = run_for(cwd, &config, 8);
    let names: Vec<String> = (0..48).map(file_name).collect();
    let left = Site::files_below(&cwd.join("exp5"))
        .iter()
        .filter(|p| p.file_name().is_some_and(|n| names.iter().any(|m| n == m.as_str())))
        .count();
    assert_eq!(left, 48, "files lost: {left} of 48 left (export folder and outbox); stderr: {err}");
    assert_eq!(code, Some(1), "the agent started: {err}");
    assert!(
        err.contains("agent.yaml") && err.contains("state_dir exp5/st lies inside export_dir ./exp5"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(!cwd.join("exp5/st").exists(), "the refused state folder was made");
    let out = agent_cmd().current_dir(cwd).args(["status", "--config"]).arg(&config).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("lies inside export_dir"));
}

/// `state_dir: stbare` (relative, no slash) failed at start with `stbare/log: No such file or
/// directory (os error 2): No such file or directory (os error 2)`: the empty parent of `stbare`
/// was made and fsynced. It is the working directory: the agent starts and delivers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bare_relative_state_dir_is_made_in_the_working_directory() {
    let (store, addr) = start_store().await;
    let site = Site::new(addr);
    let cwd = site.dir.path().to_owned();
    let config = config_with_folders(&site, "export", "stbare", &format!("http://{addr}"));
    let mut child = agent_cmd()
        .current_dir(&cwd)
        .args(["run", "--config"])
        .arg(&config)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    site.drop_file(&file_name(1), &sample_message());
    let delivered = wait_for(15, || store.stored_count() == 1).await;
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let (status, err) = tokio::task::spawn_blocking(move || {
        let mut err = String::new();
        std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
        (child.wait().unwrap(), err)
    })
    .await
    .unwrap();
    assert!(delivered, "nothing delivered: {err}");
    assert!(status.success(), "{err}");
    for sub in ["outbox", "quarantine", "log", "cursor"] {
        assert!(cwd.join("stbare").join(sub).is_dir(), "stbare/{sub} missing");
    }
}

/// A state folder that cannot be made is named once, with the OS error once (it was repeated:
/// `…/log: Not a directory (os error 20): Not a directory (os error 20)`).
#[test]
fn a_state_dir_that_cannot_be_made_is_named_with_the_os_error_once() {
    let site = Site::new("127.0.0.1:9".parse().unwrap());
    let cwd = site.dir.path();
    std::fs::write(cwd.join("afile"), b"not a folder").unwrap();
    let state = cwd.join("afile/st");
    let config = config_with_folders(&site, "export", &state.display().to_string(), "http://127.0.0.1:9");
    let (code, err) = run_for(cwd, &config, 10);
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    // The state folder itself is made first (to hold agent.lock), so it is the one named.
    assert!(err.contains(&format!("state_dir {}: Not a directory", state.display())), "{err}");
    assert_eq!(err.matches("os error").count(), 1, "the OS error is repeated: {err}");
}

/// The default config points at the store as deployed: the centre's address on the upload
/// segment (10.20.1.1, as in the site image's example and docs/walkthrough.md), plain HTTP (the
/// mesh encrypts) on the store's own default port.
#[test]
fn default_store_url_is_the_centres_store_on_the_upload_segment() {
    let out = agent_cmd().arg("--print-default-config").output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let cfg = kizuna_agent::Config::parse(&text, std::path::Path::new("stdout")).unwrap();
    let store_port = kizuna_store::Config::default().listen.port();
    assert_eq!(cfg.store_url, format!("http://10.20.1.1:{store_port}"));
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let image =
        std::fs::read_to_string(root.join("images/rootfs/site/etc/kizuna/agent.yaml.example")).unwrap();
    let walkthrough = std::fs::read_to_string(root.join("docs/walkthrough.md")).unwrap();
    for (what, doc) in [("the site image's agent.yaml.example", image), ("docs/walkthrough.md", walkthrough)]
    {
        assert!(
            doc.contains(&format!("store_url: {}", cfg.store_url)),
            "{what} does not use {}",
            cfg.store_url
        );
    }
}

/// A child process killed (SIGKILL) and reaped when dropped, also when a test fails.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Two agents on one state folder (a `kizuna-agent run` started by hand beside the one netd
/// hosts) both uploaded and deleted the same outbox and rewrote the same cursor files. The second
/// is refused at once, naming the folder, the lock file and the first one's pid; `status` (read
/// only) still works while the first runs; a crash (SIGKILL) of the first frees the folder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_agent_on_the_same_state_dir_is_refused_at_once_and_status_still_works() {
    let (store, addr) = start_store().await;
    // The store is down: the files wait in the outbox, for `status` to count.
    store.down.store(true, Ordering::SeqCst);
    let site = Site::new(addr);
    let config = site.write_config();
    let cwd = site.dir.path().to_owned();
    let mut first = KillOnDrop(
        agent_cmd()
            .args(["run", "--config"])
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let msg = sample_message();
    for i in 0..3 {
        site.drop_file(&file_name(i), &msg);
    }
    let queued = wait_for(20, || Site::files_below(&site.cfg.outbox_dir()).len() == 3).await;
    assert!(queued, "the first agent did not queue the files");

    let (c, cf) = (cwd.clone(), config.clone());
    let (code, err) = tokio::task::spawn_blocking(move || run_for(&c, &cf, 15)).await.unwrap();
    assert_eq!(code, Some(1), "the second agent was not refused: {err}");
    let state = site.cfg.state_dir.display();
    assert!(err.contains(&format!("state_dir {state} is in use by another agent")), "{err}");
    assert!(err.contains(&format!("(pid {})", first.0.id())), "{err}");
    assert!(err.contains("agent.lock"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(Site::files_below(&site.cfg.outbox_dir()).len(), 3, "the refused agent touched the outbox");

    let out = agent_cmd().args(["status", "--config"]).arg(&config).output().unwrap();
    assert!(out.status.success(), "status needs no lock: {}", String::from_utf8_lossy(&out.stderr));
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["queue_depth"], 3);
    assert!(first.0.try_wait().unwrap().is_none(), "the first agent is untouched");

    // SIGKILL: the kernel drops the lock with the process; no stale lock file blocks the next.
    drop(first);
    store.down.store(false, Ordering::SeqCst);
    let (c, cf) = (cwd.clone(), config.clone());
    let next = tokio::task::spawn_blocking(move || run_for(&c, &cf, 8));
    let delivered = wait_for(15, || store.stored_count() == 3).await;
    let (code, err) = next.await.unwrap();
    assert_eq!(code, None, "the next agent did not keep running: {err}");
    assert!(delivered, "the next agent did not deliver: {err}");
}

/// Review finding 8: a missing export folder was reported as `…/nonexist: No such file or
/// directory (os error 2)`, without saying which key named it.
#[test]
fn a_missing_export_dir_is_named_by_its_key() {
    let site = Site::new("127.0.0.1:9".parse().unwrap());
    let cwd = site.dir.path();
    let missing = cwd.join("nonexist");
    let config = config_with_folders(&site, &missing.display().to_string(), "st", "http://127.0.0.1:9");
    let (code, err) = run_for(cwd, &config, 10);
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(&format!("export_dir {}: No such file or directory", missing.display())), "{err}");
}
