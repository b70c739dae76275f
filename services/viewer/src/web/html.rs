//! The pages, rendered on the server with `maud` (every value is HTML-escaped by the macro). No
//! JavaScript, no front-end build: plain forms and links.

use std::collections::{BTreeMap, BTreeSet};

use maud::{DOCTYPE, Markup, PreEscaped, html};

use kizuna_index::Access;

use crate::access::{PatientAccess, User};
use crate::calendar::{Month, WEEKDAYS};
use crate::message::Original;
use crate::timeline::{Diagnosis, Drug, Encounter, Entry, Filter, group_by_date};

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
td.value{white-space:pre-line} .encounter.cancelled{color:#b00;font-weight:bold} .diagnosis.ended{color:#666}
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

/// `amount unit`, or empty.
fn amount(n: &str, unit: &str) -> String {
    if n.is_empty() { String::new() } else { format!("{n} {unit}").trim_end().to_owned() }
}

/// An OBX-3 name whose qualifier is a subcomponent (`R 振幅&V5`) as `R 振幅 / V5`.
fn result_name(name: &str) -> String {
    name.replace('&', " / ")
}

fn drugs_table(drugs: &[Drug]) -> Markup {
    html! {
        table.drugs {
            tr { th { "drug" } th { "per dose" } th { "usage" } th { "daily dose" } th { "days" } th { "total" } th { "route" } th { "rate / time" } }
            @for d in drugs {
                tr.drug {
                    td {
                        @if d.source == "RXC" { "↳ " }
                        (d.name)
                        @if !d.instructions.is_empty() { br; small { (d.instructions) } }
                    }
                    td { (amount(&d.dose, &d.dose_unit)) }
                    td.usage { (d.usage_text) }
                    td.daily { (amount(&d.daily_dose, &d.daily_dose_unit)) }
                    td { (d.days) }
                    td.total { (amount(&d.total, &d.total_unit)) }
                    td { (d.route) }
                    td.rate {
                        (amount(&d.rate, &d.rate_unit))
                        @if !d.start_time.is_empty() || !d.end_time.is_empty() {
                            @if !d.rate.is_empty() { br; }
                            (pretty_time(&d.start_time)) " – " (pretty_time(&d.end_time))
                        }
                    }
                }
            }
        }
    }
}

fn diagnosis(d: &Diagnosis) -> Markup {
    html! {
        div class={ "diagnosis " @if d.ended() { "ended" } @else { "current" } } {
            @if d.ended() { b { "ENDED " } }
            "Diagnosis: " (d.name)
            @if !d.icd10.is_empty() { " (ICD-10 " (d.icd10) ")" }
            @if !d.onset_date.is_empty() { ", onset " (pretty_date(&d.onset_date)) }
            @if !d.status.is_empty() || !d.status_text.is_empty() {
                ", outcome " (d.outcome()) @if !d.status.is_empty() { " (" (d.status) ")" }
            }
            @if !d.resolved_date.is_empty() { ", outcome date " (pretty_date(&d.resolved_date)) }
        }
    }
}

fn encounter(x: &Encounter) -> Markup {
    html! {
        div class={ "encounter " (x.event) @if x.cancelled().is_some() { " cancelled" } } {
            (x.label())
            @if !x.trigger_event.is_empty() { " (ADT " (x.trigger_event) ")" }
            @if x.cancelled().is_some() { " of " } @else { " at " }
            (pretty_time(&x.event_time))
            @if !x.ward.is_empty() { ", ward " (x.ward) }
            @if !x.patient_class.is_empty() { " (class " (x.patient_class) ")" }
        }
    }
}

fn entry_detail(e: &Entry) -> Markup {
    html! {
        @if !e.drugs.is_empty() { (drugs_table(&e.drugs)) }
        @if !e.labs.is_empty() {
            table.labs {
                tr { th { "test" } th { "value" } th { "unit" } th { "reference range" } th { "flag" } }
                @for l in &e.labs {
                    tr.lab {
                        td { (result_name(&l.name)) }
                        td class={ "value flag-" (l.abnormal_flags) } {
                            (l.value)
                            @if !l.value_code.is_empty() && l.value_code != l.value { " " small.code { "[" (l.value_code) "]" } }
                        }
                        td { (l.units) }
                        td { (l.reference_range) }
                        td class={ "flag-" (l.abnormal_flags) } { (l.abnormal_flags) }
                    }
                }
            }
        }
        @for d in &e.diagnoses { (diagnosis(d)) }
        @for x in &e.encounters { (encounter(x)) }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timeline::Lab;

    fn entry() -> Entry {
        Entry {
            record_id: 1,
            facility: "F".into(),
            patient_id: "P".into(),
            date: "20111120".into(),
            data_kind: "ADT-22".into(),
            message_type: "ADT^A11".into(),
            transaction_datetime: "20111221090000000".into(),
            department: "01".into(),
            order_no: "999999999999999".into(),
            drugs: vec![],
            labs: vec![],
            diagnoses: vec![],
            encounters: vec![],
        }
    }

    #[test]
    fn an_admission_cancel_reads_as_a_cancel_even_in_rows_stored_before_cancels_were_labelled() {
        let mut e = entry();
        // As the store wrote an A11 before: event "admission", the trigger beside it.
        e.encounters.push(Encounter {
            event: "admission".into(),
            trigger_event: "A11".into(),
            event_time: "201111201600".into(),
            patient_class: "I".into(),
            ward: "32".into(),
        });
        let html = entry_detail(&e).into_string();
        assert!(html.contains("CANCELLED admission (ADT A11) of 2011-11-20 16:00, ward 32"), "{html}");
        assert!(html.contains("encounter admission cancelled"), "{html}");
        assert!(!html.contains("admission at"), "{html}");
        e.encounters[0].trigger_event = "A01".into();
        assert!(entry_detail(&e).into_string().contains("admission (ADT A01) at 2011-11-20 16:00"));
    }

    #[test]
    fn a_prescription_shows_usage_daily_dose_and_total_and_an_injection_its_drugs() {
        let mut e = entry();
        e.drugs.push(Drug {
            source: "RXE".into(),
            name: "アレピアチン１０倍散".into(),
            dose: "50".into(),
            dose_unit: "MG".into(),
            days: "14".into(),
            route: "PO".into(),
            usage_text: "内服・経口・１日２回朝夕食後".into(),
            daily_dose: "100".into(),
            daily_dose_unit: "MG".into(),
            total: "1400".into(),
            total_unit: "MG".into(),
            ..Drug::default()
        });
        e.drugs.push(Drug {
            source: "RXE".into(),
            name: "一般".into(),
            dose: "510".into(),
            dose_unit: "ML".into(),
            rate: "102".into(),
            rate_unit: "ml/hr".into(),
            start_time: "201107010800".into(),
            end_time: "201107011300".into(),
            ..Drug::default()
        });
        e.drugs.push(Drug {
            source: "RXC".into(),
            name: "アドナ注（静脈用）50mg".into(),
            dose: "1".into(),
            dose_unit: "AMP".into(),
            component_of: Some(2),
            ..Drug::default()
        });
        let html = entry_detail(&e).into_string();
        for want in [
            "<td>50 MG</td><td class=\"usage\">内服・経口・１日２回朝夕食後</td><td class=\"daily\">100 MG</td><td>14</td><td class=\"total\">1400 MG</td>",
            "102 ml/hr<br>2011-07-01 08:00 – 2011-07-01 13:00",
            "↳ アドナ注（静脈用）50mg</td><td>1 AMP</td>",
        ] {
            assert!(html.contains(want), "{want} not in {html}");
        }
    }

    #[test]
    fn coded_values_show_their_text_and_code_and_ecg_leads_their_lead() {
        let mut e = entry();
        e.labs.push(Lab {
            name: "視覚障害".into(),
            value: "重度".into(),
            value_code: "SV".into(),
            ..Lab::default()
        });
        e.labs.push(Lab {
            name: "R 振幅&V5".into(),
            value: "2.505".into(),
            units: "mV".into(),
            ..Lab::default()
        });
        let html = entry_detail(&e).into_string();
        assert!(html.contains("重度 <small class=\"code\">[SV]</small>"), "{html}");
        assert!(html.contains("R 振幅 / V5"), "{html}");
    }

    #[test]
    fn a_cured_diagnosis_is_marked_ended_and_shows_its_outcome() {
        let mut e = entry();
        let d = Diagnosis {
            name: "胃炎".into(),
            icd10: "K297".into(),
            onset_date: "20110831".into(),
            status: "F".into(),
            status_text: "治癒".into(),
            resolved_date: "20110915".into(),
            ..Diagnosis::default()
        };
        e.diagnoses.push(d.clone());
        e.diagnoses.push(Diagnosis { status: "N".into(), status_text: "回復せず".into(), ..d.clone() });
        // A row stored before the outcome text was: the code's meaning.
        e.diagnoses.push(Diagnosis {
            status: "D".into(),
            status_text: String::new(),
            resolved_date: String::new(),
            ..d
        });
        let html = entry_detail(&e).into_string();
        assert!(html.contains("<div class=\"diagnosis ended\"><b>ENDED </b>Diagnosis: 胃炎 (ICD-10 K297), onset 2011-08-31, outcome 治癒 (F), outcome date 2011-09-15</div>"), "{html}");
        assert!(html.contains("<div class=\"diagnosis current\">Diagnosis: 胃炎 (ICD-10 K297), onset 2011-08-31, outcome 回復せず (N)"), "{html}");
        assert!(html.contains("outcome died (D)"), "{html}");
    }
}
