//! Wall time per phase of a pass (observe links, WireGuard, nftables, apply, verify, ...), so that
//! a slow pass says where its time went (`netd-bench` prints them; `RUST_LOG=netd=debug` logs them).

use std::time::{Duration, Instant};

use serde::Serialize;

/// Phases in the order they ran; a name may repeat (observing before and after applying).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Phases(pub Vec<(String, Duration)>);

impl Phases {
    pub fn add(&mut self, name: impl Into<String>, d: Duration) {
        self.0.push((name.into(), d));
    }

    /// Record the time since `start` under `name` and return a fresh start.
    pub fn lap(&mut self, name: impl Into<String>, start: Instant) -> Instant {
        self.add(name, start.elapsed());
        Instant::now()
    }

    /// Append another pass's phases, each name prefixed (e.g. `rollback/`).
    pub fn extend_prefixed(&mut self, prefix: &str, other: Phases) {
        self.0.extend(other.0.into_iter().map(|(n, d)| (format!("{prefix}{n}"), d)));
    }

    /// Total per name, in order of first appearance.
    pub fn totals(&self) -> Vec<(String, Duration)> {
        let mut out: Vec<(String, Duration)> = Vec::new();
        for (n, d) in &self.0 {
            match out.iter_mut().find(|(m, _)| m == n) {
                Some((_, t)) => *t += *d,
                None => out.push((n.clone(), *d)),
            }
        }
        out
    }
}

impl std::fmt::Display for Phases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> =
            self.0.iter().map(|(n, d)| format!("{n} {:.1} ms", d.as_secs_f64() * 1000.0)).collect();
        f.write_str(&parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_sum_repeated_phases_in_first_seen_order() {
        let mut p = Phases::default();
        p.add("observe/links", Duration::from_millis(2));
        p.add("apply", Duration::from_millis(5));
        p.add("observe/links", Duration::from_millis(3));
        let t = p.totals();
        assert_eq!(
            t,
            vec![
                ("observe/links".to_string(), Duration::from_millis(5)),
                ("apply".to_string(), Duration::from_millis(5))
            ]
        );
        assert_eq!(p.to_string(), "observe/links 2.0 ms, apply 5.0 ms, observe/links 3.0 ms");
    }
}
