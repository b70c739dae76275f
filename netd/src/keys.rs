//! Per-segment WireGuard private keys on disk: generated on first use with mode 0600, read
//! back later, never printed or logged (only public keys leave this module).
//!
//! Rotation keeps two files per segment: `<segment>.key`, the key in use, and
//! `<segment>.key.next`, a new key waiting until the policy (the registry's view, or the
//! policy file) lists its public key. Only then does [`promote_if_listed`] move it in place
//! (one rename), so the site always holds the key its peers know, whenever it crashes.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use wireguard_control::Key;

use crate::error::{Error, Result};
use crate::policy::{PublicKey, SegmentName};

/// A private key; `Debug` does not show it.
pub struct PrivateKey(Key, PublicKey);

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PrivateKey(<redacted>)")
    }
}

impl PrivateKey {
    /// With its public key, derived once per process and key: a Curve25519 operation costs
    /// a delta pass about as much as setting one peer, and every pass loads every key.
    fn new(key: Key) -> Self {
        use sha2::Digest;
        // Remembered by a digest of the private key, so the memo holds no key material.
        static DERIVED: std::sync::Mutex<Vec<([u8; 32], PublicKey)>> = std::sync::Mutex::new(Vec::new());
        let id: [u8; 32] = sha2::Sha256::digest(key.0).into();
        let mut memo = DERIVED.lock().unwrap_or_else(|p| p.into_inner());
        let public = match memo.iter().find(|(d, _)| *d == id) {
            Some((_, p)) => p.clone(),
            None => {
                let p = PublicKey::from_bytes(&key.get_public().0);
                if memo.len() >= 64 {
                    memo.remove(0);
                }
                memo.push((id, p.clone()));
                p
            }
        };
        PrivateKey(key, public)
    }
    pub fn public(&self) -> PublicKey {
        self.1.clone()
    }
    pub fn wireguard_key(&self) -> Key {
        self.0.clone()
    }
}

/// Where the segment's key in use lives.
pub fn key_path(dir: &Path, segment: &SegmentName) -> PathBuf {
    dir.join(format!("{segment}.key"))
}

/// Where a rotated key waits until the policy lists it.
pub fn pending_path(dir: &Path, segment: &SegmentName) -> PathBuf {
    dir.join(format!("{segment}.key.next"))
}

fn io(p: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let p = p.to_path_buf();
    move |source| Error::Io { path: p, source }
}

/// Read a key file, refusing one others can read. `Ok(None)` when it does not exist.
fn read_key(path: &Path, segment: &SegmentName) -> Result<Option<PrivateKey>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::Io { path: path.to_path_buf(), source: e }),
    };
    let mode = std::fs::metadata(path).map_err(io(path))?.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(Error::Key {
            segment: segment.to_string(),
            reason: format!(
                "{} is readable by others (mode {:o}); chmod 600 it",
                path.display(),
                mode & 0o777
            ),
        });
    }
    let key = Key::from_base64(text.trim()).map_err(|_| Error::Key {
        segment: segment.to_string(),
        reason: format!("{} does not hold a base64 WireGuard key", path.display()),
    })?;
    Ok(Some(PrivateKey::new(key)))
}

/// Generate a key into `path`, crash-safe: temp file (0600), fsync, rename, fsync the directory.
fn generate_into(dir: &Path, path: &Path) -> Result<PrivateKey> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io(dir))?;
    let key = Key::generate_private();
    crate::durable::write_file(path, key.to_base64().as_bytes(), 0o600)
        .map_err(|(p, source)| Error::Io { path: p, source })?;
    Ok(PrivateKey::new(key))
}

fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

/// Load the segment's private key, generating it (crash-safe, mode 0600) if missing.
pub fn load_or_generate(dir: &Path, segment: &SegmentName) -> Result<PrivateKey> {
    let path = key_path(dir, segment);
    if let Some(k) = read_key(&path, segment)? {
        return Ok(k);
    }
    let key = generate_into(dir, &path)?;
    tracing::info!(segment = %segment, "generated a new WireGuard keypair");
    Ok(key)
}

/// The segment's private key if its file exists (nothing is generated).
pub fn load_existing(dir: &Path, segment: &SegmentName) -> Result<Option<PrivateKey>> {
    read_key(&key_path(dir, segment), segment)
}

/// The key waiting to replace the segment's key, if a rotation is under way.
pub fn pending(dir: &Path, segment: &SegmentName) -> Result<Option<PrivateKey>> {
    read_key(&pending_path(dir, segment), segment)
}

/// Start a rotation: the waiting key (generated now, crash-safe, unless one already waits, so a
/// retried rotation publishes the same key). The key in use is not touched.
pub fn begin_rotation(dir: &Path, segment: &SegmentName) -> Result<PrivateKey> {
    if let Some(k) = pending(dir, segment)? {
        return Ok(k);
    }
    let key = generate_into(dir, &pending_path(dir, segment))?;
    tracing::info!(segment = %segment, public_key = %key.public(), "generated the next WireGuard keypair");
    Ok(key)
}

/// When the policy lists `listed` for this site's segment and that is the waiting key, make it
/// the key in use (one atomic rename; the old private key is gone with it). Returns whether it
/// did. A waiting key the policy does not list yet stays waiting.
pub fn promote_if_listed(dir: &Path, segment: &SegmentName, listed: &PublicKey) -> Result<bool> {
    let Some(next) = pending(dir, segment)? else { return Ok(false) };
    if &next.public() != listed {
        return Ok(false);
    }
    let current = key_path(dir, segment);
    std::fs::rename(pending_path(dir, segment), &current).map_err(io(&current))?;
    sync_dir(dir)?;
    tracing::info!(segment = %segment, public_key = %listed, "the policy lists the rotated key: switched to it");
    Ok(true)
}

/// How long the segment's key has been in use (by its file's modification time: a rotation
/// renames the new file in place, so the time is when that key was generated).
pub fn age(dir: &Path, segment: &SegmentName, now: SystemTime) -> Result<Option<Duration>> {
    let path = key_path(dir, segment);
    match std::fs::metadata(&path) {
        Ok(m) => {
            let modified = m.modified().map_err(io(&path))?;
            Ok(Some(now.duration_since(modified).unwrap_or_default()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::Io { path, source: e }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg() -> SegmentName {
        "reference".parse().unwrap()
    }

    #[test]
    fn generated_key_is_private_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_generate(dir.path(), &seg()).unwrap();
        let mode = std::fs::metadata(dir.path().join("reference.key")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let b = load_or_generate(dir.path(), &seg()).unwrap();
        assert_eq!(a.public(), b.public());
        assert!(!format!("{a:?}").contains(&a.wireguard_key().to_base64()));
    }

    #[test]
    fn a_rotated_key_waits_until_listed_and_only_then_replaces_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let old = load_or_generate(dir.path(), &seg()).unwrap();
        let next = begin_rotation(dir.path(), &seg()).unwrap();
        assert_ne!(old.public(), next.public());
        let mode = std::fs::metadata(pending_path(dir.path(), &seg())).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // A retried rotation (say after a crash before publishing) reuses the waiting key.
        assert_eq!(begin_rotation(dir.path(), &seg()).unwrap().public(), next.public());
        // The policy still lists the old key: the old key stays in use, the new one waits.
        assert!(!promote_if_listed(dir.path(), &seg(), &old.public()).unwrap());
        assert_eq!(load_or_generate(dir.path(), &seg()).unwrap().public(), old.public());
        assert!(pending(dir.path(), &seg()).unwrap().is_some());
        // Some other key listed: nothing moves either.
        assert!(!promote_if_listed(dir.path(), &seg(), &PublicKey::from_bytes(&[7; 32])).unwrap());
        // Listed: it becomes the key in use, and nothing waits any more.
        assert!(promote_if_listed(dir.path(), &seg(), &next.public()).unwrap());
        assert_eq!(load_or_generate(dir.path(), &seg()).unwrap().public(), next.public());
        assert!(pending(dir.path(), &seg()).unwrap().is_none());
        assert!(!promote_if_listed(dir.path(), &seg(), &next.public()).unwrap());
    }

    #[test]
    fn age_follows_the_key_file() {
        let dir = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        assert_eq!(age(dir.path(), &seg(), now).unwrap(), None);
        load_or_generate(dir.path(), &seg()).unwrap();
        let f = std::fs::File::options().write(true).open(dir.path().join("reference.key")).unwrap();
        f.set_modified(now - Duration::from_secs(86_400 * 10)).unwrap();
        let a = age(dir.path(), &seg(), now).unwrap().unwrap();
        assert_eq!(a.as_secs(), 86_400 * 10);
    }

    #[test]
    fn a_waiting_key_listed_with_a_switch_time_becomes_the_key_in_use_at_that_time_and_not_before() {
        use crate::registry::view::{FORMAT, KeySwitch, ViewPayload};
        let dir = tempfile::tempdir().unwrap();
        let old = load_or_generate(dir.path(), &seg()).unwrap();
        let next = begin_rotation(dir.path(), &seg()).unwrap();
        // The registry's view lists the waiting key, replacing the key in use at UNIX time 1000.
        let mut policy: crate::policy::Policy =
            serde_norway::from_str(include_str!("../tests/fixtures/valid.yaml")).unwrap();
        let me = policy.sites.iter_mut().find(|s| s.name.as_str() == "kita-hospital").unwrap();
        me.keys.insert(seg(), next.public());
        let view = ViewPayload {
            format: FORMAT.into(),
            site: "kita-hospital".into(),
            version: 1,
            issued_unix: 990,
            content_hash: ViewPayload::hash_content(&policy, &[]),
            missing_keys: vec![],
            policy,
            key_switches: vec![KeySwitch {
                site: "kita-hospital".into(),
                segment: seg(),
                previous: old.public(),
                switch_unix: 1000,
            }],
        };
        let listed_at = |t: f64| {
            view.policy_at(t).sites.iter().find(|s| s.name.as_str() == "kita-hospital").unwrap().keys[&seg()]
                .clone()
        };
        // Passes before the switch time keep the old key; the new one keeps waiting.
        for t in [990.0, 999.0, 999.999] {
            assert!(!promote_if_listed(dir.path(), &seg(), &listed_at(t)).unwrap(), "at {t}");
            assert_eq!(load_or_generate(dir.path(), &seg()).unwrap().public(), old.public());
            assert!(pending(dir.path(), &seg()).unwrap().is_some());
        }
        // The pass at the switch time (or any later one) moves it in place.
        assert!(promote_if_listed(dir.path(), &seg(), &listed_at(1000.0)).unwrap());
        assert_eq!(load_or_generate(dir.path(), &seg()).unwrap().public(), next.public());
        assert!(pending(dir.path(), &seg()).unwrap().is_none());
    }
}
