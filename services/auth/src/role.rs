//! The roles a user holds at their facility.

use crate::error::{AuthError, Result};
use std::fmt;

/// A clinical or operational role. The viewer and the audit service decide what each may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Physician,
    Nurse,
    Pharmacist,
    Admin,
    Auditor,
}

impl Role {
    pub const ALL: [Role; 5] = [Role::Physician, Role::Nurse, Role::Pharmacist, Role::Admin, Role::Auditor];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Physician => "physician",
            Role::Nurse => "nurse",
            Role::Pharmacist => "pharmacist",
            Role::Admin => "admin",
            Role::Auditor => "auditor",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        Role::ALL.into_iter().find(|r| r.as_str() == s.trim()).ok_or_else(|| {
            AuthError::invalid(
                "role",
                format!("{s:?} is not one of physician, nurse, pharmacist, admin, auditor"),
            )
        })
    }

    /// Parse a comma-separated list (as stored and as given on the command line); at least one role.
    pub fn parse_list(s: &str) -> Result<Vec<Role>> {
        let mut v =
            s.split(',').filter(|p| !p.trim().is_empty()).map(Role::parse).collect::<Result<Vec<_>>>()?;
        v.sort();
        v.dedup();
        if v.is_empty() {
            return Err(AuthError::invalid("roles", "at least one role is required"));
        }
        Ok(v)
    }

    pub fn join(roles: &[Role]) -> String {
        roles.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(",")
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_lists_parse_sorted_and_unknown_roles_are_named() {
        assert_eq!(Role::parse_list("nurse, physician,nurse").unwrap(), vec![Role::Physician, Role::Nurse]);
        let e = Role::parse_list("physician,surgeon").unwrap_err().to_string();
        assert!(e.contains("surgeon"), "{e}");
        assert!(Role::parse_list(" ").is_err());
    }
}
