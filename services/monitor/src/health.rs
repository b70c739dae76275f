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
    /// The agent heart-beats but its uploads do not reach the store.
    Stalled,
    /// Centre-wide: the store's `/healthz` fails.
    StoreDown,
    /// Centre-wide: many sites went silent at once (one incident instead of one per site).
    MassSilence,
}

impl Rule {
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::AgentErrors => "agent_errors",
            Rule::Rejects => "rejects",
            Rule::DeadMan => "dead_man",
            Rule::ReplicationLag => "replication_lag",
            Rule::Stalled => "stalled",
            Rule::StoreDown => "store_down",
            Rule::MassSilence => "mass_silence",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Rule::AgentErrors,
            Rule::Rejects,
            Rule::DeadMan,
            Rule::ReplicationLag,
            Rule::Stalled,
            Rule::StoreDown,
            Rule::MassSilence,
        ]
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

/// `hours` as a duration; a value past `Config::check`'s bounds (a config built in code) must
/// still not panic: every page and the alert check call this.
fn hours(h: f64) -> jiff::SignedDuration {
    jiff::SignedDuration::try_from_secs_f64(h * 3600.0).unwrap_or(jiff::SignedDuration::MAX)
}

/// When the site was last seen alive (an upload or a heartbeat).
pub fn last_seen(facts: &SiteFacts) -> Option<jiff::Timestamp> {
    let a = &facts.activity;
    [&a.last_heartbeat_at, &a.last_batch_at].into_iter().flatten().filter_map(|t| time::parse(t)).max()
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

    // Dead-man: neither an upload nor a heartbeat for N hours. A site never seen gets the same
    // grace after it was added (it is being provisioned: token issued, agent not yet installed).
    let last_seen = last_seen(facts);
    let limit = hours(rules.dead_man.hours);
    let created = time::parse(&facts.site.created_at);
    let silent = match last_seen {
        None => created.is_none_or(|c| now.duration_since(c) > limit),
        Some(t) => now.duration_since(t) > limit,
    };
    if last_seen.is_none() && !silent {
        out.push(Finding {
            rule: None,
            health: Health::Warning,
            summary: format!(
                "new site: no upload and no heartbeat received yet (added {}; the dead-man rule applies {} h after that)",
                time::show(&facts.site.created_at),
                rules.dead_man.hours
            ),
            samples: Vec::new(),
        });
    }
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

    // Stalled: the agent is alive but its uploads do not reach the store (a full volume at the
    // centre, a proxy refusing the batches, a broken upload route).
    let st = &rules.stalled;
    if st.enabled && facts.site.enabled && !silent && last_seen.is_some() {
        let q = a.queue_depth.unwrap_or(0).max(0);
        let stall = hours(st.hours);
        let last_upload =
            [&a.last_batch_at, &a.last_stored_at].into_iter().flatten().filter_map(|t| time::parse(t)).max();
        let since = last_upload.or(created);
        let no_upload = q > 0 && since.is_some_and(|t| now.duration_since(t) > stall);
        let full_since = facts.queue_history.as_ref().and_then(|h| match &h.last_below {
            Some(t) => time::parse(t),
            None => h.oldest.as_deref().and_then(time::parse),
        });
        let full = q as u64 >= st.queue_depth && full_since.is_some_and(|t| now.duration_since(t) > stall);
        if no_upload || full {
            let upload = match last_upload {
                Some(t) => format!("last upload {} ago", time::ago(now, &t.to_string()).unwrap_or_default()),
                None => "no upload ever".to_owned(),
            };
            let summary = if no_upload {
                format!(
                    "uploads stalled: {q} files wait in the agent's outbox and no batch reached the store for more \
                     than {} h ({upload}); the agent still sends heartbeats",
                    st.hours
                )
            } else {
                format!(
                    "uploads fall behind: the agent's outbox has held {} or more files for more than {} h (now {q}; \
                     {upload})",
                    st.queue_depth, st.hours
                )
            };
            out.push(Finding {
                rule: Some(Rule::Stalled),
                health: Health::Error,
                summary,
                samples: Vec::new(),
            });
        }
    }

    // Rejects within the window: the store's rejections and the agent's own quarantine, each
    // timed by the centre's clock (the store's rejection time; when the store received the
    // heartbeat listing the file), never the agent's: a file quarantined during a long outage or
    // by an agent whose clock is behind is new to the centre when it is first reported.
    let window = jiff::SignedDuration::from_secs(
        i64::try_from(rules.rejects.window_hours).unwrap_or(i64::MAX).saturating_mul(3600),
    );
    let cutoff = now.checked_sub(window).unwrap_or(jiff::Timestamp::MIN);
    let in_window = |t: &str| time::parse(t).is_some_and(|t| t >= cutoff);
    let mut samples = Vec::new();
    let mut by_code: BTreeMap<&str, u64> = BTreeMap::new();
    let mut n = 0u64;
    // Codes once per file: a file with the same violation in two segments is one file.
    fn distinct(codes: &[String]) -> Vec<&str> {
        let mut v: Vec<&str> = codes.iter().map(String::as_str).collect();
        v.sort_unstable();
        v.dedup();
        v
    }
    for r in facts.rejected.iter().filter(|r| in_window(&r.last_at)) {
        n += 1;
        let codes = distinct(&r.codes);
        for c in &codes {
            *by_code.entry(c).or_default() += 1;
        }
        samples.push(format!("{} (rejected by the store: {})", r.path, codes.join(", ")));
    }
    for q in facts.quarantine.iter().filter(|q| q.origin == "agent" && in_window(&q.reported_at)) {
        n += 1;
        let codes = distinct(&q.codes);
        for c in &codes {
            *by_code.entry(c).or_default() += 1;
        }
        samples.push(format!("{} (quarantined by the agent: {})", q.file, codes.join(", ")));
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
            health: if over { Health::Error } else { shown(rules.rejects.enabled) },
            summary: format!(
                "{n} {} rejected in the last {} h: {codes}{}",
                if n == 1 { "file" } else { "files" },
                rules.rejects.window_hours,
                switched_off(rules.rejects.enabled, "rejects")
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
                health: if rules.agent_errors.enabled { Health::Error } else { Health::Ok },
                summary: format!(
                    "the agent's log of {} has {} ERROR lines{}",
                    log.day,
                    log.errors,
                    switched_off(rules.agent_errors.enabled, "agent_errors")
                ),
                samples: lines("ERROR"),
            });
        } else if fresh && log.warnings > 0 {
            out.push(Finding {
                rule: None,
                health: shown(rules.agent_errors.enabled),
                summary: format!(
                    "the agent's log of {} has {} WARN lines{}",
                    log.day,
                    log.warnings,
                    switched_off(rules.agent_errors.enabled, "agent_errors")
                ),
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
            health: shown(rules.rejects.enabled),
            summary: format!(
                "{older_quarantine} older files wait in the agent's quarantine{}",
                switched_off(rules.rejects.enabled, "rejects")
            ),
            samples: Vec::new(),
        });
    }
    out
}

/// A finding below its rule's threshold colours the screen (warning) while the rule is on; with
/// the rule switched off it is still listed, but leaves the site's colour alone.
fn shown(rule_enabled: bool) -> Health {
    if rule_enabled { Health::Warning } else { Health::Ok }
}

/// What a finding of a switched-off rule says after its summary.
fn switched_off(rule_enabled: bool, rule: &str) -> String {
    if rule_enabled { String::new() } else { format!(" (rule `{rule}` is switched off)") }
}

/// The health the findings add up to: silent before error before warning.
pub fn health_of(findings: &[Finding]) -> Health {
    findings.iter().map(|f| f.health).max().unwrap_or(Health::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::Quarantined;

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
            queue_history: None,
        };
        for hours in [f64::NAN, f64::INFINITY, 1e300, -1.0] {
            let mut cfg = Config::default();
            cfg.rules.dead_man.hours = hours;
            cfg.rules.rejects.window_hours = u64::MAX;
            cfg.rules.agent_errors.max_age_days = u32::MAX;
            findings(&facts, &cfg, jiff::Timestamp::now());
        }
    }

    fn site(created_at: &str) -> SiteFacts {
        SiteFacts {
            site: kizuna_store::sites::Site {
                name: "s".into(),
                facilities: vec![],
                allow: vec![],
                enabled: true,
                created_at: created_at.into(),
                token_rotated_at: String::new(),
            },
            activity: Default::default(),
            daily: vec![],
            reject_codes: vec![],
            rejected: vec![],
            quarantine: vec![],
            newest_log: None,
            log_lines: vec![],
            queue_history: None,
        }
    }

    fn agent_quarantined(file: &str, codes: &[&str], quarantined_at: &str, reported_at: &str) -> Quarantined {
        Quarantined {
            file: file.into(),
            origin: "agent".into(),
            sha256: String::new(),
            codes: codes.iter().map(|c| (*c).to_owned()).collect(),
            reason: String::new(),
            quarantined_at: quarantined_at.into(),
            reported_at: reported_at.into(),
        }
    }

    /// A file quarantined 2.6 days ago by the agent's clock (an outage, a clock behind) but
    /// first reported to the centre now is a reject of now; one reported 2 days ago is not, even
    /// if the agent's clock says it is new. A file with the same code twice counts once.
    #[test]
    fn rejects_are_timed_by_the_centre_and_counted_once_per_file() {
        let now: jiff::Timestamp = "2026-11-28T00:00:00Z".parse().unwrap();
        let mut f = site("2026-01-01T00:00:00Z");
        f.activity.last_heartbeat_at = Some(now.to_string());
        f.quarantine = vec![
            agent_quarantined(
                "a",
                &["required-field-missing", "required-field-missing"],
                "2026-11-25T06:14:00.000+09:00",
                "2026-11-27T23:59:00Z",
            ),
            agent_quarantined(
                "b",
                &["care-date-mismatch"],
                "2026-11-28T08:59:00+09:00",
                "2026-11-26T00:00:00Z",
            ),
        ];
        let cfg = Config::default();
        let fs = findings(&f, &cfg, now);
        let r = fs.iter().find(|x| x.rule == Some(Rule::Rejects)).unwrap_or_else(|| panic!("{fs:?}"));
        assert_eq!(
            r.summary,
            "1 file rejected in the last 24 h: 1× required-field-missing (message content violation)"
        );
        assert_eq!(r.samples, ["a (quarantined by the agent: required-field-missing)"]);
    }

    fn log(day: &str, errors: i64, warnings: i64) -> crate::status::DailyLogSummary {
        crate::status::DailyLogSummary {
            day: day.into(),
            files_uploaded: 0,
            files_quarantined: 0,
            upload_errors: 0,
            errors,
            warnings,
        }
    }

    /// `rules.rejects` and `rules.agent_errors` switched off: their findings are still listed
    /// but neither mail nor colour the site; switched on, the same facts are an error.
    #[test]
    fn a_switched_off_rule_neither_alerts_nor_colours_the_site() {
        let now: jiff::Timestamp = "2026-11-28T00:00:00Z".parse().unwrap();
        let mut f = site("2026-01-01T00:00:00Z");
        f.activity.last_heartbeat_at = Some(now.to_string());
        f.quarantine = vec![agent_quarantined("a", &["care-date-mismatch"], "", "2026-11-27T23:00:00Z")];
        f.newest_log = Some(log("2026-11-27", 3, 1));
        let on = findings(&f, &Config::default(), now);
        assert_eq!(health_of(&on), Health::Error, "{on:?}");
        assert!(
            on.iter().any(|x| x.rule == Some(Rule::Rejects))
                && on.iter().any(|x| x.rule == Some(Rule::AgentErrors))
        );

        let mut cfg = Config::default();
        cfg.rules.rejects.enabled = false;
        cfg.rules.agent_errors.enabled = false;
        let off = findings(&f, &cfg, now);
        assert_eq!(health_of(&off), Health::Ok, "{off:?}");
        assert!(off.iter().all(|x| x.rule.is_none()), "{off:?}");
        assert!(off.iter().any(|x| x.summary.ends_with("(rule `rejects` is switched off)")), "{off:?}");
        assert!(off.iter().any(|x| x.summary.ends_with("(rule `agent_errors` is switched off)")), "{off:?}");
        f.newest_log = Some(log("2026-11-27", 0, 2));
        f.quarantine[0].reported_at = "2026-11-01T00:00:00Z".into();
        assert_eq!(health_of(&findings(&f, &cfg, now)), Health::Ok, "WARN lines and older quarantine too");
    }

    /// A site just added (token issued, agent not yet installed) is not silent before
    /// `dead_man.hours`; after that it is.
    #[test]
    fn a_new_site_gets_the_dead_man_hours_as_grace() {
        let now: jiff::Timestamp = "2026-11-28T00:00:00Z".parse().unwrap();
        let cfg = Config::default();
        let young = findings(&site("2026-11-27T20:00:00Z"), &cfg, now);
        assert!(young.iter().all(|f| f.rule.is_none()), "{young:?}");
        assert!(young[0].summary.starts_with("new site:"), "{young:?}");
        let old = findings(&site("2026-11-27T17:00:00Z"), &cfg, now);
        assert_eq!(health_of(&old), Health::Silent, "{old:?}");
        assert!(old.iter().any(|f| f.rule == Some(Rule::DeadMan)));
    }

    /// Heart-beating with a full outbox: no batch for `stalled.hours` (or the outbox at or above
    /// `queue_depth` over the heartbeat history for that long) is the stalled rule.
    #[test]
    fn a_live_site_whose_uploads_stop_or_fall_behind_is_stalled() {
        let now: jiff::Timestamp = "2026-11-28T00:00:00Z".parse().unwrap();
        let cfg = Config::default();
        let mut f = site("2026-11-01T00:00:00Z");
        f.activity.last_heartbeat_at = Some("2026-11-27T23:59:00Z".into());
        f.activity.last_batch_at = Some("2026-11-27T17:00:00Z".into());
        f.activity.queue_depth = Some(0);
        assert!(findings(&f, &cfg, now).iter().all(|x| x.rule != Some(Rule::Stalled)), "empty outbox");
        f.activity.queue_depth = Some(5);
        let fs = findings(&f, &cfg, now);
        assert!(
            fs.iter().any(|x| x.rule == Some(Rule::Stalled) && x.summary.starts_with("uploads stalled")),
            "{fs:?}"
        );
        // Batches arrive, but the outbox stays full for longer than the limit.
        f.activity.last_batch_at = Some("2026-11-27T23:58:00Z".into());
        f.activity.queue_depth = Some(5000);
        f.queue_history = Some(crate::status::QueueHistory {
            last_below: Some("2026-11-27T12:00:00Z".into()),
            oldest: Some("2026-11-20T00:00:00Z".into()),
        });
        let fs = findings(&f, &cfg, now);
        assert!(
            fs.iter().any(|x| x.rule == Some(Rule::Stalled) && x.summary.starts_with("uploads fall behind")),
            "{fs:?}"
        );
        f.queue_history.as_mut().unwrap().last_below = Some("2026-11-27T22:00:00Z".into());
        assert!(findings(&f, &cfg, now).iter().all(|x| x.rule != Some(Rule::Stalled)), "full for 2 h only");
    }
}
