//! The generator against Kizuna's own validator (`ssmix2::validate`): clean trees validate clean,
//! and every listed bad file raises exactly its listed code.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use ssmix2::validate::{Code, Validator};
use ssmix2::walk::validate_tree;
use support::{corpus, csv, facility_roots, shared};

fn validator() -> Validator {
    Validator::from_nho_tables(&shared().join("external/nhoHQ-SSMIX2DataTestingTool/include")).unwrap()
}

#[test]
fn generated_facility_trees_validate_clean() {
    let c = corpus();
    let v = validator();
    let mut found = Vec::new();
    let mut files = 0;
    for (_, root) in facility_roots(c.dir.path(), &c.summary) {
        let stats = validate_tree(&root, &v, |x| found.push(x.to_string())).unwrap();
        files += stats.files;
    }
    assert_eq!(files, c.summary.files);
    found.sort();
    assert!(found.is_empty(), "{} violations, first: {:#?}", found.len(), &found[..found.len().min(20)]);
}

#[test]
fn each_bad_file_raises_exactly_its_listed_code() {
    let c = corpus();
    let out = c.dir.path();
    let root = out.join("bad");
    let mut raised: BTreeMap<PathBuf, BTreeSet<Code>> = BTreeMap::new();
    validate_tree(&root, &validator(), |x| {
        raised.entry(x.file.clone()).or_default().insert(x.code);
    })
    .unwrap();
    let listed = csv(&out.join("bad-files.csv"));
    let mut codes_seen = BTreeSet::new();
    for row in &listed[1..] {
        let path = out.join(&row[0]);
        let want = Code::parse(&row[1]).unwrap();
        let got = raised.remove(&path).unwrap_or_default();
        assert_eq!(got, BTreeSet::from([want]), "{} ({})", row[0], row[2]);
        codes_seen.insert(want);
    }
    assert!(raised.is_empty(), "unlisted files raised violations: {raised:?}");
    assert_eq!(codes_seen.len(), synth::bad::KINDS.len());
}
