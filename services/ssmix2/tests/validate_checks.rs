//! Each check on small hand-built messages: one fault in, exactly its code (and field) out.

mod shared_data;

use std::path::Path;
use std::sync::OnceLock;

use ssmix2::hl7::encode_iso2022jp;
use ssmix2::validate::{Code, Scratch, Validator, Violation};

fn validator() -> &'static Validator {
    static V: OnceLock<Validator> = OnceLock::new();
    V.get_or_init(shared_data::validator)
}

const ROOT: &str = "/storage";
const OMP01_DIR: &str = "999/901/9999013/20110701/OMP-01";
const OMP01_NAME: &str = "9999013_20110701_OMP-01_000000011000185_20110701224603984_01_1";

/// A clean prescription order (the guideline's OMP-01 sample with PID-3 and MSH-18 as SS-MIX2
/// requires them); segments joined with CR as stored.
fn omp01() -> String {
    [
        "MSH|^~\\&|HIS123|SEND|GW|RCV|20110701224603.984||RDE^O11^RDE_O11|20110701000001|P|2.5||||||~ISO IR87||ISO 2022-1994|SS-MIX2_1.20^SS-MIX2^1.2.392.200250.2.1.100.1.2.120^ISO",
        "PID|0001||9999013^^^^PI||患者^太郎^^^^^L^I~カンジャ^タロウ^^^^^L^P||19480405|M",
        "PV1|0001|O|01^^^^^C||||110^医師^一郎^^^^^^^L^^^^^I|||01",
        "ORC|NW|000000011000185||1|||||20110701103045|058^入力者^花子^^^^^^^L^^^^^I||110^医師^一郎^^^^^^^L^^^^^I|10^^^^^C||||01^内科^99XY1|VMDOCX01^^99XY2|||登呂病院|^^^^422-8033^JPN^^静岡県静岡市駿河区登呂3-1-1|^^^^^^^^^^^054-284-9122||||||O^外来患者オーダ^HL70482",
        "RXE||108665201^ダーゼン錠（５mg)^HOT9|1||TAB^錠^MR9P|||||15|TAB^錠^MR9P||||2011070112345||||3^TAB&錠&MR9P",
        "TQ1|1||1013044400000000&内服・経口・１日３回朝昼夕食後&JAMISDP01|||5^d|2011070100",
        "RXR|PO^口^HL70162",
    ]
    .iter()
    .map(|s| format!("{s}\r"))
    .collect::<String>()
        + "\u{1c}"
}

/// Validates bytes stored at `ROOT/rel`, without touching the disk.
fn check_bytes(rel: &str, bytes: &[u8]) -> Vec<Violation> {
    let mut out = Vec::new();
    let file = Path::new(ROOT).join(rel);
    validator().check(Some(Path::new(ROOT)), &file, bytes, &mut Scratch::default(), &mut |v| out.push(v));
    out
}

fn check_text(rel: &str, text: &str) -> Vec<Violation> {
    check_bytes(rel, &encode_iso2022jp(text).expect("encodable"))
}

/// The findings as `(code, field)`, sorted.
fn found(v: &[Violation]) -> Vec<(Code, Option<&str>)> {
    let mut f: Vec<_> = v.iter().map(|v| (v.code, v.field.as_deref())).collect();
    f.sort();
    f
}

fn omp01_with(from: &str, to: &str) -> Vec<Violation> {
    let text = omp01();
    assert!(text.contains(from), "test message lacks {from:?}");
    check_text(&format!("{OMP01_DIR}/{OMP01_NAME}"), &text.replacen(from, to, 1))
}

#[test]
fn a_clean_message_has_no_findings() {
    assert_eq!(found(&check_text(&format!("{OMP01_DIR}/{OMP01_NAME}"), &omp01())), []);
}

#[test]
fn a_folder_that_disagrees_with_the_name_is_a_path_mismatch() {
    let v = check_text(&format!("999/901/9999013/20110702/OMP-01/{OMP01_NAME}"), &omp01());
    assert_eq!(found(&v), [(Code::PathMismatch, None)]);
    assert!(v[0].message.contains("care date"), "{}", v[0].message);
}

#[test]
fn a_name_that_is_not_ss_mix2_is_a_bad_file_name() {
    let v = check_text(&format!("{OMP01_DIR}/notes.txt"), &omp01());
    assert!(found(&v).contains(&(Code::BadFileName, None)), "{v:?}");
}

#[test]
fn bytes_outside_iso_2022_jp_are_reported_and_nothing_else() {
    let mut bytes = encode_iso2022jp(&omp01()).unwrap();
    bytes.extend_from_slice("髙".as_bytes());
    let v = check_bytes(&format!("{OMP01_DIR}/{OMP01_NAME}"), &bytes);
    assert_eq!(found(&v), [(Code::NotIso2022Jp, None)]);
    assert!(v[0].message.contains(&format!("byte {}", bytes.len() - 3)), "{}", v[0].message);
}

/// The OMP-01 message with the first `from` replaced by `raw` bytes spliced into its encoding, for
/// byte sequences the encoder will not write. `from` must sit between ASCII characters.
fn omp01_with_raw(from: &str, raw: &[u8]) -> Vec<Violation> {
    let text = omp01();
    assert!(text.contains(from), "test message lacks {from:?}");
    let encoded = encode_iso2022jp(&text.replacen(from, "@RAW@", 1)).expect("encodable");
    let at = encoded.windows(5).position(|w| w == b"@RAW@").expect("placeholder");
    let bytes = [&encoded[..at], raw, &encoded[at + 5..]].concat();
    check_bytes(&format!("{OMP01_DIR}/{OMP01_NAME}"), &bytes)
}

/// 髙 (IBM extension, row 92), 﨑 (NEC-selected IBM extension, row 89), ① (NEC row 13) and
/// half-width katakana (`ESC ( I`) decode with the WHATWG/`encoding_rs` ISO-2022-JP decoder, but are
/// not JIS X 0208: Python's `iso2022_jp` codec, which the NHO validator's checkJIS uses, rejects them.
#[test]
fn characters_outside_jis_x_0208_are_not_iso_2022_jp_and_name_their_line_and_field() {
    let cases: &[(&str, &[u8], &str, &str, &str)] = &[
        ("患者", b"\x1b$B\x7c\x62\x1b(B", "PID-5", "line 2", "U+9AD9"),
        ("医師", b"\x1b$B\x79\x75\x1b(B", "PV1-7", "line 3", "U+FA11"),
        ("登呂病院", b"\x1b$B\x2d\x21\x1b(B", "ORC-21", "line 4", "U+2460"),
        ("カンジャ", b"\x1b(I\x36\x1b(B", "PID-5", "line 2", "U+FF76"),
    ];
    for (from, raw, field, line, code) in cases {
        let v = omp01_with_raw(from, raw);
        assert_eq!(found(&v), [(Code::NotIso2022Jp, Some(*field))], "{from}: {v:#?}");
        let m = &v[0].message;
        assert!(m.contains(line) && m.contains(field) && m.contains(code) && m.contains("JIS X 0208"), "{m}");
    }
}

#[test]
fn a_character_outside_jis_x_0208_does_not_stop_the_other_checks() {
    let text = omp01().replacen("患者", "@RAW@", 1).replacen("|15|TAB", "|15x|TAB", 1);
    let encoded = encode_iso2022jp(&text).unwrap();
    let at = encoded.windows(5).position(|w| w == b"@RAW@").unwrap();
    let bytes = [&encoded[..at], b"\x1b$B\x7c\x62\x7c\x62\x1b(B", &encoded[at + 5..]].concat();
    let v = check_bytes(&format!("{OMP01_DIR}/{OMP01_NAME}"), &bytes);
    // Two 髙 in one field are one finding; the numeric fault elsewhere is still found.
    assert_eq!(found(&v), [(Code::NotIso2022Jp, Some("PID-5")), (Code::NotNumeric, Some("RXE-10"))]);
}

#[test]
fn jis_x_0208_text_and_its_designations_pass() {
    // Row 2 symbols, the first level-2 kanji (弌), the 1990 additions 凜 and 熙 (row 84), box drawing
    // (row 8), full-width forms.
    assert_eq!(found(&omp01_with("患者^太郎", "※〒∈弌凜熙╂^ＡＢ１")), []);
    // JIS C 6226-1978 (`ESC $ @`) and JIS X 0201 Roman (`ESC ( J`) are ISO-2022-JP too.
    assert_eq!(found(&omp01_with_raw("患者", b"\x1b$@\x30\x21\x1b(B")), []);
    assert_eq!(found(&omp01_with_raw("患者", b"\x1b(JKanja\x1b(B")), []);
}

#[test]
fn content_without_msh_is_not_hl7() {
    let v = check_text(&format!("{OMP01_DIR}/{OMP01_NAME}"), "PID|1||9999013\r");
    assert_eq!(found(&v), [(Code::NotHl7, None)]);
    // The message must start with it, as the HL7 parser requires.
    let v = check_text(&format!("{OMP01_DIR}/{OMP01_NAME}"), &format!("\r{}", omp01()));
    assert_eq!(found(&v), [(Code::NotHl7, None)]);
    assert_eq!(found(&check_text(&format!("{OMP01_DIR}/{OMP01_NAME}"), "")), [(Code::NotHl7, None)]);
}

#[test]
fn care_date_is_compared_with_the_date_of_the_name_by_message_type() {
    // RDE^O11 carries the care date in ORC-9.
    let v = omp01_with("|20110701103045|", "|20110702103045|");
    assert_eq!(found(&v), [(Code::CareDateMismatch, Some("ORC-9"))]);
    assert!(v[0].message.contains("20110702103045") && v[0].message.contains("20110701"), "{}", v[0].message);
    // Only the first eight characters count.
    assert_eq!(found(&omp01_with("|20110701103045|", "|20110701|")), []);
}

#[test]
fn care_date_segment_missing_is_a_care_date_mismatch() {
    // An ADT^A04 (outpatient visit) has its care date in PV1-44; without PV1 there is none.
    let text = "MSH|^~\\&|H|S|G|R|20111220||ADT^A04^ADT_A01|1|P|2.5||||||~ISO IR87||ISO 2022-1994|SS-MIX2_1.20^SS-MIX2^1.2.392.200250.2.1.100.1.2.120^ISO\rEVN||20111220\rPID|1||9999013^^^^PI||患者^太郎||19480405|M\r";
    let v = check_text(
        "999/901/9999013/20111220/ADT-12/9999013_20111220_ADT-12_999999999999999_20111220224447339_01_1",
        text,
    );
    // The missing PV1 also breaks the ADT^A04 structure.
    assert_eq!(found(&v), [(Code::CareDateMismatch, Some("PV1-44")), (Code::SegmentOrder, None)]);
}

#[test]
fn data_with_no_care_date_is_not_compared() {
    // ADT^A08 (patient information) has no care-date field, and sits under `-`.
    let text = "MSH|^~\\&|H|S|G|R|20111220||ADT^A08^ADT_A01|1|P|2.5||||||~ISO IR87||ISO 2022-1994|SS-MIX2_1.20^SS-MIX2^1.2.392.200250.2.1.100.1.2.120^ISO\rEVN||201112202100\rPID|0001||9999013||患者^太郎||19480405|M\rPV1|0001|I\r";
    let v =
        check_text("999/901/9999013/-/ADT-00/9999013_-_ADT-00_999999999999999_20111220224447339_-_1", text);
    assert_eq!(found(&v), []);
}

/// The stable code of a file with no care date (ADT-00, ADT-61, PPR-01) stored under a date.
const WRONG_DATE_FOLDER: &str = "wrong-date-folder";

#[test]
fn data_without_a_care_date_belongs_under_the_dash_folder() {
    for dir in ["ADT-00", "ADT-61", "PPR-01"] {
        let folder = shared_data::samples_dir().join("999/901/9999013/-").join(dir);
        let file = std::fs::read_dir(&folder).unwrap().next().unwrap().unwrap().path();
        let bytes = std::fs::read(&file).unwrap();
        let name = file.file_name().unwrap().to_str().unwrap();
        // Where the guideline's sample stores it: no such finding.
        let stored = check_bytes(&format!("999/901/9999013/-/{dir}/{name}"), &bytes);
        assert!(stored.iter().all(|v| v.code.as_str() != WRONG_DATE_FOLDER), "{stored:#?}");
        // The same file named and filed under a date: that finding, and nothing else changes.
        let dated = name.replacen("_-_", "_20111220_", 1);
        let rel = format!("999/901/9999013/20111220/{dir}/{dated}");
        let v = check_bytes(&rel, &bytes);
        let new: Vec<&Violation> =
            v.iter().filter(|v| !stored.iter().any(|s| (s.code, &s.field) == (v.code, &v.field))).collect();
        assert_eq!(new.len(), 1, "{dir}: {v:#?}");
        assert_eq!((new[0].code.as_str(), new[0].field.as_deref()), (WRONG_DATE_FOLDER, None), "{dir}");
        assert!(new[0].message.contains(&rel) && new[0].message.contains(dir), "{}", new[0].message);
        assert_eq!(v.len(), stored.len() + 1, "{dir}: {v:#?}");
    }
}

#[test]
fn an_empty_required_field_is_reported_with_its_place() {
    let v = omp01_with("|108665201^ダーゼン錠（５mg)^HOT9|", "||");
    assert_eq!(found(&v), [(Code::RequiredFieldMissing, Some("RXE-2"))]);
    assert!(v[0].message.contains("Give Code") && v[0].message.contains("OMP-01"), "{}", v[0].message);
    // A field of separators only holds nothing either.
    assert_eq!(
        found(&omp01_with("|108665201^ダーゼン錠（５mg)^HOT9|", "|^^|")),
        [(Code::RequiredFieldMissing, Some("RXE-2"))]
    );
    // The HL7 null "" is a value.
    assert_eq!(found(&omp01_with("|108665201^ダーゼン錠（５mg)^HOT9|", "|\"\"|")), []);
}

#[test]
fn required_fields_depend_on_the_data_type() {
    // RXE-10 (dispense amount) is required for prescriptions (OMP-01), optional for injections.
    let text = omp01().replacen("|15|TAB^錠^MR9P|", "||TAB^錠^MR9P|", 1);
    let v = check_text(&format!("{OMP01_DIR}/{OMP01_NAME}"), &text);
    assert_eq!(found(&v), [(Code::RequiredFieldMissing, Some("RXE-10"))]);
    let injection =
        "999/901/9999013/20110701/OMP-02/9999013_20110701_OMP-02_000000011000185_20110701224603984_01_1";
    assert_eq!(found(&check_text(injection, &text)), []);
}

#[test]
fn required_fields_of_later_occurrences_name_the_occurrence() {
    let text = omp01().replacen("RXR|PO^口^HL70162\r", "RXR|PO^口^HL70162\rRXR|\r", 1);
    let v = check_text(&format!("{OMP01_DIR}/{OMP01_NAME}"), &text);
    assert_eq!(found(&v), [(Code::RequiredFieldMissing, Some("RXR[2]-1"))]);
}

#[test]
fn nm_fields_components_and_repetitions_must_be_numbers() {
    // RXE-10, dispense amount: NM.
    let v = omp01_with("|15|TAB", "|15錠|TAB");
    assert_eq!(found(&v), [(Code::NotNumeric, Some("RXE-10"))]);
    assert!(v[0].message.contains("15錠"), "{}", v[0].message);
    // TQ1-2 is CQ: component 1 is NM.
    assert_eq!(found(&omp01_with("TQ1|1||", "TQ1|1|x^d|")), [(Code::NotNumeric, Some("TQ1-2.1"))]);
    // Repetitions are checked one by one.
    assert_eq!(found(&omp01_with("TQ1|1||", "TQ1|1|3^d~y^d|")), [(Code::NotNumeric, Some("TQ1-2[2].1"))]);
    // Decimals and signs are numbers; two decimal points are not.
    assert_eq!(found(&omp01_with("|15|TAB", "|-1.5|TAB")), []);
    assert_eq!(found(&omp01_with("|15|TAB", "|1.5.1|TAB")), [(Code::NotNumeric, Some("RXE-10"))]);
}

#[test]
fn obx_5_is_numeric_only_when_obx_2_says_nm() {
    let order = |obx: &str| {
        let text = omp01().replacen("RXR|PO^口^HL70162\r", &format!("RXR|PO^口^HL70162\r{obx}\r"), 1);
        found(&check_text(&format!("{OMP01_DIR}/{OMP01_NAME}"), &text))
            .into_iter()
            .map(|(c, f)| (c, f.map(str::to_owned)))
            .collect::<Vec<_>>()
    };
    assert_eq!(order("OBX|1|NM|9N001^身長^JC10||167.8|cm|||||F"), []);
    assert_eq!(
        order("OBX|1|NM|9N001^身長^JC10||高い|cm|||||F"),
        [(Code::NotNumeric, Some("OBX-5".to_owned()))]
    );
    assert_eq!(order("OBX|1|ST|9N001^身長^JC10||高い|cm|||||F"), []);
}

#[test]
fn segments_out_of_order_or_trailing_are_a_segment_order_fault() {
    let text = omp01();
    let pid = text.split('\r').nth(1).unwrap().to_owned();
    let pv1 = text.split('\r').nth(2).unwrap().to_owned();
    let swapped = text.replacen(&pid, "@@", 1).replacen(&pv1, &pid, 1).replacen("@@", &pv1, 1);
    let v = check_text(&format!("{OMP01_DIR}/{OMP01_NAME}"), &swapped);
    assert_eq!(found(&v), [(Code::SegmentOrder, None)]);
    assert!(v[0].message.contains("MSH PV1 PID ORC") && v[0].message.contains("RDE^O11"), "{}", v[0].message);
    // A valid message followed by anything is not a valid message.
    let trailing = omp01().replacen("\u{1c}", "ZZZ|1\r\u{1c}", 1);
    assert_eq!(
        found(&check_text(&format!("{OMP01_DIR}/{OMP01_NAME}"), &trailing)),
        [(Code::SegmentOrder, None)]
    );
    // A repeated segment where the structure allows it is fine.
    assert_eq!(found(&omp01_with("RXR|PO^口^HL70162\r", "RXR|PO^口^HL70162\rRXR|PO^口^HL70162\r")), []);
}

#[test]
fn msh_9_must_carry_a_message_type_of_the_data_type() {
    // An RDE^O11 stored as an injection administration (OMP-12, RAS^O17).
    let rel =
        "999/901/9999013/20110701/OMP-12/9999013_20110701_OMP-12_000000011000185_20110701224603984_01_1";
    let v = check_text(rel, &omp01());
    assert_eq!(found(&v), [(Code::DataTypeMismatch, Some("MSH-9"))]);
    assert!(v[0].message.contains("RDE^O11") && v[0].message.contains("RAS^O17"), "{}", v[0].message);
}

#[test]
fn pid_3_must_name_the_patient_of_the_path() {
    let v = omp01_with("PID|0001||9999013^^^^PI|", "PID|0001||1234567^^^^PI|");
    assert_eq!(found(&v), [(Code::PatientIdMismatch, Some("PID-3"))]);
    // Any repetition of PID-3 may carry it.
    assert_eq!(found(&omp01_with("PID|0001||9999013^^^^PI|", "PID|0001||X1^^^^MR~9999013^^^^PI|")), []);
}

#[test]
fn msh_18_20_21_must_declare_iso_ir87_iso_2022_and_the_profile() {
    assert_eq!(
        found(&omp01_with("~ISO IR87|", "~ISOIR87|")),
        [(Code::BadCharsetDeclaration, Some("MSH-18"))]
    );
    assert_eq!(
        found(&omp01_with("|ISO 2022-1994|", "|UNICODE UTF-8|")),
        [(Code::BadEncodingDeclaration, Some("MSH-20"))]
    );
    // Samples write it without the space; that is accepted.
    assert_eq!(found(&omp01_with("|ISO 2022-1994|", "|ISO2022-1994|")), []);
    assert_eq!(
        found(&omp01_with("|SS-MIX2_1.20^SS-MIX2^", "|OTHER^SS-MIX2^")),
        [(Code::BadProfile, Some("MSH-21"))]
    );
}

#[test]
fn a_trailing_file_separator_and_crlf_endings_are_tolerated() {
    let text = omp01().replace('\r', "\r\n");
    assert_eq!(found(&check_text(&format!("{OMP01_DIR}/{OMP01_NAME}"), &text)), []);
}

#[test]
fn without_a_root_the_path_is_not_checked() {
    let mut out = Vec::new();
    let bytes = encode_iso2022jp(&omp01()).unwrap();
    let file = Path::new("/elsewhere").join(OMP01_NAME);
    validator().check(None, &file, &bytes, &mut Scratch::default(), &mut |v| out.push(v));
    assert_eq!(found(&out), []);
}

mod never_panics {
    use proptest::prelude::*;

    use super::*;

    /// Message-shaped text: an MSH, then lines of fields with separators, digits and kanji.
    fn messageish() -> impl Strategy<Value = String> {
        let line = "[A-Z]{3}(\\|[0-9A-Z^~&\\\\患者.+-]{0,12}){0,30}";
        (prop::collection::vec(line, 0..12), "[|#][\\^~\\\\&]{0,5}").prop_map(|(lines, head)| {
            let mut s = format!("MSH{head}|HIS||||20110701||RDE^O11|1|P|2.5");
            for l in lines {
                s.push('\r');
                s.push_str(&l);
            }
            s
        })
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_are_judged_without_panicking(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
            check_bytes(&format!("{OMP01_DIR}/{OMP01_NAME}"), &bytes);
        }

        #[test]
        fn arbitrary_messages_are_judged_without_panicking(text in messageish()) {
            let v = check_text(&format!("{OMP01_DIR}/{OMP01_NAME}"), &text);
            prop_assert!(v.iter().all(|v| !v.message.is_empty()));
        }
    }
}
