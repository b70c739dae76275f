//! The linkage database (common IDs, consent) on the replicas, on real servers over 127.0.0.1: the
//! follower ships a snapshot when the database changes and only then, a replica refuses a
//! snapshot that is corrupt, mislabelled or unauthorised and keeps the one it holds, and a
//! promoted replica links and discloses with the primary's common IDs and consent.

mod centre;

use std::time::Duration;

use centre::*;
use kizuna_backup::linkage::{LinkageState, SHA256_HEADER, TAKEN_AT_HEADER};
use kizuna_index::{ConsentPolicy, Demographics, FacilityCode, RecordKey, Registry};

/// The replica's linkage snapshot, as its API reports it.
async fn held(url: &str) -> LinkageState {
    reqwest::Client::new()
        .get(format!("{url}/api/v1/linkage"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn person(family: &str, given: &str, birth: &str) -> Demographics {
    Demographics {
        family_kanji: family.into(),
        given_kanji: given.into(),
        birth_date: Some(birth.into()),
        ..Demographics::default()
    }
}

/// A `PUT /api/v1/linkage` with the given token, headers and body; returns the status and body.
async fn put(url: &str, token: &str, sha: &str, body: Vec<u8>) -> (u16, String) {
    let r = reqwest::Client::new()
        .put(format!("{url}/api/v1/linkage"))
        .bearer_auth(token)
        .header(SHA256_HEADER, sha)
        .header(TAKEN_AT_HEADER, jiff::Timestamp::now().to_string())
        .body(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_linkage_database_follows_its_changes_and_a_promoted_replica_keeps_ids_and_consent() {
    let (_corpus, batches, _) = corpus_batches(5, 1, 3, 20);
    let facility = batches[0].0.clone();
    let centre = Centre::start(std::slice::from_ref(&facility)).await;
    centre.upload(&facility, &batches[0].1).await;
    // The centre's linkage database where `kizuna index link` keeps it: linkage.sqlite in the
    // store's folder (WAL, as the linkage service opens it).
    let db = centre.config.data_dir.join("linkage.sqlite");
    let reg = Registry::open(&format!("sqlite://{}?mode=rwc", db.display())).await.unwrap();
    let mut ids = Vec::new();
    for (i, p) in [person("佐藤", "花子", "19600101"), person("鈴木", "一郎", "19711231")].iter().enumerate()
    {
        ids.push(
            reg.enroll(&RecordKey::new(&facility, &format!("P{i}")).unwrap(), p).await.unwrap().common_id,
        );
    }
    let code = FacilityCode::parse(&facility).unwrap();
    reg.set_consent(&ids[0], &ConsentPolicy::Listed([code].into()), "registrar", "form 1").await.unwrap();

    let work = tempfile::tempdir().unwrap();
    let r1 = ReplicaServer::start(&work.path().join("r1")).await;
    let mut config = follow_config(&centre, &work.path().join("state"), &[("r1", r1.url.clone())]);
    config.linkage.interval_s = 1;
    let follower = FollowerTask::start(config).await;
    wait_until(30, "the first linkage snapshot arrives", || async { held(&r1.url).await.sha256.is_some() })
        .await;
    let first = held(&r1.url).await;
    assert!(first.bytes > 0);
    // Nothing changed: no second snapshot is taken or sent.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(held(&r1.url).await, first, "an unchanged database was sent again");
    let m = reqwest::get(&follower.metrics_url).await.unwrap().text().await.unwrap();
    assert!(m.contains("kizuna_backup_linkage_snapshots_total 1"), "{m}");
    assert!(m.contains("kizuna_backup_linkage_snapshot_timestamp_seconds{replica=\"r1\"}"), "{m}");

    // A change (the second patient opts out) is shipped within a few intervals.
    reg.set_consent(&ids[1], &ConsentPolicy::OptOut, "registrar", "form 2").await.unwrap();
    wait_until(30, "the changed linkage snapshot arrives", || async {
        held(&r1.url).await.sha256 != first.sha256
    })
    .await;
    let second = held(&r1.url).await;
    assert!(second.taken_at > first.taken_at, "{second:?} after {first:?}");

    // Refusals leave the held snapshot as it was: a wrong token, a wrong sha256, a body that is
    // not zstd, a zstd body that is not an SQLite database.
    let some_db = std::fs::read(&db).unwrap();
    let db_sha = sha(&some_db);
    let (status, _) =
        put(&r1.url, "wrong-token-0123456789", &db_sha, zstd::encode_all(&some_db[..], 3).unwrap()).await;
    assert_eq!(status, 401);
    let (status, body) =
        put(&r1.url, TOKEN, &"0".repeat(64), zstd::encode_all(&some_db[..], 3).unwrap()).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("sha256 is"), "{body}");
    let (status, body) = put(&r1.url, TOKEN, &db_sha, some_db.clone()).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("not a zstd stream"), "{body}");
    let text = b"not a database at all, just some text".to_vec();
    let (status, body) = put(&r1.url, TOKEN, &sha(&text), zstd::encode_all(&text[..], 3).unwrap()).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("not an SQLite database"), "{body}");
    assert_eq!(held(&r1.url).await, second, "a refused snapshot replaced the held one");
    let staging: Vec<_> = std::fs::read_dir(r1.config.data_dir.join("staging")).unwrap().flatten().collect();
    assert!(staging.is_empty(), "refused snapshots left files behind: {staging:?}");

    // Promotion: the folder's linkage.sqlite is the primary's, with its common IDs and consent.
    follower.stop().await;
    let data = r1.config.data_dir.clone();
    r1.stop().await;
    let promoted = kizuna_backup::promote::promote(&data, "").await.unwrap();
    assert_eq!(promoted.linkage.as_ref(), Some(&second));
    let copy = Registry::open(&format!("sqlite://{}?mode=rwc", data.join("linkage.sqlite").display()))
        .await
        .unwrap();
    assert_eq!(copy.all_links().await.unwrap(), reg.all_links().await.unwrap());
    for id in &ids {
        assert_eq!(copy.consent(id).await.unwrap(), reg.consent(id).await.unwrap(), "{id}");
    }
    assert_eq!(copy.consent(&ids[1]).await.unwrap().unwrap().policy, ConsentPolicy::OptOut);
    // The promoted folder takes no more snapshots.
    let tmp = data.join("staging/late.backup-tmp");
    std::fs::write(&tmp, zstd::encode_all(&some_db[..], 3).unwrap()).unwrap();
    let late = kizuna_backup::replica::linkage::install(
        &data,
        tmp,
        &db_sha,
        &jiff::Timestamp::now().to_string(),
        1 << 30,
    )
    .await;
    assert!(matches!(late, Err(kizuna_backup::BackupError::Promoted)), "{late:?}");
    centre.stop().await;
}
