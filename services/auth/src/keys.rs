//! The centre's secrets on disk: the ed25519 ID-token signing key and the pairwise-subject salt.
//! Both are 32 random bytes as 64 hex digits in a mode-0600 file (the audit key's format), written
//! crash-safely and never logged.

use crate::error::{AuthError, Result};
use std::path::Path;

/// Create a new 32-byte secret file (hex, mode 0600). Refuses to overwrite an existing file.
pub fn generate_secret_file(path: &Path) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        std::process::id()
    ));
    let secret: [u8; 32] = rand::random();
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        f.write_all(format!("{}\n", hex::encode(secret)).as_bytes())?;
        f.sync_all()?;
        // hard_link refuses to replace an existing file, so a concurrent or earlier key survives.
        std::fs::hard_link(&tmp, path)?;
        std::fs::remove_file(&tmp)?;
        std::fs::File::open(dir)?.sync_all()
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        AuthError::io(path, e)
    })
}

/// Read a file holding a secret (`what` says which), refusing one that group or others may read:
/// the audit service's check ([`kizuna_audit::config::read_private`]), with its errors as this
/// crate's. Contents are never logged.
pub fn read_private(what: &'static str, path: &Path) -> Result<String> {
    kizuna_audit::config::read_private(what, path).map_err(|e| match e {
        kizuna_audit::AuditError::Secret { what, path, problem } => AuthError::Secret { what, path, problem },
        kizuna_audit::AuditError::Io { path, source } => AuthError::io(&path, source),
        other => AuthError::io(path, std::io::Error::other(other.to_string())),
    })
}

/// Read a secret written by [`generate_secret_file`] (the signing key or the pairwise salt),
/// refusing one that group or others may read.
pub fn load_secret(path: &Path) -> Result<[u8; 32]> {
    let text = read_private("secret file", path)?;
    let bytes = hex::decode(text.trim())
        .map_err(|e| AuthError::Key { path: path.into(), reason: format!("not hex: {e}") })?;
    bytes
        .try_into()
        .map_err(|_| AuthError::Key { path: path.into(), reason: "expected 32 bytes (64 hex digits)".into() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn secret_file_is_private_round_trips_and_is_never_overwritten() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("k");
        generate_secret_file(&p).unwrap();
        let a = load_secret(&p).unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(generate_secret_file(&p).is_err());
        assert_eq!(load_secret(&p).unwrap(), a);
        std::fs::write(&p, "zz\n").unwrap();
        assert!(load_secret(&p).unwrap_err().to_string().contains("not hex"));
    }
    #[test]
    fn a_secret_readable_by_group_or_others_is_refused_with_the_chmod_to_run() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("signing.key");
        generate_secret_file(&p).unwrap();
        for mode in [0o644, 0o640, 0o604] {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
            let e = load_secret(&p).unwrap_err().to_string();
            let want = format!(
                "{}: mode is {mode:04o}; it must not be readable by group or others (chmod 600 {})",
                p.display(),
                p.display()
            );
            assert!(e.contains(&want), "{e}");
        }
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        load_secret(&p).unwrap();
    }
}
