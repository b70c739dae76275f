//! The National Hospital Organization's validator tables (`HL7_SEGMENT.json`, `HL7_DATATYPE.json`,
//! `HL7_SEGMENTORDER.json`, `SSMIX_CAREDATE.json`), loaded at run time from a directory and compiled
//! once into lookups the per-file checks use without allocating.
//!
//! The tables are Apache-2.0 files of another project; they are never copied into this repository.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use regex::Regex;
use serde::Deserialize;
use thiserror::Error;

use super::scan;
use crate::DataType;

/// The four table files, by the names the NHO validator gives them.
pub const SEGMENT_FILE: &str = "HL7_SEGMENT.json";
pub const DATATYPE_FILE: &str = "HL7_DATATYPE.json";
pub const SEGMENT_ORDER_FILE: &str = "HL7_SEGMENTORDER.json";
pub const CARE_DATE_FILE: &str = "SSMIX_CAREDATE.json";

/// Environment variable naming the table directory; it wins over every other place.
pub const TABLES_ENV: &str = "KIZUNA_NHO_TABLES";

/// Where the tables live relative to the repository root (the `shared/` folder sits beside it).
pub const TABLES_RELATIVE: &str = "../shared/external/nhoHQ-SSMIX2DataTestingTool/include";

/// Where Kizuna's images (images/build) install the tables: the last place looked in.
pub const TABLES_INSTALLED: &str = "/usr/share/kizuna/nho-tables";

/// Why the tables could not be loaded. Every variant names the file at fault.
#[derive(Debug, Error)]
pub enum TableError {
    #[error("cannot read NHO table {file}: {source}")]
    Read { file: PathBuf, source: std::io::Error },
    #[error("NHO table {file} is not the expected JSON: {source}")]
    Json { file: PathBuf, source: serde_json::Error },
    #[error("NHO table {file}: {what}")]
    Shape { file: PathBuf, what: String },
    #[error("NHO table {file}: segment order of {message_type} is not a valid regex: {source}")]
    Regex { file: PathBuf, message_type: String, source: Box<regex::Error> },
    #[error(
        "NHO validator tables not found; set {TABLES_ENV} to the folder holding {SEGMENT_FILE} (looked in: {})",
        tried.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    NotFound { tried: Vec<PathBuf> },
}

/// A place inside a field that must hold a number (NM), as the tables define it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NumericSpot {
    /// The whole field (each repetition) is NM.
    Field,
    /// Component `c` (from 1) is NM.
    Component(u16),
    /// Subcomponent `s` of component `c` (both from 1) is NM.
    Subcomponent(u16, u16),
    /// OBX-5, whose type is whatever OBX-2 says: checked when OBX-2 is `NM`.
    ObservationValue,
}

/// What the tables say about one segment.
#[derive(Debug, Default)]
pub(crate) struct SegmentRules {
    /// Required field numbers, indexed by [`data_type_index`]; the last entry is for a data type the
    /// table does not name (its `*` rule).
    pub required: Vec<Vec<u16>>,
    /// Fields or parts of fields that must be numeric, grouped by field number in ascending order.
    pub numeric: Vec<(u16, Vec<NumericSpot>)>,
    /// The English field names, `names[n]` for field `n`, for messages.
    pub names: Vec<String>,
}

/// Per message type (`code^trigger`): the care-date field and the segment-order regex.
#[derive(Debug)]
pub(crate) struct MessageRules {
    pub key: String,
    /// `None` when the message type has no care date (empty entry in `SSMIX_CAREDATE.json`);
    /// the whole entry is absent from the map when the message type is not in that table.
    pub care_date: Option<Option<(String, u16)>>,
    /// The segment order, compiled anchored at both ends.
    pub order: Option<Regex>,
}

/// The compiled tables.
#[derive(Debug)]
pub struct Tables {
    /// Sorted by [`scan::id_key`] for a lookup without hashing.
    segments: Vec<(u64, String, SegmentRules)>,
    pub(crate) messages: Vec<MessageRules>,
    /// Where they were loaded from, for messages.
    pub dir: PathBuf,
}

/// The index of a data type in the per-segment `required` lists; `None` maps to the `*` slot.
pub(crate) fn data_type_index(dt: Option<DataType>) -> usize {
    match dt {
        Some(dt) => DataType::ALL.iter().position(|d| *d == dt).expect("every data type is in ALL"),
        None => DataType::ALL.len(),
    }
}

#[derive(Deserialize)]
struct FieldDef {
    name: String,
    #[serde(rename = "type")]
    ty: String,
    #[serde(rename = "ssmix2-required")]
    required: HashMap<String, String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum TypeDef {
    Basic(String),
    Composite(Vec<ComponentDef>),
}

#[derive(Deserialize)]
struct ComponentDef {
    #[serde(rename = "type")]
    ty: String,
}

/// Corrections to defects in `HL7_SEGMENTORDER.json`, applied at load time when the defective text
/// is present. The NHO validator never met these defects because it matches only a prefix of the
/// segment sequence; anchored at both ends, they would reject the guideline's own samples.
const ORDER_CORRECTIONS: &[(&str, &str, &str)] = &[
    // HL7 v2.5 OUL^R22 has `OBX [TCD] [{SID}] [{NTE}]`; the table makes that NTE mandatory.
    ("OUL^R22", "((OBX)(TCD)?(SID)*(NTE))*", "((OBX)(TCD)?(SID)*(NTE)*)*"),
];

fn read_json<T: serde::de::DeserializeOwned>(dir: &Path, name: &str) -> Result<T, TableError> {
    let file = dir.join(name);
    let bytes = std::fs::read(&file).map_err(|source| TableError::Read { file: file.clone(), source })?;
    serde_json::from_slice(&bytes).map_err(|source| TableError::Json { file, source })
}

impl Tables {
    /// Loads and compiles the four tables from `dir`.
    pub fn load(dir: &Path) -> Result<Self, TableError> {
        let mut seg_defs: HashMap<String, Vec<FieldDef>> = read_json(dir, SEGMENT_FILE)?;
        let types: HashMap<String, TypeDef> = read_json(dir, DATATYPE_FILE)?;
        let orders: HashMap<String, String> = read_json(dir, SEGMENT_ORDER_FILE)?;
        let care: HashMap<String, String> = read_json(dir, CARE_DATE_FILE)?;

        // The NHO validator reads ZI1 (insurance, in PPR^ZD1) with the IN1 definition.
        if let Some(in1) = seg_defs.get("IN1") {
            let copy: Vec<FieldDef> = in1
                .iter()
                .map(|f| FieldDef { name: f.name.clone(), ty: f.ty.clone(), required: f.required.clone() })
                .collect();
            seg_defs.entry("ZI1".to_owned()).or_insert(copy);
        }

        let seg_file = dir.join(SEGMENT_FILE);
        let shape = |what: String| TableError::Shape { file: seg_file.clone(), what };
        let mut segments = Vec::new();
        for (id, fields) in &seg_defs {
            let mut rules = SegmentRules {
                required: vec![Vec::new(); DataType::ALL.len() + 1],
                numeric: Vec::new(),
                names: fields.iter().map(|f| f.name.trim().to_owned()).collect(),
            };
            // fields[0] describes the segment ID itself; fields[n] is field n.
            for (n, def) in fields.iter().enumerate().skip(1) {
                let n16 = u16::try_from(n).map_err(|_| shape(format!("{id} has too many fields")))?;
                let default = def
                    .required
                    .get("*")
                    .ok_or_else(|| shape(format!("{id}-{n} has no \"*\" entry in ssmix2-required")))?;
                for (slot, list) in rules.required.iter_mut().enumerate() {
                    let rule =
                        DataType::ALL.get(slot).and_then(|dt| def.required.get(dt.code())).unwrap_or(default);
                    // MSH-1 is the field separator itself: present whenever the segment has fields.
                    if rule == "R" && !(id == "MSH" && n == 1) {
                        list.push(n16);
                    }
                }
                let mut spots = Vec::new();
                numeric_spots(id, n16, &def.ty, &types, &mut spots).map_err(shape)?;
                if !spots.is_empty() {
                    rules.numeric.push((n16, spots));
                }
            }
            segments.push((scan::id_key(id), id.clone(), rules));
        }
        segments.sort_by_key(|(k, _, _)| *k);

        let order_file = dir.join(SEGMENT_ORDER_FILE);
        let care_file = dir.join(CARE_DATE_FILE);
        let mut keys: Vec<&String> = orders.keys().chain(care.keys()).collect();
        keys.sort();
        keys.dedup();
        let mut messages = Vec::with_capacity(keys.len());
        for key in keys {
            let order = match orders.get(key) {
                None => None,
                Some(pattern) => {
                    let mut pattern = pattern.clone();
                    for (mt, from, to) in ORDER_CORRECTIONS {
                        if mt == key {
                            pattern = pattern.replace(from, to);
                        }
                    }
                    let anchored = format!("^(?:{pattern})$");
                    let re = Regex::new(&anchored).map_err(|source| TableError::Regex {
                        file: order_file.clone(),
                        message_type: key.clone(),
                        source: Box::new(source),
                    })?;
                    Some(re)
                }
            };
            let care_date = match care.get(key) {
                None => None,
                Some(spec) if spec.is_empty() => Some(None),
                Some(spec) => {
                    let bad = || TableError::Shape {
                        file: care_file.clone(),
                        what: format!("{key}: care-date field {spec:?} is not like ORC-9"),
                    };
                    let (seg, field) = spec.split_once('-').ok_or_else(bad)?;
                    let field: u16 = field.parse().map_err(|_| bad())?;
                    if seg.len() != 3 || field == 0 {
                        return Err(bad());
                    }
                    Some(Some((seg.to_owned(), field)))
                }
            };
            messages.push(MessageRules { key: key.clone(), care_date, order });
        }
        Ok(Self { segments, messages, dir: dir.to_owned() })
    }

    /// The rules for a segment ID.
    pub(crate) fn segment(&self, id: &str) -> Option<&SegmentRules> {
        let key = scan::id_key(id);
        let i = self.segments.binary_search_by_key(&key, |(k, _, _)| *k).ok()?;
        let (_, name, rules) = &self.segments[i];
        (name == id).then_some(rules)
    }

    /// The rules for a message type, looked up without allocating.
    pub(crate) fn message(&self, code: &str, trigger: &str) -> Option<&MessageRules> {
        self.messages.iter().find(|m| {
            m.key.len() == code.len() + 1 + trigger.len()
                && m.key.starts_with(code)
                && m.key.as_bytes()[code.len()] == b'^'
                && m.key.ends_with(trigger)
        })
    }
}

/// Records where a field of type `ty` must hold numbers, walking composite types two levels deep
/// (component, subcomponent), as the NHO validator does; deeper levels hold no NM in the tables.
fn numeric_spots(
    seg: &str,
    field: u16,
    ty: &str,
    types: &HashMap<String, TypeDef>,
    out: &mut Vec<NumericSpot>,
) -> Result<(), String> {
    if ty == "*" {
        if seg == "OBX" && field == 5 {
            out.push(NumericSpot::ObservationValue);
        }
        return Ok(());
    }
    let unknown = |t: &str| format!("{seg}-{field}: data type {t:?} is not in {DATATYPE_FILE}");
    match types.get(ty).ok_or_else(|| unknown(ty))? {
        TypeDef::Basic(kind) => {
            if kind == "num" {
                out.push(NumericSpot::Field);
            }
        }
        TypeDef::Composite(comps) => {
            for (ci, comp) in comps.iter().enumerate() {
                let c = ci as u16 + 1;
                match types.get(&comp.ty).ok_or_else(|| unknown(&comp.ty))? {
                    TypeDef::Basic(kind) => {
                        if kind == "num" {
                            out.push(NumericSpot::Component(c));
                        }
                    }
                    TypeDef::Composite(subs) => {
                        for (si, sub) in subs.iter().enumerate() {
                            if let Some(TypeDef::Basic(kind)) = types.get(&sub.ty)
                                && kind == "num"
                            {
                                out.push(NumericSpot::Subcomponent(c, si as u16 + 1));
                            }
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

/// Finds the table directory: `$KIZUNA_NHO_TABLES`, else [`TABLES_RELATIVE`] below the current
/// directory, else below any ancestor of the running executable (so `target/release/kizuna` run
/// from anywhere finds the `shared/` folder beside the checkout), else [`TABLES_INSTALLED`] (an
/// operator's shell on a deployed centre or site).
pub fn find_table_dir() -> Result<PathBuf, TableError> {
    let mut tried = Vec::new();
    if let Some(dir) = std::env::var_os(TABLES_ENV) {
        let dir = PathBuf::from(dir);
        if dir.join(SEGMENT_FILE).is_file() {
            return Ok(dir);
        }
        tried.push(dir);
        // An explicit setting that does not hold the tables is an error, not a reason to guess.
        return Err(TableError::NotFound { tried });
    }
    let mut candidates = Vec::new();
    if let Ok(cwd) = std::env::current_dir() {
        candidates.push(cwd.join(TABLES_RELATIVE));
    }
    if let Ok(exe) = std::env::current_exe() {
        for dir in exe.ancestors().skip(1) {
            candidates.push(dir.join(TABLES_RELATIVE));
        }
    }
    candidates.push(PathBuf::from(TABLES_INSTALLED));
    for dir in candidates {
        if dir.join(SEGMENT_FILE).is_file() {
            return Ok(dir);
        }
        tried.push(dir);
    }
    Err(TableError::NotFound { tried })
}
