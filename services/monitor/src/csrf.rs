//! CSRF protection for the admin screen's forms (double-submit): each browser gets a random token
//! in a `SameSite=Strict`, `HttpOnly` cookie, every form carries the same token in a hidden field,
//! and a POST is accepted only when both are present and equal and, when the browser sends an
//! `Origin` header, it names this server.

use axum::http::HeaderMap;
use rand::RngCore;

pub const COOKIE: &str = "kizuna_csrf";

/// A new random token (32 bytes, hex).
pub fn new_token() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

/// The token in the request's cookie, if it has a well-formed one.
pub fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_owned())
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The `Set-Cookie` value for a token.
pub fn set_cookie(token: &str) -> String {
    format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict")
}

/// Constant-time equality (so the comparison does not leak how much of a guess was right).
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Checks a POST: `Err` says why it is refused.
pub fn check(headers: &HeaderMap, form_token: &str) -> Result<(), &'static str> {
    let Some(cookie) = cookie_token(headers) else {
        return Err("no CSRF cookie: reload the page and submit the form again");
    };
    if !same(&cookie, form_token) {
        return Err("the form's CSRF token does not match: reload the page and submit the form again");
    }
    if let Some(origin) = headers.get(axum::http::header::ORIGIN).and_then(|v| v.to_str().ok())
        && origin != "null"
    {
        let host = headers.get(axum::http::header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
        let origin_host = origin.split_once("://").map(|(_, h)| h).unwrap_or(origin);
        if origin_host != host {
            return Err("the request comes from another site (Origin does not match)");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(cookie: Option<&str>, origin: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("host", "127.0.0.1:8441".parse().unwrap());
        if let Some(c) = cookie {
            h.insert("cookie", format!("a=b; {COOKIE}={c}").parse().unwrap());
        }
        if let Some(o) = origin {
            h.insert("origin", o.parse().unwrap());
        }
        h
    }

    #[test]
    fn only_matching_same_origin_posts_pass() {
        let t = new_token();
        assert!(check(&headers(Some(&t), None), &t).is_ok());
        assert!(check(&headers(Some(&t), Some("http://127.0.0.1:8441")), &t).is_ok());
        assert!(check(&headers(Some(&t), Some("http://evil.example")), &t).is_err());
        assert!(check(&headers(None, None), &t).is_err());
        assert!(check(&headers(Some(&t), None), &new_token()).is_err());
        assert!(check(&headers(Some(&t), None), "").is_err());
    }
}
