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
    Primary::open(&FollowConfig { store_data_dir: data, ..config }).await.unwrap();
}
