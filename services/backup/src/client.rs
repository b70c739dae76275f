//! The primary's HTTP client for one replica.

use std::time::Duration;

use reqwest::StatusCode;

use crate::BackupError;
use crate::batch::{Ack, CONTENT_TYPE};
use crate::config::{ReplicaTarget, read_token};
use crate::linkage::{self, LinkageState};
use crate::merkle::Summary;
use crate::replica::digests::{Check, DigestRequest};

/// How a batch was answered.
#[derive(Debug)]
pub enum Sent {
    /// Durable on the replica.
    Acked(Ack),
    /// The replica holds something else than the batch assumed: resend from its position.
    Gap(Ack),
}

/// An `http://` URL whose host is not this host's loopback.
pub fn plain_beyond_loopback(url: &str) -> bool {
    let Ok(u) = reqwest::Url::parse(url) else { return false };
    let loopback = match u.host() {
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    };
    u.scheme() == "http" && !loopback
}

/// A replica as the primary sees it.
pub struct ReplicaClient {
    pub name: String,
    base: String,
    token: String,
    http: reqwest::Client,
}

impl ReplicaClient {
    pub fn new(target: &ReplicaTarget, timeout: Duration) -> Result<Self, BackupError> {
        let token = read_token(&target.token_file)?;
        let mut builder =
            reqwest::Client::builder().timeout(timeout).connect_timeout(Duration::from_secs(10));
        if !target.ca_file.as_os_str().is_empty() {
            // Only these: a public CA's certificate for the same name is not the replica's.
            builder = builder.tls_built_in_root_certs(false);
            for cert in crate::tls::trusted(&target.ca_file)? {
                builder = builder.add_root_certificate(cert);
            }
        } else if plain_beyond_loopback(&target.url) {
            tracing::warn!(
                replica = %target.name,
                url = %target.url,
                "replication in plain HTTP beyond this host: batches carry patient data; serve the replica over \
                 HTTPS (replica.tls_cert_file) and use an https:// url"
            );
        }
        let http = builder.build().map_err(|e| BackupError::replica(&target.name, e))?;
        Ok(Self { name: target.name.clone(), base: target.url.trim_end_matches('/').to_owned(), token, http })
    }

    /// A failed request, with its causes: reqwest's own message ("error sending request for url")
    /// hides why (a refused certificate, a refused connection).
    fn net(&self, e: reqwest::Error) -> BackupError {
        let mut text = e.to_string();
        let mut cause = std::error::Error::source(&e);
        while let Some(c) = cause {
            text.push_str(": ");
            text.push_str(&c.to_string());
            cause = c.source();
        }
        self.err(text)
    }

    fn err(&self, e: impl std::fmt::Display) -> BackupError {
        BackupError::replica(&self.name, e)
    }

    /// What the replica holds durably.
    pub async fn state(&self) -> Result<Ack, BackupError> {
        self.get_json("state", "state").await
    }

    /// Sends one encoded batch.
    pub async fn send(&self, body: Vec<u8>) -> Result<Sent, BackupError> {
        let r = self
            .http
            .post(format!("{}/api/v1/batches", self.base))
            .bearer_auth(&self.token)
            .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
            .body(body)
            .send()
            .await
            .map_err(|e| self.net(e))?;
        let status = r.status();
        if status.is_success() {
            return Ok(Sent::Acked(r.json().await.map_err(|e| self.net(e))?));
        }
        let text = r.text().await.unwrap_or_default();
        if status == StatusCode::CONFLICT
            && let Ok(v) = serde_json::from_str::<serde_json::Value>(&text)
            && v["error"] == "gap"
        {
            return Ok(Sent::Gap(serde_json::from_value(v).map_err(|e| self.err(e))?));
        }
        Err(self.err(format!("batch: HTTP {status}: {text}")))
    }

    /// The linkage database snapshot the replica holds.
    pub async fn linkage_state(&self) -> Result<LinkageState, BackupError> {
        self.get_json("linkage", "linkage state").await
    }

    /// Sends a linkage database snapshot: `file` is its zstd-compressed form, `sha256` the
    /// uncompressed database's. Streamed from the file, with an hour's time limit (a snapshot may
    /// be large).
    pub async fn put_linkage(
        &self,
        file: &std::path::Path,
        sha256: &str,
        taken_at: &str,
    ) -> Result<LinkageState, BackupError> {
        let body = tokio::fs::File::open(file).await.map_err(|e| BackupError::io(file, e))?;
        let r = self
            .http
            .put(format!("{}/api/v1/linkage", self.base))
            .bearer_auth(&self.token)
            .timeout(Duration::from_secs(3600))
            .header(reqwest::header::CONTENT_TYPE, linkage::CONTENT_TYPE)
            .header(linkage::SHA256_HEADER, sha256)
            .header(linkage::TAKEN_AT_HEADER, taken_at)
            .body(reqwest::Body::from(body))
            .send()
            .await
            .map_err(|e| self.net(e))?;
        self.answer(r, "linkage snapshot").await
    }

    /// The replica's summary of one directory.
    pub async fn digests(&self, prefix: &str, check: Check) -> Result<Summary, BackupError> {
        let r = self
            .http
            .post(format!("{}/api/v1/digests", self.base))
            .bearer_auth(&self.token)
            .json(&DigestRequest { prefix: prefix.to_owned(), check })
            .send()
            .await
            .map_err(|e| self.net(e))?;
        self.answer(r, &format!("digests {prefix:?}")).await
    }

    /// `GET /api/v1/{path}`, answered with JSON.
    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        what: &str,
    ) -> Result<T, BackupError> {
        let r = self
            .http
            .get(format!("{}/api/v1/{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| self.net(e))?;
        self.answer(r, what).await
    }

    /// A success's JSON body, or an error naming `what`, the HTTP status and the replica's words.
    async fn answer<T: serde::de::DeserializeOwned>(
        &self,
        r: reqwest::Response,
        what: &str,
    ) -> Result<T, BackupError> {
        let status = r.status();
        if !status.is_success() {
            return Err(self.err(format!("{what}: HTTP {status}: {}", r.text().await.unwrap_or_default())));
        }
        r.json().await.map_err(|e| self.net(e))
    }
}

#[cfg(test)]
mod tests {
    use super::plain_beyond_loopback;

    /// The follower warns of plain HTTP only when it leaves the host.
    #[test]
    fn plain_http_is_flagged_only_beyond_loopback() {
        for url in ["http://10.0.0.2:8450", "http://dr.centre.example:8450/", "http://[2001:db8::2]:8450"] {
            assert!(plain_beyond_loopback(url), "{url}");
        }
        for url in
            ["http://127.0.0.1:8450", "http://localhost:8450", "http://[::1]:8450", "https://10.0.0.2:8450"]
        {
            assert!(!plain_beyond_loopback(url), "{url}");
        }
    }
}
