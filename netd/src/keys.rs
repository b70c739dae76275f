//! Per-segment WireGuard private keys on disk: generated on first use with mode 0600, read
//! back later, never printed or logged (only public keys leave this module).

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use wireguard_control::Key;

use crate::error::{Error, Result};
use crate::policy::{PublicKey, SegmentName};

/// A private key; `Debug` does not show it.
pub struct PrivateKey(Key);

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PrivateKey(<redacted>)")
    }
}

impl PrivateKey {
    pub fn public(&self) -> PublicKey {
        PublicKey::from_bytes(&self.0.get_public().0)
    }
    pub fn wireguard_key(&self) -> Key {
        self.0.clone()
    }
}

fn key_path(dir: &Path, segment: &SegmentName) -> PathBuf {
    dir.join(format!("{segment}.key"))
}

/// Load the segment's private key, generating it (crash-safe, mode 0600) if missing.
pub fn load_or_generate(dir: &Path, segment: &SegmentName) -> Result<PrivateKey> {
    let path = key_path(dir, segment);
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| Error::Io { path: p, source }
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let mode = std::fs::metadata(&path).map_err(io(&path))?.permissions().mode();
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
            Ok(PrivateKey(key))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io(dir))?;
            let key = Key::generate_private();
            let tmp = dir.join(format!(".{segment}.key.tmp"));
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(io(&tmp))?;
            f.write_all(key.to_base64().as_bytes()).map_err(io(&tmp))?;
            f.sync_all().map_err(io(&tmp))?;
            drop(f);
            std::fs::rename(&tmp, &path).map_err(io(&path))?;
            std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))?;
            tracing::info!(segment = %segment, "generated a new WireGuard keypair");
            Ok(PrivateKey(key))
        }
        Err(e) => Err(Error::Io { path, source: e }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_key_is_private_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let seg: SegmentName = "reference".parse().unwrap();
        let a = load_or_generate(dir.path(), &seg).unwrap();
        let mode = std::fs::metadata(dir.path().join("reference.key")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let b = load_or_generate(dir.path(), &seg).unwrap();
        assert_eq!(a.public(), b.public());
        assert!(!format!("{a:?}").contains(&a.wireguard_key().to_base64()));
    }
}
