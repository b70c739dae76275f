//! The auditor's web UI: one server-rendered HTML page (no scripts, no build step) with the search
//! form, matching events with the real user behind each pairwise id, counts per day, user and
//! patient, and a CSV link for the same query.

use super::{ApiState, filter};
use crate::search::{self, CountBy, EventRow};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

/// HTML-escape text and attribute values. Five replacements do not justify a templating crate.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// Percent-encode a query component (RFC 3986 unreserved characters pass through).
fn pct(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~@".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn query_string(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .filter(|(k, v)| k != "token" && !v.is_empty())
        .map(|(k, v)| format!("{}={}", pct(k), pct(v)))
        .collect::<Vec<_>>()
        .join("&amp;")
}

fn event_label(code: &str, ty: Option<&str>) -> String {
    let base = match code {
        "110110" => "Patient record",
        "110112" => "Query",
        "110114" => "User authentication",
        "110106" => "Export",
        "110113" => "Security alert",
        _ => code,
    };
    match ty {
        Some("110122") => format!("{base}: login"),
        Some("110123") => format!("{base}: logout"),
        Some("110127") => format!("{base}: emergency override"),
        _ => base.to_string(),
    }
}

fn rows_table(rows: &[EventRow]) -> String {
    let mut s = String::from(
        "<table id=\"results\"><thead><tr><th>Time (UTC)</th><th>Event</th><th>Outcome</th><th>User (pairwise)</th>\
         <th>User (resolved)</th><th>Patient</th><th>Facility</th><th>Source</th><th>Seq</th></tr></thead><tbody>",
    );
    for r in rows {
        let user = r.user_id.as_deref().unwrap_or("");
        let resolved = match (&r.user_display, &r.user_subject) {
            (Some(d), Some(s)) => format!("{} ({})", esc(d), esc(s)),
            (None, Some(s)) => esc(s),
            _ => "<span class=\"unknown\">unresolved</span>".into(),
        };
        s.push_str(&format!(
            "<tr class=\"event{}\" data-seq=\"{}\"><td>{}</td><td>{}{}</td><td>{}</td><td>{}</td><td class=\"resolved\">{}</td><td class=\"patient\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            if r.break_glass { " break-glass" } else { "" },
            r.seq,
            esc(&r.event_time.strftime("%Y-%m-%d %H:%M:%S").to_string()),
            esc(&event_label(&r.event_code, r.event_type.as_deref())),
            if r.break_glass { " <strong>(break-glass)</strong>" } else { "" },
            if r.outcome == 0 { "success".to_string() } else { format!("failure ({})", r.outcome) },
            esc(user),
            resolved,
            esc(r.patient_id.as_deref().unwrap_or("")),
            esc(r.facility.as_deref().unwrap_or("")),
            esc(&r.source_id),
            r.seq,
        ));
    }
    s.push_str("</tbody></table>");
    s
}

fn counts_table(id: &str, title: &str, rows: &[(String, i64)]) -> String {
    let mut s = format!("<table id=\"{id}\" class=\"counts\"><caption>{}</caption><tbody>", esc(title));
    for (k, n) in rows {
        s.push_str(&format!(
            "<tr><td>{}</td><td>{n}</td></tr>",
            esc(if k.is_empty() { "(none)" } else { k })
        ));
    }
    s.push_str("</tbody></table>");
    s
}

fn field(pairs: &[(String, String)], name: &str) -> String {
    esc(pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).unwrap_or(""))
}

/// GET /ui
pub async fn page(
    State(st): State<ApiState>,
    headers: HeaderMap,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    let tok = pairs.iter().find(|(k, _)| k == "token").map(|(_, v)| v.to_string());
    let auditor = match st.check_auditor(&headers, tok.as_deref()) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let f = match filter::from_pairs(&pairs) {
        Ok(f) => f,
        Err(e) => {
            return (StatusCode::BAD_REQUEST, Html(format!("<p class=\"error\">{}</p>", esc(&e))))
                .into_response();
        }
    };
    let searched = pairs.iter().any(|(k, v)| k != "token" && !v.is_empty());
    let mut body = String::new();
    if searched {
        let recorded = st
            .record_auditor_query(
                &auditor,
                &format!(
                    "ui?{}",
                    pairs
                        .iter()
                        .filter(|(k, _)| k != "token")
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join("&")
                ),
                f.patient.as_deref(),
            )
            .await;
        if recorded.is_err() {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                Html(format!("<p class=\"error\">{}</p>", esc(super::UNRECORDED))),
            )
                .into_response();
        }
        let res = async {
            Ok::<_, crate::error::AuditError>((
                search::search(&st.db, &f).await?,
                search::count(&st.db, &f, CountBy::Day).await?,
                search::count(&st.db, &f, CountBy::User).await?,
                search::count(&st.db, &f, CountBy::Patient).await?,
            ))
        }
        .await;
        match res {
            Ok((rows, by_day, by_user, by_patient)) => {
                body.push_str(&format!(
                    "<p id=\"summary\">{} event(s) shown. <a id=\"csv\" href=\"/v1/export.csv?{}\">Download CSV</a></p>",
                    rows.len(),
                    query_string(&pairs)
                ));
                body.push_str(&rows_table(&rows));
                body.push_str("<div class=\"aggregates\">");
                body.push_str(&counts_table("by-day", "Events per day", &by_day));
                body.push_str(&counts_table("by-user", "Events per user (pairwise id)", &by_user));
                body.push_str(&counts_table("by-patient", "Events per patient", &by_patient));
                body.push_str("</div>");
            }
            Err(e) => body.push_str(&format!("<p class=\"error\">{}</p>", esc(&e.to_string()))),
        }
    }
    let types = [
        ("", "any"),
        ("110110", "Patient record"),
        ("110112", "Query"),
        ("110114", "User authentication"),
        ("110122", "Login"),
        ("110123", "Logout"),
        ("110106", "Export"),
        ("110127", "Emergency override"),
    ];
    let chosen = field(&pairs, "event_type");
    let options: String = types
        .iter()
        .map(|(c, l)| {
            format!("<option value=\"{c}\"{}>{l}</option>", if *c == chosen { " selected" } else { "" })
        })
        .collect();
    let html = format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Kizuna audit trail</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; color: #222; }}
form {{ display: flex; flex-wrap: wrap; gap: .6em 1.2em; align-items: end; background: #f3f5f8; padding: 1em; border-radius: 6px; }}
label {{ display: flex; flex-direction: column; font-size: .85em; }}
table {{ border-collapse: collapse; margin-top: 1em; font-size: .9em; }}
th, td {{ border: 1px solid #ccd; padding: .3em .6em; text-align: left; }}
th {{ background: #e4e8ef; }}
tr.break-glass {{ background: #fff0e0; }}
.aggregates {{ display: flex; gap: 2em; align-items: start; }}
caption {{ font-weight: bold; text-align: left; }}
.unknown {{ color: #999; }}
.error {{ color: #b00; }}
</style></head>
<body>
<h1>Kizuna audit trail</h1>
<p>Who accessed or searched whose personal data. Searches here are themselves recorded.</p>
<form method="get" action="/ui">
<label>User (pairwise or real id)<input name="user" value="{user}"></label>
<label>Patient (common health ID)<input name="patient" value="{patient}"></label>
<label>Facility<input name="facility" value="{facility}"></label>
<label>Event<select name="event_type">{options}</select></label>
<label>From<input name="from" type="date" value="{from}"></label>
<label>To<input name="to" type="date" value="{to}"></label>
<label>Outcome<select name="outcome"><option value="">any</option><option value="0"{o0}>success</option><option value="4"{o4}>minor failure</option><option value="8"{o8}>serious failure</option><option value="12"{o12}>major failure</option></select></label>
<button type="submit">Search</button>
</form>
{body}
</body></html>
"#,
        user = field(&pairs, "user"),
        patient = field(&pairs, "patient"),
        facility = field(&pairs, "facility"),
        from = field(&pairs, "from"),
        to = field(&pairs, "to"),
        o0 = if field(&pairs, "outcome") == "0" { " selected" } else { "" },
        o4 = if field(&pairs, "outcome") == "4" { " selected" } else { "" },
        o8 = if field(&pairs, "outcome") == "8" { " selected" } else { "" },
        o12 = if field(&pairs, "outcome") == "12" { " selected" } else { "" },
    );
    let mut resp = Html(html).into_response();
    if let Some(t) = tok.filter(|_| st.auditors.is_some())
        && let Ok(v) = format!("kizuna_audit={t}; HttpOnly; SameSite=Strict; Path=/").parse()
    {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}
