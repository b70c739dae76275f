//! The admin screen's HTML, rendered on the server (`maud` escapes every value). No scripts: forms
//! post back and the server answers with a page.

use maud::{DOCTYPE, Markup, PreEscaped, html};

use crate::alerts::Incident;
use crate::health::{Finding, Health, health_of};
use crate::reasons;
use crate::status::{DayCount, SiteFacts};
use crate::time;
use kizuna_store::rerequests::RerequestRow;

/// A site name as a URL path part (site names are ASCII letters, digits, `-`, `_`, `.`).
pub fn path_part(site: &str) -> String {
    site.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

const STYLE: &str = "body{font-family:sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse;margin:.5em 0 1.5em}\
th,td{border:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:top;font-size:14px}th{background:#f3f3f3}\
.health{font-weight:bold;padding:.1em .5em;border-radius:.3em}.health-ok{background:#cfc}.health-warning{background:#fe9}\
.health-error{background:#f99}.health-silent{background:#bbb}code{font-size:13px}form.inline{display:inline}\
.token{font-family:monospace;background:#ffd;padding:.5em;border:1px solid #cc9}.muted{color:#777}";

/// The logged-in user shown in the page header, with the CSRF token of the logout form.
#[derive(Debug, Clone, Copy)]
pub struct Who<'a> {
    pub name: &'a str,
    pub csrf: &'a str,
}

fn page(title: &str, who: Option<Who>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { (title) " — Kizuna admin" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                p.muted {
                    a href="/" { "Kizuna admin" } " · upload monitoring"
                    @if let Some(w) = who {
                        " · logged in as " b id="user" { (w.name) } " "
                        form.inline method="post" action="/logout" { (csrf_field(w.csrf)) button type="submit" { "Log out" } }
                    }
                }
                (body)
            }
        }
    }
}

fn health_badge(h: Health) -> Markup {
    html! { span class=(format!("health health-{}", h.as_str())) { (h.as_str()) } }
}

fn when(now: jiff::Timestamp, t: &Option<String>) -> Markup {
    match t {
        None => html! { span.muted { "never" } },
        Some(t) => {
            html! { span title=(t) { (time::show(t)) " " span.muted { "(" (time::ago(now, t).unwrap_or_default()) " ago)" } } }
        }
    }
}

fn csrf_field(token: &str) -> Markup {
    html! { input type="hidden" name="csrf" value=(token); }
}

fn code_list(codes: &[String]) -> Markup {
    html! {
        ul {
            @for c in codes {
                li { code { (c) } " — " b { (reasons::category(c).label()) } ": " (reasons::describe(c)) }
            }
        }
    }
}

/// The overview: one row per site with its health; first, what keeps the centre's alerting from
/// working (`problems`: the store down, alert mail not delivered, the checks failing).
pub fn overview(
    sites: &[(SiteFacts, Vec<Finding>)],
    incidents: &[Incident],
    problems: &[String],
    now: jiff::Timestamp,
    who: Option<Who>,
) -> Markup {
    page(
        "Sites",
        who,
        html! {
            h1 { "Sites" }
            @if !problems.is_empty() {
                div id="centre-problems" class="health-error" style="padding:.5em 1em;margin-bottom:1em" {
                    b { "The centre's monitoring is not healthy — the site rows below may be out of date:" }
                    ul { @for p in problems { li { (p) } } }
                }
            }
            p.muted { "Times are UTC; \"today\" and the daily counts are UTC days (from 00:00 UTC)." }
            table id="sites" {
                tr {
                    th { "site" } th { "health" } th { "facilities" } th { "last upload" } th { "last heartbeat" }
                    th { "agent" } th { "queue" } th { "quarantined" } th { "today (UTC) stored / rejected" } th { "why" }
                }
                @for (f, findings) in sites {
                    @let h = health_of(findings);
                    @let today = f.daily.first().filter(|d| d.day == now.to_zoned(jiff::tz::TimeZone::UTC).date().to_string());
                    tr class=(format!("site site-{}", h.as_str())) data-site=(f.site.name) {
                        td { a href=(format!("/sites/{}", path_part(&f.site.name))) { (f.site.name) }
                             @if !f.site.enabled { " " span.muted { "(disabled)" } } }
                        td { (health_badge(h)) }
                        td { (f.site.facilities.join(", ")) }
                        td { (when(now, &f.activity.last_stored_at)) }
                        td { (when(now, &f.activity.last_heartbeat_at)) }
                        td { (f.activity.agent_version.clone().unwrap_or_default()) }
                        td { (f.activity.queue_depth.map(|q| q.to_string()).unwrap_or_default()) }
                        td { (f.activity.quarantined.map(|q| q.to_string()).unwrap_or_default()) }
                        td { (today.map(|d| d.stored).unwrap_or(0)) " / " (today.map(|d| d.rejected).unwrap_or(0)) }
                        td { @for x in findings { div { (x.summary) } } }
                    }
                }
            }
            h2 { "Alerts" }
            (incident_table(incidents))
        },
    )
}

fn incident_table(incidents: &[Incident]) -> Markup {
    html! {
        @if incidents.is_empty() {
            p.muted { "No alerts." }
        } @else {
            table id="incidents" {
                tr { th { "site" } th { "rule" } th { "opened" } th { "closed" } th { "what happened" } }
                @for i in incidents {
                    tr {
                        td { (i.site) } td { code { (i.rule) } } td { (time::show(&i.opened_at)) }
                        td { @match &i.closed_at { Some(c) => (time::show(c)), None => b { "open" } } }
                        td { (i.summary) }
                    }
                }
            }
        }
    }
}

/// The daily counts of the last `days` days as an inline SVG bar chart (stored in green, rejected
/// in red on top), oldest on the left.
pub fn daily_chart(daily: &[DayCount], today: jiff::civil::Date, days: i32) -> Markup {
    let (w, h, pad) = (24 * days, 160, 20);
    let dates: Vec<jiff::civil::Date> =
        (0..days).rev().filter_map(|i| today.checked_sub(jiff::Span::new().days(i)).ok()).collect();
    let find = |d: &jiff::civil::Date| daily.iter().find(|c| c.day == d.to_string());
    let max = dates.iter().filter_map(find).map(|c| c.stored + c.rejected).max().unwrap_or(0).max(1);
    // SVG elements are closed explicitly (`{}`): inside <svg> an HTML parser nests an unclosed <rect>.
    let scale = |n: i64| (n as f64) * f64::from(h - pad) / max as f64;
    html! {
        svg id="daily-chart" xmlns="http://www.w3.org/2000/svg" width=(w + 24) height=(h + 20) role="img"
            aria-label="files per day" {
            text x="2" y="12" font-size="11" { "max " (max) " files/day" }
            @for (i, d) in dates.iter().enumerate() {
                @let c = find(d);
                @let stored = c.map(|c| c.stored).unwrap_or(0);
                @let rejected = c.map(|c| c.rejected).unwrap_or(0);
                @let x = i as i32 * 24 + 2;
                @let hs = scale(stored);
                @let hr = scale(rejected);
                g class="day" data-day=(d) data-stored=(stored) data-rejected=(rejected) {
                    title { (d) ": " (stored) " stored, " (rejected) " rejected" }
                    rect class="stored" x=(x) y=(format!("{:.1}", f64::from(h) - hs)) width="20" height=(format!("{hs:.1}")) fill="#4a4" {}
                    rect class="rejected" x=(x) y=(format!("{:.1}", f64::from(h) - hs - hr)) width="20" height=(format!("{hr:.1}")) fill="#d33" {}
                    @if i % 7 == (days as usize - 1) % 7 {
                        text x=(x) y=(h + 14) font-size="10" { (d.strftime("%m-%d")) }
                    }
                }
            }
        }
    }
}

/// Everything the site page shows besides the facts.
pub struct SitePage<'a> {
    pub facts: &'a SiteFacts,
    pub findings: &'a [Finding],
    pub rerequests: &'a [RerequestRow],
    pub incidents: &'a [Incident],
    pub csrf: &'a str,
    /// The logged-in user's name (none without login).
    pub user: Option<&'a str>,
    pub now: jiff::Timestamp,
    /// A message after a form was handled.
    pub notice: Option<String>,
}

/// One site's page.
pub fn site(p: &SitePage) -> Markup {
    let f = p.facts;
    let name = &f.site.name;
    let base = format!("/sites/{}", path_part(name));
    let h = health_of(p.findings);
    page(
        name,
        p.user.map(|name| Who { name, csrf: p.csrf }),
        html! {
            h1 { "Site " (name) " " (health_badge(h)) }
            @if let Some(n) = &p.notice { p.token id="notice" { (n) } }
            @if !p.findings.is_empty() {
                ul id="findings" {
                    @for x in p.findings {
                        li class=(format!("finding finding-{}", x.health.as_str())) { (x.summary)
                            @if !x.samples.is_empty() { ul { @for s in &x.samples { li { code { (s) } } } } } }
                    }
                }
            }
            table {
                tr { th { "facilities" } td { (f.site.facilities.join(", ")) } }
                tr { th { "enabled" } td { (if f.site.enabled { "yes" } else { "no — uploads are refused" }) } }
                tr { th { "last upload (file stored)" } td { (when(p.now, &f.activity.last_stored_at)) } }
                tr { th { "last batch" } td { (when(p.now, &f.activity.last_batch_at)) } }
                tr { th { "last heartbeat" } td { (when(p.now, &f.activity.last_heartbeat_at)) } }
                tr { th { "agent version" } td { (f.activity.agent_version.clone().unwrap_or_default()) } }
                tr { th { "agent queue depth" } td { (f.activity.queue_depth.map(|q| q.to_string()).unwrap_or_default()) } }
                tr { th { "files in the agent's quarantine" } td { (f.activity.quarantined.map(|q| q.to_string()).unwrap_or_default()) } }
            }

            h2 { "Files per day (last 30 days, UTC days)" }
            p.muted { "Each bar is a UTC day (00:00–24:00 UTC). The agent's daily log below counts the facility's local day." }
            (daily_chart(&f.daily, p.now.to_zoned(jiff::tz::TimeZone::UTC).date(), 30))

            h2 { "Rejects by violation code" }
            @if f.reject_codes.is_empty() { p.muted { "None." } } @else {
                table id="reject-codes" {
                    tr { th { "code" } th { "kind" } th { "meaning" } th { "files" } }
                    @for (c, n) in &f.reject_codes {
                        tr { td { code { (c) } } td { (reasons::category(c).label()) } td { (reasons::describe(c)) } td { (n) } }
                    }
                }
            }

            h2 { "Files in the agent's quarantine" }
            p.muted { "Fix the file at the facility (in the agent's quarantine folder), then re-request it: the agent \
                       moves it back for checking and upload at its next heartbeat." }
            @if f.quarantine.is_empty() { p.muted { "None reported." } } @else {
                table id="quarantine" {
                    tr { th { "file" } th { "refused by" } th { "violations" } th { "reason" } th { "quarantined" } th { "" } }
                    @for q in &f.quarantine {
                        tr class="quarantined" {
                            td { code { (q.file) } }
                            td { (if q.origin == "store" { "store" } else { "agent" }) }
                            td { (code_list(&q.codes)) }
                            td { (q.reason) }
                            td { (time::show(&q.quarantined_at)) }
                            td {
                                form.inline method="post" action=(format!("{base}/rerequest")) {
                                    (csrf_field(p.csrf))
                                    input type="hidden" name="file" value=(q.file);
                                    input type="hidden" name="sha256" value=(q.sha256);
                                    button type="submit" { "Re-request" }
                                }
                            }
                        }
                    }
                }
            }

            h2 { "Files rejected by the store" }
            @if f.rejected.is_empty() { p.muted { "None." } } @else {
                table id="rejected" {
                    tr { th { "file" } th { "violations" } th { "store's reason" } th { "first / last" } th { "times" } }
                    @for r in &f.rejected {
                        tr class="rejected" {
                            td { code { (r.path) } br; span.muted { "facility " (r.facility) } }
                            td { (code_list(&r.codes)) }
                            td { (r.reason) }
                            td { (time::show(&r.first_at)) br; (time::show(&r.last_at)) }
                            td { (r.times) }
                        }
                    }
                }
            }

            h2 { "Re-requests" }
            @if p.rerequests.is_empty() { p.muted { "None." } } @else {
                table id="rerequests" {
                    tr { th { "file" } th { "requested" } th { "state" } th { "note" } }
                    @for r in p.rerequests {
                        tr { td { code { (r.file) } } td { (time::show(&r.requested_at)) " by " (r.requested_by) }
                             td class=(format!("state-{}", r.state)) { (r.state) } td { (r.note) } }
                    }
                }
            }

            h2 { "Agent log: errors and warnings" }
            @if let Some(l) = &f.newest_log {
                p { "Newest daily log (the agent's local day): " (l.day) ": " (l.files_uploaded) " uploaded, " (l.files_quarantined)
                    " quarantined, " (l.upload_errors) " upload errors, " (l.errors) " ERROR and " (l.warnings) " WARN lines." }
            } @else { p.muted { "No daily log received yet (the agent sends each day's summary the next day)." } }
            @if !f.log_lines.is_empty() {
                table id="log-lines" {
                    tr { th { "day" } th { "time" } th { "level" } th { "message" } }
                    @for l in &f.log_lines {
                        tr class=(format!("log-{}", l.level.to_lowercase())) { td { (l.day) } td { (l.time) } td { (l.level) } td { (l.message) } }
                    }
                }
            }

            h2 { "Alerts" }
            (incident_table(p.incidents))

            h2 { "Receiver settings" }
            form.inline method="post" action=(format!("{base}/enabled")) {
                (csrf_field(p.csrf))
                input type="hidden" name="enabled" value=(if f.site.enabled { "0" } else { "1" });
                button type="submit" { (if f.site.enabled { "Disable site" } else { "Enable site" }) }
            }
            " "
            form.inline method="post" action=(format!("{base}/rotate-token")) {
                (csrf_field(p.csrf))
                button type="submit" { "Rotate token" }
            }
            p.muted { "Token last rotated " (time::show(&f.site.token_rotated_at)) ". A rotated token is shown once; \
                       the old one stops at once (write the new one into the agent's token file)." }
        },
    )
}

/// A page with one message (errors, refusals).
pub fn message(title: &str, text: &str) -> Markup {
    page(
        title,
        None,
        html! { h1 { (title) } p id="message" { (text) } p { a href="/" { "Back to the sites" } } },
    )
}

/// The answer to a logged-in user without the admin role.
pub fn not_an_admin(name: &str, roles: &[String], csrf: &str) -> Markup {
    let roles = if roles.is_empty() { "no role".to_owned() } else { roles.join(", ") };
    page(
        "Admins only",
        Some(Who { name, csrf }),
        html! {
            h1 { "Admins only" }
            p id="message" {
                "You are logged in as " b { (name) } " (" (roles) "), but the admin screen is for users with the "
                b { "admin" } " role of the centre's single sign-on. Ask the centre's administrator if you need it."
            }
        },
    )
}
