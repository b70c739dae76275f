use super::*;

fn lock_path(dir: &tempfile::TempDir) -> PathBuf {
    // A state folder not made yet: the first pass makes it.
    path_in(&dir.path().join("state"))
}

/// A pass finding the lock held waits (it does not fail, nor run beside the holder), names the
/// holder's pid once the notice time has passed, and runs as soon as the holder lets go.
#[tokio::test]
async fn a_pass_waits_for_the_holder_names_its_pid_and_runs_once_it_is_released() {
    let dir = tempfile::tempdir().unwrap();
    let path = lock_path(&dir);
    let first = PassLock::acquire(&path).await.unwrap();
    let pid = std::process::id();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), format!("{pid}\n"));
    let noticed = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = noticed.clone();
    let p = path.clone();
    let second = tokio::spawn(async move {
        PassLock::acquire_with(&p, Duration::from_millis(100), Duration::from_secs(60), move |h| {
            seen.lock().unwrap().push(h)
        })
        .await
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!second.is_finished(), "the second pass ran while the first held the lock");
    assert_eq!(*noticed.lock().unwrap(), vec![Some(pid)], "one notice, naming the holder");
    let released = Instant::now();
    drop(first);
    let second = second.await.unwrap().expect("the lock is free");
    assert!(released.elapsed() < Duration::from_secs(5), "slow to notice the release");
    assert_eq!(noticed.lock().unwrap().len(), 1);
    drop(second);
    // Free again: no stale lock file blocks the next pass.
    let quick = PassLock::acquire_with(&path, Duration::ZERO, Duration::ZERO, |_| panic!("no wait")).await;
    quick.expect("free once both passes are done");
}

/// The wait is bounded: a holder that never lets go makes the pass fail, naming the lock file
/// and the holder, with nothing done.
#[tokio::test]
async fn a_pass_gives_up_after_the_bound_naming_the_lock_and_its_holder() {
    let dir = tempfile::tempdir().unwrap();
    let path = lock_path(&dir);
    let _held = PassLock::acquire(&path).await.unwrap();
    let started = Instant::now();
    let err = PassLock::acquire_with(&path, Duration::from_millis(50), Duration::from_millis(300), |_| {})
        .await
        .expect_err("the lock is held");
    assert!(started.elapsed() >= Duration::from_millis(300));
    let pid = std::process::id();
    assert!(matches!(err, Error::PassBusy { holder: Some(p), .. } if p == pid), "{err:?}");
    let text = err.to_string();
    assert!(text.contains(&path.display().to_string()) && text.contains(&format!("(pid {pid})")), "{text}");
    assert!(text.contains("nothing was changed"), "{text}");
}

/// Without a notice time reached, no notice: a short wait (the usual case, a pass of a few
/// milliseconds) stays quiet.
#[tokio::test]
async fn a_short_wait_logs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = lock_path(&dir);
    let first = PassLock::acquire(&path).await.unwrap();
    let p = path.clone();
    let second = tokio::spawn(async move {
        PassLock::acquire_with(&p, Duration::from_secs(30), Duration::from_secs(60), |_| panic!("noticed"))
            .await
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(first);
    second.await.unwrap().unwrap();
}
