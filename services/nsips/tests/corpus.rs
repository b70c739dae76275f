//! Every NSIPS export of a synthetic corpus parses, converts to SS-MIX2 OMP-01 messages that the
//! validator accepts without a single violation, and the messages carry the source's drugs and patient.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use kizuna_nsips::{Encoding, Warning, parse, to_ssmix2};
use ssmix2::hl7::Message;
use ssmix2::validate::{Scratch, Validator};

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    out.sort();
    out
}

/// The fields of one source line.
type Line = Vec<String>;

/// The source, read independently of the crate: per record 1, its fields, its record 3s and record 4s.
fn raw_dispensings(bytes: &[u8]) -> Vec<(Line, Vec<Line>, Vec<Line>)> {
    let text = match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(_) => encoding_rs::SHIFT_JIS.decode(bytes).0.into_owned(),
    };
    let mut out: Vec<(Line, Vec<Line>, Vec<Line>)> = Vec::new();
    for line in text.lines().skip(1) {
        let f: Vec<String> = line.trim_end_matches('\r').split(',').map(str::to_owned).collect();
        match f[0].as_str() {
            "1" => out.push((f, Vec::new(), Vec::new())),
            "3" => out.last_mut().unwrap().1.push(f),
            "4" => out.last_mut().unwrap().2.push(f),
            _ => {}
        }
    }
    out
}

#[test]
fn every_synthetic_export_converts_to_valid_omp01_with_the_source_content() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = synth::GenConfig {
        pharmacies: 1,
        sync: false,
        ..synth::GenConfig::new(
            11,
            3,
            80,
            synth::CivilDate::constant(2024, 1, 1),
            synth::CivilDate::constant(2024, 6, 30),
        )
    };
    synth::generate(&cfg, dir.path(), &|_| {}).unwrap();
    let pharmacies = files(&dir.path().join("nsips"));
    assert_eq!(pharmacies.len(), 1);
    let facility = pharmacies[0].file_name().unwrap().to_str().unwrap().to_owned();
    let validator = Validator::from_default_tables().unwrap();
    let root = dir.path().join("converted").join(&facility);
    let mut formats = BTreeSet::new();
    let (mut messages, mut drugs) = (0, 0);
    for f in files(&pharmacies[0]) {
        let bytes = std::fs::read(&f).unwrap();
        let parsed = parse(&bytes, &f).unwrap_or_else(|e| panic!("{e}"));
        formats.insert((parsed.encoding == Encoding::Cp932, parsed.crlf));
        let raw = raw_dispensings(&bytes);
        assert_eq!(parsed.dispensings.len(), raw.len(), "{}", f.display());
        assert!(parsed.held_back.is_empty(), "{:?}", parsed.held_back);
        let c = to_ssmix2(&parsed, &facility).unwrap_or_else(|e| panic!("{e}"));
        assert!(c.replaced.iter().all(|w| matches!(w, Warning::Replaced(_))), "{:?}", c.replaced);
        assert!(c.held_back.is_empty(), "{:?}", c.held_back);
        let out = c.files;
        assert_eq!(out.len(), raw.len());
        for ((path, msg), (patient, rps, rx_drugs)) in out.iter().zip(&raw) {
            let file = root.join(path.relative());
            let mut violations = Vec::new();
            validator.check(Some(&root), &file, msg, &mut Scratch::default(), &mut |v| violations.push(v));
            assert!(violations.is_empty(), "{}: {violations:#?}", file.display());
            // Patient and drugs as the source wrote them.
            let m = Message::decode(msg).unwrap();
            assert_eq!(path.name.patient.as_str(), patient[1]);
            assert_eq!(m.value("PID-3").as_deref(), Some(patient[1].as_str()));
            let (family, given) = patient[2].split_once('　').unwrap();
            assert_eq!(m.value("PID-5.1").as_deref(), Some(family));
            assert_eq!(m.value("PID-5.2").as_deref(), Some(given));
            assert_eq!(m.value("PID-7").as_deref(), Some(patient[5].as_str()));
            assert_eq!(m.value("PID-8").as_deref(), Some(if patient[4] == "1" { "M" } else { "F" }));
            assert_eq!(m.value("MSH-4").as_deref(), Some(facility.as_str()));
            assert_eq!(m.segments_named("RXE").count(), rx_drugs.len());
            for (i, d) in rx_drugs.iter().enumerate() {
                let n = i + 1;
                let rp = rps.iter().find(|r| r[1] == d[1]).unwrap();
                assert_eq!(m.value(&format!("RXE[{n}]-2.1")).as_deref(), Some(d[5].as_str()));
                assert_eq!(m.value(&format!("RXE[{n}]-2.2")).as_deref(), Some(d[6].as_str()));
                assert_eq!(m.value(&format!("RXE[{n}]-2.4")).as_deref(), Some(d[3].as_str()));
                assert_eq!(m.value(&format!("RXE[{n}]-2.6")).as_deref(), Some("YJ"));
                assert_eq!(m.value(&format!("RXE[{n}]-19.1")).as_deref(), Some(d[7].as_str()));
                // The unit as written, with a code in component 1 (what the store reads).
                assert_eq!(m.value(&format!("RXE[{n}]-5.2")).as_deref(), Some(d[8].as_str()));
                assert!(m.value(&format!("RXE[{n}]-5.1")).is_some_and(|c| !c.is_empty()), "RXE-5.1");
                let per_day: u32 = d[7].parse().unwrap();
                let days: u32 = rp[4].parse().unwrap();
                let times: u32 = rp[5].parse().unwrap();
                assert_eq!(m.value(&format!("RXE[{n}]-10")), Some((per_day * days).to_string().into()));
                if per_day.is_multiple_of(times) {
                    assert_eq!(m.value(&format!("RXE[{n}]-3")), Some((per_day / times).to_string().into()));
                }
                assert_eq!(m.value(&format!("TQ1[{n}]-6.1")).as_deref(), Some(rp[4].as_str()));
                assert_eq!(m.value(&format!("TQ1[{n}]-3.1.1")).as_deref(), Some(rp[2].as_str()));
                assert!(m.value(&format!("RXR[{n}]-1.1")).is_some());
                // The order's fields where HL7 puts them (ORC-12 ordering provider, ORC-17
                // entering organisation, ORC-21 ordering facility with its code, ORC-29 order type).
                let orc =
                    |f: &str| m.value(&format!("ORC[{n}]-{f}")).map(|v| v.to_string()).unwrap_or_default();
                assert_eq!(orc("11.2"), "", "ORC-11 (verified by) stays empty");
                assert!(!orc("12.2").is_empty(), "ORC-12: the prescribing doctor");
                assert!(!orc("17.2").is_empty(), "ORC-17: the department");
                assert_eq!(orc("14.2"), "", "ORC-14 (call back phone) stays empty");
                assert!(!orc("21.1").is_empty(), "ORC-21: the prescriber's institution");
                let code = orc("21.10");
                assert!(code.len() == 10 && code.bytes().all(|b| b.is_ascii_digit()), "ORC-21.10: {code}");
                assert_eq!(orc("22.6"), "JPN", "ORC-22: the institution's address");
                assert_eq!(orc("29.1"), "O", "ORC-29: an outpatient order");
                assert!(orc("9").starts_with(&path.name.care_date.to_string()), "ORC-9: {}", orc("9"));
                drugs += 1;
            }
            messages += 1;
        }
    }
    assert_eq!(formats.len(), 4, "CP932/UTF-8 × CRLF/LF: {formats:?}");
    assert!(messages > 10 && drugs > messages, "{messages} messages, {drugs} drugs");
    eprintln!("converted {messages} dispensings with {drugs} drugs, all valid");
}

#[test]
fn a_facility_id_that_is_not_the_headers_pharmacy_is_refused() {
    let text = "VER010603,20240105190000,T01,04,4,1234567,ｶ薬局,980-0001,仙台市,022-000-0000\n";
    let f = parse(text.as_bytes(), Path::new("p.csv")).unwrap();
    assert!(to_ssmix2(&f, "0441234567").unwrap().files.is_empty());
    let err = to_ssmix2(&f, "0447654321").unwrap_err().to_string();
    assert!(err.starts_with("p.csv:1:") && err.contains("1234567"), "{err}");
}

#[test]
fn written_files_land_at_their_storage_paths_and_rewrites_are_refused() {
    let text = "VER010603,20240105190000,T01,04,4,1234567,ｶ薬局,980-0001,仙台市,022-000-0000\n\
        1,00012345,佐藤　花子,サトウ　ハナコ,2,19500312,980-0002,仙台市,022-111-1111,06040001\n\
        2,2024010500001,20240104,0410000017,仙台中央病院,内科,鈴木　一郎,20240105\n\
        3,1,1011040000000000,内服・経口・１日１回朝食後,28,1\n\
        4,1,1,2171022F2020,612345678,116523801,アムロジピン錠５ｍｇ,1,錠\n";
    let f = parse(text.as_bytes(), Path::new("p.csv")).unwrap();
    let out = to_ssmix2(&f, "0441234567").unwrap().files;
    let root = tempfile::tempdir().unwrap();
    assert_eq!(kizuna_nsips::write_files(root.path(), &out).unwrap(), 1);
    let path = root.path().join(out[0].0.relative());
    assert_eq!(std::fs::read(&path).unwrap(), out[0].1);
    assert_eq!(std::fs::read_dir(path.parent().unwrap()).unwrap().count(), 1, "no temporary file left");
    // Same bytes again: nothing to do. Other bytes under the same name: refused.
    assert_eq!(kizuna_nsips::write_files(root.path(), &out).unwrap(), 0);
    let changed = vec![(out[0].0.clone(), b"other".to_vec())];
    let err = kizuna_nsips::write_files(root.path(), &changed).unwrap_err().to_string();
    assert!(err.contains("never rewritten"), "{err}");
    // The same prescription sent again later (a re-sent day): the earlier file becomes `_2` and
    // the later one is current; one `_1` per prescription, as the store would keep it.
    let resent = text.replacen("20240105190000", "20240106083000", 1);
    let f2 = parse(resent.as_bytes(), Path::new("p2.csv")).unwrap();
    let out2 = to_ssmix2(&f2, "0441234567").unwrap().files;
    assert_eq!(kizuna_nsips::write_files(root.path(), &out2).unwrap(), 1);
    let mut names: Vec<String> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names[0].contains("_20240105190000000_") && names[0].ends_with("_2"), "{names:?}");
    assert!(names[1].contains("_20240106083000000_") && names[1].ends_with("_1"), "{names:?}");
    // Converting the first export again changes nothing.
    assert_eq!(kizuna_nsips::write_files(root.path(), &out).unwrap(), 0);
}

#[test]
fn a_dispensing_without_drugs_yields_no_message() {
    let text = "VER010603,20240105190000,T01,04,4,1234567,ｶ薬局,980-0001,仙台市,022-000-0000\n\
        1,00012345,佐藤　花子,サトウ　ハナコ,2,19500312,980-0002,仙台市,022-111-1111,06040001\n\
        2,2024010500001,20240105,0410000017,仙台中央病院,内科,鈴木　一郎,20240105\n\
        5,2024010500001,20240105,高橋　薬子,45\n\
        7,00001,調剤基本料１,45\n";
    let f = parse(text.as_bytes(), Path::new("p.csv")).unwrap();
    assert_eq!(f.dispensings.len(), 1);
    assert!(to_ssmix2(&f, "0441234567").unwrap().files.is_empty());
}
