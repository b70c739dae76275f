//! What the store knows about each site, read from the IndexDB: uploads, heartbeats, the agents'
//! daily logs, rejections and the agents' quarantine.

use std::collections::HashMap;

use kizuna_store::Db;
use kizuna_store::sites::Site;
use sqlx::Row;

use crate::MonitorError;

/// The latest state of a site's uploads and agent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Activity {
    pub last_batch_at: Option<String>,
    pub last_stored_at: Option<String>,
    pub last_heartbeat_at: Option<String>,
    pub agent_version: Option<String>,
    pub queue_depth: Option<i64>,
    pub quarantined: Option<i64>,
    pub agent_last_upload: Option<String>,
}

/// Files stored, duplicate and rejected on one UTC day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayCount {
    pub day: String,
    pub stored: i64,
    pub duplicate: i64,
    pub rejected: i64,
    pub bytes: i64,
}

/// A file the store rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub facility: String,
    pub path: String,
    pub sha256: String,
    pub codes: Vec<String>,
    pub reason: String,
    pub first_at: String,
    pub last_at: String,
    pub times: i64,
}

/// A file in the agent's quarantine, as its last heartbeat listed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quarantined {
    pub file: String,
    /// `agent` or `store`.
    pub origin: String,
    pub sha256: String,
    pub codes: Vec<String>,
    pub reason: String,
    /// When the agent quarantined it, by the agent's clock.
    pub quarantined_at: String,
    /// When the store received the heartbeat listing it, by the centre's clock.
    pub reported_at: String,
}

/// A site's outbox over the store's heartbeat history, read when its newest heartbeat reports
/// at least `rules.stalled.queue_depth` files waiting.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueHistory {
    /// The newest heartbeat whose outbox was below the limit.
    pub last_below: Option<String>,
    /// The oldest heartbeat kept.
    pub oldest: Option<String>,
}

/// One line of an agent's daily log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub day: String,
    pub time: String,
    pub level: String,
    pub message: String,
}

/// The newest daily log a site's agent sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DailyLogSummary {
    pub day: String,
    pub files_uploaded: i64,
    pub files_quarantined: i64,
    pub upload_errors: i64,
    pub errors: i64,
    pub warnings: i64,
}

/// Everything the monitor uses about one site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteFacts {
    pub site: Site,
    pub activity: Activity,
    /// Newest first, at most 60 days.
    pub daily: Vec<DayCount>,
    /// Rejected files per violation code over the days in `daily`.
    pub reject_codes: Vec<(String, i64)>,
    /// Newest first.
    pub rejected: Vec<Rejected>,
    /// Newest first.
    pub quarantine: Vec<Quarantined>,
    pub newest_log: Option<DailyLogSummary>,
    /// ERROR and WARN lines of the newest daily logs (newest day first).
    pub log_lines: Vec<LogLine>,
    /// Only when the newest heartbeat's outbox is at or above the stalled rule's `queue_depth`.
    pub queue_history: Option<QueueHistory>,
}

fn codes(s: String) -> Vec<String> {
    s.split(',').filter(|c| !c.is_empty()).map(str::to_owned).collect()
}

/// Days of `site_daily` read per site (the overview's chart shows 30).
const DAYS: i64 = 60;
/// ERROR and WARN lines of the agents' logs read per site.
const LOG_LINES: i64 = 200;

/// Which sites a read covers: every site (the overview and the alert check) or one (its page).
/// Either way each table is read in one query, so the overview costs the same ~10 queries for
/// 900 sites as for one (a query per table and site took 4–5 s for 900 sites).
#[derive(Clone, Copy)]
enum Scope<'a> {
    All,
    One(&'a str),
}

impl<'a> Scope<'a> {
    /// `WHERE <column> = $1` for one site, nothing for all.
    fn filter(self, column: &str) -> String {
        match self {
            Scope::All => String::new(),
            Scope::One(_) => format!(" WHERE {column} = $1"),
        }
    }

    /// `AND <column> = $1` for one site, nothing for all.
    fn and(self, column: &str) -> String {
        match self {
            Scope::All => String::new(),
            Scope::One(_) => format!(" AND {column} = $1"),
        }
    }

    /// Runs `sql` (which names the site as `$1` where [`Scope::filter`] put it) and returns its rows.
    async fn rows(self, db: &Db, sql: String) -> Result<Vec<sqlx::any::AnyRow>, sqlx::Error> {
        let q = sqlx::query(sqlx::AssertSqlSafe(sql));
        let q = match self {
            Scope::All => q,
            Scope::One(site) => q.bind(site),
        };
        q.fetch_all(&db.pool).await
    }
}

/// Which rows [`newest_per_site`] reads.
#[derive(Clone, Copy)]
struct PerSite<'a> {
    table: &'a str,
    columns: &'a str,
    order: &'a str,
    filter: &'a str,
    limit: i64,
}

/// The newest `limit` rows of `table` for each site (or the one site), `columns` of them, ordered
/// within a site by `order` (columns of `table`, each with its direction), `filter` an extra
/// condition on `table`'s rows (or empty). Each site's rows come from its own index range: a
/// window function over the whole table (ROW_NUMBER) sorted every row and took 4–9× longer on
/// SQLite with 900 sites. SQLite takes each site's row ids with `LIMIT`; PostgreSQL a LATERAL
/// join. Without `sorted` the rows come in no particular order (for a subquery).
fn newest_per_site(db: &Db, scope: Scope<'_>, q: &PerSite<'_>, sorted: bool) -> String {
    let PerSite { table, columns, order, filter, limit } = *q;
    let cond = if filter.is_empty() { String::new() } else { format!(" AND {filter}") };
    let prefixed =
        |list: &str| list.split(',').map(|c| format!("t.{}", c.trim())).collect::<Vec<_>>().join(", ");
    let outer = if sorted { format!(" ORDER BY t.site, {}", prefixed(order)) } else { String::new() };
    let which = scope.filter("s.name");
    match db.backend {
        kizuna_store::db::Backend::Sqlite => format!(
            "SELECT {} FROM sites s JOIN {table} t ON t.rowid IN (SELECT rowid FROM {table} WHERE site = s.name{cond} \
             ORDER BY {order} LIMIT {limit}){which}{outer}",
            prefixed(columns)
        ),
        kizuna_store::db::Backend::Postgres => format!(
            "SELECT {} FROM sites s CROSS JOIN LATERAL (SELECT {columns} FROM {table} WHERE site = s.name{cond} \
             ORDER BY {order} LIMIT {limit}) t{which}{outer}",
            prefixed(columns)
        ),
    }
}

/// Rows grouped by their `site` column, each group in the query's order.
fn by_site<T>(
    rows: Vec<sqlx::any::AnyRow>,
    f: impl Fn(&sqlx::any::AnyRow) -> Result<T, sqlx::Error>,
) -> Result<HashMap<String, Vec<T>>, sqlx::Error> {
    let mut out: HashMap<String, Vec<T>> = HashMap::new();
    for r in &rows {
        out.entry(r.try_get("site")?).or_default().push(f(r)?);
    }
    Ok(out)
}

/// Reads the facts of `sites` (all of them, or the one `scope` names). `rejected_limit` caps
/// the rejected files read per site; `queue_limit` is the outbox depth from which the heartbeat
/// history is read ([`QueueHistory`]).
async fn read_facts(
    db: &Db,
    sites: Vec<Site>,
    scope: Scope<'_>,
    rejected_limit: i64,
    queue_limit: u64,
) -> Result<Vec<SiteFacts>, MonitorError> {
    let mut activity = by_site(
        scope
            .rows(
                db,
                format!(
                    "SELECT site, last_batch_at, last_stored_at, last_heartbeat_at, agent_version, queue_depth, \
                     quarantined, agent_last_upload FROM site_status{}",
                    scope.filter("site")
                ),
            )
            .await?,
        |r| {
            Ok(Activity {
                last_batch_at: r.try_get("last_batch_at")?,
                last_stored_at: r.try_get("last_stored_at")?,
                last_heartbeat_at: r.try_get("last_heartbeat_at")?,
                agent_version: r.try_get("agent_version")?,
                queue_depth: r.try_get("queue_depth")?,
                quarantined: r.try_get("quarantined")?,
                agent_last_upload: r.try_get("agent_last_upload")?,
            })
        },
    )?;
    // Each site's newest DAYS days; the codes are summed over the same days.
    let days = |sorted| {
        let q = PerSite {
            table: "site_daily",
            columns: "site, day, stored, duplicate, rejected, bytes",
            order: "day DESC",
            filter: "",
            limit: DAYS,
        };
        newest_per_site(db, scope, &q, sorted)
    };
    let mut daily = by_site(scope.rows(db, days(true)).await?, |r| {
        Ok(DayCount {
            day: r.try_get("day")?,
            stored: r.try_get("stored")?,
            duplicate: r.try_get("duplicate")?,
            rejected: r.try_get("rejected")?,
            bytes: r.try_get("bytes")?,
        })
    })?;
    let mut reject_codes = by_site(
        scope
            .rows(
                db,
                format!(
                    "SELECT c.site AS site, c.code AS code, CAST(SUM(c.files) AS BIGINT) AS n FROM site_reject_codes c \
                     LEFT JOIN (SELECT site, MIN(day) AS oldest FROM ({}) w GROUP BY site) o \
                     ON o.site = c.site WHERE c.day >= COALESCE(o.oldest, ''){} \
                     GROUP BY c.site, c.code ORDER BY c.site, n DESC, c.code",
                    days(false),
                    scope.and("c.site")
                ),
            )
            .await?,
        |r| Ok((r.try_get("code")?, r.try_get("n")?)),
    )?;
    let mut rejected = by_site(
        scope
            .rows(
                db,
                newest_per_site(
                    db,
                    scope,
                    &PerSite {
                        table: "rejections",
                        columns: "site, facility_id, path, sha256, codes, reason, first_at, last_at, times, id",
                        order: "last_at DESC, id DESC",
                        filter: "",
                        limit: rejected_limit,
                    },
                    true,
                ),
            )
            .await?,
        |r| {
            Ok(Rejected {
                facility: r.try_get("facility_id")?,
                path: r.try_get("path")?,
                sha256: r.try_get("sha256")?,
                codes: codes(r.try_get("codes")?),
                reason: r.try_get("reason")?,
                first_at: r.try_get("first_at")?,
                last_at: r.try_get("last_at")?,
                times: r.try_get("times")?,
            })
        },
    )?;
    let mut quarantine = by_site(
        scope
            .rows(
                db,
                format!(
                    "SELECT site, file, origin, sha256, codes, reason, quarantined_at, reported_at FROM \
                     agent_quarantine{} ORDER BY site, file",
                    scope.filter("site")
                ),
            )
            .await?,
        |r| {
            Ok(Quarantined {
                file: r.try_get("file")?,
                origin: r.try_get("origin")?,
                sha256: r.try_get("sha256")?,
                codes: codes(r.try_get("codes")?),
                reason: r.try_get("reason")?,
                quarantined_at: r.try_get("quarantined_at")?,
                reported_at: r.try_get("reported_at")?,
            })
        },
    )?;
    // The newest daily log of each site, with its ERROR and WARN lines counted.
    let newest_log_day =
        format!("SELECT site, MAX(day) AS day FROM daily_logs{} GROUP BY site", scope.filter("site"));
    let mut level_counts: HashMap<(String, String), i64> = HashMap::new();
    for r in scope
        .rows(
            db,
            format!(
                "SELECT l.site AS site, l.level AS level, COUNT(*) AS n FROM daily_log_lines l \
                 JOIN ({newest_log_day}) d ON d.site = l.site AND d.day = l.day \
                 WHERE l.level IN ('ERROR', 'WARN') GROUP BY l.site, l.level"
            ),
        )
        .await?
    {
        level_counts.insert((r.try_get("site")?, r.try_get("level")?), r.try_get("n")?);
    }
    let mut newest_log = by_site(
        scope
            .rows(
                db,
                format!(
                    "SELECT g.site AS site, g.day AS day, g.files_uploaded AS files_uploaded, \
                     g.files_quarantined AS files_quarantined, g.upload_errors AS upload_errors FROM daily_logs g \
                     JOIN ({newest_log_day}) d ON d.site = g.site AND d.day = g.day"
                ),
            )
            .await?,
        |r| {
            let (site, day): (String, String) = (r.try_get("site")?, r.try_get("day")?);
            let count = |level: &str| level_counts.get(&(site.clone(), level.to_owned())).copied().unwrap_or(0);
            Ok(DailyLogSummary {
                files_uploaded: r.try_get("files_uploaded")?,
                files_quarantined: r.try_get("files_quarantined")?,
                upload_errors: r.try_get("upload_errors")?,
                errors: count("ERROR"),
                warnings: count("WARN"),
                day,
            })
        },
    )?;
    let mut log_lines = by_site(
        scope
            .rows(
                db,
                newest_per_site(
                    db,
                    scope,
                    &PerSite {
                        table: "daily_log_lines",
                        columns: "site, day, line_no, time, level, message",
                        order: "day DESC, line_no",
                        filter: "level IN ('ERROR', 'WARN')",
                        limit: LOG_LINES,
                    },
                    true,
                ),
            )
            .await?,
        |r| {
            Ok(LogLine {
                day: r.try_get("day")?,
                time: r.try_get("time")?,
                level: r.try_get("level")?,
                message: r.try_get("message")?,
            })
        },
    )?;

    let mut out = Vec::with_capacity(sites.len());
    for site in sites {
        let name = site.name.as_str();
        let activity = activity.remove(name).and_then(|mut v| v.pop()).unwrap_or_default();
        let queue_history = match activity.queue_depth {
            // Rare (an outbox at the stalled rule's depth): one query for that site.
            Some(q) if q >= 0 && q as u64 >= queue_limit => Some(queue_history(db, name, queue_limit).await?),
            _ => None,
        };
        let mut quarantine = quarantine.remove(name).unwrap_or_default();
        // Agents write local times with an offset: order by the instant, not the text.
        quarantine.sort_by_key(|q| std::cmp::Reverse(crate::time::parse(&q.quarantined_at)));
        out.push(SiteFacts {
            activity,
            daily: daily.remove(name).unwrap_or_default(),
            reject_codes: reject_codes.remove(name).unwrap_or_default(),
            rejected: rejected.remove(name).unwrap_or_default(),
            quarantine,
            newest_log: newest_log.remove(name).and_then(|mut v| v.pop()),
            log_lines: log_lines.remove(name).unwrap_or_default(),
            queue_history,
            site,
        });
    }
    Ok(out)
}

/// The site's outbox over the heartbeat history ([`QueueHistory`]).
async fn queue_history(db: &Db, site: &str, queue_limit: u64) -> Result<QueueHistory, sqlx::Error> {
    let limit = i64::try_from(queue_limit).unwrap_or(i64::MAX);
    let r = sqlx::query(
        "SELECT (SELECT MAX(received_at) FROM heartbeats WHERE site = $1 AND queue_depth < $2) AS last_below, \
         (SELECT MIN(received_at) FROM heartbeats WHERE site = $1) AS oldest",
    )
    .bind(site)
    .bind(limit)
    .fetch_one(&db.pool)
    .await?;
    Ok(QueueHistory { last_below: r.try_get("last_below")?, oldest: r.try_get("oldest")? })
}

/// Facts of every site, by name (up to 200 rejected files each).
pub async fn all_sites(db: &Db, cfg: &crate::Config) -> Result<Vec<SiteFacts>, MonitorError> {
    let sites = kizuna_store::sites::list_sites(db).await?;
    read_facts(db, sites, Scope::All, 200, cfg.rules.stalled.queue_depth).await
}

/// One site by name (up to 500 rejected files), or `None`.
pub async fn one_site(db: &Db, name: &str, cfg: &crate::Config) -> Result<Option<SiteFacts>, MonitorError> {
    let Some(site) = kizuna_store::sites::list_sites(db).await?.into_iter().find(|s| s.name == name) else {
        return Ok(None);
    };
    let facts = read_facts(db, vec![site], Scope::One(name), 500, cfg.rules.stalled.queue_depth).await?;
    Ok(facts.into_iter().next())
}
