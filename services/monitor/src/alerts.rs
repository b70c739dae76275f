//! Alert incidents: one per (rule, site) episode, kept in the IndexDB's `alert_incidents` table.
//! A finding with no open incident opens one and mails it; while it stays open nothing more is
//! sent; when the finding is gone the incident closes and one recovery mail goes out. The mail
//! times are stored, so a restart never sends either mail twice, and a mail that failed is retried
//! at the next check.

use std::collections::BTreeMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};

use kizuna_store::Db;
use sqlx::Row;

use crate::MonitorError;
use crate::config::Config;
use crate::health::{Finding, Rule, findings};
use crate::mail::{Mailer, Outgoing};
use crate::status;

/// What one check did (for logs and tests).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckReport {
    pub opened: Vec<(String, String)>,
    pub closed: Vec<(String, String)>,
    pub mails_sent: usize,
    pub mail_errors: Vec<String>,
    /// Another check (the admin screen's, or `kizuna admin check`) held the lease: this one did nothing.
    pub busy: bool,
}

/// The `store_state` row holding the check lease: the Unix time until which a check holds it.
const LEASE_KEY: &str = "alert_check_until";
/// How long a lease lasts if its holder never releases it (killed mid-check).
const LEASE_SECS: i64 = 600;

/// Takes the lease on checking, or says another check holds it. One check at a time across
/// processes: two overlapping checks both saw an incident unmailed and both mailed it, or both
/// opened one and one of the two never closed.
async fn take_lease(db: &Db, now: i64) -> Result<bool, MonitorError> {
    let _w = db.write_guard().await;
    sqlx::query("INSERT INTO store_state (key, value) VALUES ($1, 0) ON CONFLICT (key) DO NOTHING")
        .bind(LEASE_KEY)
        .execute(&db.pool)
        .await?;
    let taken = sqlx::query("UPDATE store_state SET value = $1 WHERE key = $2 AND value < $3")
        .bind(now + LEASE_SECS)
        .bind(LEASE_KEY)
        .bind(now)
        .execute(&db.pool)
        .await?;
    Ok(taken.rows_affected() == 1)
}

async fn release_lease(db: &Db) -> Result<(), MonitorError> {
    let _w = db.write_guard().await;
    sqlx::query("UPDATE store_state SET value = 0 WHERE key = $1").bind(LEASE_KEY).execute(&db.pool).await?;
    Ok(())
}

/// The site name used for centre-wide incidents (replication lag).
pub const CENTRE: &str = "(centre)";

struct Open {
    id: i64,
    mailed: bool,
}

/// Evaluates every rule at `now`, updates the incidents and sends the mail that is due; does
/// nothing (`busy`) while another check holds the lease.
pub async fn check(
    db: &Db,
    cfg: &Config,
    mailer: &Mailer,
    now: jiff::Timestamp,
) -> Result<CheckReport, MonitorError> {
    match under_lease(db, check_holding_the_lease(db, cfg, mailer, now)).await? {
        Some(report) => Ok(report),
        None => Ok(CheckReport { busy: true, ..Default::default() }),
    }
}

/// Runs `work` holding the check lease (`None`: another check holds it) and releases the lease
/// whatever the outcome: an error, or a panic, which comes back as [`MonitorError::Check`]. A
/// check that panicked used to keep the lease for its 10 minutes, and every check meanwhile
/// (the screen's, `kizuna admin check`) said "another check is running" and did nothing.
pub(crate) async fn under_lease<T>(
    db: &Db,
    work: impl Future<Output = Result<T, MonitorError>>,
) -> Result<Option<T>, MonitorError> {
    if !take_lease(db, jiff::Timestamp::now().as_second()).await? {
        return Ok(None);
    }
    let result = match CatchPanic(std::pin::pin!(work)).await {
        Ok(r) => r,
        Err(why) => Err(MonitorError::Check(format!("the check panicked: {why}"))),
    };
    let released = release_lease(db).await;
    let value = result?;
    released?;
    Ok(Some(value))
}

/// Polls a future, turning a panic inside it into `Err(its message)`.
struct CatchPanic<F>(F);

impl<F: Future + Unpin> Future for CatchPanic<F> {
    type Output = Result<F::Output, String>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = &mut self.0;
        match std::panic::catch_unwind(AssertUnwindSafe(|| Pin::new(inner).poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Err(p) => Poll::Ready(Err(panic_message(p.as_ref()))),
        }
    }
}

/// The text of a panic's payload.
pub(crate) fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

async fn check_holding_the_lease(
    db: &Db,
    cfg: &Config,
    mailer: &Mailer,
    now: jiff::Timestamp,
) -> Result<CheckReport, MonitorError> {
    let mut active: BTreeMap<(String, Rule), Finding> = BTreeMap::new();
    for facts in status::all_sites(db).await? {
        for f in findings(&facts, cfg, now) {
            if let Some(rule) = f.rule {
                active.insert((facts.site.name.clone(), rule), f);
            }
        }
    }
    if let Some(f) = crate::lag::finding(cfg).await {
        active.insert((CENTRE.to_owned(), Rule::ReplicationLag), f);
    }

    let t = now.to_string();
    let mut report = CheckReport::default();
    let mut open: BTreeMap<(String, Rule), Open> = BTreeMap::new();
    for r in sqlx::query("SELECT id, rule, site, opened_mail_at FROM alert_incidents WHERE closed_at IS NULL")
        .fetch_all(&db.pool)
        .await?
    {
        let rule: String = r.try_get("rule")?;
        let Some(rule) = Rule::parse(&rule) else { continue };
        let mailed = r.try_get::<Option<String>, _>("opened_mail_at")?.is_some();
        open.insert((r.try_get("site")?, rule), Open { id: r.try_get("id")?, mailed });
    }

    // New and still-unmailed incidents.
    for ((site, rule), f) in &active {
        let id = match open.get(&(site.clone(), *rule)) {
            Some(o) if o.mailed => continue,
            Some(o) => o.id,
            None => {
                let _w = db.write_guard().await;
                let row = sqlx::query(
                    "INSERT INTO alert_incidents (rule, site, opened_at, summary) VALUES ($1, $2, $3, $4) RETURNING id",
                )
                .bind(rule.as_str())
                .bind(site)
                .bind(&t)
                .bind(&f.summary)
                .fetch_one(&db.pool)
                .await?;
                report.opened.push((site.clone(), rule.as_str().to_owned()));
                tracing::warn!(site, rule = rule.as_str(), "{}", f.summary);
                row.try_get("id")?
            }
        };
        let mail = Outgoing::alert(cfg, site, *rule, f);
        match mailer.send(&mail).await {
            Ok(true) => {
                mark(db, "UPDATE alert_incidents SET opened_mail_at = $1 WHERE id = $2", &t, id).await?;
                report.mails_sent += 1;
            }
            Ok(false) => {
                mark(db, "UPDATE alert_incidents SET opened_mail_at = $1 WHERE id = $2", "", id).await?
            }
            Err(e) => report.mail_errors.push(e.to_string()),
        }
    }

    // Incidents whose finding is gone: close them and send the recovery mail.
    for (site, rule) in open.keys() {
        if active.contains_key(&(site.clone(), *rule)) {
            continue;
        }
        // Every open row of the key (overlapping checks before the lease could open two).
        let _w = db.write_guard().await;
        sqlx::query(
            "UPDATE alert_incidents SET closed_at = $1 WHERE rule = $2 AND site = $3 AND closed_at IS NULL",
        )
        .bind(&t)
        .bind(rule.as_str())
        .bind(site)
        .execute(&db.pool)
        .await?;
        drop(_w);
        report.closed.push((site.clone(), rule.as_str().to_owned()));
        tracing::info!(site, rule = rule.as_str(), "recovered");
    }
    // Recovery mail still owed (also after a failed send or a restart), only for incidents whose
    // opening was mailed.
    for r in sqlx::query(
        "SELECT id, rule, site, opened_at, summary, opened_mail_at FROM alert_incidents \
         WHERE closed_at IS NOT NULL AND closed_mail_at IS NULL",
    )
    .fetch_all(&db.pool)
    .await?
    {
        let id: i64 = r.try_get("id")?;
        let opened_mail: Option<String> = r.try_get("opened_mail_at")?;
        if opened_mail.as_deref().is_none_or(str::is_empty) {
            mark(db, "UPDATE alert_incidents SET closed_mail_at = $1 WHERE id = $2", "", id).await?;
            continue;
        }
        let Some(rule) = Rule::parse(&r.try_get::<String, _>("rule")?) else { continue };
        let site: String = r.try_get("site")?;
        let opened_at: String = r.try_get("opened_at")?;
        let summary: String = r.try_get("summary")?;
        let mail = Outgoing::recovery(cfg, &site, rule, &summary, &opened_at, now);
        match mailer.send(&mail).await {
            Ok(_) => {
                mark(db, "UPDATE alert_incidents SET closed_mail_at = $1 WHERE id = $2", &t, id).await?;
                report.mails_sent += 1;
            }
            Err(e) => report.mail_errors.push(e.to_string()),
        }
    }
    Ok(report)
}

async fn mark(db: &Db, sql: &'static str, t: &str, id: i64) -> Result<(), MonitorError> {
    let _w = db.write_guard().await;
    sqlx::query(sql).bind(t).bind(id).execute(&db.pool).await?;
    Ok(())
}

/// An incident as the admin screen lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incident {
    pub rule: String,
    pub site: String,
    pub opened_at: String,
    pub summary: String,
    pub closed_at: Option<String>,
}

/// The newest incidents (open first), at most `limit`; of one site when `site` is given.
pub async fn incidents(db: &Db, site: Option<&str>, limit: i64) -> Result<Vec<Incident>, MonitorError> {
    let rows = sqlx::query(
        "SELECT rule, site, opened_at, summary, closed_at FROM alert_incidents WHERE ($1 = '' OR site = $1) \
         ORDER BY (CASE WHEN closed_at IS NULL THEN 0 ELSE 1 END), id DESC LIMIT $2",
    )
    .bind(site.unwrap_or(""))
    .bind(limit)
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Incident {
                rule: r.try_get("rule")?,
                site: r.try_get("site")?,
                opened_at: r.try_get("opened_at")?,
                summary: r.try_get("summary")?,
                closed_at: r.try_get("closed_at")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()
        .map_err(Into::into)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A check that panicked kept the lease for 10 minutes: every check meanwhile said "another
    /// check is running; nothing done". It fails now, and the next check runs.
    #[tokio::test]
    async fn a_check_that_panics_fails_and_frees_the_lease() {
        let d = tempfile::tempdir().unwrap();
        let db = Db::open(&format!("sqlite://{}", d.path().join("index.sqlite").display())).await.unwrap();
        let boom = async {
            if d.path().exists() {
                panic!("out of range");
            }
            Ok::<u32, MonitorError>(1)
        };
        match under_lease(&db, boom).await {
            Err(MonitorError::Check(m)) => assert!(m.contains("panicked: out of range"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(under_lease(&db, async { Ok::<u32, MonitorError>(2) }).await.unwrap(), Some(2));
        let failing = under_lease(&db, async { Err::<u32, _>(MonitorError::Config("x".into())) }).await;
        assert!(failing.is_err());
        assert_eq!(under_lease(&db, async { Ok::<u32, MonitorError>(3) }).await.unwrap(), Some(3));
    }
}
