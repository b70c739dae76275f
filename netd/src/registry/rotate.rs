//! Key rotation of an enrolled site, on command (`netd rotate`) or on schedule
//! (`key_rotation_days`), make-before-break:
//!
//! 1. a new key is generated beside the one in use (`<segment>.key.next`, 0600, crash-safe);
//! 2. its public key is registered with the registry (`POST /v1/keys`), which bumps the version
//!    and wakes every site's long-poll at once;
//! 3. the registry's views list the new key together with a switch time (registry policy
//!    `rotation_switch_delay_secs` after the registration: long enough for the long-poll to
//!    reach every site), and the key it replaces ([`super::view::KeySwitch`]);
//! 4. until the switch time every router keeps using the old key: this site its old private
//!    key, the peers its old public key. At the switch time each `netd run` runs a pass (the
//!    daemon schedules it): the peers replace the old public key by the new one, and this site
//!    (whose own entry now lists the new key) moves the waiting key in place and sets it on its
//!    device ([`crate::keys::promote_if_listed`]). A router that learns of the rotation only
//!    after the switch time switches at once.
//!
//! The old key stays in use until the switch, so a crash at any point leaves a key the peers
//! know: before step 2 the waiting key is published again later, after it the view switches
//! everyone. All routers switch at the same moment of their clocks, so the outage is the clock
//! skew between them (NTP: milliseconds) plus one WireGuard handshake.

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
/// registry's new version, the public keys registered and when routers switch to them.
pub async fn publish(
    cfg: &SiteConfig,
    enrollment: &Enrollment,
    client: &Client,
    segments: &[SegmentName],
) -> Result<(u64, BTreeMap<SegmentName, PublicKey>, Option<u64>), RegistryError> {
    let mut keys = BTreeMap::new();
    for seg in segments {
        keys.insert(seg.clone(), keys::begin_rotation(&cfg.key_dir, seg)?.public());
    }
    let r = client.register_keys(&enrollment.credential, &KeysRequest { keys: keys.clone() }).await?;
    tracing::info!(segments = ?segments, version = r.version, switch_unix = r.switch_unix, "rotated keys registered; every router switches at the switch time");
    Ok((r.version, keys, r.switch_unix))
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
