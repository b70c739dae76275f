//! Units and routes: every dose unit reaches RXE-5.1 (MERIT-9 code or the unit as written, under a
//! local coding system), the route comes from the JAMI usage code's class and detail, and a code
//! with no known route converts with the route unknown and a warning instead of failing the export.

use std::path::Path;

use kizuna_nsips::convert_bytes;
use ssmix2::hl7::Message;
use ssmix2::validate::{Scratch, Validator};

const FACILITY: &str = "0441234567";
const HEADER: &str = "VER010603,20240105190000,T01,04,4,1234567,ｶ薬局,980-0001,仙台市,022-000-0000";

/// One dispensing (patient `patient`) whose Rp `i + 1` has usage code `usages[i].0` and one drug
/// with unit `usages[i].1`; its record 1 is at the returned line.
fn dispensing(patient: &str, rx: &str, rps: &[(&str, &str)]) -> Vec<String> {
    let mut lines = vec![
        format!("1,{patient},佐藤　花子,サトウ　ハナコ,2,19500312,980-0002,仙台市,022-111-1111,06040001"),
        format!("2,{rx},20240104,0410000017,仙台中央病院,内科,鈴木　一郎,20240105"),
    ];
    for (i, (usage, unit)) in rps.iter().enumerate() {
        let rp = i + 1;
        lines.push(format!("3,{rp},{usage},用法,14,1"));
        lines.push(format!("4,{rp},1,1139002C1010,612345678,100607002,アレビアチン散１０％,300,{unit}"));
    }
    lines
}

fn export(dispensings: &[Vec<String>]) -> Vec<u8> {
    let mut text = format!("{HEADER}\n");
    for l in dispensings.iter().flatten() {
        text.push_str(l);
        text.push('\n');
    }
    text.into_bytes()
}

/// Validator violations of one converted message.
fn violations(path: &ssmix2::StoragePath, msg: &[u8]) -> Vec<String> {
    let validator = Validator::from_default_tables().unwrap();
    let root = Path::new("/converted").join(FACILITY);
    let mut out = Vec::new();
    let file = root.join(path.relative());
    validator.check(Some(&root), &file, msg, &mut Scratch::default(), &mut |v| out.push(format!("{v:?}")));
    out
}

fn value(m: &Message, path: &str) -> String {
    m.value(path).map(|v| v.to_string()).unwrap_or_default()
}

/// The reviewer's case: `300,mg` was written as `^mg^MR9P`, and the store (which reads RXE-5.1)
/// showed the dose without a unit. Every unit now has a code in component 1: MERIT-9's when it
/// has one, else the unit as written under the local system `99NSU`.
#[test]
fn every_unit_reaches_component_1_of_the_give_dispense_and_daily_units() {
    let cases: &[(&str, &str, &str)] = &[
        ("mg", "MG", "MR9P"),
        ("ｍｇ", "MG", "MR9P"),
        ("μg", "MCG", "MR9P"),
        ("µg", "MCG", "MR9P"),
        ("単位", "UNT", "MR9P"),
        ("包", "PCK", "MR9P"),
        ("本", "HON", "MR9P"),
        ("個", "KO", "MR9P"),
        ("滴", "DROP", "MR9P"),
        ("キット", "KIT", "MR9P"),
        ("枚", "SHT", "MR9P"),
        ("錠", "TAB", "MR9P"),
        ("mL", "ML", "MR9P"),
        ("噴霧", "噴霧", "99NSU"),
        ("吸入", "吸入", "99NSU"),
        ("パフ", "パフ", "99NSU"),
    ];
    let rps: Vec<(&str, &str)> = cases.iter().map(|(unit, _, _)| ("1011040000000000", *unit)).collect();
    let bytes = export(&[dispensing("00012345", "2024010500001", &rps)]);
    let c = convert_bytes(&bytes, Path::new("u.csv"), FACILITY).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.files.len(), 1);
    let (path, msg) = &c.files[0];
    assert!(violations(path, msg).is_empty(), "{:#?}", violations(path, msg));
    let m = Message::decode(msg).unwrap();
    for (i, (written, code, system)) in cases.iter().enumerate() {
        let n = i + 1;
        // The micro sign is not JIS X 0208: the parser writes its NFKC form μ (and reports it).
        let shown = if *written == "µg" { "μg" } else { written };
        for field in ["5", "11"] {
            assert_eq!(value(&m, &format!("RXE[{n}]-{field}.1")), *code, "RXE-{field} of {written}");
            assert_eq!(value(&m, &format!("RXE[{n}]-{field}.2")), shown, "RXE-{field} of {written}");
            assert_eq!(value(&m, &format!("RXE[{n}]-{field}.3")), *system, "RXE-{field} of {written}");
        }
        // RXE-19 total daily dose (CQ): amount, then the unit as subcomponents.
        assert_eq!(value(&m, &format!("RXE[{n}]-19.1")), "300");
        assert_eq!(value(&m, &format!("RXE[{n}]-19.2.1")), *code, "RXE-19 of {written}");
        assert_eq!(value(&m, &format!("RXE[{n}]-19.2.3")), *system, "RXE-19 of {written}");
    }
    let warned: Vec<String> = c.replaced.iter().map(|w| w.to_string()).collect();
    assert_eq!(warned.len(), 1, "known and local units need no warning: {warned:#?}");
    assert!(warned[0].contains("'µ' (U+00B5)") && warned[0].contains("written as 'μ'"), "{warned:?}");
}

/// The reviewer's case: eye drops (2H…) were sent as TP (skin). The route now comes from the
/// usage code's first two characters (JAMI basic usage class and detail class).
#[test]
fn the_route_comes_from_the_usage_codes_class_and_detail() {
    let cases: &[(&str, &str)] = &[
        ("1013044400000000", "PO"),
        ("1100000000000000", "SL"),
        ("2B74000000000000", "TP"),
        ("2A00000000000000", "TD"),
        ("2H50B10000000000", "OP"),
        ("2G00000000000000", "OT"),
        ("2J00000000000000", "NS"),
        ("2L00000000000000", "IH"),
        ("2R00000000000000", "PR"),
        ("2T00000000000000", "VG"),
        ("3200000000000000", "SC"),
        ("3300000000000000", "IM"),
    ];
    let rps: Vec<(&str, &str)> = cases.iter().map(|(usage, _)| (*usage, "本")).collect();
    let bytes = export(&[dispensing("00012345", "2024010500001", &rps)]);
    let c = convert_bytes(&bytes, Path::new("r.csv"), FACILITY).unwrap_or_else(|e| panic!("{e}"));
    let (path, msg) = &c.files[0];
    assert!(violations(path, msg).is_empty(), "{:#?}", violations(path, msg));
    let m = Message::decode(msg).unwrap();
    for (i, (usage, route)) in cases.iter().enumerate() {
        let n = i + 1;
        assert_eq!(value(&m, &format!("RXR[{n}]-1.1")), *route, "usage code {usage}");
        assert_eq!(value(&m, &format!("RXR[{n}]-1.3")), "HL70162", "usage code {usage}");
        assert!(!value(&m, &format!("RXR[{n}]-1.2")).is_empty(), "usage code {usage}");
    }
    assert!(c.replaced.is_empty());
}

/// A usage code whose route is unknown (a plain injection 30…, spraying 2E…, a class that does
/// not exist) was refused, and the agent quarantined the whole export with every other patient's
/// dispensings. Now that drug converts with RXR-1 holding no code, the message still passes the
/// validator (RXR-1 is required), and a warning names file, line and field.
#[test]
fn an_unknown_usage_code_converts_with_the_route_unknown_and_a_warning() {
    let first = dispensing("00012345", "2024010500001", &[("1011040000000000", "錠")]);
    let second =
        dispensing("00067890", "2024010500002", &[("3000000000000000", "本"), ("2E00000000000000", "本")]);
    let third = dispensing("00011111", "2024010500003", &[("9100000000000000", "本")]);
    let bytes = export(&[first, second, third]);
    let c = convert_bytes(&bytes, Path::new("mixed.csv"), FACILITY).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.files.len(), 3, "every dispensing converts");
    for (path, msg) in &c.files {
        assert!(violations(path, msg).is_empty(), "{}: {:#?}", path.name, violations(path, msg));
    }
    let m = Message::decode(&c.files[0].1).unwrap();
    assert_eq!(value(&m, "RXR[1]-1.1"), "PO");
    let m = Message::decode(&c.files[1].1).unwrap();
    for n in [1, 2] {
        assert_eq!(value(&m, &format!("RXR[{n}]-1.1")), "", "no route code");
        assert_eq!(value(&m, &format!("RXR[{n}]-1.2")), "不明", "RXR-1 is required: text only");
    }
    let shown: Vec<String> = c.replaced.iter().map(|w| w.to_string()).collect();
    // Lines: header 1; first dispensing 2–5; second 6–11 (Rps on 8 and 10); third 12–15 (Rp on 14).
    assert_eq!(shown.len(), 3, "{shown:#?}");
    for (w, (line, code)) in
        shown.iter().zip([(8, "3000000000000000"), (10, "2E00000000000000"), (14, "9100000000000000")])
    {
        assert!(w.starts_with(&format!("line {line}: record 3 field 2 (usage code): ")), "{w}");
        assert!(w.contains(code) && w.contains("route"), "{w}");
    }
}

/// A drug with an empty unit converts (dose without a unit, RXE-5 still present for the
/// validator) and is reported, instead of holding back the export.
#[test]
fn an_empty_unit_converts_with_a_warning() {
    let bytes = export(&[dispensing("00012345", "2024010500001", &[("1011040000000000", "")])]);
    let c = convert_bytes(&bytes, Path::new("e.csv"), FACILITY).unwrap_or_else(|e| panic!("{e}"));
    let (path, msg) = &c.files[0];
    assert!(violations(path, msg).is_empty(), "{:#?}", violations(path, msg));
    let m = Message::decode(msg).unwrap();
    assert_eq!(value(&m, "RXE[1]-5.1"), "");
    let shown: Vec<String> = c.replaced.iter().map(|w| w.to_string()).collect();
    assert_eq!(shown.len(), 1, "{shown:#?}");
    assert!(shown[0].starts_with("line 5: record 4 field 8 (unit): "), "{}", shown[0]);
}
