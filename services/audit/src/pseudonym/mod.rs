//! Pairwise user ids. ID federation gives each service a different, unlinkable id for the same user;
//! the auth service registers each pairwise id's real subject here, and only auditors can read it
//! back. The mapping table never leaves the audit database.
//!
//! A mapping is written once: the same mapping again is accepted (retries), a different subject or
//! sector for a registered pairwise id is refused and recorded as a security alert, and a new
//! display name for the same subject is accepted and recorded. Every accepted change is an event
//! in the Merkle log ([`record`]), and `kizuna audit verify` compares the table with them ([`check`]).

pub mod check;
pub mod record;

use crate::appender::Appender;
use crate::db::Db;
use crate::error::{AuditError, Result};
use record::Sender;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use std::collections::HashMap;

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
    /// The auditor's name from `auditor_tokens_file`, or `auditor` (single token or none).
    pub name: String,
}

impl Auditor {
    /// Granted by the API layer after authenticating the caller as an auditor.
    pub fn authenticated(name: &str) -> Self {
        Auditor { name: name.to_string() }
    }
}

/// What [`register`] did with a batch.
#[derive(Debug, PartialEq, Eq)]
pub enum Registered {
    /// Every mapping is now in the table: `new` added, `renamed` with a new display name, the
    /// rest were already there.
    Done { new: usize, renamed: usize },
    /// Nothing was written: these pairwise ids are registered to another subject or sector. Each
    /// attempt was recorded as a security alert.
    Refused { pairwise_ids: Vec<String> },
}

/// The change one accepted mapping makes.
enum Change {
    New,
    /// Same subject and sector, another display name (the old one).
    Renamed(Option<String>),
}

/// The stored mappings for `ids`.
async fn stored(db: &Db, ids: &[&str]) -> Result<HashMap<String, PseudonymMapping>> {
    let mut out = HashMap::new();
    for id in ids {
        if let Some(m) = load(db, id).await? {
            out.insert(m.pairwise_id.clone(), m);
        }
    }
    Ok(out)
}

async fn load(db: &Db, pairwise_id: &str) -> Result<Option<PseudonymMapping>> {
    let row = sqlx::query(
        "SELECT pairwise_id, sector, subject_id, display_name FROM audit_pseudonym WHERE pairwise_id = $1",
    )
    .bind(pairwise_id.to_string())
    .fetch_optional(&db.pool)
    .await?;
    row.map(|r| mapping_of(&r)).transpose()
}

pub(crate) fn mapping_of(r: &sqlx::any::AnyRow) -> Result<PseudonymMapping> {
    Ok(PseudonymMapping {
        pairwise_id: r.try_get("pairwise_id")?,
        sector: r.try_get("sector")?,
        subject_id: r.try_get("subject_id")?,
        display_name: r.try_get("display_name")?,
    })
}

/// Refuse empty fields, naming the entry and the field.
fn check_fields(maps: &[PseudonymMapping]) -> Result<()> {
    for (i, m) in maps.iter().enumerate() {
        for (field, v) in
            [("pairwise_id", &m.pairwise_id), ("sector", &m.sector), ("subject_id", &m.subject_id)]
        {
            if v.trim().is_empty() {
                return Err(AuditError::invalid(&format!("pseudonym [{i}].{field}"), "empty"));
            }
        }
    }
    Ok(())
}

/// Register mappings sent by `sender` (the auth service through the intake API). The caller
/// serialises calls (one registration at a time per database, see `ApiState`).
///
/// Order: the events go to the log first (one transaction), then the table; a failure between
/// the two leaves a logged registration without its row, which the sender's retry writes (and
/// `verify` reports until then). A batch with any conflict writes nothing.
pub async fn register(
    db: &Db,
    appender: &Appender,
    sender: &Sender,
    maps: &[PseudonymMapping],
) -> Result<Registered> {
    check_fields(maps)?;
    let ids: Vec<&str> = maps.iter().map(|m| m.pairwise_id.as_str()).collect();
    // What the table holds, updated as the batch is read (a batch may repeat an id).
    let mut state = stored(db, &ids).await?;
    let mut changes: Vec<(&PseudonymMapping, Change)> = Vec::new();
    let mut alerts = Vec::new();
    let mut refused = Vec::new();
    for m in maps {
        match state.get(&m.pairwise_id) {
            None => changes.push((m, Change::New)),
            Some(kept) if kept.subject_id != m.subject_id || kept.sector != m.sector => {
                alerts.push(record::refused(sender, m, kept));
                refused.push(m.pairwise_id.clone());
                continue;
            }
            Some(kept) if kept.display_name != m.display_name => {
                changes.push((m, Change::Renamed(kept.display_name.clone())))
            }
            Some(_) => continue,
        }
        state.insert(m.pairwise_id.clone(), m.clone());
    }
    if !alerts.is_empty() {
        appender.submit(alerts).await?;
        return Ok(Registered::Refused { pairwise_ids: refused });
    }
    if changes.is_empty() {
        return Ok(Registered::Done { new: 0, renamed: 0 });
    }
    let events = changes
        .iter()
        .map(|(m, c)| match c {
            Change::New => record::registered(sender, m, None),
            Change::Renamed(old) => record::registered(sender, m, Some(old.as_deref())),
        })
        .collect();
    appender.submit(events).await?;
    let now = jiff::Timestamp::now().as_microsecond();
    let mut tx = db.begin_write().await?;
    let (mut new, mut renamed) = (0, 0);
    for (m, c) in &changes {
        let q = match c {
            Change::New => {
                new += 1;
                sqlx::query(
                    "INSERT INTO audit_pseudonym (pairwise_id, sector, subject_id, display_name, registered_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(m.pairwise_id.clone())
                .bind(m.sector.clone())
                .bind(m.subject_id.clone())
                .bind(m.display_name.clone())
                .bind(now)
            }
            // Only the display name: subject and sector are never updated.
            Change::Renamed(_) => {
                renamed += 1;
                sqlx::query("UPDATE audit_pseudonym SET display_name = $1 WHERE pairwise_id = $2")
                    .bind(m.display_name.clone())
                    .bind(m.pairwise_id.clone())
            }
        };
        q.execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(Registered::Done { new, renamed })
}

/// First start after the upgrade that logs registrations: every row already in the table gets a
/// registration event, plus one "table adopted" event, in one batch. Later starts find that event
/// and do nothing, so a row slipped into the table afterwards stays a `verify` finding.
pub async fn adopt_table(db: &Db, appender: &Appender) -> Result<usize> {
    let logged = check::logged_state(db).await?;
    if logged.adopted {
        return Ok(0);
    }
    let rows = sqlx::query("SELECT pairwise_id, sector, subject_id, display_name FROM audit_pseudonym")
        .fetch_all(&db.pool)
        .await?;
    let sender = Sender { credential: "upgrade".into(), ip: None };
    let mut events = Vec::new();
    for r in &rows {
        let m = mapping_of(r)?;
        if logged.mappings.get(&m.pairwise_id) != Some(&m) {
            events.push(record::registered(&sender, &m, None));
        }
    }
    let n = events.len();
    events.push(record::adopted(n));
    appender.submit(events).await?;
    if n > 0 {
        tracing::warn!(rows = n, "pseudonym table adopted into the audit log (first start after upgrade)");
    }
    Ok(n)
}

/// Resolve a pairwise id for an auditor.
pub async fn resolve(db: &Db, _auditor: &Auditor, pairwise_id: &str) -> Result<Option<PseudonymMapping>> {
    load(db, pairwise_id).await
}
