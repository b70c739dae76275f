//! SIGKILL at random points while batches are in flight: after each restart nothing acknowledged is
//! lost, at the end the tree is exactly the corpus (nothing lost, nothing doubled), no staged file is
//! left, and the index agrees with the tree.

mod common;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Backend, all_files, batch_files, corpus, read_tree, sha};
use kizuna_store::{Config, Db, FacilityId};
use kizuna_wire::{BATCH_CONTENT_TYPE, BatchReport, FileStatus, encode_batch};
use rand::Rng;

both_backends!(sigkill_at_random_points_loses_nothing_acknowledged);

const KILLS: usize = 12;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn start(config_path: &std::path::Path) -> Child {
    let tables =
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/external/nhoHQ-SSMIX2DataTestingTool/include");
    Command::new(env!("CARGO_BIN_EXE_kizuna-store"))
        .arg("--config")
        .arg(config_path)
        .env("KIZUNA_NHO_TABLES", tables)
        .stdout(Stdio::null())
        .stderr(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(config_path.with_extension("log"))
                .unwrap(),
        )
        .spawn()
        .expect("start kizuna-store")
}

async fn wait_ready(client: &reqwest::Client, base: &str, log: &std::path::Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(r) = client.get(format!("{base}/healthz")).send().await
            && r.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("store did not become ready; its log:\n{}", std::fs::read_to_string(log).unwrap_or_default());
}

async fn sigkill_at_random_points_loses_nothing_acknowledged(backend: &Backend) {
    let c = corpus(41, 2, 16, 0);
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut config = Config {
        listen: format!("127.0.0.1:{port}").parse().unwrap(),
        data_dir: dir.path().join("data"),
        ..Config::default()
    };
    if let Backend::Postgres(server) = backend {
        config.database_url = common::fresh_pg_database(server).await;
    }
    let config_path = dir.path().join("store.yaml");
    std::fs::write(&config_path, serde_norway::to_string(&config).unwrap()).unwrap();
    let ids: Vec<FacilityId> = c.facilities.keys().map(|f| FacilityId::new(f).unwrap()).collect();
    let token = {
        let db = Db::open(&config.effective_database_url()).await.unwrap();
        let t = kizuna_store::sites::add_site(&db, "s", &ids, &[]).await.unwrap();
        db.pool.close().await;
        t
    };
    // Batches of 40 files, interleaving facilities.
    let mut queue: Vec<(String, Vec<u8>, Vec<String>)> = Vec::new();
    for (fac, files) in &c.facilities {
        for chunk in batch_files(files).chunks(40) {
            queue.push((fac.clone(), encode_batch(chunk), chunk.iter().map(|f| f.path.clone()).collect()));
        }
    }
    let total: usize = c.facilities.values().map(|f| f.len()).sum();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let mut acked: BTreeMap<String, String> = BTreeMap::new();
    let mut rng = rand::rng();
    let mut kills = 0;
    while kills < KILLS {
        let mut child = start(&config_path);
        wait_ready(&client, &base, &config_path.with_extension("log")).await;
        // Everything acknowledged before is still there after the restart.
        for (fac_path, digest) in &acked {
            let bytes = std::fs::read(config.tree_dir().join(fac_path))
                .unwrap_or_else(|e| panic!("acknowledged {fac_path} lost after kill {kills}: {e}"));
            assert_eq!(&sha(&bytes), digest);
        }
        let kill_after = Duration::from_millis(rng.random_range(20..400));
        let started = Instant::now();
        // Send batches (re-sending unacknowledged ones) until the kill time.
        while started.elapsed() < kill_after && !queue.is_empty() {
            let (fac, body, paths) = queue.last().unwrap().clone();
            let send = client
                .post(format!("{base}/api/v1/facilities/{fac}/batches"))
                .bearer_auth(&token)
                .header("content-type", BATCH_CONTENT_TYPE)
                .body(body)
                .send();
            // Kill while this request may be in flight.
            let left = kill_after.saturating_sub(started.elapsed());
            match tokio::time::timeout(left, send).await {
                Ok(Ok(r)) if r.status().is_success() => {
                    let rep: BatchReport = r.json().await.unwrap();
                    for (res, p) in rep.results.iter().zip(&paths) {
                        assert!(matches!(res.status, FileStatus::Stored | FileStatus::Duplicate), "{res:?}");
                        acked.insert(format!("{fac}/{p}"), res.sha256.clone());
                    }
                    queue.pop();
                }
                _ => break,
            }
        }
        child.kill().expect("SIGKILL");
        child.wait().unwrap();
        kills += 1;
    }
    // Finish the upload on a last run and stop it.
    let mut child = start(&config_path);
    wait_ready(&client, &base, &config_path.with_extension("log")).await;
    while let Some((fac, body, _)) = queue.pop() {
        let r = client
            .post(format!("{base}/api/v1/facilities/{fac}/batches"))
            .bearer_auth(&token)
            .header("content-type", BATCH_CONTENT_TYPE)
            .body(body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // One more start runs recovery after that last kill; then compare.
    let store = kizuna_store::Store::open(config.clone()).await.unwrap();
    let mut stored = 0;
    for (fac, files) in &c.facilities {
        let tree = read_tree(&config.tree_dir().join(fac));
        assert!(tree == *files, "tree of {fac} is not exactly the corpus");
        stored += tree.len();
        let rows = common::index_rows(&store, fac).await;
        let from_tree: BTreeMap<String, (String, String)> = tree
            .iter()
            .map(|(p, b)| (p.clone(), (sha(b), p.rsplit('_').next().unwrap().to_owned())))
            .collect();
        assert_eq!(rows, from_tree, "index of {fac} disagrees with the tree");
    }
    assert_eq!(stored, total);
    // The search rows, written behind the answers and killed at random points too, are exactly
    // what the tree's files give: none lost, none doubled.
    store.search_caught_up().await;
    let mut want = BTreeMap::new();
    for fac in c.facilities.keys() {
        want.extend(common::extracted_counts(fac, &read_tree(&config.tree_dir().join(fac))));
    }
    assert!(!want.is_empty(), "the corpus has search rows");
    assert_eq!(common::search_counts(&store).await, want, "search rows disagree with the tree");
    assert!(all_files(&config.staging_dir()).is_empty(), "staged files left behind");
    assert_eq!(store.journal.last_seq(), total as u64, "a file was journaled twice");
    assert_eq!(common::count(&store, "SELECT COUNT(*) FROM records").await, total as i64);
}
