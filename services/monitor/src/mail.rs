//! Alert and recovery mail over SMTP (`lettre`).

use lettre::message::{Mailbox, header::ContentType};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

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

/// Sends mail to the configured recipients (or nowhere, when there are none).
pub struct Mailer {
    transport: Option<AsyncSmtpTransport<Tokio1Executor>>,
    from: Mailbox,
    to: Vec<Mailbox>,
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
        let transport = (!to.is_empty()).then(|| {
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&cfg.mail.smtp_host)
                .port(cfg.mail.smtp_port)
                .timeout(Some(std::time::Duration::from_secs(30)))
                .build()
        });
        Ok(Self { transport, from, to })
    }

    /// Sends one mail to every recipient. `Ok(false)` when no recipients are configured.
    pub async fn send(&self, m: &Outgoing) -> Result<bool, MonitorError> {
        let Some(transport) = &self.transport else { return Ok(false) };
        let mut b = Message::builder().from(self.from.clone()).subject(&m.subject);
        for t in &self.to {
            b = b.to(t.clone());
        }
        let msg = b
            .header(ContentType::TEXT_PLAIN)
            .body(m.body.clone())
            .map_err(|e| MonitorError::Mail(e.to_string()))?;
        transport.send(msg).await.map_err(|e| MonitorError::Mail(e.to_string()))?;
        Ok(true)
    }
}
