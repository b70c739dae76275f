//! Disclosure control (issue 8 section 3), the pure part: a patient's consent policy and the rule
//! deciding which facility's records a user of another facility may see. The database side (the
//! consent record, its history, break-glass grants) is in [`crate::registry::consent`].

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::IndexError;

/// What a patient agreed to share with other facilities of the network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "policy", content = "facilities", rename_all = "snake_case")]
pub enum ConsentPolicy {
    /// Every facility of the network may see the patient's records.
    All,
    /// Only these facilities (besides the one holding a record) may see.
    Listed(BTreeSet<FacilityCode>),
    /// The patient opted out: no facility sees another facility's records.
    OptOut,
}

impl ConsentPolicy {
    /// The stored name: `all`, `listed` or `opt_out`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Listed(_) => "listed",
            Self::OptOut => "opt_out",
        }
    }

    /// Rebuilds a policy from its stored name and facility list.
    pub fn from_parts(name: &str, facilities: &[String]) -> Result<Self, IndexError> {
        match name {
            "all" => Ok(Self::All),
            "opt_out" => Ok(Self::OptOut),
            "listed" => {
                Ok(Self::Listed(facilities.iter().map(|f| FacilityCode::parse(f)).collect::<Result<_, _>>()?))
            }
            other => Err(IndexError::Invalid {
                what: "consent policy",
                value: other.to_owned(),
                reason: "must be all, listed or opt_out",
            }),
        }
    }

    /// The listed facilities (empty unless `Listed`).
    pub fn facilities(&self) -> Vec<String> {
        match self {
            Self::Listed(s) => s.iter().map(|f| f.0.clone()).collect(),
            _ => Vec::new(),
        }
    }
}

impl fmt::Display for ConsentPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Listed(s) => {
                let list: Vec<&str> = s.iter().map(|c| c.0.as_str()).collect();
                write!(f, "listed: {}", list.join(", "))
            }
            other => f.write_str(other.name()),
        }
    }
}

/// The stricter of two consents, for records joined under one common ID: the policy that discloses
/// to no facility that either of them does not (as [`decide`] reads them). No consent on record
/// (`None`) discloses to none, like `OptOut`, so it wins over any policy; `All` yields to the other;
/// two facility lists give their intersection, and an empty one is `OptOut` (the same under
/// [`decide`], without a `listed` policy that lists nobody).
pub fn stricter(a: Option<&ConsentPolicy>, b: Option<&ConsentPolicy>) -> Option<ConsentPolicy> {
    use ConsentPolicy::{All, Listed, OptOut};
    match (a?, b?) {
        (OptOut, _) | (_, OptOut) => Some(OptOut),
        (All, p) | (p, All) => Some(p.clone()),
        (Listed(s), Listed(t)) => {
            let both: BTreeSet<FacilityCode> = s.intersection(t).cloned().collect();
            Some(if both.is_empty() { OptOut } else { Listed(both) })
        }
    }
}

/// A facility code as SS-MIX2 uses it (医療機関コード: ASCII letters and digits, 1–16 long).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct FacilityCode(String);

impl FacilityCode {
    /// Parses a facility code.
    pub fn parse(s: &str) -> Result<Self, IndexError> {
        if s.is_empty() || s.len() > 16 || !s.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(IndexError::Invalid {
                what: "facility code",
                value: s.to_owned(),
                reason: "must be 1 to 16 ASCII letters or digits",
            });
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for FacilityCode {
    type Error = IndexError;
    fn try_from(s: String) -> Result<Self, IndexError> {
        Self::parse(&s)
    }
}

impl From<FacilityCode> for String {
    fn from(f: FacilityCode) -> String {
        f.0
    }
}

impl fmt::Display for FacilityCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a user may see a facility's records of a patient (or that they may not).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// The record is the user's own facility's.
    OwnFacility,
    /// The patient's consent covers the user's facility.
    Consent,
    /// Emergency access, flagged for audit.
    BreakGlass,
    /// Not disclosed.
    Denied,
}

impl Access {
    pub fn allowed(self) -> bool {
        self != Self::Denied
    }
}

/// Decides whether a user of `viewer` may see records that `holder` recorded about a patient with
/// `consent` (`None`: no consent on record, so nothing beyond the holding facility).
/// `break_glass` is an active emergency grant for this user and patient.
pub fn decide(consent: Option<&ConsentPolicy>, viewer: &str, holder: &str, break_glass: bool) -> Access {
    if viewer == holder {
        return Access::OwnFacility;
    }
    let consented = match consent {
        Some(ConsentPolicy::All) => true,
        Some(ConsentPolicy::Listed(s)) => s.iter().any(|f| f.as_str() == viewer),
        Some(ConsentPolicy::OptOut) | None => false,
    };
    if consented {
        Access::Consent
    } else if break_glass {
        Access::BreakGlass
    } else {
        Access::Denied
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(fs: &[&str]) -> ConsentPolicy {
        ConsentPolicy::Listed(fs.iter().map(|f| FacilityCode::parse(f).unwrap()).collect())
    }

    #[test]
    fn a_facility_always_sees_its_own_records_and_others_only_by_consent() {
        let l = listed(&["0411000017"]);
        assert_eq!(decide(None, "A", "A", false), Access::OwnFacility);
        assert_eq!(decide(Some(&ConsentPolicy::OptOut), "A", "A", false), Access::OwnFacility);
        assert_eq!(decide(None, "A", "B", false), Access::Denied);
        assert_eq!(decide(Some(&ConsentPolicy::All), "A", "B", false), Access::Consent);
        assert_eq!(decide(Some(&ConsentPolicy::OptOut), "A", "B", false), Access::Denied);
        assert_eq!(decide(Some(&l), "0411000017", "B", false), Access::Consent);
        assert_eq!(decide(Some(&l), "0411000099", "B", false), Access::Denied);
    }

    #[test]
    fn break_glass_opens_what_consent_does_not_and_is_told_apart() {
        assert_eq!(decide(Some(&ConsentPolicy::OptOut), "A", "B", true), Access::BreakGlass);
        assert_eq!(decide(None, "A", "B", true), Access::BreakGlass);
        assert_eq!(decide(Some(&ConsentPolicy::All), "A", "B", true), Access::Consent);
        assert!(!Access::Denied.allowed());
    }

    #[test]
    fn the_stricter_of_two_consents_discloses_to_no_facility_either_refuses() {
        use ConsentPolicy::{All, OptOut};
        let policies = [
            None,
            Some(All),
            Some(OptOut),
            Some(listed(&["A", "B"])),
            Some(listed(&["B", "C"])),
            Some(listed(&["C"])),
        ];
        for a in &policies {
            for b in &policies {
                let s = stricter(a.as_ref(), b.as_ref());
                assert_eq!(s, stricter(b.as_ref(), a.as_ref()), "{a:?} {b:?}");
                for viewer in ["A", "B", "C", "D"] {
                    let shown = |p: Option<&ConsentPolicy>| decide(p, viewer, "H", false).allowed();
                    assert_eq!(
                        shown(s.as_ref()),
                        shown(a.as_ref()) && shown(b.as_ref()),
                        "{a:?} {b:?} {viewer}"
                    );
                }
            }
        }
        assert_eq!(stricter(Some(&All), Some(&OptOut)), Some(OptOut));
        assert_eq!(stricter(None, Some(&All)), None);
        assert_eq!(stricter(Some(&listed(&["A", "B"])), Some(&listed(&["B", "C"]))), Some(listed(&["B"])));
        assert_eq!(stricter(Some(&listed(&["A"])), Some(&listed(&["C"]))), Some(OptOut));
    }

    #[test]
    fn policies_round_trip_through_their_stored_form_and_bad_codes_are_refused() {
        let l = listed(&["0411000017", "0411000025"]);
        assert_eq!(ConsentPolicy::from_parts(l.name(), &l.facilities()).unwrap(), l);
        assert!(ConsentPolicy::from_parts("maybe", &[]).is_err());
        assert!(FacilityCode::parse("04-11").is_err());
        assert!(FacilityCode::parse("").is_err());
    }
}
