//! A site's view: the part of the mesh policy one site needs (its segments, its peers with
//! their keys and addresses), issued by the registry, signed with the centre's ed25519 key and
//! numbered with the registry's ever-growing version.
//!
//! netd applies a view only if (1) the signature verifies under the key it learnt at
//! enrollment, (2) it is for this site, (3) its version is higher than the one it holds (an
//! equal version must be byte-identical), and (4) the policy inside passes netd's own checks.
//!
//! A rotated key comes with a [`KeySwitch`]: the view lists the new key, and names the key it
//! replaces and the UNIX time at which every router switches. Until then a router uses the
//! previous key (the rotating site its old private key, its peers the old public key); from then
//! on the new one ([`ViewPayload::policy_at`]). All routers switch at the same moment of their
//! (NTP-synchronised) clocks, so the outage is the clock skew plus one WireGuard handshake.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::policy::{Policy, PublicKey, SegmentName, ValidPolicy};

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
    /// Rotated keys in `policy` and when routers switch to them (absent when there are none,
    /// so views without rotations keep their earlier form).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key_switches: Vec<KeySwitch>,
}

/// One rotated key: `site`'s key in `segment` is `previous` before `switch_unix` and the key
/// `policy` lists from then on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySwitch {
    pub site: String,
    pub segment: SegmentName,
    pub previous: PublicKey,
    /// When every router switches to the new key (the registry's clock; routers compare it with
    /// their own, so they need a synchronised clock).
    pub switch_unix: u64,
}

impl ViewPayload {
    /// The content hash of a policy and missing-key list.
    pub fn hash_content(policy: &Policy, missing: &[SegmentName]) -> String {
        let bytes = serde_json::to_vec(&(policy, missing)).expect("policy serialises");
        hex::encode(Sha256::digest(bytes))
    }

    /// The policy as it holds at `now_unix` (seconds, fractional): each key whose switch time
    /// has not come yet replaced by the key it replaces. A router that learns of a rotation after
    /// its switch time gets the new key at once.
    pub fn policy_at(&self, now_unix: f64) -> Policy {
        let mut policy = self.policy.clone();
        for sw in self.key_switches.iter().filter(|sw| (sw.switch_unix as f64) > now_unix) {
            if let Some(site) = policy.sites.iter_mut().find(|s| s.name.as_str() == sw.site)
                && let Some(key) = site.keys.get_mut(&sw.segment)
            {
                *key = sw.previous.clone();
            }
        }
        policy
    }

    /// The earliest key switch after `now_unix`, if any: when the router's next pass is due.
    pub fn next_switch(&self, now_unix: f64) -> Option<u64> {
        self.key_switches.iter().map(|sw| sw.switch_unix).filter(|t| (*t as f64) > now_unix).min()
    }

    /// netd's checks of the policy inside (as it holds at `now_unix`).
    pub fn valid_policy_at(&self, now_unix: f64) -> Result<ValidPolicy, String> {
        Self::check(self.policy_at(now_unix))
    }

    /// netd's checks of the policy inside.
    pub fn valid_policy(&self) -> Result<ValidPolicy, String> {
        Self::check(self.policy.clone())
    }

    fn check(policy: Policy) -> Result<ValidPolicy, String> {
        ValidPolicy::new(policy).map_err(|problems| {
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
            key_switches: vec![],
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

    #[test]
    fn a_key_switch_keeps_the_previous_key_until_its_time_and_the_new_one_after() {
        let mut p = payload(5);
        let kita = p.policy.sites.iter().find(|s| s.name.as_str() == "kita-hospital").unwrap();
        let (seg, new) = kita.keys.iter().next().map(|(s, k)| (s.clone(), k.clone())).unwrap();
        let previous = PublicKey::from_bytes(&[42; 32]);
        p.key_switches = vec![KeySwitch {
            site: "kita-hospital".into(),
            segment: seg.clone(),
            previous: previous.clone(),
            switch_unix: 1000,
        }];
        let key_at = |t: f64| {
            p.policy_at(t).sites.iter().find(|s| s.name.as_str() == "kita-hospital").unwrap().keys[&seg]
                .clone()
        };
        // Before the switch time: the previous key, for this site and every peer alike.
        assert_eq!(key_at(0.0), previous);
        assert_eq!(key_at(999.999), previous);
        // At it, and for a router that learns of it later: the new key.
        assert_eq!(key_at(1000.0), new);
        assert_eq!(key_at(5000.0), new);
        assert_eq!(p.next_switch(10.0), Some(1000));
        assert_eq!(p.next_switch(1000.0), None);
        // Other sites' keys never change.
        for (a, b) in p.policy_at(0.0).sites.iter().zip(&p.policy.sites) {
            if a.name.as_str() != "kita-hospital" {
                assert_eq!(a.keys, b.keys);
            }
        }
        // The switch is signed with the rest: changing its time breaks the signature.
        let key = SigningKey::from_bytes(&[9; 32]);
        let sv = SignedView::sign(&key, &p);
        assert_eq!(sv.verify(&key.verifying_key()).unwrap(), p);
        let text = String::from_utf8(STANDARD.decode(&sv.payload).unwrap()).unwrap();
        assert!(text.contains("\"switch_unix\":1000"));
        let moved = text.replace("\"switch_unix\":1000", "\"switch_unix\":9000");
        let forged = SignedView { payload: STANDARD.encode(moved), signature: sv.signature.clone() };
        assert!(forged.verify(&key.verifying_key()).unwrap_err().contains("does not verify"));
        // A view without switches keeps its earlier form (no key_switches field).
        let plain = SignedView::sign(&key, &payload(5));
        assert!(
            !String::from_utf8(STANDARD.decode(&plain.payload).unwrap()).unwrap().contains("key_switches")
        );
    }
}
