//! The viewer as an OpenID Connect relying party of `kizuna-auth`, through `kizuna-oidc-rp`
//! (authorization code flow with PKCE, state and nonce; ID token verified against the provider's
//! JWKS). The user's facility and role come from the ID token's claims; the subject is the
//! provider's pairwise ID for the viewer.

use kizuna_oidc_rp::{Registration, VerifiedLogin};

use crate::ViewerError;
use crate::access::{Role, User};
use crate::config::Config;

/// The viewer's registration at the provider, from its config.
pub fn registration(c: &Config) -> Registration {
    Registration {
        issuer: c.oidc.issuer.clone(),
        client_id: c.oidc.client_id.clone(),
        client_secret_file: c.oidc.client_secret_file.clone(),
        redirect_uri: c.redirect_uri(),
        bind_interface: c.bind_interface.clone(),
    }
}

/// The viewer's user from a verified login.
pub fn user_from_login(login: &VerifiedLogin) -> Result<User, ViewerError> {
    user_from_claims(&login.subject, &login.claims)
}

/// The user described by verified ID token claims: `facility`, and `role` (a string) or `roles`
/// (a list, the first clinical role wins); the name from `name`, else `preferred_username`.
pub fn user_from_claims(subject: &str, claims: &serde_json::Value) -> Result<User, ViewerError> {
    let facility = claims["facility"]
        .as_str()
        .filter(|f| !f.is_empty())
        .ok_or_else(|| ViewerError::Login("the ID token has no facility claim".into()))?
        .to_owned();
    // The rule of the patient index, which every disclosure decision and break glass goes through:
    // a user it cannot place is refused here, at login, not in the middle of an emergency.
    if let Err(e) = kizuna_index::FacilityCode::parse(&facility) {
        return Err(ViewerError::Login(format!(
            "your account's facility code is not usable by the viewer ({e}); ask the sign-on administrator to correct it"
        )));
    }
    let mut roles: Vec<Role> = Vec::new();
    if let Some(r) = claims["role"].as_str().and_then(Role::parse) {
        roles.push(r);
    }
    if let Some(list) = claims["roles"].as_array() {
        roles.extend(list.iter().filter_map(|v| v.as_str()).filter_map(Role::parse));
    }
    let role = roles
        .iter()
        .copied()
        .find(|r| r.may_view_patients())
        .or(roles.first().copied())
        .ok_or_else(|| ViewerError::Login("the ID token has no role the viewer knows".into()))?;
    let name =
        claims["name"].as_str().or(claims["preferred_username"].as_str()).unwrap_or(subject).to_owned();
    Ok(User { subject: subject.to_owned(), name, facility, role })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facility_and_a_clinical_role_come_from_the_claims() {
        let c = serde_json::json!({"facility": "0411000017", "roles": ["admin", "physician"], "name": "佐藤 太郎"});
        let u = user_from_claims("pw-1", &c).unwrap();
        assert_eq!(
            (u.facility.as_str(), u.role, u.name.as_str()),
            ("0411000017", Role::Physician, "佐藤 太郎")
        );
        assert!(user_from_claims("pw-1", &serde_json::json!({"roles": ["nurse"]})).is_err());
        assert!(
            user_from_claims("pw-1", &serde_json::json!({"facility": "F", "roles": ["janitor"]})).is_err()
        );
        for bad in ["0411-010156", "04110101560411010", "病院", "F 1"] {
            let e = user_from_claims("pw-1", &serde_json::json!({"facility": bad, "roles": ["physician"]}))
                .unwrap_err()
                .to_string();
            assert!(e.contains("facility code") && e.contains(bad), "{e}");
        }
    }
}
