//! Value checks for config keys; each error names the key and the value.

/// `key: value` must lie in `min..=max`.
pub fn in_range(key: &str, value: u64, min: u64, max: u64) -> Result<(), String> {
    if value < min {
        return Err(format!("{key}: {value} is too small: must be at least {min}"));
    }
    if value > max {
        return Err(format!("{key}: {value} is too large: must be at most {max}"));
    }
    Ok(())
}

/// `value` must be an `http://` or `https://` URL with a host (the rule of every URL a centre
/// service calls or hands to browsers).
pub fn http_url(key: &str, value: &str) -> Result<url::Url, String> {
    let u = url::Url::parse(value).map_err(|e| {
        format!("{key}: {value:?} is not a URL ({e}); it must be an http:// or https:// URL with a host")
    })?;
    if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none_or(str::is_empty) {
        return Err(format!("{key}: {value:?} must be an http:// or https:// URL with a host"));
    }
    Ok(u)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_inclusive_and_named() {
        assert!(in_range("k", 1, 1, 3).is_ok() && in_range("k", 3, 1, 3).is_ok());
        assert_eq!(in_range("a.b", 0, 1, 3).unwrap_err(), "a.b: 0 is too small: must be at least 1");
        assert_eq!(in_range("a.b", 4, 1, 3).unwrap_err(), "a.b: 4 is too large: must be at most 3");
    }

    #[test]
    fn only_http_urls_with_a_host_pass() {
        assert_eq!(http_url("u", "https://centre.example/x").unwrap().host_str(), Some("centre.example"));
        for bad in ["ftp://h/", "file:///etc/passwd", "h:80", "http://", ""] {
            let e = http_url("audit_url", bad).unwrap_err();
            assert!(e.starts_with(&format!("audit_url: {bad:?} ")), "{e}");
            assert!(e.ends_with("must be an http:// or https:// URL with a host"), "{e}");
        }
    }
}
