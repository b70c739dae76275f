//! End to end: a synthetic facility's export folder, the agent, and the real store (`kizuna-store`,
//! SQLite IndexDB) over HTTP on loopback. The store's tree ends up equal to the corpus, byte for byte.

mod common;

use std::path::Path;

use common::real_store::{read_tree, start_store};
use common::{Running, wait_for};
use kizuna_agent::Config;
use kizuna_store::{FacilityId, sites};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corpus_goes_through_the_agent_into_the_real_store() {
    let dir = tempfile::tempdir().unwrap();
    let gen_root = dir.path().join("corpus");
    let spec = synth::GenConfig {
        bad: 0,
        ..synth::GenConfig::new(
            21,
            1,
            8,
            synth::CivilDate::new(2024, 1, 1).unwrap(),
            synth::CivilDate::new(2024, 3, 31).unwrap(),
        )
    };
    let summary = synth::generate(&spec, &gen_root, &|_| {}).expect("generate corpus");
    let facility = summary.facilities[0].id.clone();
    let export = synth::facility_root(&gen_root, &facility);
    let corpus = read_tree(&export);
    assert!(corpus.len() > 50, "corpus too small: {}", corpus.len());
    // One file the agent must refuse: it never reaches the store.
    std::fs::write(export.join("README.txt"), b"not SS-MIX2").unwrap();

    let (store, base, stop_store) = start_store(dir.path()).await;
    let token =
        sites::add_site(&store.db, "site-a", &[FacilityId::new(&facility).unwrap()], &[]).await.unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, &token).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let yaml = format!(
        "export_dir: {}\nstate_dir: {}\nstore_url: {base}\nfacility: \"{facility}\"\ntoken_file: {}\n\
         settle_ms: 200\nrescan_interval_secs: 1\nheartbeat_interval_secs: 1\nretry_base_ms: 100\nretry_max_ms: 1000\n",
        export.display(),
        dir.path().join("state").display(),
        token_file.display()
    );
    let cfg = Config::parse(&yaml, Path::new("e2e.yaml")).unwrap();
    let agent = Running::start(cfg.clone());
    let n = corpus.len() as u64;
    assert!(
        wait_for(120, || {
            let s = agent.status.get();
            s.files_uploaded == n && s.queue_depth == 0 && s.quarantined == 1
        })
        .await,
        "uploaded {} of {n}",
        agent.status.get().files_uploaded
    );
    assert_eq!(agent.status.get().quarantined, 1);
    agent.stop().await;

    let tree = read_tree(&store.config.tree_dir().join(&facility));
    assert_eq!(tree.len(), corpus.len());
    assert!(tree == corpus, "the store's tree differs from the corpus");
    assert_eq!(read_tree(&export).len(), 0, "files left in the export folder");
    assert!(cfg.quarantine_dir().join("README.txt.reason.json").is_file());
    let _ = stop_store.send(());
}
