//! Following the registry: long-poll the site's view, verify it (signature, site, version,
//! netd's policy checks), register keys the view says are missing, persist it, wake the
//! daemon's reconcile loop, and run the key rotation schedule. When the registry is unreachable
//! netd keeps running on the last verified view and retries with backoff.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;

use super::RegistryError;
use super::client::Client;
use super::enrollment::{Enrollment, held_view, save_view};
use super::protocol::KeysRequest;
use super::view::{Freshness, SignedView, check_freshness};
use crate::api::SharedStatus;
use crate::site::SiteConfig;

/// How long one long-poll may wait on the registry.
pub const LONG_POLL: Duration = Duration::from_secs(55);
/// A view issued further than this from the local clock (seconds) is logged as a clock problem.
const CLOCK_WARNING_SECS: f64 = 3.0;

/// What one poll brought.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Polled {
    /// Nothing new before the wait ran out.
    Nothing,
    /// A newer verified view is now stored.
    Stored { version: u64 },
}

/// Fetch once (waiting up to `wait`), verify and store. A view that fails any check is
/// refused with an error and the stored view stays. A stored view that no longer verifies
/// (another registry's) counts as none ([`held_view`]).
pub async fn poll_once(
    cfg: &SiteConfig,
    enrollment: &Enrollment,
    client: &Client,
    wait: Duration,
) -> Result<Polled, RegistryError> {
    let held = held_view(&cfg.view_path(), enrollment)?;
    let after = held.as_ref().map(|(p, _)| p.version);
    let have = held.as_ref().map(|(p, _)| p.content_hash.clone());
    let Some(signed) = client.view(&enrollment.credential, after, have.as_deref(), wait).await? else {
        return Ok(Polled::Nothing);
    };
    accept(cfg, enrollment, client, signed).await
}

/// The checks every view passes before it is stored: signature under the enrolled centre key,
/// this site, a version above the held one, netd's policy checks. Keys the view reports
/// missing are generated and registered, and only then is the view stored.
pub async fn accept(
    cfg: &SiteConfig,
    enrollment: &Enrollment,
    client: &Client,
    signed: SignedView,
) -> Result<Polled, RegistryError> {
    let held = held_view(&cfg.view_path(), enrollment)?;
    let payload = signed.verify(&enrollment.verifying_key()?).map_err(RegistryError::View)?;
    match check_freshness(&payload, &signed, &enrollment.site, held.as_ref().map(|(p, s)| (p, s)))
        .map_err(RegistryError::View)?
    {
        Freshness::Same => return Ok(Polled::Nothing),
        Freshness::Newer => {}
    }
    payload.valid_policy().map_err(RegistryError::View)?;
    let now = super::enrollment::unix_now_f64();
    payload.valid_policy_at(now).map_err(RegistryError::View)?;
    // Key switches happen at the registry's switch time by this router's clock: say so when
    // the clocks disagree (a view is issued when it is answered, so this is skew plus latency).
    let skew = now - payload.issued_unix as f64;
    if !payload.key_switches.is_empty() && skew.abs() > CLOCK_WARNING_SECS {
        tracing::warn!(
            skew_secs = skew,
            "this router's clock differs from the registry's: key switches need synchronised clocks (NTP)"
        );
    }
    // Registered before the view is stored: a stored view is the one the next poll says it has
    // (and gets nothing new for), so a failed registration must leave it unstored to be retried.
    if !payload.missing_keys.is_empty() {
        let mut keys = BTreeMap::new();
        for seg in &payload.missing_keys {
            keys.insert(seg.clone(), crate::keys::load_or_generate(&cfg.key_dir, seg)?.public());
        }
        let r = client.register_keys(&enrollment.credential, &KeysRequest { keys }).await?;
        tracing::info!(segments = ?payload.missing_keys, version = r.version, "registered keys for new segments");
    }
    save_view(&cfg.view_path(), &signed)?;
    Ok(Polled::Stored { version: payload.version })
}

/// The daemon's watch task: runs until the process ends.
pub async fn run(
    cfg: SiteConfig,
    enrollment: Enrollment,
    wake: mpsc::UnboundedSender<()>,
    status: SharedStatus,
) {
    let client = match Client::new(&enrollment.registry_url, &enrollment.pin) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot follow the registry; keeping the last verified view");
            return;
        }
    };
    tracing::info!(site = %enrollment.site, registry = %enrollment.registry_url, "following the registry");
    let mut backoff = Duration::from_secs(1);
    loop {
        match poll_once(&cfg, &enrollment, &client, LONG_POLL).await {
            Ok(polled) => {
                if let Polled::Stored { version } = polled {
                    tracing::info!(version, "new verified view from the registry");
                    let _ = wake.send(());
                }
                status.write().await.registry_error = None;
                backoff = Duration::from_secs(1);
                // The registry answers: publish keys the rotation schedule wants, and waiting
                // keys it has not confirmed yet.
                if let Err(e) = super::rotate::scheduled(&cfg, &enrollment, &client, SystemTime::now()).await
                {
                    tracing::warn!(error = %e, "key rotation: trying again after the next answer");
                }
            }
            Err(e) => {
                {
                    let mut st = status.write().await;
                    if matches!(e, RegistryError::View(_)) {
                        st.views_rejected_total += 1;
                    }
                    st.registry_error = Some(e.to_string());
                }
                tracing::warn!(error = %e, retry_secs = backoff.as_secs(), "registry: keeping the last verified view");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use ed25519_dalek::SigningKey;

    use super::*;
    use crate::policy::Policy;
    use crate::registry::enrollment::load_view;
    use crate::registry::view::{FORMAT, ViewPayload};

    #[test]
    fn a_view_whose_missing_keys_could_not_be_registered_is_not_stored() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let site_file = dir.path().join("site.yaml");
        std::fs::write(
            &site_file,
            format!("policy: {d}/p.yaml\nsite: kita-hospital\nkey_dir: {d}/keys\nstate_dir: {d}/state\n"),
        )
        .unwrap();
        std::fs::create_dir_all(dir.path().join("state")).unwrap();
        let cfg = SiteConfig::load(&site_file).unwrap();
        let key = SigningKey::from_bytes(&[9; 32]);
        // Nothing listens on port 9: the registration fails.
        let enrollment = Enrollment {
            site: "kita-hospital".into(),
            registry_url: "https://127.0.0.1:9".into(),
            pin: format!("sha256//{}", STANDARD.encode([0u8; 32])),
            signing_key: STANDARD.encode(key.verifying_key().to_bytes()),
            credential: "secret".into(),
            enrolled_unix: 1,
        };
        let client = Client::new(&enrollment.registry_url, &enrollment.pin).unwrap();
        let policy: Policy = serde_norway::from_str(include_str!("../../tests/fixtures/valid.yaml")).unwrap();
        let missing = vec!["radiology".parse().unwrap()];
        let payload = ViewPayload {
            format: FORMAT.into(),
            site: "kita-hospital".into(),
            version: 3,
            issued_unix: super::super::unix_now(),
            content_hash: ViewPayload::hash_content(&policy, &missing),
            missing_keys: missing,
            policy,
            key_switches: vec![],
        };
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let signed = SignedView::sign(&key, &payload);
        assert!(rt.block_on(accept(&cfg, &enrollment, &client, signed)).is_err());
        // Stored, the next poll would send its version and hash and get nothing: the keys would
        // never be registered. Not stored, the next poll gets the view again and retries.
        assert!(load_view(&cfg.view_path(), &enrollment).unwrap().is_none(), "view stored before its keys");
    }
}
