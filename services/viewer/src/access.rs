//! Who is looking and what they may see: the logged-in user (from the ID token's claims) and, for
//! one patient, which facilities' records are disclosed to the user's facility under the patient's
//! consent or an active break-glass grant.

use serde::{Deserialize, Serialize};

use kizuna_index::registry::{BreakGlass, ConsentRecord};
use kizuna_index::{Access, CommonId, RecordKey, Registry};

use crate::ViewerError;

/// A user's role, as the provider asserts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Physician,
    Nurse,
    Pharmacist,
    Admin,
    Auditor,
}

impl Role {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "physician" => Self::Physician,
            "nurse" => Self::Nurse,
            "pharmacist" => Self::Pharmacist,
            "admin" => Self::Admin,
            "auditor" => Self::Auditor,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Physician => "physician",
            Self::Nurse => "nurse",
            Self::Pharmacist => "pharmacist",
            Self::Admin => "admin",
            Self::Auditor => "auditor",
        }
    }

    /// Clinical staff see patients; admins and auditors use their own tools.
    pub fn may_view_patients(self) -> bool {
        matches!(self, Self::Physician | Self::Nurse | Self::Pharmacist)
    }

    /// Emergency access is for those who treat.
    pub fn may_break_glass(self) -> bool {
        matches!(self, Self::Physician | Self::Nurse)
    }
}

/// A logged-in user. `subject` is the provider's pairwise ID for the viewer: the viewer never
/// learns the user's real ID.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub subject: String,
    pub name: String,
    pub facility: String,
    pub role: Role,
}

/// One patient as the user may see them.
#[derive(Debug, Clone, PartialEq)]
pub struct PatientAccess {
    pub common_id: CommonId,
    /// The (facility, local ID) pairs whose records are shown, and why.
    pub shown: Vec<(RecordKey, Access)>,
    /// Whether records exist that the user may not see (offer break glass).
    pub withheld: bool,
    pub consent: Option<ConsentRecord>,
    pub break_glass: Option<BreakGlass>,
}

impl PatientAccess {
    /// The shown keys as (facility, local ID) pairs.
    pub fn keys(&self) -> Vec<(String, String)> {
        self.shown.iter().map(|(k, _)| (k.facility.clone(), k.local_id.clone())).collect()
    }

    /// True when any shown facility is visible only through break glass.
    pub fn uses_break_glass(&self) -> bool {
        self.shown.iter().any(|(_, a)| *a == Access::BreakGlass)
    }
}

/// What `user` may see of patient `common_id`. An unknown common ID is an error.
pub async fn patient_access(
    reg: &Registry,
    user: &User,
    common_id: &CommonId,
) -> Result<PatientAccess, ViewerError> {
    let keys = reg.resolve(common_id).await?;
    let d = reg.disclosure(common_id, &user.facility, &user.subject).await?;
    let mut shown = Vec::new();
    let mut withheld = false;
    for k in keys {
        let a = d.access(&k.facility);
        if a.allowed() {
            shown.push((k, a));
        } else {
            withheld = true;
        }
    }
    Ok(PatientAccess {
        common_id: common_id.clone(),
        shown,
        withheld,
        consent: d.consent,
        break_glass: d.break_glass,
    })
}
