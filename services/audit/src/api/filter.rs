//! Query-string parameters -> [`SearchFilter`]: one parser shared by the JSON API, CSV and the UI.

use crate::search::SearchFilter;

/// Parse a time bound: RFC 3339 instant or a date (`YYYY-MM-DD`, start of that day UTC).
pub fn parse_time(field: &str, s: &str) -> Result<jiff::Timestamp, String> {
    if let Ok(t) = s.parse::<jiff::Timestamp>() {
        return Ok(t);
    }
    let d: jiff::civil::Date =
        s.parse().map_err(|_| format!("{field}={s:?}: expected YYYY-MM-DD or an RFC 3339 time"))?;
    d.to_zoned(jiff::tz::TimeZone::UTC).map(|z| z.timestamp()).map_err(|e| format!("{field}={s:?}: {e}"))
}

/// The day after `t` if `s` is a bare date (so `to=2026-11-25` includes that whole day).
pub fn parse_upper(field: &str, s: &str) -> Result<jiff::Timestamp, String> {
    let t = parse_time(field, s)?;
    if s.len() == 10 {
        t.checked_add(jiff::SignedDuration::from_hours(24)).map_err(|e| e.to_string())
    } else {
        Ok(t)
    }
}

/// Build a filter from `key=value` pairs: user, patient, facility, event_type, from, to, outcome,
/// break_glass, limit, offset (empty values are ignored; `token` and `by` are left to the caller).
pub fn from_pairs(pairs: &[(String, String)]) -> Result<SearchFilter, String> {
    let mut f = SearchFilter::default();
    for (k, v) in pairs {
        let v = v.trim();
        if v.is_empty() {
            continue;
        }
        match k.as_str() {
            "user" => f.user = Some(v.into()),
            "patient" => f.patient = Some(v.into()),
            "facility" => f.facility = Some(v.into()),
            "event_type" => f.event_type = Some(v.into()),
            "from" => f.from = Some(parse_time("from", v)?),
            "to" => f.to = Some(parse_upper("to", v)?),
            "outcome" => {
                f.outcome = Some(v.parse().map_err(|_| format!("outcome={v:?}: expected 0, 4, 8 or 12"))?)
            }
            "break_glass" => f.break_glass = Some(matches!(v, "true" | "1" | "on" | "yes")),
            "limit" => f.limit = Some(v.parse().map_err(|_| format!("limit={v:?}: expected a number"))?),
            "offset" => f.offset = Some(v.parse().map_err(|_| format!("offset={v:?}: expected a number"))?),
            "token" | "by" => {}
            other => return Err(format!("unknown parameter {other:?}")),
        }
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(kv: &[(&str, &str)]) -> Vec<(String, String)> {
        kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn a_bare_to_date_includes_that_whole_day() {
        let f =
            from_pairs(&p(&[("from", "2026-11-01"), ("to", "2026-11-25"), ("patient", "CHID-1")])).unwrap();
        assert_eq!(f.from.unwrap().to_string(), "2026-11-01T00:00:00Z");
        assert_eq!(f.to.unwrap().to_string(), "2026-11-26T00:00:00Z");
        assert_eq!(f.patient.as_deref(), Some("CHID-1"));
    }

    #[test]
    fn bad_values_name_the_parameter() {
        assert!(from_pairs(&p(&[("from", "yesterday")])).unwrap_err().contains("from="));
        assert!(from_pairs(&p(&[("pateint", "x")])).unwrap_err().contains("pateint"));
    }
}
