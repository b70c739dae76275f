//! The few HTML pages a browser sees: login, TOTP, TOTP enrollment, logout, errors. Plain
//! server-rendered forms (no script); every value is HTML-escaped.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

/// Escape text for HTML element content and double-quoted attributes.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{t} · Kizuna</title>
<style>body{{font-family:sans-serif;max-width:28em;margin:3em auto;padding:0 1em}}label{{display:block;margin:.8em 0 .2em}}
input[type=text],input[type=password]{{width:100%;padding:.4em;font-size:1.1em}}button{{margin-top:1em;padding:.5em 1.5em;font-size:1em}}
.error{{color:#a00;border:1px solid #a00;padding:.5em}}code{{word-break:break-all}}</style></head>
<body><h1>Kizuna</h1><h2>{t}</h2>
{body}
</body></html>"#,
        t = esc(title)
    );
    (status, Html(html)).into_response()
}

fn error_box(error: Option<&str>) -> String {
    error.map(|e| format!(r#"<p class="error" id="error" role="alert">{}</p>"#, esc(e))).unwrap_or_default()
}

pub fn error(status: StatusCode, title: &str, message: &str) -> Response {
    page(status, title, &format!(r#"<p class="error" id="error" role="alert">{}</p>"#, esc(message)))
}

pub fn login(status: StatusCode, client_name: &str, csrf: &str, error: Option<&str>) -> Response {
    page(
        status,
        "Log in",
        &format!(
            r#"<p>to <strong>{client}</strong></p>{err}
<form method="post" action="/login">
<input type="hidden" name="csrf" value="{csrf}">
<label for="username">User name</label><input type="text" id="username" name="username" autocomplete="username" required autofocus>
<label for="password">Password</label><input type="password" id="password" name="password" autocomplete="current-password" required>
<button type="submit" id="submit">Next</button>
</form>"#,
            client = esc(client_name),
            err = error_box(error),
            csrf = esc(csrf)
        ),
    )
}

pub fn totp(status: StatusCode, csrf: &str, error: Option<&str>) -> Response {
    page(
        status,
        "One-time code",
        &format!(
            r#"{err}<form method="post" action="/login/totp">
<input type="hidden" name="csrf" value="{csrf}">
<label for="code">The 6-digit code from your authenticator app</label>
<input type="text" id="code" name="code" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]{{6}}" required autofocus>
<button type="submit" id="submit">Log in</button>
</form>"#,
            err = error_box(error),
            csrf = esc(csrf)
        ),
    )
}

pub fn enroll(status: StatusCode, csrf: &str, secret: &str, uri: &str, error: Option<&str>) -> Response {
    page(
        status,
        "Set up your one-time codes",
        &format!(
            r#"{err}<p>Add this account to your authenticator app (it accepts the link below or the key), then
enter the code it shows.</p>
<p>Key: <code id="totp-secret">{secret}</code></p>
<p>Link: <code id="totp-uri">{uri}</code></p>
<form method="post" action="/login/enroll">
<input type="hidden" name="csrf" value="{csrf}">
<label for="code">The 6-digit code</label>
<input type="text" id="code" name="code" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]{{6}}" required autofocus>
<button type="submit" id="submit">Confirm and log in</button>
</form>"#,
            err = error_box(error),
            secret = esc(secret),
            uri = esc(uri),
            csrf = esc(csrf)
        ),
    )
}

pub fn logout_confirm(csrf: &str, hidden: &[(&str, &str)]) -> Response {
    let fields: String = hidden
        .iter()
        .map(|(k, v)| format!(r#"<input type="hidden" name="{}" value="{}">"#, esc(k), esc(v)))
        .collect();
    page(
        StatusCode::OK,
        "Log out",
        &format!(
            r#"<form method="post" action="/logout">
<input type="hidden" name="csrf" value="{csrf}">{fields}
<p>Log out of every Kizuna service in this browser?</p>
<button type="submit" id="submit">Log out</button>
</form>"#,
            csrf = esc(csrf)
        ),
    )
}

pub fn logged_out() -> Response {
    page(StatusCode::OK, "Logged out", r#"<p id="logged-out">You are logged out.</p>"#)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_markup_and_quotes() {
        assert_eq!(esc(r#"<a href="x">'&"#), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;");
    }
}
