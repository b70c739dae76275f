//! The agent's side of the `kizuna-wire` protocol: HTTP requests to the store.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use kizuna_wire::{BATCH_CONTENT_TYPE, BatchReport, DailyLog, Heartbeat, HeartbeatAnswer};

use crate::AgentError;
use crate::bandwidth::TokenBucket;
use crate::config::Config;

/// Size of the body pieces handed to the connection (and drawn from the bandwidth bucket).
pub const CHUNK: usize = 16 * 1024;

/// The site's bearer token. Its `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl Token {
    /// Reads a token file, refusing one that group or others may read.
    pub fn read(path: &Path) -> Result<Self, AgentError> {
        let bad = |problem: String| AgentError::Token { path: path.to_owned(), problem };
        let text = kizuna_config::secret::read_private(path).map_err(|e| bad(e.to_string()))?;
        let token = text.trim();
        if token.is_empty() {
            return Err(bad("is empty".into()));
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(bad("holds characters that cannot go in an HTTP header".into()));
        }
        Ok(Self(token.to_owned()))
    }
}

/// Why a request to the store failed.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("store unreachable: {0}")]
    Network(String),
    #[error("store answered {status}: {body}")]
    Status { status: u16, body: String },
    #[error("store's answer does not follow the protocol: {0}")]
    Protocol(String),
}

impl SendError {
    /// True for answers that retrying will not fix without an operator (bad token, wrong facility).
    pub fn needs_operator(&self) -> bool {
        matches!(self, SendError::Status { status, .. } if (400..500).contains(status) && *status != 408 && *status != 429)
    }
}

/// An HTTP client for one store, facility and token.
pub struct StoreClient {
    client: reqwest::Client,
    base: String,
    facility: String,
    /// The token in use; re-read from `token_file` when the store answers 401 (token rotation).
    token: std::sync::RwLock<Token>,
    token_file: std::path::PathBuf,
    bucket: Option<Arc<TokenBucket>>,
}

impl StoreClient {
    pub fn new(cfg: &Config, token: Token) -> Result<Self, AgentError> {
        let mut builder = reqwest::Client::builder()
            .timeout(Duration::from_secs(cfg.request_timeout_secs))
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("kizuna-agent/", env!("CARGO_PKG_VERSION")));
        if let Some(dev) = &cfg.bind_interface {
            builder = builder.interface(dev);
        }
        if let Some(ca) = &cfg.store_ca_file {
            let pem = std::fs::read(ca).map_err(|e| AgentError::io(ca, e))?;
            let cert = reqwest::Certificate::from_pem(&pem).map_err(|e| AgentError::Config {
                file: ca.clone(),
                message: format!("not a PEM certificate: {e}"),
            })?;
            builder = builder.add_root_certificate(cert);
        }
        let client = builder.build().map_err(|e| AgentError::Http(e.to_string()))?;
        let bucket = cfg.bandwidth_limit_bytes_per_sec.map(|rate| Arc::new(TokenBucket::new(rate, CHUNK)));
        Ok(Self {
            client,
            base: cfg.store_url.trim_end_matches('/').to_owned(),
            facility: cfg.facility.clone(),
            token: std::sync::RwLock::new(token),
            token_file: cfg.token_file.clone(),
            bucket,
        })
    }

    /// Sends one framed batch and returns the store's report, checked to answer every file in order.
    pub async fn send_batch(&self, body: Vec<u8>, paths: &[String]) -> Result<BatchReport, SendError> {
        let url = format!("{}/api/v1/facilities/{}/batches", self.base, self.facility);
        let body = match &self.bucket {
            None => reqwest::Body::from(body),
            Some(bucket) => paced_body(body, bucket.clone()),
        };
        let req = self.client.post(url).header(reqwest::header::CONTENT_TYPE, BATCH_CONTENT_TYPE).body(body);
        let report: BatchReport = self.send_json(req).await?;
        if report.results.len() != paths.len() {
            return Err(SendError::Protocol(format!(
                "{} results for {} files",
                report.results.len(),
                paths.len()
            )));
        }
        for (r, p) in report.results.iter().zip(paths) {
            if &r.path != p {
                return Err(SendError::Protocol(format!("result for {:?} where {p:?} was sent", r.path)));
            }
        }
        Ok(report)
    }

    /// Sends a heartbeat; the answer carries the operators' re-requests (an older store's
    /// `{"ok":true}` reads as none).
    pub async fn send_heartbeat(&self, hb: &Heartbeat) -> Result<HeartbeatAnswer, SendError> {
        let req = self.client.post(format!("{}/api/v1/heartbeat", self.base)).json(hb);
        self.send_json::<HeartbeatAnswer>(req).await
    }

    pub async fn send_daily_log(&self, log: &DailyLog) -> Result<(), SendError> {
        let req = self.client.post(format!("{}/api/v1/daily-log", self.base)).json(log);
        self.send_json::<serde_json::Value>(req).await.map(drop)
    }

    async fn send_json<T: serde::de::DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<T, SendError> {
        let resp = req
            .bearer_auth(self.current_token().0)
            .send()
            .await
            .map_err(|e| SendError::Network(error_chain(&e)))?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| SendError::Network(error_chain(&e)))?;
        if status == reqwest::StatusCode::UNAUTHORIZED {
            self.reload_token();
        }
        if !status.is_success() {
            let body: String = String::from_utf8_lossy(&bytes).chars().take(300).collect();
            return Err(SendError::Status { status: status.as_u16(), body });
        }
        if bytes.is_empty() {
            return serde_json::from_slice(b"null").map_err(|e| SendError::Protocol(e.to_string()));
        }
        serde_json::from_slice(&bytes).map_err(|e| SendError::Protocol(e.to_string()))
    }
}

impl StoreClient {
    fn current_token(&self) -> Token {
        self.token.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// After a 401, picks up a rotated token from the token file (the next retry uses it).
    fn reload_token(&self) {
        match Token::read(&self.token_file) {
            Ok(t) => {
                let mut cur = self.token.write().unwrap_or_else(|p| p.into_inner());
                if *cur != t {
                    tracing::info!(file = %self.token_file.display(), "token file changed; using the new token");
                    *cur = t;
                }
            }
            Err(e) => tracing::warn!("{e}"),
        }
    }
}

/// The error and its causes on one line (reqwest's top-level message alone says little).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// A body that draws each chunk from the bandwidth bucket before it is sent.
fn paced_body(body: Vec<u8>, bucket: Arc<TokenBucket>) -> reqwest::Body {
    let body = Arc::new(body);
    let stream = futures::stream::unfold(0usize, move |off| {
        let body = body.clone();
        let bucket = bucket.clone();
        async move {
            if off >= body.len() {
                return None;
            }
            let end = (off + CHUNK).min(body.len());
            bucket.take(end - off).await;
            Some((Ok::<_, std::io::Error>(body[off..end].to_vec()), end))
        }
    });
    reqwest::Body::wrap_stream(stream)
}
