//! The demo's last step: single sign-on (`kizuna-auth`) and the viewer on the centre's data, with
//! two demo users, a consent for the demo patient, and the login URL and credentials printed.

use std::path::Path;

use anyhow::Context;
use kizuna_auth::{AuthConfig, NewClient, NewUser, Role, Server};
use kizuna_index::{CommonId, ConsentPolicy, FacilityCode, Registry};
use kizuna_viewer::{Config, Viewer, audit::Audit};

/// The demo users' password (the provider wants at least 10 characters).
const PASSWORD: &str = "kizuna-demo-2026";

/// Starts the provider and the viewer, prints how to log in, and serves until Ctrl-C when
/// `keep_serving` (an interactive run); otherwise stops them again.
pub async fn serve(
    data: &Path,
    store_data_dir: &Path,
    index_url: &str,
    facilities: &[String],
    patient: &CommonId,
    keep_serving: bool,
) -> anyhow::Result<()> {
    let (home, other) = match facilities {
        [a, b, ..] => (a.as_str(), b.as_str()),
        _ => anyhow::bail!("the demo needs two facilities"),
    };
    let reg = Registry::open(index_url).await?;
    let consent = ConsentPolicy::Listed([FacilityCode::parse(home)?].into());
    reg.set_consent(patient, &consent, "demo-clerk", "demo: signed consent form").await?;
    reg.db().pool.close().await;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    // Logins, logouts and the viewer's searches and views go to the demo's audit log; they wait in
    // spools until `kizuna audit serve` (printed above) runs on its port.
    let audit_base = format!("http://{}", super::audit_trail::AUDIT_LISTEN);
    let auth_config =
        AuthConfig { audit_url: Some(audit_base.clone()), ..AuthConfig::local(&data.join("sso"))? };
    let auth = Server::start(auth_config).await.context("starting single sign-on")?;
    let creds = auth
        .directory()
        .add_client(&NewClient {
            client_id: "kizuna-viewer".into(),
            name: "Kizuna viewer".into(),
            redirect_uris: vec![format!("{base}/auth/callback")],
            post_logout_redirect_uris: vec![format!("{base}/")],
            sector: "viewer".into(),
            confidential: true,
        })
        .await?;
    let secret_file = data.join("sso/viewer-client-secret");
    super::write_secret(
        &secret_file,
        creds.client_secret.as_deref().context("a confidential client has a secret")?,
    )?;
    let mut users = Vec::new();
    for (username, name, facility) in
        [("doctor", "Dr. Sato (demo)", home), ("nurse", "Nurse Abe (demo)", other)]
    {
        auth.directory()
            .add_user(&NewUser {
                username: username.into(),
                display_name: name.into(),
                facility: facility.into(),
                roles: vec![if username == "doctor" { Role::Physician } else { Role::Nurse }],
                password: PASSWORD.into(),
            })
            .await?;
        users.push((username, facility, auth.directory().enroll_totp(username).await?));
    }

    let mut config = Config {
        public_url: base.clone(),
        store_data_dir: store_data_dir.to_owned(),
        index_database_url: index_url.to_owned(),
        secure_cookies: false,
        ..Default::default()
    };
    config.oidc.issuer = auth.issuer().to_owned();
    config.oidc.client_secret_file = secret_file;
    config.audit.url = format!("{audit_base}/v1/events");
    let audit = Audit::from_config(&config).context("the viewer's audit spool")?;
    let spool = config.audit_spool_dir();
    let viewer = Viewer::open(config, audit).await.context("opening the viewer")?;
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let server = tokio::spawn(kizuna_viewer::serve_on(listener, viewer, async move {
        let _ = stop_rx.wait_for(|s| *s).await;
    }));

    println!();
    println!("viewer: {base}/   (single sign-on at {})", auth.issuer());
    for (username, facility, secret) in &users {
        println!(
            "  user {username:<7} password {PASSWORD}  facility {facility}  TOTP secret {secret}  (code now: {})",
            kizuna_auth::totp::code_now(secret)?
        );
        println!("      {}", kizuna_auth::totp::provisioning_uri(secret, "Kizuna", username)?);
    }
    println!(
        "  search common health ID {patient}: its consent lets facility {home} (doctor) see every facility's records;"
    );
    println!("  the nurse at {other} sees only her own facility's records of this patient");
    println!(
        "  (a TOTP code works once; an authenticator app or `oathtool --totp -b SECRET` gives the next one)"
    );
    println!(
        "  logins and every search and view are audited: the events wait in {} (and the sign-on's spool \
         under {}) until the audit service above runs on {audit_base}",
        spool.display(),
        data.join("sso").display()
    );
    if keep_serving {
        println!("serving until Ctrl-C");
        let _ = tokio::signal::ctrl_c().await;
    }
    let _ = stop_tx.send(true);
    server.await?.context("viewer")?;
    auth.shutdown().await;
    Ok(())
}
