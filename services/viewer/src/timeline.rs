//! One patient's records across facilities, read from the store's IndexDB: every current record
//! (condition flag `1`) of each (facility, local patient ID) the viewer may show, with the search
//! rows the store extracted from it (drugs, labs, diagnoses, encounters). Newest first.
//!
//! Each query is keyed by (facility_id, patient_id) and answered from an index that starts with
//! those two columns, so the cost grows with the patient's records, not with the table
//! (`benches/timeline.rs` measures it on 10 million records).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::ViewerError;

/// A drug prescribed (`RXE`), a component of an injection (`RXC`, under its RXE) or a drug
/// administered (`RXA`). The fields after `route` are empty for rows the store wrote before it
/// extracted them (NULL columns), until it re-derives its search rows.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Drug {
    pub source: String,
    pub code: String,
    pub name: String,
    pub dose: String,
    pub dose_unit: String,
    pub days: String,
    pub route: String,
    /// For an RXC: the item number of its RXE in the same record.
    pub component_of: Option<i64>,
    pub usage_text: String,
    pub instructions: String,
    pub daily_dose: String,
    pub daily_dose_unit: String,
    pub total: String,
    pub total_unit: String,
    pub rate: String,
    pub rate_unit: String,
    pub start_time: String,
    pub end_time: String,
}

/// One lab or physiology result.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Lab {
    pub code: String,
    pub name: String,
    /// As the reader should see it (`<0.005`, `重度`); a coded value's code is `value_code`.
    pub value: String,
    pub value_code: String,
    pub units: String,
    pub reference_range: String,
    pub abnormal_flags: String,
    pub observed_at: String,
}

/// One diagnosis.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Diagnosis {
    pub code: String,
    pub name: String,
    pub icd10: String,
    pub onset_date: String,
    /// The outcome code (PRB-14.1, HL7 table 0241).
    pub status: String,
    /// The outcome as the sender wrote it (PRB-14.2).
    pub status_text: String,
    /// PRB-9: when the problem ended.
    pub resolved_date: String,
}

impl Diagnosis {
    /// Whether the diagnosis has ended (cured, died, …) rather than being current: an outcome
    /// other than none, not recovering (`N`), recovering (`R`), worsening (`W`) or unknown (`U`),
    /// or a resolution date with no outcome.
    pub fn ended(&self) -> bool {
        match self.status.as_str() {
            "" => !self.resolved_date.is_empty(),
            "N" | "R" | "W" | "U" => false,
            _ => true,
        }
    }

    /// The outcome in words: the sender's text, else HL7 table 0241's meaning of the code.
    pub fn outcome(&self) -> String {
        if !self.status_text.is_empty() {
            return self.status_text.clone();
        }
        match self.status.as_str() {
            "D" => "died",
            "F" => "fully recovered",
            "N" => "not recovering",
            "R" => "recovering",
            "S" => "with sequelae",
            "U" => "unknown",
            "W" => "worsening",
            other => other,
        }
        .to_owned()
    }
}

/// One patient movement (admission, discharge, visit …).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Encounter {
    pub event: String,
    pub trigger_event: String,
    pub event_time: String,
    pub patient_class: String,
    pub ward: String,
}

/// ADT cancel triggers and what each cancels.
const CANCELS: &[(&str, &str)] = &[
    ("A11", "admission"),
    ("A12", "transfer"),
    ("A13", "discharge"),
    ("A25", "planned discharge"),
    ("A26", "planned transfer"),
    ("A27", "planned admission"),
    ("A52", "leave of absence"),
    ("A53", "return from leave"),
    ("A55", "attending doctor change"),
];

impl Encounter {
    /// What a reader sees: `CANCELLED admission` for a cancel, else the event. Decided from
    /// the trigger, so rows stored before the store labelled cancels (`event = admission`,
    /// `trigger_event = A11`) read as cancels too.
    pub fn label(&self) -> String {
        match self.cancelled() {
            Some(what) => format!("CANCELLED {what}"),
            None => self.event.replace('-', " "),
        }
    }

    /// What this movement cancels, if it is a cancel.
    pub fn cancelled(&self) -> Option<&'static str> {
        CANCELS.iter().find(|(t, _)| *t == self.trigger_event).map(|(_, w)| *w)
    }
}

/// One stored SS-MIX2 file and what it holds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entry {
    pub record_id: i64,
    pub facility: String,
    pub patient_id: String,
    /// `YYYYMMDD`: the care date, or for data without one (diagnoses, patient updates) the day of
    /// the message's timestamp.
    pub date: String,
    /// SS-MIX2 data type code, e.g. `OMP-01`.
    pub data_kind: String,
    pub message_type: String,
    pub transaction_datetime: String,
    pub department: String,
    pub order_no: String,
    pub drugs: Vec<Drug>,
    pub labs: Vec<Lab>,
    pub diagnoses: Vec<Diagnosis>,
    pub encounters: Vec<Encounter>,
}

impl Entry {
    /// What the data type holds, in English (`prescription order` …).
    pub fn meaning(&self) -> &'static str {
        ssmix2::DataType::parse(&self.data_kind).map(|d| d.meaning()).unwrap_or("other")
    }
}

/// What the user asked to see.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    /// Only these data types (empty = all).
    pub kinds: BTreeSet<String>,
    /// Only these facilities (empty = all).
    pub facilities: BTreeSet<String>,
}

impl Filter {
    pub fn keeps(&self, e: &Entry) -> bool {
        (self.kinds.is_empty() || self.kinds.contains(&e.data_kind))
            && (self.facilities.is_empty() || self.facilities.contains(&e.facility))
    }
}

/// Entries grouped by date, newest date first (entries within a date newest first).
pub fn group_by_date(entries: &[Entry]) -> Vec<(String, Vec<&Entry>)> {
    let mut days: BTreeMap<&str, Vec<&Entry>> = BTreeMap::new();
    for e in entries {
        days.entry(e.date.as_str()).or_default().push(e);
    }
    days.into_iter().rev().map(|(d, v)| (d.to_owned(), v)).collect()
}

/// Sorts newest first: by date, then by the message timestamp, then by record id.
pub fn sort_newest_first(entries: &mut [Entry]) {
    entries.sort_by(|a, b| {
        (b.date.as_str(), b.transaction_datetime.as_str(), b.record_id).cmp(&(
            a.date.as_str(),
            a.transaction_datetime.as_str(),
            a.record_id,
        ))
    });
}

fn get<'r, T: sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>>(
    r: &'r AnyRow,
    i: usize,
) -> Result<T, ViewerError> {
    r.try_get(i).map_err(ViewerError::db("reading a row"))
}

/// A text column added after rows were written (NULL in those rows): empty when NULL.
fn opt(r: &AnyRow, i: usize) -> Result<String, ViewerError> {
    Ok(get::<Option<String>>(r, i)?.unwrap_or_default())
}

/// Every current record of `keys` ((facility, local patient ID) pairs), newest first.
pub async fn load(pool: &sqlx::AnyPool, keys: &[(String, String)]) -> Result<Vec<Entry>, ViewerError> {
    let mut out = Vec::new();
    for (facility, patient) in keys {
        out.extend(load_one(pool, facility, patient).await?);
    }
    sort_newest_first(&mut out);
    Ok(out)
}

async fn load_one(pool: &sqlx::AnyPool, facility: &str, patient: &str) -> Result<Vec<Entry>, ViewerError> {
    let rows = sqlx::query(
        "SELECT id, order_date, data_kind, message_type, transaction_datetime, enter_org_cd, order_no \
         FROM records WHERE facility_id = $1 AND patient_id = $2 AND condition_flag = '1' \
         ORDER BY order_date DESC, transaction_datetime DESC",
    )
    .bind(facility)
    .bind(patient)
    .fetch_all(pool)
    .await
    .map_err(ViewerError::db("reading a patient's records"))?;
    let mut entries = Vec::with_capacity(rows.len());
    let mut at: HashMap<i64, usize> = HashMap::with_capacity(rows.len());
    for r in &rows {
        let id: i64 = get(r, 0)?;
        let order_date: String = get(r, 1)?;
        let ts: String = get(r, 4)?;
        let date = if order_date.len() == 8 && order_date.bytes().all(|b| b.is_ascii_digit()) {
            order_date
        } else {
            ts.chars().take(8).collect()
        };
        at.insert(id, entries.len());
        entries.push(Entry {
            record_id: id,
            facility: facility.to_owned(),
            patient_id: patient.to_owned(),
            date,
            data_kind: get(r, 2)?,
            message_type: get(r, 3)?,
            transaction_datetime: ts,
            department: get(r, 5)?,
            order_no: get(r, 6)?,
            drugs: Vec::new(),
            labs: Vec::new(),
            diagnoses: Vec::new(),
            encounters: Vec::new(),
        });
    }
    if entries.is_empty() {
        return Ok(entries);
    }
    // Search rows of superseded records are skipped: their record is not in `at`.
    let q = |sql: &'static str| sqlx::query(sql).bind(facility.to_owned()).bind(patient.to_owned());
    for r in q("SELECT record_id, source, code, name, dose, dose_unit, days, route, component_of, usage_text, \
                instructions, daily_dose, daily_dose_unit, total, total_unit, rate, rate_unit, start_time, end_time \
                FROM drugs WHERE facility_id = $1 AND patient_id = $2 ORDER BY record_id, item_no")
    .fetch_all(pool)
    .await
    .map_err(ViewerError::db("reading drugs"))?
    {
        if let Some(&i) = at.get(&get::<i64>(&r, 0)?) {
            entries[i].drugs.push(Drug {
                source: get(&r, 1)?,
                code: get(&r, 2)?,
                name: get(&r, 3)?,
                dose: get(&r, 4)?,
                dose_unit: get(&r, 5)?,
                days: get(&r, 6)?,
                route: get(&r, 7)?,
                component_of: get(&r, 8)?,
                usage_text: opt(&r, 9)?,
                instructions: opt(&r, 10)?,
                daily_dose: opt(&r, 11)?,
                daily_dose_unit: opt(&r, 12)?,
                total: opt(&r, 13)?,
                total_unit: opt(&r, 14)?,
                rate: opt(&r, 15)?,
                rate_unit: opt(&r, 16)?,
                start_time: opt(&r, 17)?,
                end_time: opt(&r, 18)?,
            });
        }
    }
    for r in q(
        "SELECT record_id, code, name, value, units, reference_range, abnormal_flags, observed_at, value_code FROM labs \
                WHERE facility_id = $1 AND patient_id = $2 ORDER BY record_id, item_no",
    )
    .fetch_all(pool)
    .await
    .map_err(ViewerError::db("reading labs"))?
    {
        if let Some(&i) = at.get(&get::<i64>(&r, 0)?) {
            entries[i].labs.push(Lab {
                code: get(&r, 1)?,
                name: get(&r, 2)?,
                value: get(&r, 3)?,
                units: get(&r, 4)?,
                reference_range: get(&r, 5)?,
                abnormal_flags: get(&r, 6)?,
                observed_at: get(&r, 7)?,
                value_code: opt(&r, 8)?,
            });
        }
    }
    for r in q(
        "SELECT record_id, code, name, icd10, onset_date, status, status_text, resolved_date FROM diagnoses \
                WHERE facility_id = $1 AND patient_id = $2 ORDER BY record_id, item_no",
    )
    .fetch_all(pool)
    .await
    .map_err(ViewerError::db("reading diagnoses"))?
    {
        if let Some(&i) = at.get(&get::<i64>(&r, 0)?) {
            entries[i].diagnoses.push(Diagnosis {
                code: get(&r, 1)?,
                name: get(&r, 2)?,
                icd10: get(&r, 3)?,
                onset_date: get(&r, 4)?,
                status: get(&r, 5)?,
                status_text: opt(&r, 6)?,
                resolved_date: opt(&r, 7)?,
            });
        }
    }
    for r in q("SELECT record_id, event, trigger_event, event_time, patient_class, ward FROM encounters \
                WHERE facility_id = $1 AND patient_id = $2 ORDER BY record_id")
    .fetch_all(pool)
    .await
    .map_err(ViewerError::db("reading encounters"))?
    {
        if let Some(&i) = at.get(&get::<i64>(&r, 0)?) {
            entries[i].encounters.push(Encounter {
                event: get(&r, 1)?,
                trigger_event: get(&r, 2)?,
                event_time: get(&r, 3)?,
                patient_class: get(&r, 4)?,
                ward: get(&r, 5)?,
            });
        }
    }
    Ok(entries)
}

/// Where a record's original file is: (facility, patient, folder relative to the facility root,
/// file name), if `record_id` is a current record. Deleted (`0`) and superseded (`2`) ones are
/// not shown in the time series and are answered as absent here too.
pub async fn file_of(
    pool: &sqlx::AnyPool,
    record_id: i64,
) -> Result<Option<(String, String, String, String)>, ViewerError> {
    let row = sqlx::query(
        "SELECT facility_id, patient_id, out_rel_directory, file_name FROM records \
         WHERE id = $1 AND condition_flag = '1'",
    )
    .bind(record_id)
    .fetch_optional(pool)
    .await
    .map_err(ViewerError::db("reading a record"))?;
    row.map(|r| Ok((get(&r, 0)?, get(&r, 1)?, get(&r, 2)?, get(&r, 3)?))).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(id: i64, date: &str, ts: &str, f: &str, kind: &str) -> Entry {
        Entry {
            record_id: id,
            facility: f.into(),
            patient_id: "P".into(),
            date: date.into(),
            data_kind: kind.into(),
            message_type: String::new(),
            transaction_datetime: ts.into(),
            department: String::new(),
            order_no: String::new(),
            drugs: vec![],
            labs: vec![],
            diagnoses: vec![],
            encounters: vec![],
        }
    }

    #[test]
    fn entries_are_newest_first_grouped_by_date_and_filtered() {
        let mut v = vec![
            e(1, "20240401", "20240401090000000", "A", "OMP-01"),
            e(2, "20240403", "20240403100000000", "B", "OML-11"),
            e(3, "20240401", "20240401120000000", "B", "OMP-01"),
        ];
        sort_newest_first(&mut v);
        assert_eq!(v.iter().map(|x| x.record_id).collect::<Vec<_>>(), vec![2, 3, 1]);
        let g = group_by_date(&v);
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].0, "20240403");
        assert_eq!(g[1].1.iter().map(|x| x.record_id).collect::<Vec<_>>(), vec![3, 1]);
        let f = Filter { kinds: ["OMP-01".to_string()].into(), facilities: ["B".to_string()].into() };
        let kept: Vec<_> = v.iter().filter(|x| f.keeps(x)).map(|x| x.record_id).collect();
        assert_eq!(kept, vec![3]);
    }
}
