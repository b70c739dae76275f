//! Secret files (signing keys, salts, tokens, TLS keys): read only when group and others cannot
//! read them. The mode is taken from the opened file, so it is the file that is read. Contents
//! are never logged.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Why a secret file was not read.
#[derive(Debug, thiserror::Error)]
pub enum SecretFileError {
    /// Opening or reading it failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Group or others may read it.
    #[error("mode is {mode:04o}; it must not be readable by group or others (chmod 600 {path})")]
    Exposed {
        /// Its permission bits.
        mode: u32,
        /// The file, as given.
        path: String,
    },
}

/// The contents of the secret file `path`, refused when its mode lets group or others read it.
pub fn read_private(path: &Path) -> Result<String, SecretFileError> {
    let mut f = std::fs::File::open(path)?;
    let mode = f.metadata()?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(SecretFileError::Exposed { mode, path: path.display().to_string() });
    }
    let mut text = String::new();
    f.read_to_string(&mut text)?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_others_may_read_is_refused_with_the_chmod_and_a_private_one_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("token");
        std::fs::write(&p, "s3cret\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        let e = read_private(&p).unwrap_err().to_string();
        assert_eq!(
            e,
            format!("mode is 0640; it must not be readable by group or others (chmod 600 {})", p.display())
        );
        assert!(!e.contains("s3cret"));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_private(&p).unwrap(), "s3cret\n");
        assert!(matches!(read_private(&dir.path().join("missing")), Err(SecretFileError::Io(_))));
    }
}
