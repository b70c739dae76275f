//! The real store (`kizuna-store`, SQLite IndexDB) serving on loopback, and a tree reader to compare
//! what it holds.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use kizuna_store::Store;

/// Every file below `root` by its path relative to `root`.
pub fn read_tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(
                    p.strip_prefix(root).unwrap().to_str().unwrap().to_owned(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    out
}

/// Opens a store under `dir/centre` and serves it on 127.0.0.1; returns it, its base URL and the
/// sender that stops it.
pub async fn start_store(dir: &Path) -> (Arc<Store>, String, tokio::sync::oneshot::Sender<()>) {
    let config = kizuna_store::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.join("centre"),
        ..kizuna_store::Config::default()
    };
    let store = Store::open(config).await.expect("open store");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let s = store.clone();
    tokio::spawn(async move {
        kizuna_store::serve_on(listener, s, async {
            let _ = rx.await;
        })
        .await
        .expect("serve");
    });
    (store, base, tx)
}
