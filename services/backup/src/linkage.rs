//! The linkage database (`kizuna-index`: common health IDs, consent, break-glass grants) on the
//! replicas. The tree and journal travel entry by entry; the linkage database travels as whole,
//! consistent snapshots (`VACUUM INTO` on the primary, zstd on the wire), each installed on the
//! replica as `DATA_DIR/linkage.sqlite`: the file a centre running on that folder (after
//! `kizuna backup promote`) links and discloses with. The follower takes a snapshot only when the
//! database changed (`PRAGMA data_version`), and sends it to each replica that does not hold it yet.

use serde::{Deserialize, Serialize};

/// The linkage database's name in a data folder (the store's, and a replica's).
pub const LINKAGE_FILE: &str = "linkage.sqlite";
/// What the replica holds, beside its manifest: a [`LinkageState`] as JSON.
pub const STATE_FILE: &str = "backup/linkage.json";
/// Request headers of `PUT /api/v1/linkage`: the snapshot's sha256 (uncompressed, hex) and when
/// the primary took it (RFC 3339).
pub const SHA256_HEADER: &str = "x-kizuna-sha256";
pub const TAKEN_AT_HEADER: &str = "x-kizuna-taken-at";
/// The body's media type: a zstd-compressed SQLite database file.
pub const CONTENT_TYPE: &str = "application/vnd.kizuna.linkage+zstd";

/// The snapshot a replica holds (all `None` before the first one arrives).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LinkageState {
    pub sha256: Option<String>,
    pub taken_at: Option<String>,
    /// Size of the database file.
    pub bytes: u64,
}
