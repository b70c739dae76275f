//! End to end on real servers over 127.0.0.1: a live store, two replicas followed at once, the
//! replicas converge exactly (tree, journal), verify is clean, a corrupted replica is found and
//! repaired, and a promoted replica runs as a centre whose index is the primary's.

mod centre;

use std::time::Duration;

use centre::*;
use kizuna_backup::client::ReplicaClient;
use kizuna_backup::primary::Primary;
use kizuna_backup::replica::digests::Check;
use kizuna_backup::verify::{Options, verify};

async fn replicated() -> (
    Centre,
    tempfile::TempDir,
    ReplicaServer,
    ReplicaServer,
    kizuna_backup::config::FollowConfig,
    FollowerTask,
) {
    let (_corpus, batches, _total) = corpus_batches(11, 2, 10, 30);
    let facilities: Vec<String> = batches
        .iter()
        .map(|(f, _)| f.clone())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let centre = Centre::start(&facilities).await;
    let work = tempfile::tempdir().unwrap();
    // Half the corpus is there before the follower starts, half arrives while it runs.
    let half = batches.len() / 2;
    for (f, b) in &batches[..half] {
        centre.upload(f, b).await;
    }
    let r1 = ReplicaServer::start(&work.path().join("r1")).await;
    let r2 = ReplicaServer::start(&work.path().join("r2")).await;
    let config =
        follow_config(&centre, &work.path().join("state"), &[("r1", r1.url.clone()), ("r2", r2.url.clone())]);
    let follower = FollowerTask::start(config.clone()).await;
    for (f, b) in &batches[half..] {
        centre.upload(f, b).await;
    }
    let applied = centre.applied();
    for r in [&r1, &r2] {
        wait_until(60, "replica catches up", || async { replica_applied(&r.url).await == Some(applied) })
            .await;
    }
    (centre, work, r1, r2, config, follower)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_converge_verify_clean_and_promote_to_a_working_centre() {
    let (centre, _work, r1, r2, config, follower) = replicated().await;
    let primary_tree = tree_digests(&centre.tree());
    assert!(primary_tree.len() > 100, "corpus too small: {}", primary_tree.len());
    let primary_journal = journal_entries(&centre.config.journal_dir());
    for r in [&r1, &r2] {
        assert_eq!(tree_digests(&r.tree()), primary_tree, "replica tree differs");
        assert_eq!(
            journal_entries(&r.config.data_dir.join("journal")),
            primary_journal,
            "replica journal differs"
        );
    }
    // Lag is on /metrics and is zero once caught up.
    let m = reqwest::get(&follower.metrics_url).await.unwrap().text().await.unwrap();
    assert!(m.contains("kizuna_backup_lag_entries{replica=\"r1\"} 0"), "{m}");
    assert!(m.contains("kizuna_backup_lag_seconds{replica=\"r2\"} 0"), "{m}");
    follower.stop().await;

    let primary = std::sync::Arc::new(Primary::open(&config).await.unwrap());
    for (name, r) in [("r1", &r1), ("r2", &r2)] {
        let client = ReplicaClient::new(
            &config.replicas.iter().find(|t| t.name == name).unwrap().clone(),
            Duration::from_secs(30),
        )
        .unwrap();
        let report =
            verify(&primary, &client, Options { check: Check::Content, ..Options::default() }).await.unwrap();
        assert!(report.clean(), "{name}: {report:?}");
        assert_eq!(report.files as usize, primary_tree.len());
        assert_eq!(report.requests, 1, "an unchanged pair needs one summary");
        let _ = r;
    }

    // Promote r2: its rebuilt index is the primary's, and it takes uploads as a centre.
    let data = r2.config.data_dir.clone();
    r2.stop().await;
    let promoted = kizuna_backup::promote::promote(&data, "").await.unwrap();
    assert_eq!(promoted.applied_seq, centre.applied());
    // The primary's search rows are written behind its answers: wait for them.
    centre.store.search_caught_up().await;
    let primary_index = index_rows(&centre.store.db.pool).await;
    assert_eq!(promoted.records as usize, primary_index.len());
    // The site registry is not replicated: promotion says so, with the commands to add sites.
    assert_eq!(promoted.sites, 0);
    let notices = promoted.notices().join("\n");
    assert!(notices.contains("401") && notices.contains("kizuna site add NAME --facility"), "{notices}");
    let facilities: Vec<String> = primary_tree
        .keys()
        .map(|p| p.split('/').next().unwrap().to_owned())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let cfg = kizuna_store::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: data.clone(),
        nho_tables: nho_tables(),
        ..kizuna_store::Config::default()
    };
    let new_centre = Centre::start_in(tempfile::tempdir().unwrap(), cfg, &facilities).await;
    // The primary's agents' token is refused there; the site added again (its new token) uploads.
    let refused = new_centre
        .client
        .post(format!("{}/api/v1/facilities/{}/batches", new_centre.base, facilities[0]))
        .bearer_auth(&centre.token)
        .header("content-type", kizuna_wire::BATCH_CONTENT_TYPE)
        .body(kizuna_wire::encode_batch(&[]))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401, "the primary's site token on the promoted centre");
    assert_eq!(
        index_rows(&new_centre.store.db.pool).await,
        primary_index,
        "promoted index differs from the primary's"
    );
    // A patient query on the promoted index answers as on the primary.
    let q = "SELECT file_name FROM records WHERE facility_id = $1 AND patient_id = $2 ORDER BY order_date DESC, transaction_datetime DESC";
    let (fac, pid): (String, String) = {
        use sqlx::Row;
        let r = sqlx::query("SELECT facility_id, patient_id FROM records ORDER BY id LIMIT 1")
            .fetch_one(&centre.store.db.pool)
            .await
            .unwrap();
        (r.get(0), r.get(1))
    };
    let names = |pool: sqlx::AnyPool| {
        let (fac, pid) = (fac.clone(), pid.clone());
        async move {
            use sqlx::Row;
            sqlx::query(q)
                .bind(fac)
                .bind(pid)
                .fetch_all(&pool)
                .await
                .unwrap()
                .iter()
                .map(|r| r.get::<String, _>(0))
                .collect::<Vec<_>>()
        }
    };
    let on_primary = names(centre.store.db.pool.clone()).await;
    assert!(!on_primary.is_empty());
    assert_eq!(names(new_centre.store.db.pool.clone()).await, on_primary);
    // The promoted centre takes a new upload (a new version of an existing file is detected as a duplicate).
    let (_c, more, _) = corpus_batches(99, 1, 2, 50);
    let (f, b) = &more[0];
    let new_site = kizuna_store::sites::add_site(
        &new_centre.store.db,
        "late",
        &[kizuna_store::FacilityId::new(f).unwrap()],
        &[],
    )
    .await
    .unwrap();
    let r = reqwest::Client::new()
        .post(format!("{}/api/v1/facilities/{f}/batches", new_centre.base))
        .bearer_auth(&new_site)
        .header("content-type", kizuna_wire::BATCH_CONTENT_TYPE)
        .body(kizuna_wire::encode_batch(b))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    assert!(new_centre.applied() > promoted.applied_seq);
    new_centre.stop().await;
    r1.stop().await;
    centre.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_corrupted_replica_is_found_by_verify_and_fixed_by_repair() {
    let (centre, _work, r1, r2, config, follower) = replicated().await;
    follower.stop().await;
    let files: Vec<String> = tree_digests(&r1.tree()).into_keys().collect();
    let (flipped, deleted) = (&files[3], &files[files.len() / 2]);
    // Damage r1: one file's content replaced (same size), one removed, one added.
    let p = r1.tree().join(flipped);
    let mut bytes = std::fs::read(&p).unwrap();
    bytes[10] ^= 0x01;
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(&p, &bytes).unwrap();
    std::fs::remove_file(r1.tree().join(deleted)).unwrap();
    let stray_dir = r1.tree().join(flipped).parent().unwrap().to_owned();
    std::fs::write(stray_dir.join("stray.txt"), b"not from the primary").unwrap();

    let primary = std::sync::Arc::new(Primary::open(&config).await.unwrap());
    let client = |n: &str| {
        ReplicaClient::new(config.replicas.iter().find(|t| t.name == n).unwrap(), Duration::from_secs(30))
            .unwrap()
    };
    let report = verify(&primary, &client("r1"), Options::default()).await.unwrap();
    let mut found: Vec<(String, Option<String>)> =
        report.findings.iter().map(|f| (f.path.clone(), f.replica.clone())).collect();
    found.sort();
    let stray = format!("{}/stray.txt", flipped.rsplit_once('/').unwrap().0);
    let mut want = vec![
        (flipped.clone(), Some("changed-on-disk".to_owned())),
        (deleted.clone(), Some("missing".to_owned())),
        (stray.clone(), Some("unrecorded".to_owned())),
    ];
    want.sort();
    assert_eq!(found, want, "{report:?}");
    // The untouched replica is still clean; only differing subtrees were asked for.
    assert!(verify(&primary, &client("r2"), Options::default()).await.unwrap().clean());
    assert!(report.requests < 30, "descended into {} directories", report.requests);

    let fixed =
        verify(&primary, &client("r1"), Options { repair: true, ..Options::default() }).await.unwrap();
    assert_eq!(fixed.repaired_files, 2);
    assert_eq!(fixed.removed, 1);
    let after = verify(&primary, &client("r1"), Options { check: Check::Content, ..Options::default() })
        .await
        .unwrap();
    assert!(after.clean(), "{after:?}");
    assert_eq!(tree_digests(&r1.tree()), tree_digests(&centre.tree()));
    r1.stop().await;
    r2.stop().await;
    centre.stop().await;
}

/// Stray files where the replica's manifest records nothing: a whole fake patient folder (a real
/// SS-MIX2 file copied into new folders), a file at a facility level and one at the tree root,
/// beside one in a recorded folder. Each is reported (`stat` and `content`), repair removes them
/// all and no recorded file, and the trees end equal. Before, only the one in the recorded folder
/// was seen: the others passed verify and stayed through repair (and into a promotion).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn strays_in_folders_without_records_are_reported_and_removed_by_repair() {
    let (centre, _work, r1, r2, config, follower) = replicated().await;
    follower.stop().await;
    let files: Vec<String> = tree_digests(&r1.tree()).into_keys().collect();
    let real = &files[files.len() / 3];
    let facility = real.split('/').next().unwrap();
    let recorded_dir = real.rsplit_once('/').unwrap().0;
    let tree = r1.tree();
    let plant = |rel: &str, bytes: &[u8]| {
        let p = tree.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    };
    let fake = format!("{facility}/999/999/9999999/20240101/ADT-00");
    let fake_file = format!("{fake}/9999999_20240101_ADT-00_999999999999999_20240101000000000_01_1");
    plant(&fake_file, &std::fs::read(tree.join(real)).unwrap());
    plant(&format!("{recorded_dir}/stray_in_recorded_dir"), b"stray\n");
    plant(&format!("{facility}/stray_in_facility_dir"), b"stray\n");
    plant("stray_at_root", b"stray\n");
    // An empty folder only the replica has is not a difference (verify ignores empty folders).
    std::fs::create_dir_all(tree.join(format!("{facility}/888/empty"))).unwrap();

    let primary = std::sync::Arc::new(Primary::open(&config).await.unwrap());
    let client = |n: &str| {
        ReplicaClient::new(config.replicas.iter().find(|t| t.name == n).unwrap(), Duration::from_secs(30))
            .unwrap()
    };
    let unrecorded = Some("unrecorded".to_owned());
    let mut want = vec![
        (format!("{facility}/999"), true, Some("present".to_owned())),
        (format!("{recorded_dir}/stray_in_recorded_dir"), false, unrecorded.clone()),
        (format!("{facility}/stray_in_facility_dir"), false, unrecorded.clone()),
        ("stray_at_root".to_owned(), false, unrecorded.clone()),
    ];
    want.sort();
    for check in [Check::Stat, Check::Content] {
        let report = verify(&primary, &client("r1"), Options { check, ..Options::default() }).await.unwrap();
        let mut found: Vec<_> =
            report.findings.iter().map(|f| (f.path.clone(), f.dir, f.replica.clone())).collect();
        found.sort();
        assert_eq!(found, want, "{check:?}: {report:?}");
        assert!(report.findings.iter().all(|f| f.primary.is_none()), "{report:?}");
    }
    assert!(verify(&primary, &client("r2"), Options::default()).await.unwrap().clean());

    let fixed =
        verify(&primary, &client("r1"), Options { repair: true, ..Options::default() }).await.unwrap();
    assert_eq!((fixed.removed, fixed.repaired_files), (4, 0), "{fixed:?}");
    let after = verify(&primary, &client("r1"), Options { check: Check::Content, ..Options::default() })
        .await
        .unwrap();
    assert!(after.clean(), "{after:?}");
    // Every recorded file is still there, and nothing else is.
    assert_eq!(tree_digests(&r1.tree()), tree_digests(&centre.tree()));
    r1.stop().await;
    r2.stop().await;
    centre.stop().await;
}
