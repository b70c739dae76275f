//! Which refused site requests become audit events. Every refusal is still answered (401/403) and
//! counted on `/metrics`; but per (source address, site the token named, reason) only the first
//! refusal is audited in full at once, and the ones after it are counted and audited as one summary
//! event ("N more refusals from ADDR for REASON") at most once every `limits.refusal_audit_secs`.
//! A pair quiet for a whole interval is forgotten, so its next refusal is audited in full at once
//! again. Before, each refusal was one audit event spooled with an fsync: 2000 requests with bad
//! tokens wrote 2000 events in 7 s, so anyone on the upload segment could flood the audit trail
//! and the disk.
//!
//! The idea is `kizuna-registry`'s `RefusalLimiter` (services/registry/src/refusals.rs), copied
//! rather than shared: a crate for a few dozen lines would be overkill, and this one also counts
//! what it holds back so that the summary carries the number.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use kizuna_audit::AuditEvent;
use kizuna_audit::emitter::AuditEmitter;
use kizuna_audit::event::presets::Source;

/// Most (address, site, reason) keys remembered. Past it, a new key is audited in full without
/// being remembered: under a flood from many addresses the audit trail gets more events, never
/// fewer, and the memory this takes stays bounded.
pub const MAX_REMEMBERED: usize = 10_000;

/// What refusals are grouped by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RefusalKey {
    /// The peer address (an IPv4-mapped IPv6 address as IPv4).
    pub ip: IpAddr,
    /// The site the token named, or `unknown-site`.
    pub site: String,
    /// HTTP status and error kind, e.g. `401 unauthorized`.
    pub reason: String,
}

/// One refusal as the audit trail records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub key: RefusalKey,
    /// The facility in the URL, if any.
    pub facility: Option<String>,
    /// The whole reason: status, kind, message and endpoint.
    pub detail: String,
}

/// Refusals held back for one key since `since`.
#[derive(Debug)]
struct Held {
    since: Instant,
    more: u64,
    /// The latest of them (its facility and detail go into the summary).
    last: Option<Refusal>,
}

/// A summary due: `more` refusals of `last`'s key were held back over `over`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub more: u64,
    pub over: Duration,
    pub last: Refusal,
}

/// Per key: when its window started and what it held back since.
#[derive(Debug)]
pub struct RefusalLimiter {
    every: Duration,
    held: HashMap<RefusalKey, Held>,
}

impl RefusalLimiter {
    pub fn new(every: Duration) -> Self {
        Self { every, held: HashMap::new() }
    }

    /// Notes a refusal at `now`: true when it is to be audited in full now (its key was quiet for
    /// an interval, or is new), false when it is held back for the key's next summary.
    pub fn note(&mut self, refusal: &Refusal, now: Instant) -> bool {
        if let Some(h) = self.held.get_mut(&refusal.key) {
            if now.saturating_duration_since(h.since) < self.every || h.more > 0 {
                h.more += 1;
                h.last = Some(refusal.clone());
                return false;
            }
            // Quiet for a whole interval: a fresh start.
            self.held.remove(&refusal.key);
        }
        if self.held.len() < MAX_REMEMBERED {
            self.held.insert(refusal.key.clone(), Held { since: now, more: 0, last: None });
        }
        true
    }

    /// The summaries due at `now` (keys whose interval has passed with refusals held back; their
    /// next interval starts now), and keys quiet for a whole interval forgotten.
    pub fn due(&mut self, now: Instant) -> Vec<Summary> {
        self.take(now, false)
    }

    /// The summaries of every key with refusals held back, due or not (at shutdown).
    pub fn drain(&mut self, now: Instant) -> Vec<Summary> {
        self.take(now, true)
    }

    fn take(&mut self, now: Instant, all: bool) -> Vec<Summary> {
        let every = self.every;
        let mut out = Vec::new();
        self.held.retain(|_, h| {
            let over = now.saturating_duration_since(h.since);
            if over < every && !(all && h.more > 0) {
                return true;
            }
            match h.last.take() {
                Some(last) if h.more > 0 => {
                    out.push(Summary { more: h.more, over, last });
                    (h.since, h.more) = (now, 0);
                    true
                }
                _ => false,
            }
        });
        out
    }

    /// How many keys are remembered.
    pub fn len(&self) -> usize {
        self.held.len()
    }

    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }
}

/// The store's refusal auditing: the limiter, the audit outlet, and a task that sends summaries
/// when they are due even if no further refusal comes (it holds this weakly and stops once the
/// store is gone).
pub struct RefusalAudit {
    limiter: Mutex<RefusalLimiter>,
    audit: AuditEmitter,
    source: &'static str,
}

impl RefusalAudit {
    /// Starts the summary task (needs a Tokio runtime).
    pub fn start(audit: AuditEmitter, source: &'static str, every: Duration) -> Arc<Self> {
        let this = Arc::new(Self { limiter: Mutex::new(RefusalLimiter::new(every)), audit, source });
        let weak: Weak<Self> = Arc::downgrade(&this);
        let tick = (every / 4).max(Duration::from_millis(100));
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(tick);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let Some(this) = weak.upgrade() else { break };
                this.send_due(Instant::now()).await;
            }
        });
        this
    }

    fn limiter(&self) -> std::sync::MutexGuard<'_, RefusalLimiter> {
        self.limiter.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Audits a refusal now, or holds it back for its key's summary (logged at WARN when audited,
    /// at DEBUG when held back).
    pub async fn refused(&self, refusal: Refusal) {
        let now = Instant::now();
        let (audit_now, due) = {
            let mut l = self.limiter();
            let due = l.due(now);
            (l.note(&refusal, now), due)
        };
        let k = &refusal.key;
        if audit_now {
            tracing::warn!(peer = %k.ip, site = %k.site, reason = %refusal.detail, "request refused (audited)");
            self.audit.emit(self.event(&refusal, &refusal.detail)).await;
        } else {
            tracing::debug!(peer = %k.ip, site = %k.site, reason = %refusal.detail, "request refused (held for the summary)");
        }
        self.send(due).await;
    }

    /// Sends the summaries of every refusal held back, due or not (at shutdown: none is lost).
    pub async fn flush(&self) {
        let held = self.limiter().drain(Instant::now());
        self.send(held).await;
    }

    /// Sends the summaries due at `now`.
    pub async fn send_due(&self, now: Instant) {
        let due = self.limiter().due(now);
        self.send(due).await;
    }

    async fn send(&self, due: Vec<Summary>) {
        for s in due {
            let k = &s.last.key;
            let text = format!(
                "{} more refusals from {} for {} (site {}) in the last {} s; the last: {}",
                s.more,
                k.ip,
                k.reason,
                k.site,
                s.over.as_secs(),
                s.last.detail
            );
            tracing::warn!(peer = %k.ip, site = %k.site, refusals = s.more, "{text}");
            let mut e = self.event(&s.last, &text);
            if let Some(o) = e.objects.first_mut() {
                o.details.push(("refusals".into(), s.more.to_string()));
            }
            self.audit.emit(e).await;
        }
    }

    /// 110113 / 110126 node authentication failure for `refusal`, with `reason` as its reason.
    fn event(&self, refusal: &Refusal, reason: &str) -> AuditEvent {
        let mut src = Source::new(self.source).ip(&refusal.key.ip.to_string());
        if let Some(f) = &refusal.facility {
            src = src.facility(f);
        }
        AuditEvent::node_auth_failure(&src, &refusal.key.site, reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(ip: &str, reason: &str) -> Refusal {
        Refusal {
            key: RefusalKey { ip: ip.parse().unwrap(), site: "unknown-site".into(), reason: reason.into() },
            facility: None,
            detail: format!("{reason}: the token is not valid for any site (heartbeat)"),
        }
    }

    #[test]
    fn a_flood_is_one_event_then_one_summary_per_interval_carrying_the_count() {
        let every = Duration::from_secs(60);
        let mut l = RefusalLimiter::new(every);
        let t0 = Instant::now();
        let r = refusal("192.0.2.1", "401 unauthorized");
        assert!(l.note(&r, t0), "the first refusal is audited at once");
        for i in 1..500u64 {
            assert!(!l.note(&r, t0 + Duration::from_millis(i * 10)), "{i}");
        }
        // Another address and another reason are audited at once, whatever the flood.
        assert!(l.note(&refusal("192.0.2.2", "401 unauthorized"), t0 + Duration::from_secs(1)));
        assert!(l.note(&refusal("192.0.2.1", "403 address_not_allowed"), t0 + Duration::from_secs(1)));
        assert!(l.due(t0 + Duration::from_secs(59)).is_empty(), "nothing due within the interval");
        let due = l.due(t0 + every);
        assert_eq!(due.len(), 1, "{due:?}");
        assert_eq!((due[0].more, &due[0].last), (499, &r));
        // The flood goes on: held back again, summarised once per interval.
        for i in 0..100u64 {
            assert!(!l.note(&r, t0 + every + Duration::from_secs(i % 60)));
        }
        let due = l.due(t0 + every * 2);
        assert_eq!(due.iter().map(|s| s.more).collect::<Vec<_>>(), vec![100]);
        // Quiet for a whole interval: forgotten, and the next refusal is audited in full again.
        assert!(l.due(t0 + every * 3).is_empty());
        assert!(l.is_empty());
        assert!(l.note(&r, t0 + every * 3));
        // At shutdown what is held back is summarised at once.
        assert!(!l.note(&r, t0 + every * 3 + Duration::from_secs(1)));
        let held = l.drain(t0 + every * 3 + Duration::from_secs(2));
        assert_eq!(
            held.iter().map(|s| (s.more, s.over)).collect::<Vec<_>>(),
            vec![(1, Duration::from_secs(2))]
        );
        assert!(l.drain(t0 + every * 3 + Duration::from_secs(3)).is_empty());
    }

    #[test]
    fn a_pair_quiet_for_an_interval_is_audited_at_once_even_before_a_sweep() {
        let every = Duration::from_secs(60);
        let mut l = RefusalLimiter::new(every);
        let t0 = Instant::now();
        let r = refusal("192.0.2.1", "401 unauthorized");
        assert!(l.note(&r, t0));
        assert!(l.note(&r, t0 + every), "one refusal a minute is audited each time");
        assert!(!l.note(&r, t0 + every + Duration::from_secs(1)));
        // With refusals held back, the summary comes first (the next refusal joins it).
        assert!(!l.note(&r, t0 + every * 2));
        assert_eq!(l.due(t0 + every * 2).iter().map(|s| s.more).collect::<Vec<_>>(), vec![2]);
    }

    #[test]
    fn a_flood_of_addresses_is_audited_but_memory_stays_bounded() {
        let mut l = RefusalLimiter::new(Duration::from_secs(60));
        let t0 = Instant::now();
        for i in 0..MAX_REMEMBERED + 500 {
            let ip = format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255);
            assert!(l.note(&refusal(&ip, "401 unauthorized"), t0));
        }
        assert_eq!(l.len(), MAX_REMEMBERED);
        assert!(l.due(t0 + Duration::from_secs(60)).is_empty());
        assert!(l.is_empty());
    }
}
