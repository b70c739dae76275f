//! Times as the store and the agents write them (RFC 3339, UTC or with an offset).

/// Parses an RFC 3339 time; `None` for anything else.
pub fn parse(s: &str) -> Option<jiff::Timestamp> {
    s.parse().ok()
}

/// A time for people: `2026-11-25 18:59 UTC`, or the text as given if it does not parse.
pub fn show(s: &str) -> String {
    match parse(s) {
        Some(t) => t.strftime("%Y-%m-%d %H:%M UTC").to_string(),
        None => s.to_owned(),
    }
}

/// How long ago, roughly (`3 min`, `5.2 h`, `2.0 d`).
pub fn ago(now: jiff::Timestamp, s: &str) -> Option<String> {
    let secs = now.duration_since(parse(s)?).as_secs_f64();
    Some(if secs < 120.0 {
        format!("{secs:.0} s")
    } else if secs < 7200.0 {
        format!("{:.0} min", secs / 60.0)
    } else if secs < 172_800.0 {
        format!("{:.1} h", secs / 3600.0)
    } else {
        format!("{:.1} d", secs / 86_400.0)
    })
}
