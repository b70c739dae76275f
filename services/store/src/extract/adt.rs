//! Patient movements: what each ADT trigger event means, and which field holds when it happened.

use ssmix2::DataType;
use ssmix2::hl7::MessageView;

use super::{Encounter, comp};

/// For each ADT trigger: the event label, and the field with its time as the NHO validator's
/// care-date table (`SSMIX_CAREDATE.json`) names it (segment, field number). A cancel is labelled
/// as the cancel of what it cancels, never as that event.
const TRIGGERS: &[(&str, &str, (&str, usize))] = &[
    ("A04", "outpatient-visit", ("PV1", 44)),
    ("A14", "planned-admission", ("PV2", 8)),
    ("A27", "planned-admission-cancelled", ("PV2", 8)),
    ("A01", "admission", ("PV1", 44)),
    ("A11", "admission-cancelled", ("PV1", 44)),
    ("A21", "leave", ("EVN", 6)),
    ("A52", "leave-cancelled", ("EVN", 6)),
    ("A22", "return", ("EVN", 6)),
    ("A53", "return-cancelled", ("PV2", 47)),
    ("A15", "planned-transfer", ("PV2", 8)),
    ("A26", "planned-transfer-cancelled", ("PV2", 8)),
    ("A02", "transfer", ("EVN", 6)),
    ("A12", "transfer-cancelled", ("EVN", 6)),
    ("A16", "planned-discharge", ("PV2", 9)),
    ("A25", "planned-discharge-cancelled", ("PV2", 9)),
    ("A03", "discharge", ("PV1", 45)),
    ("A13", "discharge-cancelled", ("PV1", 45)),
];

/// The encounter kind of an ADT data type whose trigger is not in [`TRIGGERS`].
fn folder_event(dt: DataType) -> Option<&'static str> {
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

/// The movement an ADT message records, if its data type is a patient movement. The label and
/// the time come from the trigger (MSH-9.2); the time falls back to EVN-6 (when it happened),
/// then EVN-2 (when it was recorded).
pub fn encounter(msg: &MessageView, dt: DataType) -> Option<Encounter> {
    let folder = folder_event(dt)?;
    let trigger = msg.segment("MSH").map(|s| comp(&s, 9, 2)).unwrap_or_default();
    let known = TRIGGERS.iter().find(|(t, ..)| *t == trigger);
    let at = |seg: &str, n: usize| msg.segment(seg).map(|s| comp(&s, n, 1)).unwrap_or_default();
    let mut time = known.map(|(_, _, (seg, n))| at(seg, *n)).unwrap_or_default();
    for (seg, n) in [("EVN", 6), ("EVN", 2)] {
        if time.is_empty() {
            time = at(seg, n);
        }
    }
    let pv1 = msg.segment("PV1");
    let field = |n: usize| pv1.map(|s| comp(&s, n, 1)).unwrap_or_default();
    Some(Encounter {
        event: known.map_or(folder, |(_, e, _)| e),
        trigger_event: trigger,
        event_time: time,
        patient_class: field(2),
        ward: field(3),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table agrees with the NHO validator's care-date table for every trigger it lists.
    #[test]
    fn times_come_from_the_fields_the_nho_care_date_table_names() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/external/nhoHQ-SSMIX2DataTestingTool/include/SSMIX_CAREDATE.json"
        );
        let table: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        for (trigger, _, (seg, n)) in TRIGGERS {
            let named = table[&format!("ADT^{trigger}")].as_str().unwrap();
            assert_eq!(named, format!("{seg}-{n}"), "{trigger}");
        }
    }
}
