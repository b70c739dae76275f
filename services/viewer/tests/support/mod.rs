//! A centre for the viewer's tests: a synthetic corpus of three facilities stored by the real store
//! (`ingest_batch`), every patient enrolled in a real linkage registry and linked across facilities
//! by the generator's ground truth (as an admin would after review), and a running viewer.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use kizuna_index::{CommonId, Demographics, RecordKey, Registry};
use kizuna_store::{FacilityId, Store, ingest, sites};
use kizuna_viewer::access::{Role, User};
use kizuna_viewer::{Config, Viewer, audit::Audit};
use kizuna_wire::BatchFile;

pub struct Centre {
    pub dir: tempfile::TempDir,
    pub config: Config,
    /// Facility codes of the corpus, sorted.
    pub facilities: Vec<String>,
    /// A person known at every facility, and their local IDs there.
    pub patient: CommonId,
    pub patient_keys: Vec<RecordKey>,
    /// Another linked person (for "a record of someone else" checks).
    pub other: CommonId,
    /// Files stored per facility.
    pub stored: BTreeMap<String, usize>,
}

fn read_tree(root: &Path, rel: &str, out: &mut Vec<BatchFile>) {
    let Ok(rd) = std::fs::read_dir(root.join(rel)) else { return };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let r = if rel.is_empty() { name } else { format!("{rel}/{name}") };
        if e.file_type().unwrap().is_dir() {
            read_tree(root, &r, out);
        } else {
            out.push(BatchFile::new(r, std::fs::read(e.path()).unwrap()));
        }
    }
}

/// Builds the centre: corpus, store, registry (SQLite in a tempdir).
pub async fn centre() -> Centre {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("corpus");
    let cfg = synth::GenConfig {
        seed: 20261125,
        facilities: 3,
        patients: 40,
        from: synth::CivilDate::new(2024, 4, 1).unwrap(),
        to: synth::CivilDate::new(2024, 6, 30).unwrap(),
        bad: 0,
        pharmacies: 0,
        sync: false,
    };
    let summary = synth::generate(&cfg, &corpus, &|_| {}).expect("generate corpus");
    let facilities: Vec<String> = summary.facilities.iter().map(|f| f.id.clone()).collect();

    let data = dir.path().join("centre");
    let store_cfg = kizuna_store::Config { data_dir: data.clone(), ..Default::default() };
    let store = Store::open(store_cfg).await.unwrap();
    let mut stored = BTreeMap::new();
    for f in &facilities {
        let fid = FacilityId::new(f).unwrap();
        sites::add_site(&store.db, &format!("site-{f}"), std::slice::from_ref(&fid), &[]).await.unwrap();
        let mut files = Vec::new();
        read_tree(&synth::facility_root(&corpus, f), "", &mut files);
        let n = files.len();
        for chunk in files.chunks(500) {
            let r = ingest::ingest_batch(&store, &format!("site-{f}"), &fid, chunk.to_vec()).await.unwrap();
            assert!(r.results.iter().all(|x| x.status != kizuna_wire::FileStatus::Rejected), "{r:?}");
        }
        stored.insert(f.clone(), n);
    }
    // The search rows (the time series' drugs, labs…) are written behind the answers.
    store.search_caught_up().await;
    store.checkpoint().await.unwrap();
    drop(store);

    // Linkage: enroll everyone, then link each person's registrations (ground truth).
    let index_url = format!("sqlite://{}?mode=rwc", dir.path().join("linkage.sqlite").display());
    let reg = Registry::open(&index_url).await.unwrap();
    let gt = std::fs::read_to_string(corpus.join("ground-truth.csv")).unwrap();
    let mut by_person: BTreeMap<String, Vec<RecordKey>> = BTreeMap::new();
    for line in gt.lines().skip(1) {
        let c: Vec<&str> = line.split(',').collect();
        by_person.entry(c[0].to_owned()).or_default().push(RecordKey::new(c[1], c[3]).unwrap());
    }
    let d = Demographics {
        family_kanji: "試験".into(),
        given_kanji: "太郎".into(),
        family_kana: "シケン".into(),
        given_kana: "タロウ".into(),
        birth_date: None,
        sex: None,
        address: String::new(),
        phone: String::new(),
    };
    let mut linked: Vec<(CommonId, Vec<RecordKey>)> = Vec::new();
    for keys in by_person.values() {
        let mut cid: Option<CommonId> = None;
        for k in keys {
            let e = reg.enroll(k, &d).await.unwrap();
            match &cid {
                None => cid = Some(e.common_id),
                Some(c) => reg.link(k, c, "admin-1", "ground truth").await.unwrap(),
            }
        }
        linked.push((cid.unwrap(), keys.clone()));
    }
    linked.sort_by_key(|(_, k)| {
        std::cmp::Reverse(k.iter().map(|k| &k.facility).collect::<std::collections::BTreeSet<_>>().len())
    });
    let (patient, patient_keys) = linked[0].clone();
    assert_eq!(
        patient_keys.iter().map(|k| &k.facility).collect::<std::collections::BTreeSet<_>>().len(),
        3,
        "the corpus has a person at all three facilities"
    );
    let other = linked[1].0.clone();
    reg.db().pool.close().await;

    let mut config = Config { store_data_dir: data, secure_cookies: false, ..Default::default() };
    config.index_database_url = index_url;
    Centre { dir, config, facilities, patient, patient_keys, other, stored }
}

/// A running viewer on 127.0.0.1.
pub struct Running {
    pub viewer: Arc<Viewer>,
    pub base: String,
    pub addr: SocketAddr,
}

pub async fn serve(config: Config, audit: Audit) -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    serve_on(listener, config, audit).await
}

pub async fn serve_on(listener: tokio::net::TcpListener, config: Config, audit: Audit) -> Running {
    let addr = listener.local_addr().unwrap();
    let viewer = Viewer::open(config, audit).await.unwrap();
    tokio::spawn(kizuna_viewer::serve_on(listener, viewer.clone(), std::future::pending()));
    Running { viewer, base: format!("http://{addr}"), addr }
}

pub fn user(facility: &str, subject: &str, role: Role) -> User {
    User { subject: subject.into(), name: format!("user {subject}"), facility: facility.into(), role }
}

impl Running {
    /// A session for `user` (the login itself is exercised by the Chromium test).
    pub fn session(&self, user: User) -> String {
        let id = self.viewer.sessions.log_in(&self.viewer.sessions.create(), user);
        format!("{}={id}", kizuna_viewer::session::COOKIE)
    }

    pub async fn get(&self, cookie: &str, path: &str) -> (u16, String) {
        let c = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let r = c.get(format!("{}{path}", self.base)).header("cookie", cookie).send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    pub async fn post(&self, cookie: &str, path: &str, form: &[(&str, &str)]) -> (u16, String) {
        let c = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let r =
            c.post(format!("{}{path}", self.base)).header("cookie", cookie).form(form).send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    pub fn csrf(&self, cookie: &str) -> String {
        let id = cookie.split_once('=').unwrap().1;
        self.viewer.sessions.get(id).unwrap().csrf
    }
}
