//! Wiring: open the database, load the centre key and the pairwise salt, bind HTTP, start audit
//! delivery. [`Server::start`] is what `kizuna auth serve` and in-process tests call.

use crate::api::{AppState, router};
use crate::audit::AuditHook;
use crate::config::{AuthConfig, read_token};
use crate::directory::Directory;
use crate::error::{AuthError, Result};
use crate::jws::TokenSigner;
use crate::keys::load_secret;
use std::net::SocketAddr;
use std::sync::Arc;

/// The OpenID Connect provider.
pub struct Server;

/// A running provider.
pub struct RunningServer {
    pub addr: SocketAddr,
    issuer: String,
    directory: Directory,
    audit: Option<AuditHook>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Server {
    /// Start serving `cfg`. With an empty `issuer` the issuer is `http://<bound address>`.
    pub async fn start(cfg: AuthConfig) -> Result<RunningServer> {
        // `AuthConfig::load` made these checks already; a configuration built in code gets them
        // here (a listener beyond loopback without an issuer is refused).
        cfg.validate(std::path::Path::new("(auth configuration)"))?;
        let signer = TokenSigner::new(&load_secret(&cfg.signing_key_file)?);
        let salt = load_secret(&cfg.pairwise_salt_file)?;
        let audit_token = match (&cfg.audit_url, &cfg.audit_token_file) {
            (Some(_), Some(f)) => Some(read_token(f)?),
            _ => None,
        };
        let directory = Directory::open(&cfg.database_url()).await?;
        let listener = if cfg.http_bind_interface.is_empty() {
            tokio::net::TcpListener::bind(&cfg.http_listen)
                .await
                .map_err(|e| AuthError::io(&cfg.http_listen, e))?
        } else {
            let addr = cfg.http_listen.parse().map_err(|_| {
                AuthError::invalid("http_listen", "must be IP:port when http_bind_interface is set")
            })?;
            kizuna_listen::listen(addr, &cfg.http_bind_interface)
                .map_err(|e| AuthError::io(&e.what, e.source))?
        };
        let addr = listener.local_addr().map_err(|e| AuthError::io(&cfg.http_listen, e))?;
        let issuer = if cfg.issuer.is_empty() {
            format!("http://{addr}")
        } else {
            cfg.issuer.trim_end_matches('/').to_string()
        };
        let secure_cookies = cfg.secure_cookies.unwrap_or(issuer.starts_with("https://"));
        let mut tasks = Vec::new();
        let audit = match &cfg.audit_url {
            Some(url) => {
                let hook = AuditHook::new(url, audit_token, &cfg.data_dir.join("audit-spool"))?;
                tasks.extend(hook.spawn(directory.db().clone()));
                Some(hook)
            }
            None => {
                tracing::warn!(
                    "audit_url is not set: logins are only logged, pairwise ids are not registered"
                );
                None
            }
        };
        let state = AppState {
            dir: directory.clone(),
            signer,
            salt,
            issuer: issuer.clone(),
            cfg: Arc::new(cfg),
            secure_cookies,
            audit: audit.clone(),
        };
        let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
        tasks.push(tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "HTTP server stopped");
            }
        }));
        tracing::info!(%addr, issuer, secure_cookies, "auth service listening");
        Ok(RunningServer { addr, issuer, directory, audit, tasks })
    }
}

impl RunningServer {
    /// The issuer URL (also the base URL of every endpoint), without a trailing slash.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Users and clients of this provider (to create them in tests and demos).
    pub fn directory(&self) -> &Directory {
        &self.directory
    }

    /// Register pending pairwise ids with the audit service now (tests; the service also retries
    /// on its own). Returns how many were registered; 0 without an audit service.
    pub async fn register_pseudonyms(&self) -> Result<usize> {
        match &self.audit {
            Some(a) => a.register_pending(self.directory.db()).await,
            None => Ok(0),
        }
    }

    /// Stop serving and close the database.
    pub async fn shutdown(self) {
        for t in &self.tasks {
            t.abort();
        }
        for t in self.tasks {
            let _ = t.await;
        }
        self.directory.db().pool.close().await;
    }

    /// Run until the process is stopped (the CLI).
    pub async fn wait(self) {
        for t in self.tasks {
            let _ = t.await;
        }
    }
}
