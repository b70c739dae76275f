-- Monitoring (issue 7), SQLite flavour. Keep in step with ../postgres/0002_monitoring.sql.

-- The agent's quarantine as its last heartbeat listed it (newest files, capped by the agent).
CREATE TABLE agent_quarantine (
    site TEXT NOT NULL,
    file TEXT NOT NULL,
    origin TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    codes TEXT NOT NULL,
    reason TEXT NOT NULL,
    quarantined_at TEXT NOT NULL,
    reported_at TEXT NOT NULL,
    PRIMARY KEY (site, file)
);

-- Operators' requests to release a quarantined file for re-validation and upload. `state` is
-- pending (sent with each heartbeat answer until the agent reports), released, missing or failed.
CREATE TABLE rerequests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    site TEXT NOT NULL,
    file TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    requested_at TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    state TEXT NOT NULL,
    note TEXT NOT NULL,
    done_at TEXT
);
CREATE INDEX rerequests_by_site ON rerequests (site, state);

-- Alert incidents: one row per (rule, site) episode; a mail is sent when it opens and when it
-- closes, and the times say it was, so a restart never sends either twice.
CREATE TABLE alert_incidents (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    rule TEXT NOT NULL,
    site TEXT NOT NULL,
    opened_at TEXT NOT NULL,
    summary TEXT NOT NULL,
    opened_mail_at TEXT,
    closed_at TEXT,
    closed_mail_at TEXT
);
CREATE INDEX alert_incidents_open ON alert_incidents (rule, site, closed_at);
