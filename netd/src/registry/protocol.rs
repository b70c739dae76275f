//! The registry's HTTP API as seen on the wire (JSON bodies), shared by the registry server
//! and netd so both sides speak one definition.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::policy::{PublicKey, SegmentName};

pub const PATH_HEALTH: &str = "/v1/health";
pub const PATH_PREVIEW: &str = "/v1/enroll/preview";
pub const PATH_ENROLL: &str = "/v1/enroll";
pub const PATH_VIEW: &str = "/v1/view";
pub const PATH_KEYS: &str = "/v1/keys";

/// Ask which segments the token's site needs keys for; does not use the token up.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreviewRequest {
    pub site: String,
    pub secret: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreviewResponse {
    pub site: String,
    pub segments: Vec<SegmentName>,
    /// The centre's ed25519 view-signing key (base64).
    pub signing_key: String,
}

/// Use the token up: register the site's public keys, receive its credential.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    pub site: String,
    pub secret: String,
    pub keys: BTreeMap<SegmentName, PublicKey>,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollResponse {
    pub site: String,
    /// Bearer secret for every later request (the registry keeps only its hash).
    pub credential: String,
    pub signing_key: String,
    pub version: u64,
}

/// Register new or rotated public keys (bearer-authenticated).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysRequest {
    pub keys: BTreeMap<SegmentName, PublicKey>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysResponse {
    pub version: u64,
    /// When every router switches to the rotated keys (UNIX seconds, the registry's clock);
    /// absent when no key replaced another (keys for new segments).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub switch_unix: Option<u64>,
}

/// Body of every error answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}
