//! What changes between two policies, as lines a network admin reads before activating:
//! `+ path: value`, `- path: value`, `~ path: old -> new`. Sites are compared by name, so
//! reordering the list is no change.

use netd::policy::Policy;
use serde_json::Value;

fn normalise(p: &Policy) -> Value {
    let mut v = serde_json::to_value(p).expect("policy serialises");
    if let Some(sites) = v.get_mut("sites").and_then(|s| s.as_array_mut()) {
        let map: serde_json::Map<String, Value> = sites
            .drain(..)
            .map(|s| (s.get("name").and_then(|n| n.as_str()).unwrap_or("?").to_string(), s))
            .collect();
        v["sites"] = Value::Object(map);
    }
    v
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 120 { format!("{}...", &s[..117]) } else { s }
}

fn walk(path: &str, a: Option<&Value>, b: Option<&Value>, out: &mut Vec<String>) {
    let join = |k: &str| if path.is_empty() { k.to_string() } else { format!("{path}.{k}") };
    match (a, b) {
        (Some(Value::Object(x)), Some(Value::Object(y))) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                walk(&join(k), x.get(k), y.get(k), out);
            }
        }
        (Some(x), Some(y)) if x == y => {}
        (Some(x), Some(y)) => out.push(format!("~ {path}: {} -> {}", short(x), short(y))),
        (None, Some(y)) => out.push(format!("+ {path}: {}", short(y))),
        (Some(x), None) => out.push(format!("- {path}: {}", short(x))),
        (None, None) => {}
    }
}

/// The changes from `old` (None: no policy yet) to `new`.
pub fn diff(old: Option<&Policy>, new: &Policy) -> Vec<String> {
    let mut out = Vec::new();
    // No policy yet: every top-level key is new.
    let old = old.map(normalise).unwrap_or_else(|| Value::Object(Default::default()));
    walk("", Some(&old), Some(&normalise(new)), &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(text: &str) -> Policy {
        serde_norway::from_str(text).unwrap()
    }

    #[test]
    fn reports_changed_added_and_removed_by_site_name() {
        let base = include_str!("../../../netd/tests/fixtures/valid.yaml");
        let a = policy(base);
        let mut b = a.clone();
        b.sites.reverse();
        assert!(diff(Some(&a), &b).is_empty(), "reordering sites is no change");
        b.sites.retain(|s| s.name.as_str() != "higashi-clinic");
        b.segments.get_mut(&"conference".parse().unwrap()).unwrap().port = 51899;
        let d = diff(Some(&a), &b);
        assert!(d.contains(&"~ segments.conference.port: 51822 -> 51899".to_string()), "{d:?}");
        assert!(d.iter().any(|l| l.starts_with("- sites.higashi-clinic: ")), "{d:?}");
        assert_eq!(d.len(), 2, "{d:?}");
    }
}
