//! The response headers every browser-facing page of the centre sends (the sign-on service and
//! the clinicians' viewer): pages and tokens are not kept in the browser's cache (the back button
//! after a logout on a shared PC), not framed (clickjacking), not sniffed into another type, and
//! not named in a Referer; the content security policy allows no scripts and no outside sources.
//!
//! A crate of its own because the viewer and the sign-on service share no other library.

use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;

/// The content security policy: nothing but the page itself and its inline styles.
pub const CONTENT_SECURITY_POLICY: &str =
    "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'";

/// Sets the hardening headers on `h`, replacing any already there.
pub fn set(h: &mut HeaderMap) {
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
}

/// `r` with the hardening headers; for `axum::middleware::map_response`.
pub fn harden(mut r: Response) -> Response {
    set(r.headers_mut());
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::response::IntoResponse;

    #[test]
    fn a_response_gets_every_header_and_a_cache_header_it_had_is_replaced() {
        let r = harden(([(header::CACHE_CONTROL, "max-age=3600")], "page").into_response());
        let h = r.headers();
        assert_eq!(h[header::CACHE_CONTROL], "no-store");
        assert_eq!(h.get_all(header::CACHE_CONTROL).iter().count(), 1);
        assert_eq!(h[header::PRAGMA], "no-cache");
        assert_eq!(h[header::X_FRAME_OPTIONS], "DENY");
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(h[header::REFERRER_POLICY], "no-referrer");
        assert_eq!(h[header::CONTENT_SECURITY_POLICY], CONTENT_SECURITY_POLICY);
    }
}
