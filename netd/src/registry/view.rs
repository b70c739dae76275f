//! A site's view: the part of the mesh policy one site needs (its segments, its peers with
//! their keys and addresses), issued by the registry, signed with the centre's ed25519 key and
//! numbered with the registry's ever-growing version.
//!
//! netd applies a view only if (1) the signature verifies under the key it learnt at
//! enrollment, (2) it is for this site, (3) its version is higher than the one it holds (an
//! equal version must be byte-identical), and (4) the policy inside passes netd's own checks.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::policy::{Policy, SegmentName, ValidPolicy};

/// Format tag inside every payload.
pub const FORMAT: &str = "kizuna-view-1";
/// Domain separation: the signature covers this prefix followed by the payload bytes.
const CONTEXT: &[u8] = b"kizuna registry view v1\n";

/// What the registry tells one site.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ViewPayload {
    pub format: String,
    pub site: String,
    /// The registry's version when the view was computed; only ever grows.
    pub version: u64,
    pub issued_unix: u64,
    /// SHA-256 (hex) of `policy` and `missing_keys`; a watch echoes it so the registry answers
    /// only when the content changed.
    pub content_hash: String,
    /// Segments the site belongs to but has registered no key for yet (netd registers them).
    pub missing_keys: Vec<SegmentName>,
    /// The policy restricted to this site, its segments and its enrolled peers, keys filled in.
    pub policy: Policy,
}

impl ViewPayload {
    /// The content hash of a policy and missing-key list.
    pub fn hash_content(policy: &Policy, missing: &[SegmentName]) -> String {
        let bytes = serde_json::to_vec(&(policy, missing)).expect("policy serialises");
        hex::encode(Sha256::digest(bytes))
    }

    /// netd's checks of the policy inside.
    pub fn valid_policy(&self) -> Result<ValidPolicy, String> {
        ValidPolicy::new(self.policy.clone()).map_err(|problems| {
            let list: Vec<String> = problems.iter().map(|p| format!("{}: {}", p.path, p.reason)).collect();
            format!("the policy inside fails netd's checks: {}", list.join("; "))
        })
    }
}

/// A payload with its signature, as served and as persisted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedView {
    /// base64 of the payload's JSON bytes: exactly the bytes signed.
    pub payload: String,
    /// base64 of the ed25519 signature.
    pub signature: String,
}

/// The text form of a public signing key (base64 of its 32 bytes).
pub fn encode_verifying_key(key: &VerifyingKey) -> String {
    STANDARD.encode(key.as_bytes())
}

pub fn decode_verifying_key(text: &str) -> Result<VerifyingKey, String> {
    let bytes = STANDARD.decode(text.trim()).map_err(|e| format!("signing key is not base64: {e}"))?;
    let arr: [u8; 32] = bytes.try_into().map_err(|_| "signing key is not 32 bytes".to_string())?;
    VerifyingKey::from_bytes(&arr).map_err(|e| format!("signing key is not an ed25519 point: {e}"))
}

fn signed_bytes(payload: &[u8]) -> Vec<u8> {
    let mut v = CONTEXT.to_vec();
    v.extend_from_slice(payload);
    v
}

impl SignedView {
    pub fn sign(key: &SigningKey, payload: &ViewPayload) -> Self {
        let bytes = serde_json::to_vec(payload).expect("payload serialises");
        let sig = key.sign(&signed_bytes(&bytes));
        Self { payload: STANDARD.encode(&bytes), signature: STANDARD.encode(sig.to_bytes()) }
    }

    /// Check the signature, then parse the payload. Nothing is parsed before it verifies.
    pub fn verify(&self, key: &VerifyingKey) -> Result<ViewPayload, String> {
        let bytes = STANDARD.decode(&self.payload).map_err(|_| "payload is not base64".to_string())?;
        let sig = STANDARD.decode(&self.signature).map_err(|_| "signature is not base64".to_string())?;
        let sig: [u8; 64] = sig.try_into().map_err(|_| "signature is not 64 bytes".to_string())?;
        key.verify_strict(&signed_bytes(&bytes), &Signature::from_bytes(&sig))
            .map_err(|_| "signature does not verify under the centre's key".to_string())?;
        let p: ViewPayload =
            serde_json::from_slice(&bytes).map_err(|e| format!("signed payload is malformed: {e}"))?;
        if p.format != FORMAT {
            return Err(format!("unknown view format {:?}", p.format));
        }
        if p.content_hash != ViewPayload::hash_content(&p.policy, &p.missing_keys) {
            return Err("content hash does not match the content".into());
        }
        Ok(p)
    }
}

/// How a verified view relates to the one held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Newer: apply it.
    Newer,
    /// The very view already held.
    Same,
}

/// Refuse views for another site, older views (replay, downgrade) and a different view under
/// an already seen version.
pub fn check_freshness(
    new: &ViewPayload,
    new_signed: &SignedView,
    site: &str,
    held: Option<(&ViewPayload, &SignedView)>,
) -> Result<Freshness, String> {
    if new.site != site {
        return Err(format!("view is for site {:?}, this is site {site:?}", new.site));
    }
    match held {
        None => Ok(Freshness::Newer),
        Some((h, _)) if new.version > h.version => Ok(Freshness::Newer),
        Some((h, hs)) if new.version == h.version && new_signed == hs => Ok(Freshness::Same),
        Some((h, _)) if new.version == h.version => {
            Err(format!("a different view with the same version {} (replay or forgery)", new.version))
        }
        Some((h, _)) => Err(format!(
            "version {} is older than the held version {} (replay or downgrade)",
            new.version, h.version
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(version: u64) -> ViewPayload {
        let text = include_str!("../../tests/fixtures/valid.yaml");
        let policy: Policy = serde_norway::from_str(text).unwrap();
        ViewPayload {
            format: FORMAT.into(),
            site: "kita-hospital".into(),
            version,
            issued_unix: 1,
            content_hash: ViewPayload::hash_content(&policy, &[]),
            missing_keys: vec![],
            policy,
        }
    }

    #[test]
    fn signed_view_verifies_and_tampering_is_refused() {
        let key = SigningKey::from_bytes(&[9; 32]);
        let p = payload(3);
        let sv = SignedView::sign(&key, &p);
        assert_eq!(sv.verify(&key.verifying_key()).unwrap(), p);
        // Another key.
        let other = SigningKey::from_bytes(&[8; 32]);
        assert!(sv.verify(&other.verifying_key()).unwrap_err().contains("does not verify"));
        // One flipped payload byte.
        let mut bytes = STANDARD.decode(&sv.payload).unwrap();
        let i = bytes.len() / 2;
        bytes[i] ^= 1;
        let tampered = SignedView { payload: STANDARD.encode(bytes), signature: sv.signature.clone() };
        assert!(tampered.verify(&key.verifying_key()).is_err());
        // Unsigned.
        let unsigned = SignedView { payload: sv.payload.clone(), signature: String::new() };
        assert!(unsigned.verify(&key.verifying_key()).is_err());
    }

    #[test]
    fn freshness_refuses_replay_downgrade_and_other_sites() {
        let key = SigningKey::from_bytes(&[9; 32]);
        let (p3, p4) = (payload(3), payload(4));
        let (s3, s4) = (SignedView::sign(&key, &p3), SignedView::sign(&key, &p4));
        assert_eq!(check_freshness(&p4, &s4, "kita-hospital", Some((&p3, &s3))), Ok(Freshness::Newer));
        assert_eq!(check_freshness(&p4, &s4, "kita-hospital", Some((&p4, &s4))), Ok(Freshness::Same));
        assert!(check_freshness(&p3, &s3, "kita-hospital", Some((&p4, &s4))).unwrap_err().contains("older"));
        let mut p4b = p4.clone();
        p4b.issued_unix = 2;
        let s4b = SignedView::sign(&key, &p4b);
        assert!(
            check_freshness(&p4b, &s4b, "kita-hospital", Some((&p4, &s4)))
                .unwrap_err()
                .contains("same version")
        );
        assert!(check_freshness(&p4, &s4, "minami-hospital", None).unwrap_err().contains("this is site"));
    }
}
