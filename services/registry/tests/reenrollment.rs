//! A router enrolled again (a rebuilt centre registry with new keys): it must follow the new
//! registry, not stop on the view the old one signed.

use std::time::Duration;

use netd::registry::watch::Polled;

mod support;
use support::*;

/// `netd enroll` kept the old `view.json`; the first poll re-verified it under the new
/// registry's key, failed, and never asked the new registry (it retried that forever).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_router_enrolled_again_with_another_registry_follows_it() {
    let r1 = Centre::start(None).await;
    let s = enroll_all(&r1, &["centre", "kita-hospital"]).await;
    let kita = &s[1];
    assert!(kita.cfg.view_path().exists());
    // The centre is rebuilt: a new registry, new signing and TLS keys. kita enrolls first, so
    // the registry has no view for it yet.
    let r2 = Centre::start(None).await;
    std::fs::remove_file(kita.cfg.enrollment_path()).unwrap();
    let e = kita.enroll(&r2.token("kita-hospital", 3600).await).await.unwrap();
    assert!(e.view_pending.is_some(), "{e:?}");
    assert!(!kita.cfg.view_path().exists(), "the old registry's view is gone with its enrollment");
    enroll_all(&r2, &["centre"]).await;
    assert!(matches!(kita.poll(Duration::from_secs(5)).await.unwrap(), Polled::Stored { .. }));
    assert_eq!(kita.peers(), ["centre"]);
    assert_eq!(kita.payload().site, "kita-hospital");
}

/// A stored view that does not verify under the enrollment (signed by another key, or damaged)
/// is no floor to keep: the watch logs it and fetches a fresh view instead of stopping.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_view_that_no_longer_verifies_is_replaced_by_a_fresh_one() {
    let c = Centre::start(None).await;
    let s = enroll_all(&c, &["centre", "kita-hospital"]).await;
    let kita = &s[1];
    let (v, _) = kita.view();
    let other = Centre::start(None).await;
    let o = enroll_all(&other, &["centre", "kita-hospital"]).await;
    std::fs::copy(o[1].cfg.view_path(), kita.cfg.view_path()).unwrap();
    assert!(netd::registry::enrollment::view_policy(&kita.cfg).is_err(), "the foreign view is not used");
    assert!(matches!(kita.poll(Duration::ZERO).await.unwrap(), Polled::Stored { .. }));
    assert_eq!(kita.view().0, v);
    // Damaged on disk: the same.
    std::fs::write(kita.cfg.view_path(), b"{\"payload\":").unwrap();
    assert!(matches!(kita.poll(Duration::ZERO).await.unwrap(), Polled::Stored { .. }));
    assert_eq!(kita.view().0, v);
}
