//! The agent against a real HTTP server implementing the store's side of `kizuna-wire`.

mod common;

use std::io::Write;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_dropped_in_nested_folders_are_uploaded_and_leave_the_export_folder() {
    let (store, addr) = start_store().await;
    let site = Site::new(addr);
    let agent = Running::start(site.cfg.clone());
    let msg = sample_message();
    let mut expected = Vec::new();
    for i in 0..30 {
        let name = file_name(i);
        let rel = match i % 3 {
            0 => name.clone(),
            1 => format!("ward-{}/2011/12/{name}", i % 4),
            _ => storage_path(&name),
        };
        site.drop_file(&rel, &msg);
        expected.push(storage_path(&name));
    }
    assert!(wait_for(20, || store.stored_count() == 30).await, "stored {}", store.stored_count());
    let files = store.files.lock().unwrap().clone();
    assert_eq!(files.keys().cloned().collect::<Vec<_>>(), {
        expected.sort();
        expected
    });
    assert!(files.values().all(|c| *c == msg));
    assert!(wait_for(5, || Site::files_below(&site.export()).is_empty()).await, "export folder not emptied");
    assert!(wait_for(5, || agent.status.get().queue_depth == 0).await);
    assert!(Site::files_below(&site.cfg.outbox_dir()).is_empty());
    // The counters and the log line follow the outbox deletion of the last batch.
    assert!(wait_for(5, || agent.status.get().files_uploaded == 30).await);
    assert!(agent.status.get().last_upload.is_some());
    // Heartbeats arrive and say the queue is empty.
    assert!(wait_for(5, || store.heartbeats.lock().unwrap().iter().any(|h| h.queue_depth == 0)).await);
    let logged = || -> u64 {
        site.log_lines()
            .iter()
            .filter(|l| l["event"] == "uploaded")
            .map(|l| l["files"].as_u64().unwrap())
            .sum()
    };
    assert!(wait_for(5, || logged() == 30).await);
    let uploaded = logged();
    assert_eq!(uploaded, 30, "the agent's own log counts every acknowledged file");
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partially_written_file_is_not_uploaded_before_it_is_complete() {
    let (store, addr) = start_store().await;
    let site = Site::new(addr);
    let agent = Running::start(site.cfg.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let msg = sample_message();
    let name = file_name(7);
    let path = site.export().join(&name);
    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(&msg[..msg.len() / 2]).unwrap();
    f.flush().unwrap();
    // Held open for eight times settle_ms: still being written, so it must stay put.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert_eq!(store.stored_count(), 0);
    assert!(path.exists(), "a half-written file was taken from the export folder");
    assert!(Site::files_below(&site.cfg.quarantine_dir()).is_empty(), "a half-written file was quarantined");
    f.write_all(&msg[msg.len() / 2..]).unwrap();
    drop(f);
    assert!(wait_for(10, || store.stored_count() == 1).await);
    assert_eq!(store.files.lock().unwrap()[&storage_path(&name)], msg);
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_files_are_quarantined_with_a_reason_and_reported() {
    let (store, addr) = start_store().await;
    let site = Site::new(addr);
    let agent = Running::start(site.cfg.clone());
    let msg = sample_message();
    site.drop_file("notes/readme.txt", b"hello");
    site.drop_file(&format!("broken/{}", file_name(1)), b"MSH|^~\\&|\x1b$B\xff\xfe");
    let misplaced = format!("999/902/9999013/-/ADT-00/{}", file_name(2));
    site.drop_file(&misplaced, &msg);
    site.drop_file(&file_name(3), &msg);
    assert!(wait_for(20, || store.stored_count() == 1 && agent.status.get().quarantined == 3).await);
    let q = site.cfg.quarantine_dir();
    for (rel, code) in [
        ("notes/readme.txt".to_owned(), "bad-file-name"),
        (format!("broken/{}", file_name(1)), "not-iso-2022-jp"),
        (misplaced.clone(), "path-mismatch"),
    ] {
        assert!(q.join(&rel).is_file(), "{rel} not in quarantine under its relative path");
        let reason: serde_json::Value =
            serde_json::from_slice(&std::fs::read(q.join(format!("{rel}.reason.json"))).unwrap()).unwrap();
        assert_eq!(reason["origin"], "agent");
        let codes: Vec<&str> =
            reason["violations"].as_array().unwrap().iter().map(|v| v["code"].as_str().unwrap()).collect();
        assert!(codes.contains(&code), "{rel}: {codes:?}");
        assert!(!site.export().join(&rel).exists());
    }
    let warned = || -> Vec<serde_json::Value> {
        site.log_lines().into_iter().filter(|l| l["event"] == "quarantined").collect()
    };
    assert!(wait_for(5, || warned().len() == 3).await, "{:?}", warned());
    let warned = warned();
    assert!(warned.iter().all(|l| l["level"] == "WARN"));
    assert!(wait_for(5, || store.heartbeats.lock().unwrap().iter().any(|h| h.quarantined == 3)).await);
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_rejection_moves_the_file_to_quarantine_with_the_stores_reasons() {
    let (store, addr) = start_store().await;
    *store.reject_containing.lock().unwrap() = Some(file_name(5));
    let site = Site::new(addr);
    let agent = Running::start(site.cfg.clone());
    let msg = sample_message();
    for i in 4..7 {
        site.drop_file(&file_name(i), &msg);
    }
    assert!(wait_for(20, || store.stored_count() == 2 && agent.status.get().quarantined == 1).await);
    let rel = format!("rejected/{}", storage_path(&file_name(5)));
    let q = site.cfg.quarantine_dir();
    assert!(q.join(&rel).is_file());
    let reason: serde_json::Value =
        serde_json::from_slice(&std::fs::read(q.join(format!("{rel}.reason.json"))).unwrap()).unwrap();
    assert_eq!(reason["origin"], "store");
    assert_eq!(reason["violations"][0]["code"], "data-type-mismatch");
    assert!(wait_for(5, || Site::files_below(&site.cfg.outbox_dir()).is_empty()).await);
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_are_retried_with_growing_delays() {
    let (store, addr) = start_store().await;
    store.fail_batches.store(4, Ordering::SeqCst);
    let mut site = Site::new(addr);
    site.cfg.retry_base_ms = 200;
    site.cfg.retry_max_ms = 5000;
    let agent = Running::start(site.cfg.clone());
    let msg = sample_message();
    for i in 0..10 {
        site.drop_file(&file_name(i), &msg);
    }
    assert!(wait_for(30, || store.stored_count() == 10).await);
    let attempts = store.attempts.lock().unwrap().clone();
    assert!(attempts.len() >= 5, "{} attempts", attempts.len());
    let gaps: Vec<f64> = attempts.windows(2).take(4).map(|w| (w[1] - w[0]).as_secs_f64()).collect();
    // Delays are drawn from [d/2, d] with d = 200, 400, 800, 1600 ms.
    for (i, (gap, d)) in gaps.iter().zip([0.2, 0.4, 0.8, 1.6]).enumerate() {
        assert!(
            *gap >= d / 2.0 - 0.02 && *gap <= d + 0.5,
            "retry {i}: waited {gap:.3} s for a delay of {d} s"
        );
    }
    assert!(gaps[3] > gaps[0], "delays do not grow: {gaps:?}");
    let failures = site.log_lines().into_iter().filter(|l| l["event"] == "upload_failed").count();
    assert_eq!(failures, 4);
    // Nothing was doubled: each file arrived once, in the batch that succeeded.
    assert_eq!(store.receipts.lock().unwrap().len(), 10);
    agent.stop().await;
}

/// A backlog goes out `upload_concurrency` batches at a time, never more, and every file arrives
/// once: two uploads in flight never carry the same file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_go_out_upload_concurrency_at_a_time_each_file_once() {
    let (store, addr) = start_store().await;
    store.delay_ms.store(300, Ordering::SeqCst);
    let mut site = Site::new(addr);
    site.cfg.batch_max_files = 4;
    site.cfg.upload_concurrency = 3;
    let msg = sample_message();
    // Waiting before the agent starts: one backlog of 10 batches.
    for i in 0..40 {
        site.drop_file(&file_name(i), &msg);
    }
    let agent = Running::start(site.cfg.clone());
    assert!(wait_for(30, || store.stored_count() == 40).await, "{} stored", store.stored_count());
    assert_eq!(store.max_in_flight.load(Ordering::SeqCst), 3, "batches in flight at once");
    let mut receipts = store.receipts.lock().unwrap().clone();
    assert_eq!(receipts.len(), 40, "a file was sent twice");
    receipts.sort();
    receipts.dedup();
    assert_eq!(receipts.len(), 40);
    assert!(wait_for(5, || Site::files_below(&site.cfg.outbox_dir()).is_empty()).await);
    agent.stop().await;

    // One at a time when configured so.
    let (store, addr) = start_store().await;
    store.delay_ms.store(100, Ordering::SeqCst);
    let mut site = Site::new(addr);
    site.cfg.batch_max_files = 4;
    site.cfg.upload_concurrency = 1;
    for i in 0..12 {
        site.drop_file(&file_name(i), &msg);
    }
    let agent = Running::start(site.cfg.clone());
    assert!(wait_for(30, || store.stored_count() == 12).await);
    assert_eq!(store.max_in_flight.load(Ordering::SeqCst), 1);
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rescan_alone_finds_files_when_the_watcher_is_off() {
    let (store, addr) = start_store().await;
    let mut site = Site::new(addr);
    site.cfg.watch = false;
    let agent = Running::start(site.cfg.clone());
    let msg = sample_message();
    tokio::time::sleep(Duration::from_millis(500)).await;
    for i in 0..12 {
        site.drop_file(&format!("late/{}/{}", i % 3, file_name(i)), &msg);
    }
    assert!(
        wait_for(15, || store.stored_count() == 12).await,
        "rescan missed files: {}",
        store.stored_count()
    );
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bandwidth_limit_is_honoured() {
    let (store, addr) = start_store().await;
    let mut site = Site::new(addr);
    let rate = 100_000u64;
    site.cfg.bandwidth_limit_bytes_per_sec = Some(rate);
    site.cfg.batch_max_files = 100;
    let msg = sample_message();
    let n = 400;
    // Files wait in the export folder first so the whole run is one measured stream of batches.
    for i in 0..n {
        site.drop_file(&file_name(i), &msg);
    }
    let agent = Running::start(site.cfg.clone());
    assert!(wait_for(60, || store.stored_count() == n as usize).await);
    let batches = store.batches.lock().unwrap().clone();
    let bytes: usize = batches.iter().map(|b| b.2).sum();
    let first_byte_batch_start = batches.iter().map(|b| b.0).min().unwrap();
    let last_end = batches.iter().map(|b| b.1).max().unwrap();
    let took = (last_end - first_byte_batch_start).as_secs_f64();
    let burst = rate as f64 / 10.0;
    let ideal = (bytes as f64 - burst) / rate as f64;
    let achieved = bytes as f64 / took;
    eprintln!(
        "bandwidth: {bytes} bytes in {took:.2} s = {achieved:.0} B/s (limit {rate}, ideal {ideal:.2} s)"
    );
    assert!(took >= ideal * 0.9, "too fast: {achieved:.0} B/s over a limit of {rate}");
    assert!(took <= ideal * 1.25 + 0.5, "too slow: {achieved:.0} B/s under a limit of {rate}");
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daily_log_is_sent_once_even_across_restarts() {
    let (store, addr) = start_store().await;
    store.fail_daily.store(1, Ordering::SeqCst);
    let site = Site::new(addr);
    // A previous day's log, as the agent wrote it then.
    let log_dir = site.cfg.log_dir();
    std::fs::create_dir_all(&log_dir).unwrap();
    let day = "2020-01-02";
    let lines = [
        r#"{"time":"2020-01-02T09:00:00.000+09:00","level":"INFO","event":"uploaded","message":"batch","files":7}"#,
        r#"{"time":"2020-01-02T09:01:00.000+09:00","level":"WARN","event":"quarantined","message":"x quarantined: bad-file-name"}"#,
        r#"{"time":"2020-01-02T09:02:00.000+09:00","level":"ERROR","event":"disk_full","message":"no space left"}"#,
        r#"{"time":"2020-01-02T09:03:00.000+09:00","level":"WARN","event":"upload_failed","message":"503"}"#,
    ];
    std::fs::write(log_dir.join(format!("{day}.jsonl")), lines.join("\n") + "\n").unwrap();
    let agent = Running::start(site.cfg.clone());
    // The first attempt fails (503); the next check sends it.
    assert!(wait_for(10, || !store.daily_logs.lock().unwrap().is_empty()).await);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    agent.stop().await;
    {
        let logs = store.daily_logs.lock().unwrap();
        assert_eq!(logs.len(), 1, "sent more than once");
        let s = &logs[0];
        assert_eq!(s.date, day);
        assert_eq!((s.files_uploaded, s.files_quarantined, s.upload_errors), (7, 1, 1));
        assert_eq!(s.lines.iter().map(|l| l.level.as_str()).collect::<Vec<_>>(), ["WARN", "ERROR", "WARN"]);
    }
    // Today's log is never sent; a restart does not send the past day again.
    let again = Running::start(site.cfg.clone());
    tokio::time::sleep(Duration::from_millis(2500)).await;
    again.stop().await;
    let logs = store.daily_logs.lock().unwrap();
    assert_eq!(logs.len(), 1, "sent again after a restart");
    let status = kizuna_agent::OfflineStatus::read(&site.cfg).unwrap();
    assert_eq!(status.daily_logs_sent, [day]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_is_resumed_after_a_restart_without_loss() {
    let (store, addr) = start_store().await;
    store.down.store(true, Ordering::SeqCst);
    let site = Site::new(addr);
    let msg = sample_message();
    let agent = Running::start(site.cfg.clone());
    for i in 0..25 {
        site.drop_file(&file_name(i), &msg);
    }
    assert!(wait_for(15, || agent.status.get().queue_depth == 25).await);
    assert!(Site::files_below(&site.export()).is_empty());
    agent.stop().await;
    assert_eq!(Site::files_below(&site.cfg.outbox_dir()).len(), 25, "the outbox must hold every file");
    store.down.store(false, Ordering::SeqCst);
    let started = Instant::now();
    let agent = Running::start(site.cfg.clone());
    assert!(wait_for(20, || store.stored_count() == 25).await);
    eprintln!("resumed 25 files in {:.2} s", started.elapsed().as_secs_f64());
    assert!(wait_for(5, || Site::files_below(&site.cfg.outbox_dir()).is_empty()).await);
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_file_readable_by_others_is_refused() {
    let (_store, addr) = start_store().await;
    let site = Site::new(addr);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&site.cfg.token_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = kizuna_agent::Agent::new(site.cfg.clone())
        .err()
        .expect("a 0644 token file must be refused")
        .to_string();
    assert!(err.contains(&site.cfg.token_file.display().to_string()) && err.contains("0644"), "{err}");
    assert!(!err.contains(TOKEN), "the error leaks the token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_refused_as_too_large_are_split() {
    let (store, addr) = start_store().await;
    store.max_batch_files.store(7, Ordering::SeqCst);
    let site = Site::new(addr);
    let msg = sample_message();
    for i in 0..40 {
        site.drop_file(&file_name(i), &msg);
    }
    let agent = Running::start(site.cfg.clone());
    assert!(wait_for(20, || store.stored_count() == 40).await, "stored {}", store.stored_count());
    assert!(store.batches.lock().unwrap().len() >= 40 / 7);
    assert!(site.log_lines().iter().any(|l| l["event"] == "batch_too_large"));
    assert_eq!(agent.status.get().quarantined, 0);
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_token_is_picked_up_from_the_token_file() {
    let (store, addr) = start_store().await;
    let site = Site::new(addr);
    let agent = Running::start(site.cfg.clone());
    let msg = sample_message();
    site.drop_file(&file_name(1), &msg);
    assert!(wait_for(10, || store.stored_count() == 1).await);
    // The centre rotates the site's token: uploads are refused until the file holds the new one.
    *store.rotated_token.lock().unwrap() = Some("rotated-token-42".into());
    site.drop_file(&file_name(2), &msg);
    assert!(
        wait_for(10, || site
            .log_lines()
            .iter()
            .any(|l| l["event"] == "upload_failed" && l["level"] == "ERROR"))
        .await
    );
    assert_eq!(store.stored_count(), 1);
    let tmp = site.dir.path().join("token.new");
    std::fs::write(&tmp, "rotated-token-42\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::rename(&tmp, &site.cfg.token_file).unwrap();
    assert!(wait_for(10, || store.stored_count() == 2).await, "the new token was not used");
    let logged = site.log_lines().iter().map(|l| l.to_string()).collect::<String>();
    assert!(!logged.contains("rotated-token-42") && !logged.contains(TOKEN), "a token reached the log");
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temp_files_of_a_crash_are_removed_at_start() {
    let (_store, addr) = start_store().await;
    let site = Site::new(addr);
    // What a SIGKILL between a temp file's creation and its rename leaves behind.
    let cursor = site.cfg.cursor_dir().join(".kizuna-tmp-4242-last-upload");
    let reason = site.cfg.quarantine_dir().join("sub/.kizuna-tmp-4242-x.reason.json");
    for f in [&cursor, &reason] {
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, b"half written").unwrap();
    }
    let _agent = kizuna_agent::Agent::new(site.cfg.clone()).unwrap();
    assert!(!cursor.exists(), "cursor temp file left");
    assert!(!reason.exists(), "quarantine temp file left");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_symlinked_folder_in_the_export_folder_is_not_followed() {
    let (store, addr) = start_store().await;
    let site = Site::new(addr);
    // A folder outside the export folder, linked from inside it: the agent moves what it uploads,
    // so following the link would take files from a place it was never given.
    let outside = site.dir.path().join("elsewhere");
    std::fs::create_dir(&outside).unwrap();
    let msg = sample_message();
    std::fs::write(outside.join(file_name(1)), &msg).unwrap();
    std::os::unix::fs::symlink(&outside, site.export().join("linked")).unwrap();
    let agent = Running::start(site.cfg.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Written after the start, where a watch on the link's target would see it.
    std::fs::write(outside.join(file_name(2)), &msg).unwrap();
    site.drop_file(&file_name(3), &msg);
    assert!(wait_for(10, || store.stored_count() == 1).await, "stored {}", store.stored_count());
    // Past the settle time and two rescans.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        store.files.lock().unwrap().keys().cloned().collect::<Vec<_>>(),
        vec![storage_path(&file_name(3))]
    );
    assert!(outside.join(file_name(1)).is_file() && outside.join(file_name(2)).is_file());
    assert!(site.export().join("linked").is_symlink());
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folders_the_agent_emptied_are_removed_once_idle_and_busy_ones_stay() {
    let (store, addr) = start_store().await;
    let mut site = Site::new(addr);
    site.cfg.prune_empty_folders_after_secs = 2;
    let msg = sample_message();
    for i in 0..6 {
        site.drop_file(&storage_path(&file_name(i)), &msg);
    }
    // A hidden folder (the EHR's own work space) and a folder with a file still being written.
    std::fs::create_dir_all(site.export().join(".ehr-work")).unwrap();
    std::fs::create_dir_all(site.export().join("writing")).unwrap();
    std::fs::write(site.export().join("writing").join("x.hl7.part"), b"half").unwrap();
    let agent = Running::start(site.cfg.clone());
    assert!(wait_for(20, || store.stored_count() == 6).await, "stored {}", store.stored_count());
    let folders = || -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(site.export())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    // Emptied, then removed by a rescan once idle for 2 s: the whole patient/date/type chain.
    assert!(Site::files_below(&site.export()).iter().all(|p| p.ends_with("x.hl7.part")));
    assert!(wait_for(15, || folders() == [".ehr-work", "writing"]).await, "left: {:?}", folders());
    // A folder made now, while the agent runs, stays until it has been idle for the grace period.
    let fresh = site.export().join("fresh/20240101");
    std::fs::create_dir_all(&fresh).unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(fresh.is_dir(), "a folder younger than the grace period was removed");
    assert!(wait_for(15, || !site.export().join("fresh").exists()).await, "left: {:?}", folders());
    assert!(site.export().is_dir());
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outbox_file_that_cannot_be_read_is_kept_reported_and_sent_once_readable() {
    let (store, addr) = start_store().await;
    store.down.store(true, Ordering::SeqCst);
    let site = Site::new(addr);
    let msg = sample_message();
    let agent = Running::start(site.cfg.clone());
    let name = file_name(0);
    site.drop_file(&name, &msg);
    assert!(wait_for(15, || agent.status.get().queue_depth == 1).await);
    // Make the waiting file unreadable for a reason other than its absence. Tests may run as root,
    // who reads a mode-000 file, so it is replaced (atomically, so no upload sees it missing) by a
    // symbolic link to itself: reading it fails with ELOOP, as EACCES or EIO would.
    let waiting = site.cfg.outbox_dir().join(&name);
    let aside = site.dir.path().join("aside");
    let link = site.dir.path().join("loop");
    std::fs::hard_link(&waiting, &aside).unwrap();
    std::os::unix::fs::symlink(&waiting, &link).unwrap();
    std::fs::rename(&link, &waiting).unwrap();
    // The store stays down until the agent has met the unreadable file: an attempt that read the
    // file before the swap must not reach a store that is up (under load it did, and was stored).
    let reported =
        || site.log_lines().iter().any(|l| l["event"] == "outbox_unreadable" && l["level"] == "ERROR");
    assert!(wait_for(30, reported).await, "the unreadable outbox file was not reported");
    store.down.store(false, Ordering::SeqCst);
    assert!(std::fs::symlink_metadata(&waiting).is_ok(), "an unreadable outbox file was deleted");
    assert_eq!(agent.status.get().queue_depth, 1, "an unreadable outbox file was forgotten");
    assert_eq!(store.stored_count(), 0);
    // Readable again: sent with a later retry.
    std::fs::rename(&aside, &waiting).unwrap();
    assert!(wait_for(10, || store.stored_count() == 1).await);
    assert_eq!(store.files.lock().unwrap()[&storage_path(&name)], msg);
    assert!(wait_for(5, || agent.status.get().queue_depth == 0).await);
    assert!(Site::files_below(&site.cfg.outbox_dir()).is_empty());
    agent.stop().await;
}

/// Two agents in one process on one state folder (netd hosting one library, a test another):
/// the second `Agent::new` fails at once, naming the folder and this process as the holder,
/// before it touches the folder; once the first has run and stopped, the folder is free again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_agent_in_one_process_is_refused_until_the_first_has_stopped() {
    let (store, addr) = start_store().await;
    store.down.store(true, Ordering::SeqCst);
    let site = Site::new(addr);
    let first = Running::start(site.cfg.clone());
    // A temp file as a crash leaves it: the refused agent must not clean up under the first.
    let temp = site.cfg.cursor_dir().join(".kizuna-tmp-4242-last-upload");
    std::fs::write(&temp, b"half written").unwrap();
    let err = kizuna_agent::Agent::new(site.cfg.clone()).err().expect("two agents opened one state_dir");
    let text = err.to_string();
    assert!(
        text.contains(&format!("state_dir {} is in use by another agent", site.cfg.state_dir.display())),
        "{text}"
    );
    assert!(text.contains(&format!("(pid {})", std::process::id())), "{text}");
    assert!(temp.exists(), "the refused agent removed a temp file in the running agent's folder");
    std::fs::remove_file(&temp).unwrap();
    first.stop().await;
    let again = Running::start(site.cfg.clone());
    again.stop().await;
}

/// Where the sample message can be cut between two segments, near its middle.
fn segment_cut(msg: &[u8]) -> usize {
    msg[..msg.len() / 2].iter().rposition(|b| *b == b'\r').expect("a segment end in the first half") + 1
}

/// Review finding 1: a writer that keeps its file open and pauses longer than `settle_ms` while
/// the agent restarts. The restarted agent finds the file by its start-up rescan with an mtime
/// already older than `settle_ms`; it took it at once, and the store kept the first half as the
/// current version while the rest went into the inode the agent had moved away. Now a file that
/// another process holds open for writing (a read lease cannot be taken) is never taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_held_open_for_writing_across_a_restart_is_taken_whole() {
    let (store, addr) = start_store().await;
    let site = Site::new(addr);
    let agent = Running::start(site.cfg.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let msg = sample_message();
    let cut = segment_cut(&msg);
    let name = file_name(21);
    let path = site.export().join(&name);
    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(&msg[..cut]).unwrap();
    f.flush().unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    agent.stop().await;
    // The writer pauses for 3 s (15 × settle_ms, three rescans); the agent starts again meanwhile.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let agent = Running::start(site.cfg.clone());
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(store.stored_count(), 0, "a file open for writing was uploaded");
    assert!(path.exists(), "a file open for writing was taken from the export folder");
    assert!(
        Site::files_below(&site.cfg.quarantine_dir()).is_empty(),
        "a file open for writing was quarantined"
    );
    f.write_all(&msg[cut..]).unwrap();
    drop(f);
    assert!(wait_for(10, || store.stored_count() == 1).await, "the finished file was not uploaded");
    assert_eq!(store.files.lock().unwrap()[&storage_path(&name)], msg, "not the whole file");
    assert_eq!(agent.status.get().quarantined, 0);
    agent.stop().await;
}

/// Review finding 2: a file written in two open/close steps (the rest appended after a pause
/// shorter than `settle_ms`) was taken at the first close: the first part stored, the rest
/// quarantined. A close now only starts `settle_ms` of waiting for no further change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_appended_after_a_pause_shorter_than_settle_is_taken_whole() {
    let (store, addr) = start_store().await;
    let mut site = Site::new(addr);
    site.cfg.settle_ms = 1000;
    let agent = Running::start(site.cfg.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let msg = sample_message();
    let cut = segment_cut(&msg);
    let name = file_name(22);
    let path = site.export().join(&name);
    std::fs::write(&path, &msg[..cut]).unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    std::fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(&msg[cut..]).unwrap();
    assert!(wait_for(10, || store.stored_count() == 1).await, "nothing uploaded");
    assert_eq!(store.files.lock().unwrap()[&storage_path(&name)], msg, "not the whole file");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(Site::files_below(&site.cfg.quarantine_dir()).is_empty(), "a part was quarantined");
    assert_eq!(agent.status.get().quarantined, 0);
    agent.stop().await;
}

/// Review finding 5: an empty file made first (`touch`, then the content written later) was
/// quarantined as `not-hl7` at its first close. An empty file now waits for content.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_placeholder_is_not_quarantined_before_its_content_arrives() {
    let (store, addr) = start_store().await;
    let site = Site::new(addr);
    let agent = Running::start(site.cfg.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let msg = sample_message();
    let name = file_name(23);
    let path = site.export().join(&name);
    drop(std::fs::File::create(&path).unwrap());
    // Five times settle_ms and one rescan.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(path.exists(), "the empty placeholder was taken");
    assert!(
        Site::files_below(&site.cfg.quarantine_dir()).is_empty(),
        "the empty placeholder was quarantined"
    );
    std::fs::write(&path, &msg).unwrap();
    assert!(wait_for(10, || store.stored_count() == 1).await, "nothing uploaded");
    assert_eq!(store.files.lock().unwrap()[&storage_path(&name)], msg);
    assert_eq!(agent.status.get().quarantined, 0);
    agent.stop().await;
}

/// Review finding 6: a quarantined file, fixed and exported again under the same name, was
/// uploaded but its quarantine entry stayed (count, heartbeat list, and a later re-request would
/// put the bad copy back). Taking the fixed file now retires the stale entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fixed_file_exported_again_retires_its_quarantine_entry() {
    let (store, addr) = start_store().await;
    let site = Site::new(addr);
    let agent = Running::start(site.cfg.clone());
    let msg = sample_message();
    let name = file_name(24);
    let rel = format!("ward/{name}");
    site.drop_file(&rel, b"not an HL7 message");
    assert!(wait_for(10, || agent.status.get().quarantined == 1).await, "not quarantined");
    assert!(site.cfg.quarantine_dir().join(&rel).is_file());
    assert!(
        wait_for(5, || store
            .heartbeats
            .lock()
            .unwrap()
            .iter()
            .any(|h| h.quarantine.as_ref().is_some_and(|q| q.len() == 1)))
        .await
    );
    site.drop_file(&rel, &msg);
    assert!(wait_for(10, || store.stored_count() == 1).await, "the fixed file was not uploaded");
    assert!(wait_for(5, || agent.status.get().quarantined == 0).await, "the stale entry is still counted");
    assert!(Site::files_below(&site.cfg.quarantine_dir()).is_empty(), "the stale entry is still there");
    let heard = store.heartbeats.lock().unwrap().len();
    assert!(
        wait_for(5, || store.heartbeats.lock().unwrap()[heard..]
            .iter()
            .any(|h| h.quarantined == 0 && h.quarantine.as_ref().is_some_and(Vec::is_empty)))
        .await,
        "the heartbeat still lists it"
    );
    assert!(site.log_lines().iter().any(|l| l["event"] == "quarantine_superseded" && l["file"] == rel));
    agent.stop().await;
}
