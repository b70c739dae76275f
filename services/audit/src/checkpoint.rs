//! Checkpoints: signed tree heads (tree size, root hash, time) with an ed25519 signature and an
//! RFC 3161 time-stamp token over the signed text.

use crate::durable;
use crate::error::{AuditError, Result};
use crate::merkle::Hash;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::Digest;
use std::path::Path;

/// A signed tree head.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub tree_size: u64,
    #[serde(with = "hex_bytes")]
    pub root: Hash,
    pub created_at: jiff::Timestamp,
    /// First 8 bytes (hex) of SHA-256 of the ed25519 public key.
    pub key_id: String,
    #[serde(with = "hex_vec")]
    pub signature: Vec<u8>,
    /// RFC 3161 TimeStampToken (DER ContentInfo) over [`Checkpoint::stamped_bytes`].
    #[serde(default, with = "opt_hex_vec")]
    pub tst: Option<Vec<u8>>,
}

impl Checkpoint {
    /// The text the ed25519 signature covers (a C2SP signed-note style body).
    pub fn signed_body(tree_size: u64, root: &Hash, created_at: jiff::Timestamp) -> Vec<u8> {
        format!("kizuna-audit checkpoint v1\n{tree_size}\n{}\n{created_at}\n", B64.encode(root)).into_bytes()
    }

    /// Sign a new checkpoint (no time stamp yet).
    pub fn sign(key: &SigningKey, tree_size: u64, root: Hash, created_at: jiff::Timestamp) -> Self {
        let sig = key.sign(&Self::signed_body(tree_size, &root, created_at));
        Checkpoint {
            tree_size,
            root,
            created_at,
            key_id: key_id(&key.verifying_key()),
            signature: sig.to_bytes().to_vec(),
            tst: None,
        }
    }

    /// Does the signature verify under `key`?
    pub fn verify_signature(&self, key: &VerifyingKey) -> bool {
        let Ok(sig) = <[u8; 64]>::try_from(self.signature.as_slice()) else { return false };
        let sig = ed25519_dalek::Signature::from_bytes(&sig);
        key.verify_strict(&Self::signed_body(self.tree_size, &self.root, self.created_at), &sig).is_ok()
    }

    /// The bytes the TSA time-stamps: the signed body followed by the signature, so the token proves
    /// the *signed* checkpoint existed at its genTime.
    pub fn stamped_bytes(&self) -> Vec<u8> {
        let mut b = Self::signed_body(self.tree_size, &self.root, self.created_at);
        b.extend_from_slice(&self.signature);
        b
    }
}

/// Short id of a public key.
pub fn key_id(key: &VerifyingKey) -> String {
    hex::encode(&sha2::Sha256::digest(key.as_bytes())[..8])
}

/// Create a new ed25519 signing key file (hex seed, mode 0600). Refuses to overwrite.
pub fn generate_key(path: &Path) -> Result<VerifyingKey> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let key = SigningKey::from_bytes(&rand::random::<[u8; 32]>());
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| AuditError::io(path, e))?;
    f.write_all(format!("{}\n", hex::encode(key.to_bytes())).as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|e| AuditError::io(path, e))?;
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        durable::sync_dir(dir)?;
    }
    Ok(key.verifying_key())
}

/// Load a signing key written by [`generate_key`], refusing one that group or others may read
/// (mode 0600, as `generate_key` writes it). The key is never logged.
pub fn load_signing_key(path: &Path) -> Result<SigningKey> {
    let text = crate::config::read_private("signing key", path)?;
    let bytes = hex::decode(text.trim())
        .map_err(|e| AuditError::Key { path: path.into(), reason: format!("not hex: {e}") })?;
    let seed: [u8; 32] = bytes.try_into().map_err(|_| AuditError::Key {
        path: path.into(),
        reason: "expected 32 bytes (64 hex digits)".into(),
    })?;
    Ok(SigningKey::from_bytes(&seed))
}

/// Parse a public key given as 64 hex digits.
pub fn parse_public_key(hex_key: &str) -> Result<VerifyingKey> {
    let bad = |reason: String| AuditError::Key { path: "public key".into(), reason };
    let bytes = hex::decode(hex_key.trim()).map_err(|e| bad(format!("not hex: {e}")))?;
    let arr: [u8; 32] = bytes.try_into().map_err(|_| bad("expected 32 bytes".into()))?;
    VerifyingKey::from_bytes(&arr).map_err(|e| bad(e.to_string()))
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(v: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let s = String::deserialize(d)?;
        hex::decode(&s)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| serde::de::Error::custom("expected 64 hex digits"))
    }
}
mod hex_vec {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        hex::decode(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}
mod opt_hex_vec {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(b) => s.serialize_some(&hex::encode(b)),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|s| hex::decode(s).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_covers_size_root_and_time() {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let t: jiff::Timestamp = "2026-11-25T10:00:00Z".parse().unwrap();
        let cp = Checkpoint::sign(&key, 10, [1u8; 32], t);
        assert!(cp.verify_signature(&key.verifying_key()));
        let mut bigger = cp.clone();
        bigger.tree_size = 11;
        assert!(!bigger.verify_signature(&key.verifying_key()));
        let mut other_root = cp.clone();
        other_root.root[0] ^= 1;
        assert!(!other_root.verify_signature(&key.verifying_key()));
        let other_key = SigningKey::from_bytes(&[8u8; 32]);
        assert!(!cp.verify_signature(&other_key.verifying_key()));
    }

    #[test]
    fn key_file_round_trips_and_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("audit.key");
        let vk = generate_key(&p).unwrap();
        assert_eq!(load_signing_key(&p).unwrap().verifying_key(), vk);
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(generate_key(&p).is_err(), "must not overwrite an existing key");
    }
    #[test]
    fn a_signing_key_readable_by_group_or_others_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("audit.key");
        generate_key(&p).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = load_signing_key(&p).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("signing key {}: mode is 0644", p.display()))
                && e.contains(&format!("(chmod 600 {})", p.display())),
            "{e}"
        );
    }
}
