use std::fmt;

use super::{CareDate, ConditionFlag, DataType, Department, OrderNo, PatientId, Timestamp};
use crate::NameError;

/// A standardized-storage file name:
/// `<PID>_<date|->_<DATATYPE>_<ORDERNO>_<TIMESTAMP>_<DEPT|->_<FLAG>`, with no extension.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileName {
    pub patient: PatientId,
    pub care_date: CareDate,
    pub data_type: DataType,
    pub order_no: OrderNo,
    pub timestamp: Timestamp,
    pub department: Department,
    pub flag: ConditionFlag,
}

/// The identity of a piece of data across its versions: the condition-flag semantics act on all
/// files sharing one key (patient, care date, data type, order number).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DataKey {
    pub patient: PatientId,
    pub care_date: CareDate,
    pub data_type: DataType,
    pub order_no: OrderNo,
}

impl FileName {
    /// Parses a file name, refusing anything that is not exactly seven well-formed parts.
    pub fn parse(s: &str) -> Result<Self, NameError> {
        let parts: Vec<&str> = s.split('_').collect();
        if parts.len() != 7 {
            return Err(NameError::PartCount { value: s.escape_default().to_string(), found: parts.len() });
        }
        Ok(Self {
            patient: PatientId::new(parts[0])?,
            care_date: CareDate::parse(parts[1])?,
            data_type: DataType::parse(parts[2])?,
            order_no: OrderNo::new(parts[3])?,
            timestamp: Timestamp::parse(parts[4])?,
            department: Department::parse(parts[5])?,
            flag: ConditionFlag::parse(parts[6])?,
        })
    }

    pub fn key(&self) -> DataKey {
        DataKey {
            patient: self.patient.clone(),
            care_date: self.care_date,
            data_type: self.data_type,
            order_no: self.order_no.clone(),
        }
    }

    /// The same name with another condition flag.
    pub fn with_flag(&self, flag: ConditionFlag) -> Self {
        Self { flag, ..self.clone() }
    }
}

impl fmt::Display for FileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}_{}_{}_{}_{}_{}_{}",
            self.patient,
            self.care_date,
            self.data_type,
            self.order_no,
            self.timestamp,
            self.department,
            self.flag
        )
    }
}

impl std::str::FromStr for FileName {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}
