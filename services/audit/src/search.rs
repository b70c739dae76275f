//! Search and aggregation for auditors: filters by user, patient, facility, event type, time range and
//! outcome; counts per day, user and patient; CSV export. A user filter matches the pairwise id or,
//! through the pseudonym table, every pairwise id of a real subject.

use crate::db::Db;
use crate::error::{AuditError, Result};
use serde::{Deserialize, Serialize};
use sqlx::Row;

/// Filters; all optional, combined with AND.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct SearchFilter {
    /// Pairwise user id or real subject id (resolved through the pseudonym table).
    #[serde(default)]
    pub user: Option<String>,
    /// Common health ID.
    #[serde(default)]
    pub patient: Option<String>,
    /// AuditEnterpriseSiteID.
    #[serde(default)]
    pub facility: Option<String>,
    /// EventID code (110110) or EventTypeCode (110122).
    #[serde(default)]
    pub event_type: Option<String>,
    /// Inclusive lower bound.
    #[serde(default)]
    pub from: Option<jiff::Timestamp>,
    /// Exclusive upper bound.
    #[serde(default)]
    pub to: Option<jiff::Timestamp>,
    /// 0, 4, 8 or 12.
    #[serde(default)]
    pub outcome: Option<i64>,
    #[serde(default)]
    pub break_glass: Option<bool>,
    /// Rows per page (default 100, max 10000).
    #[serde(default)]
    pub limit: Option<u32>,
    #[serde(default)]
    pub offset: Option<u32>,
}

/// One search result row.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct EventRow {
    pub seq: i64,
    pub event_id: String,
    /// When the event happened, as its sender says.
    pub event_time: jiff::Timestamp,
    /// When the audit service stored it (its own clock): a large gap to `event_time` shows an
    /// event delivered late, or backdated by its sender.
    pub received_at: jiff::Timestamp,
    pub event_code: String,
    pub event_type: Option<String>,
    pub action: String,
    pub outcome: i64,
    pub user_id: Option<String>,
    /// The real subject behind `user_id`, for auditors (None when unknown).
    pub user_subject: Option<String>,
    pub user_display: Option<String>,
    pub patient_id: Option<String>,
    pub facility: Option<String>,
    pub source_id: String,
    pub break_glass: bool,
}

fn empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// WHERE clause and its binds (all text or integer).
enum Bind {
    Text(String),
    Int(i64),
}

fn where_clause(f: &SearchFilter) -> (String, Vec<Bind>) {
    where_clause_with(f, Vec::new())
}

/// [`where_clause`] plus `extra` conditions (`?` placeholders and their binds).
fn where_clause_with(f: &SearchFilter, extra: Vec<(&str, Vec<Bind>)>) -> (String, Vec<Bind>) {
    let mut conds = Vec::new();
    let mut binds = Vec::new();
    let mut push = |sql: &str, b: Vec<Bind>| {
        let mut s = sql.to_string();
        for b0 in b {
            binds.push(b0);
            s = s.replacen('?', &format!("${}", binds.len()), 1);
        }
        conds.push(s);
    };
    if let Some(u) = empty(&f.user) {
        push(
            "(e.user_id = ? OR e.user_id IN (SELECT pairwise_id FROM audit_pseudonym WHERE subject_id = ?))",
            vec![Bind::Text(u.into()), Bind::Text(u.into())],
        );
    }
    if let Some(p) = empty(&f.patient) {
        push("e.patient_id = ?", vec![Bind::Text(p.into())]);
    }
    if let Some(x) = empty(&f.facility) {
        push("e.facility = ?", vec![Bind::Text(x.into())]);
    }
    if let Some(t) = empty(&f.event_type) {
        // A DICOM CID 400 EventID is never an EventTypeCode and a CID 401/403 type code never an
        // EventID: matching only the column it can be in keeps the filter one index range.
        match dicom_code_kind(t) {
            CodeKind::EventId => push("e.event_code = ?", vec![Bind::Text(t.into())]),
            CodeKind::EventType => push("e.event_type = ?", vec![Bind::Text(t.into())]),
            CodeKind::Other => push(
                "(e.event_code = ? OR e.event_type = ?)",
                vec![Bind::Text(t.into()), Bind::Text(t.into())],
            ),
        }
    }
    if let Some(t) = f.from {
        push("e.event_time >= ?", vec![Bind::Int(t.as_microsecond())]);
    }
    if let Some(t) = f.to {
        push("e.event_time < ?", vec![Bind::Int(t.as_microsecond())]);
    }
    if let Some(o) = f.outcome {
        push("e.outcome = ?", vec![Bind::Int(o)]);
    }
    if let Some(b) = f.break_glass {
        push("e.break_glass = ?", vec![Bind::Int(i64::from(b))]);
    }
    for (sql, b) in extra {
        push(sql, b);
    }
    let w = if conds.is_empty() { String::new() } else { format!("WHERE {}", conds.join(" AND ")) };
    (w, binds)
}

/// Which column a DICOM audit code can be in.
#[derive(Debug, PartialEq, Eq)]
enum CodeKind {
    EventId,
    EventType,
    Other,
}

/// DICOM PS3.16: CID 400 "Audit Event ID" codes are 110100..=110114; CID 401 "Audit Event Type
/// Code" and CID 403 "Security Alert Type Code" are 110120..=110142.
fn dicom_code_kind(code: &str) -> CodeKind {
    match code.parse::<u32>() {
        Ok(110100..=110114) => CodeKind::EventId,
        Ok(110120..=110142) => CodeKind::EventType,
        _ => CodeKind::Other,
    }
}

fn bind_all<'q>(
    mut q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    binds: Vec<Bind>,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    for b in binds {
        q = match b {
            Bind::Text(s) => q.bind(s),
            Bind::Int(i) => q.bind(i),
        };
    }
    q
}

/// Matching events, newest first.
pub async fn search(db: &Db, f: &SearchFilter) -> Result<Vec<EventRow>> {
    let limit = f.limit.unwrap_or(100).clamp(1, 10_000);
    select_rows(db, where_clause(f), limit, f.offset.unwrap_or(0)).await
}

/// The newest seq in the log (-1 when empty): an export's snapshot bound.
pub async fn last_seq(db: &Db) -> Result<i64> {
    let m: Option<i64> =
        sqlx::query("SELECT MAX(seq) AS m FROM audit_event").fetch_one(&db.pool).await?.try_get("m")?;
    Ok(m.unwrap_or(-1))
}

/// Where an export has got to: the (event_time, seq) of the last row sent, newest first.
pub type Cursor = (i64, i64);

/// Conditions of an export page: events up to seq `upto`, after `cursor` in newest-first order.
fn export_conds(upto: i64, cursor: Option<Cursor>) -> Vec<(&'static str, Vec<Bind>)> {
    let mut v = vec![("e.seq <= ?", vec![Bind::Int(upto)])];
    if let Some((t, seq)) = cursor {
        v.push((
            "(e.event_time < ? OR (e.event_time = ? AND e.seq < ?))",
            vec![Bind::Int(t), Bind::Int(t), Bind::Int(seq)],
        ));
    }
    v
}

/// One page of an export (keyset paging, so every page is one index range and no row is skipped
/// or repeated): up to `limit` rows matching `f` (its limit and offset ignored) with seq <= `upto`
/// after `cursor`, skipping `offset` of them.
pub async fn export_page(
    db: &Db,
    f: &SearchFilter,
    upto: i64,
    cursor: Option<Cursor>,
    limit: u32,
    offset: u32,
) -> Result<Vec<EventRow>> {
    select_rows(db, where_clause_with(f, export_conds(upto, cursor)), limit, offset).await
}

/// How many events match `f` with seq <= `upto` (an export's total).
pub async fn export_count(db: &Db, f: &SearchFilter, upto: i64) -> Result<i64> {
    let (w, binds) = where_clause_with(f, export_conds(upto, None));
    let sql = format!("SELECT COUNT(*) AS n FROM audit_event e {w}");
    Ok(bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), binds).fetch_one(&db.pool).await?.try_get("n")?)
}

async fn select_rows(
    db: &Db,
    (w, binds): (String, Vec<Bind>),
    limit: u32,
    offset: u32,
) -> Result<Vec<EventRow>> {
    let sql = format!(
        "SELECT e.seq, e.event_id, e.event_time, e.received_at, e.event_code, e.event_type, e.action, e.outcome, e.user_id, e.patient_id, \
         e.facility, e.source_id, e.break_glass, p.subject_id, p.display_name \
         FROM audit_event e LEFT JOIN audit_pseudonym p ON p.pairwise_id = e.user_id {w} \
         ORDER BY e.event_time DESC, e.seq DESC LIMIT {limit} OFFSET {offset}"
    );
    let rows = bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), binds).fetch_all(&db.pool).await?;
    rows.iter()
        .map(|r| {
            let t: i64 = r.try_get("event_time")?;
            let bg: i64 = r.try_get("break_glass")?;
            let received: i64 = r.try_get("received_at")?;
            Ok(EventRow {
                seq: r.try_get("seq")?,
                event_id: r.try_get("event_id")?,
                event_time: jiff::Timestamp::from_microsecond(t)
                    .map_err(|e| AuditError::invalid("event_time", e.to_string()))?,
                received_at: jiff::Timestamp::from_microsecond(received)
                    .map_err(|e| AuditError::invalid("received_at", e.to_string()))?,
                event_code: r.try_get("event_code")?,
                event_type: r.try_get("event_type")?,
                action: r.try_get("action")?,
                outcome: r.try_get("outcome")?,
                user_id: r.try_get("user_id")?,
                user_subject: r.try_get("subject_id")?,
                user_display: r.try_get("display_name")?,
                patient_id: r.try_get("patient_id")?,
                facility: r.try_get("facility")?,
                source_id: r.try_get("source_id")?,
                break_glass: bg != 0,
            })
        })
        .collect()
}

/// The stored body (canonical JSON) of the matching events, newest first: for FHIR output.
pub async fn search_bodies(db: &Db, f: &SearchFilter) -> Result<(Vec<Vec<u8>>, i64)> {
    let (w, binds) = where_clause(f);
    let limit = f.limit.unwrap_or(100).clamp(1, 10_000);
    let sql = format!(
        "SELECT e.body FROM audit_event e {w} ORDER BY e.event_time DESC, e.seq DESC LIMIT {limit} OFFSET {}",
        f.offset.unwrap_or(0)
    );
    let rows = bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), where_clause(f).1).fetch_all(&db.pool).await?;
    let bodies =
        rows.iter().map(|r| r.try_get::<Vec<u8>, _>("body")).collect::<std::result::Result<Vec<_>, _>>()?;
    let count_sql = format!("SELECT COUNT(*) AS n FROM audit_event e {w}");
    let total: i64 = bind_all(sqlx::query(sqlx::AssertSqlSafe(count_sql)), binds)
        .fetch_one(&db.pool)
        .await?
        .try_get("n")?;
    Ok((bodies, total))
}

/// What to count by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CountBy {
    Day,
    User,
    Patient,
}

/// Event counts grouped by day (yyyy-mm-dd), user or patient; largest groups (or latest days) first.
pub async fn count(db: &Db, f: &SearchFilter, by: CountBy) -> Result<Vec<(String, i64)>> {
    let (w, binds) = where_clause(f);
    // Days are counted from event_time (UTC days since the epoch), which every index holds, so a
    // filtered count never reads the rows themselves.
    let (key, order) = match by {
        CountBy::Day => ("e.event_time / 86400000000", "k DESC"),
        CountBy::User => ("COALESCE(e.user_id, '')", "n DESC, k"),
        CountBy::Patient => ("COALESCE(e.patient_id, '')", "n DESC, k"),
    };
    let limit = f.limit.unwrap_or(100).clamp(1, 10_000);
    let sql = format!(
        "SELECT {key} AS k, COUNT(*) AS n FROM audit_event e {w} GROUP BY k ORDER BY {order} LIMIT {limit}"
    );
    let rows = bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), binds).fetch_all(&db.pool).await?;
    rows.iter()
        .map(|r| {
            let k = if by == CountBy::Day {
                let days: i64 = r.try_get("k")?;
                jiff::Timestamp::from_second(days * 86_400)
                    .map_err(|e| AuditError::invalid("event_time", e.to_string()))?
                    .to_zoned(jiff::tz::TimeZone::UTC)
                    .date()
                    .to_string()
            } else {
                r.try_get("k")?
            };
            Ok((k, r.try_get("n")?))
        })
        .collect()
}

/// A text cell as a spreadsheet shows it, never as a formula: a cell starting with `=`, `+`, `-`,
/// `@`, a tab or a carriage return gets a leading `'` (OWASP's CSV injection advice). Event fields
/// come from the senders (user IDs, facility and patient IDs in syslog or HTTP events), and the
/// auditor opens the export in a spreadsheet program.
fn cell(text: String) -> String {
    match text.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{text}"),
        _ => text,
    }
}

/// CSV (header row and `rows`) of search results.
pub fn to_csv(rows: &[EventRow]) -> Result<String> {
    Ok(csv_header()? + &csv_rows(rows)?)
}

/// The CSV header row.
pub fn csv_header() -> Result<String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let e = |err: csv::Error| AuditError::Send(format!("csv: {err}"));
    w.write_record([
        "seq",
        "event_id",
        "event_time",
        "event_code",
        "event_type",
        "action",
        "outcome",
        "user_id",
        "user_subject",
        "user_display",
        "patient_id",
        "facility",
        "source_id",
        "break_glass",
        "received_at",
    ])
    .map_err(e)?;
    let bytes = w.into_inner().map_err(|err| AuditError::Send(format!("csv: {err}")))?;
    Ok(String::from_utf8(bytes).expect("csv of UTF-8 strings"))
}

/// CSV lines of `rows`, no header.
pub fn csv_rows(rows: &[EventRow]) -> Result<String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let e = |err: csv::Error| AuditError::Send(format!("csv: {err}"));
    for r in rows {
        w.write_record([
            r.seq.to_string(),
            cell(r.event_id.clone()),
            r.event_time.to_string(),
            cell(r.event_code.clone()),
            cell(r.event_type.clone().unwrap_or_default()),
            cell(r.action.clone()),
            r.outcome.to_string(),
            cell(r.user_id.clone().unwrap_or_default()),
            cell(r.user_subject.clone().unwrap_or_default()),
            cell(r.user_display.clone().unwrap_or_default()),
            cell(r.patient_id.clone().unwrap_or_default()),
            cell(r.facility.clone().unwrap_or_default()),
            cell(r.source_id.clone()),
            r.break_glass.to_string(),
            r.received_at.to_string(),
        ])
        .map_err(e)?;
    }
    let bytes = w.into_inner().map_err(|err| AuditError::Send(format!("csv: {err}")))?;
    Ok(String::from_utf8(bytes).expect("csv of UTF-8 strings"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn csv_cells_that_a_spreadsheet_would_run_as_formulas_are_quoted() {
        for (raw, shown) in [
            ("=HYPERLINK(\"http://evil.example\")", "'=HYPERLINK(\"http://evil.example\")"),
            ("+KZ000000000000", "'+KZ000000000000"),
            ("-1+2", "'-1+2"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("site:0411910637", "site:0411910637"),
            ("", ""),
        ] {
            assert_eq!(cell(raw.to_owned()), shown, "{raw:?}");
        }
    }

    use super::*;

    #[test]
    fn event_type_filter_uses_the_column_the_code_belongs_to() {
        assert_eq!(dicom_code_kind("110110"), CodeKind::EventId);
        assert_eq!(dicom_code_kind("110122"), CodeKind::EventType);
        assert_eq!(dicom_code_kind("110126"), CodeKind::EventType);
        assert_eq!(dicom_code_kind("IHE0001"), CodeKind::Other);
        let f = |t: &str| where_clause(&SearchFilter { event_type: Some(t.into()), ..Default::default() }).0;
        assert_eq!(f("110114"), "WHERE e.event_code = $1");
        assert_eq!(f("110123"), "WHERE e.event_type = $1");
        assert_eq!(f("X1"), "WHERE (e.event_code = $1 OR e.event_type = $2)");
    }
}
