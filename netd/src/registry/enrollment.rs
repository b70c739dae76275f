//! What enrollment leaves on the appliance, in `state_dir`: `enrollment.json` (registry
//! address, pin, the centre's view-signing key, this site's credential; mode 0600) and
//! `view.json` (the last verified view, re-verified every time it is read). Both are written
//! crash-safe: temp file, fsync, rename, fsync directory.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::RegistryError;
use super::view::{SignedView, ViewPayload, decode_verifying_key};
use crate::policy::ValidPolicy;
use crate::site::SiteConfig;

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Enrollment {
    pub site: String,
    pub registry_url: String,
    /// `sha256//BASE64` of the registry's TLS key.
    pub pin: String,
    /// The centre's ed25519 view-signing key (base64).
    pub signing_key: String,
    /// Bearer secret identifying this site to the registry. Never logged.
    pub credential: String,
    pub enrolled_unix: u64,
}

impl std::fmt::Debug for Enrollment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enrollment")
            .field("site", &self.site)
            .field("registry_url", &self.registry_url)
            .field("pin", &self.pin)
            .field("credential", &"<redacted>")
            .finish()
    }
}

fn file_err(path: &Path, reason: impl std::fmt::Display) -> RegistryError {
    RegistryError::File { path: path.to_path_buf(), reason: reason.to_string() }
}

/// Write `bytes` to `path` with `mode`, crash-safe ([`crate::durable::write_file`]).
pub fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), RegistryError> {
    crate::durable::write_file(path, bytes, mode).map_err(|(p, e)| file_err(&p, e))
}

impl Enrollment {
    pub fn load(path: &Path) -> Result<Option<Self>, RegistryError> {
        match std::fs::read(path) {
            Ok(b) => serde_json::from_slice(&b).map(Some).map_err(|e| file_err(path, e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(file_err(path, e)),
        }
    }

    pub fn save(&self, path: &Path) -> Result<(), RegistryError> {
        write_file(path, &serde_json::to_vec_pretty(self).expect("serialises"), 0o600)
    }

    pub fn verifying_key(&self) -> Result<ed25519_dalek::VerifyingKey, RegistryError> {
        decode_verifying_key(&self.signing_key).map_err(RegistryError::View)
    }
}

/// The persisted view, verified again under the enrollment's key; `None` when there is none.
/// A view that does not verify is an error naming the file (netd uses no policy from it).
pub fn load_view(
    path: &Path,
    enrollment: &Enrollment,
) -> Result<Option<(ViewPayload, SignedView)>, RegistryError> {
    let key = enrollment.verifying_key()?;
    let Some(bytes) = read_view(path)? else { return Ok(None) };
    verify_stored(&bytes, &key, &enrollment.site).map(Some).map_err(|reason| file_err(path, reason))
}

/// [`load_view`] for the watch: a stored view that does not verify under this enrollment
/// (another registry's, signed with another key, or damaged) is logged and treated as absent,
/// so the watch fetches a fresh view instead of stopping on it. Its version floor meant
/// something only under the key that signed it.
pub fn held_view(
    path: &Path,
    enrollment: &Enrollment,
) -> Result<Option<(ViewPayload, SignedView)>, RegistryError> {
    let key = enrollment.verifying_key()?;
    let Some(bytes) = read_view(path)? else { return Ok(None) };
    match verify_stored(&bytes, &key, &enrollment.site) {
        Ok(v) => Ok(Some(v)),
        Err(reason) => {
            tracing::warn!(path = %path.display(), %reason, "stored view does not verify under this enrollment; fetching a fresh one");
            Ok(None)
        }
    }
}

fn read_view(path: &Path) -> Result<Option<Vec<u8>>, RegistryError> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(file_err(path, e)),
    }
}

/// Parse and verify stored view bytes: the signature under the enrolled centre `key`, `site`.
fn verify_stored(
    bytes: &[u8],
    key: &ed25519_dalek::VerifyingKey,
    site: &str,
) -> Result<(ViewPayload, SignedView), String> {
    let signed: SignedView = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let payload = signed.verify(key).map_err(|e| format!("stored view refused: {e}"))?;
    if payload.site != site {
        return Err(format!("stored view is for site {:?}", payload.site));
    }
    Ok((payload, signed))
}

/// Remove the stored view, crash-safe (the directory is synced): `netd enroll` does this before
/// it saves a new enrollment, so no view of an earlier registry outlives its enrollment.
pub fn remove_view(path: &Path) -> Result<(), RegistryError> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(file_err(path, e)),
    }
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| file_err(dir, e))
}

pub fn save_view(path: &Path, view: &SignedView) -> Result<(), RegistryError> {
    write_file(path, &serde_json::to_vec_pretty(view).expect("serialises"), 0o600)
}

/// Where the policy comes from for this site: `Ok(None)` when not enrolled (the `policy` file
/// applies); otherwise the policy of the last verified view as it holds now (keys whose switch
/// time has not come yet are still the previous ones, see [`ViewPayload::policy_at`]).
pub fn view_policy(cfg: &SiteConfig) -> Result<Option<(u64, ValidPolicy)>, RegistryError> {
    view_policy_at(cfg, unix_now_f64())
}

/// The current time in UNIX seconds, with its fraction.
pub fn unix_now_f64() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// The UNIX time of the stored view's next key switch after `now_unix`: the daemon runs a pass
/// then. `Ok(None)` when not enrolled, without a view, or with no switch ahead.
pub fn next_key_switch(cfg: &SiteConfig, now_unix: f64) -> Result<Option<u64>, RegistryError> {
    let Some(enrollment) = Enrollment::load(&cfg.enrollment_path())? else { return Ok(None) };
    Ok(load_view(&cfg.view_path(), &enrollment)?.and_then(|(p, _)| p.next_switch(now_unix)))
}

/// [`view_policy`] at `now_unix`.
pub fn view_policy_at(cfg: &SiteConfig, now_unix: f64) -> Result<Option<(u64, ValidPolicy)>, RegistryError> {
    let Some(enrollment) = Enrollment::load(&cfg.enrollment_path())? else { return Ok(None) };
    if enrollment.site != cfg.site.as_str() {
        return Err(file_err(
            &cfg.enrollment_path(),
            format!("enrolled as site {:?}, but the site file says {:?}", enrollment.site, cfg.site.as_str()),
        ));
    }
    let (payload, _) = load_view(&cfg.view_path(), &enrollment)?
        .ok_or_else(|| file_err(&cfg.view_path(), "enrolled, but no verified view from the registry yet"))?;
    let policy = payload.valid_policy_at(now_unix).map_err(RegistryError::View)?;
    Ok(Some((payload.version, policy)))
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use ed25519_dalek::SigningKey;

    use super::*;
    use crate::policy::Policy;
    use crate::registry::view::FORMAT;

    fn enrollment(key: &SigningKey) -> Enrollment {
        Enrollment {
            site: "kita-hospital".into(),
            registry_url: "https://127.0.0.1:9".into(),
            pin: "sha256//AAAA".into(),
            signing_key: STANDARD.encode(key.verifying_key().to_bytes()),
            credential: "secret".into(),
            enrolled_unix: 1,
        }
    }

    /// A view signed by an earlier registry's key stopped the watch for good (`load_view`
    /// failed before any request); the watch now treats it as none, and enrollment removes it.
    #[test]
    fn a_view_of_another_registry_is_no_held_view_and_enrollment_removes_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("view.json");
        let (old, new) = (SigningKey::from_bytes(&[1; 32]), SigningKey::from_bytes(&[2; 32]));
        let policy: Policy = serde_norway::from_str(include_str!("../../tests/fixtures/valid.yaml")).unwrap();
        let payload = ViewPayload {
            format: FORMAT.into(),
            site: "kita-hospital".into(),
            version: 7,
            issued_unix: 1,
            content_hash: ViewPayload::hash_content(&policy, &[]),
            missing_keys: vec![],
            policy,
            key_switches: vec![],
        };
        save_view(&path, &SignedView::sign(&old, &payload)).unwrap();
        assert_eq!(held_view(&path, &enrollment(&old)).unwrap().unwrap().0.version, 7);
        let err = load_view(&path, &enrollment(&new)).unwrap_err().to_string();
        assert!(err.contains("view.json") && err.contains("stored view refused"), "{err}");
        assert!(held_view(&path, &enrollment(&new)).unwrap().is_none());
        std::fs::write(&path, b"{\"payload\":").unwrap();
        assert!(held_view(&path, &enrollment(&old)).unwrap().is_none(), "damaged: none either");
        remove_view(&path).unwrap();
        assert!(!path.exists());
        remove_view(&path).unwrap();
    }
}
