//! The clinical content the generator draws from: conditions with their diagnoses, drugs, tests and
//! departments; drugs with YJ and HOT codes; lab tests with JLAC10 codes, units and reference ranges;
//! imaging, endoscopy and physiology procedures; meals and allergens.
//!
//! Code *formats* are real (YJ 12 characters, HOT9 9 digits, JLAC10 17 characters, ICD-10, MEDIS
//! disease numbers, JJ1017, JAMI usage codes). Codes copied from the guideline's samples are real;
//! the others are plausible but were not checked against the masters — never use this as a master.

mod conditions;
mod drugs;
pub mod labs;
mod procedures;

pub use conditions::{CONDITIONS, Condition};
pub use drugs::{DRUGS, Drug, INJECTIONS, Injection, Usage};
pub use labs::{LAB_TESTS, LabGroup, LabTest};
pub use procedures::{ALLERGENS, Allergen, DEPARTMENTS, MEALS, Meal, PROCEDURES, Procedure, ProcedureKind};
