//! The generated corpus: determinism, well-formed files, NHO rules, flags, ground truth, NSIPS.

mod support;

use std::collections::{BTreeMap, BTreeSet};

use ssmix2::hl7::Message;
use ssmix2::{ConditionFlag, DataKey, DataType, FileName, StoragePath};
use support::{config, corpus, csv, facility_roots, files, tree_hash};

#[test]
fn same_seed_gives_byte_identical_output_and_another_seed_differs() {
    let small = |seed| synth::GenConfig {
        patients: 40,
        facilities: 3,
        pharmacies: 1,
        bad: 14,
        to: synth::CivilDate::constant(2024, 6, 30),
        ..config(seed)
    };
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let c = tempfile::tempdir().unwrap();
    // One thread and three threads: scheduling must not show in the output.
    let pool = |n| rayon::ThreadPoolBuilder::new().num_threads(n).build().unwrap();
    let sa = pool(1).install(|| synth::generate(&small(7), a.path(), &|_| {})).unwrap();
    let sb = pool(3).install(|| synth::generate(&small(7), b.path(), &|_| {})).unwrap();
    synth::generate(&small(8), c.path(), &|_| {}).unwrap();
    assert_eq!(sa, sb);
    assert!(sa.files > 100, "{sa:?}");
    assert_eq!(tree_hash(a.path()), tree_hash(b.path()));
    assert_ne!(tree_hash(a.path()), tree_hash(c.path()));
}

#[test]
fn refuses_a_non_empty_output_folder_and_bad_configs() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("x"), b"x").unwrap();
    let err = synth::generate(&config(1), d.path(), &|_| {}).unwrap_err();
    assert!(matches!(err, synth::SynthError::OutputNotEmpty(_)), "{err}");
    let e = tempfile::tempdir().unwrap();
    let backwards = synth::GenConfig { from: synth::CivilDate::constant(2025, 1, 1), ..config(1) };
    assert!(matches!(synth::generate(&backwards, e.path(), &|_| {}), Err(synth::SynthError::Config(_))));
}

#[test]
fn every_file_decodes_parses_round_trips_and_agrees_with_its_path() {
    let c = corpus();
    let mut count = 0;
    for (_, root) in facility_roots(c.dir.path(), &c.summary) {
        for f in files(&root) {
            let rel = f.strip_prefix(&root).unwrap().to_str().unwrap().to_owned();
            let sp = StoragePath::parse(&rel).unwrap_or_else(|e| panic!("{rel}: {e}"));
            assert_eq!(sp.to_string(), rel);
            let bytes = std::fs::read(&f).unwrap();
            let m = Message::decode(&bytes).unwrap_or_else(|e| panic!("{rel}: {e}"));
            assert_eq!(m.encode().unwrap(), bytes, "{rel} does not round-trip");
            let text = m.to_text();
            assert!(synth::charset::is_jis_x_0208(&text), "{rel} leaves JIS X 0208");
            let n = &sp.name;
            assert_eq!(m.value("PID-3").as_deref(), Some(n.patient.as_str()), "{rel}");
            let mt = m.message_type().unwrap().key();
            assert!(n.data_type.message_types().contains(&mt.as_str()), "{rel}: {mt}");
            assert_eq!(m.value("MSH-18[2]").as_deref(), Some("ISO IR87"), "{rel}");
            assert_eq!(m.value("MSH-20").as_deref(), Some("ISO 2022-1994"), "{rel}");
            assert_eq!(m.value("MSH-21.3").as_deref(), Some("1.2.392.200250.2.1.100.1.2.120"), "{rel}");
            assert!(text.ends_with('\r') && !text.contains('\n'), "{rel}");
            count += 1;
        }
    }
    assert_eq!(count as u64, c.summary.files);
}

#[test]
fn every_file_passes_the_nho_tables() {
    let c = corpus();
    let tables = support::nho::Tables::load();
    let mut bad = Vec::new();
    for (_, root) in facility_roots(c.dir.path(), &c.summary) {
        for f in files(&root) {
            let rel = f.strip_prefix(&root).unwrap().to_str().unwrap().to_owned();
            let name = StoragePath::parse(&rel).unwrap().name;
            let text = Message::decode(&std::fs::read(&f).unwrap()).unwrap().to_text();
            for p in tables.check(&text, name.data_type.code(), &name.care_date.to_string()) {
                bad.push(format!("{rel}: {p}"));
            }
        }
    }
    assert!(bad.is_empty(), "{} problems, first: {:#?}", bad.len(), &bad[..bad.len().min(20)]);
}

#[test]
fn every_data_type_and_flags_0_1_2_appear_with_possible_histories() {
    let c = corpus();
    let mut keys: BTreeMap<(String, DataKey), Vec<FileName>> = BTreeMap::new();
    for (fac, root) in facility_roots(c.dir.path(), &c.summary) {
        for f in files(&root) {
            let name: FileName = f.file_name().unwrap().to_str().unwrap().parse().unwrap();
            keys.entry((fac.clone(), name.key())).or_default().push(name);
        }
    }
    let types: BTreeSet<DataType> = keys.keys().map(|(_, k)| k.data_type).collect();
    let missing: Vec<&str> = DataType::ALL.iter().filter(|t| !types.contains(t)).map(|t| t.code()).collect();
    assert!(missing.is_empty(), "data types never generated: {missing:?}");
    let mut flags = BTreeSet::new();
    for ((fac, key), names) in &keys {
        let current = names.iter().filter(|n| n.flag == ConditionFlag::Current).count();
        let deleted = names.iter().filter(|n| n.flag == ConditionFlag::Deleted).count();
        assert!(current <= 1, "{fac} {key:?}: {current} current versions");
        assert!(deleted == 0 || deleted == names.len(), "{fac} {key:?}: deleted key keeps live versions");
        assert!(current == 1 || deleted > 0, "{fac} {key:?}: no current version and not deleted");
        if current == 1 {
            let newest = names.iter().max_by_key(|n| n.timestamp).unwrap();
            assert_eq!(newest.flag, ConditionFlag::Current, "{fac} {key:?}: current is not the newest");
        }
        flags.extend(names.iter().map(|n| n.flag));
    }
    assert_eq!(flags.len(), 3, "flags seen: {flags:?}");
    assert!(c.summary.by_flag["0"] > 0 && c.summary.by_flag["2"] > 0);
}

#[test]
fn ground_truth_maps_every_registration_to_a_person() {
    let c = corpus();
    let out = c.dir.path();
    let gt = csv(&out.join("ground-truth.csv"));
    assert_eq!(
        gt[0],
        ["person_id", "facility_id", "facility_kind", "patient_id", "registered_on", "variants"]
    );
    let persons: BTreeSet<String> =
        csv(&out.join("persons.csv")).into_iter().skip(1).map(|r| r[0].clone()).collect();
    assert_eq!(persons.len() as u64, c.summary.persons);
    let mut per_person: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let mut registrations: BTreeSet<(String, String)> = BTreeSet::new();
    let mut variants: BTreeSet<&str> = BTreeSet::new();
    for row in &gt[1..] {
        assert_eq!(row.len(), 6, "{row:?}");
        assert!(persons.contains(&row[0]), "{row:?}");
        assert!(registrations.insert((row[1].clone(), row[3].clone())), "duplicate registration {row:?}");
        per_person.entry(&row[0]).or_default().insert(&row[1]);
        variants.extend(row[5].split(';').filter(|v| !v.is_empty()));
    }
    assert_eq!(per_person.len(), persons.len(), "someone is registered nowhere");
    assert!(
        per_person.values().filter(|f| f.len() >= 3).count() >= 10,
        "too few people at three or more facilities"
    );
    for v in ["old-kanji", "kana-large", "typo-kana", "moved-during-period", "addr-kanji", "addr-hyphen"] {
        assert!(variants.contains(v), "no registration with variant {v}: {variants:?}");
    }
    // Every patient folder in the trees is a registration of that facility.
    for (fac, root) in facility_roots(out, &c.summary) {
        for a in std::fs::read_dir(&root).unwrap() {
            for b in std::fs::read_dir(a.unwrap().path()).unwrap() {
                for p in std::fs::read_dir(b.unwrap().path()).unwrap() {
                    let pid = p.unwrap().file_name().to_string_lossy().into_owned();
                    assert!(
                        registrations.contains(&(fac.clone(), pid.clone())),
                        "{fac}/{pid} missing from the ground truth"
                    );
                }
            }
        }
    }
    // Some people are at a pharmacy and at a hospital or clinic.
    let at_pharmacy: BTreeSet<&str> =
        gt[1..].iter().filter(|r| r[2] == "pharmacy").map(|r| r[0].as_str()).collect();
    assert!(!at_pharmacy.is_empty());
    assert!(at_pharmacy.iter().all(|p| gt[1..].iter().any(|r| r[0] == *p && r[2] != "pharmacy")));
}

#[test]
fn manifest_counts_agree_with_the_tree() {
    let c = corpus();
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(c.dir.path().join("manifest.json")).unwrap()).unwrap();
    assert_eq!(m["files"].as_u64(), Some(c.summary.files));
    for (fac, root) in facility_roots(c.dir.path(), &c.summary) {
        let listed = c.summary.facilities.iter().find(|f| f.id == fac).unwrap();
        assert_eq!(files(&root).len() as u64, listed.files, "{fac}");
        assert_eq!(fac.len(), 10);
    }
    let total: u64 = c.summary.by_data_type.values().sum();
    assert_eq!(total, c.summary.files);
}

#[test]
fn nsips_files_parse_back_line_by_line() {
    let c = corpus();
    let gt = csv(&c.dir.path().join("ground-truth.csv"));
    let pharmacy_patients: BTreeSet<(String, String)> =
        gt[1..].iter().filter(|r| r[2] == "pharmacy").map(|r| (r[1].clone(), r[3].clone())).collect();
    let layout: BTreeMap<&str, usize> = synth::nsips::LAYOUT.iter().map(|(k, f)| (*k, f.len())).collect();
    let mut seen_formats = BTreeSet::new();
    let mut records = BTreeMap::new();
    let nsips = files(&c.dir.path().join("nsips"));
    assert_eq!(nsips.len() as u64, c.summary.nsips_files);
    assert!(!nsips.is_empty());
    for f in nsips {
        let pharmacy = f.parent().unwrap().file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(&f).unwrap();
        let (text, utf8) = match String::from_utf8(bytes.clone()) {
            Ok(s) => (s, true),
            Err(_) => {
                let (s, _, bad) = encoding_rs::SHIFT_JIS.decode(&bytes);
                assert!(!bad, "{}", f.display());
                (s.into_owned(), false)
            }
        };
        let crlf = text.contains("\r\n");
        seen_formats.insert((utf8, crlf));
        let mut lines = text.lines().map(|l| l.trim_end_matches('\r'));
        let header: Vec<&str> = lines.next().unwrap().split(',').collect();
        assert_eq!(header[0], synth::nsips::VERSION);
        assert_eq!(header.len(), layout["VER"]);
        assert_eq!(header[5], &pharmacy[3..]);
        for (n, line) in lines.enumerate() {
            let fields: Vec<&str> = line.split(',').collect();
            let want = layout
                .get(fields[0])
                .unwrap_or_else(|| panic!("{}:{}: record type {}", f.display(), n + 2, fields[0]));
            assert_eq!(fields.len(), *want, "{}:{}: {line}", f.display(), n + 2);
            *records.entry(fields[0].to_owned()).or_insert(0) += 1;
            if fields[0] == "1" {
                assert!(pharmacy_patients.contains(&(pharmacy.clone(), fields[1].to_owned())), "{line}");
            }
            if fields[0] == "4" {
                assert_eq!(fields[3].len(), 12, "YJ code in {line}");
            }
        }
    }
    assert_eq!(records.len(), 8, "record types seen: {records:?}");
    assert_eq!(seen_formats.len(), 4, "encodings and line endings: {seen_formats:?}");
}

#[test]
fn bad_files_are_listed_one_per_kind_and_kept_out_of_the_clean_trees() {
    let c = corpus();
    let out = c.dir.path();
    let listed = csv(&out.join("bad-files.csv"));
    assert_eq!(listed[0], ["path", "code", "what"]);
    assert_eq!(listed.len() - 1, config(0).bad as usize);
    let codes: BTreeSet<&str> = listed[1..].iter().map(|r| r[1].as_str()).collect();
    assert_eq!(codes.len(), synth::bad::KINDS.len());
    for row in &listed[1..] {
        assert!(row[0].starts_with("bad/"), "{row:?}");
        assert!(out.join(&row[0]).is_file(), "{row:?}");
        assert!(ssmix2::validate::Code::parse(&row[1]).is_some(), "{row:?}");
    }
    // Each flag history adds its newer, unlisted partner.
    let histories = listed.iter().filter(|r| r[1] == "flag-history").count();
    assert_eq!(files(&out.join("bad")).len(), listed.len() - 1 + histories);
}
