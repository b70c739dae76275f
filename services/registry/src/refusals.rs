//! Which refused requests are reported to the audit service: each (address, reason) at most once
//! every [`REFUSAL_REPORT_EVERY`], so a revoked site that keeps polling is reported, not logged on
//! every poll, and the memory this takes is bounded whatever a flood of addresses sends.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Refusals from one address for one reason are reported at most this often.
pub const REFUSAL_REPORT_EVERY: Duration = Duration::from_secs(600);

/// Most (address, reason) pairs remembered. Past it, a new pair is reported without being
/// remembered: under a flood from many addresses the audit trail gets more events, never fewer.
pub const MAX_REMEMBERED: usize = 10_000;

/// When each (address, reason) refusal was last reported.
#[derive(Debug, Default)]
pub struct RefusalLimiter {
    reported: HashMap<(String, String), Instant>,
}

impl RefusalLimiter {
    /// True when this refusal should be reported now: its pair was not reported within
    /// [`REFUSAL_REPORT_EVERY`] before `now`.
    pub fn should_report(&mut self, ip: &str, reason: &str, now: Instant) -> bool {
        self.reported.retain(|_, t| now.saturating_duration_since(*t) < REFUSAL_REPORT_EVERY);
        let key = (ip.to_owned(), reason.to_owned());
        if self.reported.contains_key(&key) {
            return false;
        }
        if self.reported.len() < MAX_REMEMBERED {
            self.reported.insert(key, now);
        }
        true
    }

    /// How many pairs are remembered.
    pub fn len(&self) -> usize {
        self.reported.len()
    }

    pub fn is_empty(&self) -> bool {
        self.reported.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pair_repeating_often_is_reported_again_once_its_period_has_passed() {
        let mut l = RefusalLimiter::default();
        let t0 = Instant::now();
        assert!(l.should_report("192.0.2.1", "revoked", t0));
        // Polling every minute: quiet until ten minutes after the first report, not forever.
        for m in 1..10 {
            assert!(!l.should_report("192.0.2.1", "revoked", t0 + Duration::from_secs(60 * m)), "{m}");
        }
        assert!(l.should_report("192.0.2.1", "revoked", t0 + REFUSAL_REPORT_EVERY));
        assert!(l.should_report("192.0.2.1", "another reason", t0 + REFUSAL_REPORT_EVERY));
        assert!(l.should_report("192.0.2.2", "revoked", t0 + REFUSAL_REPORT_EVERY));
    }

    #[test]
    fn a_flood_of_addresses_is_reported_but_memory_stays_bounded() {
        let mut l = RefusalLimiter::default();
        let t0 = Instant::now();
        for i in 0..MAX_REMEMBERED + 500 {
            assert!(l.should_report(&format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255), "x", t0));
        }
        assert_eq!(l.len(), MAX_REMEMBERED);
        // Once the period has passed the old pairs are forgotten and new ones remembered again.
        assert!(l.should_report("192.0.2.9", "x", t0 + REFUSAL_REPORT_EVERY));
        assert_eq!(l.len(), 1);
    }
}
