//! Verification while uploads flow. The replica trails the primary (here by at least the time a
//! delaying proxy holds each batch): files the store wrote after the replica's applied entry, and
//! files others wrote after its foreign-log position, are in flight, not differences. A verify
//! during traffic must find a healthy replica clean, and must still name what really differs.

mod centre;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use centre::*;
use kizuna_backup::client::ReplicaClient;
use kizuna_backup::config::{FollowConfig, ReplicaTarget};
use kizuna_backup::replica::digests::Check;
use kizuna_backup::verify::{Options, Report, verify};
use kizuna_wire::BatchFile;

/// How long the proxy holds every batch on its way to the replica.
const SHIP_DELAY: Duration = Duration::from_millis(400);

struct Live {
    _corpus: tempfile::TempDir,
    centre: Centre,
    _work: tempfile::TempDir,
    replica: ReplicaServer,
    config: FollowConfig,
    follower: FollowerTask,
    /// Batches still to upload (the traffic).
    traffic: Vec<(String, Vec<BatchFile>)>,
}

/// A store with a third of a corpus replicated, the follower shipping through a delaying proxy
/// (scheduled verify every `verify_interval_s`, 0 = off); the rest of the corpus is the traffic.
async fn live(verify_interval_s: u64) -> Live {
    let (corpus, batches, _) = corpus_batches(23, 2, 40, 4);
    let facilities: Vec<String> =
        batches.iter().map(|(f, _)| f.clone()).collect::<BTreeSet<_>>().into_iter().collect();
    let centre = Centre::start(&facilities).await;
    let first = batches.len() / 3;
    for (f, b) in &batches[..first] {
        centre.upload(f, b).await;
    }
    let work = tempfile::tempdir().unwrap();
    let replica = ReplicaServer::start(&work.path().join("r")).await;
    let proxy = delaying_proxy(replica.url.trim_start_matches("http://").parse().unwrap(), SHIP_DELAY).await;
    let mut config = follow_config(&centre, &work.path().join("state"), &[("r", format!("http://{proxy}"))]);
    config.verify.interval_s = verify_interval_s;
    config.watch.settle_ms = 100;
    let follower = FollowerTask::start(config.clone()).await;
    let applied = centre.applied();
    wait_until(60, "replica catches up", || async { replica_applied(&replica.url).await == Some(applied) })
        .await;
    Live {
        _corpus: corpus,
        centre,
        _work: work,
        replica,
        config,
        follower,
        traffic: batches[first..].to_vec(),
    }
}

impl Live {
    /// A client that talks to the replica directly (not through the delaying proxy).
    fn direct(&self) -> ReplicaClient {
        let target = ReplicaTarget {
            name: "r".into(),
            url: self.replica.url.clone(),
            token_file: self.config.replicas[0].token_file.clone(),
            ca_file: std::path::PathBuf::new(),
        };
        ReplicaClient::new(&target, Duration::from_secs(30)).unwrap()
    }

    /// Uploads the traffic (a batch every 25 ms or so), then sets `done`.
    async fn upload_traffic(&self, done: &AtomicBool) {
        for (f, b) in &self.traffic {
            self.centre.upload(f, b).await;
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        done.store(true, Ordering::SeqCst);
    }

    /// Files others write into the primary's tree meanwhile (one every 150 ms until `done`).
    async fn write_foreign(&self, done: &AtomicBool) -> usize {
        let dir = self.centre.tree().join(&self.traffic[0].0).join("scanned-documents");
        std::fs::create_dir_all(&dir).unwrap();
        let mut n = 0;
        while !done.load(Ordering::SeqCst) {
            std::fs::write(dir.join(format!("doc-{n:04}.pdf")), format!("scanned page {n}\n").repeat(40))
                .unwrap();
            n += 1;
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        n
    }

    async fn stop(self) {
        self.follower.stop().await;
        self.replica.stop().await;
        self.centre.stop().await;
    }
}

fn brief(r: &Report) -> String {
    format!(
        "{} differences (primary at {}, replica at {}), first: {:?}",
        r.differences,
        r.primary_seq,
        r.replica_seq,
        &r.findings[..r.findings.len().min(5)]
    )
}

/// A healthy replica that trails the primary by the shipping delay: every verify run during the
/// uploads (direct ones, and the follower's scheduled one) reports no difference.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_verify_while_uploads_flow_finds_a_trailing_healthy_replica_clean() {
    let _ = tracing_subscriber::fmt().with_env_filter("kizuna_backup=info").with_test_writer().try_init();
    let live = live(1).await;
    let (primary, client) = (live.follower.primary.clone(), live.direct());
    let label = kizuna_backup::follow::metrics::Metrics::label("r");
    let m = live.follower.metrics.clone();
    let done = AtomicBool::new(false);
    let checks = async {
        let mut reports = Vec::new();
        tokio::time::sleep(Duration::from_millis(300)).await;
        while !done.load(Ordering::SeqCst) {
            reports.push(verify(&primary, &client, Options::default()).await.unwrap());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        reports
    };
    // The follower's scheduled verify (every second), watched on its metrics meanwhile.
    let scheduled = async {
        let (mut runs, mut worst, mut failed) = (BTreeSet::new(), 0i64, false);
        while !done.load(Ordering::SeqCst) {
            let ts = m.verify_timestamp.get_or_create(&label).get();
            if ts > 0 {
                runs.insert(ts);
                worst = worst.max(m.verify_differences.get_or_create(&label).get());
                failed |= m.verify_result.get_or_create(&label).get() == -1;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        (runs, worst, failed)
    };
    let (_, foreign, reports, (runs, worst, failed)) =
        tokio::join!(live.upload_traffic(&done), live.write_foreign(&done), checks, scheduled);
    assert!(foreign > 5, "others wrote {foreign} files during the uploads");
    assert!(reports.len() >= 2, "only {} verifications ran during the uploads", reports.len());
    for (i, r) in reports.iter().enumerate() {
        assert!(r.clean(), "verify {i} during uploads: {}", brief(r));
    }
    // They did run against a moving replica: differences were seen, and settled.
    let in_flight: u64 = reports.iter().map(|r| r.in_flight).sum();
    assert!(in_flight > 0, "no verification saw anything in flight: {reports:?}");
    assert!(
        !runs.is_empty() && !failed,
        "scheduled verify ran during the uploads: {runs:?}, failed {failed}"
    );
    assert_eq!(worst, 0, "the scheduled verify reported differences during the uploads");
    // Once shipping has caught up the trees are equal, and the scheduled verify is clean.
    wait_same_trees(60, "replica has every file", &live.centre.tree(), &live.replica.tree()).await;
    live.stop().await;
}

/// Damage done to the replica while uploads flow (one file's content altered, one removed) is
/// reported exactly, beside everything in flight; a repair meanwhile fixes those two and nothing
/// else, and once the uploads are shipped the trees are equal.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn damage_to_the_replica_is_reported_exactly_while_uploads_flow() {
    let _ = tracing_subscriber::fmt().with_env_filter("kizuna_backup=info").with_test_writer().try_init();
    let live = live(0).await;
    let (primary, client) = (live.follower.primary.clone(), live.direct());
    // Two replicated files in folders the traffic never writes to.
    let busy: BTreeSet<String> = live
        .traffic
        .iter()
        .flat_map(|(f, b)| b.iter().map(move |x| format!("{f}/{}", parent(&x.path))))
        .collect();
    let quiet: Vec<String> =
        tree_digests(&live.replica.tree()).into_keys().filter(|p| !busy.contains(parent(p))).collect();
    assert!(quiet.len() > 10, "too few files outside the traffic's folders: {}", quiet.len());
    let (altered, removed) = (quiet[1].clone(), quiet[quiet.len() - 2].clone());

    let done = AtomicBool::new(false);
    let checks = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let p = live.replica.tree().join(&altered);
        let mut bytes = std::fs::read(&p).unwrap();
        bytes[10] ^= 0x01;
        std::fs::write(&p, &bytes).unwrap();
        std::fs::remove_file(live.replica.tree().join(&removed)).unwrap();
        let found = verify(&primary, &client, Options::default()).await.unwrap();
        let content =
            verify(&primary, &client, Options { check: Check::Content, ..Options::default() }).await.unwrap();
        let fixed = verify(&primary, &client, Options { repair: true, ..Options::default() }).await.unwrap();
        let uploading = !done.load(Ordering::SeqCst);
        (found, content, fixed, uploading)
    };
    let (_, _, (found, content, fixed, uploading)) =
        tokio::join!(live.upload_traffic(&done), live.write_foreign(&done), checks);
    assert!(uploading, "the uploads ended before the verifications did; make the traffic longer");
    let mut want = vec![
        (altered.clone(), Some("changed-on-disk".to_owned())),
        (removed.clone(), Some("missing".to_owned())),
    ];
    want.sort();
    for (what, r) in [("stat", &found), ("repair", &fixed)] {
        let mut got: Vec<(String, Option<String>)> =
            r.findings.iter().map(|f| (f.path.clone(), f.replica.clone())).collect();
        got.sort();
        assert_eq!(got, want, "{what}: {}", brief(r));
        assert_eq!(r.unsettled, 0, "{what}: {}", brief(r));
    }
    let mut got: Vec<&str> = content.findings.iter().map(|f| f.path.as_str()).collect();
    got.sort();
    assert_eq!(
        got,
        [altered.as_str(), removed.as_str()]
            .iter()
            .copied()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>(),
        "content: {}",
        brief(&content)
    );
    assert_eq!((fixed.repaired_files, fixed.removed, fixed.unrepairable), (2, 0, 0), "{}", brief(&fixed));

    wait_same_trees(60, "replica equals the primary", &live.centre.tree(), &live.replica.tree()).await;
    let after =
        verify(&primary, &client, Options { check: Check::Content, ..Options::default() }).await.unwrap();
    assert!(after.clean(), "{}", brief(&after));
    live.stop().await;
}

/// Files the follower never shipped (it is stopped while the store takes uploads) are reported
/// once `settle` runs out, as unsettled differences, each naming a file uploaded since or its
/// folder.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn files_never_shipped_are_reported_when_the_settle_time_runs_out() {
    let live = live(0).await;
    let client = live.direct();
    let Live { _corpus, centre, _work, replica, config: _, follower, traffic } = live;
    let primary = follower.primary.clone();
    follower.stop().await;
    let unshipped: Vec<String> =
        traffic[..5].iter().flat_map(|(f, b)| b.iter().map(move |x| format!("{f}/{}", x.path))).collect();
    for (f, b) in &traffic[..5] {
        centre.upload(f, b).await;
    }
    let started = std::time::Instant::now();
    let r = verify(&primary, &client, Options { settle: Duration::from_secs(1), ..Options::default() })
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(15), "took {:?}", started.elapsed());
    assert!(!r.clean() && r.unsettled == r.differences, "{}", brief(&r));
    for f in &r.findings {
        assert!(
            unshipped.iter().any(|u| *u == f.path || u.starts_with(&format!("{}/", f.path))),
            "{} is not among the unshipped files",
            f.path
        );
        assert_eq!(f.replica, None, "{f:?}");
    }
    centre.stop().await;
    replica.stop().await;
}

fn parent(path: &str) -> &str {
    path.rsplit_once('/').map(|(d, _)| d).unwrap_or("")
}
