//! `verify`'s check of the pseudonym table against the registrations in the log: each row must be
//! the newest logged mapping of its pairwise id, and each logged mapping must have its row.

use super::record::{self, Logged};
use super::{PseudonymMapping, mapping_of};
use crate::db::Db;
use crate::error::Result;
use crate::event::{AuditEvent, SELF_SOURCE_ID, codes};
use sqlx::Row;
use std::collections::HashMap;

/// The mappings the log says the table holds (newest event per pairwise id wins).
#[derive(Debug, Default)]
pub struct LoggedState {
    pub mappings: HashMap<String, PseudonymMapping>,
    /// Whether the table was adopted at upgrade (rows older than the logging were logged then).
    pub adopted: bool,
}

impl LoggedState {
    /// Take one event, in log order.
    pub fn add(&mut self, e: &AuditEvent) {
        match record::read(e) {
            Some(Logged::Mapping(m)) => {
                self.mappings.insert(m.pairwise_id.clone(), m);
            }
            Some(Logged::Adopted) => self.adopted = true,
            None => {}
        }
    }
}

/// The logged state from the database alone (an index range on the event type), in log order.
pub async fn logged_state(db: &Db) -> Result<LoggedState> {
    let rows =
        sqlx::query("SELECT body FROM audit_event WHERE event_type = $1 AND source_id = $2 ORDER BY seq")
            .bind(codes::user_security_attributes_changed().code)
            .bind(SELF_SOURCE_ID.to_string())
            .fetch_all(&db.pool)
            .await?;
    let mut st = LoggedState::default();
    for r in rows {
        let body: Vec<u8> = r.try_get("body")?;
        if let Ok(e) = AuditEvent::from_json(&body) {
            st.add(&e);
        }
    }
    Ok(st)
}

/// One disagreement between the table and the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch {
    /// The row differs from the newest logged registration (`fields` name the columns).
    Altered { pairwise_id: String, fields: Vec<&'static str>, logged: String, stored: String },
    /// A row no registration event accounts for.
    Unlogged { pairwise_id: String, subject_id: String },
    /// A logged registration whose row is gone.
    Deleted { pairwise_id: String, subject_id: String },
}

/// Compare the table with `logged`; sorted by pairwise id.
pub async fn compare(db: &Db, logged: &LoggedState) -> Result<Vec<Mismatch>> {
    let rows = sqlx::query("SELECT pairwise_id, sector, subject_id, display_name FROM audit_pseudonym")
        .fetch_all(&db.pool)
        .await?;
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for r in &rows {
        let row = mapping_of(r)?;
        seen.insert(row.pairwise_id.clone());
        match logged.mappings.get(&row.pairwise_id) {
            None => out.push(Mismatch::Unlogged {
                pairwise_id: row.pairwise_id.clone(),
                subject_id: row.subject_id.clone(),
            }),
            Some(l) => {
                let mut fields = Vec::new();
                if l.sector != row.sector {
                    fields.push("sector");
                }
                if l.subject_id != row.subject_id {
                    fields.push("subject_id");
                }
                if l.display_name != row.display_name {
                    fields.push("display_name");
                }
                if !fields.is_empty() {
                    out.push(Mismatch::Altered {
                        pairwise_id: row.pairwise_id.clone(),
                        fields,
                        logged: describe(l),
                        stored: describe(&row),
                    });
                }
            }
        }
    }
    for (id, l) in &logged.mappings {
        if !seen.contains(id) {
            out.push(Mismatch::Deleted { pairwise_id: id.clone(), subject_id: l.subject_id.clone() });
        }
    }
    out.sort_by(|a, b| key(a).cmp(key(b)));
    Ok(out)
}

fn key(m: &Mismatch) -> &str {
    match m {
        Mismatch::Altered { pairwise_id, .. }
        | Mismatch::Unlogged { pairwise_id, .. }
        | Mismatch::Deleted { pairwise_id, .. } => pairwise_id,
    }
}

fn describe(m: &PseudonymMapping) -> String {
    format!(
        "subject {} (sector {}, display name {})",
        m.subject_id,
        m.sector,
        m.display_name.as_deref().map_or("none".to_string(), |d| format!("{d:?}"))
    )
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mismatch::Altered { pairwise_id, fields, logged, stored } => write!(
                f,
                "pseudonym {pairwise_id}: the table says {stored} but the log registered {logged} \
                 ({} changed outside the audit service)",
                fields.join(", ")
            ),
            Mismatch::Unlogged { pairwise_id, subject_id } => write!(
                f,
                "pseudonym {pairwise_id} -> {subject_id} is in the table but was never registered in the \
                 log (written outside the audit service)"
            ),
            Mismatch::Deleted { pairwise_id, subject_id } => write!(
                f,
                "pseudonym {pairwise_id} -> {subject_id} was registered in the log but its row is gone \
                 from the table"
            ),
        }
    }
}
