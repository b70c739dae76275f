//! What the store knows about each site, read from the IndexDB: uploads, heartbeats, the agents'
//! daily logs, rejections and the agents' quarantine.

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
#[derive(Debug, Clone)]
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

/// Reads one site's facts. `rejected_limit` caps the rejected files read; `queue_limit` is the
/// outbox depth from which the heartbeat history is read ([`QueueHistory`]).
pub async fn site_facts(
    db: &Db,
    site: Site,
    rejected_limit: i64,
    queue_limit: u64,
) -> Result<SiteFacts, MonitorError> {
    let name = site.name.clone();
    let activity = match sqlx::query(
        "SELECT last_batch_at, last_stored_at, last_heartbeat_at, agent_version, queue_depth, quarantined, \
         agent_last_upload FROM site_status WHERE site = $1",
    )
    .bind(&name)
    .fetch_optional(&db.pool)
    .await?
    {
        Some(r) => Activity {
            last_batch_at: r.try_get("last_batch_at")?,
            last_stored_at: r.try_get("last_stored_at")?,
            last_heartbeat_at: r.try_get("last_heartbeat_at")?,
            agent_version: r.try_get("agent_version")?,
            queue_depth: r.try_get("queue_depth")?,
            quarantined: r.try_get("quarantined")?,
            agent_last_upload: r.try_get("agent_last_upload")?,
        },
        None => Activity::default(),
    };
    let daily = sqlx::query(
        "SELECT day, stored, duplicate, rejected, bytes FROM site_daily WHERE site = $1 ORDER BY day DESC LIMIT 60",
    )
    .bind(&name)
    .fetch_all(&db.pool)
    .await?
    .iter()
    .map(|r| {
        Ok(DayCount {
            day: r.try_get("day")?,
            stored: r.try_get("stored")?,
            duplicate: r.try_get("duplicate")?,
            rejected: r.try_get("rejected")?,
            bytes: r.try_get("bytes")?,
        })
    })
    .collect::<Result<Vec<_>, sqlx::Error>>()?;
    let oldest = daily.last().map(|d| d.day.clone()).unwrap_or_default();
    let reject_codes = sqlx::query(
        "SELECT code, CAST(SUM(files) AS BIGINT) AS n FROM site_reject_codes WHERE site = $1 AND day >= $2 \
         GROUP BY code ORDER BY n DESC, code",
    )
    .bind(&name)
    .bind(&oldest)
    .fetch_all(&db.pool)
    .await?
    .iter()
    .map(|r| Ok((r.try_get("code")?, r.try_get("n")?)))
    .collect::<Result<Vec<_>, sqlx::Error>>()?;
    let rejected = sqlx::query(
        "SELECT facility_id, path, sha256, codes, reason, first_at, last_at, times FROM rejections \
         WHERE site = $1 ORDER BY last_at DESC LIMIT $2",
    )
    .bind(&name)
    .bind(rejected_limit)
    .fetch_all(&db.pool)
    .await?
    .into_iter()
    .map(|r| {
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
    })
    .collect::<Result<Vec<_>, sqlx::Error>>()?;
    let mut quarantine = sqlx::query(
        "SELECT file, origin, sha256, codes, reason, quarantined_at, reported_at FROM agent_quarantine WHERE site = $1",
    )
    .bind(&name)
    .fetch_all(&db.pool)
    .await?
    .into_iter()
    .map(|r| {
        Ok(Quarantined {
            file: r.try_get("file")?,
            origin: r.try_get("origin")?,
            sha256: r.try_get("sha256")?,
            codes: codes(r.try_get("codes")?),
            reason: r.try_get("reason")?,
            quarantined_at: r.try_get("quarantined_at")?,
            reported_at: r.try_get("reported_at")?,
        })
    })
    .collect::<Result<Vec<_>, sqlx::Error>>()?;
    // Agents write local times with an offset: order by the instant, not the text.
    quarantine.sort_by_key(|q| std::cmp::Reverse(crate::time::parse(&q.quarantined_at)));
    let newest_log = sqlx::query(
        "SELECT day, files_uploaded, files_quarantined, upload_errors FROM daily_logs WHERE site = $1 \
         ORDER BY day DESC LIMIT 1",
    )
    .bind(&name)
    .fetch_optional(&db.pool)
    .await?;
    let newest_log = match newest_log {
        None => None,
        Some(r) => {
            let day: String = r.try_get("day")?;
            let count = |level: &'static str| {
                let (name, day) = (name.clone(), day.clone());
                async move {
                    let r = sqlx::query(
                        "SELECT COUNT(*) AS n FROM daily_log_lines WHERE site = $1 AND day = $2 AND level = $3",
                    )
                    .bind(name)
                    .bind(day)
                    .bind(level)
                    .fetch_one(&db.pool)
                    .await?;
                    r.try_get::<i64, _>("n")
                }
            };
            Some(DailyLogSummary {
                files_uploaded: r.try_get("files_uploaded")?,
                files_quarantined: r.try_get("files_quarantined")?,
                upload_errors: r.try_get("upload_errors")?,
                errors: count("ERROR").await?,
                warnings: count("WARN").await?,
                day,
            })
        }
    };
    let log_lines = sqlx::query(
        "SELECT day, time, level, message FROM daily_log_lines WHERE site = $1 AND level IN ('ERROR', 'WARN') \
         ORDER BY day DESC, line_no LIMIT 200",
    )
    .bind(&name)
    .fetch_all(&db.pool)
    .await?
    .into_iter()
    .map(|r| {
        Ok(LogLine {
            day: r.try_get("day")?,
            time: r.try_get("time")?,
            level: r.try_get("level")?,
            message: r.try_get("message")?,
        })
    })
    .collect::<Result<Vec<_>, sqlx::Error>>()?;
    let queue_history = match activity.queue_depth {
        Some(q) if q >= 0 && q as u64 >= queue_limit => {
            let limit = i64::try_from(queue_limit).unwrap_or(i64::MAX);
            let r = sqlx::query(
                "SELECT (SELECT MAX(received_at) FROM heartbeats WHERE site = $1 AND queue_depth < $2) AS last_below, \
                 (SELECT MIN(received_at) FROM heartbeats WHERE site = $1) AS oldest",
            )
            .bind(&name)
            .bind(limit)
            .fetch_one(&db.pool)
            .await?;
            Some(QueueHistory { last_below: r.try_get("last_below")?, oldest: r.try_get("oldest")? })
        }
        _ => None,
    };
    Ok(SiteFacts {
        site,
        activity,
        daily,
        reject_codes,
        rejected,
        quarantine,
        newest_log,
        log_lines,
        queue_history,
    })
}

/// Facts of every site, by name.
pub async fn all_sites(db: &Db, cfg: &crate::Config) -> Result<Vec<SiteFacts>, MonitorError> {
    let mut out = Vec::new();
    for site in kizuna_store::sites::list_sites(db).await? {
        out.push(site_facts(db, site, 200, cfg.rules.stalled.queue_depth).await?);
    }
    Ok(out)
}

/// One site by name, or `None`.
pub async fn one_site(db: &Db, name: &str, cfg: &crate::Config) -> Result<Option<SiteFacts>, MonitorError> {
    let site = kizuna_store::sites::list_sites(db).await?.into_iter().find(|s| s.name == name);
    match site {
        Some(s) => Ok(Some(site_facts(db, s, 500, cfg.rules.stalled.queue_depth).await?)),
        None => Ok(None),
    }
}
