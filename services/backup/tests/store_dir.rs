//! `backup follow` with a mistyped `store_data_dir` used to create `nostore/tree` and follow that
//! empty folder, shipping nothing for ever. The follower (and `backup verify`) only read the
//! store's data: a folder that holds no store is refused, by key and path, and nothing is created.

use kizuna_backup::config::{FollowConfig, ReplicaTarget};
use kizuna_backup::follow::Follower;
use kizuna_backup::primary::Primary;

#[tokio::test]
async fn a_store_data_dir_that_holds_no_store_is_refused_and_never_created() {
    let d = tempfile::tempdir().unwrap();
    let nostore = d.path().join("nostore");
    let config = FollowConfig {
        store_data_dir: nostore.clone(),
        state_dir: d.path().join("state"),
        replicas: vec![ReplicaTarget {
            name: "dr".into(),
            url: "http://127.0.0.1:9".into(),
            token_file: d.path().join("token"),
            ca_file: std::path::PathBuf::new(),
        }],
        ..FollowConfig::default()
    };
    let e = Follower::open(config.clone()).await.err().expect("refused").to_string();
    assert!(e.contains(&format!("follow.store_data_dir: {} does not exist", nostore.display())), "{e}");
    assert!(!nostore.exists(), "the follower created {}", nostore.display());
    let e = Primary::open(&config).await.err().expect("refused (backup verify)").to_string();
    assert!(e.contains("follow.store_data_dir"), "{e}");
    assert!(!nostore.exists());

    std::fs::create_dir(&nostore).unwrap();
    let e = Follower::open(config.clone()).await.err().expect("refused").to_string();
    assert!(e.contains("holds no store (no journal/)"), "{e}");
    assert_eq!(
        std::fs::read_dir(&nostore).unwrap().count(),
        0,
        "the follower wrote into {}",
        nostore.display()
    );

    // A real store's folder is followed.
    let data = d.path().join("centre");
    drop(
        kizuna_store::Store::open(kizuna_store::Config { data_dir: data.clone(), ..Default::default() })
            .await
            .unwrap(),
    );
    let config = FollowConfig { store_data_dir: data, ..config };
    Primary::open(&config).await.unwrap();

    // One follower per state folder (two would ship every batch twice and overwrite each other's
    // positions); `backup verify` (the primary side alone) still opens beside it.
    let first = Follower::open(config.clone()).await.unwrap();
    let e = Follower::open(config.clone()).await.err().expect("a second follower opened").to_string();
    assert!(e.contains("is in use by another follower") && e.contains("follow.lock"), "{e}");
    Primary::open(&config).await.unwrap();
    drop(first);
    Follower::open(config).await.unwrap();
}

/// A replica's folder is a store's folder in waiting: it holds the store's lock (`store.lock`)
/// while served, so a second replica on it, or a promotion while `backup serve` still applies
/// batches, is refused at once; once the replica is gone, promotion runs.
#[tokio::test]
async fn a_served_replica_folder_refuses_a_second_replica_and_a_promotion() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("replica");
    let first = kizuna_backup::replica::Replica::open(&data).await.unwrap();
    let second = kizuna_backup::replica::Replica::open(&data).await.err().expect("a second replica opened");
    assert!(second.to_string().contains("store.lock"), "{second}");
    let refused = kizuna_backup::promote::promote(&data, "").await.expect_err("promoted while served");
    assert!(refused.to_string().contains("is in use"), "{refused}");
    assert!(!data.join(kizuna_backup::replica::PROMOTED_FILE).exists(), "marked promoted while refused");
    drop(first);
    // A store started on the replica's folder (a rebooted backup centre whose image enables the
    // store again) is refused: it would serve the copy while the primary still replicates into it.
    let store_config = kizuna_store::Config { data_dir: data.clone(), ..Default::default() };
    let refused = kizuna_store::Store::open(store_config.clone()).await.err().expect("a store on a replica");
    assert!(
        refused.to_string().contains("not promoted") && refused.to_string().contains("backup promote"),
        "{refused}"
    );
    assert!(!data.join("index.sqlite").exists(), "the refused store created its IndexDB");
    let promoted = kizuna_backup::promote::promote(&data, "").await.unwrap();
    assert_eq!(promoted.records, 0);
    drop(kizuna_store::Store::open(store_config).await.expect("a promoted replica is a store"));
}
