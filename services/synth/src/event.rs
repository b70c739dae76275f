//! What happened to a patient at a facility: one [`Event`] per SS-MIX2 data key, with the versions
//! the facility's system sent for it (new, updates, a delete).

use jiff::civil::Date;
use ssmix2::DataType;

use crate::calendar::Moment;

/// What a version of a message does to its data key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    New,
    Update,
    Delete,
}

#[derive(Debug, Clone)]
pub struct Version {
    /// When the system sent it: the file-name timestamp and MSH-7.
    pub sent: Moment,
    pub action: Action,
}

/// Where and by whom the patient was seen (PV1, ORC).
#[derive(Debug, Clone)]
pub struct Encounter {
    pub inpatient: bool,
    pub dept: &'static str,
    /// Index into the facility's doctors.
    pub doctor: usize,
    /// Ward, room and bed for inpatients.
    pub bed: Option<(&'static str, u16, u8)>,
}

/// One prescribed drug (an Rp).
#[derive(Debug, Clone, PartialEq)]
pub struct RxItem {
    pub drug: usize,
    pub per_dose: u32,
    pub days: u32,
}

/// One diagnosis on the problem list.
#[derive(Debug, Clone)]
pub struct Problem {
    pub condition: usize,
    pub since: Date,
    pub dept: &'static str,
    pub main: bool,
    pub resolved: bool,
}

/// The content of a data key, one variant per kind of message.
#[derive(Debug, Clone)]
pub enum Body {
    /// ADT-00: height and weight (cm, kg ×10), blood type, insurance.
    PatientInfo { height_mm: u32, weight_hg: u32, blood: &'static str },
    /// ADT-61.
    Allergy { allergens: Vec<usize>, recorded: Date },
    /// PPR-01: the whole problem list as of each version.
    Problems { lists: Vec<Vec<Problem>> },
    /// ADT-12.
    Visit { at: Moment },
    /// ADT-22 (A01; the delete is A11).
    Admit { at: Moment },
    /// ADT-21 (A14; delete A27).
    PlannedAdmit { expected: Moment },
    /// ADT-42 (A02).
    Transfer { at: Moment, from: (&'static str, u16, u8) },
    /// ADT-41 (A15).
    PlannedTransfer { expected: Moment },
    /// ADT-31 (A21).
    Leave { at: Moment },
    /// ADT-32 (A22).
    Return { at: Moment },
    /// ADT-51 (A16).
    PlannedDischarge { expected: Moment },
    /// ADT-52 (A03).
    Discharge { admitted: Moment, at: Moment },
    /// ADT-01 (A54): the new attending doctor is the encounter's.
    DoctorChange { at: Moment },
    /// OMP-01: the Rps as of each version.
    Prescription { at: Moment, items: Vec<Vec<RxItem>> },
    /// OMP-11: oral doses given on the care date.
    RxAdministration { drugs: Vec<usize>, times: Vec<Moment> },
    /// OMP-02: a drip of injections (indexes into INJECTIONS) per bag, bags over the day.
    Injection { at: Moment, mix: Vec<usize>, bags: Vec<(Moment, Moment)> },
    /// OMP-12: the bags given.
    InjectionAdministration { mix: Vec<usize>, bags: Vec<(Moment, Moment)> },
    /// OML-01: tests ordered, by specimen group.
    LabOrder { at: Moment, collected: Moment, tests: Vec<usize> },
    /// OML-11: values as of each version (a correction is a second version).
    LabResult { collected: Moment, reported: Moment, values: Vec<Vec<(usize, f64)>> },
    /// OMG-01/02/03: an order for a procedure.
    ExamOrder { at: Moment, procedure: usize, weight_kg: u32 },
    /// OMG-11/12: the procedure performed, with images.
    ExamPerformed { at: Moment, procedure: usize, accession: String },
    /// OMG-13: ECG measurements.
    EcgResult { at: Moment, heart_rate: u32, pq: u32, qrs: u32, qt: u32, axis: i32, finding: &'static str },
    /// OMD.
    Meal { at: Moment, meal: usize },
}

/// One data key and its versions.
#[derive(Debug, Clone)]
pub struct Event {
    pub data_type: DataType,
    /// `None` for data with no care date (ADT-00, ADT-61, PPR-01).
    pub care_date: Option<Date>,
    /// `None` for data with no order (`999999999999999`).
    pub order_no: Option<String>,
    /// Department in the file name; `None` writes `-`.
    pub dept: Option<&'static str>,
    pub encounter: Encounter,
    pub versions: Vec<Version>,
    pub body: Body,
}
