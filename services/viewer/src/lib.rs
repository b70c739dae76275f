//! The clinicians' viewer (`kizuna viewer serve`): one patient's records from every facility, as a
//! time series and a calendar, with the original messages, under the patient's consent, behind
//! OpenID Connect login. See README.md.
//!
//! - [`config`]: the YAML configuration;
//! - [`access`]: the logged-in user and what they may see of a patient (consent, break glass);
//! - [`timeline`]: a patient's records from the store's IndexDB; [`calendar`]: the month grid;
//! - [`message`]: the original SS-MIX2 message from the store's tree;
//! - [`audit`]: an audit event for every search, view and login;
//! - [`session`] and [`oidc`]: browser sessions and the relying party (both from `kizuna-oidc-rp`);
//! - [`web`]: the routes and pages.

pub mod access;
pub mod audit;
pub mod calendar;
pub mod config;
mod error;
pub mod message;
pub mod oidc;
pub mod session;
pub mod timeline;
pub mod web;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub use config::Config;
pub use error::ViewerError;

/// The running viewer: what every request handler needs.
pub struct Viewer {
    pub config: Config,
    /// The store's IndexDB (read only).
    pub store: kizuna_store::Db,
    /// The linkage registry: common health IDs, consent, break-glass grants.
    pub registry: kizuna_index::Registry,
    pub audit: audit::Audit,
    pub sessions: session::Sessions,
    /// Logins in progress, kept in a signed cookie of the browser that started them.
    pub login_cookies: kizuna_oidc_rp::LoginCookies,
    relying_party: tokio::sync::OnceCell<kizuna_oidc_rp::RelyingParty>,
}

impl Viewer {
    /// Opens the databases. The store's data folder must hold a store ([`Config::check_store`]):
    /// the viewer never creates one. The OpenID Connect provider is discovered at the first
    /// login, so the viewer may start before the provider does.
    pub async fn open(config: Config, audit: audit::Audit) -> Result<Arc<Self>, ViewerError> {
        config.check_store()?;
        let store = kizuna_store::Db::open(&config.effective_store_database_url()).await?;
        let registry = kizuna_index::Registry::open(&config.index_database_url).await?;
        let sessions = session::sessions(
            Duration::from_secs(config.session_minutes * 60),
            Duration::from_secs(config.session_idle_minutes * 60),
        );
        Ok(Arc::new(Self {
            config,
            store,
            registry,
            audit,
            sessions,
            login_cookies: kizuna_oidc_rp::LoginCookies::new(session::LOGIN_COOKIE),
            relying_party: tokio::sync::OnceCell::new(),
        }))
    }

    /// The provider, discovered once (retried on the next login if it failed).
    pub async fn relying_party(&self) -> Result<&kizuna_oidc_rp::RelyingParty, ViewerError> {
        if self.config.oidc.issuer.is_empty() {
            return Err(ViewerError::Login("oidc.issuer is not configured".into()));
        }
        let reg = oidc::registration(&self.config);
        Ok(self.relying_party.get_or_try_init(|| kizuna_oidc_rp::RelyingParty::discover(&reg)).await?)
    }
}

/// Serves the viewer on `listener` until `shutdown` resolves.
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    viewer: Arc<Viewer>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ViewerError> {
    let addr = listener.local_addr().map_err(|e| ViewerError::io(std::path::Path::new("listener"), e))?;
    tracing::info!(%addr, public_url = %viewer.config.base_url(), "viewer listening");
    let app = web::router(viewer).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| ViewerError::io(std::path::Path::new("listener"), e))
}
