//! The pages, rendered on the server with `maud` (every value is HTML-escaped by the macro). No
//! JavaScript, no front-end build: plain forms and links.

use std::collections::{BTreeMap, BTreeSet};

use maud::{DOCTYPE, Markup, PreEscaped, html};

use kizuna_index::Access;

use crate::access::{PatientAccess, User};
use crate::calendar::{Month, WEEKDAYS};
use crate::message::Original;
use crate::timeline::{Entry, Filter, group_by_date};

const STYLE: &str = r#"
body{font-family:"IPAGothic","Noto Sans CJK JP",sans-serif;margin:0;color:#222;background:#fafafa}
header{background:#1d4e89;color:#fff;padding:.5em 1em;display:flex;gap:1em;align-items:center}
header a{color:#fff} header .who{margin-left:auto}
main{padding:1em}
table{border-collapse:collapse;margin:.3em 0} td,th{border:1px solid #ccc;padding:.2em .5em;vertical-align:top}
.flag-H,.flag-HH{color:#b00;font-weight:bold} .flag-L,.flag-LL{color:#00b;font-weight:bold}
.bg{background:#fde2e2;border:2px solid #b00;padding:.5em;margin:.5em 0}
.notice{background:#fff4cc;padding:.5em;margin:.5em 0}
.day h2{font-size:1.1em;border-bottom:1px solid #1d4e89;margin-top:1.2em}
.cal td{width:13%;height:6em} .cal .date{font-weight:bold} .chip{font-size:.8em;margin:.1em 0;padding:.1em .2em;border-radius:3px;background:#e3ecf7}
.filters label{margin-right:.8em} nav.tabs a{margin-right:1em}
pre.hl7{background:#fff;border:1px solid #ccc;padding:.5em;white-space:pre-wrap;word-break:break-all}
"#;

/// The frame of every page.
pub fn page(title: &str, user: Option<&User>, csrf: Option<&str>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="ja" {
            head {
                meta charset="utf-8";
                title { (title) " — Kizuna viewer" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    strong { a href="/" { "Kizuna viewer" } }
                    @if let Some(u) = user {
                        span.who id="who" { (u.name) " · " (u.role.as_str()) " · facility " (u.facility) }
                        @if let Some(t) = csrf {
                            form method="post" action="/logout" {
                                input type="hidden" name="csrf" value=(t);
                                button type="submit" { "Log out" }
                            }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// The search form.
pub fn search_form(user: &User, message: Option<&str>) -> Markup {
    html! {
        h1 { "Find a patient" }
        @if let Some(m) = message { p.notice id="message" { (m) } }
        form method="get" action="/search" id="search" {
            p {
                label { input type="radio" name="by" value="common" checked; " common health ID" }
                " "
                label { input type="radio" name="by" value="local"; " local patient ID at " (user.facility) }
            }
            input type="text" name="q" id="q" size="24" autofocus placeholder="KZ… or local ID";
            " "
            button type="submit" id="go" { "Search" }
        }
    }
}

fn facility_name<'a>(names: &'a BTreeMap<String, String>, code: &'a str) -> &'a str {
    names.get(code).map(String::as_str).unwrap_or(code)
}

fn query_string(filter: &Filter) -> String {
    let mut q = Vec::new();
    for k in &filter.kinds {
        q.push(format!("kind={k}"));
    }
    for f in &filter.facilities {
        q.push(format!("facility={f}"));
    }
    if q.is_empty() { String::new() } else { format!("?{}", q.join("&")) }
}

/// The patient header: who, what is shown and why, and the break-glass form.
fn patient_header(
    p: &PatientAccess,
    user: &User,
    csrf: &str,
    names: &BTreeMap<String, String>,
    active: &str,
    filter: &Filter,
) -> Markup {
    let cid = p.common_id.as_str();
    let qs = query_string(filter);
    html! {
        h1 { "Patient " span id="common-id" { (cid) } }
        nav.tabs {
            a id="tab-timeline" href={ "/patients/" (cid) (qs) } { @if active == "timeline" { b { "Time series" } } @else { "Time series" } }
            a id="tab-calendar" href={ "/patients/" (cid) "/calendar" (qs) } { @if active == "calendar" { b { "Calendar" } } @else { "Calendar" } }
        }
        @if let Some(bg) = &p.break_glass {
            div.bg id="break-glass-active" {
                "BREAK-GLASS access is active (reason: " (bg.reason) "). Every view is flagged for audit."
            }
        }
        p id="sources" {
            "Records shown from: "
            @if p.shown.is_empty() { em { "none" } }
            @for (k, a) in &p.shown {
                span class={ "source " (access_class(*a)) } {
                    (facility_name(names, &k.facility)) " (" (access_label(*a)) ") "
                }
            }
        }
        @if p.withheld && p.break_glass.is_none() {
            div.notice id="withheld" {
                p { "Records held by other facilities are shown only where the patient consented to share them with your facility." }
                @if user.role.may_break_glass() {
                    form method="post" action={ "/patients/" (cid) "/break-glass" } id="break-glass" {
                        input type="hidden" name="csrf" value=(csrf);
                        "Emergency access (break glass) — reason (required, audited): "
                        input type="text" name="reason" id="reason" size="40" required;
                        " "
                        button type="submit" { "Break glass" }
                    }
                }
            }
        }
    }
}

fn access_label(a: Access) -> &'static str {
    match a {
        Access::OwnFacility => "your facility",
        Access::Consent => "by consent",
        Access::BreakGlass => "BREAK-GLASS",
        Access::Denied => "withheld",
    }
}

fn access_class(a: Access) -> &'static str {
    match a {
        Access::OwnFacility => "own",
        Access::Consent => "consent",
        Access::BreakGlass => "break-glass",
        Access::Denied => "denied",
    }
}

fn filters(
    cid: &str,
    path: &str,
    all: &[Entry],
    filter: &Filter,
    names: &BTreeMap<String, String>,
) -> Markup {
    let kinds: BTreeSet<(&str, &str)> = all.iter().map(|e| (e.data_kind.as_str(), e.meaning())).collect();
    let facilities: BTreeSet<&str> = all.iter().map(|e| e.facility.as_str()).collect();
    html! {
        form.filters method="get" action={ "/patients/" (cid) (path) } id="filters" {
            p {
                "Data type: "
                @for (k, m) in &kinds {
                    label { input type="checkbox" name="kind" value=(k) checked[filter.kinds.contains(*k)]; " " (m) " (" (k) ")" }
                }
            }
            p {
                "Facility: "
                @for f in &facilities {
                    label { input type="checkbox" name="facility" value=(f) checked[filter.facilities.contains(*f)]; " " (facility_name(names, f)) }
                }
                button type="submit" id="apply" { "Filter" }
            }
        }
    }
}

fn pretty_date(d: &str) -> String {
    if d.len() == 8 { format!("{}-{}-{}", &d[..4], &d[4..6], &d[6..]) } else { d.to_owned() }
}

fn pretty_time(t: &str) -> String {
    if t.len() >= 12 {
        format!("{}-{}-{} {}:{}", &t[..4], &t[4..6], &t[6..8], &t[8..10], &t[10..12])
    } else {
        pretty_date(t)
    }
}

fn entry_detail(e: &Entry) -> Markup {
    html! {
        @if !e.drugs.is_empty() {
            table.drugs {
                tr { th { "drug" } th { "dose" } th { "days" } th { "route" } }
                @for d in &e.drugs {
                    tr.drug { td { (d.name) } td { (d.dose) " " (d.dose_unit) } td { (d.days) } td { (d.route) } }
                }
            }
        }
        @if !e.labs.is_empty() {
            table.labs {
                tr { th { "test" } th { "value" } th { "unit" } th { "reference range" } th { "flag" } }
                @for l in &e.labs {
                    tr.lab {
                        td { (l.name) }
                        td class={ "flag-" (l.abnormal_flags) } { (l.value) }
                        td { (l.units) }
                        td { (l.reference_range) }
                        td class={ "flag-" (l.abnormal_flags) } { (l.abnormal_flags) }
                    }
                }
            }
        }
        @for d in &e.diagnoses {
            div.diagnosis { "Diagnosis: " (d.name) @if !d.icd10.is_empty() { " (ICD-10 " (d.icd10) ")" } @if !d.onset_date.is_empty() { ", onset " (pretty_date(&d.onset_date)) } @if !d.status.is_empty() { ", " (d.status) } }
        }
        @for x in &e.encounters {
            div class={ "encounter " (x.event) } { (x.event) " at " (pretty_time(&x.event_time)) @if !x.ward.is_empty() { ", ward " (x.ward) } @if !x.patient_class.is_empty() { " (class " (x.patient_class) ")" } }
        }
    }
}

/// The time series page.
#[allow(clippy::too_many_arguments)]
pub fn timeline(
    p: &PatientAccess,
    user: &User,
    csrf: &str,
    names: &BTreeMap<String, String>,
    all: &[Entry],
    shown: &[Entry],
    filter: &Filter,
) -> Markup {
    let cid = p.common_id.as_str();
    html! {
        (patient_header(p, user, csrf, names, "timeline", filter))
        @if !all.is_empty() { (filters(cid, "", all, filter, names)) }
        p id="count" { (shown.len()) " records" }
        @for (date, entries) in group_by_date(shown) {
            section.day id={ "d" (date) } {
                h2 { (pretty_date(&date)) }
                table {
                    @for e in entries {
                        tr class={ "entry kind-" (e.data_kind) } data-facility=(e.facility) {
                            td { (facility_name(names, &e.facility)) }
                            td { (e.meaning()) br; small { (e.data_kind) " · " (e.message_type) } }
                            td { (entry_detail(e)) }
                            td { a href={ "/patients/" (cid) "/records/" (e.record_id) } { "original" } }
                        }
                    }
                }
            }
        }
    }
}

/// The calendar page.
pub fn calendar(
    p: &PatientAccess,
    user: &User,
    csrf: &str,
    names: &BTreeMap<String, String>,
    month: Option<&Month>,
    filter: &Filter,
) -> Markup {
    let cid = p.common_id.as_str();
    let qs = query_string(filter);
    let sep = if qs.is_empty() { "?" } else { "&" };
    html! {
        (patient_header(p, user, csrf, names, "calendar", filter))
        @match month {
            None => p id="count" { "0 records" },
            Some(m) => {
                h2 id="month" { (format!("{:04}-{:02}", m.year, m.month)) }
                p {
                    @for ym in &m.months_with_data {
                        a href={ "/patients/" (cid) "/calendar" (qs) (sep) "month=" (ym) } { (ym) } " "
                    }
                }
                table.cal id="calendar" {
                    tr { @for w in WEEKDAYS { th { (format!("{w:?}")) } } }
                    @for week in &m.weeks {
                        tr {
                            @for cell in week {
                                @match cell {
                                    None => td {},
                                    Some(d) => td class={ "day" @if !d.facilities.is_empty() { " has-records" } } {
                                        div.date {
                                            @if d.facilities.is_empty() { (d.date.day()) }
                                            @else { a href={ "/patients/" (cid) (qs) "#d" (d.date.strftime("%Y%m%d").to_string()) } { (d.date.day()) } }
                                        }
                                        @for (f, kinds) in &d.facilities {
                                            div.chip data-facility=(f) {
                                                b { (facility_name(names, f)) } ": "
                                                @for (k, n) in kinds { (k) @if *n > 1 { "×" (n) } " " }
                                            }
                                        }
                                    },
                                }
                            }
                        }
                    }
                }
            },
        }
    }
}

/// The original message page.
pub fn original(cid: &str, facility: &str, record_id: i64, m: &Original) -> Markup {
    html! {
        h1 { "Original message" }
        p { a href={ "/patients/" (cid) } { "← patient " (cid) } }
        p { "Facility " (facility) ", record " (record_id) ", " (m.relative.display().to_string()) " (" (m.bytes) " bytes, ISO-2022-JP)" }
        pre.hl7 id="hl7" { @for s in &m.segments { (s) "\n" } }
    }
}

/// An error page body.
pub fn problem(message: &str) -> Markup {
    html! { p.notice id="problem" { (message) } p { a href="/" { "Back to search" } } }
}
