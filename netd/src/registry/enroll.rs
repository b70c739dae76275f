//! `netd enroll TOKEN`: first boot of a site router. Generates the site's WireGuard keys on
//! the appliance (mode 0600, never printed or logged), reaches the registry over TLS pinned
//! to the centre's key, registers the public keys, keeps the credential (mode 0600) and
//! fetches the first signed view. A view left from an earlier enrollment is removed first.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use super::client::Client;
use super::enrollment::{Enrollment, remove_view, save_view, write_file};
use super::protocol::{EnrollRequest, PreviewRequest};
use super::token::EnrollToken;
use super::view::check_freshness;
use super::{RegistryError, unix_now};
use crate::site::{DEFAULT_CONFIG, SiteConfig};

/// What `netd enroll` did.
#[derive(Debug)]
pub struct Enrolled {
    pub site: String,
    pub segments: Vec<String>,
    /// Version of the first view, when the registry could already give one.
    pub view_version: Option<u64>,
    /// Why there is no view yet (for example: the centre has not enrolled).
    pub view_pending: Option<String>,
}

/// The site file for `site`, or a new one written from the defaults when `config` is missing.
fn site_config(config: &Path, site: &str) -> Result<SiteConfig, RegistryError> {
    if !config.exists() {
        let text = DEFAULT_CONFIG.replace("site: my-site", &format!("site: {site}"));
        write_file(config, text.as_bytes(), 0o644)?;
        tracing::info!(path = %config.display(), "wrote a site file");
    }
    let cfg = SiteConfig::load(config)?;
    if cfg.site.as_str() != site {
        return Err(RegistryError::Token(format!(
            "the token enrolls site {site:?}, but {} says this router is {:?}",
            config.display(),
            cfg.site.as_str()
        )));
    }
    Ok(cfg)
}

pub async fn enroll(config: &Path, token_text: &str) -> Result<Enrolled, RegistryError> {
    let token = EnrollToken::decode(token_text)?;
    // The token is unauthenticated JSON: its site must be a valid name (no newline can reach
    // the site file written below) and it must not have expired before anything is written.
    let site: crate::policy::SiteName = token.site.parse().map_err(RegistryError::Token)?;
    if token.expires_unix <= unix_now() {
        return Err(RegistryError::Token(format!(
            "the token for site {:?} expired at {} (UNIX time); ask the centre for a new one (`kizuna site provision {}`)",
            token.site, token.expires_unix, token.site
        )));
    }
    let cfg = site_config(config, site.as_str())?;
    if let Some(e) = Enrollment::load(&cfg.enrollment_path())? {
        return Err(RegistryError::Token(format!(
            "this router is already enrolled as site {:?} with {}; remove {} to enroll again",
            e.site,
            e.registry_url,
            cfg.enrollment_path().display()
        )));
    }
    let client = Client::new(&token.url, &token.pin)?;
    let preview =
        client.preview(&PreviewRequest { site: token.site.clone(), secret: token.secret.clone() }).await?;
    let mut keys = BTreeMap::new();
    for seg in &preview.segments {
        let key = crate::keys::load_or_generate(&cfg.key_dir, seg)?;
        keys.insert(seg.clone(), key.public());
    }
    // A view kept from an earlier enrollment (another registry, another signing key) would be
    // checked against the new key and fail: it goes before the token is used up.
    remove_view(&cfg.view_path())?;
    let resp = client
        .enroll(&EnrollRequest { site: token.site.clone(), secret: token.secret.clone(), keys })
        .await?;
    if resp.signing_key != preview.signing_key {
        return Err(RegistryError::View("the registry changed its signing key during enrollment".into()));
    }
    let enrollment = Enrollment {
        site: resp.site.clone(),
        registry_url: token.url.clone(),
        pin: token.pin.clone(),
        signing_key: resp.signing_key.clone(),
        credential: resp.credential.clone(),
        enrolled_unix: unix_now(),
    };
    enrollment.save(&cfg.enrollment_path())?;
    tracing::info!(site = %enrollment.site, registry = %enrollment.registry_url, "enrolled");
    let mut out = Enrolled {
        site: enrollment.site.clone(),
        segments: preview.segments.iter().map(|s| s.to_string()).collect(),
        view_version: None,
        view_pending: None,
    };
    match client.view(&enrollment.credential, None, None, Duration::ZERO).await {
        Ok(Some(signed)) => {
            let payload = signed.verify(&enrollment.verifying_key()?).map_err(RegistryError::View)?;
            check_freshness(&payload, &signed, &enrollment.site, None).map_err(RegistryError::View)?;
            payload.valid_policy().map_err(RegistryError::View)?;
            save_view(&cfg.view_path(), &signed)?;
            out.view_version = Some(payload.version);
        }
        Ok(None) => out.view_pending = Some("the registry has no view for this site yet".into()),
        Err(e) => out.view_pending = Some(e.to_string()),
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(site: &str, expires_unix: u64) -> String {
        EnrollToken {
            url: "https://127.0.0.1:9".into(),
            pin: "sha256//AAAA".into(),
            site: site.into(),
            expires_unix,
            secret: "c2VjcmV0".into(),
        }
        .encode()
    }

    fn enroll_now(config: &Path, token: &str) -> Result<Enrolled, RegistryError> {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(enroll(config, token))
    }

    #[test]
    fn a_token_site_name_is_validated_and_its_expiry_checked_before_a_site_file_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("site.yaml");
        // A name from the token's unauthenticated JSON must not inject keys into the site file.
        let injected = "kita\nadmit_underlay: [{ proto: tcp, port: 22 }]";
        let err = enroll_now(&config, &token(injected, u64::MAX)).unwrap_err().to_string();
        assert!(err.contains("invalid site name"), "{err}");
        assert!(!config.exists(), "a site file was written from a bad token");
        let err = enroll_now(&config, &token("kita-hospital", 1)).unwrap_err().to_string();
        assert!(err.contains("expired"), "{err}");
        assert!(!config.exists(), "a site file was written from an expired token");
    }
}
