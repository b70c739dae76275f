//! Alert incidents: one per (rule, site) episode, kept in the IndexDB's `alert_incidents` table.
//! A finding with no open incident opens one and mails it; while it stays open nothing more is
//! sent; when the finding is gone the incident closes and one recovery mail goes out. The mail
//! times are stored, so a restart never sends either mail twice, and a mail that failed is retried
//! at the next check.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};

use kizuna_store::Db;
use sqlx::Row;

use crate::MonitorError;
use crate::config::Config;
use crate::health::{Finding, Health, Rule, findings};
use crate::mail::{Mailer, Outgoing, Sent};
use crate::status;

/// What one check did (for logs and tests).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckReport {
    pub opened: Vec<(String, String)>,
    pub closed: Vec<(String, String)>,
    pub mails_sent: usize,
    /// Mail that did not reach a recipient (refused, relay down), including the retries of
    /// recipients refused before and the relay probe.
    pub mail_errors: Vec<String>,
    /// Why the store's `/healthz` failed (the `store_down` rule), if it did.
    pub store_error: Option<String>,
    /// Another check (the admin screen's, or `kizuna admin check`) held the lease: this one did nothing.
    pub busy: bool,
}

impl CheckReport {
    /// What this check found wrong with the centre's own alerting path (mail not delivered, the
    /// store down): `kizuna admin check` exits non-zero when there is any.
    pub fn problems(&self) -> Vec<String> {
        let mut p: Vec<String> =
            self.mail_errors.iter().map(|e| format!("mail not delivered: {e}")).collect();
        if let Some(e) = &self.store_error {
            p.push(format!("store down: {e}"));
        }
        p
    }
}

/// Whether `rule` is switched on (centre-wide rules included).
fn rule_enabled(cfg: &Config, rule: Rule) -> bool {
    let r = &cfg.rules;
    match rule {
        Rule::AgentErrors => r.agent_errors.enabled,
        Rule::Rejects => r.rejects.enabled,
        Rule::DeadMan => r.dead_man.enabled,
        Rule::ReplicationLag => r.replication_lag.enabled,
        Rule::Stalled => r.stalled.enabled,
        Rule::StoreDown => r.store_down.enabled,
        Rule::MassSilence => r.mass_silence.enabled && r.dead_man.enabled,
    }
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
    let mut report = CheckReport::default();
    // Recipients the relay refused before get the mail the others got.
    report.mail_errors.extend(mailer.retry_owed().await);

    let mut active: BTreeMap<(String, Rule), Finding> = BTreeMap::new();
    let sites = status::all_sites(db, cfg).await?;
    // Sites present and enabled; sites seen alive once (a never-seen site going silent is no
    // sign of a centre-side outage).
    let enabled: BTreeSet<&str> =
        sites.iter().filter(|f| f.site.enabled).map(|f| f.site.name.as_str()).collect();
    let seen: BTreeSet<&str> = sites
        .iter()
        .filter(|f| crate::health::last_seen(f).is_some())
        .map(|f| f.site.name.as_str())
        .collect();
    for facts in &sites {
        for f in findings(facts, cfg, now) {
            if let Some(rule) = f.rule {
                active.insert((facts.site.name.clone(), rule), f);
            }
        }
    }
    if let Some(f) = crate::lag::finding(cfg).await {
        active.insert((CENTRE.to_owned(), Rule::ReplicationLag), f);
    }
    if cfg.rules.store_down.enabled
        && let Err(why) = crate::centre::store_health(cfg).await
    {
        tracing::error!("store down: {why}");
        report.store_error = Some(why.clone());
        active.insert(
            (CENTRE.to_owned(), Rule::StoreDown),
            Finding {
                rule: Some(Rule::StoreDown),
                health: Health::Error,
                summary: format!(
                    "{why}. Sites cannot upload or send heartbeats meanwhile; per-site dead-man and stalled \
                     alerts are held back while it lasts"
                ),
                samples: Vec::new(),
            },
        );
    }

    let t = now.to_string();
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

    // A centre-side outage is one incident, not one per site. Many sites silent at once (that
    // were alive before and have no dead-man incident yet): one (centre) incident listing them.
    let newly_silent: Vec<&str> = active
        .keys()
        .filter(|(site, rule)| {
            *rule == Rule::DeadMan
                && seen.contains(site.as_str())
                && !open.contains_key(&(site.clone(), Rule::DeadMan))
        })
        .map(|(site, _)| site.as_str())
        .collect();
    let ms = &cfg.rules.mass_silence;
    let needed = ms.min_sites.max((enabled.len() as u64 * ms.percent).div_ceil(100));
    // The store down explains silence by itself: no second centre incident for it.
    let store_down = active.contains_key(&(CENTRE.to_owned(), Rule::StoreDown));
    let mass = !store_down && rule_enabled(cfg, Rule::MassSilence) && newly_silent.len() as u64 >= needed;
    if mass {
        let f = Finding {
            rule: Some(Rule::MassSilence),
            health: Health::Silent,
            summary: format!(
                "{} of {} enabled sites went silent at once (no upload and no heartbeat for {} h): a centre-side \
                 outage (the store, its network, the upload route) is likely; no dead-man mail is sent per site \
                 while this lasts",
                newly_silent.len(),
                enabled.len(),
                cfg.rules.dead_man.hours
            ),
            samples: newly_silent.iter().take(cfg.mail.samples.max(1)).map(|s| (*s).to_owned()).collect(),
        };
        active.insert((CENTRE.to_owned(), Rule::MassSilence), f);
    }
    // Held back: rules whose per-site incidents are not opened now (while the store is down
    // they are not closed either: nothing reaches the store, so nothing has recovered).
    let held: &[Rule] = if store_down {
        &[Rule::DeadMan, Rule::Stalled]
    } else if mass {
        &[Rule::DeadMan]
    } else {
        &[]
    };
    active.retain(|(site, rule), _| {
        site == CENTRE || !held.contains(rule) || open.contains_key(&(site.clone(), *rule))
    });

    // New and still-unmailed incidents.
    let mut attempted = false;
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
        attempted = true;
        match mailer.send(&mail).await {
            Ok(Sent::Delivered { refused }) => {
                mark(db, "UPDATE alert_incidents SET opened_mail_at = $1 WHERE id = $2", &t, id).await?;
                report.mails_sent += 1;
                report.mail_errors.extend(refused);
            }
            Ok(Sent::NoRecipients) => {
                mark(db, "UPDATE alert_incidents SET opened_mail_at = $1 WHERE id = $2", "", id).await?
            }
            Err(e) => report.mail_errors.push(e.to_string()),
        }
    }

    // Incidents whose finding is gone: close them and send the recovery mail, unless nothing
    // recovered: the site was disabled (or removed) or the rule switched off. Those close with
    // the reason in their summary and no mail.
    for (site, rule) in open.keys() {
        if active.contains_key(&(site.clone(), *rule)) {
            continue;
        }
        if store_down && (*rule == Rule::MassSilence || site != CENTRE && held.contains(rule)) {
            continue;
        }
        let why_not = if !rule_enabled(cfg, *rule) {
            Some("rule switched off")
        } else if site != CENTRE && !enabled.contains(site.as_str()) {
            Some("site disabled or removed")
        } else {
            None
        };
        // Every open row of the key (overlapping checks before the lease could open two).
        let _w = db.write_guard().await;
        match why_not {
            None => {
                sqlx::query(
                    "UPDATE alert_incidents SET closed_at = $1 WHERE rule = $2 AND site = $3 AND closed_at IS NULL",
                )
                .bind(&t)
                .bind(rule.as_str())
                .bind(site)
                .execute(&db.pool)
                .await?;
                tracing::info!(site, rule = rule.as_str(), "recovered");
            }
            Some(why) => {
                sqlx::query(
                    "UPDATE alert_incidents SET closed_at = $1, closed_mail_at = '', summary = summary || $4 \
                     WHERE rule = $2 AND site = $3 AND closed_at IS NULL",
                )
                .bind(&t)
                .bind(rule.as_str())
                .bind(site)
                .bind(format!(" [closed without recovery: {why}]"))
                .execute(&db.pool)
                .await?;
                tracing::info!(site, rule = rule.as_str(), "incident closed without recovery mail: {why}");
            }
        }
        drop(_w);
        report.closed.push((site.clone(), rule.as_str().to_owned()));
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
        attempted = true;
        match mailer.send(&mail).await {
            Ok(sent) => {
                mark(db, "UPDATE alert_incidents SET closed_mail_at = $1 WHERE id = $2", &t, id).await?;
                if let Sent::Delivered { refused } = sent {
                    report.mails_sent += 1;
                    report.mail_errors.extend(refused);
                }
            }
            Err(e) => report.mail_errors.push(e.to_string()),
        }
    }
    // No mail went out this time: is the relay there for the next one?
    if !attempted && let Err(e) = mailer.probe().await {
        report.mail_errors.push(e);
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

    /// `kizuna admin check` exits non-zero when mail was not delivered or the store is down.
    #[test]
    fn undelivered_mail_or_a_store_down_are_problems() {
        assert!(CheckReport::default().problems().is_empty());
        let r =
            CheckReport { mail_errors: vec!["gone@x: permanent error (550)".into()], ..Default::default() };
        assert_eq!(r.problems(), ["mail not delivered: gone@x: permanent error (550)"]);
        let r = CheckReport { store_error: Some("refused".into()), ..Default::default() };
        assert_eq!(r.problems(), ["store down: refused"]);
    }
}
