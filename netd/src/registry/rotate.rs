//! Key rotation of an enrolled site, on command (`netd rotate`) or on schedule
//! (`key_rotation_days`), make-before-break:
//!
//! 1. a new key is generated beside the one in use (`<segment>.key.next`, 0600, crash-safe);
//! 2. its public key is registered with the registry (`POST /v1/keys`), which bumps the version
//!    and wakes every site's long-poll at once;
//! 3. each site applies the new view in its ordinary reconcile pass: the peers replace the old
//!    public key by the new one, and this site (whose own entry in the view now lists the new
//!    key) moves the waiting key in place and sets it on its device
//!    ([`crate::keys::promote_if_listed`]).
//!
//! The old key stays in use until the view carrying the new one arrives, so a crash at any point
//! leaves a key the peers know: before step 2 the waiting key is published again later, after it
//! the view switches everyone. Peers and this site switch on the same registry version, so the
//! outage is the spread between their passes plus one WireGuard handshake.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use super::RegistryError;
use super::client::Client;
use super::enrollment::{Enrollment, load_view};
use super::protocol::KeysRequest;
use crate::keys;
use crate::policy::{PublicKey, SegmentName};
use crate::site::SiteConfig;

/// This site's keys as its stored, verified view lists them.
pub fn listed_keys(
    cfg: &SiteConfig,
    enrollment: &Enrollment,
) -> Result<BTreeMap<SegmentName, PublicKey>, RegistryError> {
    let (payload, _) = load_view(&cfg.view_path(), enrollment)?.ok_or_else(|| RegistryError::File {
        path: cfg.view_path(),
        reason: "enrolled, but no verified view from the registry yet".into(),
    })?;
    Ok(payload
        .policy
        .sites
        .into_iter()
        .find(|s| s.name.as_str() == enrollment.site)
        .map(|s| s.keys)
        .unwrap_or_default())
}

/// Register the waiting keys of `segments` (generating them where none waits). Returns the
/// registry's new version and the public keys registered.
pub async fn publish(
    cfg: &SiteConfig,
    enrollment: &Enrollment,
    client: &Client,
    segments: &[SegmentName],
) -> Result<(u64, BTreeMap<SegmentName, PublicKey>), RegistryError> {
    let mut keys = BTreeMap::new();
    for seg in segments {
        keys.insert(seg.clone(), keys::begin_rotation(&cfg.key_dir, seg)?.public());
    }
    let r = client.register_keys(&enrollment.credential, &KeysRequest { keys: keys.clone() }).await?;
    tracing::info!(segments = ?segments, version = r.version, "rotated keys registered; switching when the view lists them");
    Ok((r.version, keys))
}

/// Segments to publish now: those whose waiting key the view does not list yet (a rotation not
/// confirmed, for example the registry was down) and, when `days > 0`, those whose key in use
/// is at least `days` old.
pub fn due(
    cfg: &SiteConfig,
    listed: &BTreeMap<SegmentName, PublicKey>,
    days: u32,
    now: SystemTime,
) -> Result<Vec<SegmentName>, RegistryError> {
    let max_age = Duration::from_secs(u64::from(days) * 86_400);
    let mut out = Vec::new();
    for (seg, key) in listed {
        match keys::pending(&cfg.key_dir, seg)? {
            Some(next) if &next.public() != key => out.push(seg.clone()),
            // Listed already: the next reconcile pass switches to it.
            Some(_) => {}
            None => {
                let age = keys::age(&cfg.key_dir, seg, now)?;
                if days > 0 && age.is_some_and(|a| a >= max_age) {
                    out.push(seg.clone());
                }
            }
        }
    }
    Ok(out)
}

/// The schedule's step, run by the watch after each answer of the registry: publish what
/// [`due`] names. Returns the new version when it published.
pub async fn scheduled(
    cfg: &SiteConfig,
    enrollment: &Enrollment,
    client: &Client,
    now: SystemTime,
) -> Result<Option<u64>, RegistryError> {
    let listed = listed_keys(cfg, enrollment)?;
    let segments = due(cfg, &listed, cfg.key_rotation_days, now)?;
    if segments.is_empty() {
        return Ok(None);
    }
    Ok(Some(publish(cfg, enrollment, client, &segments).await?.0))
}
