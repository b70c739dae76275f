//! Parsing: encodings, line ends, typed records, and errors that name file, line and field.

use std::path::Path;

use kizuna_nsips::{Encoding, NsipsError, Sex, parse};

const GOOD: &[&str] = &[
    "VER010603,20240105190000,T01,04,4,1234567,みやぎ薬局,980-0001,仙台市青葉区一丁目1-1,022-000-0000",
    "1,00012345,佐藤　花子,サトウ　ハナコ,2,19500312,980-0002,仙台市青葉区二丁目2-2,022-111-1111,06040001",
    "2,2024010500001,20240104,0410000017,仙台中央病院,内科,鈴木　一郎,20240105",
    "3,1,1013044400000000,内服・経口・１日３回朝昼夕食後,28,3",
    "4,1,1,3969007F1063,612345678,107851901,メトホルミン塩酸塩錠２５０ｍｇ,6,錠",
    "5,2024010500001,20240105,高橋　薬子,120",
    "6,2024010500001,1,37",
    "7,00001,調剤基本料１,45",
    "8,20240105,お薬手帳に記載済み",
];

fn text(lines: &[&str], eol: &str) -> String {
    lines.iter().map(|l| format!("{l}{eol}")).collect()
}

/// The file's error, or else its first held-back dispensing's (a fault inside a dispensing holds
/// back that dispensing only).
fn err(lines: &[&str]) -> String {
    let e: NsipsError = match parse(text(lines, "\n").as_bytes(), Path::new("x.csv")) {
        Err(e) => e,
        Ok(f) => f.held_back.into_iter().next().expect("an error or a held-back dispensing").error,
    };
    e.to_string()
}

#[test]
fn cp932_crlf_and_utf8_lf_give_the_same_records() {
    let utf8 = parse(text(GOOD, "\n").as_bytes(), Path::new("a.csv")).unwrap();
    let crlf = text(GOOD, "\r\n");
    let (sjis, _, bad) = encoding_rs::SHIFT_JIS.encode(&crlf);
    assert!(!bad);
    let cp932 = parse(&sjis, Path::new("a.csv")).unwrap();
    assert_eq!((utf8.encoding, utf8.crlf), (Encoding::Utf8, false));
    assert_eq!((cp932.encoding, cp932.crlf), (Encoding::Cp932, true));
    assert_eq!(utf8.header, cp932.header);
    assert_eq!(utf8.dispensings, cp932.dispensings);
    let d = &utf8.dispensings[0];
    assert_eq!(utf8.header.pharmacy_code, "1234567");
    assert_eq!(d.line, 2);
    assert_eq!(d.patient.patient_no, "00012345");
    assert_eq!(d.patient.sex, Sex::Female);
    assert_eq!(d.prescription.dispensed_on, "20240105");
    assert_eq!(d.rps[0].days, 28);
    assert_eq!(d.drugs[0].yj_code, "3969007F1063");
    assert_eq!(d.drugs[0].amount_per_day, "6");
    assert_eq!((d.records.len(), d.details.len(), d.fees.len(), d.notes.len()), (1, 1, 1, 1));
}

#[test]
fn a_truncated_record_names_file_and_line() {
    let mut lines = GOOD.to_vec();
    lines[4] = "4,1,1,3969007F1063,612345678";
    let e = err(&lines);
    assert!(e.starts_with("x.csv:5: record 4 is truncated"), "{e}");
}

#[test]
fn an_unknown_record_type_names_file_and_line() {
    let mut lines = GOOD.to_vec();
    lines.insert(3, "9,1,2,3");
    let e = err(&lines);
    assert!(e.starts_with("x.csv:4: unknown record type \"9\""), "{e}");
}

#[test]
fn a_bad_date_names_file_line_and_field() {
    let mut lines = GOOD.to_vec();
    lines[2] = "2,2024010500001,20240230,0410000017,仙台中央病院,内科,鈴木　一郎,20240105";
    let e = err(&lines);
    assert_eq!(e, "x.csv:3: record 2 field 2 (issued on): \"20240230\" is not a date YYYYMMDD");
}

#[test]
fn a_bad_yj_code_names_the_field() {
    let mut lines = GOOD.to_vec();
    lines[4] = "4,1,1,3969007F106,612345678,107851901,メトホルミン,6,錠";
    let e = err(&lines);
    assert!(e.starts_with("x.csv:5: record 4 field 3 (YJ code): "), "{e}");
}

#[test]
fn a_character_ss_mix2_cannot_carry_is_written_as_a_stand_in_naming_its_line_and_field() {
    let mut lines = GOOD.to_vec();
    // 𠮷 (U+20BB7, JIS X 0213) has no JIS X 0208 form: the drug name on line 5 gets the geta mark.
    lines[4] = "4,1,1,3969007F1063,612345678,107851901,メトホ𠮷ルミン,6,錠";
    let f = parse(text(&lines, "\n").as_bytes(), Path::new("x.csv")).unwrap();
    assert_eq!(f.dispensings[0].drugs[0].drug_name, "メトホ〓ルミン");
    let shown: Vec<String> = f.replaced.iter().map(|r| r.to_string()).collect();
    assert_eq!(
        shown,
        vec!["line 5: record 4 field 6 (drug name): '𠮷' (U+20BB7) is not JIS X 0208; written as '〓'"]
    );
}

/// CP932's IBM extension and NEC special characters, common in names and addresses (髙橋, 山﨑,
/// ①), were refused by every SS-MIX2 validator; the export is converted with their JIS X 0208
/// forms, and the message passes the validator.
#[test]
fn cp932_extension_characters_in_names_become_their_jis_forms() {
    let mut lines = GOOD.to_vec();
    lines[1] = "1,00012345,髙橋　花子,タカハシ　ハナコ,2,19500312,980-0002,仙台市青葉区山﨑①-2,022-111-1111,06040001";
    let utf8 = text(&lines, "\r\n");
    let (sjis, _, bad) = encoding_rs::SHIFT_JIS.encode(&utf8);
    assert!(!bad, "CP932 holds them");
    let f = parse(&sjis, Path::new("x.csv")).unwrap();
    assert_eq!(f.encoding, Encoding::Cp932);
    let p = &f.dispensings[0].patient;
    assert_eq!(p.name_kanji, "高橋　花子");
    assert_eq!(p.address, "仙台市青葉区山崎1-2");
    let shown: Vec<(usize, &str, char, &str)> =
        f.replaced.iter().map(|r| (r.line, r.name, r.from, r.to.as_str())).collect();
    assert_eq!(
        shown,
        vec![(2, "name (kanji)", '髙', "高"), (2, "address", '﨑', "崎"), (2, "address", '①', "1")]
    );
    let validator = ssmix2::validate::Validator::from_default_tables().unwrap();
    let root = Path::new("/converted/0401234567");
    let out = kizuna_nsips::to_ssmix2(&f, "0401234567").unwrap().files;
    assert_eq!(out.len(), 1);
    for (path, msg) in out {
        let mut violations = Vec::new();
        let file = root.join(path.relative());
        let mut scratch = ssmix2::validate::Scratch::default();
        validator.check(Some(root), &file, &msg, &mut scratch, &mut |v| violations.push(v));
        assert!(violations.is_empty(), "{violations:#?}");
        let m = ssmix2::hl7::Message::decode(&msg).unwrap();
        assert_eq!(m.value("PID-5.1").as_deref(), Some("高橋"));
    }
}

#[test]
fn structural_faults_are_refused() {
    // No header.
    assert!(err(&GOOD[1..]).starts_with("x.csv:1: record header field 0 (version)"), "{}", err(&GOOD[1..]));
    // A drug before its patient.
    let e = err(&[GOOD[0], GOOD[4]]);
    assert!(e.starts_with("x.csv:2: record 4 before any record 1"), "{e}");
    // A dispensing without its prescription record.
    let e = err(&[GOOD[0], GOOD[1], GOOD[3]]);
    assert!(e.starts_with("x.csv:2: the dispensing has no record 2"), "{e}");
    // A drug whose Rp was never declared.
    let e = err(&[GOOD[0], GOOD[1], GOOD[2], GOOD[4]]);
    assert!(e.starts_with("x.csv:4: record 4 field 1 (Rp number)"), "{e}");
    // Bytes that are neither UTF-8 nor CP932.
    let e = parse(&[0x56, 0x45, 0x52, 0xff, 0xff], Path::new("x.csv")).unwrap_err().to_string();
    assert!(e.starts_with("x.csv: the file is neither UTF-8 nor CP932"), "{e}");
}
