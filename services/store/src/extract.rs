//! What the index keeps of one message, computed from the parsed file name and the message text
//! (read through `ssmix2::hl7::MessageView`, which copies nothing it does not return): the SSMIXIDX
//! fields and the rows of the viewer's search tables. Pure: no I/O.

mod adt;
mod obx;
mod parts;

use ssmix2::FileName;
use ssmix2::hl7::{MessageView, SegmentView};

/// A drug prescribed (RXE), one component of an injection (RXC) or a drug administered (RXA).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Drug {
    pub source: &'static str,
    pub code: String,
    pub name: String,
    pub coding_system: String,
    /// Per intake (RXE-3, RXA-6) or, for an RXC, the amount of this component (RXC-3).
    pub dose: String,
    pub dose_unit: String,
    pub days: String,
    pub route: String,
    pub given_at: String,
    /// For an RXC: the item number (1-based, in this message) of the RXE it belongs to.
    pub component_of: Option<usize>,
    /// 用法: TQ1-3 (a repeat pattern whose code and text are subcomponents of component 1).
    pub usage_code: String,
    pub usage_text: String,
    /// RXE-7: the prescriber's instructions (`５時間一定速度で`).
    pub instructions: String,
    /// RXE-19: the daily dose.
    pub daily_dose: String,
    pub daily_dose_unit: String,
    /// RXE-10/11: the total dispensed.
    pub total: String,
    pub total_unit: String,
    /// RXE-23/24 (RXA-12 as text for an administration): the rate (`102 ml/hr`).
    pub rate: String,
    pub rate_unit: String,
    /// TQ1-7/8 for an order; RXA-4 is the administration's end.
    pub start_time: String,
    pub end_time: String,
}

/// One result (OBX).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Lab {
    /// OBX-3.1 with its subcomponents (`58368&7`).
    pub code: String,
    /// OBX-3.2 with its subcomponents (`R 振幅&V5`).
    pub name: String,
    pub coding_system: String,
    pub value_type: String,
    /// OBX-5 rendered by its type: see [`obx::Value`].
    pub value: String,
    pub value_num: Option<f64>,
    /// The code of a coded OBX-5 (its text is in `value`).
    pub value_code: String,
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
    /// PRB-14.1 (outcome, HL7 table 0241: `F` recovered, `D` died, `N` not recovered …);
    /// DG1-6 for a DG1.
    pub status: String,
    /// PRB-14.2, the outcome as the sender wrote it (`回復せず`).
    pub status_text: String,
    /// PRB-9, the date the problem ended (転帰日).
    pub resolved_date: String,
}

/// One patient movement (ADT).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Encounter {
    /// By trigger: `admission`, `admission-cancelled`, `transfer` … (see `adt::TRIGGERS`).
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
    let d = msg.delimiters;
    let mut out = Extracted { message_type: message_type(msg), ..Extracted::default() };
    // The RXE or RXA that TQ1 and RXC belong to.
    let mut current_drug: Option<usize> = None;
    // Where the current ORC's drugs start: an RXR applies to every drug of its group (RAS^O17
    // puts one RXR after several RXA).
    let mut group_start = 0;
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
                    dose_unit: parts::unit(seg, 5, 1, &d),
                    instructions: first_nonempty(comp(seg, 7, 2), comp(seg, 7, 1)),
                    total: comp(seg, 10, 1),
                    total_unit: parts::unit(seg, 11, 1, &d),
                    daily_dose: comp(seg, 19, 1),
                    daily_dose_unit: parts::unit(seg, 19, 2, &d),
                    rate: comp(seg, 23, 1),
                    rate_unit: parts::unit(seg, 24, 1, &d),
                    ..Drug::default()
                });
                current_drug = Some(out.drugs.len() - 1);
            }
            "RXC" => {
                let parent = current_drug.filter(|&i| out.drugs[i].source == "RXE");
                out.drugs.push(Drug {
                    source: "RXC",
                    code: comp(seg, 2, 1),
                    name: comp(seg, 2, 2),
                    coding_system: comp(seg, 2, 3),
                    dose: comp(seg, 3, 1),
                    dose_unit: parts::unit(seg, 4, 1, &d),
                    component_of: parent.map(|i| i + 1),
                    ..Drug::default()
                });
            }
            "RXA" => {
                out.drugs.push(Drug {
                    source: "RXA",
                    code: comp(seg, 5, 1),
                    name: comp(seg, 5, 2),
                    coding_system: comp(seg, 5, 3),
                    dose: comp(seg, 6, 1),
                    dose_unit: parts::unit(seg, 7, 1, &d),
                    given_at: comp(seg, 3, 1),
                    end_time: comp(seg, 4, 1),
                    rate: comp(seg, 12, 1),
                    ..Drug::default()
                });
                current_drug = Some(out.drugs.len() - 1);
            }
            // TQ1-3 usage, TQ1-6 service duration (`5^d`: the days), TQ1-7/8 start and end.
            "TQ1" => {
                if let Some(drug) = current_drug.and_then(|i| out.drugs.get_mut(i)) {
                    let unit = comp(seg, 6, 2);
                    let amount = comp(seg, 6, 1);
                    if !amount.is_empty() && (unit.eq_ignore_ascii_case("d") || unit.is_empty()) {
                        drug.days = amount;
                    }
                    if let Some(rep) = seg.field(3).and_then(|f| f.split(d.repetition).next()) {
                        drug.usage_code = parts::sub(rep, &d, 1, 1);
                        drug.usage_text = parts::sub(rep, &d, 1, 2);
                    }
                    drug.start_time = comp(seg, 7, 1);
                    drug.end_time = comp(seg, 8, 1);
                }
            }
            "RXR" => {
                let route = comp(seg, 1, 1);
                for drug in out.drugs.iter_mut().skip(group_start).filter(|x| x.route.is_empty()) {
                    drug.route.clone_from(&route);
                }
            }
            "ORC" => {
                current_drug = None;
                group_start = out.drugs.len();
            }
            "OBX" => {
                let value_type = comp(seg, 2, 1);
                let v = obx::value(seg, &value_type, &d);
                out.labs.push(Lab {
                    code: parts::whole_first(seg, 3, &d, 1),
                    name: parts::whole_first(seg, 3, &d, 2),
                    coding_system: comp(seg, 3, 3),
                    value_type,
                    value: v.text,
                    value_num: v.num,
                    value_code: v.code,
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
                    status_text: comp(seg, 14, 2),
                    resolved_date: comp(seg, 9, 1),
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
                    ..Diagnosis::default()
                });
            }
            _ => {}
        }
    }
    // An RXC is given the way its RXE is (RDE^O11 puts the RXR before the RXC).
    for i in 0..out.drugs.len() {
        if let Some(p) = out.drugs[i].component_of.filter(|_| out.drugs[i].route.is_empty()) {
            out.drugs[i].route = out.drugs[p - 1].route.clone();
        }
    }
    out.encounters.extend(adt::encounter(msg, name.data_type));
    out
}

fn first_nonempty(a: String, b: String) -> String {
    if a.is_empty() { b } else { a }
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

    const ADT22: &str =
        "999/901/9999013/20111120/ADT-22/9999013_20111120_ADT-22_999999999999999_20111220224447339_01_1";
    const OMP01: &str =
        "999/901/9999013/20110701/OMP-01/9999013_20110701_OMP-01_000000011000185_20110701224603984_01_1";
    const OMP02: &str =
        "999/901/9999013/20110701/OMP-02/9999013_20110701_OMP-02_123456789012345_20110701224603984_01_1";
    const OML11: &str =
        "999/901/9999013/20111220/OML-11/9999013_20111220_OML-11_000000011000354_20111220103059000_01_1";

    /// The sample `rel` with `from` replaced by `to` (a constructed variant of a real message).
    fn variant(rel: &str, from: &str, to: &str) -> (String, FileName) {
        let (m, n) = sample(rel);
        assert!(m.contains(from), "{from} not in {rel}");
        (m.replace(from, to), n)
    }

    #[test]
    fn an_admission_cancel_is_labelled_a_cancel_not_an_admission() {
        let (m, n) = variant(ADT22, "ADT^A01^ADT_A01", "ADT^A11^ADT_A09");
        let x = extract(&MessageView::parse(&m).unwrap(), &n);
        assert_eq!(x.encounters.len(), 1);
        let e = &x.encounters[0];
        assert_eq!((e.event, e.trigger_event.as_str()), ("admission-cancelled", "A11"));
        assert_eq!(e.event_time, "201111201600");
        // Every cancel trigger is a cancel, whatever folder it sits in.
        for (trigger, event) in [
            ("A27", "planned-admission-cancelled"),
            ("A12", "transfer-cancelled"),
            ("A13", "discharge-cancelled"),
            ("A25", "planned-discharge-cancelled"),
            ("A26", "planned-transfer-cancelled"),
            ("A52", "leave-cancelled"),
            ("A53", "return-cancelled"),
        ] {
            let (m, n) = variant(ADT22, "ADT^A01^ADT_A01", &format!("ADT^{trigger}^ADT_A01"));
            let x = extract(&MessageView::parse(&m).unwrap(), &n);
            assert_eq!(x.encounters[0].event, event, "{trigger}");
        }
    }

    #[test]
    fn an_injection_order_lists_its_rxc_drugs_with_amounts() {
        let (m, n) = sample(OMP02);
        let x = extract(&MessageView::parse(&m).unwrap(), &n);
        let names: Vec<(&str, &str, &str, &str)> = x
            .drugs
            .iter()
            .take(3)
            .map(|d| (d.source, d.name.as_str(), d.dose.as_str(), d.dose_unit.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("RXE", "一般", "510", "ML"),
                ("RXC", "ソリタ－Ｔ３号輸液５００ｍＬ", "1", "HON"),
                ("RXC", "アドナ注（静脈用）50mg", "1", "AMP"),
            ]
        );
        assert_eq!(x.drugs.len(), 9);
        assert_eq!(x.drugs[1].code, "620007329");
        assert_eq!(x.drugs[2].route, "IV");
        let (rxe, rxc) = (&x.drugs[0], &x.drugs[2]);
        assert_eq!((rxc.component_of, x.drugs[5].component_of), (Some(1), Some(4)));
        assert_eq!((rxe.rate.as_str(), rxe.rate_unit.as_str()), ("102", "ml/hr"));
        assert_eq!((rxe.start_time.as_str(), rxe.end_time.as_str()), ("201107010800", "201107011300"));
        assert_eq!(rxe.instructions, "５時間一定速度で");
    }

    #[test]
    fn a_prescription_keeps_its_usage_daily_dose_and_total() {
        let (m, n) = sample(OMP01);
        let x = extract(&MessageView::parse(&m).unwrap(), &n);
        let d = &x.drugs[2];
        assert_eq!(
            (d.usage_code.as_str(), d.usage_text.as_str()),
            ("1012040400000000", "内服・経口・１日２回朝夕食後")
        );
        assert_eq!((d.daily_dose.as_str(), d.daily_dose_unit.as_str()), ("100", "MG"));
        assert_eq!((d.total.as_str(), d.total_unit.as_str()), ("1400", "MG"));
        assert_eq!((x.drugs[0].daily_dose.as_str(), x.drugs[0].daily_dose_unit.as_str()), ("3", "TAB"));
        // A unit given only as text (component 2) is kept, not lost.
        let (m, n) = variant(OMP01, "|50||MG^ミリグラム^MR9P|", "|50||^mg^MR9P|");
        let x = extract(&MessageView::parse(&m).unwrap(), &n);
        assert_eq!((x.drugs[2].dose.as_str(), x.drugs[2].dose_unit.as_str()), ("50", "mg"));
    }

    #[test]
    fn a_diagnosis_keeps_its_outcome_text_and_resolution_date() {
        let (m, n) =
            sample("999/901/9999013/-/PPR-01/9999013_-_PPR-01_999999999999999_20111209163030000_01_1");
        let x = extract(&MessageView::parse(&m).unwrap(), &n);
        let g = &x.diagnoses[0];
        assert_eq!(
            (g.status.as_str(), g.status_text.as_str(), g.resolved_date.as_str()),
            ("N", "回復せず", "20110915")
        );
    }

    #[test]
    fn structured_numeric_and_coded_results_keep_their_whole_value() {
        let (m, n) = variant(
            OML11,
            "OBX|1|NM|3A016000002327102^A/G比^JC10||1.7||1.2-2.0||||F|||201112191500",
            "OBX|1|SN|5F016141002327101^HBs抗原^JC10||<^0.005|IU/mL|||N|||F|||201112191500\r\
             OBX|2|SN|5C070000002302301^CRP^JC10||>^30.0|mg/dL|||H|||F|||201112191500\r\
             OBX|3|SN|5F000000002300000^titre^JC10||^1^:^128||||||F|||201112191500\r\
             OBX|4|SN|5F000000002300001^exact^JC10||^4.5||||||F|||201112191500",
        );
        let x = extract(&MessageView::parse(&m).unwrap(), &n);
        let v: Vec<(&str, Option<f64>)> =
            x.labs.iter().take(4).map(|l| (l.value.as_str(), l.value_num)).collect();
        assert_eq!(v, [("<0.005", None), (">30.0", None), ("1:128", None), ("4.5", Some(4.5))]);
        let (m, n) = sample(
            "999/901/9999013/20111220/OMG-12/9999013_20111220_OMG-12_201112201656100_20111220224447339_01_1",
        );
        let x = extract(&MessageView::parse(&m).unwrap(), &n);
        assert_eq!((x.labs[0].value.as_str(), x.labs[0].value_code.as_str()), ("重度", "SV"));
        assert_eq!(x.labs[4].value, "大江戸 信吉");
        assert_eq!(x.labs[11].value, "セルシン5mg 1 管");
    }

    #[test]
    fn a_transfer_is_dated_by_evn6_when_it_happened_not_when_recorded() {
        let (m, n) = sample(
            "999/901/9999013/20111220/ADT-42/9999013_20111220_ADT-42_999999999999999_20111220224447339_10_1",
        );
        let x = extract(&MessageView::parse(&m).unwrap(), &n);
        assert_eq!(
            (x.encounters[0].event, x.encounters[0].event_time.as_str()),
            ("transfer", "201112202000")
        );
    }

    #[test]
    fn ecg_leads_in_obx3_subcomponents_stay_distinct() {
        let (m, n) = sample(
            "999/901/9999013/20111220/OMG-13/9999013_20111220_OMG-13_999999999999999_20111220224447339_01_1",
        );
        let x = extract(&MessageView::parse(&m).unwrap(), &n);
        let by: Vec<(&str, &str)> = x.labs.iter().map(|l| (l.code.as_str(), l.name.as_str())).collect();
        assert!(by.contains(&("58368&7", "R 振幅&V5")), "{by:?}");
        assert!(by.contains(&("58496&3", "S 振幅&V1")), "{by:?}");
        assert!(by.contains(&("59136", "QTc 時間&Bazzet")), "{by:?}");
    }

    #[test]
    fn one_rxr_after_several_rxa_gives_its_route_to_each() {
        for (rel, route) in [
            (
                "999/901/9999013/20110701/OMP-12/9999013_20110701_OMP-12_123456789012345_20110701113813225_01_1",
                "IV",
            ),
            (
                "999/901/9999013/20110630/OMP-11/9999013_20110630_OMP-11_123456789012345_20110701113813225_01_1",
                "PO",
            ),
        ] {
            let (m, n) = sample(rel);
            let x = extract(&MessageView::parse(&m).unwrap(), &n);
            assert_eq!(x.drugs.len(), 2);
            assert!(x.drugs.iter().all(|d| d.route == route), "{rel}: {:?}", x.drugs);
        }
    }
}
