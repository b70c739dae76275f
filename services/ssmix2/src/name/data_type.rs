use std::fmt;

use crate::NameError;

macro_rules! data_types {
    ($( $variant:ident = $code:literal, $meaning:literal, [$($msg:literal),+] ;)+) => {
        /// An SS-MIX2 data type (データ種別), from the table of guideline Ver.1.2g.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum DataType { $($variant,)+ }

        impl DataType {
            /// Every data type, in table order.
            pub const ALL: &'static [DataType] = &[$(DataType::$variant,)+];

            /// The code used as folder name and in file names, e.g. `OMP-01`.
            pub fn code(self) -> &'static str {
                match self { $(DataType::$variant => $code,)+ }
            }

            /// What the data type holds, in English.
            pub fn meaning(self) -> &'static str {
                match self { $(DataType::$variant => $meaning,)+ }
            }

            /// The HL7 v2.5 message types (`MSH-9.1^MSH-9.2`) this data type may carry.
            pub fn message_types(self) -> &'static [&'static str] {
                match self { $(DataType::$variant => &[$($msg),+],)+ }
            }

            pub fn parse(s: &str) -> Result<Self, NameError> {
                match s {
                    $($code => Ok(DataType::$variant),)+
                    _ => Err(NameError::UnknownDataType(s.escape_default().to_string())),
                }
            }
        }
    };
}

data_types! {
    Adt00 = "ADT-00", "patient information update / delete", ["ADT^A08", "ADT^A23"];
    Adt01 = "ADT-01", "attending doctor change / cancel", ["ADT^A54", "ADT^A55"];
    Adt12 = "ADT-12", "outpatient visit", ["ADT^A04"];
    Adt21 = "ADT-21", "planned admission / cancel", ["ADT^A14", "ADT^A27"];
    Adt22 = "ADT-22", "admission / cancel", ["ADT^A01", "ADT^A11"];
    Adt31 = "ADT-31", "leave of absence / cancel", ["ADT^A21", "ADT^A52"];
    Adt32 = "ADT-32", "return from leave / cancel", ["ADT^A22", "ADT^A53"];
    Adt41 = "ADT-41", "planned transfer / cancel", ["ADT^A15", "ADT^A26"];
    Adt42 = "ADT-42", "transfer / cancel", ["ADT^A02", "ADT^A12"];
    Adt51 = "ADT-51", "planned discharge / cancel", ["ADT^A16", "ADT^A25"];
    Adt52 = "ADT-52", "discharge / cancel", ["ADT^A03", "ADT^A13"];
    Adt61 = "ADT-61", "allergy", ["ADT^A60"];
    Ppr01 = "PPR-01", "diagnoses", ["PPR^ZD1"];
    Omd = "OMD", "meal order", ["OMD^O03"];
    Omp01 = "OMP-01", "prescription order", ["RDE^O11"];
    Omp11 = "OMP-11", "prescription administration", ["RAS^O17"];
    Omp02 = "OMP-02", "injection order", ["RDE^O11"];
    Omp12 = "OMP-12", "injection administration", ["RAS^O17"];
    Oml01 = "OML-01", "specimen test order", ["OML^O33"];
    Oml11 = "OML-11", "specimen test result", ["OUL^R22"];
    Omg01 = "OMG-01", "radiology order", ["OMG^O19"];
    Omg11 = "OMG-11", "radiology performed", ["OMI^Z23"];
    Omg02 = "OMG-02", "endoscopy order", ["OMG^O19"];
    Omg12 = "OMG-12", "endoscopy performed", ["OMI^Z23"];
    Omg03 = "OMG-03", "physiology test order", ["OMG^O19"];
    Omg13 = "OMG-13", "physiology test result", ["ORU^R01"];
}

impl DataType {
    /// True for the data types stored under the `-` date folder (they have no care date).
    pub fn has_no_care_date(self) -> bool {
        matches!(self, Self::Adt00 | Self::Adt61 | Self::Ppr01)
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl std::str::FromStr for DataType {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// An HL7 message type as found in MSH-9 (`code^trigger`), e.g. `RDE^O11`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MessageType {
    pub code: String,
    pub trigger: String,
}

impl MessageType {
    /// `code^trigger`, the key used by the NHO validator's tables.
    pub fn key(&self) -> String {
        format!("{}^{}", self.code, self.trigger)
    }
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}^{}", self.code, self.trigger)
    }
}
