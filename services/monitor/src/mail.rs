//! Alert and recovery mail over SMTP (`lettre`): one transaction per mail, in which a recipient
//! the relay refuses (`550` at `RCPT TO`) does not keep the mail from the others. Recipients that
//! were refused are retried at each check for [`RETRY_HOURS`]; the relay is probed at each check.
//! What fails is kept for `/healthz`, `/metrics` and `kizuna admin check` ([`Mailer::health`]).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use lettre::Message;
use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::client::AsyncSmtpConnection;
use lettre::transport::smtp::commands::{Data, Mail, Noop, Rcpt, Rset};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};

use crate::MonitorError;
use crate::config::Config;
use crate::health::{Finding, Rule};

/// One mail to send to every recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub subject: String,
    pub body: String,
}

fn site_link(cfg: &Config, site: &str) -> String {
    if site == crate::alerts::CENTRE {
        format!("{}/", cfg.base_url())
    } else {
        format!("{}/sites/{}", cfg.base_url(), crate::pages::path_part(site))
    }
}

fn rule_title(rule: Rule) -> &'static str {
    match rule {
        Rule::AgentErrors => "the agent's log has errors",
        Rule::Rejects => "files rejected",
        Rule::DeadMan => "no upload and no heartbeat (dead-man)",
        Rule::ReplicationLag => "replication lag is high",
        Rule::Stalled => "uploads stalled while the agent's outbox fills",
        Rule::StoreDown => "the store is down or unhealthy",
        Rule::MassSilence => "many sites went silent at once (centre-side outage?)",
    }
}

impl Outgoing {
    /// The mail that opens an incident.
    pub fn alert(cfg: &Config, site: &str, rule: Rule, f: &Finding) -> Self {
        let mut body = format!(
            "Site: {site}\nAlert: {} (rule {})\nWhat happened: {}\n",
            rule_title(rule),
            rule.as_str(),
            f.summary
        );
        if !f.samples.is_empty() {
            body.push_str(match rule {
                Rule::AgentErrors => "\nLog lines:\n",
                Rule::MassSilence => "\nSites:\n",
                _ => "\nSample files:\n",
            });
            for s in &f.samples {
                body.push_str(&format!("  - {s}\n"));
            }
        }
        if rule == Rule::Rejects {
            body.push_str("\nWhat the codes mean:\n");
            let mut codes: Vec<&str> = f
                .samples
                .iter()
                .filter_map(|s| s.rsplit_once(": ").map(|(_, c)| c.trim_end_matches(')')))
                .flat_map(|c| c.split(", "))
                .collect();
            codes.sort_unstable();
            codes.dedup();
            for c in codes {
                body.push_str(&format!("  - {}\n", crate::reasons::readable(c)));
            }
        }
        body.push_str(&format!(
            "\nSite page: {}\n\nYou get one mail when this starts and one when it is over.\n",
            site_link(cfg, site)
        ));
        Self { subject: format!("[kizuna] ALERT {site}: {}", rule_title(rule)), body }
    }

    /// The mail that closes an incident.
    pub fn recovery(
        cfg: &Config,
        site: &str,
        rule: Rule,
        summary: &str,
        opened_at: &str,
        now: jiff::Timestamp,
    ) -> Self {
        let body = format!(
            "Site: {site}\nRecovered: {} (rule {})\nThe alert opened at {} said: {summary}\nIt no longer holds as of {}.\n\nSite page: {}\n",
            rule_title(rule),
            rule.as_str(),
            crate::time::show(opened_at),
            crate::time::show(&now.to_string()),
            site_link(cfg, site)
        );
        Self { subject: format!("[kizuna] RECOVERED {site}: {}", rule_title(rule)), body }
    }
}

/// How long a recipient the relay refused is retried (at each check) for a mail the others got.
pub const RETRY_HOURS: i64 = 24;
/// How long one SMTP conversation may take.
const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

/// What became of one mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    /// No recipients are configured: nothing was sent.
    NoRecipients,
    /// At least one recipient got it; these were refused (`address: reason`) and are retried.
    Delivered { refused: Vec<String> },
}

/// A mail some recipients got and others are still owed.
struct Owed {
    mail: Outgoing,
    to: Vec<Mailbox>,
    since: jiff::Timestamp,
}

/// What the mail path did lately.
#[derive(Default)]
struct MailState {
    owed: Vec<Owed>,
    /// Recipients whose last delivery was refused: since when, and the relay's answer.
    refused: BTreeMap<String, (jiff::Timestamp, String)>,
    /// The relay could not be reached or refused the mail as a whole: since when, and why.
    relay: Option<(jiff::Timestamp, String)>,
    delivered_total: u64,
    failures_total: u64,
}

/// Records a failure, keeping since when it lasts.
fn keep_since(slot: &mut Option<(jiff::Timestamp, String)>, why: String) {
    match slot {
        Some((_, w)) => *w = why,
        None => *slot = Some((jiff::Timestamp::now(), why)),
    }
}

/// The mail path's counters for `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MailStats {
    /// Deliveries to one recipient that the relay accepted.
    pub delivered_total: u64,
    /// Deliveries to one recipient (or whole mails, relay down) that failed.
    pub failures_total: u64,
    /// Recipients still owed a mail others got.
    pub owed: u64,
    /// Whether the mail path works (no refused recipient, relay reachable).
    pub ok: bool,
}

/// Sends mail to the configured recipients (or nowhere, when there are none).
pub struct Mailer {
    relay: Option<(String, u16)>,
    from: Mailbox,
    to: Vec<Mailbox>,
    state: Mutex<MailState>,
}

impl Mailer {
    pub fn new(cfg: &Config) -> Result<Self, MonitorError> {
        let bad = |e: String| MonitorError::Config(e);
        let from = cfg.mail.from.parse().map_err(|e| bad(format!("mail.from: {e}")))?;
        let to = cfg
            .mail
            .to
            .iter()
            .enumerate()
            .map(|(i, t)| t.parse().map_err(|e| bad(format!("mail.to[{i}]: {e}"))))
            .collect::<Result<Vec<Mailbox>, _>>()?;
        // Plain SMTP to a relay: the centre's MTA (or a test's server) does onward delivery.
        let relay = (!to.is_empty()).then(|| (cfg.mail.smtp_host.clone(), cfg.mail.smtp_port));
        Ok(Self { relay, from, to, state: Mutex::default() })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, MailState> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn relay_name(&self) -> String {
        self.relay.as_ref().map(|(h, p)| format!("{h}:{p}")).unwrap_or_default()
    }

    /// Sends one mail to every recipient in one SMTP transaction. A recipient the relay refuses
    /// does not keep it from the others: it is recorded, retried by [`Mailer::retry_owed`] and
    /// reported in [`Sent::Delivered`]. `Err` when nobody got it (relay unreachable, every
    /// recipient refused): the caller retries the whole mail at the next check.
    pub async fn send(&self, m: &Outgoing) -> Result<Sent, MonitorError> {
        if self.relay.is_none() {
            return Ok(Sent::NoRecipients);
        }
        let to = self.to.clone();
        let refused = self.deliver(m, &to).await?;
        if !refused.is_empty() {
            let owed: Vec<Mailbox> = refused
                .iter()
                .filter_map(|(a, _)| to.iter().find(|t| t.email.to_string() == *a))
                .cloned()
                .collect();
            self.state().owed.push(Owed { mail: m.clone(), to: owed, since: jiff::Timestamp::now() });
        }
        Ok(Sent::Delivered { refused: refused.into_iter().map(|(a, why)| format!("{a}: {why}")).collect() })
    }

    /// Sends the mails some recipients are still owed, to those recipients; gives up on a mail
    /// after [`RETRY_HOURS`] (logged at ERROR). Returns what failed.
    pub async fn retry_owed(&self) -> Vec<String> {
        let owed = std::mem::take(&mut self.state().owed);
        let mut errors = Vec::new();
        let mut keep = Vec::new();
        let now = jiff::Timestamp::now();
        for mut o in owed {
            match self.deliver(&o.mail, &o.to).await {
                Ok(refused) => {
                    o.to.retain(|t| refused.iter().any(|(a, _)| t.email.to_string() == *a));
                    errors.extend(refused.into_iter().map(|(a, why)| format!("{a}: {why}")));
                }
                Err(e) => errors.push(e.to_string()),
            }
            if o.to.is_empty() {
                continue;
            }
            if now.duration_since(o.since) > jiff::SignedDuration::from_hours(RETRY_HOURS) {
                let to: Vec<String> = o.to.iter().map(|t| t.email.to_string()).collect();
                tracing::error!(
                    subject = o.mail.subject,
                    ?to,
                    "alert mail given up after {RETRY_HOURS} h of refusals"
                );
            } else {
                keep.push(o);
            }
        }
        self.state().owed.extend(keep);
        errors
    }

    /// Connects to the relay and says NOOP: `Err(why)` when it cannot be reached. Nothing to do
    /// (`Ok`) without recipients.
    pub async fn probe(&self) -> Result<(), String> {
        let Some((host, port)) = &self.relay else { return Ok(()) };
        let r = async {
            let mut c = self.connect(host, *port).await?;
            c.command(Noop).await.map_err(|e| e.to_string())?;
            let _ = c.quit().await;
            Ok::<(), String>(())
        }
        .await;
        let mut st = self.state();
        match &r {
            Ok(()) => {
                if st.relay.take().is_some() {
                    tracing::info!(relay = %self.relay_name(), "SMTP relay reachable again");
                }
            }
            Err(e) => {
                let why = format!("SMTP relay {} unreachable: {e}", self.relay_name());
                keep_since(&mut st.relay, why);
            }
        }
        r
    }

    async fn connect(&self, host: &str, port: u16) -> Result<AsyncSmtpConnection, String> {
        let hello = ClientId::default();
        AsyncSmtpConnection::connect_tokio1((host, port), Some(SMTP_TIMEOUT), &hello, None, None)
            .await
            .map_err(|e| e.to_string())
    }

    /// One transaction to `to`: `Ok(refused recipients with the relay's answer)` when at least one
    /// was accepted and the mail went out; `Err` when nobody got it. Records the outcome.
    async fn deliver(&self, m: &Outgoing, to: &[Mailbox]) -> Result<Vec<(String, String)>, MonitorError> {
        let Some((host, port)) = &self.relay else { return Ok(Vec::new()) };
        let r = tokio::time::timeout(SMTP_TIMEOUT * 2, self.transact(host, *port, m, to))
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {} s", (SMTP_TIMEOUT * 2).as_secs())));
        let now = jiff::Timestamp::now();
        let mut st = self.state();
        match r {
            Ok((accepted, refused)) => {
                st.relay = None;
                st.delivered_total += accepted.len() as u64;
                st.failures_total += refused.len() as u64;
                for a in &accepted {
                    st.refused.remove(a);
                }
                for (a, why) in &refused {
                    tracing::error!(
                        recipient = a,
                        subject = m.subject,
                        "alert mail refused by the relay: {why}"
                    );
                    st.refused.entry(a.clone()).or_insert_with(|| (now, why.clone())).1 = why.clone();
                }
                if accepted.is_empty() {
                    let all =
                        refused.iter().map(|(a, why)| format!("{a}: {why}")).collect::<Vec<_>>().join("; ");
                    return Err(MonitorError::Mail(format!("every recipient refused: {all}")));
                }
                Ok(refused)
            }
            Err(e) => {
                let why = format!("SMTP relay {}: {e}", self.relay_name());
                tracing::error!(
                    subject = m.subject,
                    "alert mail not sent (retried at the next check): {why}"
                );
                st.failures_total += to.len() as u64;
                keep_since(&mut st.relay, why.clone());
                Err(MonitorError::Mail(why))
            }
        }
    }

    /// The SMTP conversation: MAIL FROM, one RCPT TO per recipient (a negative answer refuses
    /// that one only), DATA when any was accepted.
    #[allow(clippy::type_complexity)]
    async fn transact(
        &self,
        host: &str,
        port: u16,
        m: &Outgoing,
        to: &[Mailbox],
    ) -> Result<(Vec<String>, Vec<(String, String)>), String> {
        let mut b = Message::builder().from(self.from.clone()).subject(&m.subject);
        for t in &self.to {
            b = b.to(t.clone());
        }
        let msg = b.header(ContentType::TEXT_PLAIN).body(m.body.clone()).map_err(|e| e.to_string())?;
        let bytes = msg.formatted();
        let mut c = self.connect(host, port).await?;
        let mut options = Vec::new();
        if !bytes.is_ascii() && c.server_info().supports_feature(Extension::EightBitMime) {
            options.push(MailParameter::Body(MailBodyParameter::EightBitMime));
        }
        let fail = |e: lettre::transport::smtp::Error| e.to_string();
        c.command(Mail::new(Some(self.from.email.clone()), options)).await.map_err(fail)?;
        let (mut accepted, mut refused) = (Vec::new(), Vec::new());
        for t in to {
            let addr = t.email.to_string();
            match c.command(Rcpt::new(t.email.clone(), vec![])).await {
                Ok(_) => accepted.push(addr),
                Err(e) if e.is_permanent() || e.is_transient() => refused.push((addr, e.to_string())),
                Err(e) => return Err(e.to_string()),
            }
        }
        if accepted.is_empty() {
            let _ = c.command(Rset).await;
        } else {
            c.command(Data).await.map_err(fail)?;
            c.message(&bytes).await.map_err(fail)?;
        }
        let _ = c.quit().await;
        Ok((accepted, refused))
    }

    /// `Ok` while mail goes out (or no recipients are configured), else since when and why not:
    /// the relay cannot be reached, or a recipient is refused.
    pub fn health(&self) -> Result<(), String> {
        let st = self.state();
        let mut why = Vec::new();
        if let Some((since, e)) = &st.relay {
            why.push(format!("alert mail failing since {since}: {e}"));
        }
        for (a, (since, e)) in &st.refused {
            why.push(format!("alert mail to {a} refused since {since}: {e}"));
        }
        if why.is_empty() { Ok(()) } else { Err(why.join("; ")) }
    }

    /// Counters and state for `/metrics`.
    pub fn stats(&self) -> MailStats {
        let st = self.state();
        MailStats {
            delivered_total: st.delivered_total,
            failures_total: st.failures_total,
            owed: st.owed.iter().map(|o| o.to.len() as u64).sum(),
            ok: st.relay.is_none() && st.refused.is_empty(),
        }
    }
}
