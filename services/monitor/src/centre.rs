//! The centre's own health as the monitor sees it: the store's `/healthz` (the `store_down`
//! rule). A store that is down makes every site look silent after `dead_man.hours`; asking it
//! directly notices the outage within one check and names the centre, not the sites.

use crate::config::Config;

/// `Ok` when the store's `/healthz` answers 200, else why not (unreachable, 503 with its body).
pub async fn store_health(cfg: &Config) -> Result<(), String> {
    let store = cfg.store().map_err(|e| format!("cannot read the store's config: {e}"))?;
    let Some(url) = cfg.store_healthz_url(&store) else {
        static SAID: std::sync::Once = std::sync::Once::new();
        SAID.call_once(|| {
            tracing::warn!(
                bind_interface = %store.bind_interface,
                "rules.store_down cannot reach a store bound to a device; set store_url to an address \
                 the monitor reaches (the IndexDB checks go on)"
            );
        });
        return Ok(());
    };
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())?;
    let resp = match client.get(&url).send().await {
        Ok(r) => r,
        Err(e) => {
            return Err(format!(
                "the store does not answer at {url}: {}",
                kizuna_oidc_rp::relying_party::error_chain(&e)
            ));
        }
    };
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    let body = resp.text().await.unwrap_or_default();
    let body: String = body.chars().filter(|c| !c.is_control()).take(300).collect();
    Err(format!("the store's {url} answered {status}: {body}"))
}
