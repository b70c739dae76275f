//! On the NHO validator's own sample folder, our validator finds what the NHO validator finds: the
//! same file, the same check, the same field, and nothing more from its six checks, except where we
//! judge it wrong (each case explained below).
//!
//! The expected findings were derived by reading the NHO validator (`src/lib/checkFilePath.py`,
//! `checkJIS.py`, `checkCareDate.py`, `checkRequiredFields.py`, `checkNumericFields.py`,
//! `checkSegmentOrder.py`, driven by `src/testStandardStrage.py`) and replaying its logic on these
//! files, with the same tables. Field names follow our notation: the NHO validator prints `TQ1-2-0`
//! (component from 0) where we write `TQ1-2.1`; and it only counts findings per segment and field,
//! while we name the occurrence (`RXA[2]-3` is the second RXA segment).

mod shared_data;

use std::collections::BTreeSet;

use ssmix2::validate::{Code, Violation};
use ssmix2::walk::validate_tree;

type Finding = (String, Code, Option<String>);

const MISPLACED: &str =
    "000/000/0000001/20000401/ADT-31/9999013_20110630_OMP-11_123456789012345_20110701113813225_01_1";
const JUNK_1: &str =
    "000/000/0000001/20000401/OMP-11/0000001_20000401_OMP-11_123456789012345_20110701113813225_01_1";
const JUNK_0: &str =
    "000/000/0000001/20000401/OMP-11/0000001_20000401_OMP-11_123456789012346_20110701113813226_01_0";
const OMP11: &str =
    "999/901/9999013/20110630/OMP-11/9999013_20110630_OMP-11_123456789012345_20110701113813225_01_1";
const OMP02: &str =
    "999/901/9999013/20110701/OMP-02/9999013_20110701_OMP-02_123456789012345_20110701224603984_01_1";
const OMG02: &str =
    "999/901/9999013/20111220/OMG-02/9999013_20111220_OMG-02_201212201252100_20111220224447339_01_1";
const OMG13: &str =
    "999/901/9999013/20111220/OMG-13/9999013_20111220_OMG-13_999999999999999_20111220224447339_01_1";
const OML11: &str =
    "999/901/9999013/20111220/OML-11/9999013_20111220_OML-11_000000011000354_20111220103059000_01_1";
const ADT61: &str = "999/901/9999013/-/ADT-61/9999013_-_ADT-61_999999999999999_20111014232213000_-_1";
const PPR01: &str = "999/901/9999013/-/PPR-01/9999013_-_PPR-01_999999999999999_20111209163030000_01_1";
const OMD: &str = "999/901/9999013/20111013/OMD/9999013_20111013_OMD_123456789012345_20111014232213000_01_1";
const OMG01: &str =
    "999/901/9999013/20111220/OMG-01/9999013_20111220_OMG-01_000201101200100_20111220224447339_-_1";
const OMG03: &str =
    "999/901/9999013/20111220/OMG-03/9999013_20111220_OMG-03_201112200089100_20111220224447339_01_1";
const OMG11: &str =
    "999/901/9999013/20111220/OMG-11/9999013_20111220_OMG-11_2011122000300_20111220224447339_24_1";
const OMG12: &str =
    "999/901/9999013/20111220/OMG-12/9999013_20111220_OMG-12_201112201656100_20111220224447339_01_1";

/// The two 0000001 OMP-11 files are an RAS^O17 message followed by one bare line per segment the
/// tables define (`AL1`, `CTI`, … `ZPR`) and a bare `MSH`: every field the tables require for OMP-11
/// on those bare lines is empty. The field after each comment is the first bare line of that segment.
const JUNK_REQUIRED: &[&str] = &[
    "AL1-1",     // AL1: Set ID
    "AL1-3",     // AL1: allergen code
    "CTI-1",     // CTI: sponsor study ID
    "DB1-1",     // DB1: Set ID
    "DB1-2",     // DB1: disabled person code
    "DB1-4",     // DB1: disabled indicator
    "EVN-2",     // EVN: recorded date/time
    "IAM-1",     // IAM: Set ID
    "IAM-3",     // IAM: allergen code
    "IAM-6",     // IAM: allergy action code
    "IN1-1",     // IN1: Set ID
    "IN1-2",     // IN1: insurance plan ID
    "IPC-1",     // IPC: accession identifier
    "IPC-3",     // IPC: study instance UID
    "IPC-5",     // IPC: modality
    "MSH[2]-2",  // the second (bare) MSH: encoding characters
    "MSH[2]-7",  // … date/time of message
    "MSH[2]-9",  // … message type
    "MSH[2]-10", // … message control ID
    "MSH[2]-11", // … processing ID
    "MSH[2]-12", // … version ID
    "MSH[2]-18", // … character set
    "NK1-1",     // NK1: Set ID
    "ODS-1",     // ODS: type
    "ODS-3",     // ODS: diet code
    "ORC[2]-1",  // the bare ORC: order control
    "ORC[2]-2",  // … placer order number
    "ORC[2]-4",  // … placer group number
    "PID[2]-3",  // the bare PID: patient identifier list
    "PID[2]-5",  // … patient name
    "PID[2]-7",  // … date of birth
    "PID[2]-8",  // … sex
    "PRB-1",     // PRB: action code
    "PRB-2",     // PRB: action date/time
    "PRB-3",     // PRB: problem ID
    "PRB-4",     // PRB: problem instance ID
    "PV1[2]-2",  // the bare PV1: patient class
    "RXA[3]-1",  // the bare RXA (two real ones precede it): give sub-ID counter
    "RXA[3]-2",  // … administration sub-ID counter
    "RXA[3]-3",  // … start of administration
    "RXA[3]-4",  // … end of administration
    "RXA[3]-5",  // … administered code
    "RXA[3]-6",  // … administered amount
    "RXC-1",     // RXC: component type
    "RXC-2",     // RXC: component code
    "RXC-3",     // RXC: component amount
    "RXC-4",     // RXC: component units
    "RXE-2",     // RXE: give code
    "RXE-3",     // RXE: give amount
    "RXE-5",     // RXE: give units
    "RXE-10",    // RXE: dispense amount
    "RXE-11",    // RXE: dispense units
    "RXR[2]-1",  // the bare RXR: route
    "SPM-4",     // SPM: specimen type
    "ZPR-2",     // ZPR: disease code
];

/// Only the `_1` junk file ends with a third, bare MSH.
const JUNK_1_THIRD_MSH: &[&str] =
    &["MSH[3]-2", "MSH[3]-7", "MSH[3]-9", "MSH[3]-10", "MSH[3]-11", "MSH[3]-12", "MSH[3]-18"];

/// Numeric faults the junk files were written to contain.
const JUNK_NUMERIC: &[&str] = &[
    "MSH-13",  // sequence number (NM) holds 番号
    "OBX-5",   // OBX-2 is NM but OBX-5 holds ccc
    "OBX-9",   // probability (NM) holds ggg
    "TQ1-2.1", // quantity (CQ.1, NM) holds test
    "TQ1-3.3", // repeat pattern (RPT.3, NM) holds hhhh
];

fn f(file: &str, code: Code, field: Option<&str>) -> Finding {
    (file.to_owned(), code, field.map(str::to_owned))
}

/// Everything the NHO validator reports on the sample folder.
fn nho_findings() -> BTreeSet<Finding> {
    let mut v = vec![
        // checkFilePath: a 9999013 file stored in 0000001's ADT-31 folder.
        f(MISPLACED, Code::PathMismatch, None),
        // checkJIS: that file holds the two bytes FB FC (髙 in CP932), not ISO-2022-JP.
        f(MISPLACED, Code::NotIso2022Jp, None),
        // checkCareDate: nkf turns the CP932 bytes into one line without MSH, so the message type is
        // "" and no care-date segment is found. (We judge this wrong; see `nho_wrong`.)
        f(MISPLACED, Code::CareDateMismatch, None),
        // checkCareDate: RAS^O17 takes the care date from RXA-3 (20110701…), the folder says 20110630.
        f(OMP11, Code::CareDateMismatch, Some("RXA-3")),
        f(OMP11, Code::CareDateMismatch, Some("RXA[2]-3")),
        // checkCareDate: RDE^O11 takes ORC-9; the second and third orders say 20090701, folder 20110701.
        f(OMP02, Code::CareDateMismatch, Some("ORC[2]-9")),
        f(OMP02, Code::CareDateMismatch, Some("ORC[3]-9")),
        // checkCareDate: OMG^O19 ORC-9 says 20121220 in all three orders, the folder 20111220.
        f(OMG02, Code::CareDateMismatch, Some("ORC-9")),
        f(OMG02, Code::CareDateMismatch, Some("ORC[2]-9")),
        f(OMG02, Code::CareDateMismatch, Some("ORC[3]-9")),
        // checkCareDate: OUL^R22 SPM-17 (specimen collection) is 20111219, the folder 20111220.
        f(OML11, Code::CareDateMismatch, Some("SPM-17")),
        // checkRequiredFields: this ORU^R01 PID has the birth date in PID-9 and PID-7 empty.
        f(OMG13, Code::RequiredFieldMissing, Some("PID-7")),
    ];
    for file in [JUNK_1, JUNK_0] {
        // checkCareDate: RXA-3 of the two real RXA is 20110701…, the folder 20000401, and the bare RXA
        // has no RXA-3 at all.
        v.push(f(file, Code::CareDateMismatch, Some("RXA-3")));
        v.push(f(file, Code::CareDateMismatch, Some("RXA[2]-3")));
        v.push(f(file, Code::CareDateMismatch, Some("RXA[3]-3")));
        for field in JUNK_REQUIRED {
            v.push(f(file, Code::RequiredFieldMissing, Some(field)));
        }
        for field in JUNK_NUMERIC {
            v.push(f(file, Code::NotNumeric, Some(field)));
        }
    }
    for field in JUNK_1_THIRD_MSH {
        v.push(f(JUNK_1, Code::RequiredFieldMissing, Some(field)));
    }
    // checkSegmentOrder finds nothing: it uses Python's re.match, which only needs a prefix of the
    // segment sequence to fit the message structure.
    v.into_iter().collect()
}

/// NHO findings we do not make, and why.
fn nho_wrong() -> BTreeSet<Finding> {
    [
        // The file does not decode as ISO-2022-JP, which we report; its content is then not a
        // message at all, and a care date cannot be compared. The NHO validator only gets here because
        // it converts every file with `nkf -w` first, guessing the encoding.
        f(MISPLACED, Code::CareDateMismatch, None),
    ]
    .into_iter()
    .collect()
}

/// Findings of the six NHO checks we make and it does not, and why.
fn nho_missed() -> BTreeSet<Finding> {
    [
        // We match the segment structure against the whole message (the regex anchored at both
        // ends). After a valid RAS^O17 prefix these files carry 25 bare segments and further MSH
        // segments, which no message structure allows; Python's re.match accepts any such suffix.
        f(JUNK_1, Code::SegmentOrder, None),
        f(JUNK_0, Code::SegmentOrder, None),
    ]
    .into_iter()
    .collect()
}

/// Findings of Kizuna's checks beyond the NHO six.
fn kizuna_extra() -> BTreeSet<Finding> {
    let mut v = Vec::new();
    // PID-3 names another patient than the path: the guideline's examples were written with
    // various example IDs, and the junk files carry 9999013's message in 0000001's folder.
    for file in [JUNK_1, JUNK_0, ADT61, PPR01, OMD, OMG01, OMG02, OMG03, OMG11, OMG12, OMG13, OML11] {
        v.push(f(file, Code::PatientIdMismatch, Some("PID-3")));
    }
    // MSH-18 is `~ISOIR87`, without the space of HL7 table 0211's `ISO IR87`.
    for file in [JUNK_1, JUNK_0, OMP11, OMG02] {
        v.push(f(file, Code::BadCharsetDeclaration, Some("MSH-18")));
    }
    v.into_iter().collect()
}

fn run() -> Vec<Violation> {
    let root = shared_data::samples_dir();
    let mut found = Vec::new();
    let stats = validate_tree(&root, &shared_data::validator(), |v| found.push(v)).expect("walk the samples");
    assert_eq!(stats.files, 22);
    assert_eq!(stats.violations, found.len() as u64);
    found
}

fn as_findings(found: &[Violation], nho: bool) -> BTreeSet<Finding> {
    let root = shared_data::samples_dir();
    found
        .iter()
        .filter(|v| v.code.is_nho_check() == nho)
        .map(|v| {
            let rel = v.file.strip_prefix(&root).unwrap().to_str().unwrap().to_owned();
            (rel, v.code, v.field.clone())
        })
        .collect()
}

/// Prints the difference before failing, so a mismatch is readable.
fn assert_same(what: &str, got: &BTreeSet<Finding>, want: &BTreeSet<Finding>) {
    let extra: Vec<_> = got.difference(want).collect();
    let missing: Vec<_> = want.difference(got).collect();
    assert!(
        extra.is_empty() && missing.is_empty(),
        "{what}:\n unexpected: {extra:#?}\n missing: {missing:#?}"
    );
}

#[test]
fn the_six_nho_checks_agree_with_the_nho_validator_on_its_samples() {
    let found = run();
    let want: BTreeSet<Finding> =
        nho_findings().difference(&nho_wrong()).cloned().chain(nho_missed()).collect();
    assert_same("NHO checks", &as_findings(&found, true), &want);
}

#[test]
fn kizunas_own_checks_on_the_samples_are_exactly_these() {
    let found = run();
    assert_same("Kizuna checks", &as_findings(&found, false), &kizuna_extra());
}

#[test]
fn every_finding_names_its_file_and_says_what_is_wrong() {
    for v in run() {
        assert!(v.file.is_file(), "{v}");
        assert!(!v.message.is_empty(), "{v}");
        let line = v.to_string();
        assert!(line.contains(v.code.as_str()), "{line}");
        if let Some(field) = &v.field {
            assert!(v.message.contains(field.as_str()), "{line}");
        }
    }
}

#[test]
fn findings_serialize_as_json_with_stable_codes() {
    let v = run().into_iter().find(|v| v.code == Code::NotNumeric).unwrap();
    let json = serde_json::to_value(&v).unwrap();
    assert_eq!(json["code"], "not-numeric");
    assert!(json["file"].as_str().unwrap().ends_with(v.file.file_name().unwrap().to_str().unwrap()));
    assert_eq!(json["field"], v.field.clone().unwrap());
    assert_eq!(json["message"], v.message);
    assert_eq!(serde_json::from_value::<Violation>(json).unwrap(), v);
}
