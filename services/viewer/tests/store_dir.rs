//! A mistyped `store_data_dir` used to become a new, empty store (`nosuch/index.sqlite`) that the
//! viewer served: every patient without records. The viewer only reads the store's data: it
//! refuses a folder that holds no store, by key and path, and creates nothing.

use kizuna_viewer::audit::Audit;
use kizuna_viewer::{Config, Viewer};

#[tokio::test]
async fn the_viewer_refuses_a_store_data_dir_that_holds_no_store_and_creates_nothing() {
    let d = tempfile::tempdir().unwrap();
    let nosuch = d.path().join("nosuch");
    let mut config = Config {
        store_data_dir: nosuch.clone(),
        index_database_url: format!("sqlite://{}?mode=rwc", d.path().join("linkage.sqlite").display()),
        ..Config::default()
    };
    let e = match Viewer::open(config.clone(), Audit::log_only()).await {
        Ok(_) => panic!("the viewer served a store that is not there"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains(&format!("store_data_dir: {} does not exist", nosuch.display())), "{e}");
    assert!(!nosuch.exists(), "the viewer created {}", nosuch.display());

    // The audit spool defaults into the store's folder: not created there either.
    config.audit.url = "http://127.0.0.1:9/v1/events".into();
    let e = Audit::from_config(&config).err().expect("refused").to_string();
    assert!(e.contains("store_data_dir"), "{e}");
    assert!(!nosuch.exists(), "the audit spool created {}", nosuch.display());

    // A folder, but no store in it.
    std::fs::create_dir(&nosuch).unwrap();
    let e = match Viewer::open(config.clone(), Audit::log_only()).await {
        Ok(_) => panic!("the viewer served an empty folder"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains("holds no store"), "{e}");
    assert_eq!(std::fs::read_dir(&nosuch).unwrap().count(), 0, "the viewer wrote into {}", nosuch.display());

    // A real store's folder opens.
    let data = d.path().join("centre");
    let store =
        kizuna_store::Store::open(kizuna_store::Config { data_dir: data.clone(), ..Default::default() })
            .await
            .unwrap();
    drop(store);
    config.store_data_dir = data;
    config.audit.url.clear();
    Viewer::open(config, Audit::log_only()).await.unwrap();
}
