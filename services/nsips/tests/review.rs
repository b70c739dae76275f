//! The facility-side review's NSIPS cases (`reviews/agent-nsips.md`, findings 3, 4 and 7), with
//! the reviewer's `mkvar.py` records: Rp groups numbered the same, one bad or unusual dispensing in
//! a file of good ones, a prescription number repeated for one patient and day, drugs without a HOT
//! code, and half-width kana names.

use std::path::Path;

use kizuna_nsips::{Conversion, convert_bytes};
use ssmix2::hl7::Message;
use ssmix2::validate::{Scratch, Validator};

const FACILITY: &str = "0442510774";
const HEADER: &str = "VER010603,20240601190000,T01,04,4,2510774,みどり薬局志津川店,986-0752,宮城県本吉郡南三陸町志津川5-26,022-290-2054";

/// One Rp with one drug: (Rp number, usage code, usage, days, times per day, YJ, receipt, HOT,
/// name, amount per day, unit).
type Rp = (
    u32,
    &'static str,
    &'static str,
    u32,
    u32,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
);

const A: Rp = (
    1,
    "1012040400000000",
    "内服・経口・１日２回朝夕食後",
    28,
    2,
    "3962002F1032",
    "646214203",
    "119653401",
    "メトホルミン塩酸塩錠２５０ｍｇ",
    "4",
    "錠",
);
const B: Rp = (
    1,
    "1011040000000000",
    "内服・経口・１日１回朝食後",
    7,
    1,
    "3969010F2022",
    "613751429",
    "118634101",
    "ジャヌビア錠５０ｍｇ",
    "1",
    "錠",
);

/// `mkvar.py`'s `disp`: the lines of one dispensing.
fn disp(pid: &str, no: &str, day: &str, kana: &str, name: &str, rps: &[Rp], doctor: &str) -> Vec<String> {
    let mut l = vec![
        format!("1,{pid},{name},{kana},1,19810906,986-2261,宮城県女川町女川5丁目2-27,,06040006"),
        format!("2,{no},{day},0411810589,蛇田内科・循環器科,内科,{doctor},{day}"),
    ];
    for (rp, code, usage, days, tpd, yj, rc, h, dn, amt, unit) in rps {
        l.push(format!("3,{rp},{code},{usage},{days},{tpd}"));
        l.push(format!("4,{rp},1,{yj},{rc},{h},{dn},{amt},{unit}"));
    }
    l.extend([
        format!("5,{no},{day},浜田　一郎,125"),
        "7,00001,調剤基本料１,45".into(),
        format!("8,{day},お薬手帳に記載済み"),
    ]);
    l
}

fn simple(pid: &str, no: &str, day: &str, rps: &[Rp]) -> Vec<String> {
    disp(pid, no, day, "イトウ　サカエ", "伊藤　榮", rps, "菅野　栄")
}

fn file(dispensings: &[Vec<String>], cp932_crlf: bool) -> Vec<u8> {
    let eol = if cp932_crlf { "\r\n" } else { "\n" };
    let mut text = format!("{HEADER}{eol}");
    for l in dispensings.iter().flatten() {
        text.push_str(l);
        text.push_str(eol);
    }
    if cp932_crlf {
        let (b, _, bad) = encoding_rs::SHIFT_JIS.encode(&text);
        assert!(!bad);
        b.into_owned()
    } else {
        text.into_bytes()
    }
}

fn convert(bytes: &[u8]) -> Conversion {
    convert_bytes(bytes, Path::new("x.csv"), FACILITY).unwrap()
}

/// Every message is validator-clean; returns them decoded, in order, with their file names.
fn messages(c: &Conversion) -> Vec<(String, Message)> {
    let validator = Validator::from_default_tables().unwrap();
    let root = Path::new("/converted").join(FACILITY);
    c.files
        .iter()
        .map(|(path, msg)| {
            let mut v = Vec::new();
            validator.check(
                Some(&root),
                &root.join(path.relative()),
                msg,
                &mut Scratch::default(),
                &mut |x| v.push(format!("{x:?}")),
            );
            assert!(v.is_empty(), "{}: {v:#?}", path.name);
            (path.name.to_string(), Message::decode(msg).unwrap())
        })
        .collect()
}

fn value(m: &Message, path: &str) -> String {
    m.value(path).map(|v| v.into_owned()).unwrap_or_default()
}

fn warnings(c: &Conversion) -> Vec<String> {
    c.replaced.iter().map(ToString::to_string).collect()
}

/// Finding 3: the second Rp 1 (Januvia, 1 tablet once a day for 7 days) took the first Rp 1's
/// usage (twice a day for 28 days): 0.5 tablet per intake, 28 in total. Each drug now takes the
/// usage of the record 3 it follows.
#[test]
fn a_repeated_rp_number_keeps_each_rps_own_usage() {
    let c = convert(&file(&[simple("00310003", "2024060100001", "20240601", &[A, B])], false));
    assert!(c.held_back.is_empty(), "{:?}", c.held_back);
    let m = messages(&c);
    assert_eq!(m.len(), 1);
    let m = &m[0].1;
    // Metformin: 4 a day, twice a day, 28 days.
    assert_eq!(value(m, "RXE[1]-2.1"), "119653401");
    assert_eq!(
        (value(m, "RXE[1]-3"), value(m, "RXE[1]-10"), value(m, "TQ1[1]-6")),
        ("2".into(), "112".into(), "28".into())
    );
    assert_eq!(value(m, "TQ1[1]-3.1"), "1012040400000000");
    // Januvia: 1 a day, once a day, 7 days.
    assert_eq!(value(m, "RXE[2]-2.1"), "118634101");
    assert_eq!(
        (value(m, "RXE[2]-3"), value(m, "RXE[2]-10"), value(m, "TQ1[2]-6")),
        ("1".into(), "7".into(), "7".into())
    );
    assert_eq!(value(m, "TQ1[2]-3.1"), "1011040000000000");
    assert_eq!(value(m, "RXE[2]-19"), "1");
}

/// Two record 3s numbered 1 followed by two record 4s numbered 1: which usage each drug takes
/// cannot be told, so that dispensing is held back (never converted with a guessed dose), naming
/// line and field; the other dispensing of the file converts.
#[test]
fn an_ambiguous_repeated_rp_number_holds_back_that_dispensing_only() {
    let mut bad = simple("00310003", "2024060100001", "20240601", &[A]);
    // Lines (file): 2 record 1, 3 record 2, 4 record 3 (A), 5 record 4; insert B's record 3 before
    // A's drug and B's drug after it.
    bad.insert(3, "3,1,1011040000000000,内服・経口・１日１回朝食後,7,1".into());
    bad.insert(5, "4,1,2,3969010F2022,613751429,118634101,ジャヌビア錠５０ｍｇ,1,錠".into());
    let good = simple("00310004", "2024060100002", "20240601", &[A]);
    let c = convert(&file(&[bad, good], false));
    let m = messages(&c);
    assert_eq!(m.len(), 1, "only the good dispensing");
    assert_eq!(value(&m[0].1, "PID-3"), "00310004");
    let e = c.held_back.iter().map(|h| h.error.to_string()).collect::<Vec<_>>();
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].starts_with("x.csv:4: record 3 field 1 (Rp number): Rp 1 "), "{}", e[0]);
    assert!(e[0].contains("lines 4 and 5"), "{}", e[0]);
}

/// A record 4 whose Rp number is not that of the record 3 it follows, when that number is used
/// twice, is ambiguous too.
#[test]
fn a_drug_away_from_its_repeated_rp_is_held_back() {
    let mut bad = simple("00310003", "2024060100001", "20240601", &[A]);
    // Rp 1 (A) with its drug, Rp 2 with a drug naming Rp 1, then Rp 1 again (B) with its drug.
    bad.insert(4, "3,2,1011040000000000,内服・経口・１日１回朝食後,7,1".into());
    bad.insert(5, "4,1,2,3969010F2022,613751429,118634101,ジャヌビア錠５０ｍｇ,1,錠".into());
    bad.insert(6, "3,1,1011040000000000,内服・経口・１日１回朝食後,14,1".into());
    bad.insert(7, "4,1,3,3969010F2022,613751429,118634101,ジャヌビア錠５０ｍｇ,1,錠".into());
    let c = convert(&file(&[bad], false));
    assert!(c.files.is_empty());
    let e = c.held_back[0].error.to_string();
    assert!(e.starts_with("x.csv:7: record 4 field 1 (Rp number): "), "{e}");
}

/// Finding 4, `…20240603.csv`: a drug without a HOT code (generic-name prescription) and a
/// prescription without a doctor convert: RXE-2 carries the YJ code (the receipt code as
/// alternate) and a warning names the line and field. Before, the whole file was refused.
#[test]
fn a_drug_without_a_hot_code_converts_with_its_yj_code() {
    let no_hot: Rp = (1, A.1, A.2, A.3, A.4, A.5, A.6, "", A.8, A.9, A.10);
    let c = convert(&file(
        &[
            simple("00310098", "2024060300001", "20240603", &[A]),
            disp("00310003", "2024060300002", "20240603", "イトウ　サカエ", "伊藤　榮", &[no_hot], ""),
        ],
        true,
    ));
    assert!(c.held_back.is_empty(), "{:?}", c.held_back);
    let m = messages(&c);
    assert_eq!(m.len(), 2);
    let m = &m[1].1;
    assert_eq!(value(m, "RXE-2.1"), "3962002F1032");
    assert_eq!(value(m, "RXE-2.2"), "メトホルミン塩酸塩錠２５０ｍｇ");
    assert_eq!(value(m, "RXE-2.3"), "YJ");
    assert_eq!(value(m, "RXE-2.4"), "646214203");
    assert_eq!(value(m, "RXE-3"), "2");
    let w = warnings(&c);
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].starts_with("line 12: record 4 field 5 (HOT code): \"\": "), "{w:?}");
}

/// Neither HOT nor YJ code (an in-house preparation): the receipt code identifies the drug; with
/// no code at all, its name does.
#[test]
fn a_drug_with_only_a_receipt_code_or_a_name_converts() {
    let receipt_only: Rp = (1, A.1, A.2, A.3, A.4, "", A.6, "", A.8, A.9, A.10);
    let name_only: Rp = (2, A.1, A.2, A.3, A.4, "", "", "", "院内製剤軟膏", "10", "g");
    let c =
        convert(&file(&[simple("00310003", "2024060300002", "20240603", &[receipt_only, name_only])], false));
    let m = messages(&c);
    let m = &m[0].1;
    assert_eq!((value(m, "RXE[1]-2.1"), value(m, "RXE[1]-2.3")), ("646214203".into(), "99NSR".into()));
    assert_eq!((value(m, "RXE[2]-2.1"), value(m, "RXE[2]-2.2")), (String::new(), "院内製剤軟膏".into()));
    assert_eq!(warnings(&c).len(), 2, "{:?}", warnings(&c));
}

/// Finding 4, `…20240602.csv`: patient 00310003 has two different dispensings under one
/// prescription number on one day (a split dispensing). Both convert (the second under the order
/// number with `D2` appended), and patient 00310099's dispensing with them.
#[test]
fn a_prescription_number_repeated_for_one_patient_and_day_converts_each_dispensing() {
    let rx = "2024060200001";
    let c = convert(&file(
        &[
            simple("00310099", rx, "20240602", &[A]),
            simple("00310003", rx, "20240602", &[A]),
            simple("00310003", rx, "20240602", &[B]),
        ],
        false,
    ));
    assert!(c.held_back.is_empty(), "{:?}", c.held_back);
    let m = messages(&c);
    let names: Vec<&str> = m.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "00310099_20240602_OMP-01_2024060200001_20240601190000000_-_1",
            "00310003_20240602_OMP-01_2024060200001_20240601190000000_-_1",
            "00310003_20240602_OMP-01_2024060200001D2_20240601190000000_-_1",
        ]
    );
    assert_eq!(value(&m[2].1, "ORC-2"), "2024060200001D2");
    assert_eq!(value(&m[2].1, "RXE-2.1"), "118634101");
    let w = warnings(&c);
    assert!(w.iter().any(|w| w.starts_with("line 17: record 2 field 1 (prescription number)")), "{w:?}");
}

/// The same dispensing exported twice in one file is converted once.
#[test]
fn a_dispensing_repeated_exactly_converts_once() {
    let d = simple("00310003", "2024060200001", "20240602", &[A]);
    let c = convert(&file(&[d.clone(), d], false));
    assert_eq!(c.files.len(), 1);
    assert!(c.held_back.is_empty());
}

/// Finding 4, `…20240605.csv`: one dispensing with a bad date among good ones: the others convert,
/// the bad one is held back with its error (file, line, field), its lines, and a complete NSIPS
/// file of it alone (header and its lines, bytes as exported) to re-send once fixed.
#[test]
fn one_bad_dispensing_does_not_hold_back_the_others() {
    let mut bad = simple("00310002", "2024060500002", "20240605", &[A]);
    bad[1] = bad[1].replace(",20240605,0411", ",20240631,0411");
    let dispensings = [
        simple("00310001", "2024060500001", "20240605", &[A]),
        bad.clone(),
        simple("00310003", "2024060500003", "20240605", &[B]),
    ];
    for cp932 in [false, true] {
        let bytes = file(&dispensings, cp932);
        let c = convert(&bytes);
        assert_eq!(c.dispensings, 3);
        let m = messages(&c);
        let patients: Vec<String> = m.iter().map(|(_, m)| value(m, "PID-3")).collect();
        assert_eq!(patients, ["00310001", "00310003"]);
        assert_eq!(c.held_back.len(), 1);
        let h = &c.held_back[0];
        assert_eq!(h.lines, 9..=15);
        assert_eq!(
            h.error.to_string(),
            "x.csv:10: record 2 field 2 (issued on): \"20240631\" is not a date YYYYMMDD"
        );
        assert_eq!(h.export, file(&[bad.clone()], cp932), "header and its lines as exported");
        // Alone, it fails the same way (on its own line numbers) …
        let again = convert_bytes(&h.export, Path::new("x.csv"), FACILITY).unwrap();
        assert!(again.files.is_empty());
        assert_eq!(
            again.held_back[0].error.to_string(),
            "x.csv:3: record 2 field 2 (issued on): \"20240631\" is not a date YYYYMMDD"
        );
        // … and the warnings name it for callers that only log them.
        let w = warnings(&c);
        assert!(
            w.iter().any(|w| w.starts_with(
                "lines 9-15: dispensing held back (not converted): line 10: record 2 field 2 (issued on)"
            )),
            "{w:?}"
        );
    }
    // Fixed and re-sent alone, it converts.
    let fixed = String::from_utf8(file(&[bad], false)).unwrap().replace(",20240631,0411", ",20240605,0411");
    assert_eq!(convert(fixed.as_bytes()).files.len(), 1);
}

/// Whole-file faults still refuse the file: the header, and a facility that is not the header's
/// pharmacy.
#[test]
fn whole_file_faults_still_refuse_the_file() {
    let bytes = file(&[simple("00310001", "2024060500001", "20240605", &[A])], false);
    let e = convert_bytes(&bytes, Path::new("x.csv"), "0441234567").unwrap_err().to_string();
    assert!(e.contains("does not end in the header's pharmacy code"), "{e}");
    let e = convert_bytes(&bytes[1..], Path::new("x.csv"), FACILITY).unwrap_err().to_string();
    assert!(e.starts_with("x.csv:1: record header field 0 (version)"), "{e}");
}

/// Finding 7: a half-width kana name with a half-width space (`ｲﾄｳ ｻｶｴ`) is split into family and
/// given name in PID-5 like the full-width one.
#[test]
fn a_half_width_kana_name_with_a_half_width_space_is_split() {
    let d = disp("00310003", "2024060400001", "20240604", "ｲﾄｳ ｻｶｴ", "ﾀﾞｲｽｹ　ﾊﾟﾊﾟ", &[A], "菅野 栄");
    let c = convert(&file(&[d], true));
    let m = messages(&c);
    let m = &m[0].1;
    assert_eq!((value(m, "PID-5[1].1"), value(m, "PID-5[1].2")), ("ダイスケ".into(), "パパ".into()));
    assert_eq!((value(m, "PID-5[2].1"), value(m, "PID-5[2].2")), ("イトウ".into(), "サカエ".into()));
    assert_eq!((value(m, "ORC-12.2"), value(m, "ORC-12.3")), ("菅野".into(), "栄".into()));
}

/// A repeated prescription number with no room for the `D<n>` suffix (15 characters at most):
/// that dispensing is held back at conversion, naming its record 2, with its own file; the first
/// converts.
#[test]
fn a_repeated_prescription_number_too_long_to_renumber_is_held_back() {
    let rx = "20240602000001"; // 14 characters: "…D2" would be 16
    let second = simple("00310003", rx, "20240602", &[B]);
    let c = convert(&file(&[simple("00310003", rx, "20240602", &[A]), second.clone()], true));
    assert_eq!(messages(&c).len(), 1);
    assert_eq!(c.held_back.len(), 1);
    let h = &c.held_back[0];
    assert_eq!(h.lines, 9..=15);
    let e = h.error.to_string();
    assert!(
        e.starts_with("x.csv:10: record 2 field 1 (prescription number): \"20240602000001\" is also"),
        "{e}"
    );
    assert_eq!(h.export, file(&[second], true));
}
