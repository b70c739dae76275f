//! Applies the condition-flag semantics (`ssmix2::condition::plan`) to each data key's versions, in
//! the order they were sent, to get the names the files end up with.

use ssmix2::condition::{Step, Transition, plan};
use ssmix2::{CareDate, ConditionFlag, Department, FileName, OrderNo, PatientId, Timestamp};

use crate::SynthError;
use crate::calendar::ymd;
use crate::event::{Action, Event};

fn name_err(name: &str) -> impl FnOnce(ssmix2::NameError) -> SynthError + '_ {
    move |source| SynthError::Name { name: name.to_owned(), source }
}

/// The file name a version is sent under (flag 1 for new and update, 0 for delete).
pub fn sent_name(patient: &PatientId, e: &Event, v: usize) -> Result<FileName, SynthError> {
    let ver = &e.versions[v];
    let date = e.care_date.map(ymd);
    let order = e.order_no.as_deref().unwrap_or(OrderNo::NONE);
    let stamp = ver.sent.stamp17();
    Ok(FileName {
        patient: patient.clone(),
        care_date: match &date {
            Some(d) => CareDate::parse(d).map_err(name_err(d))?,
            None => CareDate::None,
        },
        data_type: e.data_type,
        order_no: OrderNo::new(order).map_err(name_err(order))?,
        timestamp: Timestamp::parse(&stamp).map_err(name_err(&stamp))?,
        department: match e.dept {
            Some(d) => Department::parse(d).map_err(name_err(d))?,
            None => Department::none(),
        },
        flag: if ver.action == Action::Delete { ConditionFlag::Deleted } else { ConditionFlag::Current },
    })
}

/// Makes send times strictly increasing within each event (two versions in the same millisecond
/// would be one version to the flag semantics).
pub fn separate_versions(e: &mut Event) {
    for i in 1..e.versions.len() {
        if e.versions[i].sent <= e.versions[i - 1].sent {
            e.versions[i].sent = e.versions[i - 1].sent.plus_ms(1);
        }
    }
}

/// The final name of every version of `e`: `(version index, name)`.
pub fn final_names(patient: &PatientId, e: &Event) -> Result<Vec<(usize, FileName)>, SynthError> {
    let mut stored: Vec<(usize, FileName)> = Vec::with_capacity(e.versions.len());
    for v in 0..e.versions.len() {
        let incoming = sent_name(patient, e, v)?;
        let existing: Vec<FileName> = stored.iter().map(|(_, n)| n.clone()).collect();
        match plan(&existing, &incoming) {
            Transition::Apply(steps) => {
                for step in steps {
                    match step {
                        Step::Rename { from, to } => {
                            if let Some(slot) = stored.iter_mut().find(|(_, n)| *n == from) {
                                slot.1 = to;
                            }
                        }
                        Step::Write { name } => stored.push((v, name)),
                    }
                }
            }
            Transition::AlreadyStored(name) => {
                return Err(SynthError::Config(format!("generator bug: version {v} of {name} sent twice")));
            }
        }
    }
    Ok(stored)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::Moment;
    use crate::event::{Body, Encounter, Version};
    use jiff::civil::Date;
    use ssmix2::DataType;

    #[test]
    fn update_then_delete_leaves_every_version_deleted() {
        let d = Date::constant(2024, 5, 1);
        let at = Moment::at(d, 10, 0, 0, 0);
        let mut e = Event {
            data_type: DataType::Omp01,
            care_date: Some(d),
            order_no: Some("202405010000001".into()),
            dept: Some("01"),
            encounter: Encounter { inpatient: false, dept: "01", doctor: 0, bed: None },
            versions: vec![
                Version { sent: at, action: Action::New },
                Version { sent: at, action: Action::Update },
                Version { sent: at.plus_ms(5), action: Action::Delete },
            ],
            body: Body::Visit { at },
        };
        separate_versions(&mut e);
        let pid = PatientId::new("0001234").unwrap();
        let names = final_names(&pid, &e).unwrap();
        assert_eq!(names.len(), 3);
        assert!(names.iter().all(|(_, n)| n.flag == ConditionFlag::Deleted));
        e.versions.pop();
        let names = final_names(&pid, &e).unwrap();
        assert_eq!(
            names.iter().map(|(_, n)| n.flag).collect::<Vec<_>>(),
            [ConditionFlag::Superseded, ConditionFlag::Current]
        );
    }
}
