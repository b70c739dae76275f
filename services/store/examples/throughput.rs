//! Store-side ingest throughput: a synthetic corpus uploaded over real HTTP on 127.0.0.1 into a
//! store on SQLite, durably (every answer comes after the fsyncs), by several concurrent uploaders.
//!
//! `cargo run --release -p kizuna-store --example throughput -- [PATIENTS] [BATCH] [UPLOADERS] [fsync|syncfs]`
//! Prints files/s; the data goes to a tempdir under $TMPDIR and is removed afterwards.

use std::sync::Arc;
use std::time::Instant;

use kizuna_store::{Config, FacilityId, Store, sites};
use kizuna_wire::{BATCH_CONTENT_TYPE, BatchFile, BatchReport, FileStatus, encode_batch};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let patients: u32 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(400);
    let batch: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(500);
    let uploaders: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(4);
    let sync = args.get(4).cloned().unwrap_or_else(|| "fsync".into());

    let corpus_dir = tempfile::tempdir().unwrap();
    let cfg = synth::GenConfig {
        seed: 7,
        facilities: 3,
        patients,
        from: synth::CivilDate::new(2024, 1, 1).unwrap(),
        to: synth::CivilDate::new(2024, 12, 31).unwrap(),
        bad: 0,
        pharmacies: 0,
        sync: false,
    };
    let summary = synth::generate(&cfg, corpus_dir.path(), &|_| {}).unwrap();
    let mut work: Vec<(String, Vec<BatchFile>)> = Vec::new();
    let mut total = 0usize;
    for f in &summary.facilities {
        let root = synth::facility_root(corpus_dir.path(), &f.id);
        let mut files = Vec::new();
        let mut stack = vec![root.clone()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let e = e.unwrap();
                if e.file_type().unwrap().is_dir() {
                    stack.push(e.path());
                } else {
                    let rel = e.path().strip_prefix(&root).unwrap().to_str().unwrap().to_owned();
                    files.push(BatchFile::new(rel, std::fs::read(e.path()).unwrap()));
                }
            }
        }
        total += files.len();
        for chunk in files.chunks(batch) {
            work.push((f.id.clone(), chunk.to_vec()));
        }
    }
    let data = tempfile::tempdir().unwrap();
    let mut config = Config { data_dir: data.path().join("data"), ..Config::default() };
    config.commit.sync = if sync == "syncfs" {
        kizuna_store::config::SyncMode::Syncfs
    } else {
        kizuna_store::config::SyncMode::Fsync
    };
    let store = Store::open(config).await.unwrap();
    let ids: Vec<FacilityId> = summary.facilities.iter().map(|f| FacilityId::new(&f.id).unwrap()).collect();
    let token = sites::add_site(&store.db, "bench", &ids, &[]).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(kizuna_store::serve_on(listener, store.clone(), async {
        let _ = rx.await;
    }));

    let bodies: Vec<(String, Vec<u8>, usize)> =
        work.iter().map(|(f, files)| (f.clone(), encode_batch(files), files.len())).collect();
    let queue = Arc::new(std::sync::Mutex::new(bodies));
    let client = reqwest::Client::new();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..uploaders {
        let (q, c, base, token) = (queue.clone(), client.clone(), base.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            let mut stored = 0usize;
            loop {
                let Some((fac, body, _)) = q.lock().unwrap().pop() else { break };
                let r = c
                    .post(format!("{base}/api/v1/facilities/{fac}/batches"))
                    .bearer_auth(&token)
                    .header("content-type", BATCH_CONTENT_TYPE)
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status().as_u16(), 200);
                let rep: BatchReport = r.json().await.unwrap();
                stored += rep.results.iter().filter(|r| r.status == FileStatus::Stored).count();
            }
            stored
        }));
    }
    let mut stored = 0;
    for t in tasks {
        stored += t.await.unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{stored}/{total} files stored in {secs:.2} s: {:.0} files/s (batch {batch}, {uploaders} uploaders, {sync})",
        stored as f64 / secs
    );
    let _ = tx.send(());
    server.await.unwrap().unwrap();
}
