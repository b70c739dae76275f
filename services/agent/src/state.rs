//! The agent's state folder read from outside a running agent (`kizuna-agent status`).

use serde::Serialize;

use crate::AgentError;
use crate::config::Config;
use crate::daily::SentDays;

/// What the state folder says: files waiting, quarantined, last upload, daily logs sent.
#[derive(Debug, Clone, Serialize)]
pub struct OfflineStatus {
    pub queue_depth: u64,
    pub quarantined: u64,
    pub last_upload: Option<String>,
    pub daily_logs_sent: Vec<String>,
    pub log_dir: String,
}

impl OfflineStatus {
    pub fn read(cfg: &Config) -> Result<Self, AgentError> {
        let outbox = cfg.outbox_dir();
        let queue_depth = match std::fs::read_dir(&outbox) {
            Ok(entries) => entries
                .flatten()
                .filter(|e| !e.file_name().to_string_lossy().starts_with(crate::durable::TEMP_PREFIX))
                .count() as u64,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(AgentError::io(&outbox, e)),
        };
        let quarantine = cfg.quarantine_dir();
        let quarantined =
            crate::quarantine::count_files(&quarantine).map_err(|e| AgentError::io(&quarantine, e))?;
        let cursor = cfg.cursor_dir();
        let sent = SentDays::load(&cursor).map_err(|e| AgentError::io(&cursor, e))?;
        Ok(Self {
            queue_depth,
            quarantined,
            last_upload: crate::report::read_last_upload(&cursor),
            daily_logs_sent: sent.days().map(str::to_owned).collect(),
            log_dir: cfg.log_dir().display().to_string(),
        })
    }
}
