//! What the index keeps of one message, computed from the parsed file name and the message text
//! (read through `ssmix2::hl7::MessageView`, which copies nothing it does not return): the SSMIXIDX
//! fields and the rows of the viewer's search tables. Pure: no I/O.

use ssmix2::hl7::{MessageView, SegmentView};
use ssmix2::{DataType, FileName};

/// A drug prescribed (RXE) or administered (RXA).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Drug {
    pub source: &'static str,
    pub code: String,
    pub name: String,
    pub coding_system: String,
    pub dose: String,
    pub dose_unit: String,
    pub days: String,
    pub route: String,
    pub given_at: String,
}

/// One result (OBX).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Lab {
    pub code: String,
    pub name: String,
    pub coding_system: String,
    pub value_type: String,
    pub value: String,
    pub value_num: Option<f64>,
    pub units: String,
    pub reference_range: String,
    pub abnormal_flags: String,
    pub result_status: String,
    pub observed_at: String,
}

/// One diagnosis (PRB or DG1).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Diagnosis {
    pub source: &'static str,
    pub code: String,
    pub name: String,
    pub coding_system: String,
    pub icd10: String,
    pub onset_date: String,
    pub status: String,
}

/// One patient movement (ADT).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Encounter {
    pub event: &'static str,
    pub trigger_event: String,
    pub event_time: String,
    pub patient_class: String,
    pub ward: String,
}

/// Everything the index derives from a message's content.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Extracted {
    /// `MSH-9.1^MSH-9.2`, e.g. `RDE^O11`.
    pub message_type: String,
    pub drugs: Vec<Drug>,
    pub labs: Vec<Lab>,
    pub diagnoses: Vec<Diagnosis>,
    pub encounters: Vec<Encounter>,
}

/// Component `c` (1-based) of the first repetition of field `n`, unescaped; empty when absent.
fn comp(seg: &SegmentView, n: usize, c: usize) -> String {
    seg.component(n, c).into_owned()
}

/// `MSH-9.1^MSH-9.2`, or empty when MSH-9 lacks either part.
fn message_type(msg: &MessageView) -> String {
    let Some(msh) = msg.segment("MSH") else { return String::new() };
    let d = msg.delimiters;
    let first_rep = msh.field(9).and_then(|f| f.split(d.repetition).next()).unwrap_or("");
    if !first_rep.contains(d.component) {
        return String::new();
    }
    format!("{}^{}", msh.component(9, 1), msh.component(9, 2))
}

/// Extracts the message type and search rows.
pub fn extract(msg: &MessageView, name: &FileName) -> Extracted {
    let mut out = Extracted { message_type: message_type(msg), ..Extracted::default() };
    let mut current_drug: Option<usize> = None;
    for seg in msg.segments() {
        let seg = &seg;
        match seg.id() {
            "RXE" => {
                out.drugs.push(Drug {
                    source: "RXE",
                    code: comp(seg, 2, 1),
                    name: comp(seg, 2, 2),
                    coding_system: comp(seg, 2, 3),
                    dose: comp(seg, 3, 1),
                    dose_unit: comp(seg, 5, 1),
                    ..Drug::default()
                });
                current_drug = Some(out.drugs.len() - 1);
            }
            "RXA" => {
                out.drugs.push(Drug {
                    source: "RXA",
                    code: comp(seg, 5, 1),
                    name: comp(seg, 5, 2),
                    coding_system: comp(seg, 5, 3),
                    dose: comp(seg, 6, 1),
                    dose_unit: comp(seg, 7, 1),
                    given_at: comp(seg, 3, 1),
                    ..Drug::default()
                });
                current_drug = Some(out.drugs.len() - 1);
            }
            // TQ1-6 service duration, e.g. `5^d`: the prescription's days.
            "TQ1" => {
                if let Some(d) = current_drug.and_then(|i| out.drugs.get_mut(i)) {
                    let unit = comp(seg, 6, 2);
                    let amount = comp(seg, 6, 1);
                    if !amount.is_empty() && (unit.eq_ignore_ascii_case("d") || unit.is_empty()) {
                        d.days = amount;
                    }
                }
            }
            "RXR" => {
                if let Some(d) = current_drug.and_then(|i| out.drugs.get_mut(i))
                    && d.route.is_empty()
                {
                    d.route = comp(seg, 1, 1);
                }
            }
            "ORC" => current_drug = None,
            "OBX" => {
                let value = comp(seg, 5, 1);
                let value_type = comp(seg, 2, 1);
                let value_num = if value_type == "NM" {
                    value.trim().parse::<f64>().ok().filter(|v| v.is_finite())
                } else {
                    None
                };
                out.labs.push(Lab {
                    code: comp(seg, 3, 1),
                    name: comp(seg, 3, 2),
                    coding_system: comp(seg, 3, 3),
                    value_type,
                    value,
                    value_num,
                    units: comp(seg, 6, 1),
                    reference_range: comp(seg, 7, 1),
                    abnormal_flags: comp(seg, 8, 1),
                    result_status: comp(seg, 11, 1),
                    observed_at: comp(seg, 14, 1),
                });
            }
            "PRB" => {
                // PRB-10 carries the ICD-10 code in SS-MIX2 (component 3 = `I10`).
                let icd10 = if comp(seg, 10, 3) == "I10" { comp(seg, 10, 1) } else { String::new() };
                out.diagnoses.push(Diagnosis {
                    source: "PRB",
                    code: comp(seg, 3, 1),
                    name: comp(seg, 3, 2),
                    coding_system: comp(seg, 3, 3),
                    icd10,
                    onset_date: comp(seg, 16, 1),
                    status: comp(seg, 14, 1),
                });
            }
            "DG1" => {
                let system = comp(seg, 3, 3);
                let code = comp(seg, 3, 1);
                out.diagnoses.push(Diagnosis {
                    source: "DG1",
                    icd10: if system == "I10" { code.clone() } else { String::new() },
                    code,
                    name: comp(seg, 3, 2),
                    coding_system: system,
                    onset_date: comp(seg, 5, 1),
                    status: comp(seg, 6, 1),
                });
            }
            _ => {}
        }
    }
    if let Some(event) = encounter_event(name.data_type) {
        let trigger = msg.segment("MSH").map(|s| comp(&s, 9, 2)).unwrap_or_default();
        let pv1 = msg.segment("PV1");
        let field = |n: usize, c: usize| pv1.map(|s| comp(&s, n, c)).unwrap_or_default();
        let evn_time = msg.segment("EVN").map(|s| comp(&s, 2, 1)).unwrap_or_default();
        let event_time = match name.data_type {
            DataType::Adt22 | DataType::Adt21 => field(44, 1),
            DataType::Adt52 | DataType::Adt51 => field(45, 1),
            _ => String::new(),
        };
        out.encounters.push(Encounter {
            event,
            trigger_event: trigger,
            event_time: if event_time.is_empty() { evn_time } else { event_time },
            patient_class: field(2, 1),
            ward: field(3, 1),
        });
    }
    out
}

/// The encounter kind recorded for an ADT data type, if it is a patient movement.
fn encounter_event(dt: DataType) -> Option<&'static str> {
    Some(match dt {
        DataType::Adt12 => "outpatient-visit",
        DataType::Adt21 => "planned-admission",
        DataType::Adt22 => "admission",
        DataType::Adt31 => "leave",
        DataType::Adt32 => "return",
        DataType::Adt41 => "planned-transfer",
        DataType::Adt42 => "transfer",
        DataType::Adt51 => "planned-discharge",
        DataType::Adt52 => "discharge",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(rel: &str) -> (String, FileName) {
        let root = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/external/nhoHQ-SSMIX2DataTestingTool/sampleData/"
        );
        let bytes = std::fs::read(format!("{root}{rel}")).unwrap();
        let name: FileName = rel.rsplit('/').next().unwrap().parse().unwrap();
        (ssmix2::hl7::decode_iso2022jp(&bytes).unwrap(), name)
    }

    #[test]
    fn prescription_gives_drug_codes_doses_and_days() {
        let (m, n) = sample(
            "999/901/9999013/20110701/OMP-01/9999013_20110701_OMP-01_000000011000185_20110701224603984_01_1",
        );
        let x = extract(&MessageView::parse(&m).unwrap(), &n);
        assert_eq!(x.message_type, "RDE^O11");
        assert_eq!(x.drugs.len(), 3);
        let d = &x.drugs[2];
        assert_eq!(
            (d.code.as_str(), d.name.as_str(), d.coding_system.as_str()),
            ("100607002", "アレピアチン１０倍散", "HOT9")
        );
        assert_eq!(
            (d.dose.as_str(), d.dose_unit.as_str(), d.days.as_str(), d.route.as_str()),
            ("50", "MG", "14", "PO")
        );
    }

    #[test]
    fn lab_result_gives_values_units_and_ranges() {
        let (m, n) = sample(
            "999/901/9999013/20111220/OML-11/9999013_20111220_OML-11_000000011000354_20111220103059000_01_1",
        );
        let x = extract(&MessageView::parse(&m).unwrap(), &n);
        assert_eq!(x.labs.len(), 3);
        let l = &x.labs[1];
        assert_eq!((l.code.as_str(), l.name.as_str()), ("3A010000002327101", "総蛋白"));
        assert_eq!((l.value.as_str(), l.value_num, l.units.as_str()), ("7.2", Some(7.2), "g/dl"));
        assert_eq!((l.reference_range.as_str(), l.observed_at.as_str()), ("6.70-8.3", "201112191500"));
    }

    #[test]
    fn diagnoses_and_admissions_are_found() {
        let (m, n) =
            sample("999/901/9999013/-/PPR-01/9999013_-_PPR-01_999999999999999_20111209163030000_01_1");
        let x = extract(&MessageView::parse(&m).unwrap(), &n);
        assert_eq!(x.diagnoses.len(), 1);
        assert_eq!((x.diagnoses[0].code.as_str(), x.diagnoses[0].icd10.as_str()), ("20054174", "K297"));
        assert_eq!(x.diagnoses[0].onset_date, "20110831");
        let (m, n) = sample(
            "999/901/9999013/20111120/ADT-22/9999013_20111120_ADT-22_999999999999999_20111220224447339_01_1",
        );
        let x = extract(&MessageView::parse(&m).unwrap(), &n);
        assert_eq!(x.encounters.len(), 1);
        assert_eq!(
            (x.encounters[0].event, x.encounters[0].event_time.as_str()),
            ("admission", "201111201600")
        );
        assert_eq!(x.encounters[0].ward, "32");
    }
}
