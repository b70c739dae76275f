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
pub fn load_view(
    path: &Path,
    enrollment: &Enrollment,
) -> Result<Option<(ViewPayload, SignedView)>, RegistryError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(file_err(path, e)),
    };
    let signed: SignedView = serde_json::from_slice(&bytes).map_err(|e| file_err(path, e))?;
    let payload = signed
        .verify(&enrollment.verifying_key()?)
        .map_err(|e| file_err(path, format!("stored view refused: {e}")))?;
    if payload.site != enrollment.site {
        return Err(file_err(path, format!("stored view is for site {:?}", payload.site)));
    }
    Ok(Some((payload, signed)))
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
