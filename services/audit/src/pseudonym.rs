//! Pairwise user ids. ID federation gives each service a different, unlinkable id for the same user;
//! the auth service registers each pairwise id's real subject here, and only auditors can read it
//! back. The mapping table never leaves the audit database.

use crate::db::Db;
use crate::error::Result;
use serde::{Deserialize, Serialize};
use sqlx::Row;

/// One pairwise id and the subject behind it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PseudonymMapping {
    pub pairwise_id: String,
    /// The relying service (sector) the pairwise id was issued for, e.g. `viewer`.
    pub sector: String,
    /// The user's real id at the identity provider.
    pub subject_id: String,
    #[serde(default)]
    pub display_name: Option<String>,
}

/// Proof that the caller holds the auditor role; only the auditor-facing API constructs one
/// (after checking the auditor token), so resolution cannot be called from elsewhere by accident.
#[non_exhaustive]
pub struct Auditor {
    pub name: String,
}

impl Auditor {
    /// Granted by the API layer after authenticating the caller as an auditor.
    pub fn authenticated(name: &str) -> Self {
        Auditor { name: name.to_string() }
    }
}

/// Register (or update) mappings; called by the auth service through the intake API.
pub async fn register(db: &Db, mappings: &[PseudonymMapping]) -> Result<()> {
    let now = jiff::Timestamp::now().as_microsecond();
    let mut tx = db.begin_write().await?;
    for m in mappings {
        sqlx::query(
            "INSERT INTO audit_pseudonym (pairwise_id, sector, subject_id, display_name, registered_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (pairwise_id) DO UPDATE SET sector = excluded.sector, subject_id = excluded.subject_id, \
             display_name = excluded.display_name",
        )
        .bind(m.pairwise_id.clone())
        .bind(m.sector.clone())
        .bind(m.subject_id.clone())
        .bind(m.display_name.clone())
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Resolve a pairwise id for an auditor.
pub async fn resolve(db: &Db, _auditor: &Auditor, pairwise_id: &str) -> Result<Option<PseudonymMapping>> {
    let row = sqlx::query(
        "SELECT pairwise_id, sector, subject_id, display_name FROM audit_pseudonym WHERE pairwise_id = $1",
    )
    .bind(pairwise_id.to_string())
    .fetch_optional(&db.pool)
    .await?;
    row.map(|r| {
        Ok(PseudonymMapping {
            pairwise_id: r.try_get("pairwise_id")?,
            sector: r.try_get("sector")?,
            subject_id: r.try_get("subject_id")?,
            display_name: r.try_get("display_name")?,
        })
    })
    .transpose()
}
