//! The audit database: SQLite (embedded default) or PostgreSQL through sqlx's `Any` driver, one set of
//! queries, one migrations folder per backend with the same schema (the store's strategy).

use crate::error::Result;
use crate::event::AuditEvent;
use sqlx::Row;

pub use kizuna_db::Backend;

kizuna_db::service_db! {
    /// An open, migrated audit database; opening and write transactions are `kizuna_db`'s.
    error: crate::error::AuditError,
    // WAL: searches run beside the appender. synchronous=FULL: a committed audit event
    // must survive a power cut (the sender deletes its spool copy once we answer). A 256 MiB
    // page cache keeps the six search indexes' hot pages in memory; SQLite's 2 MiB default
    // made appends index-bound. wal_autocheckpoint = 0: the log's own checkpointer copies
    // the WAL back off the appender's path (see `log::WalCheckpointer`).
    sqlite: "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 30000; PRAGMA cache_size = -262144; PRAGMA temp_store = MEMORY; PRAGMA mmap_size = 1073741824; PRAGMA wal_autocheckpoint = 0;",
    postgres: "",
}

/// The search columns of one event, derived from its body.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexedColumns {
    pub event_id: String,
    pub day: i64,
    pub event_time: i64,
    pub event_code: String,
    pub event_type: Option<String>,
    pub action: String,
    pub outcome: i64,
    pub user_id: Option<String>,
    pub patient_id: Option<String>,
    pub facility: Option<String>,
    pub source_id: String,
    pub break_glass: i64,
}

/// UTC yyyymmdd of a timestamp: the partition key.
pub fn day_of(t: jiff::Timestamp) -> i64 {
    let d = t.to_zoned(jiff::tz::TimeZone::UTC).date();
    i64::from(d.year()) * 10000 + i64::from(d.month()) * 100 + i64::from(d.day())
}

impl IndexedColumns {
    pub fn of(e: &AuditEvent) -> Self {
        IndexedColumns {
            event_id: e.id.to_string(),
            day: day_of(e.event.date_time),
            event_time: e.event.date_time.as_microsecond(),
            event_code: e.event.id.code.clone(),
            event_type: e.event.types.first().map(|c| c.code.clone()),
            action: e.event.action.as_str().to_string(),
            outcome: i64::from(e.event.outcome.code()),
            user_id: e.requestor_id().map(Into::into),
            patient_id: e.patient_id().map(Into::into),
            facility: e.source.enterprise_site_id.clone(),
            source_id: e.source.source_id.clone(),
            break_glass: i64::from(e.is_break_glass()),
        }
    }

    /// Read the derived columns of a row selected with [`STORED_COLUMNS`].
    pub fn from_row(r: &sqlx::any::AnyRow) -> Result<Self> {
        Ok(IndexedColumns {
            event_id: r.try_get("event_id")?,
            day: r.try_get("day")?,
            event_time: r.try_get("event_time")?,
            event_code: r.try_get("event_code")?,
            event_type: r.try_get("event_type")?,
            action: r.try_get("action")?,
            outcome: r.try_get("outcome")?,
            user_id: r.try_get("user_id")?,
            patient_id: r.try_get("patient_id")?,
            facility: r.try_get("facility")?,
            source_id: r.try_get("source_id")?,
            break_glass: r.try_get("break_glass")?,
        })
    }

    /// Names of the columns that differ from `other` (for verify's findings).
    pub fn differences(&self, other: &IndexedColumns) -> Vec<&'static str> {
        let mut d = Vec::new();
        macro_rules! cmp {
            ($($f:ident),*) => { $( if self.$f != other.$f { d.push(stringify!($f)); } )* };
        }
        cmp!(
            event_id,
            day,
            event_time,
            event_code,
            event_type,
            action,
            outcome,
            user_id,
            patient_id,
            facility,
            source_id,
            break_glass
        );
        d
    }
}

/// The columns verify and search read.
pub const STORED_COLUMNS: &str = "seq, event_id, day, event_time, received_at, event_code, event_type, action, outcome, \
     user_id, patient_id, facility, source_id, break_glass, body";
