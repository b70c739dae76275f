//! A site's health and the findings behind it. The same findings drive the admin screen's colour
//! and the alert mail, so what the screen shows and what is mailed never disagree.

use std::collections::BTreeMap;

use crate::config::Config;
use crate::status::SiteFacts;
use crate::time;

/// A site's health on the admin screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Health {
    Ok,
    Warning,
    Error,
    Silent,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Ok => "ok",
            Health::Warning => "warning",
            Health::Error => "error",
            Health::Silent => "silent",
        }
    }
}

/// Which alert rule a finding comes from (`None` rules only colour the screen).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rule {
    AgentErrors,
    Rejects,
    DeadMan,
    ReplicationLag,
}

impl Rule {
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::AgentErrors => "agent_errors",
            Rule::Rejects => "rejects",
            Rule::DeadMan => "dead_man",
            Rule::ReplicationLag => "replication_lag",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Rule::AgentErrors, Rule::Rejects, Rule::DeadMan, Rule::ReplicationLag]
            .into_iter()
            .find(|r| r.as_str() == s)
    }
}

/// Something worth an operator's attention.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// The alert rule, when this finding is one (mailed); `None` = shown only.
    pub rule: Option<Rule>,
    pub health: Health,
    /// One line: what happened.
    pub summary: String,
    /// Sample file names with their codes, or log lines.
    pub samples: Vec<String>,
}

/// The findings for one site at `now`.
pub fn findings(facts: &SiteFacts, cfg: &Config, now: jiff::Timestamp) -> Vec<Finding> {
    let mut out = Vec::new();
    let a = &facts.activity;
    let rules = &cfg.rules;
    if !facts.site.enabled {
        out.push(Finding {
            rule: None,
            health: Health::Warning,
            summary: "site is disabled: its uploads are refused".into(),
            samples: Vec::new(),
        });
    }

    // Dead-man: neither an upload nor a heartbeat for N hours.
    let last_seen =
        [&a.last_heartbeat_at, &a.last_batch_at].into_iter().flatten().filter_map(|t| time::parse(t)).max();
    // `Config::check` bounds the rules; a value past them (a config built in code) must still not
    // panic here: every page and the alert check call this.
    let limit = jiff::SignedDuration::try_from_secs_f64(rules.dead_man.hours * 3600.0)
        .unwrap_or(jiff::SignedDuration::MAX);
    let silent = match last_seen {
        None => true,
        Some(t) => now.duration_since(t) > limit,
    };
    if rules.dead_man.enabled && facts.site.enabled && silent {
        let summary = match last_seen {
            None => "no upload and no heartbeat received yet".to_owned(),
            Some(t) => format!(
                "no upload and no heartbeat for {} (limit {} h); last seen {}",
                time::ago(now, &t.to_string()).unwrap_or_default(),
                rules.dead_man.hours,
                time::show(&t.to_string())
            ),
        };
        out.push(Finding { rule: Some(Rule::DeadMan), health: Health::Silent, summary, samples: Vec::new() });
    }

    // Rejects within the window: the store's rejections and the agent's own quarantine.
    let window = jiff::SignedDuration::from_secs(
        i64::try_from(rules.rejects.window_hours).unwrap_or(i64::MAX).saturating_mul(3600),
    );
    let cutoff = now.checked_sub(window).unwrap_or(jiff::Timestamp::MIN);
    let in_window = |t: &str| time::parse(t).is_some_and(|t| t >= cutoff);
    let mut samples = Vec::new();
    let mut by_code: BTreeMap<&str, u64> = BTreeMap::new();
    let mut n = 0u64;
    for r in facts.rejected.iter().filter(|r| in_window(&r.last_at)) {
        n += 1;
        for c in &r.codes {
            *by_code.entry(c).or_default() += 1;
        }
        samples.push(format!("{} (rejected by the store: {})", r.path, r.codes.join(", ")));
    }
    for q in facts.quarantine.iter().filter(|q| q.origin == "agent" && in_window(&q.quarantined_at)) {
        n += 1;
        for c in &q.codes {
            *by_code.entry(c).or_default() += 1;
        }
        samples.push(format!("{} (quarantined by the agent: {})", q.file, q.codes.join(", ")));
    }
    if n > 0 {
        let codes = by_code
            .iter()
            .map(|(c, k)| format!("{k}× {c} ({})", crate::reasons::category(c).label()))
            .collect::<Vec<_>>()
            .join(", ");
        let over = rules.rejects.enabled && n >= rules.rejects.threshold;
        out.push(Finding {
            rule: over.then_some(Rule::Rejects),
            health: if over { Health::Error } else { Health::Warning },
            summary: format!(
                "{n} {} rejected in the last {} h: {codes}",
                if n == 1 { "file" } else { "files" },
                rules.rejects.window_hours
            ),
            samples: samples.into_iter().take(cfg.mail.samples.max(1)).collect(),
        });
    }

    // The agent's own log: the newest daily log's ERROR lines.
    if let Some(log) = &facts.newest_log {
        let fresh = log.day.parse::<jiff::civil::Date>().is_ok_and(|d| {
            let today = now.to_zoned(jiff::tz::TimeZone::UTC).date();
            today
                .since(d)
                .map(|s| i64::from(s.get_days()) <= i64::from(rules.agent_errors.max_age_days))
                .unwrap_or(false)
        });
        let lines = |level: &str| {
            facts
                .log_lines
                .iter()
                .filter(|l| l.day == log.day && l.level == level)
                .take(cfg.mail.samples.max(1))
                .map(|l| format!("{} {} {}", l.time, l.level, l.message))
                .collect::<Vec<_>>()
        };
        if fresh && log.errors > 0 {
            out.push(Finding {
                rule: rules.agent_errors.enabled.then_some(Rule::AgentErrors),
                health: if rules.agent_errors.enabled { Health::Error } else { Health::Warning },
                summary: format!("the agent's log of {} has {} ERROR lines", log.day, log.errors),
                samples: lines("ERROR"),
            });
        } else if fresh && log.warnings > 0 {
            out.push(Finding {
                rule: None,
                health: Health::Warning,
                summary: format!("the agent's log of {} has {} WARN lines", log.day, log.warnings),
                samples: lines("WARN"),
            });
        }
    }

    if let Some(q) = a.queue_depth
        && q as u64 >= cfg.health.queue_warning
    {
        out.push(Finding {
            rule: None,
            health: Health::Warning,
            summary: format!("{q} files waiting in the agent's outbox"),
            samples: Vec::new(),
        });
    }
    let older_quarantine = facts.quarantine.len() as i64;
    if older_quarantine > 0 && !out.iter().any(|f| f.summary.contains("rejected in the last")) {
        out.push(Finding {
            rule: None,
            health: Health::Warning,
            summary: format!("{older_quarantine} older files wait in the agent's quarantine"),
            samples: Vec::new(),
        });
    }
    out
}

/// The health the findings add up to: silent before error before warning.
pub fn health_of(findings: &[Finding]) -> Health {
    findings.iter().map(|f| f.health).max().unwrap_or(Health::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A configuration built in code skips `Config::check`: the findings must still not panic
    /// (they back every page of the admin screen and the alert check).
    #[test]
    fn rules_past_their_bounds_never_panic() {
        let facts = SiteFacts {
            site: kizuna_store::sites::Site {
                name: "s".into(),
                facilities: vec![],
                allow: vec![],
                enabled: true,
                created_at: String::new(),
                token_rotated_at: String::new(),
            },
            activity: crate::status::Activity {
                last_heartbeat_at: Some("2026-01-01T00:00:00Z".into()),
                ..Default::default()
            },
            daily: vec![],
            reject_codes: vec![],
            rejected: vec![],
            quarantine: vec![],
            newest_log: None,
            log_lines: vec![],
        };
        for hours in [f64::NAN, f64::INFINITY, 1e300, -1.0] {
            let mut cfg = Config::default();
            cfg.rules.dead_man.hours = hours;
            cfg.rules.rejects.window_hours = u64::MAX;
            cfg.rules.agent_errors.max_age_days = u32::MAX;
            findings(&facts, &cfg, jiff::Timestamp::now());
        }
    }
}
