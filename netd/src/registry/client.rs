//! HTTP client of the registry: reqwest over TLS pinned to the centre's key.

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::RegistryError;
use super::protocol::*;
use super::view::SignedView;

/// One registry, reached over pinned TLS.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
}

/// The whole cause chain of an error, so a pin mismatch deep inside TLS reaches the user.
pub(crate) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let m = s.to_string();
        if !out.contains(&m) {
            out.push_str(": ");
            out.push_str(&m);
        }
        cur = s.source();
    }
    out
}

impl Client {
    pub fn new(url: &str, pin: &str) -> Result<Self, RegistryError> {
        if !url.starts_with("https://") {
            return Err(RegistryError::Token(format!("registry URL {url:?} must start with https://")));
        }
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(super::tls::client_config(pin))
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| RegistryError::Unreachable { url: url.into(), reason: chain(&e) })?;
        Ok(Self { http, base: url.trim_end_matches('/').to_string() })
    }

    fn unreachable(&self, e: &reqwest::Error) -> RegistryError {
        RegistryError::Unreachable { url: self.base.clone(), reason: chain(e) }
    }

    async fn decode<T: DeserializeOwned>(&self, resp: reqwest::Response) -> Result<T, RegistryError> {
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| self.unreachable(&e))?;
        if !status.is_success() {
            let message = serde_json::from_slice::<ErrorBody>(&bytes)
                .map(|b| b.error)
                .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).into_owned());
            return Err(RegistryError::Refused { status: status.as_u16(), message });
        }
        serde_json::from_slice(&bytes).map_err(|e| RegistryError::Refused {
            status: status.as_u16(),
            message: format!("unreadable answer: {e}"),
        })
    }

    async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
        bearer: Option<&str>,
    ) -> Result<T, RegistryError> {
        let mut req =
            self.http.post(format!("{}{path}", self.base)).json(body).timeout(Duration::from_secs(30));
        if let Some(b) = bearer {
            req = req.bearer_auth(b);
        }
        let resp = req.send().await.map_err(|e| self.unreachable(&e))?;
        self.decode(resp).await
    }

    pub async fn preview(&self, req: &PreviewRequest) -> Result<PreviewResponse, RegistryError> {
        self.post(PATH_PREVIEW, req, None).await
    }

    pub async fn enroll(&self, req: &EnrollRequest) -> Result<EnrollResponse, RegistryError> {
        self.post(PATH_ENROLL, req, None).await
    }

    pub async fn register_keys(
        &self,
        credential: &str,
        req: &KeysRequest,
    ) -> Result<KeysResponse, RegistryError> {
        self.post(PATH_KEYS, req, Some(credential)).await
    }

    /// Long-poll the site's view: the answer comes when the view differs from `have` (content
    /// hash) at a version above `after`, or `None` after about `wait` with nothing new.
    pub async fn view(
        &self,
        credential: &str,
        after: Option<u64>,
        have: Option<&str>,
        wait: Duration,
    ) -> Result<Option<SignedView>, RegistryError> {
        let mut query: Vec<(&str, String)> = vec![("wait", wait.as_secs().to_string())];
        if let Some(a) = after {
            query.push(("after", a.to_string()));
        }
        if let Some(h) = have {
            query.push(("have", h.to_string()));
        }
        let resp = self
            .http
            .get(format!("{}{PATH_VIEW}", self.base))
            .query(&query)
            .bearer_auth(credential)
            .timeout(wait + Duration::from_secs(20))
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        if resp.status() == reqwest::StatusCode::NO_CONTENT {
            return Ok(None);
        }
        self.decode(resp).await.map(Some)
    }
}
