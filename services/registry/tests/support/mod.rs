//! What the registry's integration tests share: a real registry (TLS on loopback, SQLite or
//! PostgreSQL) and site routers, each with its own temporary state, using netd's real client code.
#![allow(dead_code)] // each test file uses a part

use std::path::{Path, PathBuf};
use std::time::Duration;

use kizuna_registry::server::{self, Running};
use kizuna_registry::{Db, RegistryConfig, policies, sites};
use netd::policy::Policy;
use netd::registry::RegistryError as ClientError;
use netd::registry::client::Client;
use netd::registry::enrollment::{Enrollment, view_policy};
use netd::registry::token::EnrollToken;
use netd::registry::watch::{self, Polled};
use netd::site::SiteConfig;

pub const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../netd/tests/fixtures/valid.yaml");

/// The netd fixture policy without keys (the registry's form), optionally edited.
pub fn policy_text(edit: impl FnOnce(&mut Policy)) -> String {
    let mut p: Policy = serde_norway::from_str(&std::fs::read_to_string(FIXTURE).unwrap()).unwrap();
    for s in &mut p.sites {
        s.keys.clear();
    }
    edit(&mut p);
    serde_norway::to_string(&p).unwrap()
}

pub struct Centre {
    pub dir: tempfile::TempDir,
    pub cfg: RegistryConfig,
    pub db: Db,
    pub running: Option<Running>,
}

impl Centre {
    pub async fn start(database_url: Option<String>) -> Centre {
        Self::start_with(database_url, Default::default()).await
    }

    pub async fn start_with(
        database_url: Option<String>,
        audit: kizuna_audit::emitter::SenderConfig,
    ) -> Centre {
        Self::start_configured(database_url, |c| c.audit = audit).await
    }

    /// A registry with its configuration edited by `edit` (before it starts).
    pub async fn start_configured(
        database_url: Option<String>,
        edit: impl FnOnce(&mut RegistryConfig),
    ) -> Centre {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = RegistryConfig {
            data_dir: dir.path().join("registry"),
            database_url: database_url.unwrap_or_default(),
            listen: "127.0.0.1:0".into(),
            change_poll_ms: 100,
            long_poll_max_secs: 30,
            ..Default::default()
        };
        edit(&mut cfg);
        let db = Db::open(&cfg.effective_database_url()).await.unwrap();
        policies::apply(&db, &policy_text(|_| {}), Path::new("policy.yaml"), "first", false).await.unwrap();
        let running = server::start(&cfg, db.clone()).await.unwrap();
        cfg.listen = running.addr.to_string();
        cfg.public_url = format!("https://{}", running.addr);
        Centre { dir, cfg, db, running: Some(running) }
    }

    pub fn pin(&self) -> String {
        self.running.as_ref().unwrap().pin.clone()
    }

    pub async fn token(&self, site: &str, ttl: u64) -> EnrollToken {
        sites::provision(&self.db, site, ttl, &self.cfg.public_url, &self.pin()).await.unwrap()
    }

    pub fn stop(&mut self) {
        self.running.take().unwrap().stop();
    }

    pub async fn restart(&mut self) {
        let running = server::start(&self.cfg, self.db.clone()).await.unwrap();
        self.running = Some(running);
    }
}

/// One site router's state directory and site file.
pub struct Site {
    pub _dir: tempfile::TempDir,
    pub config: PathBuf,
    pub cfg: SiteConfig,
}

impl Site {
    pub fn new(name: &str) -> Site {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("site.yaml");
        let text = format!(
            "site: {name}\nkey_dir: {}\nstate_dir: {}\n",
            dir.path().join("keys").display(),
            dir.path().join("state").display()
        );
        std::fs::write(&config, text).unwrap();
        let cfg = SiteConfig::load(&config).unwrap();
        Site { _dir: dir, config, cfg }
    }

    pub async fn enroll(&self, token: &EnrollToken) -> Result<netd::registry::enroll::Enrolled, ClientError> {
        netd::registry::enroll::enroll(&self.config, &token.encode()).await
    }

    pub fn enrollment(&self) -> Enrollment {
        Enrollment::load(&self.cfg.enrollment_path()).unwrap().expect("enrolled")
    }

    pub fn client(&self) -> Client {
        let e = self.enrollment();
        Client::new(&e.registry_url, &e.pin).unwrap()
    }

    pub async fn poll(&self, wait: Duration) -> Result<Polled, ClientError> {
        watch::poll_once(&self.cfg, &self.enrollment(), &self.client(), wait).await
    }

    /// Version and policy of the stored, verified view.
    pub fn view(&self) -> (u64, Policy) {
        let (v, p) = view_policy(&self.cfg).unwrap().expect("enrolled");
        (v, p.policy().clone())
    }

    /// The stored view's payload as signed (keys as listed, with their switch times).
    pub fn payload(&self) -> netd::registry::view::ViewPayload {
        netd::registry::enrollment::load_view(&self.cfg.view_path(), &self.enrollment()).unwrap().unwrap().0
    }

    pub fn peers(&self) -> Vec<String> {
        let (_, p) = self.view();
        p.sites.iter().map(|s| s.name.to_string()).filter(|n| n != self.cfg.site.as_str()).collect()
    }
}

pub async fn enroll_all(c: &Centre, names: &[&str]) -> Vec<Site> {
    let mut out = Vec::new();
    for n in names {
        let s = Site::new(n);
        s.enroll(&c.token(n, 3600).await).await.unwrap();
        out.push(s);
    }
    // Bring every earlier site up to date.
    for s in &out {
        while s.poll(Duration::ZERO).await.unwrap() != Polled::Nothing {}
    }
    out
}

/// A fresh database on the test PostgreSQL server, or None (skip) when there is none outside CI.
pub async fn postgres_database() -> Option<String> {
    kizuna_db::fresh_test_postgres("kizuna_registry_test").await
}
