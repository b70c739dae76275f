//! `tree_linkage::link_tree` on small generated trees, uploaded facility by facility: the built-in
//! model links people across facilities while the register is too small to train a model; a
//! second pass enrolls nothing; a register that grows past the training threshold gets a trained
//! model, which scores the enrollments from then on.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use kizuna_index::quality::read_ground_truth;
use kizuna_index::tree_linkage::{MatcherState, facilities, link_tree};
use kizuna_index::{CommonId, RecordKey, Registry};

/// A generated corpus (care 2024-04-01..09-30, as `kizuna ssmix2 gen`), with each pharmacy's NSIPS
/// exports converted into an SS-MIX2 storage root the way the agent does; returns every facility's
/// storage root, in the order they are listed by the generator.
fn corpus(dir: &Path, seed: u64, facilities: u32, pharmacies: u32, patients: u32) -> Vec<(String, PathBuf)> {
    let corpus = dir.join("corpus");
    let spec = synth::GenConfig {
        pharmacies,
        sync: false,
        ..synth::GenConfig::new(
            seed,
            facilities,
            patients,
            synth::CivilDate::new(2024, 4, 1).unwrap(),
            synth::CivilDate::new(2024, 9, 30).unwrap(),
        )
    };
    let summary = synth::generate(&spec, &corpus, &|_| {}).unwrap();
    summary
        .facilities
        .iter()
        .map(|f| {
            if f.kind == "pharmacy" {
                let root = dir.join("converted").join(&f.id);
                kizuna_nsips::convert_dir(&f.id, &corpus.join("nsips").join(&f.id), &root).unwrap();
                (f.id.clone(), root)
            } else {
                (f.id.clone(), synth::facility_root(&corpus, &f.id))
            }
        })
        .collect()
}

async fn registry(dir: &Path) -> Registry {
    Registry::open(&format!("sqlite://{}?mode=rwc", dir.join("linkage.sqlite").display())).await.unwrap()
}

/// The patient folders (`xxx/yyy/<id>`) of a storage root.
fn patient_dirs(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for a in std::fs::read_dir(root).unwrap().flatten().filter(|e| e.path().is_dir()) {
        for b in std::fs::read_dir(a.path()).unwrap().flatten().filter(|e| e.path().is_dir()) {
            out.extend(std::fs::read_dir(b.path()).unwrap().flatten().map(|e| e.path()));
        }
    }
    out.sort();
    out
}

/// Moves patient folders of storage root `root` into `tree/<facility>/`, keeping their place.
fn upload(root: &Path, patients: &[PathBuf], tree: &Path, facility: &str) {
    for p in patients {
        let to = tree.join(facility).join(p.strip_prefix(root).unwrap());
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::rename(p, to).unwrap();
    }
}

/// The lab's register (synth seed 11, 4 hospitals/clinics and 1 pharmacy, 16 people: 30 or so
/// registrations, far too few to train on), uploaded one facility per pass: every person registered
/// at several facilities ends with one common ID over all of them, and no two people share one.
#[tokio::test]
async fn a_small_register_is_linked_by_the_builtin_model_facility_by_facility() {
    let dir = tempfile::tempdir().unwrap();
    let roots = corpus(dir.path(), 11, 4, 1, 16);
    let truth = read_ground_truth(&dir.path().join("corpus/ground-truth.csv")).unwrap();
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(&tree).unwrap();
    let reg = registry(dir.path()).await;

    let (mut builtin_id, mut reviews) = (None, 0);
    for (i, (facility, root)) in roots.iter().enumerate() {
        upload(root, &patient_dirs(root), &tree, facility);
        let pass = link_tree(&reg, &tree).await.unwrap();
        assert_eq!(pass.facilities, i + 1);
        reviews += pass.reviews;
        match (&pass.matcher, builtin_id) {
            (MatcherState::BuiltIn { id, installed_now: true, why: Some(why) }, None) => {
                assert!(why.contains("too few"), "{why}");
                builtin_id = Some(*id);
            }
            (MatcherState::BuiltIn { id, installed_now: false, why: Some(_) }, Some(b)) => assert_eq!(*id, b),
            other => panic!("pass {i}: {other:?}"),
        }
        if i == 0 {
            assert_eq!(
                (pass.new_ids, pass.auto_linked),
                (pass.enrolled, 0),
                "one facility: nobody to link to"
            );
        }
    }
    let builtin_id = builtin_id.unwrap();
    let report = reg.matcher_report(builtin_id).await.unwrap().unwrap();
    assert!(report.builtin.is_some(), "the stored report marks the built-in model: {report:?}");

    // Every registration of the corpus is enrolled.
    let links: BTreeMap<RecordKey, CommonId> = reg.all_links().await.unwrap().into_iter().collect();
    assert_eq!(links.keys().collect::<BTreeSet<_>>(), truth.person.keys().collect::<BTreeSet<_>>());
    let mut ids_of: BTreeMap<&str, BTreeSet<&CommonId>> = BTreeMap::new();
    let mut people_of: BTreeMap<&CommonId, BTreeSet<&str>> = BTreeMap::new();
    for (key, id) in &links {
        let person = truth.person[key].as_str();
        ids_of.entry(person).or_default().insert(id);
        people_of.entry(id).or_default().insert(person);
    }
    // Precision 1.0: no common ID holds two people.
    for (id, people) in &people_of {
        assert_eq!(people.len(), 1, "{id} links different people: {people:?}");
    }
    // Recall 1.0: each person has exactly one common ID over all their registrations.
    let several: Vec<_> =
        ids_of.keys().filter(|p| truth.person.values().filter(|q| q.as_str() == **p).count() > 1).collect();
    assert!(several.len() >= 5, "the corpus has people at several facilities: {several:?}");
    for (person, ids) in &ids_of {
        assert_eq!(ids.len(), 1, "{person} has several common IDs: {ids:?}");
    }
    let q = kizuna_index::quality::evaluate(
        &links.iter().map(|(k, c)| (k.clone(), c.clone())).collect::<Vec<_>>(),
        &truth,
    );
    eprintln!("lab register: {} registrations, {reviews} review items, {q:?}", links.len());
    assert_eq!((q.precision, q.recall), (1.0, 1.0), "{q:?}");
    // The lab's example: P0000009 at (among others) three facilities and the pharmacy, one ID, every
    // link but the first made by the built-in model (auto links carry its id).
    let p9: BTreeSet<(String, &CommonId)> = links
        .iter()
        .filter(|(k, _)| truth.person[*k] == "P0000009")
        .map(|(k, c)| (k.facility.clone(), c))
        .collect();
    let facilities9: BTreeSet<&str> = p9.iter().map(|(f, _)| f.as_str()).collect();
    for f in ["0411310267", "0412110534", "0413511144", "0444011581"] {
        assert!(facilities9.contains(f), "P0000009 at {facilities9:?}");
    }
    let id9 = p9.iter().next().unwrap().1;
    let history = reg.history_of(id9).await.unwrap();
    let auto: Vec<_> = history.iter().filter(|e| e.method == "auto").collect();
    assert_eq!(auto.len(), facilities9.len() - 1, "{history:?}");
    assert!(auto.iter().all(|e| e.model_id == Some(builtin_id)), "{history:?}");

    // A pass with nothing new keeps the built-in model and tries no training.
    let again = link_tree(&reg, &tree).await.unwrap();
    assert_eq!(again.enrolled, 0);
    assert_eq!(again.matcher, MatcherState::BuiltIn { id: builtin_id, installed_now: false, why: None });
}

/// A register that starts small (the built-in model) and grows past the training threshold gets a
/// trained model installed, which then scores the new enrollments and is kept.
#[tokio::test]
async fn a_register_that_grows_gets_a_trained_matcher() {
    let dir = tempfile::tempdir().unwrap();
    let roots = corpus(dir.path(), 20261126, 3, 0, 150);
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(&tree).unwrap();
    let reg = registry(dir.path()).await;

    // Ten patients of the first facility: too few to train on.
    let (f0, r0) = &roots[0];
    let first_ten: Vec<PathBuf> = patient_dirs(r0).into_iter().take(10).collect();
    upload(r0, &first_ten, &tree, f0);
    let first = link_tree(&reg, &tree).await.unwrap();
    let MatcherState::BuiltIn { id: builtin_id, installed_now: true, why: Some(why) } = first.matcher else {
        panic!("{first:?}")
    };
    assert!(why.contains("too few"), "{why}");
    assert_eq!(first.enrolled, 10);

    // Everything else arrives: training succeeds and the trained model is installed and used.
    for (f, r) in &roots {
        upload(r, &patient_dirs(r), &tree, f);
    }
    let second = link_tree(&reg, &tree).await.unwrap();
    let MatcherState::Trained(trained_id) = second.matcher else { panic!("{second:?}") };
    assert!(trained_id > builtin_id);
    assert!(second.auto_linked > 0, "{second:?}");
    let (id, m) = reg.matcher().await.unwrap().unwrap();
    assert_eq!(id, trained_id);
    assert_ne!(m.model, kizuna_index::matcher::builtin().matcher.model);
    assert!(reg.matcher_report(trained_id).await.unwrap().unwrap().builtin.is_none());
    let mut auto_models = BTreeSet::new();
    for (key, _) in reg.all_links().await.unwrap() {
        for e in reg.history(&key).await.unwrap().into_iter().filter(|e| e.method == "auto") {
            auto_models.insert(e.model_id);
        }
    }
    assert_eq!(
        auto_models,
        BTreeSet::from([Some(trained_id)]),
        "the second pass's links are the trained model's"
    );

    let truth = read_ground_truth(&dir.path().join("corpus/ground-truth.csv")).unwrap();
    let q = kizuna_index::quality::evaluate(&reg.all_links().await.unwrap(), &truth);
    eprintln!("grown register: {q:?}");
    assert_eq!(q.precision, 1.0, "{q:?}");

    // Nothing new: the trained model stays, nothing is trained again.
    let third = link_tree(&reg, &tree).await.unwrap();
    assert_eq!((third.enrolled, third.matcher), (0, MatcherState::Installed(trained_id)));
    assert_eq!(facilities(&tree).unwrap().len(), 3);
}

/// Writes one ADT message for patient `pid` of `facility` into `tree`, as the store files it.
fn put(tree: &Path, facility: &str, pid: &str, timestamp: &str, bytes: &[u8]) -> PathBuf {
    let name = format!("{pid}_-_ADT-00_999999999999999_{timestamp}_-_1");
    let path = tree.join(facility).join(&pid[..3]).join(&pid[3..6]).join(pid).join("-/ADT-00").join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, bytes).unwrap();
    path
}

fn adt(family: &str, given: &str, reading: &str, pid7: &str) -> Vec<u8> {
    let text = format!(
        "MSH|^~\\&|HIS|F001|KIZUNA|CENTRE|20240401120000||ADT^A08|1|P|2.5||||||~ISO IR87||ISO 2022-1994\r\
         PID|||0000012345^^^^PI||{family}^{given}^^^^^L^I~{reading}^^^^^^L^P||{pid7}|F|||^^仙台市青葉区一番町1-2-3\r"
    );
    ssmix2::hl7::Message::parse(&text).unwrap().encode().unwrap()
}

/// A PID-7 that is not `YYYYMMDD` and a file that is not HL7 at all do not stop the pass: the
/// patient is enrolled without a birth date, the file is skipped and named in the pass summary,
/// and every other patient is enrolled.
#[tokio::test]
async fn an_odd_birth_date_or_an_unreadable_file_does_not_stop_the_pass() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    let ts = "20240401120000000";
    put(&tree, "F001", "1000000001", ts, &adt("佐藤", "花子", "サトウ ハナコ", "19800131"));
    put(&tree, "F001", "1000000002", ts, &adt("鈴木", "一郎", "スズキ イチロウ", "1980"));
    put(&tree, "F001", "1000000003", ts, &adt("高橋", "恵", "タカハシ メグミ", "1975/03/12"));
    let garbage = put(&tree, "F001", "1000000004", ts, b"\x00\x01 not a message");
    // An older readable file and a newer unreadable one: enrolled from the older.
    put(&tree, "F002", "2000000005", ts, &adt("千葉", "茂", "チバ シゲル", "19400505"));
    let newer = put(&tree, "F002", "2000000005", "20240501120000000", b"MSH|garbage\xff\xfe");
    let reg = registry(dir.path()).await;

    let pass = link_tree(&reg, &tree).await.unwrap();
    assert_eq!(pass.enrolled, 4, "{pass:?}");
    assert_eq!(pass.skipped.len(), 2, "{pass:?}");
    let named = |p: &Path| pass.skipped.iter().any(|s| s.contains(&*p.display().to_string()));
    assert!(named(&garbage) && named(&newer), "{pass:?}");
    let read =
        kizuna_index::source::read_storage_root_except(&tree.join("F001"), "F001", |p| p == "1000000004")
            .unwrap();
    let births: Vec<Option<&str>> = read.iter().map(|(_, d)| d.birth_date.as_deref()).collect();
    assert_eq!(births, vec![Some("19800131"), None, Some("19750312")]);
    assert!(reg.find(&RecordKey::new("F002", "2000000005").unwrap()).await.unwrap().is_some());
    assert!(reg.find(&RecordKey::new("F001", "1000000004").unwrap()).await.unwrap().is_none());

    // The next pass reads only the patient still not enrolled, and reports their file again.
    let again = link_tree(&reg, &tree).await.unwrap();
    assert_eq!((again.enrolled, again.known), (0, 4), "{again:?}");
    assert_eq!(again.skipped.len(), 1, "{again:?}");
}
